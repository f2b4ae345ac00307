//! Long-term memory on Postgres with pgvector: cosine distance, and the HNSW index over
//! 1536-dimension vectors for recall.

use super::Pool;
use super::cached::Cached;
use super::rows::count;
use crate::domain::memory::{DUPLICATE_SIMILARITY, Memory, MemoryHit, SimilarProject};
use crate::domain::{MemoryId, MemoryKind, ProjectId, RunId, TaskId, UserId};
use crate::ports::gateway::Embedding;
use crate::ports::{MemorySource, MemoryStore, NewMemory, Remembered, StoreError};
use async_trait::async_trait;
use tokio_postgres::Row;
use uuid::Uuid;

/// `MemoryStore` on Postgres.
#[derive(Clone)]
pub struct PgMemoryStore {
    pool: Pool,
}

impl PgMemoryStore {
    pub fn new(pool: Pool) -> Self {
        PgMemoryStore { pool }
    }
}

/// The dimension `agent_memory_hnsw_1536` indexes; other dimensions are scanned.
const INDEXED_DIM: usize = 1536;

const COLUMNS: &str = "id, user_id, project_id, kind, content, agent, run_id, task_id, \
     embedding_model, mentions, created_at, updated_at";

fn memory_from(row: &Row) -> Result<Memory, StoreError> {
    Ok(Memory {
        id: MemoryId(row.try_get("id")?),
        user_id: UserId(row.try_get("user_id")?),
        project_id: row.try_get::<_, Option<Uuid>>("project_id")?.map(ProjectId),
        kind: row.try_get("kind")?,
        content: row.try_get("content")?,
        agent: row.try_get("agent")?,
        run_id: row.try_get::<_, Option<Uuid>>("run_id")?.map(RunId),
        task_id: row.try_get::<_, Option<Uuid>>("task_id")?.map(TaskId),
        embedding_model: row.try_get("embedding_model")?,
        mentions: count(row, "mentions")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn dim(embedding: &Embedding) -> i32 {
    i32::try_from(embedding.values.len()).unwrap_or(i32::MAX)
}

fn vector(embedding: &Embedding) -> pgvector::Vector {
    pgvector::Vector::from(embedding.values.clone())
}

/// Up to this many memories in scope are compared exactly (fast, and recall is perfect);
/// past it the HNSW index answers.
const EXACT_MAX: i64 = 5000;

/// The nearest memories of a user's project and of the user-wide ones. Through the HNSW
/// index (`indexed`), scanning on (pgvector's iterative scan) until enough rows pass the
/// owner filter, the outer query putting the relaxed order right; otherwise exactly, over
/// the owner's rows.
fn nearest_sql(indexed: bool) -> String {
    let distance = if indexed {
        "embedding::vector(1536) <=> $4"
    } else {
        "embedding <=> $4"
    };
    format!(
        "SELECT * FROM (
           SELECT {COLUMNS}, (1 - ({distance}))::real AS similarity FROM agent_memory
           WHERE user_id = $1 AND (project_id = $2 OR project_id IS NULL)
             AND embedding_model = $3 AND embedding_dim = $5
             AND ($7::uuid IS NULL OR run_id IS DISTINCT FROM $7)
           ORDER BY {distance} LIMIT $6
         ) m ORDER BY similarity DESC"
    )
}

#[async_trait]
impl MemoryStore for PgMemoryStore {
    async fn remember(
        &self,
        source: MemorySource,
        memories: &[NewMemory],
    ) -> Result<Vec<Remembered>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // One writer of a user's memories at a time: two tasks that end together cannot
        // both store the same memory.
        tx.execute_cached(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 22))",
            &[&format!("memory:{}", source.user.0)],
        )
        .await?;
        let mut kept = Vec::with_capacity(memories.len());
        for memory in memories {
            let project = (!memory.user_wide).then_some(source.project.0);
            let v = vector(&memory.embedding);
            // A gist is one a project; anything else merges into a near-duplicate.
            let same = if memory.kind == MemoryKind::Project {
                tx.query_opt_cached(
                    "SELECT id FROM agent_memory
                     WHERE user_id = $1 AND project_id = $2 AND kind = 'project'",
                    &[&source.user.0, &source.project.0],
                )
                .await?
                .map(|row| row.try_get::<_, Uuid>(0))
                .transpose()?
            } else {
                let nearest = tx
                    .query_opt_cached(
                        "SELECT id, (1 - (embedding <=> $5))::real FROM agent_memory
                         WHERE user_id = $1 AND project_id IS NOT DISTINCT FROM $2 AND kind = $3
                           AND embedding_model = $4 AND embedding_dim = $6
                         ORDER BY embedding <=> $5 LIMIT 1",
                        &[
                            &source.user.0,
                            &project,
                            &memory.kind,
                            &memory.embedding.model,
                            &v,
                            &dim(&memory.embedding),
                        ],
                    )
                    .await?;
                match nearest {
                    Some(row) if row.try_get::<_, f32>(1)? >= DUPLICATE_SIMILARITY => {
                        Some(row.try_get(0)?)
                    }
                    _ => None,
                }
            };
            let task = source.task.map(|t| t.0);
            let run = source.run.map(|r| r.0);
            let id = match same {
                // The later wording and vector; a mention more unless the same task said
                // it again (a retried attempt).
                Some(id) => {
                    tx.execute_cached(
                        "UPDATE agent_memory SET content = $2, embedding = $3, embedding_model = $4,
                             embedding_dim = $5, agent = $6, run_id = $7, task_id = $8,
                             mentions = mentions + CASE WHEN task_id IS NOT DISTINCT FROM $8
                                                        AND $8 IS NOT NULL THEN 0 ELSE 1 END,
                             updated_at = now()
                         WHERE id = $1",
                        &[
                            &id,
                            &memory.content,
                            &v,
                            &memory.embedding.model,
                            &dim(&memory.embedding),
                            &source.agent,
                            &run,
                            &task,
                        ],
                    )
                    .await?;
                    Remembered {
                        id: MemoryId(id),
                        merged: true,
                    }
                }
                None => {
                    let id = MemoryId::new();
                    tx.execute_cached(
                        "INSERT INTO agent_memory (id, user_id, project_id, agent, content, embedding,
                             embedding_model, embedding_dim, kind, run_id, task_id)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                        &[
                            &id.0,
                            &source.user.0,
                            &project,
                            &source.agent,
                            &memory.content,
                            &v,
                            &memory.embedding.model,
                            &dim(&memory.embedding),
                            &memory.kind,
                            &run,
                            &task,
                        ],
                    )
                    .await?;
                    Remembered { id, merged: false }
                }
            };
            kept.push(id);
        }
        tx.commit().await?;
        Ok(kept)
    }

    async fn nearest(
        &self,
        (user, project): (UserId, ProjectId),
        besides: Option<RunId>,
        embedding: &Embedding,
        limit: u32,
    ) -> Result<Vec<MemoryHit>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // How many are in scope, counted no further than the exact scan's bound: the
        // planner's estimate for one user's rows is too rough to choose by.
        let in_scope: i64 = tx
            .query_one_cached(
                "SELECT count(*) FROM (SELECT 1 FROM agent_memory
                 WHERE user_id = $1 AND (project_id = $2 OR project_id IS NULL) LIMIT $3) s",
                &[&user.0, &project.0, &(EXACT_MAX + 1)],
            )
            .await?
            .try_get(0)?;
        let indexed = embedding.values.len() == INDEXED_DIM && in_scope > EXACT_MAX;
        if indexed {
            // Filtered HNSW search: keep scanning the graph until `limit` rows of this
            // owner are found, with a wider candidate list than the default 40; and the
            // index, not a scan of the owner's rows, which the planner may prefer by its
            // estimate.
            tx.batch_execute(
                "SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = 100;
                 SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off",
            )
            .await?;
        }
        let rows = tx
            .query_cached(
                &nearest_sql(indexed),
                &[
                    &user.0,
                    &project.0,
                    &embedding.model,
                    &vector(embedding),
                    &dim(embedding),
                    &i64::from(limit),
                    &besides.map(|r| r.0),
                ],
            )
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(MemoryHit {
                    memory: memory_from(row)?,
                    similarity: row.try_get("similarity")?,
                    score: 0.0,
                })
            })
            .collect()
    }

    async fn recent(
        &self,
        user: UserId,
        project: ProjectId,
        limit: u32,
    ) -> Result<Vec<Memory>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT {COLUMNS} FROM agent_memory
                     WHERE user_id = $1 AND (project_id = $2 OR project_id IS NULL)
                     ORDER BY updated_at DESC, id LIMIT $3"
                ),
                &[&user.0, &project.0, &i64::from(limit)],
            )
            .await?;
        rows.iter().map(memory_from).collect()
    }

    async fn gist(
        &self,
        user: UserId,
        project: ProjectId,
        model: &str,
    ) -> Result<Option<Embedding>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                "SELECT embedding FROM agent_memory
                 WHERE user_id = $1 AND project_id = $2 AND kind = 'project' AND embedding_model = $3",
                &[&user.0, &project.0, &model],
            )
            .await?;
        Ok(row
            .map(|row| row.try_get::<_, pgvector::Vector>(0))
            .transpose()?
            .map(|v| Embedding {
                model: model.to_owned(),
                values: v.to_vec(),
            }))
    }

    async fn similar_projects(
        &self,
        user: UserId,
        besides: ProjectId,
        embedding: &Embedding,
        limit: u32,
    ) -> Result<Vec<SimilarProject>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                "SELECT m.project_id, p.name, m.content, (1 - (m.embedding <=> $4))::real AS similarity
                 FROM agent_memory m JOIN projects p ON p.id = m.project_id
                 WHERE m.user_id = $1 AND m.kind = 'project' AND m.project_id <> $2
                   AND m.embedding_model = $3 AND m.embedding_dim = $5
                 ORDER BY m.embedding <=> $4 LIMIT $6",
                &[
                    &user.0,
                    &besides.0,
                    &embedding.model,
                    &vector(embedding),
                    &dim(embedding),
                    &i64::from(limit),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SimilarProject {
                    project_id: ProjectId(row.try_get("project_id")?),
                    name: row.try_get("name")?,
                    gist: row.try_get("content")?,
                    similarity: row.try_get("similarity")?,
                })
            })
            .collect()
    }

    async fn forget(&self, user: UserId, id: MemoryId) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let deleted = client
            .execute_cached(
                "DELETE FROM agent_memory WHERE id = $1 AND user_id = $2",
                &[&id.0, &user.0],
            )
            .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound {
                what: "memory",
                id: id.to_string(),
            });
        }
        Ok(())
    }
}
