//! The scheduled sweep (EventBridge, every minute), the engine's reconciler:
//! - outbox messages the relay did not send after their commit (a worker died between the
//!   two, or the send failed) are sent;
//! - running attempts whose heartbeat went stale (their worker died) are failed as
//!   retryable and dispatched again, and planners that died are replaced;
//! - runs past their deadline fail with a clear error;
//! - approvals that passed their expiry undecided become `expired` and their parked tasks
//!   go on, told the action was not approved, so nothing waits forever and an expired
//!   payload can never run;
//! - budget reservations held longer than any call (their holder died) are released;
//! - long jobs whose watch stopped (their builds still going well past their deadline)
//!   are recorded `timed_out` and their parked tasks go on, failing with the timeout;
//! - the retention policy (`shared/data/retention.json`) is applied in bounded batches;
//! - completed idempotency keys older than the retention are forgotten;
//! - rate limit counters of past minutes are deleted;
//! - subscribers' AI spend past their included budget is reported to Stripe's meter;
//! - notices due (pushes, webhook retries, push receipts) wake the deliver step.

pub mod fire;

use autocrew_shared::adapters::{self, aws, postgres};
use autocrew_shared::config::{
    AwsConfig, ConfigError, Env, Liveness, ProcessEnv, optional, required,
};
use autocrew_shared::domain::messages::Outgoing;
use autocrew_shared::domain::retention::{RetentionPolicy, RetentionReport};
use autocrew_shared::ports::{
    ApprovalStore, BudgetStore, DeploymentStore, IdempotencyStore, NoticeStore, RateLimiter,
    Retention, RunControl, RunStore, StoreError, TaskStore,
};
use autocrew_shared::services::{AgentQueues, Relay};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// The function's name, as in `template.yaml` and its binary.
pub const FUNCTION_NAME: &str = "schedule-sweep";

/// Completed idempotency keys are kept this long: longer than any retry or redelivery.
pub const IDEMPOTENCY_RETENTION_DAYS: u32 = 7;

/// An outbox entry this old was not sent by the relay right after its commit.
pub const OUTBOX_AGE: Duration = Duration::from_secs(5);

/// A held reservation older than this was held by a worker that died: no call lasts so
/// long (the agents' functions time out after 120 s).
pub const RESERVATION_TTL: Duration = Duration::from_secs(15 * 60);

/// A long job still going this long past its deadline lost its watch: the watch itself
/// records `timed_out` at its first look past the deadline.
pub const ABANDONED_JOB_MARGIN: Duration = Duration::from_secs(10 * 60);

/// At most this many of each kind of repair per sweep: a backlog drains over a few sweeps
/// instead of making one sweep run long.
const BATCH: u32 = 100;

/// What one sweep did: the function's typed output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    pub outbox_found: usize,
    pub outbox_sent: usize,
    /// Repairs: dead attempts failed and dispatched again, dead planners replaced, runs
    /// failed past their deadline. Each counts the messages and events it produced.
    pub stale_attempt_effects: usize,
    pub replanned_effects: usize,
    pub overdue_effects: usize,
    pub reservations_released: u64,
    pub retention: RetentionReport,
    pub approvals_expired: usize,
    #[serde(default)]
    pub abandoned_jobs_ended: usize,
    pub idempotency_keys_pruned: u64,
    pub rate_counters_pruned: u64,
    /// Overage reports sent to Stripe's meter.
    #[serde(default)]
    pub overage_reported: u32,
    /// Notices were due, and the deliver step was woken.
    #[serde(default)]
    pub notices_due: bool,
}

/// Why a sweep failed; `error_type` is the stable name retries match on.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The ports the sweep uses.
#[derive(Clone)]
pub struct SweepState {
    pub tasks: Arc<dyn TaskStore>,
    pub runs: Arc<dyn RunStore>,
    pub control: Arc<dyn RunControl>,
    pub relay: Relay,
    pub liveness: Liveness,
    pub budgets: Arc<dyn BudgetStore>,
    pub retention: Arc<dyn Retention>,
    pub retention_policy: RetentionPolicy,
    pub approvals: Arc<dyn ApprovalStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub deployments: Arc<dyn DeploymentStore>,
    /// Reports overage to Stripe (nothing when the stack has no Stripe).
    pub billing: autocrew_shared::services::Billing,
    /// Pushes and webhook deliveries, and when a push's receipt is due.
    pub notices: Arc<dyn NoticeStore>,
    pub receipt_delay: Duration,
}

impl SweepState {
    /// Reads `DATABASE_URL`, the AWS settings, `CONNECTIONS_TABLE`, `WEBSOCKET_CALLBACK_URL`,
    /// `STATE_MACHINE_ARN` (and `WATCH_STATE_MACHINE_ARN`), the queue URLs and the heartbeat settings.
    pub async fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        let pool = postgres::connect(&adapters::database_config(env).await?)?;
        let sdk = aws::sdk_config(&AwsConfig::from_env(env)?).await;
        let table = required(env, "CONNECTIONS_TABLE")?;
        let callback = required(env, "WEBSOCKET_CALLBACK_URL")?;
        let notifier = adapters::notifier(&pool, &sdk, &table, &callback);
        let relay = adapters::relay(
            &pool,
            &sdk,
            AgentQueues::from_env(env)?,
            adapters::StateMachines {
                run: Some(required(env, "STATE_MACHINE_ARN")?),
                ..adapters::StateMachines::from_env(env)
            },
            notifier,
        );
        let billing = adapters::billing(
            &pool,
            &sdk,
            &autocrew_shared::config::BillingConfig::from_env(env)?,
        )
        .await?;
        Ok(SweepState {
            billing,
            tasks: Arc::new(postgres::PgTaskStore::new(pool.clone())),
            runs: Arc::new(postgres::PgRunStore::new(pool.clone())),
            control: Arc::new(postgres::PgRunControl::new(pool.clone())),
            relay,
            liveness: Liveness::from_env(env)?,
            budgets: Arc::new(postgres::PgBudgetStore::new(pool.clone())),
            retention: Arc::new(postgres::PgRetention::new(pool.clone())),
            retention_policy: match optional(env, "RETENTION_POLICY_PATH") {
                None => RetentionPolicy::embedded(),
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|e| ConfigError::Invalid {
                            name: "RETENTION_POLICY_PATH",
                            reason: format!("cannot read {path}: {e}"),
                        })?;
                    RetentionPolicy::parse(&text).map_err(|reason| ConfigError::Invalid {
                        name: "RETENTION_POLICY_PATH",
                        reason,
                    })?
                }
            },
            approvals: Arc::new(postgres::PgApprovalStore::new(pool.clone())),
            idempotency: Arc::new(postgres::PgIdempotencyStore::new(pool.clone())),
            limiter: Arc::new(postgres::PgRateLimiter::new(pool.clone())),
            deployments: Arc::new(postgres::PgDeployments::new(pool.clone())),
            notices: Arc::new(postgres::PgNotices::new(pool.clone())),
            receipt_delay: autocrew_shared::config::NoticeConfig::from_env(env)?.receipt_delay,
        })
    }
}

/// One sweep. The event's content does not matter: the schedule is the trigger.
pub async fn handle(
    state: &SweepState,
    event: EventBridgeEvent,
) -> Result<SweepReport, SweepError> {
    let span = autocrew_shared::telemetry::invocation_span(FUNCTION_NAME, None);
    sweep(state, event).instrument(span).await
}

async fn sweep(state: &SweepState, event: EventBridgeEvent) -> Result<SweepReport, SweepError> {
    tracing::info!(time = ?event.time, "sweep");
    let (outbox_found, outbox_sent) = state.relay.redeliver(OUTBOX_AGE, BATCH).await?;
    let stale_after = state.liveness.stale_after;
    let stale = state.tasks.reclaim_stale(stale_after, BATCH).await?;
    let stale_attempt_effects = stale.events.len() + stale.outbox.len();
    state.relay.publish(stale).await;
    let replanned = state.runs.replan_stale(stale_after, BATCH).await?;
    let replanned_effects = replanned.outbox.len();
    state.relay.publish(replanned).await;
    let overdue = state.control.fail_overdue(BATCH).await?;
    let overdue_effects = overdue.events.len() + overdue.outbox.len();
    state.relay.publish(overdue).await;
    let reservations_released = state.budgets.release_expired(RESERVATION_TTL).await?;
    let retention = state.retention.apply(&state.retention_policy).await?;
    let expired = state.approvals.expire_due(BATCH).await?;
    state.relay.publish(expired.effects).await;
    let abandoned = state
        .deployments
        .end_abandoned_jobs(ABANDONED_JOB_MARGIN, BATCH)
        .await?;
    state.relay.publish(abandoned.effects).await;
    let pruned = state
        .idempotency
        .prune_completed(IDEMPOTENCY_RETENTION_DAYS)
        .await?;
    let rate_counters_pruned = state.limiter.prune().await?;
    // Stripe being down must not stop the engine's repairs: the reports wait for the next
    // sweep (each is written before it is sent, and resent under the same identifier).
    let overage_reported = match &state.billing.payments {
        None => 0,
        Some(_) => state.billing.report_overage().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "overage could not be reported this sweep");
            0
        }),
    };
    // A retry's time came, a receipt is due, or a nudge was lost: wake the deliver step.
    let notices_due = state.notices.anything_due(state.receipt_delay).await?;
    if notices_due && let Err(e) = state.relay.send_now(&Outgoing::DeliverNotices).await {
        tracing::warn!(error = %e, "the deliver step could not be woken; the next sweep tries again");
    }
    Ok(SweepReport {
        notices_due,
        outbox_found,
        outbox_sent,
        stale_attempt_effects,
        replanned_effects,
        overdue_effects,
        reservations_released,
        retention,
        approvals_expired: expired.value,
        abandoned_jobs_ended: abandoned.value,
        idempotency_keys_pruned: pruned,
        rate_counters_pruned,
        overage_reported,
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
