//! Idempotency claims.

use super::Pool;
use super::cached::Cached;
use crate::ports::{Claim, IdempotencyStore, StoreError};
use async_trait::async_trait;

/// `IdempotencyStore` on Postgres: the primary key on (scope, key) makes the first
/// `INSERT ... ON CONFLICT DO NOTHING` the only winner.
#[derive(Clone)]
pub struct PgIdempotencyStore {
    pool: Pool,
}

impl PgIdempotencyStore {
    pub fn new(pool: Pool) -> Self {
        PgIdempotencyStore { pool }
    }
}

#[async_trait]
impl IdempotencyStore for PgIdempotencyStore {
    async fn claim(&self, scope: &str, key: &str) -> Result<Claim, StoreError> {
        let client = self.pool.get().await?;
        let inserted = client
            .execute_cached(
                "INSERT INTO idempotency_keys (scope, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&scope, &key],
            )
            .await?;
        if inserted == 1 {
            return Ok(Claim::New);
        }
        let row = client
            .query_one_cached("SELECT result, completed_at IS NOT NULL FROM idempotency_keys WHERE scope = $1 AND key = $2", &[&scope, &key])
            .await?;
        let done: bool = row.try_get(1)?;
        Ok(if done {
            Claim::Done(
                row.try_get::<_, Option<serde_json::Value>>(0)?
                    .unwrap_or_default(),
            )
        } else {
            Claim::InProgress
        })
    }

    async fn claim_or_take_over(
        &self,
        scope: &str,
        key: &str,
        stale_after: std::time::Duration,
    ) -> Result<Claim, StoreError> {
        let client = self.pool.get().await?;
        let taken = client
            .execute_cached(
                "UPDATE idempotency_keys SET created_at = now()
                 WHERE scope = $1 AND key = $2 AND completed_at IS NULL
                   AND created_at < now() - make_interval(secs => $3)",
                &[&scope, &key, &stale_after.as_secs_f64()],
            )
            .await?;
        if taken == 1 {
            return Ok(Claim::New);
        }
        drop(client);
        self.claim(scope, key).await
    }

    async fn abandon(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND completed_at IS NULL",
                &[&scope, &key],
            )
            .await?;
        Ok(())
    }

    async fn complete(
        &self,
        scope: &str,
        key: &str,
        result: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let updated = client
            .execute_cached(
                "UPDATE idempotency_keys SET result = $3, completed_at = now() WHERE scope = $1 AND key = $2",
                &[&scope, &key, result],
            )
            .await?;
        if updated == 0 {
            return Err(StoreError::NotFound {
                what: "idempotency key",
                id: format!("{scope}/{key}"),
            });
        }
        Ok(())
    }

    async fn prune_completed(&self, days: u32) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        Ok(client
            .execute_cached(
                "DELETE FROM idempotency_keys
                 WHERE completed_at IS NOT NULL AND created_at < now() - make_interval(days => $1)",
                &[&days],
            )
            .await?)
    }
}
