//! The execute step and the answers to the state machine's task tokens.

use crate::{RecordError, StepContext};
use autocrew_shared::domain::events::ArtifactStored;
use autocrew_shared::domain::records::{Artifact, Run};
use autocrew_shared::domain::{ArtifactId, RunId, TaskId};
use autocrew_shared::ports::llm::LlmError;
use autocrew_shared::ports::llm::Refusal;
use autocrew_shared::ports::{StateMachineError, StoreError, Written};
use autocrew_shared::services::{Answer, Call, CallbackMessage, GatewayError};
use std::time::Duration;

/// Infrastructure trouble (database, queue, AWS): retry the message later. The whole
/// cause chain goes to the log here, once; the record keeps the short message.
pub(crate) fn retry(e: impl std::error::Error) -> RecordError {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::warn!(error = %chain, "infrastructure trouble; the message will be retried");
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
            reason: Refusal::NoRoute(e.to_string()),
        })),
    }
}

/// Keeps the execute token and releases the first ready tasks, in one transaction; if every
/// task had already ended, the same transaction answers the token.
#[tracing::instrument(name = "execute", skip_all)]
pub(crate) async fn execute(
    ctx: &StepContext,
    message: CallbackMessage,
) -> Result<(), RecordError> {
    let effects = ctx
        .tasks
        .execute(message.run_id, &message.task_token)
        .await?;
    ctx.relay.publish(effects).await;
    Ok(())
}

/// Sends what `run` still has in the outbox: called when a message finds its work already
/// done, which is what a worker that died between its commit and its sends leaves behind.
pub(crate) async fn send_leftovers(ctx: &StepContext, run: RunId) {
    match ctx.relay.outbox.due_for_run(run, LEFTOVER_AGE).await {
        Ok(entries) if !entries.is_empty() => {
            let sent = ctx.relay.deliver(&entries).await;
            tracing::info!(run = %run, found = entries.len(), sent, "sent what a dead worker left in the outbox");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(run = %run, error = %e, "could not read the run's outbox"),
    }
}

/// An outbox entry this old was not sent by the relay right after its commit.
const LEFTOVER_AGE: Duration = Duration::from_secs(2);

/// Puts `bytes` in the artifact bucket and returns what to record (size and sha-256 as
/// written) once per idempotency key `once`: a retry that replays the same write puts the
/// same bytes under the same key again (harmless) and records nothing twice. `source` is
/// the task that produced it, if any.
pub(crate) async fn put_artifact(
    ctx: &StepContext,
    run: &Run,
    source: Option<(TaskId, &str)>,
    (key, bytes, content_type): (&str, Vec<u8>, &str),
    once: &str,
) -> Result<Written, RecordError> {
    let stored = ctx
        .blobs
        .put(key, bytes, content_type)
        .await
        .map_err(retry)?;
    let artifact = Artifact {
        id: ArtifactId::new(),
        project_id: run.project_id,
        run_id: Some(run.id),
        task_id: source.map(|(id, _)| id),
        bucket: stored.bucket.clone(),
        key: stored.key.clone(),
        content_type: content_type.to_owned(),
        size_bytes: stored.size_bytes,
        checksum_sha256: stored.checksum_sha256.clone(),
    };
    let event = ArtifactStored {
        task_id: source.map(|(id, _)| id),
        key: source.map(|(_, key)| key).unwrap_or("summary").to_owned(),
        object_key: Some(stored.key.clone()),
        size_bytes: stored.size_bytes,
        checksum_sha256: Some(stored.checksum_sha256.clone()),
        content_type: content_type.to_owned(),
        uploaded: false,
        filename: None,
    };
    Ok(Written {
        key: once.to_owned(),
        artifact,
        stored: event,
    })
}

/// Records what was put (each once), in one transaction, and publishes its events.
pub(crate) async fn record_artifacts(
    ctx: &StepContext,
    written: Vec<Written>,
) -> Result<(), RecordError> {
    let effects = ctx.artifacts.record_once(&written).await?;
    ctx.relay.publish(effects).await;
    Ok(())
}
