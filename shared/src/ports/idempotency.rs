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
    async fn complete(
        &self,
        scope: &str,
        key: &str,
        result: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// Forgets completed keys claimed more than `days` ago; returns how many.
    async fn prune_completed(&self, days: u32) -> Result<u64, StoreError>;
}
