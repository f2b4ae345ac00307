//! A server whose model is the offline provider, behind each provider's wire format: OpenAI
//! Chat Completions (`/v1/chat/completions`, as Ollama or vLLM serve it too), Anthropic
//! Messages (`/v1/messages`) and Gemini (`/v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`). It reads what a client sends (messages, tool calls and
//! results, tools, the response schema), answers from the offline templates, and writes the
//! wire format back, whole or streamed. So a whole run can go over each adapter's real HTTP
//! path with no model weights on the machine. Every answer's token counts are kept, so a
//! test can check the ledger against what the server reported. It checks nothing: that is
//! the provider-check server's job, in front of it.

use crate::{wire_anthropic, wire_gemini};
use autocrew_shared::adapters::llm::OfflineLlm;
use autocrew_shared::domain::records::TokenUsage;
use autocrew_shared::ports::llm::{
    Content, LlmClient, LlmRequest, LlmResponse, Message, Role, ToolSpec,
};
use axum::Json;
use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// The running server.
pub struct CompatibleServer {
    /// `http://127.0.0.1:<port>/v1`: what `OPENAI_BASE_URL` takes.
    pub base_url: String,
    usage: Arc<Mutex<Vec<TokenUsage>>>,
}

impl CompatibleServer {
    pub async fn start(port: u16) -> anyhow::Result<CompatibleServer> {
        let usage = Arc::new(Mutex::new(Vec::new()));
        let (openai, anthropic, gemini) = (usage.clone(), usage.clone(), usage.clone());
        let app = axum::Router::new()
            .route(
                "/v1/chat/completions",
                axum::routing::post(move |Json(body): Json<Value>| {
                    let kept = openai.clone();
                    async move { answer(body, &kept).await }
                }),
            )
            .route(
                "/v1/messages",
                axum::routing::post(move |Json(body): Json<Value>| {
                    let kept = anthropic.clone();
                    async move { answer_anthropic(body, &kept).await }
                }),
            )
            .route(
                "/v1beta/models/{call}",
                axum::routing::post(
                    move |Path(call): Path<String>,
                          RawQuery(query): RawQuery,
                          Json(body): Json<Value>| {
                        let kept = gemini.clone();
                        async move { answer_gemini(&call, query, body, &kept).await }
                    },
                ),
            );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CompatibleServer { base_url, usage })
    }

    /// The usage of every answer given, in order.
    pub fn usage(&self) -> Vec<TokenUsage> {
        self.usage.lock().map(|u| u.clone()).unwrap_or_default()
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

/// The offline model's answer to `request`, its usage kept.
async fn offline(
    request: Result<LlmRequest, String>,
    kept: &Mutex<Vec<TokenUsage>>,
) -> Result<(LlmRequest, LlmResponse), Response> {
    let request = request.map_err(bad)?;
    let response = OfflineLlm
        .complete(&request)
        .await
        .map_err(|e| bad(e.to_string()))?;
    if let Ok(mut kept) = kept.lock() {
        kept.push(response.usage);
    }
    Ok((request, response))
}

fn sse(stream: String) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        stream,
    )
        .into_response()
}

async fn answer_anthropic(body: Value, kept: &Mutex<Vec<TokenUsage>>) -> Response {
    let (request, response) = match offline(wire_anthropic::neutral(&body), kept).await {
        Ok(answer) => answer,
        Err(refused) => return refused,
    };
    match body["stream"] == json!(true) {
        true => sse(wire_anthropic::events(&request.model, &response)),
        false => Json(wire_anthropic::message(&request.model, &response)).into_response(),
    }
}

/// `call` is `model:method`; streaming is `streamGenerateContent` with `alt=sse`.
async fn answer_gemini(
    call: &str,
    query: Option<String>,
    body: Value,
    kept: &Mutex<Vec<TokenUsage>>,
) -> Response {
    let Some((model, method)) = call.split_once(':') else {
        return bad(format!("{call:?} is not model:method"));
    };
    let (_, response) = match offline(wire_gemini::neutral(model, &body), kept).await {
        Ok(answer) => answer,
        Err(refused) => return refused,
    };
    match (method, query.as_deref()) {
        ("streamGenerateContent", Some("alt=sse")) => sse(wire_gemini::events(model, &response)),
        ("generateContent", _) => Json(wire_gemini::response(model, &response)).into_response(),
        _ => bad(format!("unknown method {method:?}")),
    }
}

async fn answer(body: Value, kept: &Mutex<Vec<TokenUsage>>) -> Response {
    let (request, response) = match offline(neutral(&body), kept).await {
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
        return Json(json!({
            "id": "chatcmpl-offline", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage
        }))
        .into_response();
    }
    // Streamed: text in two pieces, each call's arguments in two pieces, then the finish
    // reason, then usage, then [DONE], as OpenAI sends them.
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": "chatcmpl-offline", "object": "chat.completion.chunk", "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events: Vec<Value> = Vec::new();
    if !text.is_empty() {
        let half = crate::half(&text);
        events.push(chunk(
            json!({"role": "assistant", "content": &text[..half]}),
            None,
        ));
        events.push(chunk(json!({"content": &text[half..]}), None));
    }
    for (index, (id, name, args)) in calls.iter().enumerate() {
        let half = crate::half(args);
        events.push(chunk(json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": &args[..half]}}]}), None));
        events.push(chunk(
            json!({"tool_calls": [{"index": index, "function": {"arguments": &args[half..]}}]}),
            None,
        ));
    }
    events.push(chunk(json!({}), Some(finish)));
    events.push(json!({"id": "chatcmpl-offline", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage}));
    let mut stream: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    stream.push_str("data: [DONE]\n\n");
    sse(stream)
}
