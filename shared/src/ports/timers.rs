//! The clocks that fire schedules: EventBridge Scheduler on AWS, one timer per schedule.

use super::BackendError;
use crate::domain::ScheduleId;
use crate::domain::schedule::Schedule;
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
#[error("the schedule's timer could not be {action}: {source}")]
pub struct TimerError {
    pub action: &'static str,
    #[source]
    pub source: BackendError,
}

/// What fires each schedule at its times. The fires it delivers go to the schedule-fire
/// function, which records each once (`ScheduleStore::fire`).
#[async_trait]
pub trait ScheduleTimers: Send + Sync {
    /// Creates or replaces `schedule`'s timer: its expression in its time zone, paused while
    /// the schedule is disabled.
    async fn set(&self, schedule: &Schedule) -> Result<(), TimerError>;
    /// Deletes `schedule`'s timer; one already gone is fine.
    async fn remove(&self, schedule: ScheduleId) -> Result<(), TimerError>;
}
