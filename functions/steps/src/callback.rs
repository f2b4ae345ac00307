//! The execute step and the answers to the state machine's task tokens.

use crate::{RecordError, StepContext};
use autocrew_shared::domain::records::{Artifact, Run};
use autocrew_shared::domain::{ArtifactId, EventKind, RunId, TaskId, TaskStatus};
use autocrew_shared::ports::llm::LlmError;
use autocrew_shared::ports::{StateMachineError, StoreError};
use autocrew_shared::services::{Answer, Call, CallbackMessage, DispatchError, GatewayError};
use serde_json::json;
use std::time::Duration;

/// Infrastructure trouble (database, queue, AWS): retry the message later.
pub(crate) fn retry(e: impl std::fmt::Display) -> RecordError {
    RecordError::Retry {
        error: e.to_string(),
        backoff: Duration::from_secs(2),
    }
}

impl From<StoreError> for RecordError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => RecordError::Poison(e.to_string()),
            other => retry(other),
        }
    }
}

impl From<DispatchError> for RecordError {
    fn from(e: DispatchError) -> Self {
        retry(e)
    }
}

/// A token answered twice (a redelivered message) is not an error.
pub(crate) fn answered(result: Result<(), StateMachineError>) -> Result<(), RecordError> {
    match result {
        Ok(()) | Err(StateMachineError::InvalidToken(_)) => Ok(()),
        Err(e) => Err(retry(e)),
    }
}

/// Calls a model through the gateway. The model's own failure (after retries and
/// fallback) is the inner error; storage trouble retries the message.
pub(crate) async fn call_model(
    ctx: &StepContext,
    call: Call<'_>,
) -> Result<Result<Answer, LlmError>, RecordError> {
    match ctx.gateway.call(call).await {
        Ok(answer) => Ok(Ok(answer)),
        Err(GatewayError::Llm(e)) => Ok(Err(e)),
        Err(GatewayError::Store(e)) => Err(retry(e)),
        // Profiles are checked against the routing policy at start-up, so this is a
        // configuration change under a running process: not worth retrying.
        Err(GatewayError::Routing(e)) => Ok(Err(LlmError::Refused {
            provider: "router".into(),
            model: String::new(),
            reason: e.to_string(),
        })),
    }
}

/// Keeps the execute token, then releases the first ready tasks.
pub(crate) async fn execute(
    ctx: &StepContext,
    message: CallbackMessage,
) -> Result<(), RecordError> {
    ctx.runs
        .set_execute_token(message.run_id, &message.task_token)
        .await?;
    ctx.dispatcher.dispatch(message.run_id).await?;
    // A redelivered message may find every task already ended.
    let tasks = ctx.tasks.run_tasks(message.run_id).await?;
    if !tasks.is_empty() && tasks.iter().all(|t| t.status.is_terminal()) {
        settle(ctx, message.run_id).await?;
    }
    Ok(())
}

/// Answers the execute token once every task has ended: success when all completed,
/// failure (`TasksFailed`) naming the failed tasks otherwise.
pub(crate) async fn settle(ctx: &StepContext, run: RunId) -> Result<(), RecordError> {
    let run = ctx.runs.run(run).await?;
    let Some(token) = run.execute_token.as_deref() else {
        return Err(retry(format!(
            "run {} settled before its execute token was stored",
            run.id
        )));
    };
    let tasks = ctx.tasks.run_tasks(run.id).await?;
    let failed: Vec<String> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Failed)
        .map(|t| format!("{}: {}", t.key, t.error_log.as_deref().unwrap_or("failed")))
        .collect();
    if failed.is_empty() {
        answered(
            ctx.state_machine
                .task_success(token, &json!({"run_id": run.id, "completed": tasks.len()}))
                .await,
        )
    } else {
        let cause = format!("{} task(s) failed: {}", failed.len(), failed.join("; "));
        answered(
            ctx.state_machine
                .task_failure(token, "TasksFailed", &cause)
                .await,
        )
    }
}

/// Puts `bytes` in the artifact bucket, records the artifact (size and sha-256 as
/// written) and emits `artifact_stored`. `source` is the task that produced it, if any.
pub(crate) async fn store_artifact(
    ctx: &StepContext,
    run: &Run,
    source: Option<(TaskId, &str)>,
    key: &str,
    bytes: Vec<u8>,
    content_type: &str,
) -> Result<String, RecordError> {
    let stored = ctx
        .blobs
        .put(key, bytes, content_type)
        .await
        .map_err(retry)?;
    ctx.artifacts
        .record(&Artifact {
            id: ArtifactId::new(),
            project_id: run.project_id,
            run_id: Some(run.id),
            task_id: source.map(|(id, _)| id),
            bucket: stored.bucket.clone(),
            key: stored.key.clone(),
            content_type: content_type.to_owned(),
            size_bytes: stored.size_bytes,
            checksum_sha256: stored.checksum_sha256.clone(),
        })
        .await?;
    let payload = json!({
        "task_id": source.map(|(id, _)| id), "key": source.map(|(_, key)| key).unwrap_or("summary"),
        "object_key": stored.key, "size_bytes": stored.size_bytes,
        "checksum_sha256": stored.checksum_sha256, "content_type": content_type
    });
    ctx.notifier
        .emit(
            run.project_id,
            Some(run.id),
            EventKind::ArtifactStored,
            payload,
        )
        .await?;
    Ok(stored.key)
}
