//! The Anthropic Messages adapter against recorded responses, checking the request it sends
//! (headers, blocks, tools, cache markers) as well as how it reads the answer.

use autocrew_shared::adapters::llm::AnthropicClient;
use autocrew_shared::config::Secret;
use autocrew_shared::crew::planner;
use autocrew_shared::domain::PlanLimits;
use autocrew_shared::domain::capabilities::StructuredOutput;
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

/// No sampling parameter, anywhere in the body: Anthropic's current request types have none.
fn assert_no_sampling(body: &serde_json::Value) {
    for key in ["temperature", "top_p", "top_k"] {
        assert!(body.get(key).is_none(), "{key} was sent: {body}");
    }
}

#[tokio::test]
async fn a_plan_comes_back_as_strict_json_output_with_no_sampling_parameter_and_the_prefix_cached()
-> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::ok("anthropic-structured.json")]).await?;
    let request = plan_request("Build a recipe app for keto dieters");

    let response = client(&server).complete(&request).await?;
    let (reply, graph) = planner::parse_plan(&response, PlanLimits::default())?;

    assert_eq!(reply.product, "Keto recipe app");
    assert_eq!(graph.tasks().len(), 3);
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert!(
        matches!(&response.content[0], Content::Reasoning { provider, .. } if provider == "anthropic")
    );
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
    let body = &sent.body;
    assert_no_sampling(body);
    assert!(
        body.get("tool_choice").is_none() && body.get("tools").is_none(),
        "Sonnet 5.5 refuses a forced tool: structured output goes through output_config"
    );
    let format = &body["output_config"]["format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["schema"]["additionalProperties"], false);
    assert_eq!(format["schema"]["required"], json!(["product", "tasks"]));
    let task = &format["schema"]["properties"]["tasks"]["items"];
    assert_eq!(task["additionalProperties"], false);
    assert_eq!(
        task["required"],
        json!([
            "agent",
            "complexity",
            "depends_on",
            "description",
            "key",
            "priority",
            "title"
        ])
    );
    assert_eq!(
        task["properties"]["description"]["type"],
        json!(["string", "null"])
    );
    assert!(
        task["properties"]["key"].get("pattern").is_none(),
        "checked here, not on the wire"
    );
    // The orchestrator's profile asks for medium reasoning: adaptive thinking at that effort.
    assert_eq!(body["output_config"]["effort"], "medium");
    assert_eq!(body["thinking"], json!({"type": "adaptive"}));
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(
        body["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(
        body["messages"][0]["content"][0],
        json!({"type": "text", "text": "Build a recipe app for keto dieters"})
    );
    Ok(())
}

#[tokio::test]
async fn a_model_that_needs_a_forced_tool_gets_its_answer_through_one() -> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::ok("anthropic-forced-tool.json")]).await?;
    let mut request = plan_request("Build a recipe app for keto dieters");
    request.capabilities.structured_output = StructuredOutput::ForcedTool;

    let response = client(&server).complete(&request).await?;
    let (reply, _) = planner::parse_plan(&response, PlanLimits::default())?;

    assert_eq!(reply.product, "Keto recipe app");
    let body = &server.received()[0].body;
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "autocrew_plan"})
    );
    assert!(
        body.get("thinking").is_none(),
        "a forced tool and thinking do not go together"
    );
    assert_no_sampling(body);
    Ok(())
}

#[tokio::test]
async fn tool_use_thinking_and_tool_result_blocks_round_trip_with_strict_tools()
-> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::ok("anthropic-tool-use.json")]).await?;
    let thinking =
        json!({"type": "thinking", "thinking": "Read the brand first.", "signature": "sig-1"});
    let request = LlmRequest {
        model: "claude-sonnet-5-5".into(),
        system: "You are a senior mobile developer.".into(),
        messages: vec![
            Message::user("Write the README."),
            Message {
                role: Role::Assistant,
                content: vec![
                    Content::Reasoning {
                        provider: "anthropic".into(),
                        data: thinking.clone(),
                    },
                    Content::Reasoning {
                        provider: "gemini".into(),
                        data: json!({"thoughtSignature": "x"}),
                    },
                    Content::ToolUse {
                        id: "toolu_0".into(),
                        name: "read_file".into(),
                        input: json!({"path": "brand.md"}),
                    },
                ],
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
            input_schema: json!({"type": "object", "required": ["path"],
                "properties": {"path": {"type": "string", "maxLength": 200}, "mode": {"type": "string"}}}),
        }],
        max_tokens: 2048,
        temperature: autocrew_shared::domain::Decimal::parse("0.3").ok(),
        capabilities: autocrew_tests::shipped("anthropic", "claude-sonnet-5-5"),
        ..LlmRequest::default()
    };

    let response = client(&server).complete(&request).await?;

    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert!(
        matches!(&response.content[0], Content::Reasoning { data, .. } if data["signature"] == "ErUBCkYIBRgCIkBx8dT0sOuQz")
    );
    assert_eq!(
        response.content[2],
        Content::ToolUse {
            id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
            name: "write_file".into(),
            input: json!({"path": "README.md", "content": "# Keto recipes"}),
        }
    );
    assert_eq!(response.usage.cache_read, 1536);
    let body = &server.received()[0].body;
    assert_no_sampling(body);
    assert_eq!(
        body["messages"][1]["content"],
        json!([thinking, {"type": "tool_use", "id": "toolu_0", "name": "read_file", "input": {"path": "brand.md"}}]),
        "the thinking block goes back unchanged, another provider's reasoning not at all"
    );
    assert_eq!(
        body["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_0", "content": "no such file", "is_error": true})
    );
    assert!(body.get("tool_choice").is_none() && body.get("output_config").is_none());
    let tool = &body["tools"][0];
    assert_eq!(tool["strict"], true);
    assert_eq!(
        tool["input_schema"],
        json!({"type": "object", "additionalProperties": false, "required": ["mode", "path"],
            "properties": {"path": {"type": "string"}, "mode": {"type": ["string", "null"]}}})
    );
    assert_eq!(tool["cache_control"], json!({"type": "ephemeral"}));
    Ok(())
}

#[tokio::test]
async fn a_deprecated_parameter_is_a_configuration_error_naming_model_and_parameter()
-> anyhow::Result<()> {
    let refusal = r#"{"type":"error","error":{"type":"invalid_request_error","message":"`temperature` is deprecated for this model."}}"#;
    let server = ReplayServer::start(vec![Recorded::json(400, refusal)]).await?;

    let error = client(&server)
        .complete(&plan_request("Build a CRM"))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, LlmError::Misconfigured { model, parameter, .. } if model == "claude-sonnet-5-5" && parameter == "temperature"),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("configuration error"), "{error}");
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

/// The orchestrator's request from the shipped profile, for Claude Sonnet 5.5 with its
/// shipped capabilities (as the gateway sets them).
fn plan_request(command: &str) -> LlmRequest {
    let routing = autocrew_shared::domain::routing::RoutingPolicy::builtin().expect("routing");
    let profiles = autocrew_shared::crew::AgentProfiles::builtin(&routing).expect("profiles");
    let mut request = planner::plan_request(
        profiles.get(autocrew_shared::domain::AgentKind::Orchestrator),
        command,
        &Default::default(),
    );
    request.model = "claude-sonnet-5-5".into();
    request.capabilities = autocrew_tests::shipped("anthropic", "claude-sonnet-5-5");
    request
}
