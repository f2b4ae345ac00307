//! A project's conversation with its orchestrator. A message is answered by step-reply
//! (through the LLM gateway, priced), the reply streamed over the WebSocket as
//! `reply_progress` and stored as `message_posted`; a message sent `as_command` starts a
//! run instead.

use crate::browse::page;
use crate::error::json_response;
use crate::request::{caller, json_body, path_param};
use crate::routes::{RunLimits, RunStarted, owned_project, refuse_archived, run_started};
use crate::{ApiError, ApiState};
use autocrew_shared::domain::conversation::ChatMessage;
use autocrew_shared::domain::paging::{Page, Paged};
use autocrew_shared::domain::records::Project;
use autocrew_shared::domain::requests::NewMessage;
use autocrew_shared::domain::{ProjectId, UserId};
use autocrew_shared::ports::{Conversations, Publisher, RunStore};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

/// `GET /projects/{project_id}/messages?cursor=&limit=`: newest first.
pub async fn list_messages(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = path_param(request, "project_id", ProjectId::parse)?;
    let page = page(request)?;
    let thread = thread_of(&*state.conversations, (user, project), page).await?;
    Ok(json_response(200, &thread))
}

/// A page of `user`'s project's thread, newest first; someone else's project is not found.
pub(crate) async fn thread_of(
    conversations: &dyn Conversations,
    (user, project): (UserId, ProjectId),
    page: Page,
) -> Result<Paged<ChatMessage>, ApiError> {
    conversations
        .thread(user, project, page)
        .await?
        .ok_or(ApiError::NotFound("project"))
}

/// `POST /projects/{project_id}/messages`: 202 with the message and its pending reply (or,
/// `as_command`, with the message and the run it started).
pub async fn post_message(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = owned_project(state, request, user).await?;
    let body: NewMessage = json_body(request)?;
    let ports = Talk {
        conversations: &*state.conversations,
        runs: &*state.runs,
        publisher: &state.relay,
    };
    let key = || crate::request::idempotency_key(request);
    let posted = message_posted(&ports, (user, &project), &body, key).await?;
    Ok(json_response(202, &posted))
}

/// What posting a message uses.
pub(crate) struct Talk<'a> {
    pub conversations: &'a dyn Conversations,
    pub runs: &'a dyn RunStore,
    /// Sends the reply's message (or the run's start) and the events at once.
    pub publisher: &'a dyn Publisher,
}

/// `user`'s message to `project`'s orchestrator, checked; asked, or (`as_command`) a
/// run started under the request's `Idempotency-Key` (`key`, read only then).
pub(crate) async fn message_posted(
    ports: &Talk<'_>,
    (user, project): (UserId, &Project),
    body: &NewMessage,
    key: impl FnOnce() -> Result<Option<String>, ApiError>,
) -> Result<Posted, ApiError> {
    let text = autocrew_shared::domain::limits::text_within(
        &body.text,
        autocrew_shared::domain::limits::COMMAND_MAX,
    )
    .map_err(|e| ApiError::bad("text", e))?;
    let limits = RunLimits {
        budget_usd: body.budget_usd,
        max_concurrency: body.max_concurrency,
        deadline_minutes: body.deadline_minutes,
    };
    if let Some(run) = body.amend_run_id {
        return amended(ports, (user, project), run, (text, body.as_command)).await;
    }
    if !body.as_command {
        let given = [
            ("budget_usd", limits.budget_usd.is_some()),
            ("max_concurrency", limits.max_concurrency.is_some()),
            ("deadline_minutes", limits.deadline_minutes.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(_, set)| *set) {
            return Err(ApiError::bad(
                *field,
                "only applies to a message sent with \"as_command\": true",
            ));
        }
        let asked = ports.conversations.ask(user, project.id, text).await?;
        let (message, reply) = asked.value;
        ports.publisher.publish(asked.effects).await;
        return Ok(Posted::Asked(Asked {
            message,
            reply,
            events_url: format!("/projects/{}/events", project.id),
        }));
    }
    refuse_archived(project)?;
    let started = run_started(ports.runs, (user, project), (text, "text"), limits, key()).await?;
    ports.publisher.publish(started.effects).await;
    let run = started.value;
    let recorded = ports
        .conversations
        .record_command(user, project.id, text, run.id)
        .await?;
    ports.publisher.publish(recorded.effects).await;
    Ok(Posted::Command(CommandPosted {
        run: RunStarted::of(&run),
        message: recorded.value,
    }))
}

/// A message amending `run`'s plan: kept in the thread with the run, and the orchestrator
/// asked to revise the run's tasks not started. 404 for another's run, 409 when the run is
/// not running or its plan cannot be revised now (a revision is pending, or it had its
/// revisions).
async fn amended(
    ports: &Talk<'_>,
    (user, project): (UserId, &Project),
    run: autocrew_shared::domain::RunId,
    (text, as_command): (&str, bool),
) -> Result<Posted, ApiError> {
    if as_command {
        return Err(ApiError::bad(
            "amend_run_id",
            "amends a running plan; a message sent \"as_command\" starts a new run",
        ));
    }
    let found = match ports.runs.run(run).await {
        Ok(found) if found.user_id == user && found.project_id == project.id => found,
        Ok(_) | Err(autocrew_shared::ports::StoreError::NotFound { .. }) => {
            return Err(ApiError::NotFound("run"));
        }
        Err(e) => return Err(e.into()),
    };
    if found.status != autocrew_shared::domain::RunStatus::Running {
        return Err(ApiError::Conflict(format!(
            "run {run} is {}: only a running plan can be amended",
            found.status
        )));
    }
    let asked = ports
        .runs
        .request_revision(run, &format!("the user asked: {text}"))
        .await?;
    ports.publisher.publish(asked.effects).await;
    if !asked.value {
        return Err(ApiError::Conflict(format!(
            "run {run}'s plan cannot be revised now: a revision is under way, or it had its {} revisions",
            autocrew_shared::domain::revision::MAX_REVISIONS
        )));
    }
    let recorded = ports
        .conversations
        .record_command(user, project.id, text, run)
        .await?;
    ports.publisher.publish(recorded.effects).await;
    Ok(Posted::Amended(Amended {
        run_id: run,
        message: recorded.value,
        revision: "asked".into(),
    }))
}

/// What posting a message answers: the orchestrator's reply to come, a started run, or a
/// running plan's revision asked for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum Posted {
    Asked(Asked),
    Command(CommandPosted),
    Amended(Amended),
}

/// A message amending a running plan: the run, the message as kept, and `revision:
/// "asked"` (the `plan_revised` event says what changed).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Amended {
    pub run_id: autocrew_shared::domain::RunId,
    pub message: ChatMessage,
    pub revision: String,
}

/// A message to the orchestrator: its reply streams over the WebSocket (`reply_progress`,
/// then `message_posted`), and is here as a pending message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Asked {
    pub message: ChatMessage,
    pub reply: ChatMessage,
    pub events_url: String,
}

/// A message sent `as_command`: the run it started, and the message as recorded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CommandPosted {
    #[serde(flatten)]
    pub run: RunStarted,
    pub message: ChatMessage,
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::{Spec, paging};

    pub fn list_messages() -> Spec {
        Spec::new("The project's conversation, newest first.")
            .query(paging())
            .page::<ChatMessage>(200)
    }

    pub fn post_message() -> Spec {
        Spec::new("A message to the orchestrator, answered over the WebSocket (reply_progress, then message_posted); with as_command, a run.")
            .body::<NewMessage>()
            .reply::<Posted>(202)
    }
}
