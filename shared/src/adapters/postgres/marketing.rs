//! The daily loop's records on Postgres: `social_posts` and `projects.launched_at`.

use super::Pool;
use super::cached::Cached;
use crate::domain::marketing::{PostMetrics, SocialPost};
use crate::domain::{DeploymentStatus, ProjectId, RunId, Service};
use crate::ports::{Launched, MarketingStore, NewSocialPost, StoreError};
use async_trait::async_trait;
use tokio_postgres::Row;

/// `MarketingStore` on Postgres.
#[derive(Clone)]
pub struct PgMarketing {
    pool: Pool,
}

impl PgMarketing {
    pub fn new(pool: Pool) -> Self {
        PgMarketing { pool }
    }
}

const COLUMNS: &str =
    "service, provider_id, project_id, run_id, link, text, posted_at, metrics, metrics_at";

fn post_from(row: &Row) -> Result<SocialPost, StoreError> {
    let metrics: Option<serde_json::Value> = row.try_get("metrics")?;
    Ok(SocialPost {
        service: row.try_get("service")?,
        provider_id: row.try_get("provider_id")?,
        project_id: ProjectId(row.try_get("project_id")?),
        run_id: row.try_get::<_, Option<uuid::Uuid>>("run_id")?.map(RunId),
        link: row.try_get("link")?,
        text: row.try_get("text")?,
        posted_at: row.try_get("posted_at")?,
        metrics: metrics.and_then(|m| serde_json::from_value(m).ok()),
        metrics_at: row.try_get("metrics_at")?,
    })
}

#[async_trait]
impl MarketingStore for PgMarketing {
    async fn record_post(&self, post: &NewSocialPost) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "INSERT INTO social_posts (service, provider_id, project_id, user_id, run_id, link, text)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (service, provider_id) DO NOTHING",
                &[
                    &post.service,
                    &post.provider_id,
                    &post.project.0,
                    &post.user.0,
                    &post.run.0,
                    &post.link,
                    &post.text,
                ],
            )
            .await?;
        Ok(())
    }

    async fn project_posts(
        &self,
        project: ProjectId,
        limit: u32,
    ) -> Result<Vec<SocialPost>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query_cached(
                &format!(
                    "SELECT {COLUMNS} FROM social_posts WHERE project_id = $1
                     ORDER BY posted_at DESC, provider_id LIMIT $2"
                ),
                &[&project.0, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(post_from)
            .collect()
    }

    async fn run_posts(&self, run: RunId) -> Result<Vec<SocialPost>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query_cached(
                &format!(
                    "SELECT {COLUMNS} FROM social_posts WHERE run_id = $1
                     ORDER BY posted_at, provider_id"
                ),
                &[&run.0],
            )
            .await?
            .iter()
            .map(post_from)
            .collect()
    }

    async fn set_metrics(
        &self,
        service: Service,
        provider_id: &str,
        metrics: &PostMetrics,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let value = serde_json::to_value(metrics).map_err(|e| StoreError::Backend(Box::new(e)))?;
        client
            .execute_cached(
                "UPDATE social_posts SET metrics = $3, metrics_at = now()
                 WHERE service = $1 AND provider_id = $2",
                &[&service, &provider_id, &value],
            )
            .await?;
        Ok(())
    }

    async fn launch(&self, project: ProjectId) -> Result<Option<Launched>, StoreError> {
        let client = self.pool.get().await?;
        // The row's update is the once: a second call (or a racing one) finds it set.
        let row = client
            .query_opt_cached(
                "UPDATE projects p SET launched_at = now()
                 FROM users u
                 WHERE p.id = $1 AND u.id = p.user_id AND p.launched_at IS NULL
                   AND (EXISTS (SELECT 1 FROM deployments d
                                WHERE d.project_id = p.id AND d.kind = 'site' AND d.status = $2)
                        OR EXISTS (SELECT 1 FROM social_posts s WHERE s.project_id = p.id))
                 RETURNING p.user_id, u.timezone",
                &[&project.0, &DeploymentStatus::Ready],
            )
            .await?;
        row.map(|row| {
            Ok(Launched {
                user: crate::domain::UserId(row.try_get(0)?),
                timezone: row.try_get(1)?,
            })
        })
        .transpose()
    }
}
