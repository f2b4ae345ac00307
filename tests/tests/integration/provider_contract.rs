//! The gateway keeps the providers' contract: a parameter a provider refuses stops the call
//! as a configuration error (no retry, no fallback down the chain), and the nulls a strict
//! answer uses for absent optional properties are absent again before anyone reads it.

use async_trait::async_trait;
use autocrew_shared::adapters::llm::{OpenAiClient, select};
use autocrew_shared::config::Secret;
use autocrew_shared::crew::planner;
use autocrew_shared::domain::records::Attribution;
use autocrew_shared::domain::routing::ModelRef;
use autocrew_shared::domain::{AgentKind, PlanLimits};
use autocrew_shared::ports::llm::{
    Content, LlmClient, LlmError, LlmRequest, LlmResponse, Message, ToolSpec,
};
use autocrew_shared::services::{Call, Gateway, GatewayError, GatewaySettings};
use autocrew_tests::replay::{Recorded, ReplayServer};
use autocrew_tests::{Seeded, TestDb, reply, seed};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn who(seeded: &Seeded) -> Attribution {
    Attribution {
        user_id: seeded.user.id,
        project_id: seeded.project.id,
        run_id: Some(seeded.run.id),
        task_id: None,
        agent: AgentKind::Orchestrator,
    }
}

fn call(seeded: &Seeded, request: LlmRequest) -> Call<'static> {
    Call {
        attribution: who(seeded),
        tier: "strong",
        request,
        on_text: None,
        semantic_scope: None,
        accept: None,
        share_cache: false,
        wait_until: None,
        on_wait: None,
    }
}

/// A model that answers with `text` (and a tool call with a null argument), counting calls.
struct Strict {
    provider: &'static str,
    text: String,
    calls: AtomicU32,
}

#[async_trait]
impl LlmClient for Strict {
    fn provider(&self) -> &str {
        self.provider
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let call = Content::ToolUse {
            id: "t1".into(),
            name: "write_file".into(),
            input: json!({"path": "a.md", "mode": null}),
        };
        Ok(reply(
            self.provider,
            request,
            vec![
                Content::Text {
                    text: self.text.clone(),
                },
                call,
            ],
            (10, 10),
        ))
    }
}

fn gateway(
    db: &TestDb,
    extra: Vec<Arc<dyn LlmClient>>,
    primary: (&str, &str),
    fallback: (&str, &str),
) -> Gateway {
    let mut models = select::from_env(&HashMap::new())
        .expect("offline setup")
        .models;
    for client in extra {
        models
            .providers
            .insert(client.provider().to_owned(), client);
    }
    models.primary = ModelRef {
        provider: primary.0.into(),
        model: primary.1.into(),
    };
    models.pinned = true;
    models.fallbacks = vec![ModelRef {
        provider: fallback.0.into(),
        model: fallback.1.into(),
    }];
    Gateway::new(
        models,
        autocrew_shared::adapters::gateway_stores(&db.pool),
        GatewaySettings {
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(10),
            cache_ttl: None,
            ..GatewaySettings::default()
        },
    )
}

#[tokio::test]
async fn a_parameter_the_provider_refuses_stops_the_call_as_a_configuration_error()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let unsupported = r#"{"error": {"message": "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
        "type": "invalid_request_error", "param": "reasoning_effort", "code": "unsupported_parameter"}}"#;
    let server = ReplayServer::start(vec![Recorded::json(400, unsupported)]).await?;
    let openai = OpenAiClient::openai(
        &format!("{}/v1", server.url),
        Secret::new("sk-test".into()),
        Duration::from_secs(2),
    )?;
    let fallback = Arc::new(Strict {
        provider: "anthropic",
        text: "{}".into(),
        calls: AtomicU32::new(0),
    });
    let gateway = gateway(
        &db,
        vec![Arc::new(openai), fallback.clone()],
        ("openai", "gpt-6-sol"),
        ("anthropic", "claude-sonnet-5-5"),
    );

    let result = gateway
        .call(call(
            &seeded,
            LlmRequest {
                messages: vec![Message::user("Plan")],
                max_tokens: 256,
                ..LlmRequest::default()
            },
        ))
        .await;

    let Err(GatewayError::Llm(error)) = result else {
        panic!("expected a configuration error, got {result:?}");
    };
    assert!(
        matches!(&error, LlmError::Misconfigured { model, parameter, .. } if model == "gpt-6-sol" && parameter == "reasoning_effort"),
        "{error:?}"
    );
    assert!(!error.is_retryable(), "the task fails, it is not retried");
    assert_eq!(server.received().len(), 1, "not retried on the same model");
    assert_eq!(
        fallback.calls.load(Ordering::SeqCst),
        0,
        "no silent fallback"
    );
    let rows = db
        .pool
        .get()
        .await?
        .query(
            "SELECT model, outcome::text, error FROM llm_calls WHERE run_id = $1",
            &[&seeded.run.id.0],
        )
        .await?;
    assert_eq!(rows.len(), 1);
    let recorded: String = rows[0].get(2);
    assert!(
        recorded.contains("reasoning_effort") && recorded.contains("gpt-6-sol"),
        "{recorded}"
    );
    Ok(())
}

#[tokio::test]
async fn the_nulls_of_a_strict_answer_become_absent_before_the_plan_and_tools_read_them()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let plan = json!({"product": "Keto", "tasks": [
        {"key": "app", "agent": "developer", "title": "App", "description": null,
         "depends_on": null, "priority": null, "complexity": "simple"}]});
    let model = Arc::new(Strict {
        provider: "anthropic",
        text: plan.to_string(),
        calls: AtomicU32::new(0),
    });
    let gateway = gateway(
        &db,
        vec![model],
        ("anthropic", "claude-sonnet-5-5"),
        ("offline", "offline-template-1"),
    );
    let mut request = LlmRequest {
        messages: vec![Message::user("Build a keto app")],
        max_tokens: 1024,
        response_schema: Some(planner::plan_schema()),
        ..LlmRequest::default()
    };
    request.tools = vec![ToolSpec {
        name: "write_file".into(),
        description: "Write a file".into(),
        input_schema: json!({"type": "object", "required": ["path"],
            "properties": {"path": {"type": "string"}, "mode": {"type": "string"}}}),
    }];

    let answer = gateway.call(call(&seeded, request)).await?;

    let text: serde_json::Value = serde_json::from_str(&answer.response.text())?;
    assert_eq!(
        text["tasks"][0],
        json!({"key": "app", "agent": "developer", "title": "App", "complexity": "simple"})
    );
    assert!(planner::parse_plan(&answer.response, PlanLimits::default()).is_ok());
    assert!(
        matches!(&answer.response.content[1], Content::ToolUse { input, .. } if *input == json!({"path": "a.md"}))
    );
    Ok(())
}
