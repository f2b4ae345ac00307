//! The scheduled sweep (EventBridge, every five minutes): approvals that passed their expiry
//! undecided become `expired` and the step waiting on each is failed with
//! `ApprovalExpired`, so nothing waits forever and an expired payload can never run; and
//! completed idempotency keys older than the retention are forgotten, so the table does not
//! grow without bound.

use autocrew_shared::adapters::{self, aws, postgres};
use autocrew_shared::config::{AwsConfig, ConfigError, DatabaseConfig, Env, ProcessEnv, required};
use autocrew_shared::domain::EventKind;
use autocrew_shared::ports::{
    ApprovalStore, IdempotencyStore, StateMachine, StateMachineError, StoreError,
};
use autocrew_shared::services::Notifier;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// The function's name, as in `template.yaml` and its binary.
pub const FUNCTION_NAME: &str = "schedule-sweep";

/// Completed idempotency keys are kept this long: longer than any retry or redelivery.
pub const IDEMPOTENCY_RETENTION_DAYS: u32 = 7;

/// What one sweep did: the function's typed output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    pub approvals_expired: usize,
    pub idempotency_keys_pruned: u64,
}

/// Why a sweep failed; `error_type` is the stable name retries match on.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    StateMachine(#[from] StateMachineError),
}

/// The ports the sweep uses.
#[derive(Clone)]
pub struct SweepState {
    pub approvals: Arc<dyn ApprovalStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub state_machine: Arc<dyn StateMachine>,
    pub notifier: Notifier,
}

impl SweepState {
    /// Reads `DATABASE_URL`, the AWS settings, `CONNECTIONS_TABLE` and `WEBSOCKET_CALLBACK_URL`.
    pub async fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        let pool = postgres::connect(&DatabaseConfig::from_env(env)?)?;
        let sdk = aws::sdk_config(&AwsConfig::from_env(env)?).await;
        let table = required(env, "CONNECTIONS_TABLE")?;
        let callback = required(env, "WEBSOCKET_CALLBACK_URL")?;
        Ok(SweepState {
            approvals: Arc::new(postgres::PgApprovalStore::new(pool.clone())),
            idempotency: Arc::new(postgres::PgIdempotencyStore::new(pool.clone())),
            state_machine: Arc::new(aws::SfnStateMachine::new(&sdk)),
            notifier: adapters::notifier(&pool, &sdk, &table, &callback),
        })
    }
}

/// One sweep. The event's content does not matter: the schedule is the trigger.
pub async fn handle(
    state: &SweepState,
    event: EventBridgeEvent,
) -> Result<SweepReport, SweepError> {
    tracing::info!(time = ?event.time, "sweep");
    let expired = state.approvals.expire_due().await?;
    for approval in &expired {
        if let Some(token) = &approval.task_token {
            match state
                .state_machine
                .task_failure(
                    token,
                    "ApprovalExpired",
                    "the approval expired before a decision",
                )
                .await
            {
                Ok(()) | Err(StateMachineError::InvalidToken(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let payload = json!({"approval_id": approval.id, "status": "expired"});
        state
            .notifier
            .emit(
                approval.project_id,
                Some(approval.run_id),
                EventKind::ApprovalDecided,
                payload,
            )
            .await?;
    }
    let pruned = state
        .idempotency
        .prune_completed(IDEMPOTENCY_RETENTION_DAYS)
        .await?;
    Ok(SweepReport {
        approvals_expired: expired.len(),
        idempotency_keys_pruned: pruned,
    })
}

/// The Lambda entry point.
pub async fn run_lambda() -> Result<(), lambda_runtime::Error> {
    autocrew_shared::telemetry::init();
    let state = SweepState::from_source(&ProcessEnv).await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<EventBridgeEvent>| {
            let state = &state;
            async move {
                handle(state, event.payload)
                    .await
                    .map_err(lambda_runtime::Error::from)
            }
        },
    ))
    .await
}
