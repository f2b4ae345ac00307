//! Anthropic's Messages API, built from the model's capabilities. No sampling parameter is
//! ever sent: the current request types have neither `temperature` nor `top_p`. The stable
//! prefix (system prompt and tool definitions) carries `cache_control` so repeated calls
//! read it from the prompt cache. Structured output goes through `output_config.format`
//! with the strict shape of the schema (a forced tool only for models that need one: Claude
//! Sonnet 5.5 refuses a forced tool choice); tools are strict where the model allows.
//! Thinking blocks come back as opaque reasoning and are sent back unchanged, as a tool loop
//! with thinking requires.

use super::Patience;
use super::http::{Call, retry_after};
use crate::config::Secret;
use crate::crew::strict::{schema_in_prompt, wire_schema};
use crate::domain::capabilities::{ReasoningSetting, StructuredOutput};
use crate::domain::records::TokenUsage;
use crate::ports::llm::{
    Content, LlmClient, LlmError, LlmRequest, LlmResponse, Role, StopReason, TextSink,
};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

/// The API version this adapter speaks (the `anthropic-version` header).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The Messages API at a base URL (`https://api.anthropic.com` on the internet).
#[derive(Clone)]
pub struct AnthropicClient {
    http: reqwest::Client,
    patience: Patience,
    base_url: String,
    api_key: Secret<String>,
}

impl AnthropicClient {
    pub fn new(
        base_url: &str,
        api_key: Secret<String>,
        patience: impl Into<Patience>,
    ) -> Result<Self, reqwest::Error> {
        let patience = patience.into();
        Ok(AnthropicClient {
            http: patience.client()?,
            patience,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
        })
    }
}

const PROVIDER: &str = "anthropic";

#[derive(Deserialize)]
struct WireResponse {
    model: String,
    /// Blocks by `type`; thinking blocks are kept whole, as they must go back unchanged.
    content: Vec<Value>,
    stop_reason: Option<String>,
    usage: WireUsage,
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

/// A block to send; `None` for what this provider must not see.
fn block(content: &Content) -> Option<Value> {
    Some(match content {
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
        Content::Reasoning { provider, data } if provider == PROVIDER => data.clone(),
        Content::Reasoning { .. } => return None,
    })
}

/// The name of the forced tool that carries a structured answer.
fn answer_tool(schema: &Value) -> String {
    schema["title"].as_str().unwrap_or("answer").to_owned()
}

/// Whether the answer comes as a forced tool (models without `output_config.format`).
fn forced_answer(request: &LlmRequest) -> Option<String> {
    match (
        &request.response_schema,
        request.capabilities.structured_output,
    ) {
        (Some(schema), StructuredOutput::ForcedTool | StructuredOutput::JsonSchema) => {
            Some(answer_tool(schema))
        }
        _ => None,
    }
}

/// The request body, from the model's capabilities; see the module documentation.
fn wire_request(request: &LlmRequest) -> Value {
    let caps = &request.capabilities;
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": m.content.iter().filter_map(block).collect::<Vec<_>>()})
        })
        .collect();
    let mut tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| {
            let mut tool = json!({"name": t.name, "description": t.description,
                "input_schema": wire_schema(&t.input_schema, caps.strict_tools)});
            if caps.strict_tools {
                tool["strict"] = json!(true);
            }
            tool
        })
        .collect();
    let max_tokens = caps.output_tokens(request.max_tokens);
    let mut body = json!({"model": request.model, "max_tokens": max_tokens, "messages": messages});
    let mut system = request.system.clone();
    let forced = forced_answer(request);
    match (&request.response_schema, &forced) {
        (Some(schema), Some(name)) => {
            tools.push(json!({"name": name, "description": "Give the answer in this shape.", "input_schema": schema}));
            body["tool_choice"] = json!({"type": "tool", "name": name});
        }
        (Some(schema), None) if caps.structured_output == StructuredOutput::Strict => {
            body["output_config"] =
                json!({"format": {"type": "json_schema", "schema": wire_schema(schema, true)}});
        }
        (Some(schema), None) => {
            system = [system, schema_in_prompt(schema)]
                .join("\n\n")
                .trim()
                .to_owned();
        }
        (None, _) => {}
    }
    // A forced tool choice and thinking do not go together.
    if forced.is_none() {
        match caps.reasoning_for(request.reasoning, !request.tools.is_empty(), max_tokens) {
            ReasoningSetting::Effort(effort) => {
                body["output_config"]["effort"] = json!(effort);
                body["thinking"] = json!({"type": "adaptive"});
            }
            ReasoningSetting::Budget(tokens) => {
                body["thinking"] = json!({"type": "enabled", "budget_tokens": tokens});
            }
            ReasoningSetting::Disabled => body["thinking"] = json!({"type": "disabled"}),
            ReasoningSetting::Level(_) | ReasoningSetting::Default => {}
        }
    }
    if let (Some(last), true) = (tools.last_mut(), caps.prompt_caching) {
        last["cache_control"] = json!({"type": "ephemeral"});
    }
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    if !system.is_empty() {
        let mut text = json!({"type": "text", "text": system});
        if caps.prompt_caching {
            text["cache_control"] = json!({"type": "ephemeral"});
        }
        body["system"] = json!([text]);
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
            retry_after_secs: retry_after(headers),
        };
    }
    call.failure(status, retry_after(headers), body)
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
            patience: &self.patience,
            max_tokens: request.max_tokens,
        };
        let http = self.post(&wire_request(request));
        let (status, headers, body) = call.send(http).await?;
        if !(200..300).contains(&status) {
            return Err(error(&call, status, &headers, &body));
        }
        let wire = serde_json::from_str(&body).map_err(|e| call.malformed(Box::new(e)))?;
        read(&call, request, wire)
    }

    /// The same call with `"stream": true`: the events are gathered into the body the
    /// non-streaming API would have sent, then read the same way.
    async fn stream(
        &self,
        request: &LlmRequest,
        on_text: &TextSink,
    ) -> Result<LlmResponse, LlmError> {
        let call = Call {
            provider: PROVIDER,
            model: &request.model,
            patience: &self.patience,
            max_tokens: request.max_tokens,
        };
        let mut body = wire_request(request);
        body["stream"] = json!(true);
        let mut gathered = StreamedMessage::default();
        let failed = call
            .send_events(self.post(&body), |event, data| {
                gathered.apply(&call, event, data, on_text)
            })
            .await?;
        if let Some((status, headers, body)) = failed {
            return Err(error(&call, status, &headers, &body));
        }
        read(&call, request, gathered.finish(&call)?)
    }
}

impl AnthropicClient {
    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", self.api_key.expose())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(body)
    }
}

/// A streamed message being put together, event by event.
#[derive(Default)]
struct StreamedMessage {
    message: Value,
    /// Tool input JSON as it arrives, by content block index.
    partial: std::collections::BTreeMap<usize, String>,
}

impl StreamedMessage {
    /// Applies one event; `true` once the message is complete.
    fn apply(
        &mut self,
        call: &Call<'_>,
        event: &str,
        data: &str,
        on_text: &TextSink,
    ) -> Result<bool, LlmError> {
        let data: Value = serde_json::from_str(data).map_err(|e| call.malformed(Box::new(e)))?;
        let index = data["index"].as_u64().map(|i| i as usize);
        match event {
            "message_start" => self.message = data["message"].clone(),
            "content_block_start" => {
                let (Some(i), Some(blocks)) = (index, self.message["content"].as_array_mut())
                else {
                    return Err(call.malformed("content_block_start before message_start".into()));
                };
                blocks.resize(blocks.len().max(i + 1), Value::Null);
                blocks[i] = data["content_block"].clone();
            }
            "content_block_delta" => {
                let i = index.ok_or_else(|| call.malformed("a delta without an index".into()))?;
                let delta = &data["delta"];
                // Thinking and its signature are gathered, never streamed to the app.
                for key in ["thinking", "signature"] {
                    if let (Some(piece), Some(block)) =
                        (delta[key].as_str(), self.message["content"].get_mut(i))
                    {
                        let joined = format!("{}{piece}", block[key].as_str().unwrap_or(""));
                        block[key] = json!(joined);
                    }
                }
                if let Some(text) = delta["text"].as_str() {
                    on_text(text);
                    if let Some(block) = self.message["content"].get_mut(i) {
                        let joined = format!("{}{text}", block["text"].as_str().unwrap_or(""));
                        block["text"] = json!(joined);
                    }
                } else if let Some(json) = delta["partial_json"].as_str() {
                    on_text(json);
                    self.partial.entry(i).or_default().push_str(json);
                }
            }
            "content_block_stop" => {
                let i =
                    index.ok_or_else(|| call.malformed("a block stop without an index".into()))?;
                if let Some(json) = self.partial.remove(&i) {
                    let input: Value = match json.trim() {
                        "" => json!({}),
                        text => {
                            serde_json::from_str(text).map_err(|e| call.malformed(Box::new(e)))?
                        }
                    };
                    if let Some(block) = self.message["content"].get_mut(i) {
                        block["input"] = input;
                    }
                }
            }
            "message_delta" => {
                if let Some(reason) = data["delta"].get("stop_reason") {
                    self.message["stop_reason"] = reason.clone();
                }
                // Usage here is cumulative: each count replaces the one from message_start.
                if let Some(usage) = data["usage"].as_object() {
                    for (key, value) in usage {
                        if !value.is_null() {
                            self.message["usage"][key] = value.clone();
                        }
                    }
                }
            }
            "message_stop" => return Ok(true),
            "error" => {
                let message = data["error"]["message"]
                    .as_str()
                    .unwrap_or("stream error")
                    .to_owned();
                return Err(match data["error"]["type"].as_str() {
                    Some("overloaded_error") => LlmError::Unavailable {
                        provider: call.provider.to_owned(),
                        model: call.model.to_owned(),
                        status: 529,
                        retry_after_secs: None,
                    },
                    Some("rate_limit_error") => call.status_error(429, None, &message),
                    Some("api_error") => call.status_error(500, None, &message),
                    _ => call.status_error(400, None, &message),
                });
            }
            _ => {}
        }
        Ok(false)
    }

    fn finish(self, call: &Call<'_>) -> Result<Value, LlmError> {
        if self.message.is_null() {
            return Err(call.malformed("the stream ended before message_start".into()));
        }
        Ok(self.message)
    }
}

/// Reads a Messages API body (sent whole, or gathered from the stream).
fn read(call: &Call<'_>, request: &LlmRequest, wire: Value) -> Result<LlmResponse, LlmError> {
    let wire: WireResponse =
        serde_json::from_value(wire).map_err(|e| call.malformed(Box::new(e)))?;
    if wire.stop_reason.as_deref() == Some("refusal") {
        return Err(LlmError::Declined {
            provider: PROVIDER.into(),
            model: wire.model,
            message: "the model stopped with stop_reason refusal".into(),
        });
    }
    let answer = forced_answer(request);
    let mut content = Vec::new();
    for block in wire.content {
        match block["type"].as_str() {
            Some("text") => content.push(Content::Text {
                text: block["text"].as_str().unwrap_or_default().to_owned(),
            }),
            Some("tool_use") => {
                let (Some(id), Some(name)) = (block["id"].as_str(), block["name"].as_str()) else {
                    return Err(call.malformed("a tool_use block without its id or name".into()));
                };
                // The forced answer tool's input is the structured answer itself.
                if Some(name) == answer.as_deref() {
                    content.push(Content::Text {
                        text: block["input"].to_string(),
                    });
                } else {
                    content.push(Content::ToolUse {
                        id: id.to_owned(),
                        name: name.to_owned(),
                        input: block["input"].clone(),
                    });
                }
            }
            Some("thinking" | "redacted_thinking") => content.push(Content::Reasoning {
                provider: PROVIDER.into(),
                data: block,
            }),
            _ => {}
        }
    }
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
