//! The retention policy on Postgres: each step is one bounded statement.

use super::Pool;
use super::cached::Cached;
use crate::domain::retention::{RetentionPolicy, RetentionReport};
use crate::domain::{EventKind, RunStatus};
use crate::ports::{Retention, StoreError};

/// The events a run's story does not need once it has ended.
fn detail_kinds() -> Vec<EventKind> {
    vec![
        EventKind::TaskQueued,
        EventKind::TaskStarted,
        EventKind::TaskProgress,
        EventKind::ArtifactStored,
    ]
}

fn ended() -> Vec<RunStatus> {
    RunStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.is_terminal())
        .collect()
}

fn minutes(n: u32) -> f64 {
    f64::from(n) * 60.0
}

/// `Retention` on Postgres.
#[derive(Clone)]
pub struct PgRetention {
    pool: Pool,
}

impl PgRetention {
    pub fn new(pool: Pool) -> Self {
        PgRetention { pool }
    }
}

#[async_trait::async_trait]
impl Retention for PgRetention {
    async fn apply(&self, policy: &RetentionPolicy) -> Result<RetentionReport, StoreError> {
        apply(&self.pool, policy).await
    }
}

/// Applies `policy` once: at most `policy.batch` rows of each kind.
async fn apply(pool: &Pool, policy: &RetentionPolicy) -> Result<RetentionReport, StoreError> {
    let client = pool.get().await?;
    let batch = i64::from(policy.batch);
    // Fold each model turn's chunks: the last keeps the whole text (`final`), the others
    // keep their place in the sequence (clients replay by `seq`) but no text.
    let folded = client
        .query_one_cached(
            "WITH turns AS (
                 SELECT e.run_id, e.payload->>'task_id' AS task, e.payload->>'step' AS step
                 FROM events e JOIN runs r ON r.id = e.run_id
                 WHERE e.kind = $1 AND e.payload ? 'delta' AND NOT e.payload ? 'final'
                   AND r.status = ANY($2) AND r.completed_at < now() - make_interval(secs => $3)
                 GROUP BY 1, 2, 3 LIMIT $4),
             texts AS (
                 SELECT e.run_id, t.task, t.step, max(e.id) AS last_id,
                        string_agg(e.payload->>'delta', '' ORDER BY e.seq) AS text
                 FROM events e JOIN turns t ON t.run_id = e.run_id
                      AND t.task = e.payload->>'task_id' AND t.step = e.payload->>'step'
                 WHERE e.kind = $1 AND e.payload ? 'delta'
                 GROUP BY 1, 2, 3),
             finals AS (
                 UPDATE events e SET payload = e.payload || jsonb_build_object('delta', t.text, 'final', true)
                 FROM texts t WHERE e.id = t.last_id RETURNING e.id),
             blanked AS (
                 UPDATE events e SET payload = (e.payload - 'delta') || '{\"compacted\": true}'::jsonb
                 FROM texts t
                 WHERE e.kind = $1 AND e.run_id = t.run_id AND e.payload->>'task_id' = t.task
                   AND e.payload->>'step' = t.step AND e.id <> t.last_id AND e.payload ? 'delta'
                 RETURNING e.id)
             SELECT (SELECT count(*) FROM finals), (SELECT count(*) FROM blanked)",
            &[
                &EventKind::TaskProgress,
                &ended(),
                &minutes(policy.compact_progress_after_minutes),
                &batch,
            ],
        )
        .await?;
    let turns: i64 = folded.try_get(0)?;
    let details = client
        .execute_cached(
            "DELETE FROM events WHERE id IN (
                 SELECT e.id FROM events e JOIN runs r ON r.id = e.run_id
                 WHERE e.kind = ANY($1) AND r.status = ANY($2)
                   AND r.completed_at < now() - make_interval(days => $3)
                 LIMIT $4)",
            &[
                &detail_kinds(),
                &ended(),
                &i32::try_from(policy.prune_detail_events_after_days).unwrap_or(i32::MAX),
                &batch,
            ],
        )
        .await?;
    let attempts = client
        .execute_cached(
            "DELETE FROM task_attempts WHERE id IN (
                 SELECT a.id FROM task_attempts a JOIN tasks t ON t.id = a.task_id
                 WHERE a.attempt_no < t.attempts
                   AND a.finished_at < now() - make_interval(days => $1)
                 LIMIT $2)",
            &[
                &i32::try_from(policy.prune_superseded_attempts_after_days).unwrap_or(i32::MAX),
                &batch,
            ],
        )
        .await?;
    let grace = minutes(policy.prune_expired_cache_after_hours) * 60.0;
    let exact = client
        .execute_cached(
            "DELETE FROM llm_response_cache WHERE key IN (
                 SELECT key FROM llm_response_cache
                 WHERE expires_at < now() - make_interval(secs => $1) LIMIT $2)",
            &[&grace, &batch],
        )
        .await?;
    let semantic = client
        .execute_cached(
            "DELETE FROM llm_semantic_cache WHERE id IN (
                 SELECT id FROM llm_semantic_cache
                 WHERE expires_at < now() - make_interval(secs => $1) LIMIT $2)",
            &[&grace, &batch],
        )
        .await?;
    let memories = client
        .execute_cached(
            "DELETE FROM agent_memory WHERE id IN (
                 SELECT id FROM agent_memory
                 WHERE updated_at < now() - make_interval(days => $1) LIMIT $2)",
            &[
                &i32::try_from(policy.forget_memories_after_days).unwrap_or(i32::MAX),
                &batch,
            ],
        )
        .await?;
    let days = i32::try_from(policy.prune_notices_after_days).unwrap_or(i32::MAX);
    let pushes = client
        .execute_cached(
            "DELETE FROM push_messages WHERE id IN (
                 SELECT id FROM push_messages
                 WHERE status NOT IN ('pending', 'sent')
                   AND created_at < now() - make_interval(days => $1) LIMIT $2)",
            &[&days, &batch],
        )
        .await?;
    let deliveries = client
        .execute_cached(
            "DELETE FROM webhook_deliveries WHERE id IN (
                 SELECT id FROM webhook_deliveries
                 WHERE status <> 'pending' AND created_at < now() - make_interval(days => $1)
                 LIMIT $2)",
            &[&days, &batch],
        )
        .await?;
    Ok(RetentionReport {
        notices_pruned: pushes + deliveries,
        progress_turns_compacted: u64::try_from(turns).unwrap_or(0),
        detail_events_pruned: details,
        attempts_pruned: attempts,
        cache_entries_pruned: exact + semantic,
        memories_forgotten: memories,
    })
}
