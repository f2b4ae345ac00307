//! Run control on Postgres: cancel, resume, retry a task, deadlines.

use super::Pool;
use super::cached::Cached;
use super::effects::{emit, send};
use super::runs::{RUN_COLUMNS, lock_run, run_from_row};
use super::task_rows::tasks_where;
use super::transitions::{self, terminal};
use crate::domain::events::{EventBody, RunEnded, RunResumed, TaskRef, TaskRetried};
use crate::domain::messages::{ExecutionInput, Outgoing};
use crate::domain::records::{Run, Task};
use crate::domain::{AttemptStatus, MicroUsd, RunId, RunStatus, TaskId, TaskStatus};
use crate::ports::{Changed, Effects, RunControl, StoreError};
use async_trait::async_trait;
use deadpool_postgres::Transaction;
use uuid::Uuid;

/// Attempts a reopened task gets on top of those it used.
const FRESH_ATTEMPTS: i32 = 3;

/// `RunControl` on Postgres.
#[derive(Clone)]
pub struct PgRunControl {
    pool: Pool,
}

impl PgRunControl {
    pub fn new(pool: Pool) -> Self {
        PgRunControl { pool }
    }
}

/// Ends an open run as `status` (cancelled, or failed past its deadline): open tasks are
/// cancelled, running attempts closed, the execution stopped, `kind` appended.
async fn stop_run(
    tx: &Transaction<'_>,
    effects: &mut Effects,
    run: &Run,
    status: RunStatus,
    reason: &str,
    ended: fn(RunEnded) -> EventBody,
) -> Result<Run, StoreError> {
    let cancelled: Vec<Uuid> = tx
        .query_cached(
            "UPDATE tasks SET status = $2, error_log = coalesce(error_log, $3), completed_at = now()
             WHERE run_id = $1 AND NOT (status = ANY($4)) RETURNING id",
            &[&run.id.0, &TaskStatus::Cancelled, &reason, &terminal()],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    tx.execute_cached(
        "UPDATE task_attempts SET status = $2, error = $3, finished_at = now()
         WHERE task_id = ANY($1) AND status = $4",
        &[
            &cancelled,
            &AttemptStatus::Cancelled,
            &reason,
            &AttemptStatus::Running,
        ],
    )
    .await?;
    let tokens = tx
        .query_one_cached(
            "SELECT execute_token, plan_token FROM runs WHERE id = $1",
            &[&run.id.0],
        )
        .await?;
    let waiting: Vec<String> = [
        tokens.try_get::<_, Option<String>>(0)?,
        tokens.try_get::<_, Option<String>>(1)?,
    ]
    .into_iter()
    .flatten()
    .collect();
    let row = tx
        .query_one_cached(
            &format!(
                "UPDATE runs SET status = $2, error = $3, completed_at = now(), open_tasks = 0,
                     execute_token = NULL, plan_token = NULL, heartbeat_at = NULL
                 WHERE id = $1 RETURNING {RUN_COLUMNS}"
            ),
            &[&run.id.0, &status, &reason],
        )
        .await?;
    let stopped = run_from_row(&row)?;
    // Calls still in flight settle their actual cost when they return.
    super::budgets::release_held(tx, "b.run_id = $2", &run.id.0).await?;
    let event = ended(RunEnded {
        error: Some(reason.to_owned()),
        cancelled_tasks: Some(cancelled.len() as u64),
        ..RunEnded::default()
    });
    emit(tx, effects, run.project_id, Some(run.id), event).await?;
    let stop = Outgoing::StopExecution {
        name: run.execution_name.clone(),
        cause: reason.to_owned(),
    };
    send(tx, effects, Some(run.id), stop).await?;
    // The step the execution waits on is failed too. On AWS the stopped execution has no
    // tokens left and this is a no-op; an emulator that only stops between states needs
    // it to get there.
    for token in waiting {
        let fail = Outgoing::TaskFailure {
            token,
            error: "RunStopped".into(),
            cause: reason.to_owned(),
        };
        send(tx, effects, Some(run.id), fail).await?;
    }
    Ok(stopped)
}

/// Opens `ids` again: each is `ready` (or `pending` while a dependency is not completed)
/// with fresh attempts, and counted as open.
async fn reopen(tx: &Transaction<'_>, run: RunId, ids: &[Uuid]) -> Result<(), StoreError> {
    tx.execute_cached(
        "UPDATE tasks t SET
             pending_dependencies = p.pending,
             status = CASE WHEN p.pending = 0 THEN $2::task_status ELSE $3::task_status END,
             error_log = NULL, result = NULL, completed_at = NULL, max_attempts = t.attempts + $5
         FROM (SELECT x.id, (SELECT count(*)::int FROM task_dependencies d JOIN tasks dep ON dep.id = d.depends_on
                             WHERE d.task_id = x.id AND dep.status <> $4) AS pending
               FROM tasks x WHERE x.id = ANY($1)) p
         WHERE t.id = p.id",
        &[
            &ids,
            &TaskStatus::Ready,
            &TaskStatus::Pending,
            &TaskStatus::Completed,
            &FRESH_ATTEMPTS,
        ],
    )
    .await?;
    let opened = i32::try_from(ids.len()).unwrap_or(i32::MAX);
    // A person retrying or resuming answers the failure themselves: a revision still asked
    // for is dropped (its message then finds none pending).
    tx.execute_cached(
        "UPDATE runs SET open_tasks = open_tasks + $2, revision_pending = NULL WHERE id = $1",
        &[&run.0, &opened],
    )
    .await?;
    Ok(())
}

/// Gives an ended run a new execution (Step Functions names are unique), writes its start
/// to the outbox and appends `run_resumed`. The run is `running` again, or `pending` when it
/// never got a plan.
async fn restart(
    tx: &Transaction<'_>,
    effects: &mut Effects,
    run: &Run,
    reopened: usize,
) -> Result<Run, StoreError> {
    let executions = i32::try_from(run.executions + 1).unwrap_or(i32::MAX);
    let name = format!("run-{}-{executions}", run.id);
    let status = if run.plan.is_some() {
        RunStatus::Running
    } else {
        RunStatus::Pending
    };
    let row = tx
        .query_one_cached(
            &format!(
                "UPDATE runs SET status = $2, error = NULL, completed_at = NULL, execute_token = NULL,
                     plan_token = NULL, heartbeat_at = NULL, executions = $3, execution_name = $4, execution_arn = NULL
                 WHERE id = $1 RETURNING {RUN_COLUMNS}"
            ),
            &[&run.id.0, &status, &executions, &name],
        )
        .await?;
    let start = Outgoing::StartExecution {
        run_id: run.id,
        name,
        input: ExecutionInput { run_id: run.id },
    };
    send(tx, effects, Some(run.id), start).await?;
    let resumed = run_from_row(&row)?;
    let event = EventBody::RunResumed(RunResumed {
        reopened_tasks: reopened as u64,
        execution_name: resumed.execution_name.clone(),
        budget_micro_usd: resumed.budget,
        previous_status: run.status,
    });
    emit(tx, effects, run.project_id, Some(run.id), event).await?;
    Ok(resumed)
}

#[async_trait]
impl RunControl for PgRunControl {
    async fn cancel(&self, id: RunId, reason: &str) -> Result<Changed<Run>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let run = lock_run(&tx, id).await?;
        if run.status.is_terminal() {
            return Err(StoreError::RunEnded {
                run: id,
                status: run.status,
            });
        }
        transitions::lock_user_of(&tx, id).await?;
        let mut effects = Effects::default();
        let run = stop_run(
            &tx,
            &mut effects,
            &run,
            RunStatus::Cancelled,
            reason,
            EventBody::RunCancelled,
        )
        .await?;
        // Its slots of the user's limit go to their other runs.
        transitions::dispatch(&tx, &mut effects, id).await?;
        tx.commit().await?;
        Ok(Changed {
            value: run,
            effects,
        })
    }

    async fn resume(
        &self,
        id: RunId,
        budget: Option<MicroUsd>,
    ) -> Result<Changed<Run>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let run = lock_run(&tx, id).await?;
        if !matches!(run.status, RunStatus::Failed | RunStatus::Cancelled) {
            return Err(StoreError::Conflict(format!(
                "run {id} is {}; only a failed or cancelled run can be resumed",
                run.status
            )));
        }
        if let Some(budget) = budget {
            if budget.0 < run.spent.0 + run.reserved.0 {
                return Err(StoreError::Conflict(format!(
                    "the new budget {budget} is below the {} the run has already spent or reserved",
                    MicroUsd(run.spent.0 + run.reserved.0)
                )));
            }
            tx.execute_cached(
                "UPDATE runs SET budget_micro_usd = $2 WHERE id = $1",
                &[&id.0, &budget.0],
            )
            .await?;
        }
        let reopened: Vec<Uuid> = tx
            .query_cached(
                "SELECT id FROM tasks WHERE run_id = $1 AND status = ANY($2) ORDER BY id FOR NO KEY UPDATE",
                &[
                    &id.0,
                    &vec![TaskStatus::Failed, TaskStatus::Blocked, TaskStatus::Cancelled],
                ],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        reopen(&tx, id, &reopened).await?;
        let mut effects = Effects::default();
        let resumed = restart(&tx, &mut effects, &run, reopened.len()).await?;
        tx.commit().await?;
        Ok(Changed {
            value: resumed,
            effects,
        })
    }

    async fn retry_task(&self, id: TaskId) -> Result<Changed<Task>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let not_found = || StoreError::NotFound {
            what: "task",
            id: id.to_string(),
        };
        let run_id: Uuid = tx
            .query_opt_cached("SELECT run_id FROM tasks WHERE id = $1", &[&id.0])
            .await?
            .ok_or_else(not_found)?
            .try_get(0)?;
        // The run first, as every other change locks it before its tasks, then its user.
        let run = lock_run(&tx, RunId(run_id)).await?;
        transitions::lock_user_of(&tx, run.id).await?;
        let task = tasks_where(&tx, "t.id = ANY($1)", &[id.0])
            .await?
            .pop()
            .ok_or_else(not_found)?;
        if task.status != TaskStatus::Failed {
            return Err(StoreError::Conflict(format!(
                "task {} is {}; only a failed task can be retried",
                task.key, task.status
            )));
        }
        if !matches!(run.status, RunStatus::Running | RunStatus::Failed) {
            return Err(StoreError::Conflict(format!(
                "run {} is {}; a task can be retried while its run runs or after it failed",
                run.id, run.status
            )));
        }
        let reopened: Vec<Uuid> = tx
            .query_cached(
                "WITH RECURSIVE downstream(id) AS (
                     SELECT task_id FROM task_dependencies WHERE depends_on = $1
                     UNION
                     SELECT d.task_id FROM task_dependencies d JOIN downstream ON d.depends_on = downstream.id)
                 SELECT id FROM tasks WHERE (id = $1 OR (id IN (SELECT id FROM downstream) AND status = $2))
                 ORDER BY id FOR NO KEY UPDATE",
                &[&id.0, &TaskStatus::Blocked],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        reopen(&tx, run.id, &reopened).await?;
        let mut effects = Effects::default();
        let event = EventBody::TaskRetried(TaskRetried {
            task: TaskRef::of(&task),
            reopened_tasks: reopened.len() as u64,
        });
        emit(&tx, &mut effects, run.project_id, Some(run.id), event).await?;
        if run.status == RunStatus::Running {
            transitions::dispatch(&tx, &mut effects, run.id).await?;
        } else {
            restart(&tx, &mut effects, &run, reopened.len()).await?;
        }
        let task = tasks_where(&tx, "t.id = ANY($1)", &[id.0])
            .await?
            .pop()
            .ok_or_else(not_found)?;
        tx.commit().await?;
        Ok(Changed {
            value: task,
            effects,
        })
    }

    async fn fail_overdue(&self, limit: u32) -> Result<Effects, StoreError> {
        let mut effects = Effects::default();
        for _ in 0..limit {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let row = tx
                .query_opt_cached(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE deadline_at < now() AND NOT (status = ANY($1))
                         ORDER BY deadline_at LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED"
                    ),
                    &[&super::runs::terminal_statuses()],
                )
                .await?;
            let Some(row) = row else { break };
            let run = run_from_row(&row)?;
            transitions::lock_user_of(&tx, run.id).await?;
            let deadline = run
                .deadline_at
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            let reason = format!(
                "the run passed its deadline ({deadline}) while {}; its open tasks were stopped",
                run.status
            );
            tracing::warn!(run = %run.id, deadline, "run past its deadline");
            stop_run(
                &tx,
                &mut effects,
                &run,
                RunStatus::Failed,
                &reason,
                EventBody::RunFailed,
            )
            .await?;
            transitions::dispatch(&tx, &mut effects, run.id).await?;
            tx.commit().await?;
        }
        Ok(effects)
    }
}
