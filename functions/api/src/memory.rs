//! What the crew remembers of a project and its user: searched by meaning, forgotten on
//! request, and the user's projects like this one.

use crate::error::json_response;
use crate::request::{caller, path_param, query_number, query_text};
use crate::routes::owned;
use crate::{ApiError, ApiState};
use autocrew_shared::domain::memory::{MemoryHit, SimilarProject};
use autocrew_shared::domain::{MemoryId, ProjectId};
use autocrew_shared::services::memory::api_attribution;
use autocrew_shared::services::{GatewayError, Memories};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

/// The most memories or projects one answer lists.
const LIMIT_MAX: i64 = 50;
/// The longest search text.
const QUERY_MAX: usize = 1000;

/// Memories found, best first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct MemorySearch {
    /// The search text, if there was one; without it, the latest memories.
    pub q: Option<String>,
    pub memories: Vec<MemoryHit>,
}

/// The caller's projects most like this one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SimilarProjects {
    pub projects: Vec<SimilarProject>,
}

fn limit(request: &Request, default: i64) -> Result<u32, ApiError> {
    let limit = query_number(request, "limit", default)?;
    if !(1..=LIMIT_MAX).contains(&limit) {
        return Err(ApiError::bad("limit", format!("must be 1-{LIMIT_MAX}")));
    }
    Ok(limit as u32)
}

/// The embedder's failure is the service's (503); our own storage's is ours.
fn unavailable(e: GatewayError) -> ApiError {
    match e {
        GatewayError::Store(e) => e.into(),
        other => ApiError::Unavailable(format!("memory search is unavailable: {other}")),
    }
}

fn memories(state: &ApiState) -> Memories<'_> {
    Memories {
        store: &*state.memory,
        gateway: &state.gateway,
    }
}

/// `GET /projects/{project_id}/memory?q=&limit=`: the project's and the user's user-wide
/// memories nearest `q` (the embedding is priced to the project), or the latest ones.
pub async fn search_memory(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = path_param(request, "project_id", ProjectId::parse)?;
    let limit = limit(request, 10)?;
    let q = query_text(request, "q");
    if q.as_ref().is_some_and(|q| q.chars().count() > QUERY_MAX) {
        return Err(ApiError::bad(
            "q",
            format!("must be at most {QUERY_MAX} characters"),
        ));
    }
    let project = owned(&*state.projects, user, project).await?;
    let memories = memories(state)
        .search(&api_attribution(user, project.id), q.as_deref(), limit)
        .await
        .map_err(unavailable)?;
    Ok(json_response(200, &MemorySearch { q, memories }))
}

/// `DELETE /memory/{memory_id}`: 204; the crew no longer recalls it.
pub async fn forget_memory(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "memory_id", MemoryId::parse)?;
    state.memory.forget(user, id).await?;
    Ok(Response::builder()
        .status(204)
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty)))
}

/// `GET /projects/{project_id}/similar?limit=`: the caller's other projects nearest this
/// one's gist (or its name and description while it has none).
pub async fn similar_projects(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = path_param(request, "project_id", ProjectId::parse)?;
    let limit = limit(request, 5)?;
    let project = owned(&*state.projects, user, project).await?;
    let describe = match project.description.trim() {
        "" => project.name.clone(),
        d => format!("{}: {d}", project.name),
    };
    let projects = memories(state)
        .similar_projects(&api_attribution(user, project.id), &describe, limit)
        .await
        .map_err(unavailable)?;
    Ok(json_response(200, &SimilarProjects { projects }))
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::{Spec, integer, query, text};

    pub fn search_memory() -> Spec {
        Spec::new("Searches what the crew remembers of the project and of the caller (user-wide preferences) by meaning, best first, weighted by recency; without q, the latest memories.")
            .query([
                query(
                    "q",
                    "What to look for.",
                    text().max_length(Some(QUERY_MAX)),
                ),
                query(
                    "limit",
                    "At most this many (default 10).",
                    integer(1, Some(LIMIT_MAX)),
                ),
            ])
            .reply::<MemorySearch>(200)
    }

    pub fn forget_memory() -> Spec {
        Spec::new("Forgets one memory: no later task recalls it.").empty(204)
    }

    pub fn similar_projects() -> Spec {
        Spec::new("The caller's other projects most like this one, by what each builds.")
            .query([query(
                "limit",
                "At most this many (default 5).",
                integer(1, Some(LIMIT_MAX)),
            )])
            .reply::<SimilarProjects>(200)
    }
}
