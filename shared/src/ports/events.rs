//! The per-project event log that feeds live updates and reconnects.

use super::store::StoreError;
use crate::domain::events::{Event, EventBody};
use crate::domain::{ProjectId, RunId, UserId};
use async_trait::async_trait;

/// Append-only, per project, with a strictly increasing sequence and no gaps: a client that
/// reconnects with its last sequence gets exactly the events it missed.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends one event and returns it with its sequence number. A run's event gets the
    /// run's tokens and cost so far added to its payload (`tokens`, `cost_micro_usd`).
    async fn append(
        &self,
        project: ProjectId,
        run: Option<RunId>,
        body: EventBody,
    ) -> Result<Event, StoreError>;
    /// Events of `project` with `seq > after`, in order, at most `limit`.
    async fn since(
        &self,
        project: ProjectId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;
    /// `since`, and the owner check, in one statement: `None` when `project` is not
    /// `user`'s.
    async fn owned_since(
        &self,
        user: UserId,
        project: ProjectId,
        after: i64,
        limit: u32,
    ) -> Result<Option<Vec<Event>>, StoreError>;
}
