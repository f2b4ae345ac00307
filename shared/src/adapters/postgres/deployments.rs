//! `DeploymentStore` on Postgres: the `deployments` table, each change with its
//! `deployment_updated` event in the same transaction.

use super::Pool;
use super::cached::Cached;
use super::effects::emit;
use crate::domain::connections::Deployment;
use crate::domain::{DeploymentId, DeploymentStatus, EventKind, ProjectId, RunId, TaskId};
use crate::ports::{Changed, DeploymentStore, Effects, NewDeployment, StoreError};
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

const COLUMNS: &str = "id, project_id, run_id, task_id, service, kind, status, url, inspect_url, provider_id, error, created_at, updated_at, finished_at";

fn from_row(row: &tokio_postgres::Row) -> Result<Deployment, StoreError> {
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
    let payload = serde_json::to_value(deployment).map_err(|e| StoreError::Backend(Box::new(e)))?;
    emit(
        client,
        effects,
        deployment.project_id,
        deployment.run_id,
        EventKind::DeploymentUpdated,
        payload,
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
                    "INSERT INTO deployments (id, user_id, project_id, run_id, task_id, service, kind, status, url, inspect_url, provider_id, error, finished_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, CASE WHEN $13 THEN now() END)
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
        status: DeploymentStatus,
        (url, error): (Option<&str>, Option<&str>),
    ) -> Result<Changed<Deployment>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut effects = Effects::default();
        let changed = tx
            .query_opt_cached(
                &format!(
                    "UPDATE deployments SET status = $2, url = coalesce($3, url), error = coalesce($4, error),
                        updated_at = now(), finished_at = CASE WHEN $5 THEN now() END
                     WHERE id = $1 AND finished_at IS NULL AND (status <> $2 OR $3::text IS DISTINCT FROM url)
                     RETURNING {COLUMNS}"
                ),
                &[&id.0, &status, &url, &error, &status.is_terminal()],
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
}
