//! The offline provider: deterministic answers from templates, for running the whole
//! pipeline with no API key. Everything it writes says it is offline output. Token counts
//! are estimated (4 characters a token) so the ledger and the events have real numbers to
//! carry; the cost is zero because nothing was bought.

use super::offline_files;
use crate::crew::{AgentTaskContext, tools};
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

/// The command a planning request's text carries, before any recalled material.
fn command_of(text: &str) -> &str {
    text.split(crate::crew::planner::RECALLED_PREAMBLE)
        .next()
        .unwrap_or(text)
        .trim()
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

/// The run a revision request describes, if the request is one.
fn revision_of(request: &LlmRequest) -> Option<crate::crew::planner::RevisionContext> {
    use crate::crew::planner::REVISION_PREAMBLE;
    let texts = request
        .messages
        .iter()
        .flat_map(|m| m.content.iter())
        .filter_map(|c| match c {
            Content::Text { text } => Some(text.as_str()),
            _ => None,
        });
    let mut asked = false;
    for text in texts {
        let rest = match text.split_once(REVISION_PREAMBLE) {
            Some((_, rest)) => {
                asked = true;
                rest
            }
            None => text,
        };
        if asked && let Ok(context) = serde_json::from_str(rest.trim()) {
            return Some(context);
        }
    }
    None
}

/// The next key for a failed task's redo: `checklist` → `checklist_v2` → `checklist_v3`.
fn redo_key(key: &str, taken: &std::collections::HashSet<String>) -> String {
    let (stem, n) = match key.rsplit_once("_v") {
        Some((stem, n)) if n.parse::<u32>().is_ok() => (stem, n.parse::<u32>().unwrap_or(1)),
        _ => (key, 1),
    };
    (n + 1..)
        .map(|n| format!("{stem}_v{n}"))
        .find(|k| !taken.contains(k))
        .unwrap_or_else(|| format!("{key}_again"))
}

/// The offline revision: each failed task is done again under a new key, and the tasks
/// not started keep their place, waiting on the redo instead of the failed task.
fn revision(context: &crate::crew::planner::RevisionContext) -> serde_json::Value {
    let taken: std::collections::HashSet<String> =
        context.tasks.iter().map(|t| t.key.clone()).collect();
    let redo: std::collections::HashMap<&str, String> = context
        .tasks
        .iter()
        .filter(|t| t.status == "failed")
        .map(|t| (t.key.as_str(), redo_key(&t.key, &taken)))
        .collect();
    let deps = |deps: &[String]| -> Vec<String> {
        deps.iter()
            .map(|d| redo.get(d.as_str()).cloned().unwrap_or_else(|| d.clone()))
            .collect()
    };
    let mut tasks = Vec::new();
    for t in &context.tasks {
        let (key, title, description) = match (t.status.as_str(), redo.get(t.key.as_str())) {
            ("failed", Some(key)) => (
                key.clone(),
                t.title.clone(),
                format!(
                    "[offline] Again, after it failed ({}): {}",
                    t.outcome.as_deref().unwrap_or("failed"),
                    t.description
                ),
            ),
            ("pending" | "ready", _) => (t.key.clone(), t.title.clone(), t.description.clone()),
            _ => continue,
        };
        tasks.push(json!({
            "key": key, "agent": t.agent, "title": title, "description": description,
            "depends_on": deps(&t.depends_on), "priority": t.priority, "complexity": t.complexity
        }));
    }
    json!({"product": context.product, "tasks": tasks})
}

/// An agent's turn in tool mode: first a `write_file` call per file; once their results
/// are back, each call that acts in the world the task makes (`offline_files::effects`,
/// among the tools it was offered), one a turn; then `finish` with a summary that reports
/// what each of them answered.
fn agent_turn(request: &LlmRequest, context: &AgentTaskContext) -> (Vec<Content>, StopReason) {
    let contents = || request.messages.iter().flat_map(|m| m.content.iter());
    let answered = contents()
        .filter(|c| matches!(c, Content::ToolResult { .. }))
        .count();
    // A call is known by its tool and arguments: a task may call one tool twice.
    let called = |tool: &str, arguments: &serde_json::Value| {
        contents().find_map(|c| match c {
            Content::ToolUse { id, name, input } if name == tool && input == arguments => {
                Some(id.clone())
            }
            _ => None,
        })
    };
    let files = offline_files::for_task(context);
    let call = |n: usize, name: &str, input: serde_json::Value| Content::ToolUse {
        id: format!("offline_call_{n}"),
        name: name.to_owned(),
        input,
    };
    let offered = |tool: &str| request.tools.iter().any(|t| t.name == tool);
    let effects = offline_files::effects(context, &offered);
    let next = effects
        .iter()
        .find(|(tool, input)| called(tool, input).is_none());
    let content = if answered == 0 {
        files
            .iter()
            .enumerate()
            .map(|(n, (path, content))| {
                call(
                    n,
                    tools::WRITE_FILE,
                    json!({"path": path, "content": content}),
                )
            })
            .collect()
    } else if let Some((tool, input)) = next {
        vec![call(answered, tool, input.clone())]
    } else {
        let outcome: String = effects
            .iter()
            .filter_map(|(tool, input)| {
                let id = called(tool, input)?;
                contents().find_map(|c| match c {
                    Content::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } if *tool_use_id == id => Some(if *is_error {
                        format!("; {tool} not done: {content}")
                    } else {
                        format!("; {content}")
                    }),
                    _ => None,
                })
            })
            .collect();
        let recalled = match context.recalled.len() {
            0 => String::new(),
            n => format!("; recalled {n} memories of earlier work"),
        };
        let summary = format!(
            "[offline] {} ({}) produced {} file(s) for {}{outcome}{recalled}",
            context.title,
            context.agent,
            files.len(),
            context.product
        );
        let memories = [memory_of(context, &files)];
        vec![call(
            answered,
            tools::FINISH,
            json!({ "summary": summary, "memories": memories }),
        )]
    };
    (content, StopReason::ToolUse)
}

/// What an offline task remembers: that it was done, and which files hold it; the daily
/// loop's review remembers which earlier post did best, with its numbers.
fn memory_of(context: &AgentTaskContext, files: &[(String, String)]) -> serde_json::Value {
    if context.task_key == crate::domain::marketing::REVIEW_TASK
        && let Some(best) = best_in_briefing(&context.description)
    {
        return json!({"kind": "fact", "content": best});
    }
    let paths: Vec<&str> = files
        .iter()
        .take(3)
        .map(|(path, _)| path.as_str())
        .collect();
    let content = format!(
        "[offline] {}: {} was done by the {}, in {}",
        context.product,
        context.title,
        context.agent,
        paths.join(", ")
    );
    let content: String = content
        .chars()
        .take(crate::domain::memory::CONTENT_MAX)
        .collect();
    json!({"kind": "decision", "content": content})
}

/// "On x, \"...\" drew 12 likes and 2 replies": the best-engaged post of a review task's
/// briefing (the JSON after "Briefing: ").
fn best_in_briefing(description: &str) -> Option<String> {
    let data = description.split("Briefing: ").nth(1)?;
    let briefing: crate::domain::marketing::Briefing = serde_json::from_str(data).ok()?;
    let best = crate::domain::marketing::best_post(&briefing.posts)?;
    let metrics = best.metrics?;
    let text: String = best.text.chars().take(120).collect();
    let content = format!(
        "[offline] On {}, \"{text}\" drew {} likes and {} replies: the best of the last {} posts",
        best.service,
        metrics.likes.unwrap_or(0),
        metrics.replies.unwrap_or(0),
        briefing.posts.len()
    );
    Some(
        content
            .chars()
            .take(crate::domain::memory::CONTENT_MAX)
            .collect(),
    )
}

/// The task context an agent's first message carries.
fn agent_context(request: &LlmRequest) -> Option<AgentTaskContext> {
    request
        .messages
        .first()?
        .content
        .iter()
        .find_map(|c| match c {
            Content::Text { text } => serde_json::from_str(text).ok(),
            _ => None,
        })
}

#[async_trait]
impl LlmClient for OfflineLlm {
    fn provider(&self) -> &str {
        OFFLINE_PROVIDER
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        // The plan is the one answer asked for with a schema. A provider's wire may drop the
        // schema's title (strict schemas do), so a schema alone marks a planning request.
        let planning = request.response_schema.is_some();
        let user = last_user_text(request);
        let rejected = |message: String| LlmError::Rejected {
            provider: OFFLINE_PROVIDER.into(),
            model: request.model.clone(),
            message,
        };
        let tool_mode = request.tools.iter().any(|t| t.name == tools::WRITE_FILE);
        let revising = revision_of(request).filter(|_| planning);
        let (content, stop_reason) = match (planning, tool_mode) {
            (true, _) if revising.is_some() => (
                vec![Content::Text {
                    text: revising
                        .as_ref()
                        .map(revision)
                        .unwrap_or_default()
                        .to_string(),
                }],
                StopReason::EndTurn,
            ),
            // The command, without what was recalled after it: a wire format that joins a
            // message's texts (Chat Completions) puts both in one.
            (true, _) => (
                vec![Content::Text {
                    text: plan(command_of(&user)).to_string(),
                }],
                StopReason::EndTurn,
            ),
            (_, true) => {
                let context = agent_context(request).ok_or_else(|| {
                    rejected("the first message is not an agent task context".into())
                })?;
                agent_turn(request, &context)
            }
            _ => match crate::crew::chat::brief_of(request) {
                Some(brief) => (
                    vec![Content::Text {
                        text: crate::crew::chat::offline_reply(&brief, &user),
                    }],
                    StopReason::EndTurn,
                ),
                None => {
                    return Err(rejected(
                        "the offline provider only answers plans, agent turns with tools and conversation replies".into(),
                    ));
                }
            },
        };
        let written = serde_json::to_string(&content).unwrap_or_default();
        let prompt = serde_json::to_string(&request.messages).unwrap_or_default();
        Ok(LlmResponse {
            provider: OFFLINE_PROVIDER.into(),
            model: OFFLINE_MODEL.into(),
            usage: TokenUsage {
                input: estimate_tokens(&request.system) + estimate_tokens(&prompt),
                output: estimate_tokens(&written),
                cache_write: 0,
                cache_read: 0,
            },
            content,
            stop_reason,
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

    fn profiles() -> crate::crew::AgentProfiles {
        crate::crew::AgentProfiles::builtin(
            &crate::domain::routing::RoutingPolicy::builtin().unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_strict_plan_schema_accepts_every_plan_the_offline_provider_writes() {
        let strict = crate::crew::strict::wire_schema(&planner::plan_schema(), true);
        let checker = crate::crew::schema::Checker::new(&strict).unwrap();
        for command in [
            "Build a recipe app for keto dieters",
            "make CRM for dentists.",
            "Launch the daily marketing loop",
            "",
        ] {
            let request = planner::plan_request(
                profiles().get(AgentKind::Orchestrator),
                command,
                &Default::default(),
            );
            let response = OfflineLlm.complete(&request).await.unwrap();
            let plan: serde_json::Value = serde_json::from_str(&response.text()).unwrap();
            assert!(
                checker.check(&plan).is_ok(),
                "{command:?}: {:?}",
                checker.check(&plan)
            );
        }
    }

    #[tokio::test]
    async fn the_offline_revision_redoes_a_failed_task_under_a_new_key_and_rewires_its_dependants()
    {
        use crate::crew::planner::{RevisionContext, TaskState, revision_request};
        let state = |key: &str, status: &str, deps: &[&str]| TaskState {
            key: key.into(),
            agent: "ops".into(),
            title: key.into(),
            description: String::new(),
            status: status.into(),
            priority: "normal".into(),
            complexity: "simple".into(),
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
            outcome: None,
        };
        let context = RevisionContext {
            command: "Build a recipe app".into(),
            product: "Recipe app".into(),
            reason: "task checklist failed".into(),
            tasks: vec![
                state("research", "completed", &[]),
                state("checklist", "failed", &["research"]),
                state("checklist_v2", "replaced", &[]),
                state("launch", "pending", &["checklist"]),
            ],
        };
        let request = revision_request(
            &profiles()
                .get(crate::domain::AgentKind::Orchestrator)
                .clone(),
            &context,
        );
        let answer = OfflineLlm.complete(&request).await.expect("an answer");
        let plan: serde_json::Value = serde_json::from_str(&answer.text()).expect("JSON");
        let tasks: Vec<(String, serde_json::Value)> = plan["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["key"].as_str().unwrap_or_default().to_owned(),
                    t["depends_on"].clone(),
                )
            })
            .collect();
        assert_eq!(
            tasks,
            [
                ("checklist_v3".to_owned(), json!(["research"])),
                ("launch".to_owned(), json!(["checklist_v3"]))
            ]
        );
    }

    #[test]
    fn the_command_is_read_without_what_was_recalled_after_it() {
        let joined = format!(
            "Build a recipe app for keto athletes\n\n{} {{\"memories\": []}}",
            planner::RECALLED_PREAMBLE
        );
        assert_eq!(command_of(&joined), "Build a recipe app for keto athletes");
        assert_eq!(command_of(" Build a CRM "), "Build a CRM");
    }

    #[tokio::test]
    async fn the_offline_plan_has_parallel_tasks_a_join_and_four_agents() {
        let profiles = profiles();
        let response = OfflineLlm
            .complete(&planner::plan_request(
                profiles.get(AgentKind::Orchestrator),
                "Build a recipe app for keto dieters",
                &Default::default(),
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
        assert!(graph.ready_at_start().len() >= 2, "parallel roots");
        assert_eq!(reply.product, "Recipe app for keto dieters");
        assert!(response.usage.input > 0 && response.usage.output > 0);
    }

    #[tokio::test]
    async fn the_offline_developer_writes_an_expo_app_with_tools_then_finishes() {
        let context = AgentTaskContext {
            agent: AgentKind::Developer,
            command: "Build a recipe app for keto dieters".into(),
            product: "Recipe app for keto dieters".into(),
            task_key: "app_skeleton".into(),
            title: "Build the Expo app skeleton".into(),
            description: String::new(),
            upstream: vec![("brand_sheet".into(), "colours".into())],
            recalled: Vec::new(),
        };
        let profiles = profiles();
        let profile = profiles.get(AgentKind::Developer);
        let mut messages = vec![agents::first_message(&context)];
        let first = OfflineLlm
            .complete(&agents::turn_request(profile, messages.clone()))
            .await
            .unwrap();
        let writes: Vec<&serde_json::Value> = first
            .content
            .iter()
            .filter_map(|c| match c {
                Content::ToolUse { name, input, .. } if name == tools::WRITE_FILE => Some(input),
                _ => None,
            })
            .collect();
        let paths: Vec<&str> = writes.iter().filter_map(|w| w["path"].as_str()).collect();
        assert!(
            paths.contains(&"package.json") && paths.contains(&"app/index.tsx"),
            "{paths:?}"
        );
        let package = writes.iter().find(|w| w["path"] == "package.json").unwrap();
        let package: serde_json::Value =
            serde_json::from_str(package["content"].as_str().unwrap()).unwrap();
        assert!(package["dependencies"]["expo"].is_string());
        // Every call matches its tool's schema.
        for c in &first.content {
            if let Content::ToolUse { name, input, .. } = c {
                crate::crew::schema::validate(&tools::spec(name).unwrap().input_schema, input)
                    .unwrap();
            }
        }

        messages.push(crate::ports::llm::Message {
            role: crate::ports::llm::Role::Assistant,
            content: first.content.clone(),
        });
        messages.push(crate::ports::llm::Message {
            role: crate::ports::llm::Role::User,
            content: vec![Content::ToolResult {
                tool_use_id: "offline_call_0".into(),
                content: "stored".into(),
                is_error: false,
            }],
        });
        // With GitHub connected (push_code offered), the files are pushed first.
        let offered = agents::turn_request(profile, messages.clone());
        let pushing = OfflineLlm.complete(&offered).await.unwrap();
        match &pushing.content[..] {
            [Content::ToolUse { name, input, .. }] if name == tools::PUSH_CODE => {
                assert_eq!(input["repository"], "recipe-app-for-keto-dieters");
                crate::crew::schema::validate(&tools::spec(name).unwrap().input_schema, input)
                    .unwrap();
            }
            other => panic!("expected push_code, got {other:?}"),
        }
        // Without it, the task finishes.
        let mut request = agents::turn_request(profile, messages);
        request.tools.retain(|t| t.name != tools::PUSH_CODE);
        let second = OfflineLlm.complete(&request).await.unwrap();
        match &second.content[..] {
            [Content::ToolUse { name, input, .. }] if name == tools::FINISH => {
                assert!(input["summary"].as_str().unwrap().starts_with("[offline]"))
            }
            other => panic!("expected finish, got {other:?}"),
        }
    }
}
