//! Reading tasks: the columns a task is read from and the reads that every task change
//! shares (`tasks.rs` and `transitions.rs` both use them; neither owns them).

use super::cached::Cached;
use super::rows::count;
use crate::domain::records::Task;
use crate::domain::{MicroUsd, ProjectId, RunId, TaskId};
use crate::ports::StoreError;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

pub(super) const TASK_COLUMNS: &str = "t.id, t.run_id, t.project_id, t.parent_task_id, t.task_key, t.agent, t.title, t.description, \
     t.status, t.priority, t.complexity, t.budget_micro_usd, t.attempts, t.max_attempts, t.result, t.error_log, \
     t.created_at, t.started_at, t.completed_at, \
     ARRAY(SELECT d.depends_on FROM task_dependencies d WHERE d.task_id = t.id ORDER BY d.depends_on) AS depends_on";

pub(super) fn task_from_row(row: &Row) -> Result<Task, StoreError> {
    let depends_on: Vec<Uuid> = row.try_get("depends_on")?;
    Ok(Task {
        id: TaskId(row.try_get("id")?),
        run_id: RunId(row.try_get("run_id")?),
        project_id: ProjectId(row.try_get("project_id")?),
        parent_task_id: row
            .try_get::<_, Option<Uuid>>("parent_task_id")?
            .map(TaskId),
        key: row.try_get("task_key")?,
        agent: row.try_get("agent")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        status: row.try_get("status")?,
        priority: row.try_get("priority")?,
        complexity: row.try_get("complexity")?,
        budget: MicroUsd(row.try_get("budget_micro_usd")?),
        depends_on: depends_on.into_iter().map(TaskId).collect(),
        attempts: count(row, "attempts")?,
        max_attempts: count(row, "max_attempts")?,
        result: row.try_get("result")?,
        error_log: row.try_get("error_log")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

pub(super) async fn tasks_where(
    client: &impl GenericClient,
    condition: &str,
    ids: &[Uuid],
) -> Result<Vec<Task>, StoreError> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks t WHERE {condition} ORDER BY t.priority DESC, t.position"
    );
    client
        .query_cached(&sql, &[&ids])
        .await?
        .iter()
        .map(task_from_row)
        .collect()
}
