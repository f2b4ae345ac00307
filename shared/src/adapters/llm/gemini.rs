//! Google Gemini `generateContent`: contents and parts, function declarations, and
//! `usageMetadata`, built from the model's capabilities. Function declarations carry JSON
//! Schema in `parametersJsonSchema` (`parameters` takes Gemini's OpenAPI subset, which has
//! no `additionalProperties`); structured output goes through
//! `generationConfig.responseJsonSchema`; thinking through `thinkingConfig`. A part's
//! `thoughtSignature` comes back as opaque reasoning and goes back on the same part.

use super::Patience;
use super::http::{Call, retry_after};
use crate::config::Secret;
use crate::crew::strict::{schema_in_prompt, wire_schema};
use crate::domain::capabilities::{ReasoningSetting, SamplingParam, StructuredOutput};
use crate::domain::records::TokenUsage;
use crate::ports::llm::{
    Content, LlmClient, LlmError, LlmRequest, LlmResponse, Role, StopReason, TextSink,
};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

const PROVIDER: &str = "gemini";

/// The Gemini API at a base URL (`https://generativelanguage.googleapis.com` online).
#[derive(Clone)]
pub struct GeminiClient {
    http: reqwest::Client,
    patience: Patience,
    base_url: String,
    api_key: Secret<String>,
}

impl GeminiClient {
    pub fn new(
        base_url: &str,
        api_key: Secret<String>,
        patience: impl Into<Patience>,
    ) -> Result<Self, reqwest::Error> {
        let patience = patience.into();
        Ok(GeminiClient {
            http: patience.client()?,
            patience,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(default)]
    candidates: Vec<WireCandidate>,
    usage_metadata: Option<WireUsage>,
    #[serde(default)]
    model_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    content: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: u32,
    #[serde(default)]
    candidates_token_count: u32,
    #[serde(default)]
    cached_content_token_count: u32,
    /// Thinking tokens are billed as output.
    #[serde(default)]
    thoughts_token_count: u32,
}

/// The conversation as `contents`. A tool result names its function, which Gemini needs:
/// it is found from the call it answers. A thought signature goes back on the part it came
/// with (the one after it).
fn wire_request(request: &LlmRequest) -> Value {
    let caps = &request.capabilities;
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    let mut contents = Vec::new();
    for message in &request.messages {
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        let mut parts: Vec<Value> = Vec::new();
        let mut signature: Option<Value> = None;
        for block in &message.content {
            let mut part = match block {
                Content::Text { text } => json!({"text": text}),
                Content::ToolUse { id, name, input } => {
                    call_names.insert(id, name);
                    json!({"functionCall": {"name": name, "args": input}})
                }
                Content::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } => {
                    let name = call_names
                        .get(tool_use_id.as_str())
                        .copied()
                        .unwrap_or(tool_use_id.as_str());
                    let key = if *is_error { "error" } else { "result" };
                    json!({"functionResponse": {"name": name, "response": {key: content}}})
                }
                Content::Reasoning { provider, data } => {
                    if provider == PROVIDER {
                        signature = data.get("thoughtSignature").cloned();
                    }
                    continue;
                }
            };
            if let Some(signature) = signature.take() {
                part["thoughtSignature"] = signature;
            }
            parts.push(part);
        }
        contents.push(json!({"role": role, "parts": parts}));
    }
    let max_tokens = caps.output_tokens(request.max_tokens);
    let mut config = json!({"maxOutputTokens": max_tokens});
    if let Some(temperature) = request
        .temperature
        .filter(|_| caps.accepts(SamplingParam::Temperature))
    {
        config["temperature"] = json!(temperature);
    }
    let mut system = request.system.clone();
    if let Some(schema) = &request.response_schema {
        match caps.structured_output {
            StructuredOutput::None => {
                system = [system, schema_in_prompt(schema)]
                    .join("\n\n")
                    .trim()
                    .to_owned();
            }
            _ => {
                config["responseMimeType"] = json!("application/json");
                config["responseJsonSchema"] = wire_schema(schema, false);
            }
        }
    }
    match caps.reasoning_for(request.reasoning, !request.tools.is_empty(), max_tokens) {
        ReasoningSetting::Budget(tokens) => {
            config["thinkingConfig"] = json!({"thinkingBudget": tokens});
        }
        ReasoningSetting::Disabled => config["thinkingConfig"] = json!({"thinkingBudget": 0}),
        ReasoningSetting::Level(level) => {
            config["thinkingConfig"] = json!({"thinkingLevel": level});
        }
        ReasoningSetting::Effort(_) | ReasoningSetting::Default => {}
    }
    let mut body = json!({"contents": contents, "generationConfig": config});
    if !system.is_empty() {
        body["systemInstruction"] = json!({"parts": [{"text": system}]});
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({"name": t.name, "description": t.description,
                "parametersJsonSchema": wire_schema(&t.input_schema, false)})
            })
            .collect();
        body["tools"] = json!([{"functionDeclarations": declarations}]);
    }
    body
}

/// How long Google asks to wait: the `retry-after` header, else a `RetryInfo` detail
/// (`"retryDelay": "7s"`).
fn retry_delay(headers: &reqwest::header::HeaderMap, body: &Value) -> Option<u64> {
    retry_after(headers).or_else(|| {
        body["error"]["details"].as_array()?.iter().find_map(|d| {
            let delay = d["retryDelay"].as_str()?.trim_end_matches('s');
            delay.parse::<f64>().ok().map(|s| s.ceil() as u64)
        })
    })
}

fn error(
    call: &Call<'_>,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> LlmError {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    call.failure(status, retry_delay(headers, &parsed), body)
}

#[async_trait]
impl LlmClient for GeminiClient {
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
        let http = self.post(request, "generateContent");
        let (status, headers, body) = call.send(http).await?;
        if !(200..300).contains(&status) {
            return Err(error(&call, status, &headers, &body));
        }
        let wire = serde_json::from_str(&body).map_err(|e| call.malformed(Box::new(e)))?;
        read(&call, request, wire)
    }

    /// `streamGenerateContent` over SSE: each event is a partial response; their parts are
    /// joined (text pieces merged) and the last usage and finish reason kept, then read as
    /// one response.
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
        let mut gathered = json!({"candidates": [{"content": {"role": "model", "parts": []}}]});
        let http = self.post(request, "streamGenerateContent?alt=sse");
        let failed = call
            .send_events(http, |_, data| {
                let chunk: Value =
                    serde_json::from_str(data).map_err(|e| call.malformed(Box::new(e)))?;
                merge_chunk(&mut gathered, &chunk, on_text);
                Ok(false)
            })
            .await?;
        if let Some((status, headers, body)) = failed {
            return Err(error(&call, status, &headers, &body));
        }
        read(&call, request, gathered)
    }
}

/// Folds one streamed chunk into the response being gathered.
fn merge_chunk(gathered: &mut Value, chunk: &Value, on_text: &TextSink) {
    for key in ["usageMetadata", "modelVersion"] {
        if let Some(value) = chunk.get(key) {
            gathered[key] = value.clone();
        }
    }
    let Some(candidate) = chunk["candidates"].get(0) else {
        return;
    };
    if let Some(reason) = candidate.get("finishReason") {
        gathered["candidates"][0]["finishReason"] = reason.clone();
    }
    let parts = candidate["content"]["parts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(into) = gathered["candidates"][0]["content"]["parts"].as_array_mut() else {
        return;
    };
    for part in parts {
        if let Some(args) = part.get("functionCall") {
            on_text(&args.to_string());
        }
        let text = part["text"].as_str().map(str::to_owned);
        let thought = part["thought"].as_bool().unwrap_or(false);
        match (text, into.last_mut()) {
            (Some(text), Some(last))
                if last["text"].is_string()
                    && last["thought"].as_bool().unwrap_or(false) == thought =>
            {
                if !thought && !text.is_empty() {
                    on_text(&text);
                }
                let joined = format!("{}{text}", last["text"].as_str().unwrap_or(""));
                last["text"] = json!(joined);
            }
            (Some(text), _) => {
                if !thought && !text.is_empty() {
                    on_text(&text);
                }
                into.push(part);
            }
            (None, _) => into.push(part),
        }
    }
}

impl GeminiClient {
    fn post(&self, request: &LlmRequest, method: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!(
                "{}/v1beta/models/{}:{method}",
                self.base_url, request.model
            ))
            .header("x-goog-api-key", self.api_key.expose())
            .json(&wire_request(request))
    }
}

/// Reads a generateContent body (sent whole, or gathered from the stream).
fn read(call: &Call<'_>, request: &LlmRequest, wire: Value) -> Result<LlmResponse, LlmError> {
    let malformed = |source: Box<dyn std::error::Error + Send + Sync>| call.malformed(source);
    let wire: WireResponse = serde_json::from_value(wire).map_err(|e| malformed(Box::new(e)))?;
    let candidate = wire
        .candidates
        .into_iter()
        .next()
        .ok_or_else(|| malformed("the response has no candidates".into()))?;
    let mut content = Vec::new();
    for (i, part) in candidate
        .content
        .map(|c| c.parts)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        if let Some(signature) = part.get("thoughtSignature") {
            content.push(Content::Reasoning {
                provider: PROVIDER.into(),
                data: json!({"thoughtSignature": signature}),
            });
        }
        if part["thought"].as_bool().unwrap_or(false) {
            continue;
        }
        if let Some(text) = part["text"].as_str() {
            content.push(Content::Text {
                text: text.to_owned(),
            });
        } else if let Some(call) = part.get("functionCall") {
            let name = call["name"]
                .as_str()
                .ok_or_else(|| malformed("a functionCall has no name".into()))?
                .to_owned();
            let id = call["id"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{name}-{i}"));
            content.push(Content::ToolUse {
                id,
                name,
                input: call["args"].clone(),
            });
        }
    }
    let calls = content.iter().any(|c| matches!(c, Content::ToolUse { .. }));
    let stop_reason = match candidate.finish_reason.as_deref() {
        Some("STOP") if calls => StopReason::ToolUse,
        Some("STOP") => StopReason::EndTurn,
        Some("MAX_TOKENS") => StopReason::MaxTokens,
        _ => StopReason::Other,
    };
    let usage = wire
        .usage_metadata
        .ok_or_else(|| malformed("the response has no usageMetadata".into()))?;
    Ok(LlmResponse {
        provider: PROVIDER.into(),
        model: wire.model_version.unwrap_or_else(|| request.model.clone()),
        content,
        stop_reason,
        usage: TokenUsage {
            input: usage
                .prompt_token_count
                .saturating_sub(usage.cached_content_token_count),
            output: usage.candidates_token_count + usage.thoughts_token_count,
            cache_write: 0,
            cache_read: usage.cached_content_token_count,
        },
    })
}
