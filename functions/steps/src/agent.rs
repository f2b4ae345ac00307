//! An agent step: one task, run as the agent loop (its files stored as artifacts by the
//! `write_file` tool), then whatever became ready is dispatched. Delivery is at least
//! once: a task that is not queued any more (a duplicate message) is acknowledged and
//! ignored.

use crate::agent_loop::{self, Finished, LoopError};
use crate::callback::settle;
use crate::{RecordError, StepContext};
use autocrew_shared::crew::AgentTaskContext;
use autocrew_shared::domain::records::{Run, Task};
use autocrew_shared::domain::{AgentKind, EventKind};
use autocrew_shared::ports::Failure;
use autocrew_shared::services::{TaskMessage, backoff};
use serde_json::json;
use std::time::{Duration, Instant};

pub(crate) async fn handle(
    ctx: &StepContext,
    agent: AgentKind,
    message: TaskMessage,
) -> Result<(), RecordError> {
    let task = ctx.tasks.task(message.task_id).await?;
    if task.agent != agent {
        return Err(RecordError::Poison(format!(
            "task {} belongs to {}, not {agent}",
            task.id, task.agent
        )));
    }
    let Some(attempt) = ctx.tasks.start_attempt(task.id).await? else {
        // Redelivered while `running`: if the attempt outlived the function's timeout, it
        // died without recording an outcome; count it as a failed attempt so the task
        // runs again (or fails), instead of waiting forever.
        if ctx
            .tasks
            .running_longer_than(task.id, ctx.attempt_timeout)
            .await?
        {
            let run = ctx.runs.run(task.run_id).await?;
            let error = "the previous attempt stopped without recording an outcome";
            return fail(ctx, &run, &task, task.attempts, error, true).await;
        }
        tracing::info!(task = %task.id, status = %task.status, "duplicate delivery ignored");
        return Ok(());
    };
    let run = ctx.runs.run(task.run_id).await?;
    let started = Instant::now();
    ctx.notifier
        .emit(run.project_id, Some(run.id), EventKind::TaskStarted, json!({
            "task_id": task.id, "key": task.key, "agent": agent, "title": task.title, "attempt": attempt.attempt_no
        }))
        .await?;
    let outcome = match ctx.tasks.run_tasks(run.id).await {
        Ok(all) => {
            let upstream: Vec<Task> = all
                .into_iter()
                .filter(|t| task.depends_on.contains(&t.id))
                .collect();
            agent_loop::run(
                ctx,
                &run,
                &task,
                &context(&run, &task, &upstream),
                &upstream,
            )
            .await
        }
        Err(e) => Err(LoopError::Infrastructure(e.into())),
    };
    match outcome {
        Ok(finished) => finish(ctx, &run, &task, finished, started).await,
        Err(LoopError::Model { error, retryable }) => {
            fail(ctx, &run, &task, attempt.attempt_no, &error, retryable).await
        }
        // Our own trouble counts as a retryable attempt: the task goes back to the queue.
        Err(LoopError::Infrastructure(e)) => {
            let error = match e {
                RecordError::Retry { error, .. } | RecordError::Poison(error) => error,
            };
            fail(ctx, &run, &task, attempt.attempt_no, &error, true).await
        }
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
    }
}

/// Completes the task with the loop's summary and files, dispatches what became ready.
async fn finish(
    ctx: &StepContext,
    run: &Run,
    task: &Task,
    finished: Finished,
    started: Instant,
) -> Result<(), RecordError> {
    let result = json!({"summary": finished.summary, "artifacts": finished.artifacts, "steps": finished.steps});
    let completion = ctx.tasks.complete(task.id, &result).await?;
    ctx.notifier
        .emit(
            run.project_id,
            Some(run.id),
            EventKind::TaskCompleted,
            json!({
                "task_id": task.id, "key": task.key, "agent": task.agent, "summary": finished.summary,
                "files": finished.artifacts.len(), "steps": finished.steps,
                "duration_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
            }),
        )
        .await?;
    ctx.dispatcher.dispatch(run.id).await?;
    if completion.run_settled {
        settle(ctx, run.id).await?;
    }
    Ok(())
}

/// Records the failed attempt; retries later while attempts remain.
async fn fail(
    ctx: &StepContext,
    run: &Run,
    task: &Task,
    attempt: u32,
    error: &str,
    retryable: bool,
) -> Result<(), RecordError> {
    let failure = ctx.tasks.fail_attempt(task.id, error, retryable).await?;
    let will_retry = matches!(failure, Failure::Retry { .. });
    ctx.notifier
        .emit(run.project_id, Some(run.id), EventKind::TaskFailed, json!({
            "task_id": task.id, "key": task.key, "agent": task.agent, "attempt": attempt, "error": error, "will_retry": will_retry
        }))
        .await?;
    match failure {
        Failure::Retry { .. } => Err(RecordError::Retry {
            error: error.to_owned(),
            backoff: backoff(attempt, Duration::from_secs(2), Duration::from_secs(60)),
        }),
        Failure::Failed {
            blocked,
            run_settled,
        } => {
            for id in blocked {
                ctx.notifier
                    .emit(
                        run.project_id,
                        Some(run.id),
                        EventKind::TaskBlocked,
                        json!({"task_id": id, "blocked_by": task.key}),
                    )
                    .await?;
            }
            if run_settled {
                settle(ctx, run.id).await?;
            }
            Ok(())
        }
    }
}
