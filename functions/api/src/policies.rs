//! What the tools do in the world, as the caller steers and follows it: approval policies
//! (for each tool that acts in the world, whether the caller is asked before each call, the
//! default, or lets it run on its own), and the deploys and builds they started.

use crate::error::json_response;
use crate::request::{caller, json_body, path_param};
use crate::{ApiError, ApiState};
use autocrew_shared::crew::AgentProfiles;
use autocrew_shared::crew::tools;
use autocrew_shared::domain::connections::Deployment;
use autocrew_shared::domain::requests::PolicyBody;
use autocrew_shared::domain::{AgentKind, ProjectId, Service, UserId};
use autocrew_shared::ports::{DeploymentStore, ProjectStore, ToolPolicies};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

/// Whether a tool asks the caller before each call.
#[derive(Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ApprovalMode {
    /// Each call waits for the caller's approval of its exact payload.
    Ask,
    /// Calls run without asking.
    Auto,
}

impl ApprovalMode {
    pub(crate) fn of(auto: bool) -> ApprovalMode {
        match auto {
            true => ApprovalMode::Auto,
            false => ApprovalMode::Ask,
        }
    }
}

/// One tool's policy: the tool, its service, the agents that use it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Policy {
    pub tool: String,
    /// The service it acts through (`null` for publishing, which is ours).
    pub service: Option<Service>,
    pub agents: Vec<AgentKind>,
    pub approval: ApprovalMode,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Policies {
    pub policies: Vec<Policy>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Deployments {
    /// Newest first.
    deployments: Vec<Deployment>,
}

fn policy(profiles: &AgentProfiles, tool: &str, auto: bool) -> Policy {
    let agents: Vec<AgentKind> = AgentKind::ALL
        .iter()
        .copied()
        .filter(|a| profiles.get(*a).may_use(tool))
        .collect();
    Policy {
        tool: tool.to_owned(),
        service: tools::service(tool),
        agents,
        approval: ApprovalMode::of(auto),
    }
}

/// `GET /me/policies`: every tool that acts in the world, with the caller's policy.
pub async fn list_policies(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let policies = policies_of(&*state.policies, &state.profiles, user).await?;
    Ok(json_response(200, &policies))
}

/// Every tool that acts in the world, with `user`'s policy for it (ask, unless set).
pub(crate) async fn policies_of(
    policies: &dyn ToolPolicies,
    profiles: &AgentProfiles,
    user: UserId,
) -> Result<Policies, ApiError> {
    let set = policies.policies(user).await?;
    let policies = tools::EFFECTS
        .iter()
        .map(|tool| {
            let auto = set.iter().any(|(t, auto)| t == tool && *auto);
            policy(profiles, tool, auto)
        })
        .collect();
    Ok(Policies { policies })
}

/// `PUT /me/policies/{tool}`: sets whether the tool asks first.
pub async fn set_policy(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let tool = request
        .path_parameters_ref()
        .and_then(|p| p.first("tool"))
        .unwrap_or_default()
        .to_owned();
    let body: PolicyBody = json_body(request)?;
    let set = set_policy_of(&*state.policies, &state.profiles, (user, &tool), &body).await?;
    Ok(json_response(200, &set))
}

/// Sets `user`'s policy for `tool`, one of the tools that act in the world.
pub(crate) async fn set_policy_of(
    policies: &dyn ToolPolicies,
    profiles: &AgentProfiles,
    (user, tool): (UserId, &str),
    body: &PolicyBody,
) -> Result<Policy, ApiError> {
    let Some(tool) = tools::EFFECTS.iter().find(|t| **t == tool) else {
        return Err(ApiError::NotFound("tool that acts in the world"));
    };
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
    policies.set_policy(user, tool, auto).await?;
    tracing::info!(%user, tool, auto, "approval policy set");
    Ok(policy(profiles, tool, auto))
}

/// `GET /projects/{project_id}/deployments`: the caller's project's deploys and builds,
/// newest first; `deployment_updated` events follow their changes.
pub async fn list_deployments(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = path_param(request, "project_id", ProjectId::parse)?;
    let ports = (&*state.projects, &*state.deployments);
    Ok(json_response(
        200,
        &deployments_of(ports, user, project).await?,
    ))
}

/// The deploys and builds of `user`'s project; someone else's project is not found.
async fn deployments_of(
    (projects, deployments): (&dyn ProjectStore, &dyn DeploymentStore),
    user: UserId,
    project: ProjectId,
) -> Result<Deployments, ApiError> {
    let project = crate::routes::owned(projects, user, project).await?;
    let deployments = deployments.project_deployments(project.id).await?;
    Ok(Deployments { deployments })
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::Spec;

    pub fn list_policies() -> Spec {
        Spec::new("Each tool that acts in the world (publishing, pushing code, deploying, sending, posting), its agents, and whether it asks the caller before each call.")
            .reply::<Policies>(200)
    }

    pub fn set_policy() -> Spec {
        Spec::new("Sets whether a tool asks before each call (ask, the default) or runs on its own (auto).")
            .body::<PolicyBody>()
            .reply::<Policy>(200)
    }

    pub fn list_deployments() -> Spec {
        Spec::new("The project's deploys and builds (Vercel sites, EAS builds), newest first: status, URL, the service's ids and times; deployment_updated events follow their changes.")
            .reply::<Deployments>(200)
    }
}
