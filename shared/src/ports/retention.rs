//! Keeping storage bounded: the retention policy, applied in batches.

use super::store::StoreError;
use crate::domain::retention::{RetentionPolicy, RetentionReport};
use async_trait::async_trait;

/// Applies the retention policy.
#[async_trait]
pub trait Retention: Send + Sync {
    /// One bounded pass: at most `policy.batch` rows of each kind.
    async fn apply(&self, policy: &RetentionPolicy) -> Result<RetentionReport, StoreError>;
}
