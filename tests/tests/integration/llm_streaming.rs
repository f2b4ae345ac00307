//! Streaming (server-sent events) for each provider against recorded streams: the pieces
//! reach the sink as they arrive, the gathered answer equals what the whole response would
//! have said, usage is read from the stream, and errors inside a stream are mapped.

use autocrew_shared::adapters::llm::{AnthropicClient, GeminiClient, OpenAiClient};
use autocrew_shared::config::Secret;
use autocrew_shared::domain::records::TokenUsage;
use autocrew_shared::ports::llm::{Content, LlmClient, LlmError, LlmRequest, Message, StopReason};
use autocrew_tests::replay::{Recorded, ReplayServer};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn request(model: &str) -> LlmRequest {
    LlmRequest {
        model: model.into(),
        system: "You are a brand designer.".into(),
        messages: vec![Message::user("Write the brand sheet.")],
        tools: vec![autocrew_shared::crew::tools::spec("write_file").expect("write_file")],
        max_tokens: 1024,
        temperature: autocrew_shared::domain::Decimal::parse("0.4").ok(),
        response_schema: None,
        capabilities: autocrew_tests::shipped(provider_of(model), model),
        ..LlmRequest::default()
    }
}

fn provider_of(model: &str) -> &'static str {
    match model {
        m if m.starts_with("claude") => "anthropic",
        m if m.starts_with("gemini") => "gemini",
        _ => "openai",
    }
}

/// A sink that keeps every piece.
fn pieces() -> (Arc<Mutex<Vec<String>>>, impl Fn(&str) + Send + Sync) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let into = kept.clone();
    (kept, move |piece: &str| {
        into.lock().expect("pieces").push(piece.to_owned())
    })
}

#[tokio::test]
async fn anthropic_streams_text_and_tool_input_and_reads_usage_from_the_events()
-> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::sse("anthropic-stream-tool-use.sse")]).await?;
    let client = AnthropicClient::new(
        &server.url,
        Secret::new("sk-ant-test".into()),
        Duration::from_secs(2),
    )?;
    let (kept, sink) = pieces();

    let response = client.stream(&request("claude-sonnet-5-5"), &sink).await?;

    assert_eq!(
        response.content,
        [
            Content::Text {
                text: "I'll write the brand sheet.".into()
            },
            Content::ToolUse {
                id: "toolu_01Stream".into(),
                name: "write_file".into(),
                input: json!({"path": "brand.md", "content": "# Palette\n#2E7D32"})
            }
        ]
    );
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.usage,
        TokenUsage {
            input: 412,
            output: 87,
            cache_write: 0,
            cache_read: 1536
        }
    );
    let kept = kept.lock().expect("pieces").clone();
    assert_eq!(
        kept[..2],
        ["I'll write the ".to_owned(), "brand sheet.".to_owned()]
    );
    assert_eq!(
        kept.len(),
        5,
        "two text pieces and three of tool input: {kept:?}"
    );
    let sent = &server.received()[0];
    assert_eq!(
        (sent.path.as_str(), sent.body["stream"].clone()),
        ("/v1/messages", json!(true))
    );
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        sent.body["tools"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    Ok(())
}

#[tokio::test]
async fn an_overloaded_error_inside_an_anthropic_stream_is_unavailability() -> anyhow::Result<()> {
    let server =
        ReplayServer::start(vec![Recorded::sse("anthropic-stream-overloaded.sse")]).await?;
    let client = AnthropicClient::new(
        &server.url,
        Secret::new("sk-ant-test".into()),
        Duration::from_secs(2),
    )?;
    let (_, sink) = pieces();

    let error = client
        .stream(&request("claude-sonnet-5-5"), &sink)
        .await
        .unwrap_err();

    assert!(
        matches!(error, LlmError::Unavailable { status: 529, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    Ok(())
}

#[tokio::test]
async fn openai_streams_content_and_tool_arguments_with_usage_in_the_last_chunk()
-> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::sse("openai-stream-tool-call.sse")]).await?;
    let client = OpenAiClient::openai(
        &format!("{}/v1", server.url),
        Secret::new("sk-test".into()),
        Duration::from_secs(2),
    )?;
    let (kept, sink) = pieces();

    let response = client.stream(&request("gpt-6-luna"), &sink).await?;

    assert_eq!(
        response.content,
        [
            Content::Text {
                text: "Writing the copy.".into()
            },
            Content::ToolUse {
                id: "call_S1".into(),
                name: "write_file".into(),
                input: json!({"path": "landing.md", "content": "# Eat keto"})
            }
        ]
    );
    assert_eq!(
        (response.stop_reason, response.model.as_str()),
        (StopReason::ToolUse, "gpt-6-luna")
    );
    // 1312 prompt tokens of which 1024 were cached.
    assert_eq!(
        response.usage,
        TokenUsage {
            input: 288,
            output: 58,
            cache_write: 0,
            cache_read: 1024
        }
    );
    assert_eq!(
        kept.lock().expect("pieces").concat(),
        "Writing the copy.{\"path\":\"landing.md\",\"content\":\"# Eat keto\"}"
    );
    let sent = &server.received()[0];
    assert_eq!(sent.body["stream"], json!(true));
    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));
    assert_eq!(sent.body["tools"][0]["function"]["name"], "write_file");
    Ok(())
}

#[tokio::test]
async fn a_broken_stream_is_a_malformed_answer_naming_the_provider_and_model() -> anyhow::Result<()>
{
    let server = ReplayServer::start(vec![Recorded::sse_body("data: {\"choices\": [\n\n")]).await?;
    let client = OpenAiClient::openai(
        &format!("{}/v1", server.url),
        Secret::new("sk-test".into()),
        Duration::from_secs(2),
    )?;
    let (_, sink) = pieces();

    let error = client
        .stream(&request("gpt-6-luna"), &sink)
        .await
        .unwrap_err();

    assert!(matches!(error, LlmError::Malformed { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "openai sent a response for gpt-6-luna that could not be read"
    );
    Ok(())
}

#[tokio::test]
async fn gemini_streams_over_sse_and_joins_the_pieces() -> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::sse("gemini-stream-text.sse")]).await?;
    let client = GeminiClient::new(
        &server.url,
        Secret::new("AIza-test".into()),
        Duration::from_secs(2),
    )?;
    let (kept, sink) = pieces();

    let response = client.stream(&request("gemini-2.5-flash"), &sink).await?;

    assert_eq!(response.text(), "Eat keto, stress less.");
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    // 9 answer tokens and 40 thinking tokens are billed as output.
    assert_eq!(
        response.usage,
        TokenUsage {
            input: 120,
            output: 49,
            cache_write: 0,
            cache_read: 0
        }
    );
    assert_eq!(
        kept.lock().expect("pieces").clone(),
        ["Eat keto,", " stress less."]
    );
    let sent = &server.received()[0];
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(sent.headers["x-goog-api-key"], "AIza-test");
    Ok(())
}

#[tokio::test]
async fn a_gemini_function_call_arrives_whole_in_the_stream() -> anyhow::Result<()> {
    let server =
        ReplayServer::start(vec![Recorded::sse("gemini-stream-function-call.sse")]).await?;
    let client = GeminiClient::new(
        &server.url,
        Secret::new("AIza-test".into()),
        Duration::from_secs(2),
    )?;
    let (kept, sink) = pieces();

    let response = client.stream(&request("gemini-2.5-flash"), &sink).await?;

    assert_eq!(
        response.content,
        [
            Content::Text {
                text: "Writing the sheet.".into()
            },
            Content::ToolUse {
                id: "write_file-1".into(),
                name: "write_file".into(),
                input: json!({"path": "brand.md", "content": "# Palette"})
            }
        ]
    );
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.usage,
        TokenUsage {
            input: 310,
            output: 25,
            cache_write: 0,
            cache_read: 0
        }
    );
    let kept = kept.lock().expect("pieces").clone();
    assert_eq!(kept[0], "Writing the sheet.");
    assert!(kept[1].contains("brand.md"), "{kept:?}");
    let sent = &server.received()[0];
    assert_eq!(
        sent.body["tools"][0]["functionDeclarations"][0]["name"],
        "write_file"
    );
    Ok(())
}
