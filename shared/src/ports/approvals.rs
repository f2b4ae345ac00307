//! Approvals: a critical tool call parks its task until a person decides, bound to the
//! exact payload. The wait holds no worker: the task is `awaiting_approval` and a decision
//! (or the expiry) makes it ready again.

use super::outbox::Effects;
use super::store::{Changed, StoreError};
use crate::domain::approvals::{ActionRequest, Approval, Decision};
use crate::domain::{ApprovalId, RunId, TaskId, UserId};
use async_trait::async_trait;

/// The approvals table, and the task transitions around a decision.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Parks running `attempt` of `task` at a critical call, in one transaction: the
    /// attempt ends `parked`, the task keeps `checkpoint` and waits as `awaiting_approval`,
    /// what it held of the budget is released, and `approval_requested` goes out. The call
    /// asked again (a resumed run reaching it) keeps its one approval: still pending, it
    /// is announced again; decided, it is returned as it is and nothing parks.
    async fn request(
        &self,
        task: TaskId,
        attempt: u32,
        checkpoint: &serde_json::Value,
        action: &ActionRequest,
    ) -> Result<Changed<Approval>, StoreError>;

    /// The approval of one tool call (its idempotency key), if one was asked.
    async fn for_call(&self, task: TaskId, call_key: &str) -> Result<Option<Approval>, StoreError>;

    /// The run's approvals, oldest first.
    async fn run_approvals(&self, run: RunId) -> Result<Vec<Approval>, StoreError>;

    /// The approval, if it belongs to one of `user`'s projects; `NotFound` otherwise.
    async fn approval(&self, id: ApprovalId, user: UserId) -> Result<Approval, StoreError>;

    /// Decides for `user`, who quotes the hash of the payload they were shown. Refused
    /// (`Conflict`, nothing changes) when the hash differs, the approval is decided or past
    /// its expiry (it is then expired), or its run is not running. The parked task becomes
    /// ready and is dispatched in the same transaction; `approval_decided` goes out.
    async fn decide(
        &self,
        id: ApprovalId,
        user: UserId,
        decision: Decision,
        payload_hash: &str,
        reason: Option<&str>,
    ) -> Result<Changed<Approval>, StoreError>;

    /// Expires up to `limit` pending approvals past their expiry, each in its own
    /// transaction as a decision would: the parked task resumes and is told the action was
    /// not approved. Returns how many expired.
    async fn expire_due(&self, limit: u32) -> Result<Changed<usize>, StoreError>;

    /// Records that the approved action ran and what it returned, and completes its call's
    /// idempotency key, once: a second record changes nothing and returns no effects.
    async fn executed(
        &self,
        id: ApprovalId,
        result: &serde_json::Value,
    ) -> Result<Effects, StoreError>;
}
