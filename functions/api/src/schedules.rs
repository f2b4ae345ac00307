//! A project's schedules: its command started by a clock, in a time zone, with what each
//! fire did. EventBridge Scheduler's expressions (`cron`, `rate`, `at`), read by the same
//! rules here as where they fire.

use crate::browse::page;
use crate::error::json_response;
use crate::request::{caller, json_body, path_param};
use crate::routes::{budget, owned, refuse_archived};
use crate::{ApiError, ApiState};
use autocrew_shared::domain::limits;
use autocrew_shared::domain::paging::{Page, Paged};
use autocrew_shared::domain::requests::{NewSchedule as NewScheduleBody, SchedulePatch};
use autocrew_shared::domain::schedule::{Expression, Fire, Schedule, time_zone};
use autocrew_shared::domain::{
    MicroUsd, ProjectId, ScheduleCatchUp, ScheduleId, ScheduleKind, ScheduleOverlap, UserId,
};
use autocrew_shared::ports::{NewSchedule, ProjectStore, ScheduleFields, ScheduleStore};
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

/// Now, to the microsecond Postgres keeps: a rate's fires count from the schedule's
/// creation, and the times compared must be the stored ones.
fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// The longest expression kept (EventBridge Scheduler's limit).
const EXPRESSION_MAX: usize = 256;

/// A project's schedules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Schedules {
    pub schedules: Vec<Schedule>,
}

/// A schedule's fields as a request gives them, before they are checked.
pub(crate) struct Asked<'a> {
    pub expression: &'a str,
    pub timezone: &'a str,
    pub command: &'a str,
    pub budget: MicroUsd,
    pub overlap: ScheduleOverlap,
    pub catch_up: ScheduleCatchUp,
    pub enabled: bool,
}

/// When a checked schedule fires next: `Made` at once for a rate (as EventBridge
/// Scheduler), `Kept` on from its creation (a rate counts from then).
pub(crate) enum Since {
    Made(DateTime<Utc>),
    Kept {
        now: DateTime<Utc>,
        created: DateTime<Utc>,
    },
}

/// Checks a schedule's fields together and computes its next fire. An expression that
/// never fires again (an `at()` already past) is refused.
pub(crate) fn checked(asked: &Asked<'_>, since: Since) -> Result<ScheduleFields, ApiError> {
    if asked.expression.trim().chars().count() > EXPRESSION_MAX {
        return Err(ApiError::bad(
            "expression",
            format!("must be at most {EXPRESSION_MAX} characters"),
        ));
    }
    let expression: Expression = asked
        .expression
        .parse()
        .map_err(|e: String| ApiError::bad("expression", e))?;
    let tz = time_zone(asked.timezone).map_err(|e| ApiError::bad("timezone", e))?;
    let command = limits::text_within(asked.command, limits::COMMAND_MAX)
        .map_err(|e| ApiError::bad("command", e))?;
    let next = match since {
        Since::Made(now) => expression.first_after(now, tz),
        Since::Kept { now, created } => expression.next_after(now, tz, created),
    };
    if next.is_none() {
        return Err(ApiError::bad(
            "expression",
            format!("{} never fires after now", asked.expression.trim()),
        ));
    }
    Ok(ScheduleFields {
        expression: asked.expression.trim().to_owned(),
        timezone: tz.name().to_owned(),
        command: command.to_owned(),
        budget: asked.budget,
        overlap: asked.overlap,
        catch_up: asked.catch_up,
        enabled: asked.enabled,
        next_fire_at: next.filter(|_| asked.enabled),
    })
}

/// `POST /projects/{project_id}/schedules`: 201 with the schedule and its next fire.
pub async fn create_schedule(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = path_param(request, "project_id", ProjectId::parse)?;
    let body: NewScheduleBody = json_body(request)?;
    let ports = (&*state.projects, &*state.schedules);
    let made = schedule_made(ports, (user, project), &body, now()).await?;
    // No schedule without its timer: one that cannot be set is taken back.
    if let Err(e) = state.timers.set(&made).await {
        tracing::error!(schedule = %made.id, error = %e, "the timer was not set; the schedule is taken back");
        state.schedules.delete(user, made.id).await?;
        return Err(ApiError::Unavailable(format!(
            "the schedule could not be set on the clock that fires it: {e}"
        )));
    }
    Ok(json_response(201, &made))
}

/// Makes a schedule on `user`'s project, its fields checked.
pub(crate) async fn schedule_made(
    (projects, schedules): (&dyn ProjectStore, &dyn ScheduleStore),
    (user, project): (UserId, ProjectId),
    body: &NewScheduleBody,
    now: DateTime<Utc>,
) -> Result<Schedule, ApiError> {
    let project = owned(projects, user, project).await?;
    refuse_archived(&project)?;
    let budget = match body.budget_usd {
        Some(usd) => budget("budget_usd", usd)?,
        None => MicroUsd::from_dollars(limits::RUN_BUDGET_DEFAULT_DOLLARS),
    };
    // Without a time zone, the schedule keeps the user's clock.
    let timezone = match &body.timezone {
        Some(tz) => tz.clone(),
        None => projects.user(user).await?.timezone,
    };
    let asked = Asked {
        expression: &body.expression,
        timezone: &timezone,
        command: &body.command,
        budget,
        overlap: body.overlap.unwrap_or(ScheduleOverlap::Skip),
        catch_up: body.catch_up.unwrap_or(ScheduleCatchUp::Skip),
        enabled: body.enabled.unwrap_or(true),
    };
    let fields = checked(&asked, Since::Made(now))?;
    let new = NewSchedule {
        project: project.id,
        user,
        kind: ScheduleKind::Command,
        fields,
        created_at: now,
    };
    Ok(schedules.create(&new).await?)
}

/// `GET /projects/{project_id}/schedules`: newest first.
pub async fn list_schedules(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = path_param(request, "project_id", ProjectId::parse)?;
    let project = owned(&*state.projects, user, project).await?;
    let schedules = state.schedules.project_schedules(user, project.id).await?;
    Ok(json_response(200, &Schedules { schedules }))
}

/// `GET /schedules/{schedule_id}`
pub async fn get_schedule(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "schedule_id", ScheduleId::parse)?;
    Ok(json_response(
        200,
        &state.schedules.schedule(user, id).await?,
    ))
}

/// `PATCH /schedules/{schedule_id}`: changes it; `enabled` pauses and resumes it.
pub async fn update_schedule(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "schedule_id", ScheduleId::parse)?;
    let patch: SchedulePatch = json_body(request)?;
    let changed = schedule_changed(&*state.schedules, (user, id), &patch, now()).await?;
    if let Err(e) = state.timers.set(&changed).await {
        tracing::error!(schedule = %id, error = %e, "the timer was not updated");
        return Err(ApiError::Unavailable(format!(
            "the change is saved but the clock that fires the schedule still has the old one ({e}): send it again"
        )));
    }
    Ok(json_response(200, &changed))
}

/// `user`'s schedule `id` with `patch` applied, checked as a whole; its next fire is
/// computed again (none while paused).
pub(crate) async fn schedule_changed(
    schedules: &dyn ScheduleStore,
    (user, id): (UserId, ScheduleId),
    patch: &SchedulePatch,
    now: DateTime<Utc>,
) -> Result<Schedule, ApiError> {
    let SchedulePatch {
        expression,
        timezone,
        command,
        budget_usd,
        overlap,
        catch_up,
        enabled,
    } = patch;
    let given = [
        expression.is_some(),
        timezone.is_some(),
        command.is_some(),
        budget_usd.is_some(),
        overlap.is_some(),
        catch_up.is_some(),
        enabled.is_some(),
    ];
    if !given.contains(&true) {
        return Err(ApiError::bad(
            "body",
            "change at least one of expression, timezone, command, budget_usd, overlap, catch_up, enabled",
        ));
    }
    let kept = schedules.schedule(user, id).await?;
    let budget = match patch.budget_usd {
        Some(usd) => budget("budget_usd", usd)?,
        None => kept.budget_micro_usd,
    };
    let asked = Asked {
        expression: patch.expression.as_deref().unwrap_or(&kept.expression),
        timezone: patch.timezone.as_deref().unwrap_or(&kept.timezone),
        command: patch.command.as_deref().unwrap_or(&kept.command),
        budget,
        overlap: patch.overlap.unwrap_or(kept.overlap),
        catch_up: patch.catch_up.unwrap_or(kept.catch_up),
        enabled: patch.enabled.unwrap_or(kept.enabled),
    };
    let fields = checked(
        &asked,
        Since::Kept {
            now,
            created: kept.created_at,
        },
    )?;
    Ok(schedules.update(user, id, &fields).await?)
}

/// `DELETE /schedules/{schedule_id}`: 204; the runs it started stay.
pub async fn delete_schedule(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "schedule_id", ScheduleId::parse)?;
    state.schedules.delete(user, id).await?;
    forget_timers(state, &[id]).await;
    Ok(Response::builder()
        .status(204)
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty)))
}

/// Deletes the timers of schedules already deleted. One that cannot be deleted now fires
/// once more into the schedule-fire function, which finds no schedule and deletes it.
pub(crate) async fn forget_timers(state: &ApiState, ids: &[ScheduleId]) {
    for id in ids {
        if let Err(e) = state.timers.remove(*id).await {
            tracing::warn!(schedule = %id, error = %e, "the timer outlives its schedule until it fires");
        }
    }
}

/// `GET /schedules/{schedule_id}/fires`: what each fire did, newest first.
pub async fn list_fires(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "schedule_id", ScheduleId::parse)?;
    let page: Page = page(request)?;
    let fires: Paged<Fire> = state.schedules.fires(user, id, page).await?;
    Ok(json_response(200, &fires))
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::{Spec, paging};

    pub fn create_schedule() -> Spec {
        Spec::new("Schedules the project's command: cron(), rate() or at() in a time zone, with what a fire does while the last run is going and with fires it missed.")
            .body::<NewScheduleBody>()
            .reply::<Schedule>(201)
            .creates("schedule_id", "/id")
    }

    pub fn list_schedules() -> Spec {
        Spec::new("The project's schedules, newest first.").reply::<Schedules>(200)
    }

    pub fn get_schedule() -> Spec {
        Spec::new("A schedule and its next fire.").reply::<Schedule>(200)
    }

    pub fn update_schedule() -> Spec {
        Spec::new("Changes a schedule; enabled pauses and resumes it.")
            .body::<SchedulePatch>()
            .reply::<Schedule>(200)
    }

    pub fn delete_schedule() -> Spec {
        Spec::new("Deletes a schedule; the runs it started stay.").empty(204)
    }

    pub fn list_fires() -> Spec {
        Spec::new(
            "What each fire did (the run it started, or why it skipped or waits), newest first.",
        )
        .query(paging())
        .page::<Fire>(200)
    }
}
