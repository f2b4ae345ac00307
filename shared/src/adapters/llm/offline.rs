//! The offline provider: deterministic answers from templates, for running the whole
//! pipeline with no API key. Everything it writes says it is offline output. Token counts
//! are estimated (4 characters a token) so the ledger and the events have real numbers to
//! carry; the cost is zero because nothing was bought.

use super::offline_files;
use crate::crew::{
    AgentFile, AgentOutput, AgentTaskContext, OUTPUT_SCHEMA_TITLE, PLAN_SCHEMA_TITLE,
};
use crate::domain::records::TokenUsage;
use crate::ports::llm::{Content, LlmClient, LlmError, LlmRequest, LlmResponse, StopReason};
use async_trait::async_trait;
use serde_json::json;

/// The provider name written to the ledger.
pub const OFFLINE_PROVIDER: &str = "offline";
/// The one model it serves.
pub const OFFLINE_MODEL: &str = "offline-template-1";

/// Answers planning and agent requests from templates.
#[derive(Debug, Clone, Default)]
pub struct OfflineLlm;

fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.chars().count().div_ceil(4)).unwrap_or(u32::MAX)
}

fn last_user_text(request: &LlmRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .flat_map(|m| m.content.iter())
        .find_map(|c| match c {
            Content::Text { text } => Some(text.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// "Build a recipe app for keto dieters" → "Recipe app for keto dieters".
pub(crate) fn product_name(command: &str) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    let skip = match words.as_slice() {
        [verb, article, ..]
            if ["build", "make", "create", "launch"].contains(&verb.to_lowercase().as_str())
                && ["a", "an", "the", "my"].contains(&article.to_lowercase().as_str()) =>
        {
            2
        }
        [verb, ..]
            if ["build", "make", "create", "launch"].contains(&verb.to_lowercase().as_str()) =>
        {
            1
        }
        _ => 0,
    };
    let rest = words[skip.min(words.len())..].join(" ");
    let rest = rest.trim_end_matches(['.', '!', '?']);
    let mut chars = rest.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Untitled product".to_owned(),
    }
}

fn plan(command: &str) -> serde_json::Value {
    let product = product_name(command);
    let task =
        |key: &str, agent: &str, title: String, deps: &[&str], priority: &str, complexity: &str| {
            json!({
                "key": key, "agent": agent, "title": title,
                "description": format!("[offline] {title} for: {command}"),
                "depends_on": deps, "priority": priority, "complexity": complexity
            })
        };
    json!({
        "product": product,
        "tasks": [
            task("market_research", "marketer", format!("Research the audience for {product}"), &[], "high", "medium"),
            task("brand_sheet", "designer", format!("Design the brand sheet for {product}"), &[], "high", "simple"),
            task("app_skeleton", "developer", format!("Build the Expo app skeleton for {product}"), &["brand_sheet"], "critical", "complex"),
            task("landing_copy", "marketer", "Write the landing page copy".into(), &["market_research", "brand_sheet"], "normal", "medium"),
            task("outreach_plan", "sales", "Plan the first 100 users outreach".into(), &["market_research"], "normal", "medium"),
            task("ops_checklist", "ops", "Prepare the release checklist".into(), &["app_skeleton"], "normal", "simple"),
            task("launch_plan", "ops", "Plan the launch week".into(), &["landing_copy", "outreach_plan", "ops_checklist"], "high", "simple")
        ]
    })
}

fn agent_output(context: &AgentTaskContext) -> AgentOutput {
    let files = offline_files::for_task(context)
        .into_iter()
        .map(|(path, content)| AgentFile { path, content })
        .collect::<Vec<_>>();
    AgentOutput {
        summary: format!(
            "[offline] {} ({}) produced {} file(s) for {}",
            context.title,
            context.agent,
            files.len(),
            context.product
        ),
        files,
    }
}

#[async_trait]
impl LlmClient for OfflineLlm {
    fn provider(&self) -> &str {
        OFFLINE_PROVIDER
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let schema_title = request
            .response_schema
            .as_ref()
            .and_then(|s| s["title"].as_str());
        let user = last_user_text(request);
        let rejected = |message: String| LlmError::Rejected {
            provider: OFFLINE_PROVIDER.into(),
            model: request.model.clone(),
            message,
        };
        let answer = match schema_title {
            Some(PLAN_SCHEMA_TITLE) => plan(&user),
            Some(OUTPUT_SCHEMA_TITLE) => {
                let context: AgentTaskContext = serde_json::from_str(&user)
                    .map_err(|e| rejected(format!("agent context is not readable: {e}")))?;
                json!(agent_output(&context))
            }
            _ => {
                return Err(rejected(
                    "the offline provider only answers plan and agent-output requests".into(),
                ));
            }
        };
        let text = answer.to_string();
        let input = estimate_tokens(&request.system) + estimate_tokens(&user);
        Ok(LlmResponse {
            provider: OFFLINE_PROVIDER.into(),
            model: OFFLINE_MODEL.into(),
            usage: TokenUsage {
                input,
                output: estimate_tokens(&text),
                cache_write: 0,
                cache_read: 0,
            },
            content: vec![Content::Text { text }],
            stop_reason: StopReason::EndTurn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crew::{agents, planner};
    use crate::domain::{AgentKind, PlanLimits};
    use std::collections::HashSet;

    #[test]
    fn the_product_name_comes_from_the_command() {
        assert_eq!(
            product_name("Build a recipe app for keto dieters"),
            "Recipe app for keto dieters"
        );
        assert_eq!(product_name("make CRM for dentists."), "CRM for dentists");
        assert_eq!(product_name(""), "Untitled product");
    }

    #[tokio::test]
    async fn the_offline_plan_has_parallel_tasks_a_join_and_four_agents() {
        let response = OfflineLlm
            .complete(&planner::plan_request(
                OFFLINE_MODEL,
                "Build a recipe app for keto dieters",
            ))
            .await
            .unwrap();
        let (reply, graph) = planner::parse_plan(&response, PlanLimits::default()).unwrap();

        let agents: HashSet<AgentKind> = graph.tasks().iter().map(|t| t.agent).collect();
        assert!(graph.tasks().len() >= 6 && agents.len() >= 4);
        assert!(
            graph.tasks().iter().any(|t| t.depends_on.len() >= 2),
            "a join"
        );
        assert!(
            graph.ready(|_| crate::domain::TaskStatus::Pending).len() >= 2,
            "parallel roots"
        );
        assert_eq!(reply.product, "Recipe app for keto dieters");
        assert!(response.usage.input > 0 && response.usage.output > 0);
    }

    #[tokio::test]
    async fn the_offline_developer_writes_an_expo_app_labelled_offline() {
        let context = AgentTaskContext {
            agent: AgentKind::Developer,
            command: "Build a recipe app for keto dieters".into(),
            product: "Recipe app for keto dieters".into(),
            task_key: "app_skeleton".into(),
            title: "Build the Expo app skeleton".into(),
            description: String::new(),
            upstream: vec![("brand_sheet".into(), "colours".into())],
        };
        let response = OfflineLlm
            .complete(&agents::agent_request(OFFLINE_MODEL, &context))
            .await
            .unwrap();
        let output = agents::parse_output(&response).unwrap();

        let paths: Vec<&str> = output.files.iter().map(|f| f.path.as_str()).collect();
        assert!(
            paths.contains(&"package.json") && paths.contains(&"app/index.tsx"),
            "{paths:?}"
        );
        let package: serde_json::Value = serde_json::from_str(
            &output
                .files
                .iter()
                .find(|f| f.path == "package.json")
                .unwrap()
                .content,
        )
        .unwrap();
        assert!(package["dependencies"]["expo"].is_string());
        assert!(output.summary.starts_with("[offline]"));
    }
}
