//! The OpenAI Chat Completions adapter against recorded responses, checking the request it
//! sends as well as how it reads the answer.

use autocrew_shared::adapters::llm::OpenAiClient;
use autocrew_shared::config::Secret;
use autocrew_shared::domain::capabilities::ReasoningEffort;
use autocrew_shared::domain::records::TokenUsage;
use autocrew_shared::ports::llm::{
    Content, LlmClient, LlmError, LlmRequest, Message, Role, StopReason, ToolSpec,
};
use autocrew_tests::replay::{Recorded, ReplayServer};
use serde_json::json;
use std::time::Duration;

/// A marketer's structured request to GPT-6 Luna with its shipped capabilities, as the
/// gateway sends it: the profile asks for a temperature and low reasoning.
fn request() -> LlmRequest {
    LlmRequest {
        model: "gpt-6-luna".into(),
        system: "You are a product marketer.".into(),
        messages: vec![Message::user("Write the landing copy.")],
        tools: Vec::new(),
        max_tokens: 1024,
        temperature: autocrew_shared::domain::Decimal::parse("0.4").ok(),
        reasoning: Some(ReasoningEffort::Low),
        response_schema: Some(json!({"title": "autocrew_agent_output", "type": "object",
            "required": ["headline"],
            "properties": {"headline": {"type": "string", "maxLength": 80}, "subline": {"type": "string"}}})),
        capabilities: autocrew_tests::shipped("openai", "gpt-6-luna"),
    }
}

fn client(server: &ReplayServer) -> OpenAiClient {
    OpenAiClient::openai(
        &format!("{}/v1", server.url),
        Secret::new("sk-test-1234".into()),
        Duration::from_secs(2),
    )
    .expect("client")
}

#[tokio::test]
async fn a_text_answer_is_read_with_cached_tokens_split_out_and_the_request_is_chat_completions()
-> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::ok("openai-chat-text.json")]).await?;

    let response = client(&server).complete(&request()).await?;

    assert_eq!(response.provider, "openai");
    assert_eq!(response.model, "gpt-6-luna");
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert!(response.text().contains("Landing copy drafted"));
    assert_eq!(
        response.usage,
        TokenUsage {
            input: 226,
            output: 87,
            cache_write: 0,
            cache_read: 1024
        }
    );
    let sent = &server.received()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.headers["authorization"], "Bearer sk-test-1234");
    assert_eq!(sent.body["model"], "gpt-6-luna");
    assert_eq!(
        sent.body["messages"][0],
        json!({"role": "system", "content": "You are a product marketer."})
    );
    assert_eq!(
        sent.body["messages"][1],
        json!({"role": "user", "content": "Write the landing copy."})
    );
    assert_eq!(sent.body["max_completion_tokens"], 1024);
    assert!(
        sent.body.get("max_tokens").is_none(),
        "OpenAI itself takes max_completion_tokens"
    );
    assert_eq!(
        sent.body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "autocrew_agent_output", "strict": true,
            "schema": {"type": "object", "additionalProperties": false, "required": ["headline", "subline"],
                "properties": {"headline": {"type": "string"}, "subline": {"type": ["string", "null"]}}}}})
    );
    assert!(
        sent.body.get("temperature").is_none(),
        "a reasoning model takes no temperature"
    );
    assert_eq!(sent.body["reasoning_effort"], "low");
    Ok(())
}

#[tokio::test]
async fn tools_go_out_as_functions_and_tool_calls_come_back_as_tool_use() -> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::ok("openai-chat-tool-call.json")]).await?;
    let mut request = request();
    request.tools = vec![ToolSpec {
        name: "write_file".into(),
        description: "Write a file of the project".into(),
        input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}),
    }];
    request.messages.push(Message {
        role: Role::Assistant,
        content: vec![Content::ToolUse {
            id: "call_1".into(),
            name: "read_file".into(),
            input: json!({"path": "brand.md"}),
        }],
    });
    request.messages.push(Message {
        role: Role::User,
        content: vec![Content::ToolResult {
            tool_use_id: "call_1".into(),
            content: "# Brand".into(),
            is_error: false,
        }],
    });

    let response = client(&server).complete(&request).await?;

    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.content,
        [Content::ToolUse {
            id: "call_Xk2mP9qR4sT7vW1y".into(),
            name: "write_file".into(),
            input: json!({"path": "README.md", "content": "# Keto recipes"})
        }]
    );
    let body = &server.received()[0].body;
    assert_eq!(
        body["tools"][0],
        json!({"type": "function", "function": {"name": "write_file", "description": "Write a file of the project",
            "strict": true, "parameters": {"type": "object", "additionalProperties": false,
                "required": ["content", "path"],
                "properties": {"path": {"type": ["string", "null"]}, "content": {"type": ["string", "null"]}}}}})
    );
    assert_eq!(
        body["reasoning_effort"], "none",
        "GPT-6 calls functions on Chat Completions only at effort none"
    );
    assert_eq!(
        body["messages"][2]["tool_calls"][0]["function"]["arguments"],
        r#"{"path":"brand.md"}"#
    );
    assert_eq!(
        body["messages"][3],
        json!({"role": "tool", "content": "# Brand", "tool_call_id": "call_1"})
    );
    Ok(())
}

#[tokio::test]
async fn a_compatible_server_gets_max_tokens_and_no_key() -> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::ok("openai-chat-text.json")]).await?;
    let ollama = OpenAiClient::compatible(
        "ollama",
        &format!("{}/v1", server.url),
        None,
        Duration::from_secs(2),
    )?;

    let mut request = request();
    request.capabilities = autocrew_tests::model_table(&[("ollama", "llama3.1:8b", "0", "0")])?
        .capabilities("ollama", "llama3.1:8b")?
        .clone();
    let response = ollama.complete(&request).await?;

    assert_eq!(response.provider, "ollama");
    let sent = &server.received()[0];
    assert_eq!(sent.body["max_tokens"], 1024);
    assert!(sent.headers.get("authorization").is_none());
    assert!(
        sent.raw.contains(r#""temperature":0.4"#),
        "the decimal goes out as written: {}",
        sent.raw
    );
    assert_eq!(
        sent.body["response_format"]["json_schema"]["schema"],
        request.response_schema.clone().unwrap()
    );
    assert!(
        sent.body["response_format"]["json_schema"]
            .get("strict")
            .is_none()
    );
    assert!(sent.body.get("reasoning_effort").is_none());
    Ok(())
}

#[tokio::test]
async fn a_refusal_is_a_declined_answer_not_a_parse_error() -> anyhow::Result<()> {
    let refusal = r#"{"id": "chatcmpl-r1", "object": "chat.completion", "model": "gpt-6-luna",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."},
            "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}}"#;
    let unsupported = r#"{"error": {"message": "Unsupported parameter: 'temperature' is not supported with this model.",
        "type": "invalid_request_error", "param": "temperature", "code": "unsupported_parameter"}}"#;
    let server = ReplayServer::start(vec![
        Recorded::json(200, refusal),
        Recorded::json(400, unsupported),
    ])
    .await?;

    let declined = client(&server).complete(&request()).await.unwrap_err();
    let misconfigured = client(&server).complete(&request()).await.unwrap_err();

    assert!(
        matches!(&declined, LlmError::Declined { message, .. } if message == "I can't help with that."),
        "{declined:?}"
    );
    assert!(
        matches!(&misconfigured, LlmError::Misconfigured { model, parameter, .. } if model == "gpt-6-luna" && parameter == "temperature"),
        "{misconfigured:?}"
    );
    assert!(!declined.is_retryable() && !misconfigured.is_retryable());
    Ok(())
}

#[tokio::test]
async fn errors_say_what_happened_naming_the_provider_and_model() -> anyhow::Result<()> {
    let server = ReplayServer::start(vec![
        Recorded::from_file(429, "openai-error-429.json").with_header("retry-after", "7"),
        Recorded::from_file(500, "openai-error-500.json"),
        Recorded::from_file(401, "openai-error-401.json"),
        Recorded::ok("openai-malformed.json"),
        Recorded::ok("openai-chat-text.json").delayed(Duration::from_secs(5)),
    ])
    .await?;
    let client = client(&server);

    let rate_limited = client.complete(&request()).await.unwrap_err();
    let unavailable = client.complete(&request()).await.unwrap_err();
    let refused = client.complete(&request()).await.unwrap_err();
    let malformed = client.complete(&request()).await.unwrap_err();
    let timed_out = client.complete(&request()).await.unwrap_err();

    assert!(
        matches!(
            rate_limited,
            LlmError::RateLimited {
                retry_after_secs: Some(7),
                ..
            }
        ),
        "{rate_limited:?}"
    );
    assert!(
        matches!(unavailable, LlmError::Unavailable { status: 500, .. }),
        "{unavailable:?}"
    );
    assert!(
        matches!(refused, LlmError::Rejected { .. }) && refused.to_string().contains("API key"),
        "{refused}"
    );
    assert!(!refused.is_retryable());
    assert!(
        matches!(malformed, LlmError::Malformed { .. }),
        "{malformed:?}"
    );
    assert!(
        matches!(timed_out, LlmError::Timeout { .. }),
        "{timed_out:?}"
    );
    for error in [
        &rate_limited,
        &unavailable,
        &refused,
        &malformed,
        &timed_out,
    ] {
        let text = error.to_string();
        assert!(
            text.contains("openai") && text.contains("gpt-6-luna"),
            "{text}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn embeddings_come_back_in_input_order_with_their_token_count() -> anyhow::Result<()> {
    use autocrew_shared::adapters::llm::{EMBEDDING_DIM, OpenAiEmbedder};
    use autocrew_shared::ports::Embedder;
    let server = ReplayServer::start(vec![
        Recorded::ok("openai-embeddings.json"),
        Recorded::from_file(429, "openai-error-429.json").with_header("retry-after", "3"),
    ])
    .await?;
    let embedder = OpenAiEmbedder::new(
        &format!("{}/v1", server.url),
        Secret::new("sk-test-1234".into()),
        "text-embedding-3-small",
        Duration::from_secs(2),
    )?;
    let texts = vec![
        "Build a recipe app for keto dieters".to_owned(),
        "Build a keto recipe app".to_owned(),
    ];

    let (vectors, tokens) = embedder.embed(&texts).await?;

    assert_eq!((vectors.len(), tokens), (2, 17));
    assert!(vectors.iter().all(|v| v.len() == EMBEDDING_DIM));
    // The response lists index 1 first; the vectors come back in input order.
    assert!((vectors[0][0] - (0.37f32).sin() / norm(1)).abs() < 1e-4);
    let sent = &server.received()[0];
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(sent.headers["authorization"], "Bearer sk-test-1234");
    assert_eq!(
        sent.body,
        json!({"model": "text-embedding-3-small", "input": texts, "dimensions": 1536})
    );
    let limited = embedder.embed(&texts).await.unwrap_err();
    assert!(
        matches!(
            limited,
            LlmError::RateLimited {
                retry_after_secs: Some(3),
                ..
            }
        ),
        "{limited:?}"
    );
    Ok(())
}

/// The norm of the recorded vector made from `seed` (see `tests/recorded/`).
fn norm(seed: u32) -> f32 {
    (0..1536)
        .map(|i| ((seed as f32) * 0.37 + i as f32 * 0.11).sin().powi(2))
        .sum::<f32>()
        .sqrt()
}
