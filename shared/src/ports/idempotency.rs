//! Idempotency claims for at-least-once delivery.

use super::store::StoreError;
use async_trait::async_trait;

/// The state of an idempotency key when claimed.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First claim: go ahead with the side effect, then `complete`.
    New,
    /// Claimed before and not completed: an earlier delivery may still be working.
    InProgress,
    /// Done before: here is the stored result; do not repeat the side effect.
    Done(serde_json::Value),
}

/// Claims a key before a side effect so a retry never repeats it.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn claim(&self, scope: &str, key: &str) -> Result<Claim, StoreError>;
    /// `claim`, except that a claim still in progress after `stale_after` (its holder
    /// died) is taken over: `New` again.
    async fn claim_or_take_over(
        &self,
        scope: &str,
        key: &str,
        stale_after: std::time::Duration,
    ) -> Result<Claim, StoreError>;
    /// Gives up a claim not completed (the work failed and may be tried again).
    async fn abandon(&self, scope: &str, key: &str) -> Result<(), StoreError>;
    async fn complete(
        &self,
        scope: &str,
        key: &str,
        result: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// Forgets completed keys claimed more than `days` ago; returns how many.
    async fn prune_completed(&self, days: u32) -> Result<u64, StoreError>;
}
