//! The building blocks of the engine's transactions, each run inside a caller's
//! transaction: storing a graph, dispatching ready tasks, ending tasks, answering the
//! execute token. The invariants that make concurrent completions safe are in the comments
//! of the migrations (`tasks.pending_dependencies`, `runs.open_tasks`).

use super::cached::Cached;
use super::effects::{emit, send};
use super::rows::count;
use super::task_rows::{task_from_row, tasks_where};
use crate::domain::events::{EventBody, TaskBlocked, TaskQueued, TaskRef};
use crate::domain::messages::{Executed, Outgoing, TaskMessage, as_json};
use crate::domain::records::{Run, Task};
use crate::domain::{
    AgentKind, AttemptStatus, Complexity, Priority, RunId, RunStatus, TaskGraph, TaskId, TaskStatus,
};
use crate::ports::{Effects, StoreError};
use deadpool_postgres::{GenericClient, Transaction};
use uuid::Uuid;

/// Task statuses that end a task.
pub(super) fn terminal() -> Vec<TaskStatus> {
    TaskStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.is_terminal())
        .collect()
}

/// Stores the graph's tasks for `run` and counts them as open.
pub(super) async fn insert_graph(
    tx: &Transaction<'_>,
    run: &Run,
    graph: &TaskGraph,
) -> Result<Vec<Task>, StoreError> {
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
    let ready = graph.ready_at_start();
    let statuses: Vec<TaskStatus> = (0..tasks.len())
        .map(|i| match ready.contains(&i) {
            true => TaskStatus::Ready,
            false => TaskStatus::Pending,
        })
        .collect();
    let (dependants, dependencies): (Vec<Uuid>, Vec<Uuid>) = tasks
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.depends_on.iter().map(move |&d| (i, d)))
        .map(|(i, d)| (ids[i], ids[d]))
        .unzip();
    tx.execute_cached(
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
    tx.execute_cached(
        "INSERT INTO task_dependencies (task_id, depends_on) SELECT * FROM unnest($1::uuid[], $2::uuid[])",
        &[&dependants, &dependencies],
    )
    .await?;
    let open = i32::try_from(tasks.len()).unwrap_or(i32::MAX);
    tx.execute_cached(
        "UPDATE runs SET open_tasks = open_tasks + $2 WHERE id = $1",
        &[&run.id.0, &open],
    )
    .await?;
    run_tasks(tx, run.id).await
}

/// The run's tasks in plan order.
pub(super) async fn run_tasks(
    client: &impl GenericClient,
    run: RunId,
) -> Result<Vec<Task>, StoreError> {
    let sql = format!(
        "SELECT {} FROM tasks t WHERE t.run_id = $1 ORDER BY t.position",
        super::task_rows::TASK_COLUMNS
    );
    client
        .query_cached(&sql, &[&run.0])
        .await?
        .iter()
        .map(task_from_row)
        .collect()
}

/// Locks the run's user: every transaction that dispatches takes it right after its run
/// lock, so the user's dispatches are serialised and the locks are always taken in the
/// order run → user → tasks → project. Returns the user and how many tasks they may have
/// in flight.
pub(super) async fn lock_user_of(
    tx: &Transaction<'_>,
    run: RunId,
) -> Result<(Uuid, i64), StoreError> {
    let row = tx
        .query_opt_cached(
            "SELECT u.id, effective_plan(u.id) FROM users u JOIN runs r ON r.user_id = u.id WHERE r.id = $1
             FOR NO KEY UPDATE OF u",
            &[&run.0],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "run",
            id: run.to_string(),
        })?;
    let plan = crate::domain::PlanId(row.try_get(1)?);
    Ok((
        row.try_get(0)?,
        i64::from(crate::config::tasks_in_flight(&plan)),
    ))
}

/// Claims what the user of `run` can start now across all of their running runs (but a run
/// whose plan is being revised, which starts nothing until the revision is made): within
/// each run's concurrency limit and the user's limit of tasks in flight (their plan's), critical
/// and high priority first whatever the run, then older runs first. Each claimed task gets
/// `task_queued` and its message in the outbox. The caller holds the run lock and
/// `lock_user_of`. Tasks another transaction holds are skipped (that transaction dispatches
/// after it), so dispatchers never wait on each other's task rows.
pub(super) async fn dispatch(
    tx: &Transaction<'_>,
    effects: &mut Effects,
    run: RunId,
) -> Result<Vec<Task>, StoreError> {
    let (user, limit) = lock_user_of(tx, run).await?;
    let in_flight = vec![TaskStatus::Queued, TaskStatus::Running];
    let claimed: Vec<Uuid> = tx
        .query_cached(
            "WITH open_runs AS (
                 SELECT r.id, r.created_at,
                        r.max_concurrency - (SELECT count(*) FROM tasks x
                                             WHERE x.run_id = r.id AND x.status = ANY($3)) AS room
                 FROM runs r WHERE r.user_id = $1 AND r.status = $4 AND r.revision_pending IS NULL),
             candidates AS (
                 SELECT t.id, t.priority, t.position, o.created_at, o.room,
                        row_number() OVER (PARTITION BY t.run_id ORDER BY t.priority DESC, t.position) AS n
                 FROM tasks t JOIN open_runs o ON o.id = t.run_id
                 WHERE t.status = $5),
             chosen AS (
                 SELECT c.id FROM candidates c WHERE c.n <= c.room
                 ORDER BY c.priority DESC, c.created_at, c.position
                 LIMIT greatest($2 - (SELECT count(*) FROM tasks x JOIN runs r ON r.id = x.run_id
                                      WHERE r.user_id = $1 AND x.status = ANY($3)), 0))
             UPDATE tasks SET status = $6 WHERE id IN (
                 SELECT t.id FROM tasks t JOIN chosen ON chosen.id = t.id
                 FOR NO KEY UPDATE OF t SKIP LOCKED)
             RETURNING id",
            &[
                &user,
                &limit,
                &in_flight,
                &RunStatus::Running,
                &TaskStatus::Ready,
                &TaskStatus::Queued,
            ],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let tasks = tasks_where(tx, "t.id = ANY($1)", &claimed).await?;
    for task in &tasks {
        let queued = EventBody::TaskQueued(TaskQueued {
            task: TaskRef::of(task),
            title: task.title.clone(),
            priority: task.priority,
        });
        emit(tx, effects, task.project_id, Some(task.run_id), queued).await?;
        let message = Outgoing::Task {
            agent: task.agent,
            message: TaskMessage {
                run_id: task.run_id,
                task_id: task.id,
            },
            delay_secs: 0,
        };
        send(tx, effects, Some(task.run_id), message).await?;
    }
    Ok(tasks)
}

/// Counts `ended` more tasks of the run as ended; true when none is left open. The run row
/// lock taken here is held to commit, so two last tasks ending at once see 1 then 0.
pub(super) async fn end_tasks(
    tx: &Transaction<'_>,
    run: RunId,
    ended: usize,
) -> Result<bool, StoreError> {
    let ended = i32::try_from(ended).unwrap_or(i32::MAX);
    let row = tx
        .query_one_cached(
            "UPDATE runs SET open_tasks = open_tasks - $2 WHERE id = $1 RETURNING open_tasks",
            &[&run.0, &ended],
        )
        .await?;
    Ok(count(&row, "open_tasks")? == 0)
}

/// Answers a running run's execute token once every task has ended: success when all
/// completed, `TasksFailed` naming each failed task and its error otherwise. Without a
/// token yet (the execute step has not run), the execute step answers when it stores it.
pub(super) async fn settle(
    tx: &Transaction<'_>,
    effects: &mut Effects,
    run: RunId,
) -> Result<(), StoreError> {
    let row = tx
        .query_one_cached(
            "SELECT execute_token, status, revision_pending IS NOT NULL FROM runs WHERE id = $1",
            &[&run.0],
        )
        .await?;
    let token: Option<String> = row.try_get(0)?;
    let status: RunStatus = row.try_get(1)?;
    // A revision asked for answers the token when it is made or given up.
    let revising: bool = row.try_get(2)?;
    let Some(token) = token.filter(|_| status == RunStatus::Running && !revising) else {
        return Ok(());
    };
    let rows = tx
        .query_cached(
            "SELECT task_key, coalesce(error_log, 'failed') FROM tasks
             WHERE run_id = $1 AND status = $2 ORDER BY position",
            &[&run.0, &TaskStatus::Failed],
        )
        .await?;
    let message = if rows.is_empty() {
        let total: i64 = tx
            .query_one_cached("SELECT count(*) FROM tasks WHERE run_id = $1", &[&run.0])
            .await?
            .try_get(0)?;
        Outgoing::TaskSuccess {
            token,
            output: as_json(&Executed {
                run_id: run,
                completed: total,
            }),
        }
    } else {
        let failed = rows
            .iter()
            .map(|r| {
                Ok(format!(
                    "{}: {}",
                    r.try_get::<_, String>(0)?,
                    r.try_get::<_, String>(1)?
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Outgoing::TaskFailure {
            token,
            error: "TasksFailed".into(),
            cause: format!("{} task(s) failed: {}", failed.len(), failed.join("; ")),
        }
    };
    send(tx, effects, Some(run), message).await
}

/// Closes an attempt.
pub(super) async fn finish_attempt(
    tx: &Transaction<'_>,
    task: TaskId,
    attempt_no: u32,
    status: AttemptStatus,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let attempt_no = i32::try_from(attempt_no).unwrap_or(i32::MAX);
    tx.execute_cached(
        "UPDATE task_attempts SET status = $3, error = $4, finished_at = now() WHERE task_id = $1 AND attempt_no = $2",
        &[&task.0, &attempt_no, &status, &error],
    )
    .await?;
    Ok(())
}

/// Blocks everything downstream of a failed task, with the reason; returns what it blocked.
/// Everything downstream waits on the task, so none of it can have started. It is locked in
/// id order, as completions lock dependants, so the two cannot deadlock.
pub(super) async fn block_downstream(
    tx: &Transaction<'_>,
    effects: &mut Effects,
    failed: &Task,
    error: &str,
) -> Result<Vec<TaskId>, StoreError> {
    let downstream: Vec<Uuid> = tx
        .query_cached(
            "WITH RECURSIVE downstream(id) AS (
                 SELECT task_id FROM task_dependencies WHERE depends_on = $1
                 UNION
                 SELECT d.task_id FROM task_dependencies d JOIN downstream ON d.depends_on = downstream.id)
             SELECT id FROM tasks WHERE id IN (SELECT id FROM downstream) ORDER BY id FOR NO KEY UPDATE",
            &[&failed.id.0],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let reason = format!("blocked: dependency {} failed: {error}", failed.key);
    let blocked = tx
        .query_cached(
            "UPDATE tasks SET status = $2, error_log = $3, completed_at = now()
             WHERE id = ANY($1) AND NOT (status = ANY($4))
             RETURNING id, task_key",
            &[&downstream, &TaskStatus::Blocked, &reason, &terminal()],
        )
        .await?;
    let mut ids = Vec::with_capacity(blocked.len());
    for row in &blocked {
        let id: Uuid = row.try_get(0)?;
        let key: String = row.try_get(1)?;
        let event = EventBody::TaskBlocked(TaskBlocked {
            task_id: TaskId(id),
            key,
            blocked_by: failed.key.clone(),
            reason: reason.clone(),
        });
        emit(tx, effects, failed.project_id, Some(failed.run_id), event).await?;
        ids.push(TaskId(id));
    }
    Ok(ids)
}
