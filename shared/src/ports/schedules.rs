//! Schedules and their fires.

use super::Effects;
use super::store::StoreError;
use crate::domain::paging::{Page, Paged};
use crate::domain::records::Run;
use crate::domain::schedule::{Fire, Schedule};
use crate::domain::{
    MicroUsd, ProjectId, ScheduleCatchUp, ScheduleId, ScheduleKind, ScheduleOverlap, UserId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A schedule to keep: its project and user, and its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    pub project: ProjectId,
    pub user: UserId,
    /// What its runs do (an update never changes it).
    pub kind: ScheduleKind,
    pub fields: ScheduleFields,
    /// A rate's fires count from here.
    pub created_at: DateTime<Utc>,
}

/// A schedule's fields, checked together (its expression and time zone parse, its next
/// fire is computed from them); an update writes them all.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleFields {
    pub expression: String,
    pub timezone: String,
    pub command: String,
    pub budget: MicroUsd,
    pub overlap: ScheduleOverlap,
    pub catch_up: ScheduleCatchUp,
    pub enabled: bool,
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// What a fire did, with what it sends out (the run's start and events).
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub fire: Fire,
    /// The run it started.
    pub run: Option<Run>,
    pub effects: Effects,
    /// False when this fire was recorded before (a second delivery): nothing changed.
    pub first: bool,
}

#[async_trait]
pub trait ScheduleStore: Send + Sync {
    async fn create(&self, new: &NewSchedule) -> Result<Schedule, StoreError>;
    /// `user`'s schedule `id`; another user's is `NotFound`.
    async fn schedule(&self, user: UserId, id: ScheduleId) -> Result<Schedule, StoreError>;
    /// Schedule `id`, whoever's: what a delivered fire is for (none once it is deleted).
    async fn find(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError>;
    /// The ids of every schedule of `user`'s, for their timers.
    async fn user_schedules(&self, user: UserId) -> Result<Vec<ScheduleId>, StoreError>;
    /// `user`'s project's schedules, newest first.
    async fn project_schedules(
        &self,
        user: UserId,
        project: ProjectId,
    ) -> Result<Vec<Schedule>, StoreError>;
    /// Writes `user`'s schedule `id` with `fields` (another user's is `NotFound`).
    async fn update(
        &self,
        user: UserId,
        id: ScheduleId,
        fields: &ScheduleFields,
    ) -> Result<Schedule, StoreError>;
    /// Deletes `user`'s schedule `id` with its fires; its runs stay.
    async fn delete(&self, user: UserId, id: ScheduleId) -> Result<(), StoreError>;
    /// The fires of `user`'s schedule `id`, newest first.
    async fn fires(
        &self,
        user: UserId,
        id: ScheduleId,
        page: Page,
    ) -> Result<Paged<Fire>, StoreError>;
    /// Enabled schedules whose next fire is at or before `now`, soonest first, at most
    /// `limit`.
    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Schedule>, StoreError>;
    /// Records the fire of `schedule` due at `scheduled_at` and moves the schedule on to
    /// `next`, in one transaction, once per (schedule, scheduled time): a second delivery
    /// changes nothing and gets the first one's fire. With `skip`, the fire starts nothing
    /// for that reason. Otherwise, while the schedule's last run is going, the fire follows
    /// `overlap`; if none is, it starts a run of the schedule's command and budget, marked
    /// with the schedule, with its `run_created` event and the start of its execution.
    async fn fire(
        &self,
        schedule: ScheduleId,
        (scheduled_at, next): (DateTime<Utc>, Option<DateTime<Utc>>),
        skip: Option<&str>,
    ) -> Result<Fired, StoreError>;
    /// Starts the fires that wait (overlap `queue`) whose schedule has no run going any
    /// more, at most `limit`, each in its own transaction.
    async fn start_waiting(&self, limit: u32) -> Result<Vec<Fired>, StoreError>;
}
