//! An agent's turn: the request built from its task and what upstream tasks produced, and
//! the output it must return (a summary and files).

use super::OUTPUT_SCHEMA_TITLE;
use super::planner::strip_fences;
use crate::domain::AgentKind;
use crate::ports::llm::{LlmRequest, LlmResponse, Message};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Everything an agent is told about its task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTaskContext {
    pub agent: AgentKind,
    /// The user's command the plan came from.
    pub command: String,
    pub product: String,
    pub task_key: String,
    pub title: String,
    pub description: String,
    /// Summaries of the tasks this one depends on, by key.
    pub upstream: Vec<(String, String)>,
}

/// One file an agent produced; stored as an artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentFile {
    /// Relative path, e.g. `app/index.tsx`.
    pub path: String,
    pub content: String,
}

/// What an agent returns for a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentOutput {
    pub summary: String,
    pub files: Vec<AgentFile>,
}

/// Why an agent's answer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("the agent's answer is not valid JSON for the output schema: {0}")]
    Unreadable(#[source] serde_json::Error),
    #[error("file path {0:?} is not allowed: use a relative path without '..'")]
    BadPath(String),
}

fn system_prompt(agent: AgentKind) -> String {
    let role = match agent {
        AgentKind::Developer => "a senior mobile developer: you write working code and its README",
        AgentKind::Marketer => "a product marketer: you write research and copy that converts",
        AgentKind::Sales => {
            "a sales lead: you write outreach plans with named channels and scripts"
        }
        AgentKind::Designer => "a brand designer: you write brand sheets with colours and type",
        AgentKind::Ops => "an operations engineer: you write checklists and launch plans",
        AgentKind::Orchestrator => "the orchestrator",
    };
    format!(
        "You are {role}, part of a crew building a product. Do the task you are given, using \
         what upstream tasks produced. Answer with JSON only: a short summary and the files \
         you produced."
    )
}

/// The JSON Schema an agent's answer must match.
pub fn output_schema() -> serde_json::Value {
    json!({
        "title": OUTPUT_SCHEMA_TITLE,
        "type": "object",
        "required": ["summary", "files"],
        "properties": {
            "summary": {"type": "string"},
            "files": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["path", "content"],
                    "properties": {"path": {"type": "string"}, "content": {"type": "string"}}
                }
            }
        }
    })
}

/// The request for one agent's turn; the context travels as JSON in the user message.
pub fn agent_request(model: &str, context: &AgentTaskContext) -> LlmRequest {
    LlmRequest {
        model: model.to_owned(),
        system: system_prompt(context.agent),
        messages: vec![Message::user(json!(context).to_string())],
        tools: Vec::new(),
        max_tokens: 8192,
        temperature: Some(0.4),
        response_schema: Some(output_schema()),
    }
}

/// Reads an agent's answer; file paths must stay inside the task's folder.
pub fn parse_output(response: &LlmResponse) -> Result<AgentOutput, OutputError> {
    let output: AgentOutput =
        serde_json::from_str(strip_fences(&response.text())).map_err(OutputError::Unreadable)?;
    for file in &output.files {
        let bad = file.path.is_empty()
            || file.path.starts_with('/')
            || file
                .path
                .split('/')
                .any(|part| part == ".." || part.is_empty());
        if bad {
            return Err(OutputError::BadPath(file.path.clone()));
        }
    }
    Ok(output)
}

/// The content type to store a file under, from its extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "json" => "application/json",
        "md" => "text/markdown; charset=utf-8",
        "ts" | "tsx" | "js" | "jsx" => "text/javascript; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    }
}
