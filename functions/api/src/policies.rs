//! What the tools do in the world, as the caller steers and follows it: approval policies
//! (for each tool that acts in the world, whether the caller is asked before each call, the
//! default, or lets it run on its own), and the deploys and builds they started.

use crate::error::json_response;
use crate::request::{caller, json_body};
use crate::{ApiError, ApiState};
use autocrew_shared::crew::tools;
use autocrew_shared::domain::AgentKind;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyBody {
    /// `ask`: every call waits for the caller's approval of its exact payload; `auto`: calls
    /// run without asking (still once per idempotency key, within the tool's limits).
    #[schema(pattern = "^(ask|auto)$")]
    approval: String,
}

/// One tool's policy as the API shows it: the tool, its service, the agents that use it.
fn policy(state: &ApiState, tool: &str, auto: bool) -> Value {
    let agents: Vec<AgentKind> = AgentKind::ALL
        .iter()
        .copied()
        .filter(|a| state.profiles.get(*a).may_use(tool))
        .collect();
    json!({
        "tool": tool,
        "service": tools::service(tool),
        "agents": agents,
        "approval": if auto { "auto" } else { "ask" },
    })
}

/// `GET /me/policies`: every tool that acts in the world, with the caller's policy.
pub async fn list_policies(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let set = state.policies.policies(user).await?;
    let policies: Vec<Value> = tools::EFFECTS
        .iter()
        .map(|tool| {
            let auto = set.iter().any(|(t, auto)| t == tool && *auto);
            policy(state, tool, auto)
        })
        .collect();
    Ok(json_response(200, &json!({"policies": policies})))
}

/// `PUT /me/policies/{tool}`: sets whether the tool asks first.
pub async fn set_policy(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let tool = request
        .path_parameters_ref()
        .and_then(|p| p.first("tool"))
        .unwrap_or_default()
        .to_owned();
    let Some(tool) = tools::EFFECTS.iter().find(|t| **t == tool) else {
        return Err(ApiError::NotFound("tool that acts in the world"));
    };
    let body: PolicyBody = json_body(request)?;
    let auto = match body.approval.as_str() {
        "ask" => false,
        "auto" => true,
        other => {
            return Err(ApiError::bad(
                "approval",
                format!("must be ask or auto, got {other:?}"),
            ));
        }
    };
    state.policies.set_policy(user, tool, auto).await?;
    tracing::info!(%user, tool, auto, "approval policy set");
    Ok(json_response(200, &policy(state, tool, auto)))
}

/// `GET /projects/{project_id}/deployments`: the caller's project's deploys and builds,
/// newest first; `deployment_updated` events follow their changes.
pub async fn list_deployments(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = crate::routes::owned_project(state, request, user).await?;
    let deployments = state.deployments.project_deployments(project.id).await?;
    Ok(json_response(200, &json!({"deployments": deployments})))
}
