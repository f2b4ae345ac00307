//! Rate limits: counters shared by every function instance, counted atomically per bucket
//! and minute, so that under any concurrency exactly the limit passes.

use super::StoreError;
use async_trait::async_trait;

/// A bucket a request counts against: `key` names it (`user:<id>`, `ip:<addr>`, ...),
/// `limit` is how many requests it lets through a minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub key: String,
    pub limit: u32,
    /// The policy's name in the `RateLimit` headers (`user`, `ip`, `signup`, ...).
    pub policy: &'static str,
}

/// What a request's count says: the tightest bucket's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub policy: &'static str,
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the minute ends and the count starts again.
    pub reset_secs: u32,
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request against every bucket (refused requests count too) and says
    /// whether all of them still allow it.
    async fn hit(&self, buckets: &[Bucket]) -> Result<Standing, StoreError>;
    /// Forgets counts of minutes that have ended; returns how many rows went.
    async fn prune(&self) -> Result<u64, StoreError>;
}
