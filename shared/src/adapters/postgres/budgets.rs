//! Budget reservations.

use super::Pool;
use crate::domain::{MicroUsd, ReservationStatus, RunId, Tier, UserId};
use crate::ports::{BudgetError, BudgetScope, BudgetStore, Reservation, StoreError};
use async_trait::async_trait;
use uuid::Uuid;

/// `BudgetStore` on Postgres. Each reservation is one transaction of conditional updates:
/// `spent + reserved + amount <= limit` is re-checked under the row lock, so two calls
/// racing for the last of a budget cannot both get it.
#[derive(Clone)]
pub struct PgBudgetStore {
    pool: Pool,
}

impl PgBudgetStore {
    pub fn new(pool: Pool) -> Self {
        PgBudgetStore { pool }
    }
}

/// What share of `limit` is left after `used`, in whole percent rounded down.
fn percent(limit: i64, used: i64) -> u8 {
    if limit <= 0 {
        return 0;
    }
    let left = (limit - used).clamp(0, limit);
    u8::try_from(i128::from(left) * 100 / i128::from(limit)).unwrap_or(100)
}

const MONTH: &str = "date_trunc('month', now() AT TIME ZONE 'UTC')::date";

#[async_trait]
impl BudgetStore for PgBudgetStore {
    async fn reserve(
        &self,
        user: UserId,
        run: Option<RunId>,
        amount: MicroUsd,
    ) -> Result<Reservation, BudgetError> {
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let tier: Tier = tx
            .query_opt(
                &tx.prepare_cached("SELECT tier FROM users WHERE id = $1")
                    .await
                    .map_err(StoreError::from)?,
                &[&user.0],
            )
            .await
            .map_err(StoreError::from)?
            .ok_or_else(|| StoreError::NotFound {
                what: "user",
                id: user.to_string(),
            })?
            .try_get(0)
            .map_err(StoreError::from)?;
        let limit = tier.monthly_ai_budget();
        tx.execute(
            &tx.prepare_cached(&format!("INSERT INTO user_monthly_spend (user_id, month) VALUES ($1, {MONTH}) ON CONFLICT DO NOTHING")).await.map_err(StoreError::from)?,
            &[&user.0],
        )
        .await
        .map_err(StoreError::from)?;
        let held = tx
            .query_opt(
                &tx.prepare_cached(&format!(
                    "UPDATE user_monthly_spend SET reserved_micro_usd = reserved_micro_usd + $2
                     WHERE user_id = $1 AND month = {MONTH} AND spent_micro_usd + reserved_micro_usd + $2 <= $3
                     RETURNING month"
                )).await.map_err(StoreError::from)?,
                &[&user.0, &amount.0, &limit.0],
            )
            .await
            .map_err(StoreError::from)?;
        let Some(held) = held else {
            let row = tx
                .query_one(
                    &tx.prepare_cached(&format!("SELECT spent_micro_usd + reserved_micro_usd FROM user_monthly_spend WHERE user_id = $1 AND month = {MONTH}")).await.map_err(StoreError::from)?,
                    &[&user.0],
                )
                .await
                .map_err(StoreError::from)?;
            let used: i64 = row.try_get(0).map_err(StoreError::from)?;
            return Err(BudgetError::Exceeded {
                scope: BudgetScope::UserMonth,
                needed: amount,
                available: limit.remaining_after(MicroUsd(used)),
            });
        };
        let month: chrono::NaiveDate = held.try_get(0).map_err(StoreError::from)?;
        if let Some(run) = run {
            let ok = tx
                .query_opt(
                    &tx.prepare_cached(
                        "UPDATE runs SET reserved_micro_usd = reserved_micro_usd + $2
                     WHERE id = $1 AND spent_micro_usd + reserved_micro_usd + $2 <= budget_micro_usd
                     RETURNING id",
                    )
                    .await
                    .map_err(StoreError::from)?,
                    &[&run.0, &amount.0],
                )
                .await
                .map_err(StoreError::from)?;
            if ok.is_none() {
                let row = tx
                    .query_opt(&tx.prepare_cached("SELECT budget_micro_usd - spent_micro_usd - reserved_micro_usd FROM runs WHERE id = $1").await.map_err(StoreError::from)?, &[&run.0])
                    .await
                    .map_err(StoreError::from)?
                    .ok_or_else(|| StoreError::NotFound { what: "run", id: run.to_string() })?;
                let left: i64 = row.try_get(0).map_err(StoreError::from)?;
                // Dropping the transaction rolls back the user's reservation too.
                return Err(BudgetError::Exceeded {
                    scope: BudgetScope::Run,
                    needed: amount,
                    available: MicroUsd(left.max(0)),
                });
            }
        }
        let id = Uuid::new_v4();
        tx.execute(
            &tx.prepare_cached("INSERT INTO budget_reservations (id, user_id, run_id, month, amount_micro_usd) VALUES ($1, $2, $3, $4, $5)").await.map_err(StoreError::from)?,
            &[&id, &user.0, &run.map(|r| r.0), &month, &amount.0],
        )
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Reservation { id, amount })
    }

    async fn percent_left(&self, user: UserId, run: Option<RunId>) -> Result<u8, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(&format!(
                        "SELECT u.tier, coalesce(s.spent_micro_usd + s.reserved_micro_usd, 0),
                            r.budget_micro_usd, r.spent_micro_usd + r.reserved_micro_usd
                     FROM users u
                     LEFT JOIN user_monthly_spend s ON s.user_id = u.id AND s.month = {MONTH}
                     LEFT JOIN runs r ON r.id = $2
                     WHERE u.id = $1"
                    ))
                    .await
                    .map_err(StoreError::from)?,
                &[&user.0, &run.map(|r| r.0)],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "user",
                id: user.to_string(),
            })?;
        let tier: Tier = row.try_get(0)?;
        let month = percent(tier.monthly_ai_budget().0, row.try_get(1)?);
        let run = match row.try_get::<_, Option<i64>>(2)? {
            Some(budget) => percent(budget, row.try_get::<_, Option<i64>>(3)?.unwrap_or(0)),
            None => 100,
        };
        Ok(month.min(run))
    }

    async fn settle(&self, reservation: Uuid, actual: MicroUsd) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                &tx.prepare_cached("UPDATE budget_reservations SET status = $2, actual_micro_usd = $3, settled_at = now()
                 WHERE id = $1 AND status = $4
                 RETURNING user_id, run_id, month, amount_micro_usd").await.map_err(StoreError::from)?,
                &[&reservation, &ReservationStatus::Settled, &actual.0, &ReservationStatus::Held],
            )
            .await?
        else {
            return Ok(());
        };
        let (user, run, month, amount): (Uuid, Option<Uuid>, chrono::NaiveDate, i64) = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        );
        tx.execute(
            &tx.prepare_cached("UPDATE user_monthly_spend SET reserved_micro_usd = reserved_micro_usd - $3, spent_micro_usd = spent_micro_usd + $4
             WHERE user_id = $1 AND month = $2").await.map_err(StoreError::from)?,
            &[&user, &month, &amount, &actual.0],
        )
        .await?;
        if let Some(run) = run {
            tx.execute(
                &tx.prepare_cached("UPDATE runs SET reserved_micro_usd = reserved_micro_usd - $2, spent_micro_usd = spent_micro_usd + $3 WHERE id = $1").await.map_err(StoreError::from)?,
                &[&run, &amount, &actual.0],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
