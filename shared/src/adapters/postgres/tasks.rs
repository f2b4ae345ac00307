//! Tasks and the ready-set decisions. Every status change is one transaction; the
//! invariants that make concurrent completions safe are in the comments of the migration
//! (`tasks.pending_dependencies`, `runs.open_tasks`).

use super::Pool;
use super::rows::count;
use crate::domain::records::{Attempt, Run, Task};
use crate::domain::{
    AgentKind, AttemptStatus, Complexity, MicroUsd, Priority, ProjectId, RunId, TaskGraph, TaskId,
    TaskStatus,
};
use crate::ports::{Completion, Failure, StoreError, TaskStore};
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use uuid::Uuid;

const TASK_COLUMNS: &str = "t.id, t.run_id, t.project_id, t.parent_task_id, t.task_key, t.agent, t.title, t.description, \
     t.status, t.priority, t.complexity, t.budget_micro_usd, t.attempts, t.max_attempts, t.result, t.error_log, \
     t.created_at, t.started_at, t.completed_at, \
     ARRAY(SELECT d.depends_on FROM task_dependencies d WHERE d.task_id = t.id ORDER BY d.depends_on) AS depends_on";

/// `TaskStore` on Postgres.
#[derive(Clone)]
pub struct PgTaskStore {
    pool: Pool,
}

impl PgTaskStore {
    pub fn new(pool: Pool) -> Self {
        PgTaskStore { pool }
    }
}

fn task_from_row(row: &Row) -> Result<Task, StoreError> {
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

async fn tasks_where(
    client: &impl GenericClient,
    condition: &str,
    ids: &[Uuid],
) -> Result<Vec<Task>, StoreError> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks t WHERE {condition} ORDER BY t.priority DESC, t.position"
    );
    client
        .query(&sql, &[&ids])
        .await?
        .iter()
        .map(task_from_row)
        .collect()
}

fn terminal() -> Vec<TaskStatus> {
    TaskStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.is_terminal())
        .collect()
}

/// The task's status, locked for the rest of the transaction.
async fn lock_task(
    tx: &Transaction<'_>,
    task: TaskId,
) -> Result<(RunId, TaskStatus, u32, u32), StoreError> {
    let row = tx
        .query_opt(
            "SELECT run_id, status, attempts, max_attempts FROM tasks WHERE id = $1 FOR UPDATE",
            &[&task.0],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "task",
            id: task.to_string(),
        })?;
    Ok((
        RunId(row.try_get(0)?),
        row.try_get(1)?,
        count(&row, "attempts")?,
        count(&row, "max_attempts")?,
    ))
}

fn expect_status(task: TaskId, expected: TaskStatus, actual: TaskStatus) -> Result<(), StoreError> {
    if actual == expected {
        Ok(())
    } else {
        Err(StoreError::WrongTaskStatus {
            task,
            expected,
            actual,
        })
    }
}

/// Counts `ended` more tasks of the run as ended; true when none is left open. The run row
/// lock taken here is held to commit, so two last tasks ending at once see 1 then 0.
async fn end_tasks(tx: &Transaction<'_>, run: RunId, ended: usize) -> Result<bool, StoreError> {
    let ended = i32::try_from(ended).unwrap_or(i32::MAX);
    let row = tx
        .query_one(
            "UPDATE runs SET open_tasks = open_tasks - $2 WHERE id = $1 RETURNING open_tasks",
            &[&run.0, &ended],
        )
        .await?;
    Ok(count(&row, "open_tasks")? == 0)
}

async fn finish_attempt(
    tx: &Transaction<'_>,
    task: TaskId,
    attempt_no: u32,
    status: AttemptStatus,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let attempt_no = i32::try_from(attempt_no).unwrap_or(i32::MAX);
    tx.execute(
        "UPDATE task_attempts SET status = $3, error = $4, finished_at = now() WHERE task_id = $1 AND attempt_no = $2",
        &[&task.0, &attempt_no, &status, &error],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl TaskStore for PgTaskStore {
    async fn insert_graph(&self, run: &Run, graph: &TaskGraph) -> Result<Vec<Task>, StoreError> {
        let tasks = graph.tasks();
        let ids: Vec<Uuid> = tasks.iter().map(|_| Uuid::new_v4()).collect();
        let positions: Vec<i32> = (0..tasks.len())
            .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
            .collect();
        let keys: Vec<&str> = tasks.iter().map(|t| t.key.as_str()).collect();
        let agents: Vec<AgentKind> = tasks.iter().map(|t| t.agent).collect();
        let titles: Vec<&str> = tasks.iter().map(|t| t.title.as_str()).collect();
        let descriptions: Vec<&str> = tasks.iter().map(|t| t.description.as_str()).collect();
        let priorities: Vec<Priority> = tasks.iter().map(|t| t.priority).collect();
        let complexities: Vec<Complexity> = tasks.iter().map(|t| t.complexity).collect();
        let budgets: Vec<i64> = tasks.iter().map(|t| t.budget.0).collect();
        let pending: Vec<i32> = tasks
            .iter()
            .map(|t| i32::try_from(t.depends_on.len()).unwrap_or(i32::MAX))
            .collect();
        let statuses: Vec<TaskStatus> = tasks
            .iter()
            .map(|t| {
                if t.depends_on.is_empty() {
                    TaskStatus::Ready
                } else {
                    TaskStatus::Pending
                }
            })
            .collect();
        let (dependants, dependencies): (Vec<Uuid>, Vec<Uuid>) = tasks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.depends_on.iter().map(move |&d| (i, d)))
            .map(|(i, d)| (ids[i], ids[d]))
            .unzip();

        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO tasks (id, run_id, project_id, position, task_key, agent, title, description, priority,
                                complexity, budget_micro_usd, pending_dependencies, status)
             SELECT u.id, $1, $2, u.position, u.task_key, u.agent, u.title, u.description, u.priority,
                    u.complexity, u.budget, u.pending, u.status
             FROM unnest($3::uuid[], $4::int[], $5::text[], $6::agent_kind[], $7::text[], $8::text[],
                         $9::task_priority[], $10::task_complexity[], $11::bigint[], $12::int[], $13::task_status[])
                  AS u(id, position, task_key, agent, title, description, priority, complexity, budget, pending, status)",
            &[
                &run.id.0,
                &run.project_id.0,
                &ids,
                &positions,
                &keys,
                &agents,
                &titles,
                &descriptions,
                &priorities,
                &complexities,
                &budgets,
                &pending,
                &statuses,
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO task_dependencies (task_id, depends_on) SELECT * FROM unnest($1::uuid[], $2::uuid[])",
            &[&dependants, &dependencies],
        )
        .await?;
        let open = i32::try_from(tasks.len()).unwrap_or(i32::MAX);
        tx.execute(
            "UPDATE runs SET open_tasks = open_tasks + $2 WHERE id = $1",
            &[&run.id.0, &open],
        )
        .await?;
        let stored = self.run_tasks_in(&tx, run.id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn task(&self, id: TaskId) -> Result<Task, StoreError> {
        let client = self.pool.get().await?;
        tasks_where(&client, "t.id = ANY($1)", &[id.0])
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound {
                what: "task",
                id: id.to_string(),
            })
    }

    async fn run_tasks(&self, run: RunId) -> Result<Vec<Task>, StoreError> {
        let client = self.pool.get().await?;
        self.run_tasks_in(&client, run).await
    }

    async fn claim_ready(&self, run: RunId) -> Result<Vec<Task>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // The run row lock serialises dispatchers of one run, so the in-flight count below
        // cannot change before this transaction commits.
        let limit: i32 = tx
            .query_opt(
                "SELECT max_concurrency FROM runs WHERE id = $1 FOR UPDATE",
                &[&run.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "run",
                id: run.to_string(),
            })?
            .try_get(0)?;
        let in_flight: i64 = tx
            .query_one(
                "SELECT count(*) FROM tasks WHERE run_id = $1 AND status = ANY($2)",
                &[&run.0, &vec![TaskStatus::Queued, TaskStatus::Running]],
            )
            .await?
            .try_get(0)?;
        let room = (i64::from(limit) - in_flight).max(0);
        let claimed: Vec<Uuid> = tx
            .query(
                "UPDATE tasks SET status = $3 WHERE id IN (
                     SELECT id FROM tasks WHERE run_id = $1 AND status = $4
                     ORDER BY priority DESC, position LIMIT $2 FOR UPDATE)
                 RETURNING id",
                &[&run.0, &room, &TaskStatus::Queued, &TaskStatus::Ready],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let tasks = tasks_where(&tx, "t.id = ANY($1)", &claimed).await?;
        tx.commit().await?;
        Ok(tasks)
    }

    async fn unclaim(&self, task: TaskId) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE tasks SET status = $2 WHERE id = $1 AND status = $3",
                &[&task.0, &TaskStatus::Ready, &TaskStatus::Queued],
            )
            .await?;
        Ok(())
    }

    async fn start_attempt(&self, task: TaskId) -> Result<Option<Attempt>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (_, status, attempts, _) = lock_task(&tx, task).await?;
        if status != TaskStatus::Queued {
            return Ok(None);
        }
        let attempt_no = attempts + 1;
        let n = i32::try_from(attempt_no).unwrap_or(i32::MAX);
        tx.execute(
            "UPDATE tasks SET status = $2, attempts = $3, started_at = coalesce(started_at, now()) WHERE id = $1",
            &[&task.0, &TaskStatus::Running, &n],
        )
        .await?;
        let row = tx
            .query_one(
                "INSERT INTO task_attempts (task_id, attempt_no, status) VALUES ($1, $2, $3) RETURNING started_at",
                &[&task.0, &n, &AttemptStatus::Running],
            )
            .await?;
        tx.commit().await?;
        Ok(Some(Attempt {
            task_id: task,
            attempt_no,
            started_at: row.try_get(0)?,
        }))
    }

    async fn running_longer_than(
        &self,
        task: TaskId,
        age: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let seconds = age.as_secs_f64();
        let row = client
            .query_opt(
                "SELECT a.started_at < now() - make_interval(secs => $3)
                 FROM tasks t JOIN task_attempts a ON a.task_id = t.id AND a.attempt_no = t.attempts
                 WHERE t.id = $1 AND t.status = $2",
                &[&task.0, &TaskStatus::Running, &seconds],
            )
            .await?;
        Ok(row
            .map(|r| r.try_get::<_, bool>(0))
            .transpose()?
            .unwrap_or(false))
    }

    async fn complete(
        &self,
        task: TaskId,
        result: &serde_json::Value,
    ) -> Result<Completion, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (run, status, attempts, _) = lock_task(&tx, task).await?;
        expect_status(task, TaskStatus::Running, status)?;
        tx.execute(
            "UPDATE tasks SET status = $2, result = $3, completed_at = now() WHERE id = $1",
            &[&task.0, &TaskStatus::Completed, result],
        )
        .await?;
        finish_attempt(&tx, task, attempts, AttemptStatus::Succeeded, None).await?;
        // Lock the dependants in id order first: two completions sharing dependants then
        // take their locks in the same order and cannot deadlock.
        tx.query(
            "SELECT id FROM tasks WHERE id IN (SELECT task_id FROM task_dependencies WHERE depends_on = $1)
             ORDER BY id FOR UPDATE",
            &[&task.0],
        )
        .await?;
        let released: Vec<TaskId> = tx
            .query(
                "UPDATE tasks t SET pending_dependencies = t.pending_dependencies - 1,
                     status = CASE WHEN t.pending_dependencies = 1 AND t.status = $2 THEN $3 ELSE t.status END
                 FROM task_dependencies d
                 WHERE d.depends_on = $1 AND t.id = d.task_id
                 RETURNING t.id, t.status",
                &[&task.0, &TaskStatus::Pending, &TaskStatus::Ready],
            )
            .await?
            .iter()
            .filter(|r| r.try_get::<_, TaskStatus>(1).ok() == Some(TaskStatus::Ready))
            .map(|r| r.try_get(0).map(TaskId))
            .collect::<Result<_, _>>()?;
        let run_settled = end_tasks(&tx, run, 1).await?;
        tx.commit().await?;
        Ok(Completion {
            released,
            run_settled,
        })
    }

    async fn fail_attempt(
        &self,
        task: TaskId,
        error: &str,
        retryable: bool,
    ) -> Result<Failure, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (run, status, attempts, max_attempts) = lock_task(&tx, task).await?;
        expect_status(task, TaskStatus::Running, status)?;
        finish_attempt(&tx, task, attempts, AttemptStatus::Failed, Some(error)).await?;
        if retryable && attempts < max_attempts {
            tx.execute(
                "UPDATE tasks SET status = $2, error_log = $3 WHERE id = $1",
                &[&task.0, &TaskStatus::Queued, &error],
            )
            .await?;
            tx.commit().await?;
            return Ok(Failure::Retry {
                next_attempt: attempts + 1,
            });
        }
        tx.execute(
            "UPDATE tasks SET status = $2, error_log = $3, completed_at = now() WHERE id = $1",
            &[&task.0, &TaskStatus::Failed, &error],
        )
        .await?;
        // Everything downstream waits on this task, so none of it can have started. Lock it
        // in id order, as `complete` does, so the two cannot deadlock.
        let downstream: Vec<Uuid> = tx
            .query(
                "WITH RECURSIVE downstream(id) AS (
                     SELECT task_id FROM task_dependencies WHERE depends_on = $1
                     UNION
                     SELECT d.task_id FROM task_dependencies d JOIN downstream ON d.depends_on = downstream.id)
                 SELECT id FROM tasks WHERE id IN (SELECT id FROM downstream) ORDER BY id FOR UPDATE",
                &[&task.0],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let blocked: Vec<TaskId> = tx
            .query(
                "UPDATE tasks SET status = $2, error_log = $3, completed_at = now()
                 WHERE id = ANY($1) AND NOT (status = ANY($4))
                 RETURNING id",
                &[
                    &downstream,
                    &TaskStatus::Blocked,
                    &format!("blocked: dependency {task} failed"),
                    &terminal(),
                ],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0).map(TaskId))
            .collect::<Result<_, _>>()?;
        let run_settled = end_tasks(&tx, run, 1 + blocked.len()).await?;
        tx.commit().await?;
        Ok(Failure::Failed {
            blocked,
            run_settled,
        })
    }
}

impl PgTaskStore {
    async fn run_tasks_in(
        &self,
        client: &impl GenericClient,
        run: RunId,
    ) -> Result<Vec<Task>, StoreError> {
        let sql =
            format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.run_id = $1 ORDER BY t.position");
        client
            .query(&sql, &[&run.0])
            .await?
            .iter()
            .map(task_from_row)
            .collect()
    }
}
