//! Approvals: a critical tool call waits for a person, bound to the exact payload.

use super::store::StoreError;
use crate::domain::{ProjectId, RunId};
use async_trait::async_trait;
use uuid::Uuid;

/// An approval that passed its expiry undecided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredApproval {
    pub id: Uuid,
    pub project_id: ProjectId,
    pub run_id: RunId,
    /// The waiting step's token, to be failed with `ApprovalExpired`.
    pub task_token: Option<String>,
}

/// The approvals table.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Marks every pending approval past its expiry as expired, once, and returns them.
    async fn expire_due(&self) -> Result<Vec<ExpiredApproval>, StoreError>;
}
