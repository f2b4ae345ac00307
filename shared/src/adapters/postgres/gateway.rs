//! The gateway's caches on Postgres: exact responses and the per-user semantic cache.

use super::Pool;
use crate::domain::UserId;
use crate::ports::llm::LlmResponse;
use crate::ports::{Embedding, ResponseCache, SemanticCache, SemanticHit, StoreError};
use async_trait::async_trait;
use std::time::Duration;
use uuid::Uuid;

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn unreadable(e: serde_json::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// `ResponseCache` on Postgres.
#[derive(Clone)]
pub struct PgResponseCache {
    pool: Pool,
}

impl PgResponseCache {
    pub fn new(pool: Pool) -> Self {
        PgResponseCache { pool }
    }
}

#[async_trait]
impl ResponseCache for PgResponseCache {
    async fn get(&self, key: &str) -> Result<Option<LlmResponse>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(
                        "UPDATE llm_response_cache SET hits = hits + 1
                 WHERE key = $1 AND expires_at > now() RETURNING response",
                    )
                    .await
                    .map_err(StoreError::from)?,
                &[&key],
            )
            .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(
                serde_json::from_value(row.try_get(0)?).map_err(unreadable)?,
            )),
        }
    }

    async fn put(
        &self,
        key: &str,
        response: &LlmResponse,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let json = serde_json::to_value(response).map_err(unreadable)?;
        client
            .execute(
                &client.prepare_cached("INSERT INTO llm_response_cache (key, provider, model, response, expires_at)
                 VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
                 ON CONFLICT (key) DO UPDATE SET response = EXCLUDED.response,
                     created_at = now(), expires_at = EXCLUDED.expires_at, hits = 0").await.map_err(StoreError::from)?,
                &[
                    &key,
                    &response.provider,
                    &response.model,
                    &json,
                    &seconds(ttl),
                ],
            )
            .await?;
        Ok(())
    }
}

/// `SemanticCache` on Postgres with pgvector (cosine distance).
#[derive(Clone)]
pub struct PgSemanticCache {
    pool: Pool,
}

impl PgSemanticCache {
    pub fn new(pool: Pool) -> Self {
        PgSemanticCache { pool }
    }
}

fn dim(embedding: &Embedding) -> i32 {
    i32::try_from(embedding.values.len()).unwrap_or(i32::MAX)
}

#[async_trait]
impl SemanticCache for PgSemanticCache {
    async fn threshold(&self, user: UserId) -> Result<Option<f32>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached("SELECT semantic_cache_threshold FROM users WHERE id = $1")
                    .await
                    .map_err(StoreError::from)?,
                &[&user.0],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.flatten())
    }

    async fn nearest(
        &self,
        user: UserId,
        scope: &str,
        embedding: &Embedding,
        threshold: f32,
    ) -> Result<Option<SemanticHit>, StoreError> {
        let client = self.pool.get().await?;
        let vector = pgvector::Vector::from(embedding.values.clone());
        let row = client
            .query_opt(
                &client
                    .prepare_cached(
                        "SELECT response, prompt, (1 - (embedding <=> $4))::real AS similarity
                 FROM llm_semantic_cache
                 WHERE user_id = $1 AND scope = $2 AND embedding_model = $3 AND embedding_dim = $5
                   AND expires_at > now()
                 ORDER BY embedding <=> $4 LIMIT 1",
                    )
                    .await
                    .map_err(StoreError::from)?,
                &[&user.0, &scope, &embedding.model, &vector, &dim(embedding)],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let similarity: f32 = row.try_get(2)?;
        if similarity < threshold {
            return Ok(None);
        }
        Ok(Some(SemanticHit {
            response: serde_json::from_value(row.try_get(0)?).map_err(unreadable)?,
            prompt: row.try_get(1)?,
            similarity,
        }))
    }

    async fn put(
        &self,
        user: UserId,
        scope: &str,
        prompt: &str,
        embedding: &Embedding,
        response: &LlmResponse,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let json = serde_json::to_value(response).map_err(unreadable)?;
        client
            .execute(
                &client.prepare_cached("INSERT INTO llm_semantic_cache (id, user_id, scope, prompt, embedding, embedding_model, embedding_dim, response, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))").await.map_err(StoreError::from)?,
                &[
                    &Uuid::new_v4(), &user.0, &scope, &prompt,
                    &pgvector::Vector::from(embedding.values.clone()),
                    &embedding.model, &dim(embedding), &json, &seconds(ttl),
                ],
            )
            .await?;
        Ok(())
    }
}
