//! Hard budgets: reserve a call's worst-case cost first, settle the actual cost after.

use super::store::StoreError;
use crate::domain::{MicroUsd, RunId, RunStatus, TaskId, UserId};
use async_trait::async_trait;
use uuid::Uuid;

/// Money set aside for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub id: Uuid,
    pub amount: MicroUsd,
}

/// A user's budget period as it stands. The limit is `included + trial_left + overage_cap`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PeriodBudget {
    /// The period's key: its first day (UTC).
    pub period_start: chrono::NaiveDate,
    pub starts: chrono::DateTime<chrono::Utc>,
    pub ends: chrono::DateTime<chrono::Utc>,
    /// A period of a live subscription (else the UTC calendar month of a free user).
    pub paid: bool,
    /// The share of the revenue collected for the period (net of refunds).
    pub included: MicroUsd,
    /// What is left of the trial credit after earlier periods' spend.
    pub trial_left: MicroUsd,
    /// The overage the user allows past the rest, in a paid period.
    pub overage_cap: MicroUsd,
    pub spent: MicroUsd,
    pub reserved: MicroUsd,
}

impl PeriodBudget {
    /// The most the period may spend.
    pub fn limit(&self) -> MicroUsd {
        self.included + self.trial_left + self.overage_cap
    }

    /// What may still be reserved.
    pub fn left(&self) -> MicroUsd {
        self.limit().remaining_after(self.spent + self.reserved)
    }

    /// Spend past the included budget and the trial credit: what overage bills.
    pub fn overage(&self) -> MicroUsd {
        self.spent.remaining_after(self.included + self.trial_left)
    }
}

/// Which budget a refusal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetScope {
    Run,
    /// The user's budget period (the AI budget their revenue, trial and overage cap make).
    UserPeriod,
}

/// Why money could not be reserved.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The stable name steps fail with: `budget_exceeded`.
    #[error("budget_exceeded: {needed} needed, {available} left of the {scope:?} budget")]
    Exceeded {
        scope: BudgetScope,
        needed: MicroUsd,
        available: MicroUsd,
    },
    /// The run has ended (cancelled, failed, succeeded): it spends nothing more.
    #[error("run_ended: run {run} is {status}")]
    RunEnded { run: RunId, status: RunStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reservations against the run's budget and the user's AI budget for the period.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// Reserves `amount` against both budgets at once, or neither, for a call of `task` of
    /// `run` (the task's reservations are released if its attempt is presumed dead).
    async fn reserve(
        &self,
        user: UserId,
        holder: (Option<RunId>, Option<TaskId>),
        amount: MicroUsd,
    ) -> Result<Reservation, BudgetError>;
    /// Releases held reservations older than `age` (no call lasts that long: their holder
    /// died); returns how many.
    async fn release_expired(&self, age: std::time::Duration) -> Result<u64, StoreError>;
    /// The smaller share, in whole percent, of the run's budget and the user's monthly AI
    /// budget that is neither spent nor reserved (0 when a budget is zero). Routing steps
    /// down to cheaper models as it falls.
    async fn percent_left(&self, user: UserId, run: Option<RunId>) -> Result<u8, StoreError>;
    /// The user's current budget period: its window, its budget by source, and what is
    /// spent and reserved in it.
    async fn standing(&self, user: UserId) -> Result<PeriodBudget, StoreError>;
    /// Releases the reservation and records `actual` as spent. Settling twice is a no-op; a
    /// reservation released meanwhile (its holder presumed dead) still records `actual`.
    async fn settle(&self, reservation: Uuid, actual: MicroUsd) -> Result<(), StoreError>;
}
