//! Schedules and their fires.

use super::Pool;
use super::cached::Cached;
use super::runs::insert_run;
use crate::domain::paging::{Cursor, Page, Paged};
use crate::domain::records::NewRun;
use crate::domain::schedule::{Fire, Schedule};
use crate::domain::{
    FireOutcome, MicroUsd, ProjectId, RunId, RunStatus, ScheduleId, ScheduleOverlap, UserId,
};
use crate::ports::{Effects, Fired, NewSchedule, ScheduleFields, ScheduleStore, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

/// `ScheduleStore` on Postgres.
#[derive(Clone)]
pub struct PgScheduleStore {
    pool: Pool,
}

impl PgScheduleStore {
    pub fn new(pool: Pool) -> Self {
        PgScheduleStore { pool }
    }
}

const COLUMNS: &str = "id, project_id, user_id, kind, expression, timezone, command, budget_micro_usd, \
     overlap, catch_up, enabled, next_fire_at, created_at, updated_at";

const FIRE_COLUMNS: &str = "schedule_id, scheduled_at, outcome, run_id, reason, fired_at";

fn schedule_from(row: &Row) -> Result<Schedule, StoreError> {
    Ok(Schedule {
        id: ScheduleId(row.try_get("id")?),
        project_id: ProjectId(row.try_get("project_id")?),
        user_id: UserId(row.try_get("user_id")?),
        kind: row.try_get("kind")?,
        expression: row.try_get("expression")?,
        timezone: row.try_get("timezone")?,
        command: row.try_get("command")?,
        budget_micro_usd: MicroUsd(row.try_get("budget_micro_usd")?),
        overlap: row.try_get("overlap")?,
        catch_up: row.try_get("catch_up")?,
        enabled: row.try_get("enabled")?,
        next_fire_at: row.try_get("next_fire_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn fire_from(row: &Row) -> Result<Fire, StoreError> {
    Ok(Fire {
        schedule_id: ScheduleId(row.try_get("schedule_id")?),
        scheduled_at: row.try_get("scheduled_at")?,
        outcome: row.try_get("outcome")?,
        run_id: row.try_get::<_, Option<uuid::Uuid>>("run_id")?.map(RunId),
        reason: row.try_get("reason")?,
        fired_at: row.try_get("fired_at")?,
    })
}

fn not_found(id: ScheduleId) -> StoreError {
    StoreError::NotFound {
        what: "schedule",
        id: id.to_string(),
    }
}

/// The run a fire of `schedule` starts: its command and budget, bounded as any run.
fn run_of(schedule: &Schedule) -> NewRun {
    use crate::domain::limits;
    NewRun {
        project_id: schedule.project_id,
        user_id: schedule.user_id,
        command: schedule.command.clone(),
        budget: schedule.budget_micro_usd,
        max_concurrency: limits::DEFAULT_CONCURRENCY,
        deadline: Some(std::time::Duration::from_secs(
            u64::from(limits::DEFAULT_DEADLINE_MINUTES) * 60,
        )),
        idempotency: None,
        schedule: Some(schedule.id),
    }
}

#[async_trait]
impl ScheduleStore for PgScheduleStore {
    async fn create(&self, new: &NewSchedule) -> Result<Schedule, StoreError> {
        let client = self.pool.get().await?;
        let f = &new.fields;
        let row = client
            .query_opt_cached(
                &format!(
                    "INSERT INTO schedules (id, project_id, user_id, expression, timezone, command,
                         budget_micro_usd, overlap, catch_up, enabled, next_fire_at, created_at, updated_at, kind)
                     SELECT $1, p.id, p.user_id, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13
                     FROM projects p WHERE p.id = $2 AND p.user_id = $3
                     RETURNING {COLUMNS}"
                ),
                &[
                    &ScheduleId::new().0,
                    &new.project.0,
                    &new.user.0,
                    &f.expression,
                    &f.timezone,
                    &f.command,
                    &f.budget.0,
                    &f.overlap,
                    &f.catch_up,
                    &f.enabled,
                    &f.next_fire_at,
                    &new.created_at,
                    &new.kind,
                ],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "project",
                id: new.project.to_string(),
            })?;
        schedule_from(&row)
    }

    async fn schedule(&self, user: UserId, id: ScheduleId) -> Result<Schedule, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!("SELECT {COLUMNS} FROM schedules WHERE id = $1 AND user_id = $2"),
                &[&id.0, &user.0],
            )
            .await?
            .ok_or_else(|| not_found(id))?;
        schedule_from(&row)
    }

    async fn find(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query_opt_cached(
                &format!("SELECT {COLUMNS} FROM schedules WHERE id = $1"),
                &[&id.0],
            )
            .await?
            .as_ref()
            .map(schedule_from)
            .transpose()
    }

    async fn user_schedules(&self, user: UserId) -> Result<Vec<ScheduleId>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query_cached("SELECT id FROM schedules WHERE user_id = $1", &[&user.0])
            .await?
            .iter()
            .map(|row| Ok(ScheduleId(row.try_get(0)?)))
            .collect()
    }

    async fn project_schedules(
        &self,
        user: UserId,
        project: ProjectId,
    ) -> Result<Vec<Schedule>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query_cached(
                &format!(
                    "SELECT {COLUMNS} FROM schedules WHERE project_id = $1 AND user_id = $2
                     ORDER BY created_at DESC, id DESC"
                ),
                &[&project.0, &user.0],
            )
            .await?
            .iter()
            .map(schedule_from)
            .collect()
    }

    async fn update(
        &self,
        user: UserId,
        id: ScheduleId,
        f: &ScheduleFields,
    ) -> Result<Schedule, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!(
                    "UPDATE schedules SET expression = $3, timezone = $4, command = $5,
                         budget_micro_usd = $6, overlap = $7, catch_up = $8, enabled = $9,
                         next_fire_at = $10, updated_at = now()
                     WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}"
                ),
                &[
                    &id.0,
                    &user.0,
                    &f.expression,
                    &f.timezone,
                    &f.command,
                    &f.budget.0,
                    &f.overlap,
                    &f.catch_up,
                    &f.enabled,
                    &f.next_fire_at,
                ],
            )
            .await?
            .ok_or_else(|| not_found(id))?;
        schedule_from(&row)
    }

    async fn delete(&self, user: UserId, id: ScheduleId) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        match client
            .execute_cached(
                "DELETE FROM schedules WHERE id = $1 AND user_id = $2",
                &[&id.0, &user.0],
            )
            .await?
        {
            0 => Err(not_found(id)),
            _ => Ok(()),
        }
    }

    async fn fires(
        &self,
        user: UserId,
        id: ScheduleId,
        page: Page,
    ) -> Result<Paged<Fire>, StoreError> {
        // Owned, or not there at all.
        self.schedule(user, id).await?;
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT {FIRE_COLUMNS} FROM schedule_fires
                     WHERE schedule_id = $1 AND ($2::timestamptz IS NULL OR scheduled_at < $2)
                     ORDER BY scheduled_at DESC LIMIT $3"
                ),
                &[
                    &id.0,
                    &page.after.map(|c| c.created_at),
                    &(i64::from(page.limit) + 1),
                ],
            )
            .await?;
        let fires = rows.iter().map(fire_from).collect::<Result<Vec<_>, _>>()?;
        // A fire is one per schedule and time: the time alone orders the page.
        Ok(Paged::from_rows(fires, page.limit, |f| Cursor {
            created_at: f.scheduled_at,
            id: f.schedule_id.0,
        }))
    }

    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Schedule>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query_cached(
                &format!(
                    "SELECT {COLUMNS} FROM schedules
                     WHERE enabled AND next_fire_at IS NOT NULL AND next_fire_at <= $1
                     ORDER BY next_fire_at LIMIT $2"
                ),
                &[&now, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(schedule_from)
            .collect()
    }

    async fn fire(
        &self,
        id: ScheduleId,
        (scheduled_at, next): (DateTime<Utc>, Option<DateTime<Utc>>),
        skip: Option<&str>,
    ) -> Result<Fired, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // The schedule's row is the lock two deliveries of a fire meet at.
        let schedule = lock_schedule(&tx, id).await?;
        if let Some(row) = tx
            .query_opt_cached(
                &format!(
                    "SELECT {FIRE_COLUMNS} FROM schedule_fires WHERE schedule_id = $1 AND scheduled_at = $2"
                ),
                &[&id.0, &scheduled_at],
            )
            .await?
        {
            tx.commit().await?;
            return Ok(Fired {
                fire: fire_from(&row)?,
                run: None,
                effects: Effects::default(),
                first: false,
            });
        }
        let going: Option<uuid::Uuid> = tx
            .query_opt_cached(
                "SELECT id FROM runs WHERE schedule_id = $1 AND NOT (status = ANY($2))
                 ORDER BY created_at DESC LIMIT 1",
                &[&id.0, &ended()],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let queued: bool = tx
            .query_one_cached(
                "SELECT EXISTS (SELECT 1 FROM schedule_fires WHERE schedule_id = $1 AND outcome = $2)",
                &[&id.0, &FireOutcome::Queued],
            )
            .await?
            .try_get(0)?;
        let archived: bool = tx
            .query_one_cached(
                "SELECT archived_at IS NOT NULL FROM projects WHERE id = $1",
                &[&schedule.project_id.0],
            )
            .await?
            .try_get(0)?;
        let spent = month_spent(&tx, schedule.user_id).await?;
        let mut effects = Effects::default();
        let (outcome, run, reason) = match (going, schedule.overlap) {
            _ if skip.is_some() => (FireOutcome::Skipped, None, skip.map(str::to_owned)),
            _ if archived => (
                FireOutcome::Skipped,
                None,
                Some("the project is archived: it takes no new runs".to_owned()),
            ),
            _ if spent.is_some() => (FireOutcome::Skipped, None, spent),
            (None, _) => {
                let run = insert_run(&tx, &mut effects, RunId::new(), &run_of(&schedule)).await?;
                (FireOutcome::Started, Some(run), None)
            }
            (Some(run), ScheduleOverlap::Queue) if !queued => (
                FireOutcome::Queued,
                None,
                Some(format!(
                    "run {run} of this schedule is still going; this fire starts when it ends"
                )),
            ),
            (Some(run), ScheduleOverlap::Queue) => (
                FireOutcome::Skipped,
                None,
                Some(format!(
                    "run {run} of this schedule is still going and a fire already waits for it"
                )),
            ),
            (Some(run), ScheduleOverlap::Skip) => (
                FireOutcome::Skipped,
                None,
                Some(format!(
                    "run {run} of this schedule is still going (overlap: skip)"
                )),
            ),
        };
        let row = tx
            .query_one_cached(
                &format!(
                    "INSERT INTO schedule_fires (schedule_id, scheduled_at, outcome, run_id, reason)
                     VALUES ($1, $2, $3, $4, $5) RETURNING {FIRE_COLUMNS}"
                ),
                &[
                    &id.0,
                    &scheduled_at,
                    &outcome,
                    &run.as_ref().map(|r| r.id.0),
                    &reason,
                ],
            )
            .await?;
        tx.execute_cached(
            "UPDATE schedules SET next_fire_at = $2, updated_at = now() WHERE id = $1",
            &[&id.0, &next],
        )
        .await?;
        tx.commit().await?;
        Ok(Fired {
            fire: fire_from(&row)?,
            run,
            effects,
            first: true,
        })
    }

    async fn start_waiting(&self, limit: u32) -> Result<Vec<Fired>, StoreError> {
        let waiting: Vec<(ScheduleId, DateTime<Utc>)> = {
            let client = self.pool.get().await?;
            client
                .query_cached(
                    "SELECT f.schedule_id, f.scheduled_at FROM schedule_fires f
                     WHERE f.outcome = $1 AND NOT EXISTS (
                         SELECT 1 FROM runs r WHERE r.schedule_id = f.schedule_id AND NOT (r.status = ANY($2)))
                     ORDER BY f.scheduled_at LIMIT $3",
                    &[&FireOutcome::Queued, &ended(), &i64::from(limit)],
                )
                .await?
                .iter()
                .map(|r| Ok((ScheduleId(r.try_get(0)?), r.try_get(1)?)))
                .collect::<Result<_, StoreError>>()?
        };
        let mut started = Vec::new();
        for (id, at) in waiting {
            if let Some(fired) = self.start_one(id, at).await? {
                started.push(fired);
            }
        }
        Ok(started)
    }
}

/// Why a fire starts nothing because the user's budget period is spent: its AI budget
/// (revenue share, trial credit and overage cap) has no money left, spent and held. `None`
/// while some is left.
async fn month_spent(
    tx: &deadpool_postgres::Transaction<'_>,
    user: UserId,
) -> Result<Option<String>, StoreError> {
    let row = tx
        .query_one_cached(
            "SELECT p_spent + p_reserved, p_included + p_trial_left + p_overage_cap
             FROM period_standing($1)",
            &[&user.0],
        )
        .await?;
    let used = MicroUsd(row.try_get(0)?);
    let budget = MicroUsd(row.try_get(1)?);
    // A budget of nothing spends nothing (its calls are free or refused one by one): the
    // period is spent once something was and nothing is left.
    Ok((used > MicroUsd::ZERO && budget.remaining_after(used) == MicroUsd::ZERO).then(|| {
        format!(
            "the period's AI budget is spent ({used} of {budget}); fires start runs again next period or on a larger plan"
        )
    }))
}

impl PgScheduleStore {
    /// Starts one waiting fire if its schedule has no run going; `None` when another
    /// process took it or a run is still going.
    async fn start_one(
        &self,
        id: ScheduleId,
        scheduled_at: DateTime<Utc>,
    ) -> Result<Option<Fired>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let schedule = lock_schedule(&tx, id).await?;
        let still: bool = tx
            .query_one_cached(
                "SELECT EXISTS (SELECT 1 FROM schedule_fires
                     WHERE schedule_id = $1 AND scheduled_at = $2 AND outcome = $3)
                 AND NOT EXISTS (SELECT 1 FROM runs WHERE schedule_id = $1 AND NOT (status = ANY($4)))",
                &[&id.0, &scheduled_at, &FireOutcome::Queued, &ended()],
            )
            .await?
            .try_get(0)?;
        if !still {
            return Ok(None);
        }
        let mut effects = Effects::default();
        let run = insert_run(&tx, &mut effects, RunId::new(), &run_of(&schedule)).await?;
        let row = tx
            .query_one_cached(
                &format!(
                    "UPDATE schedule_fires SET outcome = $3, run_id = $4, reason = NULL, fired_at = now()
                     WHERE schedule_id = $1 AND scheduled_at = $2 RETURNING {FIRE_COLUMNS}"
                ),
                &[&id.0, &scheduled_at, &FireOutcome::Started, &run.id.0],
            )
            .await?;
        tx.commit().await?;
        Ok(Some(Fired {
            fire: fire_from(&row)?,
            run: Some(run),
            effects,
            first: true,
        }))
    }
}

/// Schedule `id`, locked for the rest of `tx`.
async fn lock_schedule(
    tx: &deadpool_postgres::Transaction<'_>,
    id: ScheduleId,
) -> Result<Schedule, StoreError> {
    let row = tx
        .query_opt_cached(
            &format!("SELECT {COLUMNS} FROM schedules WHERE id = $1 FOR UPDATE"),
            &[&id.0],
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    schedule_from(&row)
}

/// The statuses of runs that have ended.
fn ended() -> Vec<RunStatus> {
    RunStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.is_terminal())
        .collect()
}
