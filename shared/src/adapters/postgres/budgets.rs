//! Budget reservations.

use super::Pool;
use super::cached::Cached;
use crate::domain::{MicroUsd, ReservationStatus, RunId, RunStatus, TaskId, UserId};
use crate::ports::{BudgetError, BudgetScope, BudgetStore, PeriodBudget, Reservation, StoreError};
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

fn ended_statuses() -> Vec<RunStatus> {
    RunStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.is_terminal())
        .collect()
}

/// The user's current period (made if missing) with its budget by source and its use:
/// `$1` the user. Columns as `PeriodBudget` reads them.
const STANDING: &str = "SELECT * FROM period_standing($1)";

fn period_budget(row: &tokio_postgres::Row) -> Result<PeriodBudget, tokio_postgres::Error> {
    Ok(PeriodBudget {
        period_start: row.try_get(0)?,
        starts: row.try_get(1)?,
        ends: row.try_get(2)?,
        paid: row.try_get(3)?,
        included: MicroUsd(row.try_get(4)?),
        trial_left: MicroUsd(row.try_get(5)?),
        overage_cap: MicroUsd(row.try_get(6)?),
        spent: MicroUsd(row.try_get(7)?),
        reserved: MicroUsd(row.try_get(8)?),
    })
}

/// The period `user`'s reservation goes in (the run's, once it has one) and whether
/// `$3` fits in it; both in the caller's transaction (see `hold_period` in migration 0028).
/// No row back: there is no such user.
const HOLD_PERIOD: &str = "
    WITH p AS (SELECT current_period($1, $2) AS period_start)
    SELECT p.period_start, hold_period($1, p.period_start, $3) FROM p WHERE p.period_start IS NOT NULL";

/// Adds `$5` to the run's reserved spend within its budget, unless the run has ended (`$6`,
/// the ended statuses: a cancelled run's next model turn is refused here), and records the
/// reservation (`$1`); with no run (`$3` null), only the record. No row back: refused.
const HOLD_RUN: &str = "
    WITH run AS (
        UPDATE runs SET reserved_micro_usd = reserved_micro_usd + $5
        WHERE id = $3 AND spent_micro_usd + reserved_micro_usd + $5 <= budget_micro_usd
          AND NOT (status = ANY($6::run_status[]))
        RETURNING id)
    INSERT INTO budget_reservations (id, user_id, run_id, period_start, amount_micro_usd, task_id)
    SELECT $1, $2, $3, $4, $5, $7 WHERE $3::uuid IS NULL OR EXISTS (SELECT 1 FROM run)
    RETURNING id";

/// Why the user's period refused: how much is left, or that there is no such user.
async fn period_refusal(
    client: &deadpool_postgres::Client,
    user: UserId,
    amount: MicroUsd,
) -> BudgetError {
    match standing_of(client, user).await {
        Ok(period) => BudgetError::Exceeded {
            scope: BudgetScope::UserPeriod,
            needed: amount,
            available: period.left(),
        },
        Err(e) => e.into(),
    }
}

async fn standing_of(
    client: &impl deadpool_postgres::GenericClient,
    user: UserId,
) -> Result<PeriodBudget, StoreError> {
    let row = client
        .query_opt_cached(STANDING, &[&user.0])
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "user",
            id: user.to_string(),
        })?;
    Ok(period_budget(&row)?)
}

/// Why the run refused: how much is left, or that there is no such run.
async fn run_refusal(
    client: &deadpool_postgres::Client,
    run: Option<RunId>,
    amount: MicroUsd,
) -> BudgetError {
    let Some(run) = run else {
        return StoreError::NotFound {
            what: "run",
            id: "none".into(),
        }
        .into();
    };
    let query = "SELECT budget_micro_usd - spent_micro_usd - reserved_micro_usd, status FROM runs WHERE id = $1";
    match client.query_opt(query, &[&run.0]).await {
        Ok(Some(row)) => match (row.try_get::<_, i64>(0), row.try_get::<_, RunStatus>(1)) {
            (Ok(_), Ok(status)) if status.is_terminal() => BudgetError::RunEnded { run, status },
            (Ok(left), Ok(_)) => BudgetError::Exceeded {
                scope: BudgetScope::Run,
                needed: amount,
                available: MicroUsd(left.max(0)),
            },
            (Err(e), _) | (_, Err(e)) => StoreError::from(e).into(),
        },
        Ok(None) => StoreError::NotFound {
            what: "run",
            id: run.to_string(),
        }
        .into(),
        Err(e) => StoreError::from(e).into(),
    }
}

#[async_trait]
impl BudgetStore for PgBudgetStore {
    async fn reserve(
        &self,
        user: UserId,
        holder: (Option<RunId>, Option<TaskId>),
        amount: MicroUsd,
    ) -> Result<Reservation, BudgetError> {
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        match hold(&tx, user, holder, amount).await? {
            Ok(reservation) => {
                tx.commit().await.map_err(StoreError::from)?;
                Ok(reservation)
            }
            Err(refused) => {
                // Rolling back gives the user's month its reservation back too.
                tx.rollback().await.map_err(StoreError::from)?;
                Err(refusal(&client, refused, user, holder.0, amount).await)
            }
        }
    }

    async fn percent_left(&self, user: UserId, run: Option<RunId>) -> Result<u8, StoreError> {
        let client = self.pool.get().await?;
        let period = standing_of(&client, user).await?;
        let month = percent(period.limit().0, (period.spent + period.reserved).0);
        let run = match run {
            Some(run) => {
                let row = client
                    .query_opt(
                        &client
                            .prepare_cached(
                                "SELECT budget_micro_usd, spent_micro_usd + reserved_micro_usd FROM runs WHERE id = $1",
                            )
                            .await?,
                        &[&run.0],
                    )
                    .await?;
                match row {
                    Some(row) => percent(row.try_get(0)?, row.try_get(1)?),
                    None => 100,
                }
            }
            None => 100,
        };
        Ok(month.min(run))
    }

    async fn standing(&self, user: UserId) -> Result<PeriodBudget, StoreError> {
        let client = self.pool.get().await?;
        standing_of(&client, user).await
    }

    async fn release_expired(&self, age: std::time::Duration) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::hours(1));
        release_held(&client, "b.created_at < $2", &cutoff).await
    }

    async fn settle(&self, reservation: Uuid, actual: MicroUsd) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        settle_in(&client, reservation, actual).await
    }
}

/// Which budget refused a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    Period,
    Run,
}

/// Holds `amount` on the user's month and the run (`holder`), inside the caller's
/// transaction; `Err` says which refused (the caller rolls back, then asks `refusal` why).
pub(super) async fn hold(
    tx: &deadpool_postgres::Transaction<'_>,
    user: UserId,
    (run, task): (Option<RunId>, Option<TaskId>),
    amount: MicroUsd,
) -> Result<Result<Reservation, Refused>, StoreError> {
    let hold_period = tx.prepare_cached(HOLD_PERIOD).await?;
    let Some(held) = tx
        .query_opt(&hold_period, &[&user.0, &run.map(|r| r.0), &amount.0])
        .await?
    else {
        return Ok(Err(Refused::Period));
    };
    if !held.try_get::<_, bool>(1)? {
        return Ok(Err(Refused::Period));
    }
    let month: chrono::NaiveDate = held.try_get(0)?;
    let id = Uuid::new_v4();
    let hold_run = tx.prepare_cached(HOLD_RUN).await?;
    let reserved = tx
        .query_opt(
            &hold_run,
            &[
                &id,
                &user.0,
                &run.map(|r| r.0),
                &month,
                &amount.0,
                &ended_statuses(),
                &task.map(|t| t.0),
            ],
        )
        .await?;
    Ok(match reserved {
        Some(_) => Ok(Reservation { id, amount }),
        None => Err(Refused::Run),
    })
}

/// Why `which` refused `amount`, read after the rollback.
pub(super) async fn refusal(
    client: &deadpool_postgres::Client,
    which: Refused,
    user: UserId,
    run: Option<RunId>,
    amount: MicroUsd,
) -> BudgetError {
    match which {
        Refused::Period => period_refusal(client, user, amount).await,
        Refused::Run => run_refusal(client, run, amount).await,
    }
}

/// Settles a reservation at `actual`, in one statement (see `BudgetStore::settle`).
pub(super) async fn settle_in(
    client: &impl deadpool_postgres::GenericClient,
    reservation: Uuid,
    actual: MicroUsd,
) -> Result<(), StoreError> {
    // One statement, so one round trip and atomic: the reservation is marked settled
    // only while still held or released (settling twice changes nothing), and the
    // user's month and the run move the same amount from reserved to spent. A released
    // reservation's amount already went back: only the actual cost is spent.
    let settle = client
            .prepare_cached(
                "WITH held AS (
                     UPDATE budget_reservations b SET status = $2, actual_micro_usd = $3, settled_at = now()
                     FROM (SELECT id, status AS was FROM budget_reservations WHERE id = $1 FOR UPDATE) before
                     WHERE b.id = before.id AND before.was = ANY($4)
                     RETURNING b.user_id, b.run_id, b.period_start,
                               CASE WHEN before.was = $5 THEN b.amount_micro_usd ELSE 0 END AS amount_micro_usd),
                 month AS (
                     UPDATE user_period_spend s
                     SET reserved_micro_usd = s.reserved_micro_usd - held.amount_micro_usd,
                         spent_micro_usd = s.spent_micro_usd + $3
                     FROM held WHERE s.user_id = held.user_id AND s.period_start = held.period_start
                     RETURNING 1),
                 run AS (
                     UPDATE runs r
                     SET reserved_micro_usd = r.reserved_micro_usd - held.amount_micro_usd,
                         spent_micro_usd = r.spent_micro_usd + $3
                     FROM held WHERE r.id = held.run_id
                     RETURNING 1)
                 SELECT (SELECT count(*) FROM month), (SELECT count(*) FROM run)",
            )
            .await?;
    client
        .query_one(
            &settle,
            &[
                &reservation,
                &ReservationStatus::Settled,
                &actual.0,
                &vec![ReservationStatus::Held, ReservationStatus::Released],
                &ReservationStatus::Held,
            ],
        )
        .await?;
    Ok(())
}

/// Releases held reservations chosen by `filter` (a condition on `b`, the reservation, with
/// `$2` as its one parameter) inside the caller's transaction: each goes back to its run's
/// and its user's month's reserved amounts. Returns how many were released.
pub(super) async fn release_held(
    client: &impl deadpool_postgres::GenericClient,
    filter: &str,
    value: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<u64, StoreError> {
    let sql = format!(
        "WITH released AS (
             UPDATE budget_reservations b SET status = $1, settled_at = now()
             WHERE b.status = $3 AND {filter}
             RETURNING b.user_id, b.run_id, b.period_start, b.amount_micro_usd),
         month AS (
             UPDATE user_period_spend s SET reserved_micro_usd = s.reserved_micro_usd - r.total
             FROM (SELECT user_id, period_start, sum(amount_micro_usd)::bigint AS total FROM released GROUP BY 1, 2) r
             WHERE s.user_id = r.user_id AND s.period_start = r.period_start
             RETURNING 1),
         run AS (
             UPDATE runs x SET reserved_micro_usd = x.reserved_micro_usd - r.total
             FROM (SELECT run_id, sum(amount_micro_usd)::bigint AS total FROM released
                   WHERE run_id IS NOT NULL GROUP BY 1) r
             WHERE x.id = r.run_id
             RETURNING 1)
         SELECT (SELECT count(*) FROM released), (SELECT count(*) FROM month), (SELECT count(*) FROM run)"
    );
    let row = client
        .query_one_cached(
            &sql,
            &[
                &ReservationStatus::Released,
                value,
                &ReservationStatus::Held,
            ],
        )
        .await?;
    let released: i64 = row.try_get(0)?;
    Ok(u64::try_from(released).unwrap_or(0))
}
