//! Plan revisions in the engine's transactions (`domain::revision`): asking for one, making
//! it, giving it up. Each holds the run's lock, then its user's (as dispatching does), so a
//! revision and a task's end never interleave: the tasks a revision read are the tasks it
//! changes, or it changes nothing.

use super::cached::Cached;
use super::effects::{emit, send};
use super::rows::count;
use super::runs::lock_run;
use super::transitions;
use crate::domain::events::{EventBody, PlannedTaskView};
use crate::domain::messages::{CallbackMessage, Outgoing};
use crate::domain::records::Task;
use crate::domain::revision::{MAX_REVISIONS, PlanRevised, Revision};
use crate::domain::{AgentKind, Complexity, Priority, RunId, RunStatus, TaskId, TaskStatus};
use crate::ports::{Effects, StoreError};
use deadpool_postgres::Transaction;
use std::collections::HashMap;
use uuid::Uuid;

/// Asks for a revision within the caller's transaction (which holds the run's lock): the
/// first `bool` says it was asked now (its message is in the outbox), the second that one
/// is pending after the call (asked now or before).
pub(super) async fn ask(
    tx: &Transaction<'_>,
    effects: &mut Effects,
    run: RunId,
    reason: &str,
) -> Result<(bool, bool), StoreError> {
    let asked = tx
        .query_opt_cached(
            "UPDATE runs SET revision_pending = $2
             WHERE id = $1 AND status = $3 AND revision_pending IS NULL AND revisions < $4
             RETURNING id",
            &[
                &run.0,
                &reason,
                &RunStatus::Running,
                &i32::try_from(MAX_REVISIONS).unwrap_or(i32::MAX),
            ],
        )
        .await?
        .is_some();
    if asked {
        let message = Outgoing::Replan {
            message: CallbackMessage {
                run_id: run,
                task_token: String::new(),
                outcome: None,
                error: None,
                revise: Some(reason.to_owned()),
            },
        };
        send(tx, effects, Some(run), message).await?;
        return Ok((true, true));
    }
    let pending: bool = tx
        .query_one_cached(
            "SELECT revision_pending IS NOT NULL FROM runs WHERE id = $1",
            &[&run.0],
        )
        .await?
        .try_get(0)?;
    Ok((false, pending))
}

/// Locks the run and its user, in the engine's order; the run as it stands.
async fn lock(tx: &Transaction<'_>, run: RunId) -> Result<crate::domain::records::Run, StoreError> {
    let locked = lock_run(tx, run).await?;
    transitions::lock_user_of(tx, run).await?;
    Ok(locked)
}

async fn pending(tx: &Transaction<'_>, run: RunId) -> Result<bool, StoreError> {
    Ok(tx
        .query_one_cached(
            "SELECT revision_pending IS NOT NULL FROM runs WHERE id = $1",
            &[&run.0],
        )
        .await?
        .try_get(0)?)
}

pub(super) async fn request(
    tx: &Transaction<'_>,
    run: RunId,
    reason: &str,
) -> Result<(bool, Effects), StoreError> {
    lock(tx, run).await?;
    let mut effects = Effects::default();
    let (asked, _) = ask(tx, &mut effects, run, reason).await?;
    Ok((asked, effects))
}

/// Makes the revision if it is still pending and the run's tasks are as it read them.
pub(super) async fn apply(
    tx: &Transaction<'_>,
    run: RunId,
    expected: &[(TaskId, TaskStatus)],
    revision: &Revision,
) -> Result<(Option<PlanRevised>, Effects), StoreError> {
    let locked = lock(tx, run).await?;
    let mut effects = Effects::default();
    if locked.status != RunStatus::Running || !pending(tx, run).await? {
        return Ok((None, effects));
    }
    let tasks = transitions::run_tasks(tx, run).await?;
    let now: Vec<(TaskId, TaskStatus)> = tasks.iter().map(|t| (t.id, t.status)).collect();
    if now != expected {
        return Ok((None, effects));
    }
    let reason: String = tx
        .query_one_cached("SELECT revision_pending FROM runs WHERE id = $1", &[&run.0])
        .await?
        .try_get(0)?;
    let by_key: HashMap<&str, &Task> = tasks.iter().map(|t| (t.key.as_str(), t)).collect();
    let graph = revision.graph.tasks();
    // Each task of the new graph's id: the kept ones and reused ones keep theirs.
    let ids: Vec<Uuid> = graph
        .iter()
        .enumerate()
        .map(
            |(i, t)| match (i < revision.kept, revision.reused.get(&t.key)) {
                (true, _) => by_key
                    .get(t.key.as_str())
                    .map(|k| k.id.0)
                    .unwrap_or_default(),
                (false, Some(id)) => id.0,
                (false, None) => Uuid::new_v4(),
            },
        )
        .collect();
    let completed: std::collections::HashSet<Uuid> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Completed)
        .map(|t| t.id.0)
        .collect();
    let round = u32::try_from(locked_revisions(tx, run).await? + 1).unwrap_or(1);
    let note = format!("replaced by plan revision {round}: {reason}");
    // Failed tasks it answers, and not-started tasks it drops, are replaced.
    let replaced: Vec<Uuid> = revision.replaced.iter().map(|(_, id)| id.0).collect();
    let removed: Vec<Uuid> = revision.removed.iter().map(|(_, id)| id.0).collect();
    tx.execute_cached(
        "UPDATE tasks SET status = $2 WHERE id = ANY($1)",
        &[&replaced, &TaskStatus::Replaced],
    )
    .await?;
    tx.execute_cached(
        "UPDATE tasks SET status = $2, error_log = $3, completed_at = now() WHERE id = ANY($1)",
        &[&removed, &TaskStatus::Replaced, &note],
    )
    .await?;
    // The tail: reused tasks take their new fields, new ones are inserted after the last.
    let tail: Vec<usize> = (revision.kept..graph.len()).collect();
    let first_position: i32 = tx
        .query_one_cached(
            "SELECT coalesce(max(position) + 1, 0) FROM tasks WHERE run_id = $1",
            &[&run.0],
        )
        .await?
        .try_get(0)?;
    let tail_ids: Vec<Uuid> = tail.iter().map(|&i| ids[i]).collect();
    tx.execute_cached(
        "DELETE FROM task_dependencies WHERE task_id = ANY($1)",
        &[&tail_ids],
    )
    .await?;
    let mut added = 0i32;
    for (n, &i) in tail.iter().enumerate() {
        let t = &graph[i];
        let deps: Vec<Uuid> = t.depends_on.iter().map(|&d| ids[d]).collect();
        let waiting = deps.iter().filter(|d| !completed.contains(d)).count();
        let status = match waiting {
            0 => TaskStatus::Ready,
            _ => TaskStatus::Pending,
        };
        let pending = i32::try_from(waiting).unwrap_or(i32::MAX);
        if revision.reused.contains_key(&t.key) {
            tx.execute_cached(
                "UPDATE tasks SET agent = $2, title = $3, description = $4, priority = $5,
                        complexity = $6, budget_micro_usd = $7, pending_dependencies = $8, status = $9
                 WHERE id = $1",
                &[
                    &ids[i],
                    &t.agent,
                    &t.title,
                    &t.description,
                    &t.priority,
                    &t.complexity,
                    &t.budget.0,
                    &pending,
                    &status,
                ],
            )
            .await?;
        } else {
            let position = first_position + i32::try_from(n).unwrap_or(i32::MAX - first_position);
            insert_task(tx, (&locked, ids[i], position), t, (pending, status)).await?;
            added += 1;
        }
    }
    // Every tail task exists now: a dependency may name one listed after it.
    for &i in &tail {
        let deps: Vec<Uuid> = graph[i].depends_on.iter().map(|&d| ids[d]).collect();
        tx.execute_cached(
            "INSERT INTO task_dependencies (task_id, depends_on) SELECT $1, unnest($2::uuid[])",
            &[&ids[i], &deps],
        )
        .await?;
    }
    tx.execute_cached(
        "UPDATE runs SET revisions = revisions + 1, revision_pending = NULL,
                open_tasks = open_tasks + $2 - $3 WHERE id = $1",
        &[
            &run.0,
            &added,
            &i32::try_from(removed.len()).unwrap_or(i32::MAX),
        ],
    )
    .await?;
    let stored = transitions::run_tasks(tx, run).await?;
    let keys: HashMap<TaskId, &str> = stored.iter().map(|t| (t.id, t.key.as_str())).collect();
    let views: Vec<PlannedTaskView> = stored
        .iter()
        .filter(|t| tail_ids.contains(&t.id.0))
        .map(|t| PlannedTaskView::of(t, &keys))
        .collect();
    let revised = PlanRevised {
        round,
        reason,
        tasks: views,
        added: revision.added.clone(),
        changed: revision.changed.clone(),
        removed: revision.removed.iter().map(|(k, _)| k.clone()).collect(),
        replaced: revision.replaced.iter().map(|(k, _)| k.clone()).collect(),
    };
    let event = EventBody::PlanRevised(revised.clone());
    emit(tx, &mut effects, locked.project_id, Some(run), event).await?;
    transitions::dispatch(tx, &mut effects, run).await?;
    settle_if_done(tx, &mut effects, run).await?;
    Ok((Some(revised), effects))
}

async fn locked_revisions(tx: &Transaction<'_>, run: RunId) -> Result<i64, StoreError> {
    let row = tx
        .query_one_cached("SELECT revisions FROM runs WHERE id = $1", &[&run.0])
        .await?;
    Ok(i64::from(row.try_get::<_, i32>(0)?))
}

/// Answers the execute token when nothing is left open.
async fn settle_if_done(
    tx: &Transaction<'_>,
    effects: &mut Effects,
    run: RunId,
) -> Result<(), StoreError> {
    let row = tx
        .query_one_cached("SELECT open_tasks FROM runs WHERE id = $1", &[&run.0])
        .await?;
    if count(&row, "open_tasks")? == 0 {
        transitions::settle(tx, effects, run).await?;
    }
    Ok(())
}

async fn insert_task(
    tx: &Transaction<'_>,
    (run, id, position): (&crate::domain::records::Run, Uuid, i32),
    t: &crate::domain::graph::GraphTask,
    (pending, status): (i32, TaskStatus),
) -> Result<(), StoreError> {
    let (agent, priority, complexity): (AgentKind, Priority, Complexity) =
        (t.agent, t.priority, t.complexity);
    tx.execute_cached(
        "INSERT INTO tasks (id, run_id, project_id, position, task_key, agent, title, description,
                            priority, complexity, budget_micro_usd, pending_dependencies, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &id,
            &run.id.0,
            &run.project_id.0,
            &position,
            &t.key,
            &agent,
            &t.title,
            &t.description,
            &priority,
            &complexity,
            &t.budget.0,
            &pending,
            &status,
        ],
    )
    .await?;
    Ok(())
}

/// Gives the pending revision up: each failed task blocks what waits on it, and the run
/// ends if nothing is left open.
pub(super) async fn abandon(
    tx: &Transaction<'_>,
    run: RunId,
    why: &str,
) -> Result<Effects, StoreError> {
    lock(tx, run).await?;
    let mut effects = Effects::default();
    if !pending(tx, run).await? {
        return Ok(effects);
    }
    tx.execute_cached(
        "UPDATE runs SET revision_pending = NULL WHERE id = $1",
        &[&run.0],
    )
    .await?;
    let failed: Vec<Task> = transitions::run_tasks(tx, run)
        .await?
        .into_iter()
        .filter(|t| t.status == TaskStatus::Failed)
        .collect();
    let mut blocked = 0;
    for task in &failed {
        let error = format!(
            "{} (the plan was not revised: {why})",
            task.error_log.as_deref().unwrap_or("failed")
        );
        blocked += transitions::block_downstream(tx, &mut effects, task, &error)
            .await?
            .len();
    }
    // What waited for the revision may start now.
    transitions::dispatch(tx, &mut effects, run).await?;
    if transitions::end_tasks(tx, run, blocked).await? {
        transitions::settle(tx, &mut effects, run).await?;
    }
    Ok(effects)
}
