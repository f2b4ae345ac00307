//! The per-project event log.

use super::Pool;
use super::cached::Cached;
use crate::domain::events::{Event, EventBody};
use crate::domain::messages::Outgoing;
use crate::domain::{ProjectId, RunId, UserId};
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
        body: EventBody,
    ) -> Result<Event, StoreError> {
        let client = self.pool.get().await?;
        let (event, notices) = super::effects::append_event(&client, project, run, body).await?;
        if notices {
            // A nudge, relayed by the reconciler or made moot sooner by any delivery message
            // sent meanwhile (each delivers every notice due). Not in the event's
            // transaction: the notices themselves are, and the sweep finds them due anyway.
            let mut effects = crate::ports::Effects::default();
            super::effects::send(&client, &mut effects, run, Outgoing::DeliverNotices).await?;
        }
        Ok(event)
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
        rows.iter().map(|row| event_from(project, row)).collect()
    }

    async fn owned_since(
        &self,
        user: UserId,
        project: ProjectId,
        after: i64,
        limit: u32,
    ) -> Result<Option<Vec<Event>>, StoreError> {
        let client = self.pool.get().await?;
        // The project row comes back even without events, and not at all when it is not
        // the user's: one round trip for both.
        let rows = client
            .query_cached(
                "SELECT e.run_id, e.seq, e.kind, e.payload, e.created_at FROM projects p
                 LEFT JOIN LATERAL (
                     SELECT run_id, seq, kind, payload, created_at FROM events
                     WHERE project_id = p.id AND seq > $3 ORDER BY seq LIMIT $4) e ON true
                 WHERE p.id = $1 AND p.user_id = $2",
                &[&project.0, &user.0, &after, &i64::from(limit)],
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<_, Option<i64>>(1)?.is_some() {
                events.push(event_from(project, row)?);
            }
        }
        Ok(Some(events))
    }
}

fn event_from(project: ProjectId, row: &tokio_postgres::Row) -> Result<Event, StoreError> {
    let run = row.try_get::<_, Option<Uuid>>(0)?.map(RunId);
    let seq = row.try_get(1)?;
    super::effects::typed(
        (project, run, seq),
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
    )
}
