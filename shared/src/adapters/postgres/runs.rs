//! Runs.

use super::Pool;
use super::rows::count;
use crate::domain::records::{NewRun, Run};
use crate::domain::{MicroUsd, ProjectId, RunId, RunStatus, UserId};
use crate::ports::{RunStore, StoreError};
use async_trait::async_trait;
use tokio_postgres::Row;

const RUN_COLUMNS: &str = "id, project_id, user_id, command, status, execution_name, execution_arn, execute_token, plan, \
     budget_micro_usd, reserved_micro_usd, spent_micro_usd, max_concurrency, error, created_at, started_at, completed_at";

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

fn run_from_row(row: &Row) -> Result<Run, StoreError> {
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
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

fn not_found(id: RunId) -> StoreError {
    StoreError::NotFound {
        what: "run",
        id: id.to_string(),
    }
}

fn terminal_statuses() -> Vec<RunStatus> {
    RunStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.is_terminal())
        .collect()
}

#[async_trait]
impl RunStore for PgRunStore {
    async fn create_run(&self, new: NewRun) -> Result<Run, StoreError> {
        let client = self.pool.get().await?;
        let id = RunId::new();
        // Step Functions names allow 80 characters of [A-Za-z0-9-_]: "run-" + a UUID fits.
        let execution_name = format!("run-{id}");
        let max_concurrency = i32::try_from(new.max_concurrency.max(1)).unwrap_or(i32::MAX);
        let sql = format!(
            "INSERT INTO runs (id, project_id, user_id, command, status, execution_name, budget_micro_usd, max_concurrency)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {RUN_COLUMNS}"
        );
        let row = client
            .query_one(
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
                ],
            )
            .await?;
        run_from_row(&row)
    }

    async fn run(&self, id: RunId) -> Result<Run, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
                &[&id.0],
            )
            .await?
            .ok_or_else(|| not_found(id))?;
        run_from_row(&row)
    }

    async fn set_execution_arn(&self, id: RunId, arn: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        match client
            .execute(
                "UPDATE runs SET execution_arn = $2 WHERE id = $1",
                &[&id.0, &arn],
            )
            .await?
        {
            0 => Err(not_found(id)),
            _ => Ok(()),
        }
    }

    async fn set_execute_token(&self, id: RunId, token: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        match client
            .execute(
                "UPDATE runs SET execute_token = $2 WHERE id = $1",
                &[&id.0, &token],
            )
            .await?
        {
            0 => Err(not_found(id)),
            _ => Ok(()),
        }
    }

    async fn record_plan(&self, id: RunId, plan: &serde_json::Value) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        match client
            .execute("UPDATE runs SET plan = $2 WHERE id = $1", &[&id.0, plan])
            .await?
        {
            0 => Err(not_found(id)),
            _ => Ok(()),
        }
    }

    async fn set_status(
        &self,
        id: RunId,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<Run, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let current: RunStatus = tx
            .query_opt("SELECT status FROM runs WHERE id = $1 FOR UPDATE", &[&id.0])
            .await?
            .ok_or_else(|| not_found(id))?
            .try_get(0)?;
        if current.is_terminal() {
            return Err(StoreError::RunEnded {
                run: id,
                status: current,
            });
        }
        let sql = format!(
            "UPDATE runs SET status = $2::run_status,
                 error = coalesce($3, error),
                 started_at = CASE WHEN $2::run_status = $4::run_status THEN coalesce(started_at, now()) ELSE started_at END,
                 completed_at = CASE WHEN $2::run_status = ANY($5::run_status[]) THEN now() ELSE completed_at END
             WHERE id = $1 RETURNING {RUN_COLUMNS}"
        );
        let row = tx
            .query_one(
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
        tx.commit().await?;
        run_from_row(&row)
    }
}
