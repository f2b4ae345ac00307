//! Budget reservations.

use super::Pool;
use super::cached::Cached;
use crate::domain::{MicroUsd, ReservationStatus, RunId, RunStatus, TaskId, Tier, UserId};
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

fn ended_statuses() -> Vec<RunStatus> {
    RunStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.is_terminal())
        .collect()
}

const MONTH: &str = "date_trunc('month', now() AT TIME ZONE 'UTC')::date";

/// Each tier's name and monthly AI budget, as `HOLD_MONTH` takes them.
static TIER_LIMITS: std::sync::LazyLock<(Vec<&'static str>, Vec<i64>)> =
    std::sync::LazyLock::new(|| {
        Tier::ALL
            .iter()
            .map(|t| (t.as_str(), t.monthly_ai_budget().0))
            .unzip()
    });

/// Adds `$2` to the user's reserved spend this month (creating the month's row if needed),
/// only if it stays within their tier's limit (`$3` tiers, `$4` their limits). The
/// conflicting row is locked and the condition re-checked on its latest version, so racing
/// reservations cannot pass the limit together. No row back: refused.
const HOLD_MONTH: &str = "
    WITH lim AS (
        SELECT l.limit_micro_usd FROM users u
        JOIN unnest($3::text[], $4::bigint[]) AS l (tier, limit_micro_usd) ON l.tier = u.tier::text
        WHERE u.id = $1)
    INSERT INTO user_monthly_spend AS s (user_id, month, reserved_micro_usd)
    SELECT $1, date_trunc('month', now() AT TIME ZONE 'UTC')::date, $2
    FROM lim WHERE $2 <= lim.limit_micro_usd
    ON CONFLICT (user_id, month) DO UPDATE
        SET reserved_micro_usd = s.reserved_micro_usd + EXCLUDED.reserved_micro_usd
        WHERE s.spent_micro_usd + s.reserved_micro_usd + EXCLUDED.reserved_micro_usd
              <= (SELECT limit_micro_usd FROM lim)
    RETURNING s.month";

/// Adds `$5` to the run's reserved spend within its budget, unless the run has ended (`$6`,
/// the ended statuses: a cancelled run's next model turn is refused here), and records the
/// reservation (`$1`); with no run (`$3` null), only the record. No row back: refused.
const HOLD_RUN: &str = "
    WITH run AS (
        UPDATE runs SET reserved_micro_usd = reserved_micro_usd + $5
        WHERE id = $3 AND spent_micro_usd + reserved_micro_usd + $5 <= budget_micro_usd
          AND NOT (status = ANY($6::run_status[]))
        RETURNING id)
    INSERT INTO budget_reservations (id, user_id, run_id, month, amount_micro_usd, task_id)
    SELECT $1, $2, $3, $4, $5, $7 WHERE $3::uuid IS NULL OR EXISTS (SELECT 1 FROM run)
    RETURNING id";

/// Why the user's month refused: how much is left, or that there is no such user.
async fn month_refusal(
    client: &tokio_postgres::Client,
    user: UserId,
    amount: MicroUsd,
) -> BudgetError {
    let query = format!(
        "SELECT u.tier, coalesce(s.spent_micro_usd + s.reserved_micro_usd, 0) FROM users u
         LEFT JOIN user_monthly_spend s ON s.user_id = u.id AND s.month = {MONTH} WHERE u.id = $1"
    );
    let row = match client.query_opt(&query, &[&user.0]).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return StoreError::NotFound {
                what: "user",
                id: user.to_string(),
            }
            .into();
        }
        Err(e) => return StoreError::from(e).into(),
    };
    let read =
        || -> Result<(Tier, i64), tokio_postgres::Error> { Ok((row.try_get(0)?, row.try_get(1)?)) };
    match read() {
        Ok((tier, used)) => BudgetError::Exceeded {
            scope: BudgetScope::UserMonth,
            needed: amount,
            available: tier.monthly_ai_budget().remaining_after(MicroUsd(used)),
        },
        Err(e) => StoreError::from(e).into(),
    }
}

/// Why the run refused: how much is left, or that there is no such run.
async fn run_refusal(
    client: &tokio_postgres::Client,
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
    Month,
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
    let (tiers, limits) = &*TIER_LIMITS;
    let hold_month = tx.prepare_cached(HOLD_MONTH).await?;
    let Some(held) = tx
        .query_opt(&hold_month, &[&user.0, &amount.0, tiers, limits])
        .await?
    else {
        return Ok(Err(Refused::Month));
    };
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
    client: &tokio_postgres::Client,
    which: Refused,
    user: UserId,
    run: Option<RunId>,
    amount: MicroUsd,
) -> BudgetError {
    match which {
        Refused::Month => month_refusal(client, user, amount).await,
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
                     RETURNING b.user_id, b.run_id, b.month,
                               CASE WHEN before.was = $5 THEN b.amount_micro_usd ELSE 0 END AS amount_micro_usd),
                 month AS (
                     UPDATE user_monthly_spend s
                     SET reserved_micro_usd = s.reserved_micro_usd - held.amount_micro_usd,
                         spent_micro_usd = s.spent_micro_usd + $3
                     FROM held WHERE s.user_id = held.user_id AND s.month = held.month
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
             RETURNING b.user_id, b.run_id, b.month, b.amount_micro_usd),
         month AS (
             UPDATE user_monthly_spend s SET reserved_micro_usd = s.reserved_micro_usd - r.total
             FROM (SELECT user_id, month, sum(amount_micro_usd)::bigint AS total FROM released GROUP BY 1, 2) r
             WHERE s.user_id = r.user_id AND s.month = r.month
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
