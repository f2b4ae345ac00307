//! The per-project event log.

use super::Pool;
use super::cached::Cached;
use crate::domain::records::Event;
use crate::domain::{EventKind, ProjectId, RunId};
use crate::ports::{EventLog, StoreError};
use async_trait::async_trait;
use uuid::Uuid;

/// `EventLog` on Postgres (appending as `effects::append_event` does, in its own
/// transaction).
#[derive(Clone)]
pub struct PgEventLog {
    pool: Pool,
}

impl PgEventLog {
    pub fn new(pool: Pool) -> Self {
        PgEventLog { pool }
    }
}

#[async_trait]
impl EventLog for PgEventLog {
    async fn append(
        &self,
        project: ProjectId,
        run: Option<RunId>,
        kind: EventKind,
        payload: serde_json::Value,
    ) -> Result<Event, StoreError> {
        let client = self.pool.get().await?;
        super::effects::append_event(&client, project, run, kind, payload).await
    }

    async fn since(
        &self,
        project: ProjectId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                "SELECT run_id, seq, kind, payload, created_at FROM events
                 WHERE project_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&project.0, &after, &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Event {
                    project_id: project,
                    run_id: row.try_get::<_, Option<Uuid>>(0)?.map(RunId),
                    seq: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    payload: row.try_get(3)?,
                    created_at: row.try_get(4)?,
                })
            })
            .collect()
    }
}
