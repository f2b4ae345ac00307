//! Product analytics on Postgres: `analytics_events` (once per project and client event
//! id) and `ingest_keys`.

use super::Pool;
use super::cached::Cached;
use crate::domain::analytics::{Ingested, PAGE_VIEW, TrackedEvent, TrafficDay};
use crate::domain::{ProjectId, UserId};
use crate::ports::{AnalyticsStore, IngestKey, KeyHolder, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

/// `AnalyticsStore` on Postgres.
#[derive(Clone)]
pub struct PgAnalytics {
    pool: Pool,
}

impl PgAnalytics {
    pub fn new(pool: Pool) -> Self {
        PgAnalytics { pool }
    }
}

/// A new key: `ak_` and 32 random bytes, base64url (URL-safe, so it rides in `?key=`).
fn new_key() -> String {
    format!("ak_{}", crate::adapters::tools::oauth::random_token())
}

fn key_from(row: &Row) -> Result<IngestKey, StoreError> {
    Ok(IngestKey {
        key: row.try_get("key")?,
        project_id: ProjectId(row.try_get("project_id")?),
        created_at: row.try_get("created_at")?,
    })
}

const LIVE_KEY: &str = "SELECT key, project_id, created_at FROM ingest_keys
                        WHERE project_id = $1 AND revoked_at IS NULL";

#[async_trait]
impl AnalyticsStore for PgAnalytics {
    async fn ingest(
        &self,
        user: UserId,
        project: ProjectId,
        events: &[TrackedEvent],
    ) -> Result<Ingested, StoreError> {
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
        let properties: Vec<&serde_json::Value> = events.iter().map(|e| &e.properties).collect();
        let visitors: Vec<Option<&str>> = events.iter().map(|e| e.visitor_id.as_deref()).collect();
        let client = self.pool.get().await?;
        // One statement for the batch; a repeated id (sent before, or twice in the batch)
        // is skipped by the unique index, not an error.
        let row = client
            .query_one_cached(
                "WITH kept AS (
                   INSERT INTO analytics_events
                       (user_id, project_id, event_id, name, occurred_at, properties, visitor_id)
                   SELECT $1, $2, e.event_id, e.name, e.occurred_at, e.properties, e.visitor_id
                   FROM unnest($3::text[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::text[])
                        AS e(event_id, name, occurred_at, properties, visitor_id)
                   ON CONFLICT (project_id, event_id) DO NOTHING
                   RETURNING 1)
                 SELECT count(*) FROM kept",
                &[
                    &user.0,
                    &project.0,
                    &ids,
                    &names,
                    &times,
                    &properties,
                    &visitors,
                ],
            )
            .await?;
        let accepted = u32::try_from(row.try_get::<_, i64>(0)?).unwrap_or(u32::MAX);
        let sent = u32::try_from(events.len()).unwrap_or(u32::MAX);
        Ok(Ingested {
            accepted,
            duplicates: sent.saturating_sub(accepted),
        })
    }

    async fn holder(&self, key: &str) -> Result<KeyHolder, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                "SELECT k.project_id, p.user_id, k.revoked_at IS NOT NULL AS revoked
                 FROM ingest_keys k JOIN projects p ON p.id = k.project_id WHERE k.key = $1",
                &[&key],
            )
            .await?;
        Ok(match row {
            None => KeyHolder::Unknown,
            Some(row) if row.try_get::<_, bool>("revoked")? => KeyHolder::Revoked,
            Some(row) => KeyHolder::Live(
                ProjectId(row.try_get("project_id")?),
                UserId(row.try_get("user_id")?),
            ),
        })
    }

    async fn live_key(&self, project: ProjectId) -> Result<Option<IngestKey>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query_opt_cached(LIVE_KEY, &[&project.0])
            .await?
            .as_ref()
            .map(key_from)
            .transpose()
    }

    async fn key_for(&self, project: ProjectId) -> Result<IngestKey, StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "INSERT INTO ingest_keys (key, project_id) VALUES ($1, $2)
                 ON CONFLICT (project_id) WHERE revoked_at IS NULL DO NOTHING",
                &[&new_key(), &project.0],
            )
            .await?;
        key_from(&client.query_one_cached(LIVE_KEY, &[&project.0]).await?)
    }

    async fn rotate_key(&self, project: ProjectId) -> Result<IngestKey, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Two rotations at once take turns on the project's row: one live key after both.
        tx.execute_cached(
            "SELECT 1 FROM projects WHERE id = $1 FOR UPDATE",
            &[&project.0],
        )
        .await?;
        tx.execute_cached(
            "UPDATE ingest_keys SET revoked_at = now() WHERE project_id = $1 AND revoked_at IS NULL",
            &[&project.0],
        )
        .await?;
        let row = tx
            .query_one_cached(
                "INSERT INTO ingest_keys (key, project_id) VALUES ($1, $2)
                 RETURNING key, project_id, created_at",
                &[&new_key(), &project.0],
            )
            .await?;
        tx.commit().await?;
        key_from(&row)
    }

    async fn revoke_key(&self, project: ProjectId) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let revoked = client
            .execute_cached(
                "UPDATE ingest_keys SET revoked_at = now() WHERE project_id = $1 AND revoked_at IS NULL",
                &[&project.0],
            )
            .await?;
        Ok(revoked > 0)
    }

    async fn totals(
        &self,
        project: ProjectId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<TrafficDay, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                "SELECT count(*) AS events, count(DISTINCT visitor_id) AS visitors,
                        count(*) FILTER (WHERE name = $4) AS page_views
                 FROM analytics_events
                 WHERE project_id = $1 AND occurred_at >= $2 AND occurred_at < $3",
                &[&project.0, &from, &to, &PAGE_VIEW],
            )
            .await?;
        Ok(TrafficDay {
            day: from.format("%Y-%m-%d").to_string(),
            events: row.try_get("events")?,
            visitors: row.try_get("visitors")?,
            page_views: row.try_get("page_views")?,
        })
    }

    async fn traffic(
        &self,
        project: ProjectId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<TrafficDay>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                "SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
                        count(*) AS events, count(DISTINCT visitor_id) AS visitors,
                        count(*) FILTER (WHERE name = $4) AS page_views
                 FROM analytics_events
                 WHERE project_id = $1 AND occurred_at >= $2 AND occurred_at < $3
                 GROUP BY 1 ORDER BY 1",
                &[&project.0, &from, &to, &PAGE_VIEW],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TrafficDay {
                    day: row.try_get("day")?,
                    events: row.try_get("events")?,
                    visitors: row.try_get("visitors")?,
                    page_views: row.try_get("page_views")?,
                })
            })
            .collect()
    }
}
