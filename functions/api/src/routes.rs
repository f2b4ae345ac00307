//! The routes: parse, check, apply, answer.

use crate::error::json_response;
use crate::request::{
    caller, idempotency_key, json_body, optional_json_body, path_param, query_number,
};
use crate::{ApiError, ApiState};
use autocrew_shared::domain::approvals::Approval;
use autocrew_shared::domain::events::Event;
use autocrew_shared::domain::limits;
use autocrew_shared::domain::records::{
    CostTotals, MAX_DEADLINE_MINUTES, NewRun, Project, RequestKey, Run, Task,
};
use autocrew_shared::domain::requests::{NewCommand, NewProject, Resume};
use autocrew_shared::domain::{MicroUsd, ProjectId, RunId, RunStatus, TaskId, UserId};
use autocrew_shared::ports::{
    ApprovalStore, ArtifactStore, BlobStore, Changed, EventLog, Ledger, ProjectStore, RunControl,
    RunStore, StoreError, TaskReads,
};
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::time::Duration;

pub async fn create_project(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let body: NewProject = json_body(request)?;
    let project = new_project(&*state.projects, user, &body).await?;
    Ok(json_response(201, &project))
}

/// Checks a new project's fields and creates it for `user`.
pub(crate) async fn new_project(
    projects: &dyn ProjectStore,
    user: UserId,
    body: &NewProject,
) -> Result<Project, ApiError> {
    let name = limits::text_within(&body.name, limits::PROJECT_NAME_MAX)
        .map_err(|e| ApiError::bad("name", e))?;
    description_within(&body.description)?;
    Ok(projects
        .create_project(user, name, body.description.trim())
        .await?)
}

/// A project's description, checked against its limit.
pub(crate) fn description_within(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > limits::PROJECT_DESCRIPTION_MAX {
        return Err(ApiError::bad(
            "description",
            format!(
                "must be at most {} characters",
                limits::PROJECT_DESCRIPTION_MAX
            ),
        ));
    }
    Ok(())
}

/// The caller's project; someone else's is reported as not found.
pub(crate) async fn owned_project(
    state: &ApiState,
    request: &Request,
    user: UserId,
) -> Result<Project, ApiError> {
    let id = path_param(request, "project_id", ProjectId::parse)?;
    owned(&*state.projects, user, id).await
}

/// `user`'s project `id`; someone else's is reported as not found, as a missing one.
pub(crate) async fn owned(
    projects: &dyn ProjectStore,
    user: UserId,
    id: ProjectId,
) -> Result<Project, ApiError> {
    match projects.project(id).await {
        Ok(project) if project.user_id == user => Ok(project),
        Ok(_) | Err(StoreError::NotFound { .. }) => Err(ApiError::NotFound("project")),
        Err(e) => Err(e.into()),
    }
}

/// How a run is bounded, as a request gives it; each left out takes its default.
#[derive(Default)]
pub(crate) struct RunLimits {
    /// The run's budget in dollars (default 5, at most 100).
    pub budget_usd: Option<f64>,
    /// How many tasks may run at once (default 4, 1-16).
    pub max_concurrency: Option<u32>,
    /// Minutes after which the run fails if it has not ended (default 360, 1-1440).
    pub deadline_minutes: Option<u32>,
}

/// The run budget a request asks for, checked.
pub(crate) fn budget(field: &'static str, usd: f64) -> Result<MicroUsd, ApiError> {
    let cap = MicroUsd::from_dollars(limits::RUN_BUDGET_MAX_DOLLARS);
    match MicroUsd::from_usd(usd) {
        Some(amount) if amount > MicroUsd::ZERO && amount <= cap => Ok(amount),
        _ => Err(ApiError::bad(
            field,
            format!(
                "must be more than 0 and at most {}",
                limits::RUN_BUDGET_MAX_DOLLARS
            ),
        )),
    }
}

/// 409 for an archived project: it takes no new work.
pub(crate) fn refuse_archived(project: &Project) -> Result<(), ApiError> {
    match project.archived_at {
        Some(_) => Err(ApiError::Conflict(format!(
            "project {} is archived; unarchive it (PATCH /projects/{{id}} with {{\"archived\": false}}) to run commands",
            project.id
        ))),
        None => Ok(()),
    }
}

pub async fn post_command(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = owned_project(state, request, user).await?;
    refuse_archived(&project)?;
    let body: NewCommand = json_body(request)?;
    let limits = RunLimits {
        budget_usd: body.budget_usd,
        max_concurrency: body.max_concurrency,
        deadline_minutes: body.deadline_minutes,
    };
    let command = (body.command.as_str(), "command");
    let started = run_started(
        &*state.runs,
        (user, &project),
        command,
        limits,
        idempotency_key(request),
    )
    .await?;
    state.relay.publish(started.effects).await;
    Ok(json_response(202, &RunStarted::of(&started.value)))
}

/// What a started run's 202 says: the run, and where to follow it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunStarted {
    run_id: RunId,
    /// The Step Functions execution's name.
    execution_name: String,
    status: RunStatus,
    /// When the run fails if it has not ended.
    deadline_at: Option<DateTime<Utc>>,
    /// `GET` it for the run with its tasks, artifacts and cost.
    run_url: String,
    /// The project's events (or follow them on the WebSocket).
    events_url: String,
}

impl RunStarted {
    pub(crate) fn of(run: &Run) -> RunStarted {
        RunStarted {
            run_id: run.id,
            execution_name: run.execution_name.clone(),
            status: run.status,
            deadline_at: run.deadline_at,
            run_url: format!("/runs/{}", run.id),
            events_url: format!("/projects/{}/events", run.project_id),
        }
    }
}

/// Checks `command` (named `field` in errors) and `limits`, then the request's
/// `Idempotency-Key` (as the request gave it, checked or not), then creates the run: the
/// run, its `run_created` event and the start of its execution commit together. The
/// caller publishes the effects: the relay starts the execution then, or the reconciler
/// does if the process dies.
pub(crate) async fn run_started(
    runs: &dyn RunStore,
    (user, project): (UserId, &Project),
    (command, field): (&str, &'static str),
    run_limits: RunLimits,
    key: Result<Option<String>, ApiError>,
) -> Result<Changed<Run>, ApiError> {
    let checked = run_request(project, user, (command, field), run_limits)?;
    let idempotency = match key? {
        Some(key) => Some(RequestKey {
            key,
            request_sha256: hex::encode(Sha256::digest(CheckedCommand::of(&checked)?)),
        }),
        None => None,
    };
    Ok(runs
        .create_run(NewRun {
            idempotency,
            ..checked
        })
        .await?)
}

/// What a command's idempotency key is bound to: the checked request, as JSON with its
/// fields in name order (the order the hashes kept so far were taken in).
#[derive(Serialize)]
struct CheckedCommand<'a> {
    budget_micro_usd: i64,
    command: &'a str,
    deadline_minutes: Option<u64>,
    max_concurrency: u32,
    project_id: ProjectId,
}

impl CheckedCommand<'_> {
    fn of(run: &NewRun) -> Result<Vec<u8>, ApiError> {
        serde_json::to_vec(&CheckedCommand {
            budget_micro_usd: run.budget.0,
            command: &run.command,
            deadline_minutes: run.deadline.map(|d| d.as_secs() / 60),
            max_concurrency: run.max_concurrency,
            project_id: run.project_id,
        })
        .map_err(|e| ApiError::Internal(Box::new(e)))
    }
}

/// The run a request asks for in `project`, checked: the command (named `field` in
/// errors) within its limit, each bound given within its own (or its default).
pub(crate) fn run_request(
    project: &Project,
    user: UserId,
    (command, field): (&str, &'static str),
    run_limits: RunLimits,
) -> Result<NewRun, ApiError> {
    let command =
        limits::text_within(command, limits::COMMAND_MAX).map_err(|e| ApiError::bad(field, e))?;
    let budget = match run_limits.budget_usd {
        Some(usd) => budget("budget_usd", usd)?,
        None => MicroUsd::from_dollars(limits::RUN_BUDGET_DEFAULT_DOLLARS),
    };
    let max_concurrency = run_limits
        .max_concurrency
        .unwrap_or(limits::DEFAULT_CONCURRENCY);
    if !(1..=limits::MAX_CONCURRENCY).contains(&max_concurrency) {
        return Err(ApiError::bad(
            "max_concurrency",
            format!("must be 1-{}", limits::MAX_CONCURRENCY),
        ));
    }
    let deadline_minutes = run_limits
        .deadline_minutes
        .unwrap_or(limits::DEFAULT_DEADLINE_MINUTES);
    if !(1..=MAX_DEADLINE_MINUTES).contains(&deadline_minutes) {
        return Err(ApiError::bad(
            "deadline_minutes",
            format!("must be 1-{MAX_DEADLINE_MINUTES}"),
        ));
    }
    Ok(NewRun {
        project_id: project.id,
        user_id: user,
        command: command.to_owned(),
        budget,
        max_concurrency,
        deadline: Some(Duration::from_secs(u64::from(deadline_minutes) * 60)),
        idempotency: None,
        schedule: None,
    })
}

/// `user`'s run `id`; someone else's is reported as not found, as a missing one.
pub(crate) async fn owned_run(
    runs: &dyn RunStore,
    user: UserId,
    id: RunId,
) -> Result<Run, ApiError> {
    match runs.run(id).await {
        Ok(run) if run.user_id == user => Ok(run),
        Ok(_) | Err(StoreError::NotFound { .. }) => Err(ApiError::NotFound("run")),
        Err(e) => Err(e.into()),
    }
}

/// `POST /runs/{run_id}/cancel`
pub async fn cancel_run(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "run_id", RunId::parse)?;
    let cancelled = cancelled(&*state.runs, &*state.control, user, id).await?;
    state.relay.publish(cancelled.effects).await;
    Ok(json_response(
        200,
        &RunAnswer {
            run: cancelled.value,
        },
    ))
}

/// Cancels `user`'s run `id`.
pub(crate) async fn cancelled(
    runs: &dyn RunStore,
    control: &dyn RunControl,
    user: UserId,
    id: RunId,
) -> Result<Changed<Run>, ApiError> {
    let run = owned_run(runs, user, id).await?;
    Ok(control.cancel(run.id, "cancelled by the user").await?)
}

/// `POST /runs/{run_id}/resume`, with an optional `{"budget_usd": N}`.
pub async fn resume_run(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "run_id", RunId::parse)?;
    let run = owned_run(&*state.runs, user, id).await?;
    let body: Resume = optional_json_body(request)?.unwrap_or_default();
    let resumed = resumed(&*state.control, &run, &body).await?;
    state.relay.publish(resumed.effects).await;
    Ok(json_response(202, &RunAnswer { run: resumed.value }))
}

/// Resumes `run` (the caller's) with the budget `body` asks for, if any.
pub(crate) async fn resumed(
    control: &dyn RunControl,
    run: &Run,
    body: &Resume,
) -> Result<Changed<Run>, ApiError> {
    let budget = body
        .budget_usd
        .map(|usd| budget("budget_usd", usd))
        .transpose()?;
    Ok(control.resume(run.id, budget).await?)
}

/// `POST /tasks/{task_id}/retry`
pub async fn retry_task(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "task_id", TaskId::parse)?;
    let retried = retried((&*state.tasks, &*state.runs), &*state.control, user, id).await?;
    state.relay.publish(retried.effects).await;
    Ok(json_response(
        202,
        &TaskAnswer {
            task: retried.value,
        },
    ))
}

/// Starts `user`'s failed task `id` again; someone else's is reported as not found.
pub(crate) async fn retried(
    (tasks, runs): (&dyn TaskReads, &dyn RunStore),
    control: &dyn RunControl,
    user: UserId,
    id: TaskId,
) -> Result<Changed<Task>, ApiError> {
    let task = tasks.task(id).await?;
    if runs.run(task.run_id).await?.user_id != user {
        return Err(ApiError::NotFound("task"));
    }
    Ok(control.retry_task(id).await?)
}

/// A run as `GET /runs/{run_id}` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunView {
    pub run: Run,
    pub tasks: Vec<TaskWithUsage>,
    /// The run's files, each with a download link valid an hour.
    pub artifacts: Vec<ArtifactLink>,
    /// What the run's model calls used and cost.
    pub totals: CostTotals,
    pub approvals: Vec<Approval>,
}

/// A task with what its own model calls used and cost (`null` before its first call).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TaskWithUsage {
    #[serde(flatten)]
    pub task: Task,
    pub usage: Option<CostTotals>,
}

/// An artifact of a run with a download link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ArtifactLink {
    pub key: String,
    pub task_id: Option<TaskId>,
    pub content_type: String,
    pub size_bytes: u64,
    pub checksum_sha256: String,
    /// A presigned GET, valid an hour.
    pub url: String,
}

/// A run, as cancelling or resuming it answers.
#[derive(Serialize, utoipa::ToSchema)]
struct RunAnswer {
    run: Run,
}

/// A task, as retrying it answers.
#[derive(Serialize, utoipa::ToSchema)]
struct TaskAnswer {
    task: Task,
}

pub async fn get_run(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "run_id", RunId::parse)?;
    let reads = RunReads {
        runs: &*state.runs,
        tasks: &*state.tasks,
        ledger: &*state.ledger,
        artifacts: &*state.artifacts,
        approvals: &*state.approvals,
        blobs: &*state.blobs,
    };
    Ok(json_response(200, &run_view(reads, user, id).await?))
}

/// What `GET /runs/{run_id}` reads.
pub(crate) struct RunReads<'a> {
    pub runs: &'a dyn RunStore,
    pub tasks: &'a dyn TaskReads,
    pub ledger: &'a dyn Ledger,
    pub artifacts: &'a dyn ArtifactStore,
    pub approvals: &'a dyn ApprovalStore,
    /// Signs the artifacts' download links.
    pub blobs: &'a dyn BlobStore,
}

/// `user`'s run `id` with its tasks and what each spent, its files with download links,
/// its approvals and its totals.
pub(crate) async fn run_view(
    reads: RunReads<'_>,
    user: UserId,
    id: RunId,
) -> Result<RunView, ApiError> {
    let run = owned_run(reads.runs, user, id).await?;
    let mut usage: std::collections::HashMap<TaskId, _> =
        reads.ledger.task_totals(id).await?.into_iter().collect();
    let tasks = reads
        .tasks
        .run_tasks(id)
        .await?
        .into_iter()
        .map(|task| TaskWithUsage {
            usage: usage.remove(&task.id),
            task,
        })
        .collect();
    let totals = reads.ledger.run_totals(id).await?;
    let mut artifacts = Vec::new();
    for artifact in reads.artifacts.run_artifacts(id).await? {
        let url = reads
            .blobs
            .presigned_get(&artifact.key, Duration::from_secs(3600))
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        artifacts.push(ArtifactLink {
            key: artifact.key,
            task_id: artifact.task_id,
            content_type: artifact.content_type,
            size_bytes: artifact.size_bytes,
            checksum_sha256: artifact.checksum_sha256,
            url,
        });
    }
    let approvals = reads.approvals.run_approvals(id).await?;
    Ok(RunView {
        run,
        tasks,
        artifacts,
        totals,
        approvals,
    })
}

/// A project's events after a sequence number.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventsPage {
    /// Oldest first.
    pub events: Vec<Event>,
    /// The last event's sequence number (or `after` when there is none): the next `after`.
    pub last_seq: i64,
}

pub async fn list_events(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = path_param(request, "project_id", ProjectId::parse)?;
    let after = query_number(request, "after", 0)?;
    let limit = query_number(request, "limit", 100)?;
    let page = events_after(&*state.events, (user, project), after, limit).await?;
    Ok(json_response(200, &page))
}

/// The most events one page of `GET /projects/{project_id}/events` holds.
const EVENTS_LIMIT_MAX: i64 = 500;

/// `user`'s project's events after `after`, at most `limit` (1-500).
pub(crate) async fn events_after(
    events: &dyn EventLog,
    (user, project): (UserId, ProjectId),
    after: i64,
    limit: i64,
) -> Result<EventsPage, ApiError> {
    if after < 0 {
        return Err(ApiError::bad("after", "must not be negative"));
    }
    if !(1..=EVENTS_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::bad(
            "limit",
            format!("must be 1-{EVENTS_LIMIT_MAX}"),
        ));
    }
    // The owner check and the read in one statement: the GET's one round trip.
    let events = events
        .owned_since(user, project, after, limit as u32)
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    let last_seq = events.last().map(|e| e.seq).unwrap_or(after);
    Ok(EventsPage { events, last_seq })
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::{Spec, integer, query};

    pub fn create_project() -> Spec {
        Spec::new("Creates a project.")
            .body::<NewProject>()
            .reply::<Project>(201)
            .creates("project_id", "/id")
    }

    pub fn post_command() -> Spec {
        Spec::new("Starts a run of the command; follow it on the WebSocket or the events.")
            .body::<NewCommand>()
            .reply::<RunStarted>(202)
            .creates("run_id", "/run_id")
    }

    pub fn get_run() -> Spec {
        Spec::new("The run with its tasks, artifacts (download links), approvals and cost.")
            .reply::<RunView>(200)
    }

    pub fn list_events() -> Spec {
        Spec::new("The project's events after a sequence number, oldest first.")
            .query([
                query(
                    "after",
                    "Events after this sequence number (default 0).",
                    integer(0, None),
                ),
                query(
                    "limit",
                    "Events at most (default 100).",
                    integer(1, Some(EVENTS_LIMIT_MAX)),
                ),
            ])
            .reply::<EventsPage>(200)
    }

    pub fn cancel_run() -> Spec {
        Spec::new("Cancels the run.").reply::<RunAnswer>(200)
    }

    pub fn resume_run() -> Spec {
        Spec::new("A failed or cancelled run goes on where it stopped.")
            .optional_body::<Resume>()
            .reply::<RunAnswer>(202)
    }

    pub fn retry_task() -> Spec {
        Spec::new("A failed task starts again.").reply::<TaskAnswer>(202)
    }
}
