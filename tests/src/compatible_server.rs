//! A server whose model is the offline provider, behind each provider's wire format: OpenAI
//! Chat Completions (`/v1/chat/completions`, as Ollama or vLLM serve it too), Anthropic
//! Messages (`/v1/messages`) and Gemini (`/v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`). It reads what a client sends (messages, tool calls and
//! results, tools, the response schema), answers from the offline templates, and writes the
//! wire format back, whole or streamed. So a whole run can go over each adapter's real HTTP
//! path with no model weights on the machine. Every answer's token counts are kept, so a
//! test can check the ledger against what the server reported. It checks nothing: that is
//! the provider-check server's job, in front of it.

use crate::pace::{Pace, Streams, endless, stream};
use crate::{wire_anthropic, wire_gemini};
use autocrew_shared::adapters::llm::{OFFLINE_PROVIDER, OfflineLlm};
use autocrew_shared::domain::records::TokenUsage;
use autocrew_shared::ports::llm::{
    Content, LlmClient, LlmError, LlmRequest, LlmResponse, Message, Role, ToolSpec,
};
use axum::Json;
use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The running server.
pub struct CompatibleServer {
    /// `http://127.0.0.1:<port>/v1`: what `OPENAI_BASE_URL` takes.
    pub base_url: String,
    shared: Arc<Shared>,
}

/// What every handler shares: the usage of each answer, and the pace (which a test may
/// change while the server runs).
struct Shared {
    usage: Mutex<Vec<TokenUsage>>,
    /// Every Chat Completions request body, in order.
    requests: Mutex<Vec<Value>>,
    pace: std::sync::RwLock<Pace>,
    streams: Arc<Streams>,
}

impl Shared {
    fn pace(&self) -> Pace {
        self.pace.read().map(|p| p.clone()).unwrap_or_default()
    }
}

impl std::fmt::Debug for CompatibleServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CompatibleServer({}, {:?})",
            self.base_url,
            self.shared.pace()
        )
    }
}

impl CompatibleServer {
    /// A server that answers at once.
    pub async fn start(port: u16) -> anyhow::Result<CompatibleServer> {
        Self::start_paced(port, Pace::default()).await
    }

    /// A server that answers at `pace` (see `pace::Pace`).
    pub async fn start_paced(port: u16, pace: Pace) -> anyhow::Result<CompatibleServer> {
        let shared = Arc::new(Shared {
            usage: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            pace: std::sync::RwLock::new(pace),
            streams: Arc::new(Streams::default()),
        });
        let (openai, anthropic, gemini) = (shared.clone(), shared.clone(), shared.clone());
        let app = axum::Router::new()
            .route(
                "/v1/chat/completions",
                axum::routing::post(move |Json(body): Json<Value>| {
                    let shared = openai.clone();
                    async move { answer(body, &shared).await }
                }),
            )
            .route(
                "/v1/messages",
                axum::routing::post(move |Json(body): Json<Value>| {
                    let shared = anthropic.clone();
                    async move { answer_anthropic(body, &shared).await }
                }),
            )
            .route(
                "/v1beta/models/{call}",
                axum::routing::post(
                    move |Path(call): Path<String>,
                          RawQuery(query): RawQuery,
                          Json(body): Json<Value>| {
                        let shared = gemini.clone();
                        async move { answer_gemini(&call, query, body, &shared).await }
                    },
                ),
            );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CompatibleServer { base_url, shared })
    }

    /// Answers at `pace` from now on (a chaos round slows the model down for its kill).
    pub fn set_pace(&self, pace: Pace) {
        if let Ok(mut current) = self.shared.pace.write() {
            *current = pace;
        }
    }

    /// Every Chat Completions request received, in order (what `make economics` tokenizes).
    pub fn requests(&self) -> Vec<Value> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The usage of every answer given, in order.
    pub fn usage(&self) -> Vec<TokenUsage> {
        self.shared
            .usage
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default()
    }
}

fn bad(message: String) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error"}});
    (axum::http::StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// Chat Completions messages back into the neutral conversation.
fn neutral(body: &Value) -> Result<LlmRequest, String> {
    let mut system = String::new();
    let mut messages: Vec<Message> = Vec::new();
    for m in body["messages"]
        .as_array()
        .ok_or("messages must be an array")?
    {
        let text = m["content"].as_str().unwrap_or_default().to_owned();
        match m["role"].as_str() {
            Some("system") => system = text,
            Some("user") => messages.push(Message::user(text)),
            Some("assistant") => {
                let mut content = Vec::new();
                if !text.is_empty() {
                    content.push(Content::Text { text });
                }
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    content.push(Content::ToolUse {
                        id: call["id"].as_str().unwrap_or_default().to_owned(),
                        name: call["function"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        input: serde_json::from_str(
                            call["function"]["arguments"].as_str().unwrap_or("{}"),
                        )
                        .map_err(|e| format!("tool call arguments: {e}"))?,
                    });
                }
                messages.push(Message {
                    role: Role::Assistant,
                    content,
                });
            }
            Some("tool") => {
                let result = Content::ToolResult {
                    tool_use_id: m["tool_call_id"].as_str().unwrap_or_default().to_owned(),
                    content: text,
                    is_error: false,
                };
                // Consecutive tool results answer one assistant turn: one user message.
                match messages.last_mut() {
                    Some(last)
                        if last.role == Role::User
                            && matches!(last.content.first(), Some(Content::ToolResult { .. })) =>
                    {
                        last.content.push(result)
                    }
                    _ => messages.push(Message {
                        role: Role::User,
                        content: vec![result],
                    }),
                }
            }
            other => return Err(format!("unknown role {other:?}")),
        }
    }
    let tools = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| ToolSpec {
            name: t["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            description: t["function"]["description"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            input_schema: t["function"]["parameters"].clone(),
        })
        .collect();
    Ok(LlmRequest {
        model: body["model"]
            .as_str()
            .ok_or("model is required")?
            .to_owned(),
        system,
        messages,
        tools,
        max_tokens: body["max_tokens"].as_u64().unwrap_or(4096) as u32,
        response_schema: body["response_format"]["json_schema"]
            .get("schema")
            .cloned(),
        ..LlmRequest::default()
    })
}

/// The offline model's answer to `request`, its files grown to the pace's size, its usage
/// kept.
async fn offline(
    request: Result<LlmRequest, String>,
    shared: &Shared,
) -> Result<(LlmRequest, LlmResponse), Response> {
    let request = request.map_err(bad)?;
    let mut response = match shared.pace().file_tokens {
        Some(_) => one_file_a_turn(&request).await,
        None => OfflineLlm.complete(&request).await,
    }
    .map_err(|e| bad(e.to_string()))?;
    shared.pace().grow_files(&mut response);
    if let Ok(mut kept) = shared.usage.lock() {
        kept.push(response.usage);
    }
    Ok((request, response))
}

/// The offline model's answer, its files written one a turn, as a real model writing files
/// of a real size does: while a file of the task's is still unwritten, the next one alone.
async fn one_file_a_turn(request: &LlmRequest) -> Result<LlmResponse, LlmError> {
    let is_file = |c: &Content| matches!(c, Content::ToolUse { name, .. } if name == "write_file");
    let written = request
        .messages
        .iter()
        .flat_map(|m| m.content.iter())
        .filter(|c| is_file(c))
        .count();
    // The whole set of files is the offline model's answer to the task's first message.
    let first = LlmRequest {
        messages: request.messages.iter().take(1).cloned().collect(),
        ..request.clone()
    };
    let files: Vec<Content> = match request.tools.is_empty() {
        true => Vec::new(),
        false => OfflineLlm.complete(&first).await?.content,
    };
    let Some(Content::ToolUse { name, input, .. }) = files.into_iter().filter(is_file).nth(written)
    else {
        return OfflineLlm.complete(request).await;
    };
    let asked = serde_json::to_string(&request.messages)
        .unwrap_or_default()
        .len();
    let usage = TokenUsage {
        input: u32::try_from(asked.div_ceil(4)).unwrap_or(u32::MAX),
        output: u32::try_from(input.to_string().len().div_ceil(4)).unwrap_or(u32::MAX),
        ..TokenUsage::default()
    };
    let id = format!("offline_file_{written}");
    Ok(crate::reply(
        OFFLINE_PROVIDER,
        request,
        vec![Content::ToolUse { id, name, input }],
        (usage.input, usage.output),
    ))
}

/// A whole (not streamed) answer, sent once a paced model would have written it.
async fn whole(body: Value, response: &LlmResponse, pace: &Pace) -> Response {
    if let Some(tps) = pace.tokens_per_sec {
        let writing = Duration::from_secs_f64(f64::from(response.usage.output) / tps);
        tokio::time::sleep(pace.first_token + writing).await;
    }
    Json(body).into_response()
}

async fn answer_anthropic(body: Value, shared: &Shared) -> Response {
    let pace = &shared.pace();
    let streamed = body["stream"] == json!(true);
    if streamed && pace.endless_model.as_deref() == body["model"].as_str() {
        let model = body["model"].as_str().unwrap_or_default();
        return endless(
            wire_anthropic::endless_start(model),
            wire_anthropic::endless_piece(),
            pace,
        );
    }
    let (request, response) = match offline(wire_anthropic::neutral(&body), shared).await {
        Ok(answer) => answer,
        Err(refused) => return refused,
    };
    let frames = wire_anthropic::events(&request.model, &response, pace.fine());
    match streamed {
        true => stream(frames, pace, &shared.streams),
        false => {
            whole(
                wire_anthropic::message(&request.model, &response),
                &response,
                pace,
            )
            .await
        }
    }
}

/// `call` is `model:method`; streaming is `streamGenerateContent` with `alt=sse`.
async fn answer_gemini(
    call: &str,
    query: Option<String>,
    body: Value,
    shared: &Shared,
) -> Response {
    let Some((model, method)) = call.split_once(':') else {
        return bad(format!("{call:?} is not model:method"));
    };
    let (_, response) = match offline(wire_gemini::neutral(model, &body), shared).await {
        Ok(answer) => answer,
        Err(refused) => return refused,
    };
    let pace = &shared.pace();
    match (method, query.as_deref()) {
        ("streamGenerateContent", Some("alt=sse")) => stream(
            wire_gemini::events(model, &response, pace.fine()),
            pace,
            &shared.streams,
        ),
        ("generateContent", _) => {
            whole(wire_gemini::response(model, &response), &response, pace).await
        }
        _ => bad(format!("unknown method {method:?}")),
    }
}

async fn answer(body: Value, shared: &Shared) -> Response {
    if let Ok(mut requests) = shared.requests.lock() {
        requests.push(body.clone());
    }
    let pace = &shared.pace();
    let (request, response) = match offline(neutral(&body), shared).await {
        Ok(answer) => answer,
        Err(refused) => return refused,
    };
    let text = response.text();
    let calls: Vec<(String, String, String)> = response
        .content
        .iter()
        .filter_map(|c| match c {
            Content::ToolUse { id, name, input } => {
                Some((id.clone(), name.clone(), input.to_string()))
            }
            _ => None,
        })
        .collect();
    let finish = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    let usage = json!({
        "prompt_tokens": response.usage.input, "completion_tokens": response.usage.output,
        "total_tokens": response.usage.input + response.usage.output
    });
    let model = request.model.clone();
    if body["stream"] != json!(true) {
        let tool_calls: Vec<Value> = calls
            .iter()
            .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
            .collect();
        let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
        if !tool_calls.is_empty() {
            message["tool_calls"] = json!(tool_calls);
        }
        let body = json!({
            "id": "chatcmpl-offline", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage
        });
        return whole(body, &response, pace).await;
    }
    // Streamed: text in pieces, each call's arguments in pieces (two, or a token each when
    // paced), then the finish reason, then usage, then [DONE], as OpenAI sends them.
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": "chatcmpl-offline", "object": "chat.completion.chunk", "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events: Vec<Value> = Vec::new();
    for (i, piece) in crate::pieces(&text, pace.fine()).into_iter().enumerate() {
        if piece.is_empty() {
            continue;
        }
        let delta = match i {
            0 => json!({"role": "assistant", "content": piece}),
            _ => json!({"content": piece}),
        };
        events.push(chunk(delta, None));
    }
    for (index, (id, name, args)) in calls.iter().enumerate() {
        for (i, piece) in crate::pieces(args, pace.fine()).into_iter().enumerate() {
            let call = match i {
                0 => {
                    json!({"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": piece}})
                }
                _ => json!({"index": index, "function": {"arguments": piece}}),
            };
            events.push(chunk(json!({"tool_calls": [call]}), None));
        }
    }
    events.push(chunk(json!({}), Some(finish)));
    events.push(json!({"id": "chatcmpl-offline", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage}));
    let mut frames: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    frames.push("data: [DONE]\n\n".into());
    stream(frames, pace, &shared.streams)
}
