//! `GET /agents`: each agent's profile (tools, whether those that act in the world ask the
//! caller first, loop bounds)
//! and the models it would use now, routed as its next call would be: by its model policy
//! for each task complexity, over the configured providers, after the caller's budget has
//! stepped tiers down.

use crate::error::json_response;
use crate::request::caller;
use crate::{ApiError, ApiState};
use autocrew_shared::crew::tools;
use autocrew_shared::domain::{AgentKind, Complexity, MicroUsd};
use lambda_http::{Body, Request, Response};
use serde_json::json;

pub async fn list_agents(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let percent_left = state.budgets.percent_left(user, None).await?;
    let table = &state.gateway.models().table;
    let auto: Vec<String> = state
        .policies
        .policies(user)
        .await?
        .into_iter()
        .filter(|(_, auto)| *auto)
        .map(|(tool, _)| tool)
        .collect();
    let mut agents = Vec::new();
    for &agent in AgentKind::ALL {
        let profile = state.profiles.get(agent);
        let mut models = serde_json::Map::new();
        for complexity in [Complexity::Simple, Complexity::Medium, Complexity::Complex] {
            let tier = profile.model_policy.tier_for(complexity);
            let route = state
                .gateway
                .route(tier, percent_left)
                .map_err(|e| ApiError::Internal(Box::new(e)))?;
            let chain: Vec<_> = route
                .chain
                .iter()
                .map(|m| {
                    let price = table.price(&m.provider, &m.model).ok();
                    json!({
                        "provider": m.provider, "model": m.model,
                        "usd_per_million_input": price.map(|p| MicroUsd(p.base.input.0).to_string()),
                        "usd_per_million_output": price.map(|p| MicroUsd(p.base.output.0).to_string()),
                    })
                })
                .collect();
            models.insert(
                complexity.to_string(),
                json!({"tier": route.tier, "downgraded_by": route.downgraded_by, "chain": chain}),
            );
        }
        agents.push(json!({
            "agent": agent,
            "tools": profile.tools,
            // The tools that act in the world, and whether each asks the caller first.
            "approvals": profile
                .tools
                .iter()
                .filter(|t| tools::acts_in_world(t))
                .map(|t| (t.clone(), json!(if auto.contains(t) { "auto" } else { "ask" })))
                .collect::<serde_json::Map<_, _>>(),
            "max_steps": profile.max_steps,
            "max_tokens": profile.max_tokens,
            "max_task_tokens": profile.max_task_tokens,
            "models": models,
        }));
    }
    Ok(json_response(
        200,
        &json!({"budget_percent_left": percent_left, "agents": agents}),
    ))
}
