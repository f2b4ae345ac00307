//! Budgets, in memory: one calendar-month period per user, its budget granted by the test.

use crate::domain::{MicroUsd, RunId, TaskId, UserId};
use crate::ports::{BudgetError, BudgetScope, BudgetStore, PeriodBudget, Reservation, StoreError};
use async_trait::async_trait;
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use std::collections::BTreeMap;
use std::sync::Mutex;
use uuid::Uuid;

/// The `BudgetStore` twin: each user's period has the budget `grant` gave it (nothing by
/// default), and reservations are held and settled against it. Runs' own budgets and the
/// revenue that makes a budget are the Postgres store's (tested in the real-backend tier).
#[derive(Default)]
pub struct MemBudgets {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// user → (budget, spent, reserved)
    users: BTreeMap<UserId, (MicroUsd, MicroUsd, MicroUsd)>,
    held: BTreeMap<Uuid, (UserId, MicroUsd)>,
}

impl MemBudgets {
    /// Gives `user`'s period a budget of `amount`.
    pub fn grant(&self, user: UserId, amount: MicroUsd) {
        self.lock().users.entry(user).or_default().0 = amount;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl BudgetStore for MemBudgets {
    async fn reserve(
        &self,
        user: UserId,
        _holder: (Option<RunId>, Option<TaskId>),
        amount: MicroUsd,
    ) -> Result<Reservation, BudgetError> {
        let mut state = self.lock();
        let (budget, spent, reserved) = state.users.entry(user).or_default();
        if amount > MicroUsd::ZERO && *spent + *reserved + amount > *budget {
            return Err(BudgetError::Exceeded {
                scope: BudgetScope::UserPeriod,
                needed: amount,
                available: budget.remaining_after(*spent + *reserved),
            });
        }
        *reserved += amount;
        let id = Uuid::new_v4();
        state.held.insert(id, (user, amount));
        Ok(Reservation { id, amount })
    }

    async fn release_expired(&self, _age: std::time::Duration) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn percent_left(&self, user: UserId, _run: Option<RunId>) -> Result<u8, StoreError> {
        let period = self.standing(user).await?;
        let limit = period.limit().0;
        Ok(match limit {
            0 => 0,
            _ => u8::try_from(period.left().0.saturating_mul(100) / limit).unwrap_or(100),
        })
    }

    async fn standing(&self, user: UserId) -> Result<PeriodBudget, StoreError> {
        let (budget, spent, reserved) = self.lock().users.get(&user).copied().unwrap_or_default();
        let today = Utc::now().date_naive();
        let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(first);
        let at = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN));
        Ok(PeriodBudget {
            period_start: first,
            starts: at(first),
            ends: at(next),
            paid: budget > MicroUsd::ZERO,
            included: budget,
            trial_left: MicroUsd::ZERO,
            overage_cap: MicroUsd::ZERO,
            spent,
            reserved,
        })
    }

    async fn settle(&self, reservation: Uuid, actual: MicroUsd) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some((user, amount)) = state.held.remove(&reservation) {
            let entry = state.users.entry(user).or_default();
            entry.2 = entry.2 - amount;
            entry.1 += actual;
        }
        Ok(())
    }
}
