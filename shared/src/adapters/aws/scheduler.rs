//! `ScheduleTimers` on EventBridge Scheduler: one schedule per Autocrew schedule, named by
//! its id, in the stack's schedule group, with its expression and time zone, invoking the
//! schedule-fire function with the fire's time.

use super::boxed;
use crate::domain::ScheduleId;
use crate::domain::messages::schedule_fire_input;
use crate::domain::schedule::Schedule;
use crate::ports::{ScheduleTimers, TimerError};
use async_trait::async_trait;
use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState, Target};

/// Where the timers live and what they invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerSettings {
    /// `SCHEDULE_GROUP`: the stack's schedule group.
    pub group: String,
    /// `SCHEDULE_TARGET_ARN`: the schedule-fire function.
    pub target_arn: String,
    /// `SCHEDULE_ROLE_ARN`: the role Scheduler assumes to invoke it.
    pub role_arn: String,
}

impl TimerSettings {
    /// Reads `SCHEDULE_GROUP`, `SCHEDULE_TARGET_ARN` and `SCHEDULE_ROLE_ARN`.
    pub fn from_env(env: &dyn crate::config::Env) -> Result<Self, crate::config::ConfigError> {
        use crate::config::required;
        Ok(TimerSettings {
            group: required(env, "SCHEDULE_GROUP")?,
            target_arn: required(env, "SCHEDULE_TARGET_ARN")?,
            role_arn: required(env, "SCHEDULE_ROLE_ARN")?,
        })
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct EventBridgeTimers {
    client: aws_sdk_scheduler::Client,
    settings: TimerSettings,
}

impl EventBridgeTimers {
    pub fn new(sdk: &aws_config::SdkConfig, settings: TimerSettings) -> Self {
        EventBridgeTimers {
            client: aws_sdk_scheduler::Client::from_conf(
                aws_sdk_scheduler::config::Builder::from(sdk)
                    .interceptor(super::metering::Metering)
                    .build(),
            ),
            settings,
        }
    }

    /// The SDK client, for set-up and checks the port does not cover.
    pub fn client(&self) -> &aws_sdk_scheduler::Client {
        &self.client
    }

    fn target(&self, schedule: ScheduleId) -> Result<Target, TimerError> {
        Target::builder()
            .arn(&self.settings.target_arn)
            .role_arn(&self.settings.role_arn)
            .input(schedule_fire_input(schedule))
            .build()
            .map_err(|e| failed("built")(boxed(e)))
    }
}

fn failed(action: &'static str) -> impl FnOnce(crate::ports::BackendError) -> TimerError {
    move |source| TimerError { action, source }
}

fn state(schedule: &Schedule) -> ScheduleState {
    if schedule.enabled {
        ScheduleState::Enabled
    } else {
        ScheduleState::Disabled
    }
}

/// Fired at its time: the fire's time is the scheduled one, which makes each fire once.
fn on_time() -> Result<FlexibleTimeWindow, TimerError> {
    FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .map_err(|e| failed("built")(boxed(e)))
}

#[async_trait]
impl ScheduleTimers for EventBridgeTimers {
    async fn set(&self, schedule: &Schedule) -> Result<(), TimerError> {
        let name = schedule.id.to_string();
        let updated = self
            .client
            .update_schedule()
            .name(&name)
            .group_name(&self.settings.group)
            .schedule_expression(&schedule.expression)
            .schedule_expression_timezone(&schedule.timezone)
            .flexible_time_window(on_time()?)
            .target(self.target(schedule.id)?)
            .state(state(schedule))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                self.client
                    .create_schedule()
                    .name(&name)
                    .group_name(&self.settings.group)
                    .description(format!(
                        "Autocrew schedule of project {}",
                        schedule.project_id
                    ))
                    .schedule_expression(&schedule.expression)
                    .schedule_expression_timezone(&schedule.timezone)
                    .flexible_time_window(on_time()?)
                    .target(self.target(schedule.id)?)
                    .state(state(schedule))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| failed("created")(boxed(e)))
            }
            Err(e) => Err(failed("updated")(boxed(e))),
        }
    }

    async fn remove(&self, schedule: ScheduleId) -> Result<(), TimerError> {
        match self
            .client
            .delete_schedule()
            .name(schedule.to_string())
            .group_name(&self.settings.group)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(failed("deleted")(boxed(e))),
        }
    }
}
