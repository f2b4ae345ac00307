//! The offline model behind Gemini's `generateContent` wire format: a request body read back
//! into the neutral request, an answer written as a response, whole or as SSE chunks.

use autocrew_shared::ports::llm::{
    Content, LlmRequest, LlmResponse, Message, Role, StopReason, ToolSpec,
};
use serde_json::{Value, json};

fn texts(parts: &Value) -> String {
    parts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `generateContent` body for `model` as the neutral request.
pub fn neutral(model: &str, body: &Value) -> Result<LlmRequest, String> {
    let mut messages = Vec::new();
    for c in body["contents"]
        .as_array()
        .ok_or("contents must be an array")?
    {
        let role = match c["role"].as_str() {
            Some("user") | None => Role::User,
            Some("model") => Role::Assistant,
            other => return Err(format!("unknown role {other:?}")),
        };
        let mut content = Vec::new();
        for (i, part) in c["parts"].as_array().into_iter().flatten().enumerate() {
            if let Some(text) = part["text"].as_str() {
                content.push(Content::Text {
                    text: text.to_owned(),
                });
            } else if let Some(call) = part.get("functionCall") {
                let name = call["name"].as_str().unwrap_or_default();
                content.push(Content::ToolUse {
                    id: format!("{name}-{i}"),
                    name: name.to_owned(),
                    input: call["args"].clone(),
                });
            } else if let Some(answer) = part.get("functionResponse") {
                let response = &answer["response"];
                let (text, is_error) = match response.get("error") {
                    Some(error) => (error.clone(), true),
                    None => (response["result"].clone(), false),
                };
                content.push(Content::ToolResult {
                    tool_use_id: answer["name"].as_str().unwrap_or_default().to_owned(),
                    content: text
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| text.to_string()),
                    is_error,
                });
            }
        }
        messages.push(Message { role, content });
    }
    let tools = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| {
            t["functionDeclarations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|d| ToolSpec {
            name: d["name"].as_str().unwrap_or_default().to_owned(),
            description: d["description"].as_str().unwrap_or_default().to_owned(),
            input_schema: d["parametersJsonSchema"].clone(),
        })
        .collect();
    let config = &body["generationConfig"];
    Ok(LlmRequest {
        model: model.to_owned(),
        system: texts(&body["systemInstruction"]["parts"]),
        messages,
        tools,
        max_tokens: config["maxOutputTokens"].as_u64().unwrap_or(8192) as u32,
        response_schema: config.get("responseJsonSchema").cloned(),
        ..LlmRequest::default()
    })
}

fn parts(response: &LlmResponse) -> Vec<Value> {
    response
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Text { text } => Some(json!({"text": text})),
            Content::ToolUse { name, input, .. } => {
                Some(json!({"functionCall": {"name": name, "args": input}}))
            }
            _ => None,
        })
        .collect()
}

fn usage(response: &LlmResponse) -> Value {
    json!({"promptTokenCount": response.usage.input, "candidatesTokenCount": response.usage.output,
           "totalTokenCount": response.usage.input + response.usage.output})
}

fn chunk(model: &str, parts: Vec<Value>, last: Option<&LlmResponse>) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    let mut chunk = json!({"candidates": [], "modelVersion": model, "responseId": "offline"});
    if let Some(response) = last {
        let reason = match response.stop_reason {
            StopReason::MaxTokens => "MAX_TOKENS",
            _ => "STOP",
        };
        candidate["finishReason"] = json!(reason);
        chunk["usageMetadata"] = usage(response);
    }
    chunk["candidates"] = json!([candidate]);
    chunk
}

/// The answer as one response body.
pub fn response(model: &str, response: &LlmResponse) -> Value {
    chunk(model, parts(response), Some(response))
}

/// The answer as `streamGenerateContent?alt=sse` sends it: text in pieces (two, or
/// `fine`, a token each), function calls whole (as Gemini sends them), then a last chunk
/// with the finish reason and usage; one server-sent event each.
pub fn events(model: &str, answer: &LlmResponse, fine: bool) -> Vec<String> {
    let mut chunks = Vec::new();
    for part in parts(answer) {
        match part["text"].as_str() {
            Some(text) => {
                for piece in crate::pieces(text, fine) {
                    chunks.push(chunk(model, vec![json!({"text": piece})], None));
                }
            }
            None => chunks.push(chunk(model, vec![part], None)),
        }
    }
    chunks.push(chunk(model, Vec::new(), Some(answer)));
    chunks.iter().map(|c| format!("data: {c}\n\n")).collect()
}
