//! Product analytics in: the project's app and landing page post their events, with the
//! owner's access token or the project's public ingest key (`?key=`), which the owner can
//! see, replace and revoke.

use crate::error::json_response;
use crate::request::{bearer, caller, json_body, query_text};
use crate::routes::owned_project;
use crate::{ApiError, ApiState};
use autocrew_shared::domain::ProjectId;
use autocrew_shared::domain::analytics::{self, EventBatch};
use autocrew_shared::ports::{IngestKey, KeyHolder};
use lambda_http::{Body, Request, Response};

/// Who a batch is from: the project's owner (a token) or its key.
async fn sender(
    state: &ApiState,
    request: &Request,
) -> Result<(ProjectId, autocrew_shared::domain::UserId), ApiError> {
    if bearer(request).is_some() {
        let user = caller(state, request).await?;
        let project = owned_project(state, request, user).await?;
        return Ok((project.id, user));
    }
    let path = crate::request::path_param(request, "project_id", ProjectId::parse)?;
    let Some(key) = query_text(request, "key") else {
        return Err(ApiError::Unauthorized(
            "send the project's ingest key as ?key= (or an access token as Authorization: Bearer)"
                .into(),
        ));
    };
    match state.analytics.holder(&key).await? {
        KeyHolder::Live(project, user) if project == path => Ok((project, user)),
        KeyHolder::Live(..) => Err(ApiError::Unauthorized(
            "the ingest key is another project's".into(),
        )),
        KeyHolder::Revoked => Err(ApiError::Unauthorized(
            "the ingest key was revoked; the project's owner has its new one".into(),
        )),
        KeyHolder::Unknown => Err(ApiError::Unauthorized("the ingest key is not valid".into())),
    }
}

/// `POST /projects/{project_id}/analytics/events`: 200 with how many events were kept and
/// how many had been sent before. A batch with a wrong event is refused whole (400 naming
/// `events[i].field`), so nothing of it is half kept.
pub async fn ingest_events(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let (project, user) = sender(state, request).await?;
    let batch: EventBatch = json_body(request)?;
    let events = analytics::check(batch, chrono::Utc::now())
        .map_err(|e| ApiError::bad(e.field, e.reason))?;
    let ingested = state.analytics.ingest(user, project, &events).await?;
    let mut response = json_response(200, &ingested);
    // Another site's page (the landing page on its own domain) may read the answer.
    if let Ok(any) = "*".parse() {
        response
            .headers_mut()
            .insert("access-control-allow-origin", any);
    }
    Ok(response)
}

/// `GET /projects/{project_id}/ingest-key`: the live key, or 404 when there is none (a
/// deploy makes one; so does `POST`).
pub async fn get_ingest_key(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = owned_project(state, request, user).await?;
    match state.analytics.live_key(project.id).await? {
        Some(key) => Ok(json_response(200, &key)),
        None => Err(ApiError::NotFound("ingest key")),
    }
}

/// `POST /projects/{project_id}/ingest-key`: 201 with a new key; the old one stops working
/// at once (pages deployed with it send nothing until the next deploy).
pub async fn rotate_ingest_key(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = owned_project(state, request, user).await?;
    let key: IngestKey = state.analytics.rotate_key(project.id).await?;
    Ok(json_response(201, &key))
}

/// `DELETE /projects/{project_id}/ingest-key`: 204; the key stops working at once. 404 when
/// there was no live key.
pub async fn revoke_ingest_key(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = owned_project(state, request, user).await?;
    if !state.analytics.revoke_key(project.id).await? {
        return Err(ApiError::NotFound("ingest key"));
    }
    Ok(Response::builder()
        .status(204)
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty)))
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::{Spec, query, text};
    use autocrew_shared::domain::analytics::Ingested;

    pub fn ingest_events() -> Spec {
        Spec::new("Keeps a batch of up to 500 events of the project's app or landing page, each once by its event_id. Send the project's public ingest key as ?key= (what the landing page's beacon does, as text/plain JSON) or the owner's access token.")
            .query([query(
                "key",
                "The project's public ingest key (GET /projects/{project_id}/ingest-key).",
                text().min_length(Some(1)).max_length(Some(100)),
            )])
            .body::<EventBatch>()
            .reply::<Ingested>(200)
    }

    pub fn get_ingest_key() -> Spec {
        Spec::new("The project's public ingest key: it can only add events to this project.")
            .reply::<IngestKey>(200)
    }

    pub fn rotate_ingest_key() -> Spec {
        Spec::new("A new ingest key for the project; the old one stops working at once.")
            .reply::<IngestKey>(201)
    }

    pub fn revoke_ingest_key() -> Spec {
        Spec::new("Revokes the project's ingest key: events sent with it are refused from now on.")
            .empty(204)
    }
}
