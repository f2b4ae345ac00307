//! Hard budgets: reserve a call's worst-case cost first, settle the actual cost after.

use super::store::StoreError;
use crate::domain::{MicroUsd, RunId, RunStatus, TaskId, UserId};
use async_trait::async_trait;
use uuid::Uuid;

/// Money set aside for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub id: Uuid,
    pub amount: MicroUsd,
}

/// Which budget a refusal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetScope {
    Run,
    UserMonth,
}

/// Why money could not be reserved.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The stable name steps fail with: `budget_exceeded`.
    #[error("budget_exceeded: {needed} needed, {available} left of the {scope:?} budget")]
    Exceeded {
        scope: BudgetScope,
        needed: MicroUsd,
        available: MicroUsd,
    },
    /// The run has ended (cancelled, failed, succeeded): it spends nothing more.
    #[error("run_ended: run {run} is {status}")]
    RunEnded { run: RunId, status: RunStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reservations against the run's budget and the user's monthly AI budget.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// Reserves `amount` against both budgets at once, or neither, for a call of `task` of
    /// `run` (the task's reservations are released if its attempt is presumed dead).
    async fn reserve(
        &self,
        user: UserId,
        holder: (Option<RunId>, Option<TaskId>),
        amount: MicroUsd,
    ) -> Result<Reservation, BudgetError>;
    /// Releases held reservations older than `age` (no call lasts that long: their holder
    /// died); returns how many.
    async fn release_expired(&self, age: std::time::Duration) -> Result<u64, StoreError>;
    /// The smaller share, in whole percent, of the run's budget and the user's monthly AI
    /// budget that is neither spent nor reserved (0 when a budget is zero). Routing steps
    /// down to cheaper models as it falls.
    async fn percent_left(&self, user: UserId, run: Option<RunId>) -> Result<u8, StoreError>;
    /// Releases the reservation and records `actual` as spent. Settling twice is a no-op; a
    /// reservation released meanwhile (its holder presumed dead) still records `actual`.
    async fn settle(&self, reservation: Uuid, actual: MicroUsd) -> Result<(), StoreError>;
}
