//! An agent step: one task, one model turn, its files stored as artifacts, then whatever
//! became ready is dispatched. Delivery is at least once: a task that is not queued any
//! more (a duplicate message) is acknowledged and ignored.

use crate::callback::{call_llm, settle, store_artifact};
use crate::{RecordError, StepContext, backoff};
use autocrew_shared::crew::{AgentOutput, AgentTaskContext, agents};
use autocrew_shared::domain::records::{Attribution, Run, Task};
use autocrew_shared::domain::{AgentKind, EventKind};
use autocrew_shared::ports::Failure;
use autocrew_shared::services::TaskMessage;
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
    let outcome = work(ctx, &run, &task).await;
    match outcome {
        Ok(output) => finish(ctx, &run, &task, output, started).await,
        Err(WorkError::Model { error, retryable }) => {
            fail(ctx, &run, &task, attempt.attempt_no, &error, retryable).await
        }
        // Our own trouble counts as a retryable attempt: the task goes back to the queue.
        Err(WorkError::Infrastructure(e)) => {
            fail(ctx, &run, &task, attempt.attempt_no, &e.to_string(), true).await
        }
    }
}

enum WorkError {
    /// The model failed or answered with something unusable.
    Model { error: String, retryable: bool },
    /// Our own infrastructure failed.
    Infrastructure(Box<dyn std::error::Error + Send + Sync>),
}

/// Builds the context, asks the model, reads its answer.
async fn work(ctx: &StepContext, run: &Run, task: &Task) -> Result<AgentOutput, WorkError> {
    let infra = |e: autocrew_shared::ports::StoreError| WorkError::Infrastructure(Box::new(e));
    let all = ctx.tasks.run_tasks(run.id).await.map_err(infra)?;
    let upstream = all
        .iter()
        .filter(|t| task.depends_on.contains(&t.id))
        .map(|t| {
            (
                t.key.clone(),
                t.result
                    .as_ref()
                    .and_then(|r| r["summary"].as_str())
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let context = AgentTaskContext {
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
        upstream,
    };
    let attribution = Attribution {
        user_id: run.user_id,
        project_id: run.project_id,
        run_id: Some(run.id),
        task_id: Some(task.id),
        agent: task.agent,
    };
    let response = match call_llm(
        ctx,
        attribution,
        &agents::agent_request(&ctx.model, &context),
    )
    .await
    {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            return Err(WorkError::Model {
                retryable: e.is_retryable(),
                error: e.to_string(),
            });
        }
        Err(e) => return Err(WorkError::Infrastructure(format!("{e:?}").into())),
    };
    agents::parse_output(&response).map_err(|e| WorkError::Model {
        error: e.to_string(),
        retryable: false,
    })
}

/// Stores the files, completes the task, dispatches what became ready.
async fn finish(
    ctx: &StepContext,
    run: &Run,
    task: &Task,
    output: AgentOutput,
    started: Instant,
) -> Result<(), RecordError> {
    let progress = json!({
        "task_id": task.id, "key": task.key, "agent": task.agent,
        "stage": "model_answered", "files": output.files.len()
    });
    ctx.notifier
        .emit(
            run.project_id,
            Some(run.id),
            EventKind::TaskProgress,
            progress,
        )
        .await?;
    let mut keys = Vec::with_capacity(output.files.len());
    for file in output.files {
        let key = format!(
            "projects/{}/runs/{}/{}/{}",
            run.project_id, run.id, task.key, file.path
        );
        let content_type = agents::content_type(&file.path);
        let source = Some((task.id, task.key.as_str()));
        keys.push(
            store_artifact(
                ctx,
                run,
                source,
                &key,
                file.content.into_bytes(),
                content_type,
            )
            .await?,
        );
    }
    let result = json!({"summary": output.summary, "artifacts": keys});
    let completion = ctx.tasks.complete(task.id, &result).await?;
    ctx.notifier
        .emit(
            run.project_id,
            Some(run.id),
            EventKind::TaskCompleted,
            json!({
                "task_id": task.id, "key": task.key, "agent": task.agent, "summary": output.summary,
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
