//! OpenAI Chat Completions, and any OpenAI-compatible server (Ollama, vLLM, llama.cpp) by
//! base URL. The wire types stay in this module; the rest of the code sees the neutral
//! `LlmRequest` / `LlmResponse`.

use super::Patience;
use super::http::{Call, retry_after};
use crate::config::Secret;
use crate::crew::strict::{schema_in_prompt, wire_schema};
use crate::domain::Decimal;
use crate::domain::capabilities::{ReasoningSetting, SamplingParam, StructuredOutput};
use crate::domain::records::TokenUsage;
use crate::ports::llm::{
    Content, LlmClient, LlmError, LlmRequest, LlmResponse, Role, StopReason, TextSink,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A Chat Completions endpoint.
#[derive(Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    patience: Patience,
    /// Everything before `/chat/completions`, e.g. `https://api.openai.com/v1`.
    base_url: String,
    api_key: Option<Secret<String>>,
    /// The name written to the ledger: `openai`, or the compatible server's name.
    provider: String,
    /// OpenAI itself takes `max_completion_tokens`; compatible servers take `max_tokens`.
    official: bool,
}

impl OpenAiClient {
    /// OpenAI's own API.
    pub fn openai(
        base_url: &str,
        api_key: Secret<String>,
        patience: impl Into<Patience>,
    ) -> Result<Self, reqwest::Error> {
        Self::build("openai", base_url, Some(api_key), patience.into(), true)
    }

    /// An OpenAI-compatible server; many need no key.
    pub fn compatible(
        provider: &str,
        base_url: &str,
        api_key: Option<Secret<String>>,
        patience: impl Into<Patience>,
    ) -> Result<Self, reqwest::Error> {
        Self::build(provider, base_url, api_key, patience.into(), false)
    }

    fn build(
        provider: &str,
        base_url: &str,
        api_key: Option<Secret<String>>,
        patience: Patience,
        official: bool,
    ) -> Result<Self, reqwest::Error> {
        Ok(OpenAiClient {
            http: patience.client()?,
            patience,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            provider: provider.to_owned(),
            official,
        })
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
struct WireMessage {
    role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
    /// A safety refusal, in place of content.
    #[serde(default, skip_serializing)]
    refusal: Option<String>,
}

#[derive(Serialize, Deserialize, Debug)]
struct WireToolCall {
    id: String,
    #[serde(rename = "type", default = "function_type")]
    kind: String,
    function: WireFunction,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Serialize, Deserialize, Debug)]
struct WireFunction {
    name: String,
    /// A JSON document, as a string.
    arguments: String,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    #[serde(default)]
    prompt_tokens_details: Option<WirePromptDetails>,
}

#[derive(Deserialize)]
struct WirePromptDetails {
    #[serde(default)]
    cached_tokens: u32,
}

/// The neutral conversation as Chat Completions messages: the system prompt first, tool
/// results as `tool` messages, tool calls on the assistant message.
fn wire_messages(request: &LlmRequest) -> Vec<WireMessage> {
    let mut messages = Vec::new();
    let mut system = request.system.clone();
    if let (Some(schema), StructuredOutput::None) = (
        &request.response_schema,
        request.capabilities.structured_output,
    ) {
        system = [system, schema_in_prompt(schema)]
            .join("\n\n")
            .trim()
            .to_owned();
    }
    if !system.is_empty() {
        messages.push(WireMessage {
            role: "system".into(),
            content: Some(system),
            ..Default::default()
        });
    }
    for message in &request.messages {
        let mut text = Vec::new();
        let mut calls = Vec::new();
        for block in &message.content {
            match block {
                Content::Text { text: t } => text.push(t.clone()),
                Content::ToolUse { id, name, input } => calls.push(WireToolCall {
                    id: id.clone(),
                    kind: function_type(),
                    function: WireFunction {
                        name: name.clone(),
                        arguments: input.to_string(),
                    },
                }),
                Content::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } => messages.push(WireMessage {
                    role: "tool".into(),
                    content: Some(if *is_error {
                        format!("error: {content}")
                    } else {
                        content.clone()
                    }),
                    tool_call_id: Some(tool_use_id.clone()),
                    ..Default::default()
                }),
                // Chat Completions keeps no reasoning between turns.
                Content::Reasoning { .. } => {}
            }
        }
        if text.is_empty() && calls.is_empty() {
            continue;
        }
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        messages.push(WireMessage {
            role: role.into(),
            content: (!text.is_empty()).then(|| text.join("\n")),
            tool_calls: calls,
            ..Default::default()
        });
    }
    messages
}

impl OpenAiClient {
    /// The body, from the model's capabilities: strict schemas where it enforces them, no
    /// sampling parameter it refuses, its own reasoning setting.
    fn wire_request<'a>(&self, request: &'a LlmRequest) -> WireRequest<'a> {
        let caps = &request.capabilities;
        let tools = request
            .tools
            .iter()
            .map(|t| {
                let mut function = json!({"name": t.name, "description": t.description,
                    "parameters": wire_schema(&t.input_schema, caps.strict_tools)});
                if caps.strict_tools {
                    function["strict"] = json!(true);
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        let response_format = request.response_schema.as_ref().and_then(|schema| {
            let name = schema["title"].as_str().unwrap_or("response").to_owned();
            match caps.structured_output {
                StructuredOutput::Strict => Some(json!({"type": "json_schema", "json_schema":
                    {"name": name, "schema": wire_schema(schema, true), "strict": true}})),
                StructuredOutput::JsonSchema | StructuredOutput::ForcedTool => Some(
                    json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema}}),
                ),
                StructuredOutput::None => None,
            }
        });
        let max_tokens = caps.output_tokens(request.max_tokens);
        let reasoning_effort =
            match caps.reasoning_for(request.reasoning, !request.tools.is_empty(), max_tokens) {
                ReasoningSetting::Effort(effort) => Some(effort),
                _ => None,
            };
        WireRequest {
            model: &request.model,
            messages: wire_messages(request),
            tools,
            max_tokens: (!self.official).then_some(max_tokens),
            max_completion_tokens: self.official.then_some(max_tokens),
            temperature: request
                .temperature
                .filter(|_| caps.accepts(SamplingParam::Temperature)),
            reasoning_effort,
            response_format,
        }
    }
}

fn stop_reason(finish: Option<&str>) -> StopReason {
    match finish {
        Some("stop") => StopReason::EndTurn,
        Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        _ => StopReason::Other,
    }
}

#[async_trait]
impl LlmClient for OpenAiClient {
    fn provider(&self) -> &str {
        &self.provider
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let call = Call {
            provider: &self.provider,
            model: &request.model,
            patience: &self.patience,
            max_tokens: request.max_tokens,
        };
        let body = serde_json::to_value(self.wire_request(request))
            .map_err(|e| call.malformed(Box::new(e)))?;
        let (status, headers, body) = call.send(self.post(&body)).await?;
        if !(200..300).contains(&status) {
            return Err(call.failure(status, retry_after(&headers), &body));
        }
        let wire = serde_json::from_str(&body).map_err(|e| call.malformed(Box::new(e)))?;
        self.read(&call, request, wire)
    }

    /// The same call with `"stream": true` (and usage in the last chunk): the chunks are
    /// gathered into the body the non-streaming API would have sent, then read the same way.
    async fn stream(
        &self,
        request: &LlmRequest,
        on_text: &TextSink,
    ) -> Result<LlmResponse, LlmError> {
        let call = Call {
            provider: &self.provider,
            model: &request.model,
            patience: &self.patience,
            max_tokens: request.max_tokens,
        };
        let mut body = serde_json::to_value(self.wire_request(request))
            .map_err(|e| call.malformed(Box::new(e)))?;
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let mut gathered = StreamedCompletion::default();
        let failed = call
            .send_events(self.post(&body), |_, data| {
                gathered.apply(&call, data, on_text)
            })
            .await?;
        if let Some((status, headers, body)) = failed {
            return Err(call.failure(status, retry_after(&headers), &body));
        }
        self.read(&call, request, gathered.finish())
    }
}

/// A streamed completion being put together, chunk by chunk.
#[derive(Default)]
struct StreamedCompletion {
    model: Option<String>,
    text: String,
    /// (id, name, arguments) by tool call index.
    calls: std::collections::BTreeMap<u64, (String, String, String)>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    refusal: String,
}

impl StreamedCompletion {
    /// Applies one chunk; `true` at `[DONE]`.
    fn apply(&mut self, call: &Call<'_>, data: &str, on_text: &TextSink) -> Result<bool, LlmError> {
        if data.trim() == "[DONE]" {
            return Ok(true);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| call.malformed(Box::new(e)))?;
        if let Some(error) = chunk.get("error") {
            let message = error["message"].as_str().unwrap_or("stream error");
            let status = match error["type"].as_str().or(error["code"].as_str()) {
                Some("rate_limit_exceeded" | "rate_limit_error") => 429,
                Some("server_error" | "overloaded_error") => 500,
                _ => 400,
            };
            return Err(call.status_error(status, None, message));
        }
        if let Some(model) = chunk["model"].as_str() {
            self.model = Some(model.to_owned());
        }
        if chunk["usage"].is_object() {
            self.usage = Some(chunk["usage"].clone());
        }
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str() {
                on_text(text);
                self.text.push_str(text);
            }
            if let Some(refusal) = delta["refusal"].as_str() {
                self.refusal.push_str(refusal);
            }
            for tool_call in delta["tool_calls"].as_array().into_iter().flatten() {
                let entry = self
                    .calls
                    .entry(tool_call["index"].as_u64().unwrap_or(0))
                    .or_default();
                if let Some(id) = tool_call["id"].as_str() {
                    entry.0 = id.to_owned();
                }
                if let Some(name) = tool_call["function"]["name"].as_str() {
                    entry.1.push_str(name);
                }
                if let Some(arguments) = tool_call["function"]["arguments"].as_str() {
                    on_text(arguments);
                    entry.2.push_str(arguments);
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish_reason = Some(reason.to_owned());
            }
        }
        Ok(false)
    }

    fn finish(self) -> Value {
        let tool_calls: Vec<Value> = self
            .calls
            .into_values()
            .map(|(id, name, arguments)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
            .collect();
        let mut message = json!({"role": "assistant", "content": self.text});
        if !self.refusal.is_empty() {
            message["refusal"] = json!(self.refusal);
        }
        if !tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(tool_calls);
        }
        json!({
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": self.usage
        })
    }
}

impl OpenAiClient {
    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let http = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .json(body);
        match &self.api_key {
            Some(key) => http.bearer_auth(key.expose()),
            None => http,
        }
    }

    /// Reads a Chat Completions body (sent whole, or gathered from the stream).
    fn read(
        &self,
        call: &Call<'_>,
        request: &LlmRequest,
        wire: Value,
    ) -> Result<LlmResponse, LlmError> {
        let wire: WireResponse =
            serde_json::from_value(wire).map_err(|e| call.malformed(Box::new(e)))?;
        let choice = wire
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| call.malformed("the response has no choices".into()))?;
        if let Some(message) = choice.message.refusal.filter(|r| !r.is_empty()) {
            return Err(LlmError::Declined {
                provider: self.provider.clone(),
                model: request.model.clone(),
                message,
            });
        }
        let mut content = Vec::new();
        if let Some(text) = choice.message.content.filter(|t| !t.is_empty()) {
            content.push(Content::Text { text });
        }
        for tool_call in choice.message.tool_calls {
            let input = serde_json::from_str(&tool_call.function.arguments)
                .map_err(|e| call.malformed(Box::new(e)))?;
            content.push(Content::ToolUse {
                id: tool_call.id,
                name: tool_call.function.name,
                input,
            });
        }
        let usage = wire
            .usage
            .ok_or_else(|| call.malformed("the response has no usage".into()))?;
        let cached = usage
            .prompt_tokens_details
            .map(|d| d.cached_tokens)
            .unwrap_or(0);
        Ok(LlmResponse {
            provider: self.provider.clone(),
            model: wire.model.unwrap_or_else(|| request.model.clone()),
            content,
            stop_reason: stop_reason(choice.finish_reason.as_deref()),
            usage: TokenUsage {
                // Prompt tokens include the cached ones; they are billed at the cache rate.
                input: usage.prompt_tokens.saturating_sub(cached),
                output: usage.completion_tokens,
                cache_write: 0,
                cache_read: cached,
            },
        })
    }
}
