//! The artifacts table.

use super::Pool;
use super::cached::Cached;
use super::effects::emit;
use crate::domain::events::EventBody;
use crate::domain::messages::as_json;
use crate::domain::records::Artifact;
use crate::domain::{ArtifactId, ProjectId, RunId, TaskId};
use crate::ports::{ArtifactStore, Effects, StoreError, Written};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
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

/// The idempotency scope of artifact writes.
const ARTIFACT_SCOPE: &str = "artifact";

/// Inserts (or refreshes) an artifact's row.
async fn insert(client: &impl GenericClient, a: &Artifact) -> Result<(), StoreError> {
    let size = i64::try_from(a.size_bytes).unwrap_or(i64::MAX);
    client
        .execute_cached(
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

/// What a write's idempotency key holds: the object it stored.
#[derive(serde::Serialize)]
struct ArtifactClaim<'a> {
    object_key: &'a str,
}

#[async_trait]
impl ArtifactStore for PgArtifactStore {
    async fn record(&self, a: &Artifact) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        insert(&client, a).await
    }

    async fn record_once(&self, written: &[Written]) -> Result<Effects, StoreError> {
        let mut effects = Effects::default();
        if written.is_empty() {
            return Ok(effects);
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        for w in written {
            let claimed = tx
                .execute_cached(
                    "INSERT INTO idempotency_keys (scope, key, result, completed_at)
                     VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING",
                    &[
                        &ARTIFACT_SCOPE,
                        &w.key,
                        &as_json(&ArtifactClaim {
                            object_key: &w.artifact.key,
                        }),
                    ],
                )
                .await?;
            if claimed == 0 {
                tracing::info!(object_key = %w.artifact.key, "a replayed write was recorded before");
                continue;
            }
            insert(&tx, &w.artifact).await?;
            emit(
                &tx,
                &mut effects,
                w.artifact.project_id,
                w.artifact.run_id,
                EventBody::ArtifactStored(w.stored.clone()),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(effects)
    }

    async fn run_artifacts(&self, run: RunId) -> Result<Vec<Artifact>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts a WHERE a.run_id = $1 ORDER BY a.created_at, a.key"),
                &[&run.0],
            )
            .await?;
        rows.iter().map(artifact_from).collect()
    }
}

/// The columns `artifact_from` reads, in order (`a` is the artifacts table).
pub(super) const ARTIFACT_COLUMNS: &str = "a.id, a.project_id, a.run_id, a.task_id, a.bucket, a.key, a.content_type, a.size_bytes, a.checksum_sha256";

/// An artifact with the time it was recorded, from `ARTIFACT_COLUMNS` then `a.created_at`.
pub(super) fn entry_from(
    row: &tokio_postgres::Row,
) -> Result<crate::ports::ArtifactEntry, StoreError> {
    Ok(crate::ports::ArtifactEntry {
        artifact: artifact_from(row)?,
        created_at: row.try_get(9)?,
    })
}

/// An artifact from the first columns of `row`, as `ARTIFACT_COLUMNS` lists them.
pub(super) fn artifact_from(row: &tokio_postgres::Row) -> Result<Artifact, StoreError> {
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
}
