//! The approvals table.

use super::Pool;
use crate::domain::{ApprovalStatus, ProjectId, RunId};
use crate::ports::{ApprovalStore, ExpiredApproval, StoreError};
use async_trait::async_trait;

/// `ApprovalStore` on Postgres.
#[derive(Clone)]
pub struct PgApprovalStore {
    pool: Pool,
}

impl PgApprovalStore {
    pub fn new(pool: Pool) -> Self {
        PgApprovalStore { pool }
    }
}

#[async_trait]
impl ApprovalStore for PgApprovalStore {
    async fn expire_due(&self) -> Result<Vec<ExpiredApproval>, StoreError> {
        let client = self.pool.get().await?;
        // One statement: a sweep running twice at once expires each approval once.
        let rows = client
            .query(
                "UPDATE approvals SET status = $1, decided_at = now(), reason = 'expired before a decision'
                 WHERE status = $2 AND expires_at <= now()
                 RETURNING id, project_id, run_id, task_token",
                &[&ApprovalStatus::Expired, &ApprovalStatus::Pending],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ExpiredApproval {
                    id: row.try_get(0)?,
                    project_id: ProjectId(row.try_get(1)?),
                    run_id: RunId(row.try_get(2)?),
                    task_token: row.try_get(3)?,
                })
            })
            .collect()
    }
}
