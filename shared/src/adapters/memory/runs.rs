//! Runs and their tasks, in memory: the run store, run control and task reads.

use crate::domain::events::EventBody;
use crate::domain::messages::{ExecutionInput, OutboxEntry, Outgoing};
use crate::domain::records::{NewRun, Run, Task};
use crate::domain::{MicroUsd, RunId, RunStatus, TaskId, TaskStatus};
use crate::ports::{Changed, Effects, PlanLease, RunControl, RunStore, StoreError, TaskReads};
use async_trait::async_trait;
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Mutex;

/// The twin of `RunStore`, `RunControl` and `TaskReads`. It keeps their promises that
/// callers rely on: an idempotency key gives one run per request (another request under it
/// is refused), an ended run does not move, only a failed or cancelled run resumes (never
/// below what it spent), only a failed task is retried. Each change that starts or stops
/// an execution returns it in its effects, as the outbox would send it. It plans nothing
/// and runs no task: `with_task` puts a task in a run as the plan step would.
#[derive(Default)]
pub struct MemRuns {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    runs: HashMap<RunId, Run>,
    /// Each run's tasks, in plan order.
    tasks: HashMap<RunId, Vec<Task>>,
    /// `(user, key)` → the run it created and the request's hash.
    keys: HashMap<(String, String), (RunId, String)>,
    outbox_seq: i64,
    /// Revisions asked for, by run.
    revisions: HashMap<RunId, String>,
}

impl MemRuns {
    /// Adds `task` to its run, as the plan step would.
    pub fn with_task(&self, task: Task) {
        self.lock().tasks.entry(task.run_id).or_default().push(task);
    }

    /// Moves the run to `status` as the engine would (a run that fails, or one that plans).
    pub fn with_status(&self, run: RunId, status: RunStatus, spent: MicroUsd) {
        if let Some(found) = self.lock().runs.get_mut(&run) {
            found.status = status;
            found.spent = spent;
        }
    }

    /// Every run.
    pub(super) fn all(&self) -> Vec<Run> {
        self.lock().runs.values().cloned().collect()
    }

    /// The run's tasks as they stand, in plan order.
    pub fn tasks_of(&self, run: RunId) -> Vec<Task> {
        self.lock().tasks.get(&run).cloned().unwrap_or_default()
    }

    /// Moves a task as the engine would (parked, or ready after a decision).
    pub fn set_task_status(&self, task: TaskId, status: TaskStatus) {
        let mut state = self.lock();
        if let Some(found) = state.tasks.values_mut().flatten().find(|t| t.id == task) {
            found.status = status;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves data that is still whole.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn run(&self, id: RunId) -> Result<Run, StoreError> {
        self.runs
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("run", id))
    }

    fn send(&mut self, effects: &mut Effects, message: Outgoing) {
        self.outbox_seq += 1;
        effects
            .outbox
            .push(OutboxEntry::new(self.outbox_seq, message));
    }

    /// A new execution of `id`, as a resume or a retry after the run ended starts one.
    fn restart(&mut self, id: RunId, effects: &mut Effects) -> Result<Run, StoreError> {
        let run = self.runs.get_mut(&id).ok_or_else(|| not_found("run", id))?;
        run.executions += 1;
        run.execution_name = format!("run-{}-{}", run.id, run.executions);
        run.execution_arn = None;
        run.error = None;
        run.completed_at = None;
        run.status = match run.plan {
            Some(_) => RunStatus::Running,
            None => RunStatus::Pending,
        };
        let run = run.clone();
        let start = Outgoing::StartExecution {
            run_id: run.id,
            name: run.execution_name.clone(),
            input: ExecutionInput { run_id: run.id },
        };
        self.send(effects, start);
        Ok(run)
    }

    /// Failed, blocked and cancelled tasks of `run` start again (`only`: just these).
    fn reopen(&mut self, run: RunId, only: Option<&[TaskId]>) -> usize {
        let reopenable = [
            TaskStatus::Failed,
            TaskStatus::Blocked,
            TaskStatus::Cancelled,
        ];
        let mut reopened = 0;
        for task in self.tasks.entry(run).or_default().iter_mut() {
            let chosen = only.is_none_or(|ids| ids.contains(&task.id));
            if chosen && reopenable.contains(&task.status) {
                task.status = match task.depends_on.is_empty() {
                    true => TaskStatus::Ready,
                    false => TaskStatus::Pending,
                };
                task.attempts = 0;
                task.error_log = None;
                reopened += 1;
            }
        }
        reopened
    }
}

fn not_found(what: &'static str, id: impl ToString) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_string(),
    }
}

#[async_trait]
impl RunStore for MemRuns {
    async fn create_run(&self, new: NewRun) -> Result<Changed<Run>, StoreError> {
        let mut state = self.lock();
        let scoped = new.idempotency.as_ref().map(|k| {
            (
                (new.user_id.to_string(), k.key.clone()),
                k.request_sha256.clone(),
            )
        });
        if let Some((key, sha)) = &scoped
            && let Some((earlier, kept)) = state.keys.get(key).cloned()
        {
            if &kept != sha {
                return Err(StoreError::IdempotencyMismatch { key: key.1.clone() });
            }
            return Ok(Changed {
                value: state.run(earlier)?,
                effects: Effects::default(),
            });
        }
        let id = RunId::new();
        let now = Utc::now();
        let run = Run {
            id,
            project_id: new.project_id,
            user_id: new.user_id,
            command: new.command,
            status: RunStatus::Pending,
            execution_name: format!("run-{id}"),
            execution_arn: None,
            execute_token: None,
            plan: None,
            budget: new.budget,
            reserved: MicroUsd::ZERO,
            spent: MicroUsd::ZERO,
            max_concurrency: new.max_concurrency.max(1),
            error: None,
            deadline_at: new
                .deadline
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| now + d),
            executions: 1,
            created_at: now,
            started_at: None,
            completed_at: None,
            schedule_id: new.schedule,
        };
        state.runs.insert(id, run.clone());
        if let Some((key, sha)) = scoped {
            state.keys.insert(key, (id, sha));
        }
        let mut effects = Effects::default();
        let start = Outgoing::StartExecution {
            run_id: id,
            name: run.execution_name.clone(),
            input: ExecutionInput { run_id: id },
        };
        state.send(&mut effects, start);
        Ok(Changed {
            value: run,
            effects,
        })
    }

    async fn run(&self, id: RunId) -> Result<Run, StoreError> {
        self.lock().run(id)
    }

    /// The twin keeps no traces.
    async fn traceparent(&self, _id: RunId) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    /// One pending per run, only while it runs; asking sends the orchestrator's message.
    async fn request_revision(
        &self,
        run: RunId,
        reason: &str,
    ) -> Result<Changed<bool>, StoreError> {
        let mut state = self.lock();
        let running = state
            .runs
            .get(&run)
            .is_some_and(|r| r.status == crate::domain::RunStatus::Running);
        let asked = running && !state.revisions.contains_key(&run);
        let mut effects = Effects::default();
        if asked {
            state.revisions.insert(run, reason.to_owned());
            let message = crate::domain::messages::CallbackMessage {
                run_id: run,
                task_token: String::new(),
                outcome: None,
                error: None,
                revise: Some(reason.to_owned()),
            };
            state.send(&mut effects, Outgoing::Replan { message });
        }
        Ok(Changed {
            value: asked,
            effects,
        })
    }

    async fn set_execution_arn(&self, id: RunId, arn: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        let run = state
            .runs
            .get_mut(&id)
            .ok_or_else(|| not_found("run", id))?;
        run.execution_arn = Some(arn.to_owned());
        Ok(())
    }

    async fn begin_planning(
        &self,
        id: RunId,
        _token: &str,
        _stale_after: std::time::Duration,
    ) -> Result<PlanLease, StoreError> {
        let mut state = self.lock();
        let run = state
            .runs
            .get_mut(&id)
            .ok_or_else(|| not_found("run", id))?;
        Ok(match run.status {
            RunStatus::Pending => {
                run.status = RunStatus::Planning;
                run.started_at = run.started_at.or(Some(Utc::now()));
                PlanLease::Granted(run.clone())
            }
            // The twin keeps no heartbeats: a planner holds its lease until it ends.
            RunStatus::Planning => PlanLease::Busy,
            _ => PlanLease::Done(run.clone()),
        })
    }

    async fn plan_heartbeat(&self, id: RunId) -> Result<bool, StoreError> {
        Ok(self.lock().run(id)?.status == RunStatus::Planning)
    }

    async fn replan_stale(
        &self,
        _age: std::time::Duration,
        _limit: u32,
    ) -> Result<Effects, StoreError> {
        // No planner of the twin's dies.
        Ok(Effects::default())
    }

    async fn set_status(
        &self,
        id: RunId,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<Run, StoreError> {
        let mut state = self.lock();
        let run = state
            .runs
            .get_mut(&id)
            .ok_or_else(|| not_found("run", id))?;
        if run.status.is_terminal() {
            return Err(StoreError::RunEnded {
                run: id,
                status: run.status,
            });
        }
        run.status = status;
        run.error = error.map(str::to_owned);
        if status.is_terminal() {
            run.completed_at = Some(Utc::now());
        }
        Ok(run.clone())
    }

    async fn end_run(
        &self,
        id: RunId,
        status: RunStatus,
        error: Option<&str>,
        _event: EventBody,
        answer: Outgoing,
    ) -> Result<Effects, StoreError> {
        let mut state = self.lock();
        let run = state
            .runs
            .get_mut(&id)
            .ok_or_else(|| not_found("run", id))?;
        if !run.status.is_terminal() {
            run.status = status;
            run.error = error.map(str::to_owned);
            run.completed_at = Some(Utc::now());
        }
        let mut effects = Effects::default();
        state.send(&mut effects, answer);
        Ok(effects)
    }
}

#[async_trait]
impl RunControl for MemRuns {
    async fn cancel(&self, id: RunId, reason: &str) -> Result<Changed<Run>, StoreError> {
        let mut state = self.lock();
        let run = state.run(id)?;
        if run.status.is_terminal() {
            return Err(StoreError::RunEnded {
                run: id,
                status: run.status,
            });
        }
        for task in state.tasks.entry(id).or_default().iter_mut() {
            if !task.status.is_terminal() {
                task.status = TaskStatus::Cancelled;
            }
        }
        let cancelled = state
            .runs
            .get_mut(&id)
            .ok_or_else(|| not_found("run", id))?;
        cancelled.status = RunStatus::Cancelled;
        cancelled.error = Some(reason.to_owned());
        cancelled.completed_at = Some(Utc::now());
        let value = cancelled.clone();
        let mut effects = Effects::default();
        let stop = Outgoing::StopExecution {
            name: value.execution_name.clone(),
            cause: reason.to_owned(),
        };
        state.send(&mut effects, stop);
        Ok(Changed { value, effects })
    }

    async fn resume(
        &self,
        id: RunId,
        budget: Option<MicroUsd>,
    ) -> Result<Changed<Run>, StoreError> {
        let mut state = self.lock();
        let run = state.run(id)?;
        if !matches!(run.status, RunStatus::Failed | RunStatus::Cancelled) {
            return Err(StoreError::Conflict(format!(
                "run {id} is {}; only a failed or cancelled run can be resumed",
                run.status
            )));
        }
        if let Some(budget) = budget {
            let used = MicroUsd(run.spent.0 + run.reserved.0);
            if budget < used {
                return Err(StoreError::Conflict(format!(
                    "the new budget {budget} is below the {used} the run has already spent or reserved"
                )));
            }
            if let Some(found) = state.runs.get_mut(&id) {
                found.budget = budget;
            }
        }
        state.reopen(id, None);
        let mut effects = Effects::default();
        let value = state.restart(id, &mut effects)?;
        Ok(Changed { value, effects })
    }

    async fn retry_task(&self, id: TaskId) -> Result<Changed<Task>, StoreError> {
        let mut state = self.lock();
        let task = state
            .tasks
            .values()
            .flatten()
            .find(|t| t.id == id)
            .cloned()
            .ok_or_else(|| not_found("task", id))?;
        let run = state.run(task.run_id)?;
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
        // The task, and the tasks it blocked (all of the run's blocked ones, in the twin).
        let blocked: Vec<TaskId> = state.tasks[&run.id]
            .iter()
            .filter(|t| t.id == id || t.status == TaskStatus::Blocked)
            .map(|t| t.id)
            .collect();
        state.reopen(run.id, Some(&blocked));
        let mut effects = Effects::default();
        if run.status == RunStatus::Failed {
            state.restart(run.id, &mut effects)?;
        }
        let value = state.tasks[&run.id]
            .iter()
            .find(|t| t.id == id)
            .cloned()
            .ok_or_else(|| not_found("task", id))?;
        Ok(Changed { value, effects })
    }

    async fn fail_overdue(&self, _limit: u32) -> Result<Effects, StoreError> {
        let mut state = self.lock();
        let now = Utc::now();
        for run in state.runs.values_mut() {
            if !run.status.is_terminal() && run.deadline_at.is_some_and(|d| d <= now) {
                run.status = RunStatus::Failed;
                run.error = Some("the run passed its deadline".to_owned());
                run.completed_at = Some(now);
            }
        }
        Ok(Effects::default())
    }
}

#[async_trait]
impl TaskReads for MemRuns {
    async fn task(&self, id: TaskId) -> Result<Task, StoreError> {
        self.lock()
            .tasks
            .values()
            .flatten()
            .find(|t| t.id == id)
            .cloned()
            .ok_or_else(|| not_found("task", id))
    }

    async fn run_tasks(&self, run: RunId) -> Result<Vec<Task>, StoreError> {
        Ok(self.lock().tasks.get(&run).cloned().unwrap_or_default())
    }
}
