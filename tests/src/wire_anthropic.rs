//! The offline model behind Anthropic's Messages wire format: a request body read back into
//! the neutral request, an answer written as a message, whole or as the event stream.

use autocrew_shared::ports::llm::{
    Content, LlmRequest, LlmResponse, Message, Role, StopReason, ToolSpec,
};
use serde_json::{Value, json};

fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A Messages API body as the neutral request.
pub fn neutral(body: &Value) -> Result<LlmRequest, String> {
    let mut messages = Vec::new();
    for m in body["messages"]
        .as_array()
        .ok_or("messages must be an array")?
    {
        let role = match m["role"].as_str() {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            other => return Err(format!("unknown role {other:?}")),
        };
        let blocks = match &m["content"] {
            Value::String(text) => vec![json!({"type": "text", "text": text})],
            Value::Array(blocks) => blocks.clone(),
            _ => return Err("content must be a string or blocks".into()),
        };
        let mut content = Vec::new();
        for block in blocks {
            match block["type"].as_str() {
                Some("text") => content.push(Content::Text {
                    text: block["text"].as_str().unwrap_or_default().to_owned(),
                }),
                Some("tool_use") => content.push(Content::ToolUse {
                    id: block["id"].as_str().unwrap_or_default().to_owned(),
                    name: block["name"].as_str().unwrap_or_default().to_owned(),
                    input: block["input"].clone(),
                }),
                Some("tool_result") => content.push(Content::ToolResult {
                    tool_use_id: block["tool_use_id"].as_str().unwrap_or_default().to_owned(),
                    content: text_of(&block["content"]),
                    is_error: block["is_error"].as_bool().unwrap_or(false),
                }),
                _ => {}
            }
        }
        messages.push(Message { role, content });
    }
    let tools = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| ToolSpec {
            name: t["name"].as_str().unwrap_or_default().to_owned(),
            description: t["description"].as_str().unwrap_or_default().to_owned(),
            input_schema: t["input_schema"].clone(),
        })
        .collect();
    Ok(LlmRequest {
        model: body["model"]
            .as_str()
            .ok_or("model is required")?
            .to_owned(),
        system: text_of(&body["system"]),
        messages,
        tools,
        max_tokens: body["max_tokens"].as_u64().unwrap_or(4096) as u32,
        response_schema: body["output_config"]["format"].get("schema").cloned(),
        ..LlmRequest::default()
    })
}

fn blocks(response: &LlmResponse) -> Vec<Value> {
    response
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Text { text } => Some(json!({"type": "text", "text": text})),
            Content::ToolUse { id, name, input } => {
                Some(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
            }
            _ => None,
        })
        .collect()
}

fn stop_reason(response: &LlmResponse) -> &'static str {
    match response.stop_reason {
        StopReason::ToolUse => "tool_use",
        StopReason::MaxTokens => "max_tokens",
        _ => "end_turn",
    }
}

/// The answer as one message body.
pub fn message(model: &str, response: &LlmResponse) -> Value {
    json!({
        "id": "msg_offline", "type": "message", "role": "assistant", "model": model,
        "content": blocks(response), "stop_reason": stop_reason(response), "stop_sequence": null,
        "usage": {"input_tokens": response.usage.input, "output_tokens": response.usage.output,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    })
}

/// The answer as Anthropic streams it: message_start, each block's start, deltas (in two
/// pieces, or `fine`, a token each) and stop, message_delta with the stop reason and usage,
/// message_stop; one server-sent event each.
pub fn events(model: &str, response: &LlmResponse, fine: bool) -> Vec<String> {
    let mut events: Vec<(&str, Value)> = Vec::new();
    let mut start = message(model, response);
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"]["output_tokens"] = json!(1);
    events.push((
        "message_start",
        json!({"type": "message_start", "message": start}),
    ));
    for (index, block) in blocks(response).into_iter().enumerate() {
        let (empty, piece_key, delta_type, whole) = match block["type"].as_str() {
            Some("text") => (
                json!({"type": "text", "text": ""}),
                "text",
                "text_delta",
                block["text"].as_str().unwrap_or_default().to_owned(),
            ),
            _ => {
                let mut empty = block.clone();
                empty["input"] = json!({});
                (
                    empty,
                    "partial_json",
                    "input_json_delta",
                    block["input"].to_string(),
                )
            }
        };
        events.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": empty}),
        ));
        for piece in crate::pieces(&whole, fine) {
            events.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                "delta": {"type": delta_type, piece_key: piece}}),
            ));
        }
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push((
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason(response), "stop_sequence": null},
        "usage": {"output_tokens": response.usage.output}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

/// The start of a stream that never ends (`pace::Pace::endless_model`): message_start and
/// an open text block; its pieces are `endless_piece`.
pub fn endless_start(model: &str) -> Vec<String> {
    let start = json!({"type": "message_start", "message": {"id": "msg_endless", "type": "message",
        "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 1, "output_tokens": 1}}});
    let block = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}});
    vec![
        format!("event: message_start\ndata: {start}\n\n"),
        format!("event: content_block_start\ndata: {block}\n\n"),
    ]
}

/// One more piece of a stream that never ends.
pub fn endless_piece() -> String {
    let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "more "}});
    format!("event: content_block_delta\ndata: {delta}\n\n")
}
