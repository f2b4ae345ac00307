//! The outbox table.

use super::Pool;
use super::cached::Cached;
use crate::domain::RunId;
use crate::domain::messages::{OutboxEntry, Outgoing};
use crate::ports::{OutboxStore, StoreError};
use async_trait::async_trait;
use std::time::Duration;

/// `OutboxStore` on Postgres.
#[derive(Clone)]
pub struct PgOutboxStore {
    pool: Pool,
}

impl PgOutboxStore {
    pub fn new(pool: Pool) -> Self {
        PgOutboxStore { pool }
    }

    async fn select(
        &self,
        run: Option<RunId>,
        age: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                "SELECT id, message, traceparent FROM outbox
                 WHERE created_at < now() - make_interval(secs => $1) AND ($3::uuid IS NULL OR run_id = $3)
                 ORDER BY id LIMIT $2",
                &[&age.as_secs_f64(), &i64::from(limit), &run.map(|r| r.0)],
            )
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get(0)?;
            let body: serde_json::Value = row.try_get(1)?;
            match serde_json::from_value::<Outgoing>(body) {
                Ok(message) => entries.push(OutboxEntry {
                    id,
                    message,
                    traceparent: row.try_get(2)?,
                }),
                // Written by this code, so unreadable means a newer or older version wrote
                // it: keep it for whoever can read it, and say so.
                Err(e) => tracing::error!(id, error = %e, "an outbox entry cannot be read"),
            }
        }
        Ok(entries)
    }
}

#[async_trait]
impl OutboxStore for PgOutboxStore {
    async fn delivered(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached("DELETE FROM outbox WHERE id = ANY($1)")
            .await?;
        client.execute(&statement, &[&ids]).await?;
        Ok(())
    }

    async fn failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                &[&id, &error],
            )
            .await?;
        Ok(())
    }

    async fn due(&self, age: Duration, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        self.select(None, age, limit).await
    }

    async fn due_for_run(&self, run: RunId, age: Duration) -> Result<Vec<OutboxEntry>, StoreError> {
        self.select(Some(run), age, 100).await
    }

    async fn backlog(&self) -> Result<(u64, f64), StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM outbox",
                &[],
            )
            .await?;
        let count: i64 = row.try_get(0)?;
        Ok((u64::try_from(count).unwrap_or(0), row.try_get(1)?))
    }
}
