//! An agent step: one attempt of one task, run as the agent loop while a heartbeat proves
//! the worker alive. Delivery is at least once, and a message can outlive its worker:
//! - a queued task starts its next attempt;
//! - a running task whose heartbeat went stale was left by a dead worker: that attempt is
//!   failed as retryable and the task starts again here;
//! - a running task with a fresh heartbeat is someone else's: the message comes back later,
//!   in case that worker dies too;
//! - anything else (ended, cancelled) is acknowledged and ignored, after sending whatever
//!   its run still has in the outbox (a worker that died between commit and send).

use crate::agent_loop::{self, AttemptState, Finished, LoopError};
use crate::heartbeat::{Delivery, Heartbeat, hide};
use crate::{Deadline, RecordError, StepContext};
use autocrew_shared::crew::AgentTaskContext;
use autocrew_shared::crew::code_check;
use autocrew_shared::domain::events::{
    EventBody, MemoryRecalled, RecalledMemory, TaskCompleted, TaskRef, TaskUsage,
};
use autocrew_shared::domain::memory::RecalledNote;
use autocrew_shared::domain::records::{Attempt, Attribution, Run, Task};
use autocrew_shared::domain::{AgentKind, TaskStatus};
use autocrew_shared::ports::{AttemptFailure, Start, Started, StoreError};
use autocrew_shared::services::{TASK_RECALL, TaskMessage, backoff};
use serde_json::Value;
use std::time::{Duration, Instant};

#[tracing::instrument(name = "agent_task", skip_all, fields(agent = %agent))]
pub(crate) async fn handle(
    ctx: &StepContext,
    agent: AgentKind,
    message: TaskMessage,
    (receipt, deadline): (Option<&str>, Deadline),
) -> Result<(), RecordError> {
    let invoked = Instant::now();
    let delivery = receipt.and_then(|receipt| {
        Some(Delivery {
            queue_url: ctx.relay.queues.url(agent)?.to_owned(),
            receipt: receipt.to_owned(),
        })
    });
    hide(&*ctx.queue, delivery.as_ref(), ctx.liveness).await;
    let first = ctx.tasks.start_attempt(message.task_id, agent).await?;
    let started = match first {
        Start::Started(started) => started,
        Start::NotQueued(task) if task.agent != agent => {
            return Err(RecordError::Poison(format!(
                "task {} belongs to {}, not {agent}",
                task.id, task.agent
            )));
        }
        Start::NotQueued(task) if task.status == TaskStatus::Running => {
            let reclaimed = ctx
                .tasks
                .reclaim_stale_task(task.id, ctx.liveness.stale_after)
                .await?;
            let Some(effects) = reclaimed else {
                // Its worker is alive: look again once it could be presumed dead.
                return Err(RecordError::Retry {
                    error: format!("task {} is running elsewhere", task.id),
                    backoff: ctx.liveness.stale_after,
                });
            };
            ctx.relay.publish(effects).await;
            match ctx.tasks.start_attempt(task.id, agent).await? {
                Start::Started(started) => started,
                Start::NotQueued(_) => return Ok(()),
            }
        }
        Start::NotQueued(task) => {
            tracing::info!(task = %task.id, status = %task.status, "duplicate delivery ignored");
            crate::callback::send_leftovers(ctx, task.run_id).await;
            return Ok(());
        }
    };
    let Started {
        attempt: begun,
        task,
        run,
        run_tasks,
    } = started.value;
    let attempt = begun.attempt_no;
    let heartbeat = {
        let (tasks, id) = (ctx.tasks.clone(), task.id);
        Heartbeat::start(ctx, delivery, move || {
            let tasks = tasks.clone();
            async move { tasks.heartbeat(id, attempt).await }
        })
    };
    ctx.relay.publish(started.effects).await;
    let upstream: Vec<Task> = run_tasks
        .into_iter()
        .filter(|t| task.depends_on.contains(&t.id))
        .collect();
    let mut context = context(&run, &task, &upstream);
    // A fresh attempt recalls; a resumed one has its first message in its checkpoint.
    if begun.checkpoint.is_none() {
        context.recalled = recall(ctx, &run, &task).await;
    }
    let state = AttemptState {
        number: attempt,
        invocation: begun.invocation,
        deadline,
        checkpoint: begun.checkpoint.as_ref(),
    };
    let outcome = agent_loop::run(ctx, (&run, &task, state), &context, &upstream, &heartbeat).await;
    drop(heartbeat);
    // What Lambda bills for this invocation, whatever came of it.
    if let Err(e) = ctx
        .tasks
        .record_busy(task.id, attempt, invoked.elapsed())
        .await
    {
        tracing::warn!(task = %task.id, error = %e, "the invocation's time was not recorded");
    }
    let recorded = match outcome {
        Ok(finished) => finish(ctx, (&run, &task), &begun, finished).await,
        Err(LoopError::Stopped) => {
            tracing::info!(task = %task.id, attempt, "attempt stopped: the task was cancelled or taken over");
            return Ok(());
        }
        // Recorded when it parked: the task waits for a decision or a job, holding nothing.
        Err(LoopError::Parked) => return Ok(()),
        // Handed on at its checkpoint: a fresh invocation takes the attempt over.
        Err(LoopError::HandedOff) => return Ok(()),
        Err(LoopError::Model {
            error,
            retryable,
            replannable,
        }) => fail(ctx, &task, attempt, error, (retryable, replannable)).await,
        // Our own trouble counts as a retryable attempt: the task goes back to the queue.
        Err(LoopError::Infrastructure(e)) => {
            let error = match e {
                RecordError::Retry { error, .. } | RecordError::Poison(error) => error,
            };
            fail(ctx, &task, attempt, error, (true, true)).await
        }
    };
    match recorded {
        // Cancelled, or presumed dead and run again elsewhere: this attempt's outcome is
        // not the task's any more.
        Err(StoreError::WrongTaskStatus { .. } | StoreError::StaleAttempt { .. }) => {
            tracing::info!(task = %task.id, attempt, "the attempt's outcome was dropped: the task moved on without it");
            Ok(())
        }
        Err(e) => Err(e.into()),
        Ok(()) => Ok(()),
    }
}

/// The memories nearest the task, recalled into its context, and an event saying which.
/// Memory helps, it is not the task: if it cannot be read the task runs without it.
async fn recall(ctx: &StepContext, run: &Run, task: &Task) -> Vec<RecalledNote> {
    let who = attribution(run, task);
    let query = format!("{}\n{}\n{}", run.command, task.title, task.description);
    let recall = match ctx.memories().recall(&who, &query, TASK_RECALL).await {
        Ok(recall) => recall,
        Err(e) => {
            tracing::warn!(task = %task.id, error = %e, "memories not recalled; the task runs without them");
            return Vec::new();
        }
    };
    if recall.memories.is_empty() {
        return Vec::new();
    }
    let event = EventBody::MemoryRecalled(MemoryRecalled {
        task: Some(TaskRef::of(task)),
        memories: recall.memories.iter().map(RecalledMemory::from).collect(),
        projects: Vec::new(),
    });
    if let Err(e) = ctx.notifier.emit(run.project_id, Some(run.id), event).await {
        tracing::warn!(task = %task.id, error = %e, "the recall was not logged");
    }
    recall.memories.iter().map(RecalledNote::from).collect()
}

/// Who the task's memory calls are charged to.
fn attribution(run: &Run, task: &Task) -> Attribution {
    Attribution {
        user_id: run.user_id,
        project_id: run.project_id,
        run_id: Some(run.id),
        task_id: Some(task.id),
        agent: task.agent,
    }
}

/// What the agent is told about its task.
fn context(run: &Run, task: &Task, upstream: &[Task]) -> AgentTaskContext {
    AgentTaskContext {
        agent: task.agent,
        command: run.command.clone(),
        product: run
            .plan
            .as_ref()
            .and_then(|p| p["product"].as_str())
            .unwrap_or(&run.command)
            .to_owned(),
        task_key: task.key.clone(),
        title: task.title.clone(),
        description: task.description.clone(),
        upstream: upstream
            .iter()
            .map(|t| {
                let summary = t.result.as_ref().and_then(|r| r["summary"].as_str());
                (t.key.clone(), summary.unwrap_or("").to_owned())
            })
            .collect(),
        recalled: Vec::new(),
    }
}

/// Completes the task with the loop's summary and files; the same transaction dispatches
/// what became ready and, when it was the run's last task, answers the execute token.
async fn finish(
    ctx: &StepContext,
    (run, task): (&Run, &Task),
    begun: &Attempt,
    finished: Finished,
) -> Result<(), StoreError> {
    // Every stored file in a language a parser checks was parsed before it was stored.
    let files_checked = finished
        .artifacts
        .iter()
        .filter(|key| code_check::language(key).is_some())
        .count();
    let result = crate::agent_loop::TaskResult {
        summary: Value::String(finished.summary.clone()),
        artifacts: finished.artifacts.clone(),
        steps: finished.steps,
        files_checked,
    };
    let result = serde_json::to_value(&result).map_err(|e| StoreError::Backend(Box::new(e)))?;
    // Kept before the task completes: a retried attempt saying the same merges into it.
    let remembered = match ctx
        .memories()
        .remember(&attribution(run, task), &finished.memories)
        .await
    {
        Ok(kept) => kept.len() as u64,
        Err(e) => {
            tracing::warn!(task = %task.id, error = %e, "the task's memories were not kept");
            0
        }
    };
    // Asked before the task completes, so the run cannot end in between: the revision then
    // holds it until the orchestrator has answered (asked again by a retried attempt, once).
    if let Some(why) = &finished.replan {
        let reason = format!(
            "{} ({}) says the plan must change: {why}",
            task.key, task.agent
        );
        let asked = persist(|| ctx.runs.request_revision(run.id, &reason)).await?;
        ctx.relay.publish(asked.effects).await;
    }
    // The task's wall time from its first start, across its attempts and invocations (the
    // store adds how many invocations those were).
    let since = task.started_at.unwrap_or(begun.started_at);
    let took = (chrono::Utc::now() - since).num_milliseconds().max(0);
    let event = TaskCompleted {
        task: TaskRef::of(task),
        summary: finished.summary.clone(),
        files: finished.artifacts.len() as u64,
        files_checked: files_checked as u64,
        steps: finished.steps,
        duration_ms: took,
        invocations: 0,
        task_usage: TaskUsage::default(),
        remembered,
    };
    let completed = persist(|| {
        ctx.tasks
            .complete(task.id, begun.attempt_no, &result, event.clone())
    })
    .await?;
    ctx.relay.publish(completed.effects).await;
    Ok(())
}

/// Records the failed attempt; while attempts remain, the task is sent again after a
/// backoff.
async fn fail(
    ctx: &StepContext,
    task: &Task,
    attempt: u32,
    error: String,
    (retryable, replannable): (bool, bool),
) -> Result<(), StoreError> {
    let failure = AttemptFailure {
        // The gateway's refusal keeps its stable name (`LlmError::BudgetExceeded`): new
        // work would need money too.
        replannable: replannable && !error.contains("budget_exceeded"),
        error,
        retryable,
        backoff: backoff(attempt, Duration::from_secs(2), Duration::from_secs(60)),
    };
    let failed = persist(|| ctx.tasks.fail_attempt(task.id, attempt, &failure)).await?;
    ctx.relay.publish(failed.effects).await;
    Ok(())
}

/// Records an attempt's outcome, trying again on the database's own trouble (a lost
/// connection, a serialisation failure): the outcome is in hand, and losing it would cost a
/// whole attempt once the heartbeat goes stale.
async fn persist<T, F, Fut>(record: F) -> Result<T, StoreError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match record().await {
            Err(StoreError::Backend(e)) if tries < 4 => {
                tracing::warn!(error = %e, tries, "recording the attempt's outcome failed; trying again");
                tokio::time::sleep(Duration::from_millis(100 * tries)).await;
            }
            other => return other,
        }
    }
}
