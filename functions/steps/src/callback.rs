//! The execute step and the answers to the state machine's task tokens.

use crate::{RecordError, StepContext};
use autocrew_shared::domain::records::{Artifact, Attribution, LlmCall, Run, TokenUsage};
use autocrew_shared::domain::{
    ArtifactId, EventKind, LlmCallOutcome, MicroUsd, RunId, TaskId, TaskStatus,
};
use autocrew_shared::ports::llm::{LlmError, LlmRequest, LlmResponse};
use autocrew_shared::ports::{BudgetError, StateMachineError, StoreError};
use autocrew_shared::services::{CallbackMessage, DispatchError};
use serde_json::json;
use std::time::{Duration, Instant};

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

/// The most a request can cost: every byte of its prompt as a token (a token is never
/// shorter than a byte) and every allowed output token.
fn worst_case(request: &LlmRequest) -> TokenUsage {
    let prompt = request.system.len()
        + serde_json::to_string(&request.messages)
            .map(|m| m.len())
            .unwrap_or(0);
    let tools = serde_json::to_string(&request.tools)
        .map(|t| t.len())
        .unwrap_or(0);
    let schema = request
        .response_schema
        .as_ref()
        .map(|s| s.to_string().len())
        .unwrap_or(0);
    let input = u32::try_from(prompt + tools + schema).unwrap_or(u32::MAX);
    TokenUsage {
        input,
        output: request.max_tokens,
        cache_write: 0,
        cache_read: 0,
    }
}

/// Calls the model and writes the call to the ledger, whatever its outcome. Before the
/// call, its worst-case cost is reserved against the run's and the user's budgets; after
/// it, the actual cost is settled. A model without a price, or a call the budget cannot
/// cover, is refused before it is made and recorded as refused, never at a silent zero.
pub(crate) async fn call_llm(
    ctx: &StepContext,
    attribution: Attribution,
    request: &LlmRequest,
) -> Result<Result<LlmResponse, LlmError>, RecordError> {
    let provider = ctx.llm.provider().to_owned();
    let started = Instant::now();
    let refused = |reason: String| LlmError::Refused {
        provider: provider.clone(),
        model: request.model.clone(),
        reason,
    };
    let priced = ctx.prices.price(&provider, &request.model);
    let reservation = match &priced {
        Ok(price) => match ctx
            .budgets
            .reserve(
                attribution.user_id,
                attribution.run_id,
                price.cost(worst_case(request)),
            )
            .await
        {
            Ok(reservation) => Ok(reservation),
            Err(BudgetError::Exceeded {
                scope,
                needed,
                available,
            }) => Err(refused(format!(
                "budget_exceeded: the call may cost {needed}, {available} is left of the {scope:?} budget"
            ))),
            Err(BudgetError::Store(e)) => return Err(e.into()),
        },
        Err(e) => Err(refused(e.to_string())),
    };
    let (reservation, result) = match reservation {
        Ok(reservation) => (Some(reservation), ctx.llm.complete(request).await),
        Err(refusal) => (None, Err(refusal)),
    };
    let latency_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    let (outcome, usage, error) = match &result {
        Ok(response) => (LlmCallOutcome::Ok, response.usage, None),
        Err(e @ LlmError::Refused { .. }) => (
            LlmCallOutcome::Refused,
            Default::default(),
            Some(e.to_string()),
        ),
        Err(e) => (
            LlmCallOutcome::Error,
            Default::default(),
            Some(e.to_string()),
        ),
    };
    let cost = priced
        .map(|price| price.cost(usage))
        .unwrap_or(MicroUsd::ZERO);
    if let Some(reservation) = reservation {
        ctx.budgets.settle(reservation.id, cost).await?;
    }
    let model = result
        .as_ref()
        .map(|r| r.model.clone())
        .unwrap_or_else(|_| request.model.clone());
    let call = LlmCall {
        attribution,
        provider,
        model,
        outcome,
        usage,
        cost,
        latency_ms,
        error,
    };
    ctx.ledger.record(&call).await?;
    Ok(result)
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
