//! Approvals and what they publish: reading an approval, deciding it, and serving the
//! files approved for publication under their stable links.

use crate::error::json_response;
use crate::request::{caller, json_body, path_param};
use crate::{ApiError, ApiState};
use autocrew_shared::crew::{agents, tools};
use autocrew_shared::domain::approvals::Approval;
use autocrew_shared::domain::requests::DecisionBody;
use autocrew_shared::domain::{ApprovalId, ProjectId, UserId};
use autocrew_shared::ports::{ApprovalStore, BlobError, BlobStore, Changed};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

/// An approval, as reading or deciding it answers.
#[derive(Serialize, utoipa::ToSchema)]
struct ApprovalAnswer {
    approval: Approval,
}

/// `GET /approvals/{approval_id}`: the action, its payload hash and its status.
pub async fn get_approval(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "approval_id", ApprovalId::parse)?;
    let approval = state.approvals.approval(id, user).await?;
    Ok(json_response(200, &ApprovalAnswer { approval }))
}

/// `POST /approvals/{approval_id}` with `{"decision", "payload_hash", "reason"?}`. A
/// changed payload, an expired approval, a second decision or a run that is not running is
/// a 409 and changes nothing; someone else's approval is a 404.
pub async fn decide(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "approval_id", ApprovalId::parse)?;
    let body: DecisionBody = json_body(request)?;
    let decided = decided(&*state.approvals, user, id, &body).await?;
    state.relay.publish(decided.effects).await;
    Ok(json_response(
        200,
        &ApprovalAnswer {
            approval: decided.value,
        },
    ))
}

/// `user`'s decision on approval `id`, its hash and reason checked first.
pub(crate) async fn decided(
    approvals: &dyn ApprovalStore,
    user: UserId,
    id: ApprovalId,
    body: &DecisionBody,
) -> Result<Changed<Approval>, ApiError> {
    let (hash, reason) = checked(body)?;
    Ok(approvals
        .decide(id, user, body.decision, hash, reason)
        .await?)
}

/// The decision's payload hash (64 lowercase hex digits) and its reason (at most 500
/// characters; blank is none), checked.
pub(crate) fn checked(body: &DecisionBody) -> Result<(&str, Option<&str>), ApiError> {
    let hash = body.payload_hash.trim();
    if hash.len() != 64
        || !hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ApiError::bad(
            "payload_hash",
            "must be the payload's sha-256 as 64 lowercase hex digits",
        ));
    }
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::bad("reason", "must be at most 500 characters"));
    }
    Ok((hash, reason))
}

/// `GET /sites/{project_id}/{path+}`: a published file, to anyone with the link. The page
/// is sandboxed (its own opaque origin), so its scripts never act as the API's origin.
pub async fn get_site(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let project = path_param(request, "project_id", ProjectId::parse)?;
    let path = request
        .path_parameters_ref()
        .and_then(|p| p.first("path"))
        .unwrap_or_default();
    let bytes = published(&*state.blobs, project, path).await?;
    Response::builder()
        .status(200)
        .header("content-type", agents::content_type(path))
        .header("cache-control", "public, max-age=60")
        .header("x-content-type-options", "nosniff")
        .header(
            "content-security-policy",
            "sandbox allow-scripts allow-forms allow-popups",
        )
        .body(Body::Binary(bytes))
        .map_err(|e| ApiError::Internal(Box::new(e)))
}

/// The file published at `path` of `project`'s link.
pub(crate) async fn published(
    blobs: &dyn BlobStore,
    project: ProjectId,
    path: &str,
) -> Result<Vec<u8>, ApiError> {
    if !tools::safe_path(path) {
        return Err(ApiError::bad("path", "must be a relative file path"));
    }
    match blobs.get(&format!("sites/{project}/{path}")).await {
        Ok(bytes) => Ok(bytes),
        Err(BlobError::NotFound { .. }) => Err(ApiError::NotFound("published file")),
        Err(e) => Err(ApiError::Internal(Box::new(e))),
    }
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::Spec;

    pub fn get_approval() -> Spec {
        Spec::new("An approval with the exact payload to decide on.").reply::<ApprovalAnswer>(200)
    }

    pub fn decide() -> Spec {
        Spec::new("Approves or rejects, quoting the payload's hash.")
            .body::<DecisionBody>()
            .reply::<ApprovalAnswer>(200)
    }

    pub fn get_site() -> Spec {
        Spec::new("A published file, public.").file(200)
    }
}
