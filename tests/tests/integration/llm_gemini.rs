//! The Gemini generateContent adapter against recorded responses, checking the request.

use autocrew_shared::adapters::llm::GeminiClient;
use autocrew_shared::config::Secret;
use autocrew_shared::crew::AgentTaskContext;
use autocrew_shared::crew::agents;
use autocrew_shared::domain::AgentKind;
use autocrew_shared::domain::records::TokenUsage;
use autocrew_shared::ports::llm::{
    Content, LlmClient, LlmError, LlmRequest, Message, Role, StopReason,
};
use autocrew_tests::replay::{Recorded, ReplayServer};
use serde_json::json;
use std::time::Duration;

fn client(server: &ReplayServer) -> GeminiClient {
    GeminiClient::new(
        &server.url,
        Secret::new("AIza-test".into()),
        Duration::from_secs(2),
    )
    .expect("client")
}

#[tokio::test]
async fn an_agent_answer_comes_back_as_json_with_usage_metadata_read() -> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::ok("gemini-structured.json")]).await?;
    let context = AgentTaskContext {
        agent: AgentKind::Designer,
        command: "Build a recipe app for keto dieters".into(),
        product: "Keto recipes".into(),
        task_key: "brand_sheet".into(),
        title: "Brand sheet".into(),
        description: String::new(),
        upstream: Vec::new(),
        recalled: Vec::new(),
    };

    let schema = json!({
        "title": "brand_output", "type": "object", "required": ["summary", "files"],
        "properties": {"summary": {"type": "string"}, "files": {"type": "array"}}
    });
    let request = LlmRequest {
        model: "gemini-2.5-flash".into(),
        system: "You are a brand designer.".into(),
        messages: vec![agents::first_message(&context)],
        tools: Vec::new(),
        max_tokens: 2048,
        temperature: autocrew_shared::domain::Decimal::parse("0.4").ok(),
        reasoning: Some(autocrew_shared::domain::capabilities::ReasoningEffort::Low),
        response_schema: Some(schema.clone()),
        capabilities: autocrew_tests::shipped("gemini", "gemini-2.5-flash"),
    };
    let response = client(&server).complete(&request).await?;
    let checker = autocrew_shared::crew::schema::Checker::new(&schema)?;
    let output = autocrew_shared::crew::schema::parse_checked(&checker, &response.text())?;

    assert_eq!(output["files"][0]["path"], "brand.md");
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    // 930 prompt tokens of which 512 cached; 41 answer + 300 thinking tokens billed as output.
    assert_eq!(
        response.usage,
        TokenUsage {
            input: 418,
            output: 341,
            cache_write: 0,
            cache_read: 512
        }
    );
    let sent = &server.received()[0];
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent.headers["x-goog-api-key"], "AIza-test");
    assert!(
        sent.body["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("brand designer")
    );
    assert_eq!(sent.body["contents"][0]["role"], "user");
    assert_eq!(
        sent.body["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(
        sent.body["generationConfig"]["responseJsonSchema"],
        json!({"type": "object", "required": ["summary", "files"],
            "properties": {"summary": {"type": "string"}, "files": {"type": "array"}}}),
        "JSON Schema, less what the decoder does not enforce (the title)"
    );
    assert_eq!(sent.body["generationConfig"]["maxOutputTokens"], 2048);
    assert_eq!(
        sent.body["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 1024}),
        "a 2.5 model's thinking budget from the profile's low reasoning"
    );
    assert!(
        sent.raw.contains(r#""temperature":0.4"#),
        "the decimal goes out as written: {}",
        sent.raw
    );
    Ok(())
}

#[tokio::test]
async fn function_declarations_go_out_and_function_calls_come_back_as_tool_use()
-> anyhow::Result<()> {
    let server = ReplayServer::start(vec![Recorded::ok("gemini-function-call.json")]).await?;
    let request = LlmRequest {
        model: "gemini-2.5-flash".into(),
        system: String::new(),
        messages: vec![
            Message::user("Write the README."),
            Message {
                role: Role::Assistant,
                content: vec![
                    Content::Reasoning {
                        provider: "gemini".into(),
                        data: json!({"thoughtSignature": "sig-c1"}),
                    },
                    Content::ToolUse {
                        id: "c1".into(),
                        name: "read_file".into(),
                        input: json!({"path": "a.md"}),
                    },
                ],
            },
            Message {
                role: Role::User,
                content: vec![Content::ToolResult {
                    tool_use_id: "c1".into(),
                    content: "# A".into(),
                    is_error: false,
                }],
            },
        ],
        tools: vec![autocrew_shared::crew::tools::spec("write_file").expect("write_file")],
        max_tokens: 512,
        temperature: autocrew_shared::domain::Decimal::parse("0.2").ok(),
        response_schema: None,
        capabilities: autocrew_tests::shipped("gemini", "gemini-2.5-flash"),
        ..LlmRequest::default()
    };

    let response = client(&server).complete(&request).await?;

    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.content[0],
        Content::Reasoning {
            provider: "gemini".into(),
            data: json!({"thoughtSignature": "CiQBVKhc7mT0sig2"})
        }
    );
    assert!(
        matches!(&response.content[1], Content::ToolUse { name, input, .. } if name == "write_file" && input["path"] == "README.md")
    );
    let body = &server.received()[0].body;
    let declaration = &body["tools"][0]["functionDeclarations"][0];
    assert_eq!(declaration["name"], "write_file");
    assert!(
        declaration.get("parameters").is_none(),
        "`parameters` takes Gemini's OpenAPI subset, which has no additionalProperties"
    );
    assert_eq!(
        declaration["parametersJsonSchema"],
        json!({"type": "object", "additionalProperties": false, "required": ["path", "content"],
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}}})
    );
    assert_eq!(
        body["contents"][1],
        json!({"role": "model", "parts": [{"functionCall": {"name": "read_file", "args": {"path": "a.md"}},
            "thoughtSignature": "sig-c1"}]}),
        "the thought signature goes back on the part it came with"
    );
    assert_eq!(
        body["contents"][2]["parts"][0],
        json!({"functionResponse": {"name": "read_file", "response": {"result": "# A"}}})
    );
    assert!(body.get("systemInstruction").is_none());
    Ok(())
}

#[tokio::test]
async fn quota_and_overload_errors_are_retryable_and_say_how_long_to_wait() -> anyhow::Result<()> {
    let server = ReplayServer::start(vec![
        Recorded::from_file(429, "gemini-error-429.json"),
        Recorded::from_file(503, "gemini-error-503.json"),
    ])
    .await?;
    let request = LlmRequest {
        model: "gemini-2.5-pro".into(),
        system: String::new(),
        messages: vec![Message::user("hi")],
        tools: Vec::new(),
        max_tokens: 16,
        temperature: None,
        response_schema: None,
        ..LlmRequest::default()
    };

    let quota = client(&server).complete(&request).await.unwrap_err();
    let overloaded = client(&server).complete(&request).await.unwrap_err();

    assert!(
        matches!(
            quota,
            LlmError::RateLimited {
                retry_after_secs: Some(19),
                ..
            }
        ),
        "{quota:?}"
    );
    assert!(
        matches!(overloaded, LlmError::Unavailable { status: 503, .. }),
        "{overloaded:?}"
    );
    assert!(quota.to_string().contains("gemini") && quota.to_string().contains("gemini-2.5-pro"));
    Ok(())
}
