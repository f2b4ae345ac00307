//! Runs.

use super::Pool;
use super::cached::Cached;
use super::effects::{emit, send};
use super::rows::count;
use crate::domain::events::{EventBody, RunCreated};
use crate::domain::messages::{CallbackMessage, ExecutionInput, Outgoing, as_json};
use crate::domain::records::{NewRun, Run};
use crate::domain::{MicroUsd, ProjectId, RunId, RunStatus, ScheduleId, UserId};
use crate::ports::{Changed, Effects, PlanLease, RunStore, StoreError};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use std::time::Duration;
use tokio_postgres::Row;

pub(super) const RUN_COLUMNS: &str = "id, project_id, user_id, command, status, execution_name, execution_arn, execute_token, plan, \
     budget_micro_usd, reserved_micro_usd, spent_micro_usd, max_concurrency, error, deadline_at, executions, \
     created_at, started_at, completed_at, schedule_id";

/// `RunStore` on Postgres.
#[derive(Clone)]
pub struct PgRunStore {
    pool: Pool,
}

impl PgRunStore {
    pub fn new(pool: Pool) -> Self {
        PgRunStore { pool }
    }
}

pub(super) fn run_from_row(row: &Row) -> Result<Run, StoreError> {
    Ok(Run {
        id: RunId(row.try_get("id")?),
        project_id: ProjectId(row.try_get("project_id")?),
        user_id: UserId(row.try_get("user_id")?),
        command: row.try_get("command")?,
        status: row.try_get("status")?,
        execution_name: row.try_get("execution_name")?,
        execution_arn: row.try_get("execution_arn")?,
        execute_token: row.try_get("execute_token")?,
        plan: row.try_get("plan")?,
        budget: MicroUsd(row.try_get("budget_micro_usd")?),
        reserved: MicroUsd(row.try_get("reserved_micro_usd")?),
        spent: MicroUsd(row.try_get("spent_micro_usd")?),
        max_concurrency: count(row, "max_concurrency")?,
        error: row.try_get("error")?,
        deadline_at: row.try_get("deadline_at")?,
        executions: count(row, "executions")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
        schedule_id: row
            .try_get::<_, Option<uuid::Uuid>>("schedule_id")?
            .map(ScheduleId),
    })
}

pub(super) fn not_found(id: RunId) -> StoreError {
    StoreError::NotFound {
        what: "run",
        id: id.to_string(),
    }
}

pub(super) fn terminal_statuses() -> Vec<RunStatus> {
    RunStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.is_terminal())
        .collect()
}

/// The run, read on `client` (a transaction of the caller's, or not).
pub(super) async fn run_in(client: &impl GenericClient, id: RunId) -> Result<Run, StoreError> {
    let row = client
        .query_opt_cached(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
            &[&id.0],
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    run_from_row(&row)
}

/// The run, locked for the rest of the transaction.
pub(super) async fn lock_run(client: &impl GenericClient, id: RunId) -> Result<Run, StoreError> {
    let row = client
        .query_opt_cached(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1 FOR NO KEY UPDATE"),
            &[&id.0],
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    run_from_row(&row)
}

/// Sets a run's status (stamping `started_at` when it starts running and `completed_at`
/// when it ends) and returns the row.
pub(super) async fn update_status(
    client: &impl GenericClient,
    id: RunId,
    status: RunStatus,
    error: Option<&str>,
) -> Result<Run, StoreError> {
    let sql = format!(
        "UPDATE runs SET status = $2::run_status,
             error = coalesce($3, error),
             started_at = CASE WHEN $2::run_status = $4::run_status THEN coalesce(started_at, now()) ELSE started_at END,
             completed_at = CASE WHEN $2::run_status = ANY($5::run_status[]) THEN now() ELSE completed_at END
         WHERE id = $1 RETURNING {RUN_COLUMNS}"
    );
    let row = client
        .query_one_cached(
            &sql,
            &[
                &id.0,
                &status,
                &error,
                &RunStatus::Running,
                &terminal_statuses(),
            ],
        )
        .await?;
    run_from_row(&row)
}

/// What a command's idempotency key holds: the run it created, and the request's hash.
#[derive(serde::Serialize, serde::Deserialize)]
struct CommandClaim {
    run_id: RunId,
    request_sha256: String,
}

/// Inserts run `id` as `new` asks (pending, under its own execution name), appends its
/// `run_created` event and writes the start of its execution to the outbox, in `tx`.
pub(super) async fn insert_run(
    tx: &deadpool_postgres::Transaction<'_>,
    effects: &mut Effects,
    id: RunId,
    new: &NewRun,
) -> Result<Run, StoreError> {
    // Step Functions names allow 80 characters of [A-Za-z0-9-_]: "run-" + a UUID fits.
    let execution_name = format!("run-{id}");
    let max_concurrency = i32::try_from(new.max_concurrency.max(1)).unwrap_or(i32::MAX);
    let deadline_secs = new.deadline.map(|d| d.as_secs_f64());
    let sql = format!(
        "INSERT INTO runs (id, project_id, user_id, command, status, execution_name, budget_micro_usd, max_concurrency, deadline_at, schedule_id, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9), $10, $11) RETURNING {RUN_COLUMNS}"
    );
    let row = tx
        .query_one_cached(
            &sql,
            &[
                &id.0,
                &new.project_id.0,
                &new.user_id.0,
                &new.command,
                &RunStatus::Pending,
                &execution_name,
                &new.budget.0,
                &max_concurrency,
                &deadline_secs,
                &new.schedule.map(|s| s.0),
                &crate::telemetry::current().map(|c| c.traceparent()),
            ],
        )
        .await?;
    let run = run_from_row(&row)?;
    let event = EventBody::RunCreated(RunCreated {
        command: run.command.clone(),
        deadline_at: run.deadline_at,
    });
    emit(tx, effects, run.project_id, Some(run.id), event).await?;
    let start = Outgoing::StartExecution {
        run_id: run.id,
        name: execution_name,
        input: ExecutionInput { run_id: run.id },
    };
    send(tx, effects, Some(run.id), start).await?;
    Ok(run)
}

#[async_trait]
impl RunStore for PgRunStore {
    async fn create_run(&self, new: NewRun) -> Result<Changed<Run>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let id = RunId::new();
        if let Some(request) = &new.idempotency {
            // A concurrent request with the same key waits here for the first to commit.
            let scope = format!("command:{}", new.user_id);
            let result = as_json(&CommandClaim {
                run_id: id,
                request_sha256: request.request_sha256.clone(),
            });
            let claimed = tx
                .execute_cached(
                    "INSERT INTO idempotency_keys (scope, key, result, completed_at)
                     VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING",
                    &[&scope, &request.key, &result],
                )
                .await?;
            if claimed == 0 {
                let stored: serde_json::Value = tx
                    .query_one_cached(
                        "SELECT result FROM idempotency_keys WHERE scope = $1 AND key = $2",
                        &[&scope, &request.key],
                    )
                    .await?
                    .try_get(0)?;
                let earlier = serde_json::from_value::<CommandClaim>(stored)
                    .map_err(|e| StoreError::Backend(Box::new(e)))?;
                if earlier.request_sha256 != request.request_sha256 {
                    return Err(StoreError::IdempotencyMismatch {
                        key: request.key.clone(),
                    });
                }
                let run = lock_run(&tx, earlier.run_id).await?;
                tx.commit().await?;
                return Ok(Changed {
                    value: run,
                    effects: Effects::default(),
                });
            }
        }
        let mut effects = Effects::default();
        let run = insert_run(&tx, &mut effects, id, &new).await?;
        tx.commit().await?;
        Ok(Changed {
            value: run,
            effects,
        })
    }

    async fn run(&self, id: RunId) -> Result<Run, StoreError> {
        let client = self.pool.get().await?;
        run_in(&client, id).await
    }

    async fn traceparent(&self, id: RunId) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached("SELECT traceparent FROM runs WHERE id = $1", &[&id.0])
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.flatten())
    }

    async fn request_revision(
        &self,
        run: RunId,
        reason: &str,
    ) -> Result<Changed<bool>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (asked, effects) = super::revisions::request(&tx, run, reason).await?;
        tx.commit().await?;
        Ok(Changed {
            value: asked,
            effects,
        })
    }

    async fn set_execution_arn(&self, id: RunId, arn: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        match client
            .execute_cached(
                "UPDATE runs SET execution_arn = $2 WHERE id = $1",
                &[&id.0, &arn],
            )
            .await?
        {
            0 => Err(not_found(id)),
            _ => Ok(()),
        }
    }

    async fn begin_planning(
        &self,
        id: RunId,
        token: &str,
        stale_after: Duration,
    ) -> Result<PlanLease, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt_cached(
                "SELECT status, heartbeat_at IS NULL OR heartbeat_at < now() - make_interval(secs => $2)
                 FROM runs WHERE id = $1 FOR NO KEY UPDATE",
                &[&id.0, &stale_after.as_secs_f64()],
            )
            .await?
            .ok_or_else(|| not_found(id))?;
        let status: RunStatus = row.try_get(0)?;
        let stale: bool = row.try_get(1)?;
        let lease = match status {
            RunStatus::Pending => true,
            RunStatus::Planning => stale,
            _ => {
                let run = lock_run(&tx, id).await?;
                tx.commit().await?;
                return Ok(PlanLease::Done(run));
            }
        };
        if !lease {
            tx.commit().await?;
            return Ok(PlanLease::Busy);
        }
        let row = tx
            .query_one_cached(
                &format!(
                    "UPDATE runs SET status = $2, plan_token = $3, heartbeat_at = now() WHERE id = $1
                     RETURNING {RUN_COLUMNS}"
                ),
                &[&id.0, &RunStatus::Planning, &token],
            )
            .await?;
        tx.commit().await?;
        Ok(PlanLease::Granted(run_from_row(&row)?))
    }

    async fn plan_heartbeat(&self, id: RunId) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached("UPDATE runs SET heartbeat_at = now() WHERE id = $1 AND status = $2")
            .await?;
        Ok(client
            .execute(&statement, &[&id.0, &RunStatus::Planning])
            .await?
            == 1)
    }

    async fn replan_stale(&self, age: Duration, limit: u32) -> Result<Effects, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Pushing the heartbeat forward keeps the next pass from sending it again while
        // the new planner starts.
        let rows = tx
            .query_cached(
                "UPDATE runs SET heartbeat_at = now() WHERE id IN (
                     SELECT id FROM runs WHERE status = $1 AND plan_token IS NOT NULL
                       AND heartbeat_at < now() - make_interval(secs => $2)
                     ORDER BY heartbeat_at LIMIT $3 FOR NO KEY UPDATE SKIP LOCKED)
                 RETURNING id, plan_token",
                &[&RunStatus::Planning, &age.as_secs_f64(), &i64::from(limit)],
            )
            .await?;
        let mut effects = Effects::default();
        for row in rows {
            let run = RunId(row.try_get(0)?);
            let token: String = row.try_get(1)?;
            let message = CallbackMessage {
                revise: None,
                run_id: run,
                task_token: token,
                outcome: None,
                error: None,
            };
            tracing::warn!(run = %run, "the planner stopped sending heartbeats; planning again");
            super::budgets::release_held(&tx, "b.run_id = $2 AND b.task_id IS NULL", &run.0)
                .await?;
            send(&tx, &mut effects, Some(run), Outgoing::Replan { message }).await?;
        }
        tx.commit().await?;
        Ok(effects)
    }

    async fn set_status(
        &self,
        id: RunId,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<Run, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let current = lock_run(&tx, id).await?.status;
        if current.is_terminal() {
            return Err(StoreError::RunEnded {
                run: id,
                status: current,
            });
        }
        let run = update_status(&tx, id, status, error).await?;
        tx.commit().await?;
        Ok(run)
    }

    async fn end_run(
        &self,
        id: RunId,
        status: RunStatus,
        error: Option<&str>,
        event: EventBody,
        answer: Outgoing,
    ) -> Result<Effects, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let run = lock_run(&tx, id).await?;
        let mut effects = Effects::default();
        if !run.status.is_terminal() {
            update_status(&tx, id, status, error).await?;
            // The run is over, and so is every call of it.
            super::budgets::release_held(&tx, "b.run_id = $2", &id.0).await?;
            emit(&tx, &mut effects, run.project_id, Some(id), event).await?;
        }
        send(&tx, &mut effects, Some(id), answer).await?;
        tx.commit().await?;
        Ok(effects)
    }
}
