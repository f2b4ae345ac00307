//! Anthropic's Messages API. The stable prefix (system prompt and tool definitions) carries
//! `cache_control` so repeated calls read it from the prompt cache. Structured output is a
//! forced tool whose input schema is the response schema; its input comes back as the
//! answer's text, so callers read JSON the same way from every provider.

use super::http::{Call, error_message, retry_after};
use crate::config::Secret;
use crate::domain::records::TokenUsage;
use crate::ports::llm::{Content, LlmClient, LlmError, LlmRequest, LlmResponse, Role, StopReason};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// The API version this adapter speaks (the `anthropic-version` header).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The Messages API at a base URL (`https://api.anthropic.com` on the internet).
#[derive(Clone)]
pub struct AnthropicClient {
    http: reqwest::Client,
    base_url: String,
    api_key: Secret<String>,
}

impl AnthropicClient {
    pub fn new(
        base_url: &str,
        api_key: Secret<String>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        Ok(AnthropicClient {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
        })
    }
}

const PROVIDER: &str = "anthropic";

#[derive(Deserialize)]
struct WireResponse {
    model: String,
    content: Vec<WireBlock>,
    stop_reason: Option<String>,
    usage: WireUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct WireUsage {
    input_tokens: u32,
    output_tokens: u32,
    #[serde(default)]
    cache_creation_input_tokens: Option<u32>,
    #[serde(default)]
    cache_read_input_tokens: Option<u32>,
}

fn block(content: &Content) -> Value {
    match content {
        Content::Text { text } => json!({"type": "text", "text": text}),
        Content::ToolUse { id, name, input } => {
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
        Content::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => {
            json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content, "is_error": is_error})
        }
    }
}

/// The name of the forced tool that carries a structured answer.
fn answer_tool(schema: &Value) -> String {
    schema["title"].as_str().unwrap_or("answer").to_owned()
}

/// The request body, with cache markers on the stable prefix.
fn wire_request(request: &LlmRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": m.content.iter().map(block).collect::<Vec<_>>()})
        })
        .collect();
    let mut tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
        .collect();
    let mut body =
        json!({"model": request.model, "max_tokens": request.max_tokens, "messages": messages});
    if let Some(schema) = &request.response_schema {
        let name = answer_tool(schema);
        tools.push(json!({"name": name, "description": "Give the answer in this shape.", "input_schema": schema}));
        body["tool_choice"] = json!({"type": "tool", "name": name});
    }
    if let Some(last) = tools.last_mut() {
        last["cache_control"] = json!({"type": "ephemeral"});
    }
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    if !request.system.is_empty() {
        body["system"] = json!([{"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}]);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    body
}

/// Anthropic's error for a failed status: `overloaded_error` (HTTP 529) is unavailability.
fn error(
    call: &Call<'_>,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> LlmError {
    let kind = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["type"].as_str().map(str::to_owned));
    if kind.as_deref() == Some("overloaded_error") {
        return LlmError::Unavailable {
            provider: call.provider.to_owned(),
            model: call.model.to_owned(),
            status,
        };
    }
    call.status_error(status, retry_after(headers), &error_message(body))
}

#[async_trait]
impl LlmClient for AnthropicClient {
    fn provider(&self) -> &str {
        PROVIDER
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let call = Call {
            provider: PROVIDER,
            model: &request.model,
        };
        let http = self
            .http
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", self.api_key.expose())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(&wire_request(request));
        let (status, headers, body) = call.send(http).await?;
        if !(200..300).contains(&status) {
            return Err(error(&call, status, &headers, &body));
        }
        let wire: WireResponse =
            serde_json::from_str(&body).map_err(|e| call.malformed(Box::new(e)))?;
        let answer = request.response_schema.as_ref().map(answer_tool);
        let content = wire
            .content
            .into_iter()
            .filter_map(|b| match b {
                // The forced answer tool's input is the structured answer itself.
                WireBlock::ToolUse { name, input, .. } if Some(&name) == answer.as_ref() => {
                    Some(Content::Text {
                        text: input.to_string(),
                    })
                }
                WireBlock::ToolUse { id, name, input } => {
                    Some(Content::ToolUse { id, name, input })
                }
                WireBlock::Text { text } => Some(Content::Text { text }),
                WireBlock::Other => None,
            })
            .collect();
        let stop_reason = match wire.stop_reason.as_deref() {
            Some("end_turn") | Some("stop_sequence") => StopReason::EndTurn,
            Some("tool_use") if answer.is_some() => StopReason::EndTurn,
            Some("tool_use") => StopReason::ToolUse,
            Some("max_tokens") => StopReason::MaxTokens,
            _ => StopReason::Other,
        };
        Ok(LlmResponse {
            provider: PROVIDER.into(),
            model: wire.model,
            content,
            stop_reason,
            usage: TokenUsage {
                input: wire.usage.input_tokens,
                output: wire.usage.output_tokens,
                cache_write: wire.usage.cache_creation_input_tokens.unwrap_or(0),
                cache_read: wire.usage.cache_read_input_tokens.unwrap_or(0),
            },
        })
    }
}
