//! Firing schedules by a clock: the local runner's scheduler (EventBridge Scheduler fires
//! them on AWS, into the same `fire`). Each tick fires the schedules that are due, by their
//! catch-up policy, then starts the fires that waited for a run to end.

use crate::domain::ScheduleCatchUp;
use crate::domain::schedule::{Expression, Schedule, time_zone};
use crate::ports::{Fired, Publisher, ScheduleStore, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A fire later than this after its time was missed (nothing fired the schedule then):
/// EventBridge Scheduler fires within the minute.
pub const GRACE: chrono::Duration = chrono::Duration::minutes(2);

/// What a due schedule's fire does now.
#[derive(Debug, Clone, PartialEq)]
pub struct FirePlan {
    /// The time the fire is for.
    pub scheduled_at: DateTime<Utc>,
    /// When the schedule fires next (`None`: never again).
    pub next: Option<DateTime<Utc>>,
    /// Why the fire starts nothing, if it does not.
    pub skip: Option<String>,
}

/// The fire of `schedule`, due (its `next_fire_at` is at or before `now`), decided by its
/// catch-up policy: on time, it fires for its time; missed, it fires once for the latest
/// time it missed (`once`) or records that time as skipped (`skip`). Either way the
/// schedule goes on from the first time after `now`. `None` when it has no due time or
/// its expression no longer reads (it was checked when written).
pub fn plan(schedule: &Schedule, now: DateTime<Utc>) -> Option<FirePlan> {
    let due = schedule.next_fire_at.filter(|at| *at <= now)?;
    let expression: Expression = schedule.expression.parse().ok()?;
    let tz = time_zone(&schedule.timezone).ok()?;
    let start = schedule.created_at;
    // The latest time the schedule should have fired, at or before now.
    let latest = expression
        .latest_until(now, tz, start)
        .filter(|at| *at >= due)
        .unwrap_or(due);
    let next = expression.next_after(now, tz, start);
    let late = now - latest > GRACE;
    let skip = match (late, schedule.catch_up) {
        (false, _) | (true, ScheduleCatchUp::Once) => None,
        (true, ScheduleCatchUp::Skip) => Some(format!(
            "missed while nothing fired the schedule (due since {}; catch_up: skip)",
            due.to_rfc3339()
        )),
    };
    Some(FirePlan {
        scheduled_at: latest,
        next,
        skip,
    })
}

/// The fire of `schedule` for `at` as EventBridge Scheduler delivered it at `now`: for that
/// time; skipped while the schedule is paused, or when delivered later than `GRACE` (after
/// retries) with catch-up `skip`. The schedule goes on from the first time after both.
pub fn plan_delivered(schedule: &Schedule, at: DateTime<Utc>, now: DateTime<Utc>) -> FirePlan {
    let next = match (
        schedule.expression.parse::<Expression>(),
        time_zone(&schedule.timezone),
    ) {
        (Ok(expression), Ok(tz)) if schedule.enabled => {
            expression.next_after(now.max(at), tz, schedule.created_at)
        }
        _ => None,
    };
    let skip = if !schedule.enabled {
        Some("the schedule is paused".to_owned())
    } else if now - at > GRACE && schedule.catch_up == ScheduleCatchUp::Skip {
        Some(format!(
            "delivered {} s after its time (catch_up: skip)",
            (now - at).num_seconds()
        ))
    } else {
        None
    };
    FirePlan {
        scheduled_at: at,
        next,
        skip,
    }
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tick {
    /// Fires recorded now (started, skipped or waiting).
    pub fired: Vec<Fired>,
    /// Fires that had waited and started now.
    pub started_waiting: Vec<Fired>,
}

/// Fires schedules from the store and publishes the runs they start.
pub struct Scheduler {
    pub schedules: Arc<dyn ScheduleStore>,
    pub publisher: Arc<dyn Publisher>,
}

impl Scheduler {
    /// Records a fire EventBridge Scheduler delivered (once per schedule and time, however
    /// often it is delivered) and publishes the run it starts. `None` when the schedule is
    /// gone: its timer outlived it.
    pub async fn deliver(
        &self,
        fire: &crate::domain::messages::ScheduleFire,
        now: DateTime<Utc>,
    ) -> Result<Option<Fired>, StoreError> {
        let Some(schedule) = self.schedules.find(fire.schedule_id).await? else {
            return Ok(None);
        };
        let plan = plan_delivered(&schedule, fire.scheduled_at, now);
        self.fire_by(&schedule, &plan).await.map(Some)
    }

    /// Records `schedule`'s fire as `plan` says and publishes what it starts.
    async fn fire_by(&self, schedule: &Schedule, plan: &FirePlan) -> Result<Fired, StoreError> {
        let fired = self
            .schedules
            .fire(
                schedule.id,
                (plan.scheduled_at, plan.next),
                plan.skip.as_deref(),
            )
            .await?;
        self.publisher.publish(fired.effects.clone()).await;
        Ok(fired)
    }

    /// Fires every schedule due at `now` (at most `limit`), then starts the fires that
    /// waited for their schedule's last run to end.
    pub async fn tick(&self, now: DateTime<Utc>, limit: u32) -> Result<Tick, StoreError> {
        let mut tick = Tick::default();
        for schedule in self.schedules.due(now, limit).await? {
            let Some(plan) = plan(&schedule, now) else {
                continue;
            };
            tick.fired.push(self.fire_by(&schedule, &plan).await?);
        }
        for fired in self.schedules.start_waiting(limit).await? {
            self.publisher.publish(fired.effects.clone()).await;
            tick.started_waiting.push(fired);
        }
        Ok(tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MicroUsd, ProjectId, ScheduleId, ScheduleKind, ScheduleOverlap, UserId};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a time")
            .with_timezone(&Utc)
    }

    fn schedule(expression: &str, next: &str, catch_up: ScheduleCatchUp) -> Schedule {
        Schedule {
            id: ScheduleId::new(),
            project_id: ProjectId::new(),
            user_id: UserId::new(),
            kind: ScheduleKind::Command,
            expression: expression.into(),
            timezone: "Europe/Paris".into(),
            command: "Post the day's update".into(),
            budget_micro_usd: MicroUsd::from_dollars(2),
            overlap: ScheduleOverlap::Skip,
            catch_up,
            enabled: true,
            next_fire_at: Some(at(next)),
            created_at: at("2026-12-01T00:00:00Z"),
            updated_at: at("2026-12-01T00:00:00Z"),
        }
    }

    #[test]
    fn a_fire_on_time_is_for_its_time_and_the_schedule_goes_on() {
        let daily = schedule(
            "cron(0 8 * * ? *)",
            "2026-12-06T07:00:00Z",
            ScheduleCatchUp::Skip,
        );
        let plan = plan(&daily, at("2026-12-06T07:00:20Z")).expect("due");
        assert_eq!(plan.scheduled_at, at("2026-12-06T07:00:00Z"));
        assert_eq!(plan.next, Some(at("2026-12-07T07:00:00Z")));
        assert_eq!(plan.skip, None);
    }

    #[test]
    fn missed_fires_are_skipped_or_made_up_once_by_policy() {
        let now = at("2026-12-09T09:30:00Z");
        let skipping = schedule(
            "cron(0 8 * * ? *)",
            "2026-12-06T07:00:00Z",
            ScheduleCatchUp::Skip,
        );
        let skipped = plan(&skipping, now).expect("due");
        assert_eq!(
            skipped.scheduled_at,
            at("2026-12-09T07:00:00Z"),
            "the latest missed"
        );
        assert!(
            skipped
                .skip
                .as_deref()
                .is_some_and(|r| r.contains("2026-12-06T07:00:00")),
            "{skipped:?}"
        );
        assert_eq!(skipped.next, Some(at("2026-12-10T07:00:00Z")));
        let once = schedule(
            "cron(0 8 * * ? *)",
            "2026-12-06T07:00:00Z",
            ScheduleCatchUp::Once,
        );
        let made_up = plan(&once, now).expect("due");
        assert_eq!(
            (made_up.scheduled_at, made_up.skip),
            (at("2026-12-09T07:00:00Z"), None)
        );
    }

    #[test]
    fn a_delivered_fire_is_for_its_time_unless_paused_or_too_late_to_catch_up() {
        let daily = schedule(
            "cron(0 8 * * ? *)",
            "2026-12-07T07:00:00Z",
            ScheduleCatchUp::Skip,
        );
        let eight = at("2026-12-07T07:00:00Z");
        let on_time = plan_delivered(&daily, eight, at("2026-12-07T07:00:20Z"));
        assert_eq!(on_time.scheduled_at, eight);
        assert_eq!(on_time.skip, None);
        assert_eq!(on_time.next, Some(at("2026-12-08T07:00:00Z")));
        // Retried by Scheduler for an hour: too late for catch-up skip, not for once.
        let late = plan_delivered(&daily, eight, at("2026-12-07T08:00:00Z"));
        assert!(late.skip.is_some_and(|s| s.contains("catch_up: skip")));
        let once = Schedule {
            catch_up: ScheduleCatchUp::Once,
            ..daily.clone()
        };
        assert_eq!(
            plan_delivered(&once, eight, at("2026-12-07T08:00:00Z")).skip,
            None
        );
        let paused = Schedule {
            enabled: false,
            ..daily
        };
        let plan = plan_delivered(&paused, eight, at("2026-12-07T07:00:20Z"));
        assert_eq!(plan.skip.as_deref(), Some("the schedule is paused"));
        assert_eq!(plan.next, None);
    }

    #[test]
    fn a_one_time_schedule_fires_once_and_a_schedule_not_due_does_not() {
        let once = schedule(
            "at(2026-12-24T08:00:00)",
            "2026-12-24T07:00:00Z",
            ScheduleCatchUp::Skip,
        );
        assert!(plan(&once, at("2026-12-24T06:59:59Z")).is_none());
        let plan = plan(&once, at("2026-12-24T07:00:05Z")).expect("due");
        assert_eq!(
            (plan.scheduled_at, plan.next),
            (at("2026-12-24T07:00:00Z"), None)
        );
    }
}
