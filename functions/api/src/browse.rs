//! The lists and details the app browses: projects (and their update, archive, delete),
//! runs, tasks with their attempts, artifacts with download links. Lists are newest first
//! and paged by cursor (`?cursor=&limit=`, answering `{"items": [...], "next_cursor"}`);
//! another user's resources answer 404, or are not in the list.

use crate::error::json_response;
use crate::request::{caller, json_body, path_param, query_number, query_text};
use crate::routes::{description_within, owned, owned_project};
use crate::{ApiError, ApiState};
use autocrew_shared::domain::limits;
use autocrew_shared::domain::paging::{Cursor, DEFAULT_LIMIT, MAX_LIMIT, Page, Paged};
use autocrew_shared::domain::records::ProjectChanges;
use autocrew_shared::domain::records::{Artifact, Project, Run};
use autocrew_shared::domain::requests::ProjectPatch;
use autocrew_shared::domain::{ProjectId, RunId, RunStatus, TaskId, UserId};
use autocrew_shared::ports::{BlobStore, Browse, ProjectStore, TaskDetail};
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use std::time::Duration;

/// How long an artifact's download link works.
const LINK_TTL: Duration = Duration::from_secs(3600);

/// `?cursor=&limit=`, checked.
pub(crate) fn page(request: &Request) -> Result<Page, ApiError> {
    let limit = query_number(request, "limit", i64::from(DEFAULT_LIMIT))?;
    if !(1..=i64::from(MAX_LIMIT)).contains(&limit) {
        return Err(ApiError::bad("limit", format!("must be 1-{MAX_LIMIT}")));
    }
    let after = query_text(request, "cursor")
        .map(|text| Cursor::decode(&text).map_err(|e| ApiError::bad("cursor", e)))
        .transpose()?;
    Ok(Page {
        after,
        limit: limit as u32,
    })
}

pub(crate) fn status_filter(request: &Request) -> Result<Option<RunStatus>, ApiError> {
    query_text(request, "status")
        .map(|text| {
            text.parse::<RunStatus>().map_err(|_| {
                ApiError::bad(
                    "status",
                    "must be one of pending, planning, running, compiling, succeeded, failed, cancelled",
                )
            })
        })
        .transpose()
}

/// `GET /projects?archived=true|false&cursor=&limit=`
pub async fn list_projects(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let archived = query_text(request, "archived");
    let page = page(request)?;
    let projects = projects_listed(&*state.browse, user, archived.as_deref(), page).await?;
    Ok(json_response(200, &projects))
}

/// A page of `user`'s projects: the archived ones (`archived` is `"true"`), or the others.
pub(crate) async fn projects_listed(
    browse: &dyn Browse,
    user: UserId,
    archived: Option<&str>,
    page: Page,
) -> Result<Paged<Project>, ApiError> {
    let archived = match archived {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad("archived", "must be true or false")),
    };
    Ok(browse.projects(user, archived, page).await?)
}

/// `GET /projects/{project_id}`
pub async fn get_project(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = owned_project(state, request, user).await?;
    Ok(json_response(200, &project))
}

/// `PATCH /projects/{project_id}`: name, description, `archived` (an archived project
/// takes no new commands).
pub async fn update_project(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "project_id", ProjectId::parse)?;
    let patch: ProjectPatch = json_body(request)?;
    let project = change_project(&*state.projects, user, id, patch).await?;
    Ok(json_response(200, &project))
}

/// Checks a project's changes and makes them; another user's project is not found.
pub(crate) async fn change_project(
    projects: &dyn ProjectStore,
    user: UserId,
    id: ProjectId,
    patch: ProjectPatch,
) -> Result<Project, ApiError> {
    let name = patch.name.as_deref().map(str::trim);
    if let Some(name) = name {
        limits::text_within(name, limits::PROJECT_NAME_MAX)
            .map_err(|e| ApiError::bad("name", e))?;
    }
    if let Some(description) = &patch.description {
        description_within(description)?;
    }
    if name.is_none() && patch.description.is_none() && patch.archived.is_none() {
        return Err(ApiError::bad(
            "body",
            "change at least one of name, description, archived",
        ));
    }
    let changes = ProjectChanges {
        name: name.map(str::to_owned),
        description: patch.description.map(|d| d.trim().to_owned()),
        archived: patch.archived,
    };
    Ok(projects.update_project(user, id, &changes).await?)
}

/// `DELETE /projects/{project_id}`: the project, its runs and its files; 409 while a run
/// has not ended.
pub async fn delete_project(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "project_id", ProjectId::parse)?;
    let ports = (&*state.projects, &*state.browse, &*state.blobs);
    // Its schedules go with it, and their timers after it.
    let schedules = state
        .schedules
        .project_schedules(user, id)
        .await
        .unwrap_or_default();
    project_deleted(ports, user, id).await?;
    let ids: Vec<_> = schedules.iter().map(|s| s.id).collect();
    crate::schedules::forget_timers(state, &ids).await;
    Ok(Response::builder()
        .status(204)
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty)))
}

/// Deletes `user`'s project `id` with its files, once none of its runs is still going.
pub(crate) async fn project_deleted(
    (projects, browse, blobs): (&dyn ProjectStore, &dyn Browse, &dyn BlobStore),
    user: UserId,
    id: ProjectId,
) -> Result<(), ApiError> {
    let project = owned(projects, user, id).await?;
    let active = browse
        .runs(
            user,
            Some(project.id),
            None,
            Page {
                after: None,
                limit: MAX_LIMIT,
            },
        )
        .await?
        .items
        .into_iter()
        .filter(|r| !r.status.is_terminal())
        .count();
    if active > 0 {
        return Err(ApiError::Conflict(format!(
            "project {} has {active} run(s) not ended; cancel them first",
            project.id
        )));
    }
    // Files first: a project whose row is gone must leave nothing behind. A failure here
    // leaves the project in place to delete again.
    for prefix in [
        format!("projects/{}/", project.id),
        format!("sites/{}/", project.id),
    ] {
        blobs
            .delete_prefix(&prefix)
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
    }
    Ok(projects.delete_project(user, project.id).await?)
}

/// `GET /runs?status=&project_id=&cursor=&limit=`: the caller's runs across projects.
pub async fn list_runs(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = query_text(request, "project_id")
        .map(|text| {
            ProjectId::parse("project_id", &text)
                .map_err(|e| ApiError::bad("project_id", e.to_string()))
        })
        .transpose()?;
    let runs = state
        .browse
        .runs(user, project, status_filter(request)?, page(request)?)
        .await?;
    Ok(json_response(200, &runs))
}

/// `GET /projects/{project_id}/runs?status=&cursor=&limit=`
pub async fn list_project_runs(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = owned_project(state, request, user).await?;
    let runs = state
        .browse
        .runs(
            user,
            Some(project.id),
            status_filter(request)?,
            page(request)?,
        )
        .await?;
    Ok(json_response(200, &runs))
}

/// A run's tasks, in plan order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunTasks {
    pub items: Vec<TaskDetail>,
}

/// `GET /runs/{run_id}/tasks`: every task of the run with its attempts, result and error.
pub async fn list_run_tasks(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let run = path_param(request, "run_id", RunId::parse)?;
    Ok(json_response(
        200,
        &run_tasks_of(&*state.browse, user, run).await?,
    ))
}

/// `user`'s run's tasks with their attempts; someone else's run is not found.
pub(crate) async fn run_tasks_of(
    browse: &dyn Browse,
    user: UserId,
    run: RunId,
) -> Result<RunTasks, ApiError> {
    let tasks = browse
        .run_tasks(user, run)
        .await?
        .ok_or(ApiError::NotFound("run"))?;
    Ok(RunTasks { items: tasks })
}

/// `GET /tasks/{task_id}`
pub async fn get_task(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let task = path_param(request, "task_id", TaskId::parse)?;
    Ok(json_response(
        200,
        &task_of(&*state.browse, user, task).await?,
    ))
}

/// `user`'s task with its attempts; someone else's is not found.
pub(crate) async fn task_of(
    browse: &dyn Browse,
    user: UserId,
    task: TaskId,
) -> Result<TaskDetail, ApiError> {
    browse
        .task(user, task)
        .await?
        .ok_or(ApiError::NotFound("task"))
}

/// `GET /projects/{project_id}/artifacts?run_id=&cursor=&limit=`: each with a download
/// link valid for an hour.
pub async fn list_artifacts(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = path_param(request, "project_id", ProjectId::parse)?;
    let run = query_text(request, "run_id")
        .map(|text| {
            RunId::parse("run_id", &text).map_err(|e| ApiError::bad("run_id", e.to_string()))
        })
        .transpose()?;
    let page = page(request)?;
    let ports = (&*state.browse, &*state.projects, &*state.blobs);
    let listed = artifacts_listed(ports, user, (project, run), page).await?;
    Ok(json_response(200, &listed))
}

/// A page of the artifacts of `user`'s project (of one run, if given), each with a
/// download link; someone else's project is not found.
pub(crate) async fn artifacts_listed(
    (browse, projects, blobs): (&dyn Browse, &dyn ProjectStore, &dyn BlobStore),
    user: UserId,
    (project, run): (ProjectId, Option<RunId>),
    page: Page,
) -> Result<Paged<ListedArtifact>, ApiError> {
    let listed = browse.artifacts(user, project, run, page).await?;
    if listed.items.is_empty() && page.after.is_none() {
        // An empty first page: tell "no artifacts yet" from "not your project".
        owned(projects, user, project).await?;
    }
    let mut items = Vec::with_capacity(listed.items.len());
    for entry in listed.items {
        let url = blobs
            .presigned_get(&entry.artifact.key, LINK_TTL)
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        items.push(ListedArtifact {
            artifact: entry.artifact,
            created_at: entry.created_at,
            url,
        });
    }
    Ok(Paged {
        items,
        next_cursor: listed.next_cursor,
    })
}

/// An artifact in a project's list, with a download link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ListedArtifact {
    #[serde(flatten)]
    pub artifact: Artifact,
    pub created_at: DateTime<Utc>,
    /// A presigned GET, valid an hour.
    pub url: String,
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::{Spec, one_of, paging, query, query_of, uuid_query};
    use utoipa::openapi::path::Parameter;

    fn run_status() -> Parameter {
        query_of::<RunStatus>("status", "Only runs of this status.")
    }

    pub fn list_projects() -> Spec {
        Spec::new("The caller's projects, newest first.")
            .query([query(
                "archived",
                "The archived projects instead (default false).",
                one_of(&["true", "false"]),
            )])
            .query(paging())
            .page::<Project>(200)
    }

    pub fn get_project() -> Spec {
        Spec::new("One project.").reply::<Project>(200)
    }

    pub fn update_project() -> Spec {
        Spec::new("Renames, describes, archives or unarchives a project.")
            .body::<ProjectPatch>()
            .reply::<Project>(200)
    }

    pub fn delete_project() -> Spec {
        Spec::new("Deletes the project, its runs and its files.").empty(204)
    }

    pub fn list_runs() -> Spec {
        Spec::new("The caller's runs across projects, newest first.")
            .query([
                run_status(),
                uuid_query("project_id", "Only this project's runs."),
            ])
            .query(paging())
            .page::<Run>(200)
    }

    pub fn list_project_runs() -> Spec {
        Spec::new("A project's runs, newest first.")
            .query([run_status()])
            .query(paging())
            .page::<Run>(200)
    }

    pub fn list_run_tasks() -> Spec {
        Spec::new("A run's tasks with their attempts, results and errors.").reply::<RunTasks>(200)
    }

    pub fn get_task() -> Spec {
        Spec::new("One task with its attempts.").reply::<TaskDetail>(200)
    }

    pub fn list_artifacts() -> Spec {
        Spec::new("A project's artifacts with download links, newest first.")
            .query([uuid_query("run_id", "Only this run's artifacts.")])
            .query(paging())
            .page::<ListedArtifact>(200)
    }
}
