//! The compile and notify steps: the run's summary, then its end.

use crate::callback::{answered, store_artifact};
use crate::{RecordError, StepContext};
use autocrew_shared::domain::{EventKind, RunStatus, TaskStatus};
use autocrew_shared::ports::StoreError;
use autocrew_shared::services::{CallbackMessage, RunOutcome};
use serde_json::json;

/// Writes `summary.json` for the run: tasks, artifacts, tokens and cost.
pub(crate) async fn compile(
    ctx: &StepContext,
    message: CallbackMessage,
) -> Result<(), RecordError> {
    let run = ctx
        .runs
        .set_status(message.run_id, RunStatus::Compiling, None)
        .await?;
    let tasks = ctx.tasks.run_tasks(run.id).await?;
    let artifacts = ctx.artifacts.run_artifacts(run.id).await?;
    let totals = ctx.ledger.run_totals(run.id).await?;
    let summary = json!({
        "run_id": run.id,
        "command": run.command,
        "product": run.plan.as_ref().map(|p| p["product"].clone()),
        "tasks": tasks.iter().map(|t| json!({
            "key": t.key, "agent": t.agent, "status": t.status, "attempts": t.attempts,
            "started_at": t.started_at, "completed_at": t.completed_at,
            "summary": t.result.as_ref().map(|r| r["summary"].clone()),
        })).collect::<Vec<_>>(),
        "artifacts": artifacts.iter().map(|a| json!({"key": a.key, "size_bytes": a.size_bytes, "checksum_sha256": a.checksum_sha256})).collect::<Vec<_>>(),
        "llm_calls": totals.calls,
        "tokens": {"input": totals.usage.input, "output": totals.usage.output},
        "cost_micro_usd": totals.cost.0,
        "completed_tasks": tasks.iter().filter(|t| t.status == TaskStatus::Completed).count(),
    });
    let key = format!("projects/{}/runs/{}/summary.json", run.project_id, run.id);
    store_artifact(
        ctx,
        &run,
        None,
        &key,
        summary.to_string().into_bytes(),
        "application/json",
    )
    .await?;
    answered(
        ctx.state_machine
            .task_success(
                &message.task_token,
                &json!({"run_id": run.id, "summary_key": key}),
            )
            .await,
    )
}

/// Ends the run as the state machine says and tells the clients. A run that already ended
/// (a rejected plan, a redelivery) is not ended twice.
pub(crate) async fn notify(ctx: &StepContext, message: CallbackMessage) -> Result<(), RecordError> {
    let outcome = message.outcome.unwrap_or(RunOutcome::Succeeded);
    let (status, kind) = match outcome {
        RunOutcome::Succeeded => (RunStatus::Succeeded, EventKind::RunCompleted),
        RunOutcome::Failed => (RunStatus::Failed, EventKind::RunFailed),
    };
    let error = match outcome {
        RunOutcome::Failed => Some(
            message
                .error_text()
                .unwrap_or_else(|| "the run failed".into()),
        ),
        RunOutcome::Succeeded => None,
    };
    match ctx
        .runs
        .set_status(message.run_id, status, error.as_deref())
        .await
    {
        Ok(run) => {
            let totals = ctx.ledger.run_totals(run.id).await?;
            let tasks = ctx.tasks.run_tasks(run.id).await?;
            let payload = json!({
                "status": run.status,
                "error": run.error,
                "completed_tasks": tasks.iter().filter(|t| t.status == TaskStatus::Completed).count(),
                "tasks": tasks.len(),
                "llm_calls": totals.calls,
                "duration_ms": run.completed_at.zip(Some(run.created_at)).map(|(end, start)| (end - start).num_milliseconds()),
            });
            ctx.notifier
                .emit(run.project_id, Some(run.id), kind, payload)
                .await?;
        }
        Err(StoreError::RunEnded { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    answered(
        ctx.state_machine
            .task_success(
                &message.task_token,
                &json!({"run_id": message.run_id, "status": status}),
            )
            .await,
    )
}
