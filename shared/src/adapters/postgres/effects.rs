//! Writing a state change's effects inside its own transaction: events appended to the
//! project's log, messages written to the outbox. Both commit with the change or not at all.

use crate::domain::events::{Event, EventBody};
use crate::domain::messages::{OutboxEntry, Outgoing};
use crate::domain::notices::PUSHED_KINDS;
use crate::domain::{EventKind, ProjectId, RunId};
use crate::ports::{Effects, StoreError};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// Appends an event. The sequence comes from `projects.last_event_seq`, incremented in the
/// same statement (the row lock serialises a project's appends: strictly increasing, no
/// gaps). A run's event carries the run's tokens and cost so far, summed in the statement.
/// The same statement writes the event's notices (migration 0029): a delivery for each of
/// the owner's webhooks that asked for its kind, and a push to each of the owner's devices
/// when its kind is one that pushes and the owner did not mute it.
const APPEND: &str = "
    WITH next AS (
        UPDATE projects SET last_event_seq = last_event_seq + 1 WHERE id = $1
        RETURNING last_event_seq, user_id),
    totals AS (
        SELECT coalesce(sum(input_tokens), 0)::bigint AS input, coalesce(sum(output_tokens), 0)::bigint AS output,
               coalesce(sum(cost_micro_usd), 0)::bigint AS cost
        FROM llm_calls WHERE $2::uuid IS NOT NULL AND run_id = $2),
    appended AS (
        INSERT INTO events (project_id, run_id, seq, kind, payload)
        SELECT $1, $2, next.last_event_seq, $3,
               CASE WHEN $2::uuid IS NULL OR jsonb_typeof($4::jsonb) <> 'object' THEN $4::jsonb
                    ELSE $4::jsonb || jsonb_build_object(
                        'tokens', jsonb_build_object('input', totals.input, 'output', totals.output),
                        'cost_micro_usd', totals.cost) END
        FROM next, totals
        RETURNING seq, created_at, payload),
    hooks AS (
        INSERT INTO webhook_deliveries (webhook_id, project_id, seq, kind)
        SELECT w.id, $1, appended.seq, $3
        FROM appended, next JOIN webhooks w ON w.user_id = next.user_id
        WHERE $3 = ANY (w.kinds)
        RETURNING 1),
    pushes AS (
        INSERT INTO push_messages (user_id, device_id, token, project_id, seq, kind)
        SELECT d.user_id, d.id, d.token, $1, appended.seq, $3
        FROM appended, next JOIN users u ON u.id = next.user_id JOIN devices d ON d.user_id = u.id
        WHERE $3 = ANY ($5::event_kind[]) AND NOT ($3 = ANY (u.push_muted))
        RETURNING 1)
    SELECT seq, created_at, payload, (SELECT count(*) FROM hooks) + (SELECT count(*) FROM pushes)
    FROM appended";

/// Appends one event on `client` (a transaction, or a plain connection for a lone event),
/// with its notices; whether it has any.
pub(super) async fn append_event(
    client: &impl GenericClient,
    project: ProjectId,
    run: Option<RunId>,
    body: EventBody,
) -> Result<(Event, bool), StoreError> {
    let (kind, payload) = body
        .to_parts()
        .map_err(|e| StoreError::Backend(Box::new(e)))?;
    let run_id: Option<Uuid> = run.map(|r| r.0);
    let statement = client.prepare_cached(APPEND).await?;
    let pushed: Vec<EventKind> = PUSHED_KINDS.to_vec();
    let row = client
        .query_opt(&statement, &[&project.0, &run_id, &kind, &payload, &pushed])
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "project",
            id: project.to_string(),
        })?;
    let notices: i64 = row.try_get(3)?;
    let event = typed(
        (project, run, row.try_get(0)?),
        kind,
        row.try_get(2)?,
        row.try_get(1)?,
    )?;
    Ok((event, notices > 0))
}

/// An event as stored, typed again; a payload that does not fit its kind is an error that
/// names the event.
pub(super) fn typed(
    (project, run, seq): (ProjectId, Option<RunId>, i64),
    kind: EventKind,
    payload: serde_json::Value,
    created_at: chrono::DateTime<chrono::Utc>,
) -> Result<Event, StoreError> {
    Event::from_stored((project, run, seq), kind, payload, created_at).map_err(|e| {
        StoreError::Backend(
            format!("event {seq} of project {project} ({kind}) does not fit its type: {e}").into(),
        )
    })
}

/// Appends an event to `effects`, in the transaction.
pub(super) async fn emit(
    client: &impl GenericClient,
    effects: &mut Effects,
    project: ProjectId,
    run: Option<RunId>,
    body: EventBody,
) -> Result<(), StoreError> {
    let (event, notices) = append_event(client, project, run, body).await?;
    effects.events.push(event);
    if notices {
        send(client, effects, run, Outgoing::DeliverNotices).await?;
    }
    Ok(())
}

/// Writes `message` to the outbox, in the transaction.
pub(super) async fn send(
    client: &impl GenericClient,
    effects: &mut Effects,
    run: Option<RunId>,
    message: Outgoing,
) -> Result<(), StoreError> {
    let body = serde_json::to_value(&message).map_err(|e| StoreError::Backend(Box::new(e)))?;
    let entry = OutboxEntry::new(0, message);
    let statement = client
        .prepare_cached(
            "INSERT INTO outbox (run_id, message, traceparent) VALUES ($1, $2, $3) RETURNING id",
        )
        .await?;
    let row = client
        .query_one(&statement, &[&run.map(|r| r.0), &body, &entry.traceparent])
        .await?;
    effects.outbox.push(OutboxEntry {
        id: row.try_get(0)?,
        ..entry
    });
    Ok(())
}
