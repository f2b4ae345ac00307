//! `RateLimiter` on Postgres: one upsert a request counts it in every bucket at once.

use super::Pool;
use super::cached::Cached;
use crate::ports::{Bucket, RateLimiter, Standing, StoreError};
use async_trait::async_trait;

/// `RateLimiter` on Postgres (`rate_counters`).
#[derive(Clone)]
pub struct PgRateLimiter {
    pool: Pool,
}

impl PgRateLimiter {
    pub fn new(pool: Pool) -> Self {
        PgRateLimiter { pool }
    }
}

#[async_trait]
impl RateLimiter for PgRateLimiter {
    async fn hit(&self, buckets: &[Bucket]) -> Result<Standing, StoreError> {
        let keys: Vec<&str> = buckets.iter().map(|b| b.key.as_str()).collect();
        let client = self.pool.get().await?;
        // The row lock of ON CONFLICT serialises concurrent hits on a bucket: each sees
        // its own count, so the limit-th request passes and the next is refused.
        let rows = client
            .query_cached(
                "INSERT INTO rate_counters (bucket, window_start, hits)
                 SELECT b, date_bin('60 seconds', now(), timestamptz 'epoch'), 1
                 FROM unnest($1::text[]) AS b
                 ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_counters.hits + 1
                 RETURNING bucket, hits,
                     ceil(extract(epoch FROM window_start + interval '60 seconds' - now()))::integer",
                &[&keys],
            )
            .await?;
        let mut counted = Vec::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get(0)?;
            let hits = u32::try_from(row.try_get::<_, i32>(1)?).unwrap_or(u32::MAX);
            let reset_secs = u32::try_from(row.try_get::<_, i32>(2)?)
                .unwrap_or(60)
                .clamp(1, 60);
            if let Some(bucket) = buckets.iter().find(|b| b.key == key) {
                counted.push(Standing {
                    policy: bucket.policy,
                    allowed: hits <= bucket.limit,
                    limit: bucket.limit,
                    remaining: bucket.limit.saturating_sub(hits),
                    reset_secs,
                });
            }
        }
        // The headers describe the bucket that binds: one that refused, else the one with
        // the fewest requests left.
        let standing = counted
            .iter()
            .min_by_key(|s| (s.allowed, s.remaining))
            .copied()
            .unwrap_or(Standing {
                policy: "none",
                allowed: true,
                limit: 0,
                remaining: 0,
                reset_secs: 60,
            });
        Ok(standing)
    }

    async fn prune(&self) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute_cached(
                "DELETE FROM rate_counters WHERE window_start < now() - interval '2 minutes'",
                &[],
            )
            .await?)
    }
}
