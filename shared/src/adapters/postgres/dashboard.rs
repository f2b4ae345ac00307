//! `Dashboard` on Postgres: one statement for all the parents of a batch (two for tasks,
//! whose attempts are a second), the owner checked in it. Pages of each parent come from a
//! `LATERAL` subquery per parent, so each is an index scan that stops at the page's end.

use super::Pool;
use super::artifacts::{ARTIFACT_COLUMNS, entry_from};
use super::browse::{after, attempts_of, bounds};
use super::cached::Cached;
use super::ledger::{TOTALS, totals_from};
use super::projects::{PROJECT_COLUMNS, project_from};
use super::runs::{RUN_COLUMNS, run_from_row};
use super::task_rows::{TASK_COLUMNS, task_from_row};
use super::{approvals, deployments};
use crate::domain::approvals::Approval;
use crate::domain::connections::Deployment;
use crate::domain::paging::{Cursor, Page, Paged};
use crate::domain::records::{CostTotals, Project, Run};
use crate::domain::{ProjectId, RunId, RunStatus, TaskId, UserId};
use crate::ports::{ArtifactEntry, Dashboard, StoreError, TaskDetail};
use async_trait::async_trait;
use std::collections::HashMap;
use std::hash::Hash;
use uuid::Uuid;

/// `Dashboard` on Postgres.
#[derive(Clone)]
pub struct PgDashboard {
    pool: Pool,
}

impl PgDashboard {
    pub fn new(pool: Pool) -> Self {
        PgDashboard { pool }
    }

    /// Totals per `column` (`project_id`, `run_id`, `task_id`) of `user`'s calls.
    async fn totals<K: Hash + Eq>(
        &self,
        column: &str,
        user: UserId,
        ids: Vec<Uuid>,
        key: impl Fn(Uuid) -> K,
    ) -> Result<HashMap<K, CostTotals>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT {column}, {TOTALS} FROM llm_calls
                     WHERE user_id = $1 AND {column} = ANY($2) GROUP BY {column}"
                ),
                &[&user.0, &ids],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((key(row.try_get(0)?), totals_from(row, 1)?)))
            .collect()
    }
}

fn uuids<T>(ids: &[T], id: impl Fn(&T) -> Uuid) -> Vec<Uuid> {
    ids.iter().map(id).collect()
}

/// `items` in their order, grouped by `parent`.
fn grouped<K: Hash + Eq, T>(items: Vec<T>, parent: impl Fn(&T) -> K) -> HashMap<K, Vec<T>> {
    let mut groups: HashMap<K, Vec<T>> = HashMap::new();
    for item in items {
        groups.entry(parent(&item)).or_default().push(item);
    }
    groups
}

/// Each parent's rows (up to `limit + 1`, newest first) as a page.
fn pages<K: Hash + Eq, T>(
    items: Vec<T>,
    page: &Page,
    parent: impl Fn(&T) -> K,
    cursor: impl Fn(&T) -> Cursor + Copy,
) -> HashMap<K, Paged<T>> {
    grouped(items, parent)
        .into_iter()
        .map(|(key, rows)| (key, Paged::from_rows(rows, page.limit, cursor)))
        .collect()
}

/// Tasks with their attempts, fetched in a second statement.
async fn with_attempts(
    client: &deadpool_postgres::Client,
    rows: &[tokio_postgres::Row],
) -> Result<Vec<TaskDetail>, StoreError> {
    let tasks = rows
        .iter()
        .map(task_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id.0).collect();
    let mut attempts = match ids.is_empty() {
        true => HashMap::new(),
        false => attempts_of(client, &ids).await?,
    };
    Ok(tasks
        .into_iter()
        .map(|task| TaskDetail {
            attempts: attempts.remove(&task.id.0).unwrap_or_default(),
            task,
        })
        .collect())
}

#[async_trait]
impl Dashboard for PgDashboard {
    async fn projects(
        &self,
        user: UserId,
        ids: &[ProjectId],
    ) -> Result<HashMap<ProjectId, Project>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ANY($1) AND user_id = $2"
                ),
                &[&uuids(ids, |p| p.0), &user.0],
            )
            .await?;
        rows.iter()
            .map(|row| project_from(row).map(|p| (p.id, p)))
            .collect()
    }

    async fn runs(&self, user: UserId, ids: &[RunId]) -> Result<HashMap<RunId, Run>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ANY($1) AND user_id = $2"),
                &[&uuids(ids, |r| r.0), &user.0],
            )
            .await?;
        rows.iter()
            .map(|row| run_from_row(row).map(|r| (r.id, r)))
            .collect()
    }

    async fn tasks(
        &self,
        user: UserId,
        ids: &[TaskId],
    ) -> Result<HashMap<TaskId, TaskDetail>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM tasks t JOIN runs r ON r.id = t.run_id
                     WHERE t.id = ANY($1) AND r.user_id = $2"
                ),
                &[&uuids(ids, |t| t.0), &user.0],
            )
            .await?;
        Ok(with_attempts(&client, &rows)
            .await?
            .into_iter()
            .map(|detail| (detail.task.id, detail))
            .collect())
    }

    async fn run_projects(
        &self,
        user: UserId,
        runs: &[RunId],
    ) -> Result<HashMap<RunId, Project>, StoreError> {
        let client = self.pool.get().await?;
        let columns = PROJECT_COLUMNS
            .split(", ")
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = client
            .query_cached(
                &format!(
                    "SELECT r.id AS run_id, {columns} FROM runs r JOIN projects p ON p.id = r.project_id
                     WHERE r.id = ANY($1) AND r.user_id = $2"
                ),
                &[&uuids(runs, |r| r.0), &user.0],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((RunId(row.try_get("run_id")?), project_from(row)?)))
            .collect()
    }

    async fn project_runs(
        &self,
        user: UserId,
        projects: &[ProjectId],
        status: Option<RunStatus>,
        page: Page,
    ) -> Result<HashMap<ProjectId, Paged<Run>>, StoreError> {
        let (at, id, limit) = bounds(&page);
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT r.* FROM unnest($2::uuid[]) AS p(id) CROSS JOIN LATERAL (
                       SELECT {RUN_COLUMNS} FROM runs
                       WHERE project_id = p.id AND user_id = $1
                         AND ($3::run_status IS NULL OR status = $3) AND {}
                       ORDER BY created_at DESC, id DESC LIMIT $6) r
                     ORDER BY r.project_id, r.created_at DESC, r.id DESC",
                    after(4, 5)
                ),
                &[
                    &user.0,
                    &uuids(projects, |p| p.0),
                    &status,
                    &at,
                    &id,
                    &limit,
                ],
            )
            .await?;
        let runs = rows
            .iter()
            .map(run_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(pages(
            runs,
            &page,
            |r| r.project_id,
            |r| Cursor {
                created_at: r.created_at,
                id: r.id.0,
            },
        ))
    }

    async fn project_artifacts(
        &self,
        user: UserId,
        projects: &[ProjectId],
        page: Page,
    ) -> Result<HashMap<ProjectId, Paged<ArtifactEntry>>, StoreError> {
        let (at, id, limit) = bounds(&page);
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT x.* FROM unnest($2::uuid[]) AS p(id)
                     JOIN projects owner ON owner.id = p.id AND owner.user_id = $1
                     CROSS JOIN LATERAL (
                       SELECT {ARTIFACT_COLUMNS}, a.created_at FROM artifacts a
                       WHERE a.project_id = p.id
                         AND ($3::timestamptz IS NULL OR (a.created_at, a.id) < ($3, $4::uuid))
                       ORDER BY a.created_at DESC, a.id DESC LIMIT $5) x
                     ORDER BY x.project_id, x.created_at DESC, x.id DESC"
                ),
                &[&user.0, &uuids(projects, |p| p.0), &at, &id, &limit],
            )
            .await?;
        let entries = rows.iter().map(entry_from).collect::<Result<Vec<_>, _>>()?;
        Ok(pages(
            entries,
            &page,
            |e| e.artifact.project_id,
            |e| Cursor {
                created_at: e.created_at,
                id: e.artifact.id.0,
            },
        ))
    }

    async fn project_deployments(
        &self,
        user: UserId,
        projects: &[ProjectId],
        limit: u32,
    ) -> Result<HashMap<ProjectId, Vec<Deployment>>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT d.* FROM unnest($2::uuid[]) AS p(id)
                     JOIN projects owner ON owner.id = p.id AND owner.user_id = $1
                     CROSS JOIN LATERAL (
                       SELECT {} FROM deployments
                       WHERE project_id = p.id ORDER BY created_at DESC, id LIMIT $3) d
                     ORDER BY d.project_id, d.created_at DESC, d.id",
                    deployments::COLUMNS
                ),
                &[&user.0, &uuids(projects, |p| p.0), &i64::from(limit)],
            )
            .await?;
        let all = rows
            .iter()
            .map(deployments::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(grouped(all, |d| d.project_id))
    }

    async fn project_costs(
        &self,
        user: UserId,
        projects: &[ProjectId],
    ) -> Result<HashMap<ProjectId, CostTotals>, StoreError> {
        self.totals("project_id", user, uuids(projects, |p| p.0), ProjectId)
            .await
    }

    async fn run_costs(
        &self,
        user: UserId,
        runs: &[RunId],
    ) -> Result<HashMap<RunId, CostTotals>, StoreError> {
        self.totals("run_id", user, uuids(runs, |r| r.0), RunId)
            .await
    }

    async fn run_tasks(
        &self,
        user: UserId,
        runs: &[RunId],
    ) -> Result<HashMap<RunId, Vec<TaskDetail>>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM tasks t JOIN runs r ON r.id = t.run_id
                     WHERE t.run_id = ANY($1) AND r.user_id = $2 ORDER BY t.run_id, t.position"
                ),
                &[&uuids(runs, |r| r.0), &user.0],
            )
            .await?;
        let tasks = with_attempts(&client, &rows).await?;
        Ok(grouped(tasks, |t| t.task.run_id))
    }

    async fn task_costs(
        &self,
        user: UserId,
        tasks: &[TaskId],
    ) -> Result<HashMap<TaskId, CostTotals>, StoreError> {
        self.totals("task_id", user, uuids(tasks, |t| t.0), TaskId)
            .await
    }

    async fn run_artifacts(
        &self,
        user: UserId,
        runs: &[RunId],
    ) -> Result<HashMap<RunId, Vec<ArtifactEntry>>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT {ARTIFACT_COLUMNS}, a.created_at
                     FROM artifacts a JOIN projects p ON p.id = a.project_id
                     WHERE a.run_id = ANY($1) AND p.user_id = $2
                     ORDER BY a.run_id, a.created_at, a.key"
                ),
                &[&uuids(runs, |r| r.0), &user.0],
            )
            .await?;
        let mut by_run: HashMap<RunId, Vec<ArtifactEntry>> = HashMap::new();
        for row in &rows {
            let entry = entry_from(row)?;
            if let Some(run) = entry.artifact.run_id {
                by_run.entry(run).or_default().push(entry);
            }
        }
        Ok(by_run)
    }

    async fn run_approvals(
        &self,
        user: UserId,
        runs: &[RunId],
    ) -> Result<HashMap<RunId, Vec<Approval>>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT {} FROM approvals a JOIN projects p ON p.id = a.project_id
                     WHERE a.run_id = ANY($1) AND p.user_id = $2
                     ORDER BY a.run_id, a.created_at, a.id",
                    approvals::COLUMNS
                ),
                &[&uuids(runs, |r| r.0), &user.0],
            )
            .await?;
        let all = rows
            .iter()
            .map(approvals::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(grouped(all, |a| a.run_id))
    }
}
