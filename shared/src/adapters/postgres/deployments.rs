//! `DeploymentStore` on Postgres: the `deployments` table, each change with its
//! `deployment_updated` event in the same transaction.

use super::Pool;
use super::cached::Cached;
use super::effects::{emit, send};
use super::tasks::{expect_running, lock_run_and_task};
use super::transitions;
use crate::domain::connections::Deployment;
use crate::domain::events::EventBody;
use crate::domain::messages::{Outgoing, WatchInput};
use crate::domain::{
    AttemptStatus, DeploymentId, DeploymentStatus, ProjectId, RunId, TaskId, TaskStatus,
};
use crate::ports::{
    Changed, DeploymentChange, DeploymentStore, Effects, JobPark, NewDeployment, StoreError,
};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

#[derive(Clone)]
pub struct PgDeployments {
    pool: Pool,
}

impl PgDeployments {
    pub fn new(pool: Pool) -> Self {
        PgDeployments { pool }
    }
}

pub(super) const COLUMNS: &str = "id, project_id, run_id, task_id, service, kind, status, url, inspect_url, provider_id, error, created_at, updated_at, finished_at, deadline_at";

pub(super) fn from_row(row: &tokio_postgres::Row) -> Result<Deployment, StoreError> {
    Ok(Deployment {
        id: DeploymentId(row.try_get(0)?),
        project_id: ProjectId(row.try_get(1)?),
        run_id: row.try_get::<_, Option<Uuid>>(2)?.map(RunId),
        task_id: row.try_get::<_, Option<Uuid>>(3)?.map(TaskId),
        service: row.try_get(4)?,
        kind: row.try_get(5)?,
        status: row.try_get(6)?,
        url: row.try_get(7)?,
        inspect_url: row.try_get(8)?,
        provider_id: row.try_get(9)?,
        error: row.try_get(10)?,
        created_at: row.try_get(11)?,
        updated_at: row.try_get(12)?,
        finished_at: row.try_get(13)?,
        deadline_at: row.try_get(14)?,
    })
}

/// The deployment `condition` names as it stands (a change that changed nothing).
async fn current(
    client: &impl GenericClient,
    condition: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<Deployment>, StoreError> {
    let row = client
        .query_opt_cached(
            &format!("SELECT {COLUMNS} FROM deployments WHERE {condition}"),
            params,
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The event a change sends: the whole row, as the API lists it.
async fn announce(
    client: &impl GenericClient,
    effects: &mut Effects,
    deployment: &Deployment,
) -> Result<(), StoreError> {
    let event = EventBody::DeploymentUpdated(deployment.clone());
    emit(
        client,
        effects,
        deployment.project_id,
        deployment.run_id,
        event,
    )
    .await
}

#[async_trait]
impl DeploymentStore for PgDeployments {
    async fn record(&self, new: &NewDeployment) -> Result<Changed<Deployment>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut effects = Effects::default();
        let inserted = tx
            .query_opt_cached(
                &format!(
                    "INSERT INTO deployments (id, user_id, project_id, run_id, task_id, service, kind, status, url, inspect_url, provider_id, error, finished_at, call_key, deadline_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, CASE WHEN $13 THEN now() END, $14, $15)
                     ON CONFLICT (service, provider_id) DO NOTHING RETURNING {COLUMNS}"
                ),
                &[
                    &DeploymentId::new().0,
                    &new.user.0,
                    &new.project.0,
                    &new.run.map(|r| r.0),
                    &new.task.map(|t| t.0),
                    &new.service,
                    &new.kind,
                    &new.status,
                    &new.url,
                    &new.inspect_url,
                    &new.provider_id,
                    &new.error,
                    &new.status.is_terminal(),
                    &new.job.as_ref().map(|(key, _)| key),
                    &new.job.as_ref().map(|(_, deadline)| deadline),
                ],
            )
            .await?;
        let deployment = match inserted {
            Some(row) => {
                let deployment = from_row(&row)?;
                announce(&tx, &mut effects, &deployment).await?;
                deployment
            }
            None => current(
                &tx,
                "service = $1 AND provider_id = $2",
                &[&new.service, &new.provider_id],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "deployment",
                id: new.provider_id.clone(),
            })?,
        };
        tx.commit().await?;
        Ok(Changed {
            value: deployment,
            effects,
        })
    }

    async fn update(
        &self,
        id: DeploymentId,
        change: &DeploymentChange,
    ) -> Result<Changed<Deployment>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut effects = Effects::default();
        let terminal = change.status.is_some_and(|s| s.is_terminal());
        let changed = tx
            .query_opt_cached(
                &format!(
                    "UPDATE deployments d SET status = coalesce($2, d.status), url = coalesce($3, d.url),
                        inspect_url = coalesce($4, d.inspect_url), provider_id = coalesce($5, d.provider_id),
                        error = coalesce($6, d.error), updated_at = now(),
                        finished_at = CASE WHEN $7 THEN now() END
                     WHERE d.id = $1 AND d.finished_at IS NULL
                       AND (d.status IS DISTINCT FROM coalesce($2, d.status)
                            OR d.url IS DISTINCT FROM coalesce($3, d.url)
                            OR d.inspect_url IS DISTINCT FROM coalesce($4, d.inspect_url)
                            OR d.provider_id IS DISTINCT FROM coalesce($5, d.provider_id)
                            OR d.error IS DISTINCT FROM coalesce($6, d.error))
                     RETURNING {COLUMNS}"
                ),
                &[
                    &id.0,
                    &change.status,
                    &change.url,
                    &change.inspect_url,
                    &change.provider_id,
                    &change.error,
                    &terminal,
                ],
            )
            .await?;
        let deployment =
            match changed {
                Some(row) => {
                    let deployment = from_row(&row)?;
                    announce(&tx, &mut effects, &deployment).await?;
                    deployment
                }
                None => current(&tx, "id = $1", &[&id.0]).await?.ok_or_else(|| {
                    StoreError::NotFound {
                        what: "deployment",
                        id: id.to_string(),
                    }
                })?,
            };
        tx.commit().await?;
        Ok(Changed {
            value: deployment,
            effects,
        })
    }

    async fn project_deployments(&self, project: ProjectId) -> Result<Vec<Deployment>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!("SELECT {COLUMNS} FROM deployments WHERE project_id = $1 ORDER BY created_at DESC, id LIMIT 100"),
                &[&project.0],
            )
            .await?;
        rows.iter().map(from_row).collect()
    }

    async fn job(&self, call_key: &str) -> Result<Vec<Deployment>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!("SELECT {COLUMNS} FROM deployments WHERE call_key = $1 ORDER BY created_at, kind"),
                &[&call_key],
            )
            .await?;
        rows.iter().map(from_row).collect()
    }

    async fn park_for_job(&self, park: &JobPark<'_>) -> Result<Changed<()>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let locked = lock_run_and_task(&tx, park.task).await?;
        expect_running(&locked, park.attempt)?;
        let mut effects = Effects::default();
        tx.execute_cached(
            "UPDATE tasks SET status = $2, checkpoint = $3 WHERE id = $1",
            &[&park.task.0, &TaskStatus::AwaitingJob, park.checkpoint],
        )
        .await?;
        transitions::finish_attempt(&tx, park.task, park.attempt, AttemptStatus::Parked, None)
            .await?;
        super::budgets::release_held(&tx, "b.task_id = $2", &park.task.0).await?;
        // One watch per job: its name is the call's key (already unique and short).
        let watch = Outgoing::StartWatch {
            name: format!("job-{}", park.call_key),
            input: WatchInput {
                call_key: park.call_key.to_owned(),
                task_id: park.task,
                poll_secs: park.poll_secs,
            },
        };
        send(&tx, &mut effects, Some(locked.run_id), watch).await?;
        // The parked task no longer counts as in flight: others may start.
        transitions::dispatch(&tx, &mut effects, locked.run_id).await?;
        tx.commit().await?;
        Ok(Changed { value: (), effects })
    }

    async fn job_ended(&self, call_key: &str) -> Result<Changed<()>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut effects = Effects::default();
        resume_parked(&tx, &mut effects, call_key).await?;
        tx.commit().await?;
        Ok(Changed { value: (), effects })
    }

    async fn end_abandoned_jobs(
        &self,
        margin: std::time::Duration,
        limit: u32,
    ) -> Result<Changed<usize>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut effects = Effects::default();
        let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::minutes(10));
        let abandoned = tx
            .query_cached(
                "SELECT DISTINCT d.call_key FROM deployments d JOIN tasks t ON t.id = d.task_id
                 WHERE d.call_key IS NOT NULL AND d.finished_at IS NULL AND d.deadline_at < $1
                   AND t.status = $2
                 LIMIT $3",
                &[
                    &(chrono::Utc::now() - margin),
                    &TaskStatus::AwaitingJob,
                    &i64::from(limit),
                ],
            )
            .await?;
        for row in &abandoned {
            let call_key: String = row.try_get(0)?;
            let ended = tx
                .query_cached(
                    &format!(
                        "UPDATE deployments SET status = $2, updated_at = now(), finished_at = now(),
                            error = 'timed out: nothing ended it by its deadline (its watch stopped); Autocrew stopped waiting for it'
                         WHERE call_key = $1 AND finished_at IS NULL RETURNING {COLUMNS}"
                    ),
                    &[&call_key, &DeploymentStatus::TimedOut],
                )
                .await?;
            for row in &ended {
                announce(&tx, &mut effects, &from_row(row)?).await?;
            }
            resume_parked(&tx, &mut effects, &call_key).await?;
        }
        tx.commit().await?;
        Ok(Changed {
            value: abandoned.len(),
            effects,
        })
    }
}

/// The task parked on the job `call_key` is ready again (with one more attempt: the parked
/// one did not fail) and dispatched; a task that moved on meanwhile is left alone.
async fn resume_parked(
    tx: &deadpool_postgres::Transaction<'_>,
    effects: &mut Effects,
    call_key: &str,
) -> Result<(), StoreError> {
    let task: Option<Uuid> = tx
        .query_opt_cached(
            "SELECT task_id FROM deployments WHERE call_key = $1 AND task_id IS NOT NULL LIMIT 1",
            &[&call_key],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    let Some(task) = task else {
        return Ok(());
    };
    let locked = lock_run_and_task(tx, TaskId(task)).await?;
    if locked.status == TaskStatus::AwaitingJob {
        tx.execute_cached(
            "UPDATE tasks SET status = $2, max_attempts = max_attempts + 1 WHERE id = $1",
            &[&task, &TaskStatus::Ready],
        )
        .await?;
        transitions::dispatch(tx, effects, locked.run_id).await?;
    }
    Ok(())
}
