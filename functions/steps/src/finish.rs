//! The compile and notify steps: the run's summary, then its end.

use crate::callback::{answered, put_artifact, record_artifacts};
use crate::outputs::{Compiled, Notified};
use crate::{RecordError, StepContext};
use autocrew_shared::domain::events::{EventBody, RunEnded};
use autocrew_shared::domain::messages::as_json;
use autocrew_shared::domain::{AgentKind, MicroUsd, RunId};
use autocrew_shared::domain::{RunStatus, TaskStatus};
use autocrew_shared::ports::StoreError;
use autocrew_shared::services::{CallbackMessage, Outgoing, RunOutcome};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// Writes `summary.json` for the run: tasks, artifacts, tokens and cost.
#[tracing::instrument(name = "compile", skip_all)]
pub(crate) async fn compile(
    ctx: &StepContext,
    message: CallbackMessage,
) -> Result<(), RecordError> {
    let run = match ctx
        .runs
        .set_status(message.run_id, RunStatus::Compiling, None)
        .await
    {
        Ok(run) => run,
        // Cancelled (or failed past its deadline) meanwhile: its execution is stopped.
        Err(StoreError::RunEnded { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let tasks = ctx.tasks.run_tasks(run.id).await?;
    let artifacts = ctx.artifacts.run_artifacts(run.id).await?;
    let totals = ctx.ledger.run_totals(run.id).await?;
    let summary = RunSummary {
        run_id: run.id,
        command: &run.command,
        product: run.plan.as_ref().map(|p| p["product"].clone()),
        tasks: tasks
            .iter()
            .map(|t| TaskLine {
                key: &t.key,
                agent: t.agent,
                status: t.status,
                attempts: t.attempts,
                started_at: t.started_at,
                completed_at: t.completed_at,
                summary: t.result.as_ref().map(|r| r["summary"].clone()),
            })
            .collect(),
        artifacts: artifacts
            .iter()
            .map(|a| FileLine {
                key: &a.key,
                size_bytes: a.size_bytes,
                checksum_sha256: &a.checksum_sha256,
            })
            .collect(),
        llm_calls: totals.calls,
        tokens: Tokens {
            input: totals.usage.input,
            output: totals.usage.output,
        },
        cost_micro_usd: totals.cost,
        completed_tasks: tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Completed)
            .count(),
    };
    let key = format!("projects/{}/runs/{}/summary.json", run.project_id, run.id);
    // A resumed run's new execution writes a new summary; a redelivered compile does not.
    let once = format!("{}/summary/{}", run.id, run.executions);
    let bytes = as_json(&summary).to_string().into_bytes();
    let written = put_artifact(ctx, &run, None, (&key, bytes, "application/json"), &once).await?;
    record_artifacts(ctx, vec![written]).await?;
    answered(
        ctx.state_machine
            .task_success(
                &message.task_token,
                &as_json(&Compiled {
                    run_id: run.id,
                    summary_key: key,
                }),
            )
            .await,
    )
}

/// Ends the run as the state machine says, tells the clients and answers the token, in one
/// transaction. A run that already ended (a rejected plan, a redelivery) is not ended twice.
#[tracing::instrument(name = "notify", skip_all)]
pub(crate) async fn notify(ctx: &StepContext, message: CallbackMessage) -> Result<(), RecordError> {
    let outcome = message.outcome.unwrap_or(RunOutcome::Succeeded);
    let (status, ended): (_, fn(RunEnded) -> EventBody) = match outcome {
        RunOutcome::Succeeded => (RunStatus::Succeeded, EventBody::RunCompleted),
        RunOutcome::Failed => (RunStatus::Failed, EventBody::RunFailed),
    };
    let error = match outcome {
        RunOutcome::Failed => Some(
            message
                .error_text()
                .unwrap_or_else(|| "the run failed".into()),
        ),
        RunOutcome::Succeeded => None,
    };
    let run = ctx.runs.run(message.run_id).await?;
    let totals = ctx.ledger.run_totals(run.id).await?;
    let tasks = ctx.tasks.run_tasks(run.id).await?;
    // The state machine's error says which step failed ("TasksFailed"); the tasks say why.
    let failed: Vec<String> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Failed)
        .map(|t| format!("{}: {}", t.key, t.error_log.as_deref().unwrap_or("failed")))
        .collect();
    let error = match error {
        Some(_) if !failed.is_empty() => Some(format!(
            "{} task(s) failed: {}",
            failed.len(),
            failed.join("; ")
        )),
        other => other,
    };
    // A project's first ready site or published post launches it (its daily loop); a
    // daily-loop run ends with its morning report, before the run's end is told.
    crate::daily::on_run_end(ctx, &run).await;
    if crate::daily::is_daily_loop(ctx, &run).await? {
        report_morning(ctx, &run, error.as_deref()).await?;
    }
    let event = ended(RunEnded {
        error: error.clone(),
        status: Some(status),
        completed_tasks: Some(
            tasks
                .iter()
                .filter(|t| t.status == TaskStatus::Completed)
                .count() as u64,
        ),
        tasks: Some(tasks.len() as u64),
        llm_calls: Some(totals.calls),
        duration_ms: Some((chrono::Utc::now() - run.created_at).num_milliseconds()),
        cancelled_tasks: None,
    });
    let answer = Outgoing::TaskSuccess {
        token: message.task_token.clone(),
        output: as_json(&Notified {
            run_id: message.run_id,
            status,
        }),
    };
    let effects = ctx
        .runs
        .end_run(run.id, status, error.as_deref(), event, answer)
        .await?;
    ctx.relay.publish(effects).await;
    Ok(())
}

/// Writes the morning report once (a redelivered notify finds it written) and tells the app.
async fn report_morning(
    ctx: &StepContext,
    run: &autocrew_shared::domain::records::Run,
    error: Option<&str>,
) -> Result<(), RecordError> {
    let key = format!(
        "projects/{}/runs/{}/morning_report.json",
        run.project_id, run.id
    );
    if ctx
        .artifacts
        .run_artifacts(run.id)
        .await?
        .iter()
        .any(|a| a.key == key)
    {
        return Ok(());
    }
    let (report, written) =
        crate::daily::morning_report(ctx, run, error.map(str::to_owned)).await?;
    record_artifacts(ctx, vec![written]).await?;
    if let Err(e) = ctx
        .notifier
        .emit(
            run.project_id,
            Some(run.id),
            EventBody::MorningReport(report),
        )
        .await
    {
        tracing::warn!(run = %run.id, error = %e, "the morning report was not told");
    }
    Ok(())
}

/// `summary.json`: the run, its tasks and files, and what its model calls cost.
#[derive(Serialize)]
struct RunSummary<'a> {
    run_id: RunId,
    command: &'a str,
    product: Option<Value>,
    tasks: Vec<TaskLine<'a>>,
    artifacts: Vec<FileLine<'a>>,
    llm_calls: u64,
    tokens: Tokens,
    cost_micro_usd: MicroUsd,
    completed_tasks: usize,
}

#[derive(Serialize)]
struct TaskLine<'a> {
    key: &'a str,
    agent: AgentKind,
    status: TaskStatus,
    attempts: u32,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    summary: Option<Value>,
}

#[derive(Serialize)]
struct FileLine<'a> {
    key: &'a str,
    size_bytes: u64,
    checksum_sha256: &'a str,
}

#[derive(Serialize)]
struct Tokens {
    input: u32,
    output: u32,
}
