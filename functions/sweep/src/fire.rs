//! The schedule-fire function: EventBridge Scheduler invokes it at each fire of each
//! project schedule with `{"schedule_id", "scheduled_at"}`. It records the fire once per
//! (schedule, time) and starts the run it calls for, as the local runner's scheduler does;
//! a fire of a schedule that is gone deletes the timer that outlived it.

use autocrew_shared::adapters::aws::{EventBridgeTimers, TimerSettings};
use autocrew_shared::adapters::{self, aws, postgres};
use autocrew_shared::config::{AwsConfig, ConfigError, Env, ProcessEnv, required};
use autocrew_shared::domain::messages::ScheduleFire;
use autocrew_shared::domain::{FireOutcome, RunId};
use autocrew_shared::ports::{ScheduleStore, ScheduleTimers, StoreError, TimerError};
use autocrew_shared::services::AgentQueues;
use autocrew_shared::services::scheduler::Scheduler;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tracing::Instrument;

/// The function's name, as in `template.yaml` and its binary.
pub const FUNCTION_NAME: &str = "schedule-fire";

/// What the fire did: the function's typed output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireReport {
    /// None when the schedule is gone (its timer was deleted).
    pub outcome: Option<FireOutcome>,
    pub run_id: Option<RunId>,
    /// False for a second delivery of the same fire: nothing changed.
    pub first: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FireError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Timer(#[from] TimerError),
}

/// The ports a fire uses.
pub struct FireState {
    pub scheduler: Scheduler,
    pub timers: Arc<dyn ScheduleTimers>,
}

impl FireState {
    /// Reads `DATABASE_URL`, the AWS settings, the queue URLs, `STATE_MACHINE_ARN`, the
    /// WebSocket settings and the timers' (`SCHEDULE_GROUP`, ...).
    pub async fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        let pool = postgres::connect(&adapters::database_config(env).await?)?;
        let sdk = aws::sdk_config(&AwsConfig::from_env(env)?).await;
        let notifier = adapters::notifier(
            &pool,
            &sdk,
            &required(env, "CONNECTIONS_TABLE")?,
            &required(env, "WEBSOCKET_CALLBACK_URL")?,
        );
        let relay = adapters::relay(
            &pool,
            &sdk,
            AgentQueues::from_env(env)?,
            adapters::StateMachines {
                run: Some(required(env, "STATE_MACHINE_ARN")?),
                watch: None,
            },
            notifier,
        );
        let schedules: Arc<dyn ScheduleStore> =
            Arc::new(postgres::PgScheduleStore::new(pool.clone()));
        Ok(FireState {
            scheduler: Scheduler {
                schedules,
                publisher: Arc::new(relay),
            },
            timers: Arc::new(EventBridgeTimers::new(&sdk, TimerSettings::from_env(env)?)),
        })
    }
}

/// One delivered fire.
pub async fn handle(state: &FireState, fire: ScheduleFire) -> Result<FireReport, FireError> {
    // A fire begins a trace: the run it starts keeps it.
    let span = autocrew_shared::telemetry::invocation_span(FUNCTION_NAME, None);
    fire_once(state, fire).instrument(span).await
}

async fn fire_once(state: &FireState, fire: ScheduleFire) -> Result<FireReport, FireError> {
    let fired = state.scheduler.deliver(&fire, chrono::Utc::now()).await?;
    let Some(fired) = fired else {
        tracing::info!(schedule = %fire.schedule_id, "the schedule is gone; its timer is deleted");
        state.timers.remove(fire.schedule_id).await?;
        return Ok(FireReport {
            outcome: None,
            run_id: None,
            first: false,
        });
    };
    tracing::info!(schedule = %fire.schedule_id, at = %fire.scheduled_at, outcome = %fired.fire.outcome, first = fired.first, "fired");
    Ok(FireReport {
        outcome: Some(fired.fire.outcome),
        run_id: fired.fire.run_id,
        first: fired.first,
    })
}

/// The Lambda entry point. An event that is not a fire is refused with what is wrong
/// (Scheduler then retries it and, past its retries, drops it).
pub async fn run_lambda() -> Result<(), lambda_runtime::Error> {
    autocrew_shared::telemetry::init();
    let state = FireState::from_source(&ProcessEnv).await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<ScheduleFire>| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_fire_reads_and_a_stray_field_is_refused() {
        let sample = include_str!("../../../events/scheduler-schedule-fire.json");
        let fire: ScheduleFire = serde_json::from_str(sample).expect("the sample fire");
        assert_eq!(fire.scheduled_at.to_rfc3339(), "2026-12-07T07:00:00+00:00");
        let stray = r#"{"schedule_id": "5b2f3c1d-8e4a-4f6b-9c2d-1a7e3f5b9c04", "scheduled_at": "2026-12-07T07:00:00Z", "x": 1}"#;
        assert!(serde_json::from_str::<ScheduleFire>(stray).is_err());
        // Scheduler's placeholder left unfilled is not a time.
        let unfilled = autocrew_shared::domain::messages::schedule_fire_input(fire.schedule_id);
        assert!(serde_json::from_str::<ScheduleFire>(&unfilled).is_err());
    }
}
