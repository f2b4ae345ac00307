//! The artifacts table.

use super::Pool;
use crate::domain::records::Artifact;
use crate::domain::{ArtifactId, ProjectId, RunId, TaskId};
use crate::ports::{ArtifactStore, StoreError};
use async_trait::async_trait;
use uuid::Uuid;

/// `ArtifactStore` on Postgres.
#[derive(Clone)]
pub struct PgArtifactStore {
    pool: Pool,
}

impl PgArtifactStore {
    pub fn new(pool: Pool) -> Self {
        PgArtifactStore { pool }
    }
}

#[async_trait]
impl ArtifactStore for PgArtifactStore {
    async fn record(&self, a: &Artifact) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let size = i64::try_from(a.size_bytes).unwrap_or(i64::MAX);
        client
            .execute(
                "INSERT INTO artifacts (id, project_id, run_id, task_id, bucket, key, content_type, size_bytes, checksum_sha256)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (bucket, key) DO UPDATE SET content_type = EXCLUDED.content_type,
                     size_bytes = EXCLUDED.size_bytes, checksum_sha256 = EXCLUDED.checksum_sha256",
                &[
                    &a.id.0,
                    &a.project_id.0,
                    &a.run_id.map(|r| r.0),
                    &a.task_id.map(|t| t.0),
                    &a.bucket,
                    &a.key,
                    &a.content_type,
                    &size,
                    &a.checksum_sha256,
                ],
            )
            .await?;
        Ok(())
    }

    async fn run_artifacts(&self, run: RunId) -> Result<Vec<Artifact>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, project_id, run_id, task_id, bucket, key, content_type, size_bytes, checksum_sha256
                 FROM artifacts WHERE run_id = $1 ORDER BY created_at, key",
                &[&run.0],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let size: i64 = row.try_get(7)?;
                Ok(Artifact {
                    id: ArtifactId(row.try_get(0)?),
                    project_id: ProjectId(row.try_get(1)?),
                    run_id: row.try_get::<_, Option<Uuid>>(2)?.map(RunId),
                    task_id: row.try_get::<_, Option<Uuid>>(3)?.map(TaskId),
                    bucket: row.try_get(4)?,
                    key: row.try_get(5)?,
                    content_type: row.try_get(6)?,
                    size_bytes: u64::try_from(size).unwrap_or(0),
                    checksum_sha256: row.try_get(8)?,
                })
            })
            .collect()
    }
}
