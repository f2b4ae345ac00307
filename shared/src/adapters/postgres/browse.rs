//! `Browse` on Postgres: keyset pages, each in one statement that also checks the owner.

use super::Pool;
use super::artifacts::{ARTIFACT_COLUMNS, entry_from};
use super::cached::Cached;
use super::projects::{PROJECT_COLUMNS, project_from};
use super::runs::{RUN_COLUMNS, run_from_row};
use super::task_rows::{TASK_COLUMNS, task_from_row};
use crate::domain::paging::{Cursor, Page, Paged};
use crate::domain::records::AttemptRecord;
use crate::domain::{LlmCallOutcome, ProjectId, RunId, RunStatus, TaskId, UserId};
use crate::ports::{Analytics, ArtifactEntry, Browse, StoreError, TaskDetail};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use uuid::Uuid;

/// `Browse` on Postgres.
#[derive(Clone)]
pub struct PgBrowse {
    pool: Pool,
}

impl PgBrowse {
    pub fn new(pool: Pool) -> Self {
        PgBrowse { pool }
    }
}

/// The cursor's bounds as parameters: no cursor pages from the newest.
pub(super) fn bounds(page: &Page) -> (Option<DateTime<Utc>>, Option<Uuid>, i64) {
    (
        page.after.map(|c| c.created_at),
        page.after.map(|c| c.id),
        i64::from(page.limit) + 1,
    )
}

/// Keyset condition on `created_at, id` for the parameters `$a` (time) and `$b` (id).
pub(super) fn after(a: u8, b: u8) -> String {
    format!("(${a}::timestamptz IS NULL OR (created_at, id) < (${a}, ${b}::uuid))")
}

pub(super) async fn attempts_of(
    client: &deadpool_postgres::Client,
    tasks: &[Uuid],
) -> Result<HashMap<Uuid, Vec<AttemptRecord>>, StoreError> {
    let rows = client
        .query_cached(
            "SELECT task_id, attempt_no, status::text, error, started_at, finished_at
             FROM task_attempts WHERE task_id = ANY($1) ORDER BY task_id, attempt_no",
            &[&tasks],
        )
        .await?;
    let mut by_task: HashMap<Uuid, Vec<AttemptRecord>> = HashMap::new();
    for row in rows {
        let no: i32 = row.try_get(1)?;
        by_task
            .entry(row.try_get(0)?)
            .or_default()
            .push(AttemptRecord {
                attempt_no: u32::try_from(no).unwrap_or(0),
                status: row.try_get(2)?,
                error: row.try_get(3)?,
                started_at: row.try_get(4)?,
                finished_at: row.try_get(5)?,
            });
    }
    Ok(by_task)
}

#[async_trait]
impl Browse for PgBrowse {
    async fn projects(
        &self,
        user: UserId,
        archived: bool,
        page: Page,
    ) -> Result<Paged<crate::domain::records::Project>, StoreError> {
        let (at, id, limit) = bounds(&page);
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT {PROJECT_COLUMNS} FROM projects
                     WHERE user_id = $1 AND (archived_at IS NOT NULL) = $2 AND {}
                     ORDER BY created_at DESC, id DESC LIMIT $5",
                    after(3, 4)
                ),
                &[&user.0, &archived, &at, &id, &limit],
            )
            .await?;
        let items = rows
            .iter()
            .map(project_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Paged::from_rows(items, page.limit, |p| Cursor {
            created_at: p.created_at,
            id: p.id.0,
        }))
    }

    async fn runs(
        &self,
        user: UserId,
        project: Option<ProjectId>,
        status: Option<RunStatus>,
        page: Page,
    ) -> Result<Paged<crate::domain::records::Run>, StoreError> {
        let (at, id, limit) = bounds(&page);
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs
                     WHERE user_id = $1 AND ($2::uuid IS NULL OR project_id = $2)
                       AND ($3::run_status IS NULL OR status = $3) AND {}
                     ORDER BY created_at DESC, id DESC LIMIT $6",
                    after(4, 5)
                ),
                &[&user.0, &project.map(|p| p.0), &status, &at, &id, &limit],
            )
            .await?;
        let items = rows
            .iter()
            .map(run_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Paged::from_rows(items, page.limit, |r| Cursor {
            created_at: r.created_at,
            id: r.id.0,
        }))
    }

    async fn run_tasks(
        &self,
        user: UserId,
        run: RunId,
    ) -> Result<Option<Vec<TaskDetail>>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT r.user_id = $2 AS mine, {TASK_COLUMNS}
                     FROM runs r LEFT JOIN tasks t ON t.run_id = r.id
                     WHERE r.id = $1 ORDER BY t.position"
                ),
                &[&run.0, &user.0],
            )
            .await?;
        let mine = rows
            .first()
            .map(|row| row.try_get::<_, bool>("mine"))
            .transpose()?;
        if mine != Some(true) {
            return Ok(None);
        }
        let mut tasks = Vec::new();
        for row in &rows {
            if row.try_get::<_, Option<Uuid>>("id")?.is_some() {
                tasks.push(task_from_row(row)?);
            }
        }
        let ids: Vec<Uuid> = tasks.iter().map(|t| t.id.0).collect();
        let mut attempts = attempts_of(&client, &ids).await?;
        Ok(Some(
            tasks
                .into_iter()
                .map(|task| TaskDetail {
                    attempts: attempts.remove(&task.id.0).unwrap_or_default(),
                    task,
                })
                .collect(),
        ))
    }

    async fn task(&self, user: UserId, task: TaskId) -> Result<Option<TaskDetail>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM tasks t JOIN runs r ON r.id = t.run_id
                     WHERE t.id = $1 AND r.user_id = $2"
                ),
                &[&task.0, &user.0],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let task = task_from_row(&row)?;
        let mut attempts = attempts_of(&client, &[task.id.0]).await?;
        Ok(Some(TaskDetail {
            attempts: attempts.remove(&task.id.0).unwrap_or_default(),
            task,
        }))
    }

    async fn analytics(
        &self,
        user: UserId,
        project: Option<ProjectId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Analytics, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(&ANALYTICS, &[&user.0, &project.map(|p| p.0), &from, &to])
            .await?;
        let document: serde_json::Value = row.try_get(0)?;
        serde_json::from_value(document).map_err(|e| StoreError::Backend(Box::new(e)))
    }

    async fn artifacts(
        &self,
        user: UserId,
        project: ProjectId,
        run: Option<RunId>,
        page: Page,
    ) -> Result<Paged<ArtifactEntry>, StoreError> {
        let (at, id, limit) = bounds(&page);
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT {ARTIFACT_COLUMNS}, a.created_at
                     FROM artifacts a JOIN projects p ON p.id = a.project_id
                     WHERE a.project_id = $1 AND p.user_id = $2 AND ($3::uuid IS NULL OR a.run_id = $3)
                       AND ($4::timestamptz IS NULL OR (a.created_at, a.id) < ($4, $5::uuid))
                     ORDER BY a.created_at DESC, a.id DESC LIMIT $6"
                ),
                &[&project.0, &user.0, &run.map(|r| r.0), &at, &id, &limit],
            )
            .await?;
        let items = rows.iter().map(entry_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Paged::from_rows(items, page.limit, |a| Cursor {
            created_at: a.created_at,
            id: a.artifact.id.0,
        }))
    }
}

/// Analytics of user `$1` (project `$2` or all) over `[$3, $4)`, as one JSON document:
/// runs and model calls, and the traffic the projects' apps and pages sent. Durations are
/// of runs that succeeded; money is in micro-dollars. Statuses and outcomes come from their
/// enums.
static ANALYTICS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "
WITH r AS (
    SELECT id, status, created_at, completed_at FROM runs
    WHERE user_id = $1 AND ($2::uuid IS NULL OR project_id = $2)
      AND created_at >= $3 AND created_at < $4
), c AS (
    SELECT task_id, agent, outcome, cost_micro_usd, input_tokens, output_tokens FROM llm_calls
    WHERE user_id = $1 AND ($2::uuid IS NULL OR project_id = $2)
      AND created_at >= $3 AND created_at < $4
), e AS (
    SELECT name, visitor_id, occurred_at FROM analytics_events
    WHERE user_id = $1 AND ($2::uuid IS NULL OR project_id = $2)
      AND occurred_at >= $3 AND occurred_at < $4
)
SELECT json_build_object(
  'from', $3::timestamptz, 'to', $4::timestamptz,
  'runs', (SELECT count(*) FROM r),
  'runs_per_day', (SELECT coalesce(json_agg(d ORDER BY d.day), '[]') FROM (
      SELECT to_char(date_trunc('day', created_at), 'YYYY-MM-DD') AS day, count(*) AS runs,
             count(*) FILTER (WHERE status = '{succeeded}') AS succeeded,
             count(*) FILTER (WHERE status = '{failed}') AS failed
      FROM r GROUP BY 1) d),
  'success_rate', (SELECT CASE WHEN count(*) = 0 THEN NULL
                     ELSE round(count(*) FILTER (WHERE status = '{succeeded}')::numeric / count(*), 4) END
                   FROM r WHERE status IN ('{succeeded}', '{failed}', '{cancelled}')),
  'median_duration_secs', (SELECT round(percentile_cont(0.5) WITHIN GROUP (
                              ORDER BY extract(epoch FROM completed_at - created_at))::numeric, 3)
                           FROM r WHERE status = '{succeeded}' AND completed_at IS NOT NULL),
  'cost_micro_usd', (SELECT coalesce(sum(cost_micro_usd), 0) FROM c),
  'cost_per_task_micro_usd', (SELECT CASE WHEN count(DISTINCT task_id) = 0 THEN NULL
                                ELSE round(sum(cost_micro_usd)::numeric / count(DISTINCT task_id), 2) END
                              FROM c WHERE task_id IS NOT NULL),
  'cache_hit_rate', (SELECT CASE WHEN count(*) = 0 THEN NULL
                       ELSE round(count(*) FILTER (WHERE outcome = '{cache_hit}')::numeric / count(*), 4) END
                     FROM c),
  'events', (SELECT count(*) FROM e),
  'visitors', (SELECT count(DISTINCT visitor_id) FROM e),
  'traffic_per_day', (SELECT coalesce(json_agg(d ORDER BY d.day), '[]') FROM (
      SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*) AS events,
             count(DISTINCT visitor_id) AS visitors,
             count(*) FILTER (WHERE name = '{page_view}') AS page_views
      FROM e GROUP BY 1) d),
  'agents', (SELECT coalesce(json_agg(a ORDER BY a.agent), '[]') FROM (
      SELECT agent, count(*) AS calls, count(DISTINCT task_id) AS tasks,
             sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
             sum(cost_micro_usd) AS cost_micro_usd,
             CASE WHEN count(DISTINCT task_id) = 0 THEN NULL
                  ELSE round(sum(cost_micro_usd)::numeric / count(DISTINCT task_id), 2) END
               AS cost_per_task_micro_usd
      FROM c WHERE agent IS NOT NULL GROUP BY agent) a)
)",
        succeeded = RunStatus::Succeeded,
        failed = RunStatus::Failed,
        cancelled = RunStatus::Cancelled,
        cache_hit = LlmCallOutcome::CacheHit,
        page_view = crate::domain::analytics::PAGE_VIEW,
    )
});
