//! Steering runs: cancel, resume, retry a task, and the deadline.

use super::Effects;
use super::store::{Changed, StoreError};
use crate::domain::records::{Run, Task};
use crate::domain::{MicroUsd, RunId, TaskId};
use async_trait::async_trait;

/// Run control. Every change is one transaction with its events and outbox messages.
/// A request that does not fit the run's state is a `Conflict` (or `RunEnded`) saying why,
/// and changes nothing.
#[async_trait]
pub trait RunControl: Send + Sync {
    /// Cancels a run that has not ended: every open task is `cancelled` (a running attempt
    /// notices at its next heartbeat, model turn or tool call), nothing more is dispatched,
    /// the execution is stopped and `run_cancelled` goes out.
    async fn cancel(&self, run: RunId, reason: &str) -> Result<Changed<Run>, StoreError>;
    /// Resumes a failed or cancelled run from where it stopped, in a new execution:
    /// completed tasks stay completed; failed, blocked and cancelled ones start again with
    /// fresh attempts. `budget` raises the run's budget (never below what it spent).
    async fn resume(
        &self,
        run: RunId,
        budget: Option<MicroUsd>,
    ) -> Result<Changed<Run>, StoreError>;
    /// Starts one failed task again, with the tasks it blocked; a run that ended because
    /// of it gets a new execution.
    async fn retry_task(&self, task: TaskId) -> Result<Changed<Task>, StoreError>;
    /// Fails, with a clear error, up to `limit` open runs past their deadline.
    async fn fail_overdue(&self, limit: u32) -> Result<Effects, StoreError>;
}
