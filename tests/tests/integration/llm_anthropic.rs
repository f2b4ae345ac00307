//! The Anthropic Messages adapter against recorded responses, checking the request it sends
//! (headers, blocks, tools, cache markers) as well as how it reads the answer.

use autocrew_shared::adapters::llm::AnthropicClient;
use autocrew_shared::config::Secret;
use autocrew_shared::crew::planner;
use autocrew_shared::domain::PlanLimits;
use autocrew_shared::domain::records::TokenUsage;
use autocrew_shared::ports::llm::{
    Content, LlmClient, LlmError, LlmRequest, Message, Role, StopReason, ToolSpec,
};
use autocrew_tests::replay::{Recorded, ReplayServer};
use serde_json::json;
use std::time::Duration;

fn client(server: &ReplayServer) -> AnthropicClient {
    AnthropicClient::new(
        &server.url,
        Secret::new("sk-ant-test".into()),
        Duration::from_secs(2),
    )
    .expect("client")
}

#[tokio::test]
async fn a_plan_comes_back_through_the_forced_answer_tool_with_the_prefix_marked_for_caching()
-> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::ok("anthropic-structured.json")]).await?;
    let request = plan_request("Build a recipe app for keto dieters");

    let response = client(&server).complete(&request).await?;
    let (reply, graph) = planner::parse_plan(&response, PlanLimits::default())?;

    assert_eq!(reply.product, "Keto recipe app");
    assert_eq!(graph.tasks().len(), 3);
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(
        response.usage,
        TokenUsage {
            input: 412,
            output: 188,
            cache_write: 1536,
            cache_read: 0
        }
    );
    let sent = &server.received()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.headers["x-api-key"], "sk-ant-test");
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        sent.body["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(
        sent.body["tool_choice"],
        json!({"type": "tool", "name": "autocrew_plan"})
    );
    let tools = sent.body["tools"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        tools.last().map(|t| t["cache_control"].clone()),
        Some(json!({"type": "ephemeral"}))
    );
    assert_eq!(
        tools.last().map(|t| t["input_schema"]["title"].clone()),
        Some(json!("autocrew_plan"))
    );
    assert_eq!(
        sent.body["messages"][0]["content"][0],
        json!({"type": "text", "text": "Build a recipe app for keto dieters"})
    );
    Ok(())
}

#[tokio::test]
async fn tool_use_and_tool_result_blocks_round_trip() -> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::ok("anthropic-tool-use.json")]).await?;
    let request = LlmRequest {
        model: "claude-sonnet-5-5".into(),
        system: "You are a senior mobile developer.".into(),
        messages: vec![
            Message::user("Write the README."),
            Message {
                role: Role::Assistant,
                content: vec![Content::ToolUse {
                    id: "toolu_0".into(),
                    name: "read_file".into(),
                    input: json!({"path": "brand.md"}),
                }],
            },
            Message {
                role: Role::User,
                content: vec![Content::ToolResult {
                    tool_use_id: "toolu_0".into(),
                    content: "no such file".into(),
                    is_error: true,
                }],
            },
        ],
        tools: vec![ToolSpec {
            name: "write_file".into(),
            description: "Write a file".into(),
            input_schema: json!({"type": "object"}),
        }],
        max_tokens: 2048,
        temperature: None,
        response_schema: None,
        ..LlmRequest::default()
    };

    let response = client(&server).complete(&request).await?;

    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.content[1],
        Content::ToolUse {
            id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
            name: "write_file".into(),
            input: json!({"path": "README.md", "content": "# Keto recipes"}),
        }
    );
    assert_eq!(response.usage.cache_read, 1536);
    let body = &server.received()[0].body;
    assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(
        body["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_0", "content": "no such file", "is_error": true})
    );
    assert!(
        body.get("tool_choice").is_none(),
        "no structured answer was asked for"
    );
    assert_eq!(
        body["tools"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    Ok(())
}

#[tokio::test]
async fn overloaded_and_rate_limited_answers_are_retryable_errors() -> anyhow::Result<()> {
    let server = ReplayServer::start(vec![
        Recorded::from_file(529, "anthropic-error-529.json"),
        Recorded::from_file(429, "anthropic-error-429.json").with_header("retry-after", "12"),
    ])
    .await?;
    let request = plan_request("Build a CRM");

    let overloaded = client(&server).complete(&request).await.unwrap_err();
    let limited = client(&server).complete(&request).await.unwrap_err();

    assert!(
        matches!(overloaded, LlmError::Unavailable { status: 529, .. }),
        "{overloaded:?}"
    );
    assert!(
        matches!(
            limited,
            LlmError::RateLimited {
                retry_after_secs: Some(12),
                ..
            }
        ),
        "{limited:?}"
    );
    assert!(overloaded.is_retryable() && limited.is_retryable());
    assert!(
        overloaded.to_string().contains("anthropic")
            && overloaded.to_string().contains("claude-sonnet-5-5")
    );
    Ok(())
}

/// The orchestrator's request from the shipped profile, for Claude Sonnet 4.5.
fn plan_request(command: &str) -> LlmRequest {
    let routing = autocrew_shared::domain::routing::RoutingPolicy::builtin().expect("routing");
    let profiles = autocrew_shared::crew::AgentProfiles::builtin(&routing).expect("profiles");
    let mut request = planner::plan_request(
        profiles.get(autocrew_shared::domain::AgentKind::Orchestrator),
        command,
    );
    request.model = "claude-sonnet-5-5".into();
    request
}
