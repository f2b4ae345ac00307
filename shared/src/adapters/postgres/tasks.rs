//! Tasks and the ready-set decisions. Every status change is one transaction, built from
//! the blocks in `transitions.rs`, with its events and outbox messages inside it.

use super::Pool;
use super::cached::Cached;
use super::effects::{emit, send};
use super::rows::count;
use super::runs::{lock_run, update_status};
use super::task_rows::tasks_where;
use super::transitions;
use crate::domain::events::{
    EventBody, RunPlanned, TaskCompleted, TaskFailed, TaskRef, TaskStarted, TaskUsage,
};
use crate::domain::messages::{Outgoing, TaskMessage};
use crate::domain::records::{Attempt, Run, Task};
use crate::domain::{
    AgentKind, AttemptStatus, MicroUsd, RunId, RunStatus, TaskGraph, TaskId, TaskStatus,
};
use crate::ports::{
    AttemptFailure, Changed, Completion, Effects, Failure, Start, Started, StoreError, TaskReads,
    TaskStore,
};
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use std::time::Duration;
use uuid::Uuid;

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

/// The task, its run and the run's user, locked for the rest of the transaction: the run
/// first, as every change of a run's tasks locks it, then the user (dispatching looks
/// across the user's runs), then the task. Events lock the project after both, so
/// the order is always run → tasks → project. The locks are `FOR NO KEY UPDATE`: an event's
/// foreign key check takes `KEY SHARE` on its run while holding its project, and must not
/// wait on a run lock held by a transaction that waits for that project.
pub(super) async fn lock_run_and_task(
    tx: &Transaction<'_>,
    task: TaskId,
) -> Result<Task, StoreError> {
    let run: Uuid = tx
        .query_opt_cached("SELECT run_id FROM tasks WHERE id = $1", &[&task.0])
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "task",
            id: task.to_string(),
        })?
        .try_get(0)?;
    tx.execute_cached(
        "SELECT 1 FROM runs WHERE id = $1 FOR NO KEY UPDATE",
        &[&run],
    )
    .await?;
    lock_task(tx, task).await
}

/// The task, locked for the rest of the transaction.
pub(super) async fn lock_task(tx: &Transaction<'_>, task: TaskId) -> Result<Task, StoreError> {
    tx.query_opt_cached(
        "SELECT 1 FROM tasks WHERE id = $1 FOR NO KEY UPDATE",
        &[&task.0],
    )
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: "task",
        id: task.to_string(),
    })?;
    tasks_where(tx, "t.id = ANY($1)", &[task.0])
        .await?
        .pop()
        .ok_or_else(|| StoreError::NotFound {
            what: "task",
            id: task.to_string(),
        })
}

/// The task is running `attempt` (not a newer one, not ended).
pub(super) fn expect_running(task: &Task, attempt: u32) -> Result<(), StoreError> {
    if task.status != TaskStatus::Running {
        return Err(StoreError::WrongTaskStatus {
            task: task.id,
            expected: TaskStatus::Running,
            actual: task.status,
        });
    }
    if task.attempts != attempt {
        return Err(StoreError::StaleAttempt {
            task: task.id,
            attempt,
        });
    }
    Ok(())
}

#[async_trait]
impl TaskReads for PgTaskStore {
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
        transitions::run_tasks(&client, run).await
    }
}

#[async_trait]
impl TaskStore for PgTaskStore {
    async fn insert_graph(&self, run: &Run, graph: &TaskGraph) -> Result<Vec<Task>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let stored = transitions::insert_graph(&tx, run, graph).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn accept_plan(
        &self,
        run: &Run,
        plan: &serde_json::Value,
        graph: &TaskGraph,
        product: &str,
        answer: Outgoing,
    ) -> Result<Changed<Vec<Task>>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let current = lock_run(&tx, run.id).await?;
        let mut effects = Effects::default();
        let tasks = if current.status == RunStatus::Planning {
            tx.execute_cached(
                "UPDATE runs SET plan = $2, heartbeat_at = NULL WHERE id = $1",
                &[&run.id.0, plan],
            )
            .await?;
            // The planner's calls have ended.
            super::budgets::release_held(&tx, "b.run_id = $2 AND b.task_id IS NULL", &run.id.0)
                .await?;
            update_status(&tx, run.id, RunStatus::Running, None).await?;
            let tasks = transitions::insert_graph(&tx, run, graph).await?;
            let planned = EventBody::RunPlanned(RunPlanned::of(product, &tasks));
            emit(&tx, &mut effects, run.project_id, Some(run.id), planned).await?;
            tasks
        } else {
            // Another planner got there first: its plan stands.
            transitions::run_tasks(&tx, run.id).await?
        };
        send(&tx, &mut effects, Some(run.id), answer).await?;
        tx.commit().await?;
        Ok(Changed {
            value: tasks,
            effects,
        })
    }

    async fn dispatch(&self, run: RunId) -> Result<Changed<Vec<Task>>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        lock_run(&tx, run).await?;
        let mut effects = Effects::default();
        let tasks = transitions::dispatch(&tx, &mut effects, run).await?;
        tx.commit().await?;
        Ok(Changed {
            value: tasks,
            effects,
        })
    }

    async fn execute(&self, run: RunId, token: &str) -> Result<Effects, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let current = lock_run(&tx, run).await?;
        transitions::lock_user_of(&tx, run).await?;
        tx.execute_cached(
            "UPDATE runs SET execute_token = $2 WHERE id = $1",
            &[&run.0, &token],
        )
        .await?;
        let mut effects = Effects::default();
        transitions::dispatch(&tx, &mut effects, run).await?;
        let open: i32 = tx
            .query_one_cached("SELECT open_tasks FROM runs WHERE id = $1", &[&run.0])
            .await?
            .try_get(0)?;
        if open == 0 && current.plan.is_some() {
            // Every task ended before the token was stored (a redelivered message).
            transitions::settle(&tx, &mut effects, run).await?;
        }
        tx.commit().await?;
        Ok(effects)
    }

    async fn start_attempt(&self, task: TaskId, agent: AgentKind) -> Result<Start, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let locked = lock_task(&tx, task).await?;
        if locked.status != TaskStatus::Queued || locked.agent != agent {
            return Ok(Start::NotQueued(locked));
        }
        // A task handed on by `continue_attempt` still has its attempt open: this is that
        // attempt's next invocation. Otherwise the next attempt opens.
        let current = i32::try_from(locked.attempts).unwrap_or(i32::MAX);
        let continued = tx
            .query_opt_cached(
                "UPDATE task_attempts SET invocations = invocations + 1, heartbeat_at = now()
                 WHERE task_id = $1 AND attempt_no = $2 AND status = $3
                 RETURNING started_at, invocations",
                &[&task.0, &current, &AttemptStatus::Running],
            )
            .await?;
        let (attempt_no, row) = match continued {
            Some(row) => (locked.attempts, row),
            None => {
                let attempt_no = locked.attempts + 1;
                let n = i32::try_from(attempt_no).unwrap_or(i32::MAX);
                tx.execute_cached(
                    "UPDATE tasks SET attempts = $2 WHERE id = $1",
                    &[&task.0, &n],
                )
                .await?;
                let row = tx
                    .query_one_cached(
                        "INSERT INTO task_attempts (task_id, attempt_no, status) VALUES ($1, $2, $3)
                         RETURNING started_at, invocations",
                        &[&task.0, &n, &AttemptStatus::Running],
                    )
                    .await?;
                (attempt_no, row)
            }
        };
        let invocation = count(&row, "invocations")?;
        let checkpoint: Option<serde_json::Value> = tx
            .query_one_cached(
                "UPDATE tasks SET status = $2, started_at = coalesce(started_at, now()) WHERE id = $1
                 RETURNING checkpoint",
                &[&task.0, &TaskStatus::Running],
            )
            .await?
            .try_get(0)?;
        let mut effects = Effects::default();
        let started = EventBody::TaskStarted(TaskStarted {
            task: TaskRef::of(&locked),
            title: locked.title.clone(),
            attempt: attempt_no,
            invocation,
        });
        emit(
            &tx,
            &mut effects,
            locked.project_id,
            Some(locked.run_id),
            started,
        )
        .await?;
        let run = super::runs::run_in(&tx, locked.run_id).await?;
        let run_tasks = transitions::run_tasks(&tx, locked.run_id).await?;
        let task_now = run_tasks
            .iter()
            .find(|t| t.id == task)
            .cloned()
            .unwrap_or(locked);
        let started_at = row.try_get(0)?;
        tx.commit().await?;
        Ok(Start::Started(Changed {
            value: Started {
                attempt: Attempt {
                    task_id: task,
                    attempt_no,
                    started_at,
                    invocation,
                    checkpoint,
                },
                task: task_now,
                run,
                run_tasks,
            },
            effects,
        }))
    }

    async fn save_checkpoint(
        &self,
        task: TaskId,
        attempt: u32,
        checkpoint: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
        let saved = client
            .execute_cached(
                "UPDATE tasks SET checkpoint = $3 WHERE id = $1 AND attempts = $2 AND status = $4",
                &[&task.0, &attempt, checkpoint, &TaskStatus::Running],
            )
            .await?;
        Ok(saved == 1)
    }

    async fn continue_attempt(&self, task: TaskId, attempt: u32) -> Result<Effects, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let locked = lock_run_and_task(&tx, task).await?;
        expect_running(&locked, attempt)?;
        tx.execute_cached(
            "UPDATE tasks SET status = $2 WHERE id = $1",
            &[&task.0, &TaskStatus::Queued],
        )
        .await?;
        let mut effects = Effects::default();
        let message = Outgoing::Task {
            agent: locked.agent,
            message: TaskMessage {
                run_id: locked.run_id,
                task_id: task,
            },
            delay_secs: 0,
        };
        send(&tx, &mut effects, Some(locked.run_id), message).await?;
        tx.commit().await?;
        Ok(effects)
    }

    async fn record_busy(
        &self,
        task: TaskId,
        attempt: u32,
        busy: Duration,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
        let ms = i64::try_from(busy.as_millis()).unwrap_or(i64::MAX);
        client
            .execute_cached(
                "UPDATE task_attempts SET busy_ms = busy_ms + $3 WHERE task_id = $1 AND attempt_no = $2",
                &[&task.0, &attempt, &ms],
            )
            .await?;
        Ok(())
    }

    async fn heartbeat(&self, task: TaskId, attempt: u32) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
        let statement = client
            .prepare_cached(
                "UPDATE task_attempts a SET heartbeat_at = now() FROM tasks t
                 WHERE a.task_id = $1 AND a.attempt_no = $2 AND a.status = $3
                   AND t.id = a.task_id AND t.status = $4 AND t.attempts = a.attempt_no",
            )
            .await?;
        let updated = client
            .execute(
                &statement,
                &[
                    &task.0,
                    &attempt,
                    &AttemptStatus::Running,
                    &TaskStatus::Running,
                ],
            )
            .await?;
        Ok(updated == 1)
    }

    async fn complete(
        &self,
        task: TaskId,
        attempt: u32,
        result: &serde_json::Value,
        completed: TaskCompleted,
    ) -> Result<Changed<Completion>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let locked = lock_run_and_task(&tx, task).await?;
        expect_running(&locked, attempt)?;
        let run = locked.run_id;
        tx.execute_cached(
            "UPDATE tasks SET status = $2, result = $3, completed_at = now(), checkpoint = NULL WHERE id = $1",
            &[&task.0, &TaskStatus::Completed, result],
        )
        .await?;
        transitions::finish_attempt(&tx, task, attempt, AttemptStatus::Succeeded, None).await?;
        // Every call of the attempt has ended: a reservation still held is one whose
        // settlement was lost (the database was restarting).
        super::budgets::release_held(&tx, "b.task_id = $2", &task.0).await?;
        // The event carries the run's totals (see `effects::APPEND`); the task's own calls
        // go beside them, so a client can show what this task used and cost.
        let usage = tx
            .query_one_cached(
                "SELECT coalesce(sum(input_tokens), 0)::bigint, coalesce(sum(output_tokens), 0)::bigint,
                        coalesce(sum(cost_micro_usd), 0)::bigint
                 FROM llm_calls WHERE task_id = $1",
                &[&task.0],
            )
            .await?;
        // Every invocation of every attempt it took (parks and retries open new attempts).
        let invocations: i64 = tx
            .query_one_cached(
                "SELECT coalesce(sum(invocations), 0)::bigint FROM task_attempts WHERE task_id = $1",
                &[&task.0],
            )
            .await?
            .try_get(0)?;
        let completed = EventBody::TaskCompleted(TaskCompleted {
            invocations,
            task_usage: TaskUsage {
                input: usage.try_get(0)?,
                output: usage.try_get(1)?,
                cost_micro_usd: MicroUsd(usage.try_get(2)?),
            },
            ..completed
        });
        let mut effects = Effects::default();
        emit(&tx, &mut effects, locked.project_id, Some(run), completed).await?;
        // Lock the dependants in id order first: two completions sharing dependants then
        // take their locks in the same order and cannot deadlock.
        tx.query_cached(
            "SELECT id FROM tasks WHERE id IN (SELECT task_id FROM task_dependencies WHERE depends_on = $1)
             ORDER BY id FOR NO KEY UPDATE",
            &[&task.0],
        )
        .await?;
        let released: Vec<TaskId> = tx
            .query_cached(
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
        let run_settled = transitions::end_tasks(&tx, run, 1).await?;
        transitions::dispatch(&tx, &mut effects, run).await?;
        if run_settled {
            transitions::settle(&tx, &mut effects, run).await?;
        }
        tx.commit().await?;
        Ok(Changed {
            value: Completion {
                released,
                run_settled,
            },
            effects,
        })
    }

    async fn fail_attempt(
        &self,
        task: TaskId,
        attempt: u32,
        failure: &AttemptFailure,
    ) -> Result<Changed<Failure>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let locked = lock_run_and_task(&tx, task).await?;
        expect_running(&locked, attempt)?;
        let run = locked.run_id;
        let error = failure.error.as_str();
        transitions::finish_attempt(&tx, task, attempt, AttemptStatus::Failed, Some(error)).await?;
        // The attempt is over, and the next cannot start before this commits: whatever
        // the task still holds was held by it (a dead worker's calls, or a settlement the
        // database was not there for).
        super::budgets::release_held(&tx, "b.task_id = $2", &task.0).await?;
        let mut effects = Effects::default();
        let will_retry = failure.retryable && attempt < locked.max_attempts;
        let failed = EventBody::TaskFailed(TaskFailed {
            task: TaskRef::of(&locked),
            attempt,
            error: error.to_owned(),
            will_retry,
        });
        emit(&tx, &mut effects, locked.project_id, Some(run), failed).await?;
        if will_retry {
            tx.execute_cached(
                "UPDATE tasks SET status = $2, error_log = $3 WHERE id = $1",
                &[&task.0, &TaskStatus::Queued, &error],
            )
            .await?;
            let message = Outgoing::Task {
                agent: locked.agent,
                message: TaskMessage {
                    run_id: run,
                    task_id: task,
                },
                delay_secs: u32::try_from(failure.backoff.as_secs())
                    .unwrap_or(900)
                    .min(900),
            };
            send(&tx, &mut effects, Some(run), message).await?;
            tx.commit().await?;
            return Ok(Changed {
                value: Failure::Retry {
                    next_attempt: attempt + 1,
                },
                effects,
            });
        }
        tx.execute_cached(
            "UPDATE tasks SET status = $2, error_log = $3, completed_at = now() WHERE id = $1",
            &[&task.0, &TaskStatus::Failed, &error],
        )
        .await?;
        // The orchestrator may revise the plan around the failure (within the run's
        // revisions): then what waits on the task stays waiting for the revision.
        let reason = format!("task {} failed: {error}", locked.key);
        let revising = match failure.replannable {
            true => {
                super::revisions::ask(&tx, &mut effects, run, &reason)
                    .await?
                    .1
            }
            false => false,
        };
        let blocked = match revising {
            true => Vec::new(),
            false => transitions::block_downstream(&tx, &mut effects, &locked, error).await?,
        };
        let run_settled = transitions::end_tasks(&tx, run, 1 + blocked.len()).await?;
        // A slot of the run's concurrency is free again.
        transitions::dispatch(&tx, &mut effects, run).await?;
        if run_settled {
            transitions::settle(&tx, &mut effects, run).await?;
        }
        tx.commit().await?;
        Ok(Changed {
            value: Failure::Failed {
                blocked,
                run_settled,
            },
            effects,
        })
    }

    async fn reclaim_stale(&self, age: Duration, limit: u32) -> Result<Effects, StoreError> {
        self.reclaim(age, limit, None).await
    }

    async fn revise(
        &self,
        run: RunId,
        expected: &[(TaskId, TaskStatus)],
        revision: &crate::domain::revision::Revision,
    ) -> Result<Changed<Option<crate::domain::revision::PlanRevised>>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (revised, effects) = super::revisions::apply(&tx, run, expected, revision).await?;
        tx.commit().await?;
        Ok(Changed {
            value: revised,
            effects,
        })
    }

    async fn pending_revision(&self, run: RunId) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached("SELECT revision_pending FROM runs WHERE id = $1", &[&run.0])
            .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => None,
        })
    }

    async fn abandon_revision(&self, run: RunId, why: &str) -> Result<Effects, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let effects = super::revisions::abandon(&tx, run, why).await?;
        tx.commit().await?;
        Ok(effects)
    }

    async fn reclaim_stale_task(
        &self,
        task: TaskId,
        age: Duration,
    ) -> Result<Option<Effects>, StoreError> {
        let effects = self.reclaim(age, 1, Some(task)).await?;
        Ok((!effects.is_empty()).then_some(effects))
    }
}

impl PgTaskStore {
    /// Fails stale running attempts (of `only`, or of any task) as retryable.
    async fn reclaim(
        &self,
        age: Duration,
        limit: u32,
        only: Option<TaskId>,
    ) -> Result<Effects, StoreError> {
        let stale = {
            let client = self.pool.get().await?;
            client
                .query_cached(
                    "SELECT a.task_id, a.attempt_no, extract(epoch FROM now() - a.heartbeat_at)::float8
                     FROM task_attempts a JOIN tasks t ON t.id = a.task_id AND t.attempts = a.attempt_no
                     WHERE a.status = $1 AND t.status = $2 AND a.heartbeat_at < now() - make_interval(secs => $3)
                       AND ($5::uuid IS NULL OR a.task_id = $5)
                     ORDER BY a.heartbeat_at LIMIT $4",
                    &[
                        &AttemptStatus::Running,
                        &TaskStatus::Running,
                        &age.as_secs_f64(),
                        &i64::from(limit),
                        &only.map(|t| t.0),
                    ],
                )
                .await?
        };
        let mut effects = Effects::default();
        for row in stale {
            let task = TaskId(row.try_get(0)?);
            let attempt = count(&row, "attempt_no")?;
            let silent: f64 = row.try_get(2)?;
            let failure = AttemptFailure {
                error: format!(
                    "the worker stopped sending heartbeats ({silent:.0} s without one); the attempt is presumed dead"
                ),
                retryable: true,
                backoff: Duration::ZERO,
                replannable: true,
            };
            tracing::warn!(task = %task, attempt, silent, "reclaiming a dead attempt");
            match self.fail_attempt(task, attempt, &failure).await {
                Ok(changed) => effects.merge(changed.effects),
                // It ended or moved on since the query: nothing to reclaim.
                Err(StoreError::WrongTaskStatus { .. } | StoreError::StaleAttempt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(effects)
    }
}
