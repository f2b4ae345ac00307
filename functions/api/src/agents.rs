//! `GET /agents`: each agent's profile (tools, whether those that act in the world ask the
//! caller first, loop bounds)
//! and the models it would use now, routed as its next call would be: by its model policy
//! for each task complexity, over the configured providers, after the caller's budget has
//! stepped tiers down.

use crate::error::json_response;
use crate::policies::ApprovalMode;
use crate::request::caller;
use crate::{ApiError, ApiState};
use autocrew_shared::crew::{AgentProfiles, tools};
use autocrew_shared::domain::{AgentKind, Complexity, MicroUsd, UserId};
use autocrew_shared::ports::{BudgetStore, ToolPolicies};
use autocrew_shared::services::Gateway;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use std::collections::BTreeMap;

/// The agents, and the share of the caller's monthly AI budget left (which can step the
/// models down a tier).
#[derive(Serialize, utoipa::ToSchema)]
struct AgentsView {
    budget_percent_left: u8,
    agents: Vec<AgentView>,
}

/// One agent's profile and the models it would use now.
#[derive(Serialize, utoipa::ToSchema)]
struct AgentView {
    agent: AgentKind,
    tools: Vec<String>,
    /// The tools that act in the world, and whether each asks the caller first.
    approvals: BTreeMap<String, ApprovalMode>,
    max_steps: u32,
    max_tokens: u32,
    max_task_tokens: u32,
    /// By the task's complexity.
    models: Models,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Models {
    simple: ModelRoute,
    medium: ModelRoute,
    complex: ModelRoute,
}

/// The tier a task of that complexity starts at and the models tried, in order.
#[derive(Serialize, utoipa::ToSchema)]
struct ModelRoute {
    tier: String,
    /// How many tiers the budget stepped down.
    downgraded_by: u8,
    chain: Vec<ModelChoice>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ModelChoice {
    provider: String,
    model: String,
    /// Dollars per million input tokens, as text; `null` when the model has no price.
    usd_per_million_input: Option<String>,
    usd_per_million_output: Option<String>,
}

pub async fn list_agents(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let roster = Roster {
        budgets: &*state.budgets,
        policies: &*state.policies,
        gateway: &state.gateway,
        profiles: &state.profiles,
    };
    Ok(json_response(200, &agents_view(&roster, user).await?))
}

/// What `GET /agents` reads.
struct Roster<'a> {
    /// How much of the caller's monthly budget is left (a low one routes down).
    pub budgets: &'a dyn BudgetStore,
    /// Which tools run without asking.
    pub policies: &'a dyn ToolPolicies,
    /// Routes as the steps would; no model is called.
    pub gateway: &'a Gateway,
    pub profiles: &'a AgentProfiles,
}

/// Each agent's profile, its tools' approval modes for `user`, and the models its tasks
/// would use now, by complexity.
async fn agents_view(ports: &Roster<'_>, user: UserId) -> Result<AgentsView, ApiError> {
    let percent_left = ports.budgets.percent_left(user, None).await?;
    let table = &ports.gateway.models().table;
    let auto: Vec<String> = ports
        .policies
        .policies(user)
        .await?
        .into_iter()
        .filter(|(_, auto)| *auto)
        .map(|(tool, _)| tool)
        .collect();
    let route_for = |complexity: Complexity, profile: &autocrew_shared::crew::AgentProfile| {
        let tier = profile.model_policy.tier_for(complexity);
        let route = ports
            .gateway
            .route(tier, percent_left)
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let chain = route
            .chain
            .iter()
            .map(|m| {
                let price = table.price(&m.provider, &m.model).ok();
                ModelChoice {
                    provider: m.provider.clone(),
                    model: m.model.clone(),
                    usd_per_million_input: price.map(|p| MicroUsd(p.base.input.0).to_string()),
                    usd_per_million_output: price.map(|p| MicroUsd(p.base.output.0).to_string()),
                }
            })
            .collect();
        Ok::<_, ApiError>(ModelRoute {
            tier: route.tier,
            downgraded_by: route.downgraded_by,
            chain,
        })
    };
    let mut agents = Vec::new();
    for &agent in AgentKind::ALL {
        let profile = ports.profiles.get(agent);
        agents.push(AgentView {
            agent,
            tools: profile.tools.clone(),
            approvals: profile
                .tools
                .iter()
                .filter(|t| tools::acts_in_world(t))
                .map(|t| (t.clone(), ApprovalMode::of(auto.contains(t))))
                .collect(),
            max_steps: profile.max_steps,
            max_tokens: profile.max_tokens,
            max_task_tokens: profile.max_task_tokens,
            models: Models {
                simple: route_for(Complexity::Simple, profile)?,
                medium: route_for(Complexity::Medium, profile)?,
                complex: route_for(Complexity::Complex, profile)?,
            },
        });
    }
    Ok(AgentsView {
        budget_percent_left: percent_left,
        agents,
    })
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::Spec;

    pub fn list_agents() -> Spec {
        Spec::new("The agents' profiles and the models each would use now.")
            .reply::<AgentsView>(200)
    }
}
