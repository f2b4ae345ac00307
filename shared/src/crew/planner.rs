//! Planning: the orchestrator's request and the parsing of its answer.

use super::PLAN_SCHEMA_TITLE;
use crate::domain::{PlanError, PlanLimits, PlannedTask, TaskGraph};
use crate::ports::llm::{LlmRequest, LlmResponse, Message};
use serde::{Deserialize, Serialize};
use serde_json::json;

const SYSTEM: &str = "You are the orchestrator of a crew of AI agents: developer, marketer, sales, \
designer and ops. Turn the user's command into a plan: a small graph of concrete tasks, each \
assigned to one agent, with dependencies (task keys), a priority (low, normal, high, critical) \
and a complexity (simple, medium, complex). Let tasks run in parallel where they can. Answer \
with JSON only, matching the schema.";

/// The plan as the model returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanReply {
    /// A one-line name for what is being built.
    pub product: String,
    pub tasks: Vec<PlannedTask>,
}

/// Why a plan could not be used. Either way no task is dispatched.
#[derive(Debug, thiserror::Error)]
pub enum PlanningError {
    #[error("the plan is not valid JSON for the plan schema: {0}")]
    Unreadable(#[source] serde_json::Error),
    #[error("the plan was rejected: {0}")]
    Rejected(#[from] PlanError),
}

/// The JSON Schema the plan must match.
pub fn plan_schema() -> serde_json::Value {
    json!({
        "title": PLAN_SCHEMA_TITLE,
        "type": "object",
        "required": ["product", "tasks"],
        "properties": {
            "product": {"type": "string"},
            "tasks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "agent", "title"],
                    "properties": {
                        "key": {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"},
                        "agent": {"enum": ["developer", "marketer", "sales", "designer", "ops"]},
                        "title": {"type": "string"},
                        "description": {"type": "string"},
                        "depends_on": {"type": "array", "items": {"type": "string"}},
                        "priority": {"enum": ["low", "normal", "high", "critical"]},
                        "complexity": {"enum": ["simple", "medium", "complex"]}
                    }
                }
            }
        }
    })
}

/// The orchestrator's request for `command`.
pub fn plan_request(model: &str, command: &str) -> LlmRequest {
    LlmRequest {
        model: model.to_owned(),
        system: SYSTEM.to_owned(),
        messages: vec![Message::user(command)],
        tools: Vec::new(),
        max_tokens: 4096,
        temperature: Some(0.2),
        response_schema: Some(plan_schema()),
    }
}

/// Reads the model's answer and checks the plan: the graph is returned only if it is
/// acyclic, bounded, with known agents and no dangling dependencies.
pub fn parse_plan(
    response: &LlmResponse,
    limits: PlanLimits,
) -> Result<(PlanReply, TaskGraph), PlanningError> {
    let text = response.text();
    let reply: PlanReply =
        serde_json::from_str(strip_fences(&text)).map_err(PlanningError::Unreadable)?;
    let graph = TaskGraph::build(&reply.tasks, limits)?;
    Ok((reply, graph))
}

/// Models sometimes wrap JSON in a Markdown code fence; accept that.
pub(crate) fn strip_fences(text: &str) -> &str {
    let trimmed = text.trim();
    trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .map(str::trim)
        .unwrap_or(trimmed)
}
