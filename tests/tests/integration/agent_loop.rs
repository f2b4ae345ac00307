//! Whole runs that exercise the agent loop and the repair rounds: a provider that always
//! fails (the run completes on the fallback), a plan fixed in its repair round, tool
//! arguments fixed in theirs or failing after it, and the step bound.

use crate::pipeline::{pin, pipeline, run_to_end};
use async_trait::async_trait;
use autocrew_shared::adapters::llm::OpenAiClient;
use autocrew_shared::adapters::postgres::PgRunStore;
use autocrew_shared::domain::capabilities::StructuredOutput;
use autocrew_shared::domain::routing::ModelRef;
use autocrew_shared::domain::{RunStatus, TaskStatus};
use autocrew_shared::ports::llm::{Content, LlmClient, LlmError, LlmRequest, LlmResponse};
use autocrew_shared::ports::{ExecutionStatus, RunStore};
use autocrew_shared::services::GatewaySettings;
use autocrew_tests::replay::ReplayServer;
use autocrew_tests::{TestDb, reply, seed};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_always_fails_leaves_the_run_to_complete_on_the_fallback()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let broken = ReplayServer::start(Vec::new()).await?;
    let mut p = pipeline(&db, None).await?;
    let client = OpenAiClient::compatible(
        "broken",
        &format!("{}/v1", broken.url),
        None,
        Duration::from_secs(5),
    )?;
    let prices = autocrew_tests::model_table(&[("broken", "llama3.1:8b", "0.10", "0.20")])?;
    pin(&mut p.ctx, Arc::new(client), "llama3.1:8b", Some(prices));
    let mut models = p.ctx.gateway.models().clone();
    models.fallbacks = vec![ModelRef {
        provider: "offline".into(),
        model: "offline-template-1".into(),
    }];
    p.ctx.gateway = p
        .ctx
        .gateway
        .with_models(models)
        .with_settings(GatewaySettings {
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            ..GatewaySettings::default()
        });

    let status = run_to_end(&p, &seeded).await?;

    assert_eq!(status, ExecutionStatus::Succeeded);
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "SELECT provider, outcome::text, count(*) FROM llm_calls
             WHERE run_id = $1 AND model <> 'offline-hash-1536' GROUP BY 1, 2 ORDER BY 1, 2",
            &[&seeded.run.id.0],
        )
        .await?;
    let counts: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let tasks = p.ctx.tasks.run_tasks(seeded.run.id).await?;
    // The plan, two turns per task, the landing page's publish turn and the designer's two
    // image turns. The images themselves have no price in this test's table: each is
    // refused before it is made (and the designer told so).
    let calls = 2 + 2 * tasks.len() as i64 + 2;
    assert_eq!(
        counts,
        [
            ("broken".into(), "error".into(), 3 * calls),
            ("offline".into(), "ok".into(), calls),
            ("offline".into(), "refused".into(), 2)
        ],
        "every call tried the broken provider three times, then the fallback answered"
    );
    assert!(tasks.iter().all(|t| t.status == TaskStatus::Completed));
    Ok(())
}

/// Plans one developer task, then answers each agent turn from `turns`, by how many tool
/// results the request already carries.
struct Scripted {
    provider: &'static str,
    plans: Vec<&'static str>,
    turns: Vec<Vec<(&'static str, Value)>>,
    planned: AtomicU32,
    /// How the plan requests asked for structured output.
    structured: std::sync::Mutex<Vec<StructuredOutput>>,
}

impl Scripted {
    fn new(plans: Vec<&'static str>, turns: Vec<Vec<(&'static str, Value)>>) -> Self {
        Scripted {
            provider: "anthropic",
            plans,
            turns,
            planned: AtomicU32::new(0),
            structured: std::sync::Mutex::new(Vec::new()),
        }
    }
}

const ONE_TASK: &str = r#"{"product": "Keto", "tasks": [{"key": "app", "agent": "developer", "title": "App", "complexity": "simple"}]}"#;

#[async_trait]
impl LlmClient for Scripted {
    fn provider(&self) -> &str {
        self.provider
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        if request.response_schema.is_some() {
            if let Ok(mut seen) = self.structured.lock() {
                seen.push(request.capabilities.structured_output);
            }
            let n = self.planned.fetch_add(1, Ordering::SeqCst) as usize;
            let text = self.plans[n.min(self.plans.len() - 1)].to_owned();
            return Ok(reply(
                self.provider,
                request,
                vec![Content::Text { text }],
                (10, 20),
            ));
        }
        let turn = request
            .messages
            .iter()
            .filter(|m| {
                m.content
                    .iter()
                    .any(|c| matches!(c, Content::ToolResult { .. }))
            })
            .count();
        let calls = self.turns[turn.min(self.turns.len() - 1)]
            .iter()
            .enumerate()
            .map(|(i, (name, input))| Content::ToolUse {
                id: format!("t{turn}_{i}"),
                name: (*name).into(),
                input: input.clone(),
            })
            .collect();
        Ok(reply("anthropic", request, calls, (10, 20)))
    }
}

async fn run_with(
    model: Scripted,
) -> anyhow::Result<(
    TestDb,
    autocrew_tests::Seeded,
    ExecutionStatus,
    Vec<autocrew_shared::domain::records::Task>,
)> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let p = pipeline(&db, Some((Arc::new(model), "claude-sonnet-5-5"))).await?;
    let status = run_to_end(&p, &seeded).await?;
    let tasks = p.ctx.tasks.run_tasks(seeded.run.id).await?;
    Ok((db, seeded, status, tasks))
}

fn write(path: &str) -> (&'static str, Value) {
    ("write_file", json!({"path": path, "content": "# hello"}))
}

fn finish() -> (&'static str, Value) {
    ("finish", json!({"summary": "done"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_breaks_the_schema_is_fixed_in_its_repair_round() -> anyhow::Result<()> {
    // The first plan's task has no title.
    let broken = r#"{"product": "Keto", "tasks": [{"key": "app", "agent": "developer"}]}"#;
    let (db, seeded, status, tasks) = run_with(Scripted::new(
        vec![broken, ONE_TASK],
        vec![vec![write("a.md"), finish()]],
    ))
    .await?;

    assert_eq!(status, ExecutionStatus::Succeeded);
    assert_eq!(tasks.len(), 1);
    let repair: Value = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM llm_calls
             WHERE run_id = $1 AND task_id IS NULL AND model <> 'offline-hash-1536'",
            &[&seeded.run.id.0],
        )
        .await?
        .get::<_, i64>(0)
        .into();
    assert_eq!(repair, json!(2), "the plan and its repair round");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repair_round_still_fixes_a_plan_on_a_compatible_server_without_strict_output()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let broken = r#"{"product": "Keto", "tasks": [{"key": "app", "agent": "developer"}]}"#;
    let mut model = Scripted::new(vec![broken, ONE_TASK], vec![vec![write("a.md"), finish()]]);
    model.provider = "local";
    let model = Arc::new(model);
    let mut p = pipeline(&db, None).await?;
    let table = autocrew_tests::model_table(&[("local", "llama3.1:8b", "0.10", "0.20")])?;
    pin(&mut p.ctx, model.clone(), "llama3.1:8b", Some(table));

    let status = run_to_end(&p, &seeded).await?;

    assert_eq!(status, ExecutionStatus::Succeeded);
    let seen = model
        .structured
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    assert_eq!(
        seen,
        [StructuredOutput::JsonSchema, StructuredOutput::JsonSchema],
        "the plan and its repair round, each with a guiding schema only"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tool_arguments_get_one_repair_round() -> anyhow::Result<()> {
    // Turn 1 writes outside the task's folder; told why, turn 2 writes properly and finishes.
    let fixed = Scripted::new(
        vec![ONE_TASK],
        vec![
            vec![(
                "write_file",
                json!({"path": "../escape.md", "content": "x"}),
            )],
            vec![write("a.md"), finish()],
        ],
    );
    let (_db, _seeded, status, tasks) = run_with(fixed).await?;
    assert_eq!(status, ExecutionStatus::Succeeded);
    assert_eq!(
        tasks[0]
            .result
            .as_ref()
            .map(|r| r["artifacts"].as_array().map(Vec::len)),
        Some(Some(1))
    );

    // Bad twice: the task fails, not retried, with the validation error recorded.
    let stubborn = Scripted::new(
        vec![ONE_TASK],
        vec![vec![("write_file", json!({"path": "a.md"}))]],
    );
    let (db, seeded, status, tasks) = run_with(stubborn).await?;
    assert_eq!(status, ExecutionStatus::Failed);
    assert_eq!(
        (tasks[0].status, tasks[0].attempts),
        (TaskStatus::Failed, 1)
    );
    let error = tasks[0].error_log.clone().unwrap_or_default();
    assert!(
        error.contains("after one repair round")
            && error.contains("\"content\" is a required property"),
        "{error}"
    );
    let run = PgRunStore::new(db.pool.clone()).run(seeded.run.id).await?;
    assert_eq!(run.status, RunStatus::Failed);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_never_finishes_stops_at_its_step_limit() -> anyhow::Result<()> {
    let looping = Scripted::new(vec![ONE_TASK], vec![vec![write("a.md")]]);
    let (db, seeded, status, tasks) = run_with(looping).await?;

    assert_eq!(status, ExecutionStatus::Failed);
    let error = tasks[0].error_log.clone().unwrap_or_default();
    assert!(
        error.contains("step limit: 12 model turns without finish"),
        "{error}"
    );
    let turns: i64 = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM llm_calls WHERE task_id = $1 AND model <> 'offline-hash-1536'",
            &[&tasks[0].id.0],
        )
        .await?
        .get(0);
    assert_eq!(turns, 12, "the developer profile's max_steps");
    let _ = seeded;
    Ok(())
}

fn write_code(path: &str, content: &str) -> (&'static str, Value) {
    ("write_file", json!({"path": path, "content": content}))
}

const BROKEN_TSX: &str = "export default function App() {\n  return <Text>Keto</Text;\n}\n";
const FIXED_TSX: &str = "export default function App() {\n  return <Text>Keto</Text>;\n}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_does_not_parse_is_repaired_once_or_fails_the_task_with_the_parsers_message()
-> anyhow::Result<()> {
    // Turn 1's TSX does not parse: not stored, the model is told where; turn 2 fixes it.
    let fixed = Scripted::new(
        vec![ONE_TASK],
        vec![
            vec![
                write_code("app/index.tsx", BROKEN_TSX),
                write_code("app.json", "{\"expo\": {}}"),
            ],
            vec![
                write_code("app/index.tsx", FIXED_TSX),
                write("README.md"),
                finish(),
            ],
        ],
    );
    let (db, _seeded, status, tasks) = run_with(fixed).await?;
    assert_eq!(status, ExecutionStatus::Succeeded);
    let result = tasks[0].result.clone().unwrap_or_default();
    assert_eq!(result["files_checked"], 2, "{result}");
    assert_eq!(
        result["artifacts"].as_array().map(Vec::len),
        Some(3),
        "{result}"
    );
    let stored: Vec<String> = db
        .pool
        .get()
        .await?
        .query(
            "SELECT key FROM artifacts WHERE task_id = $1",
            &[&tasks[0].id.0],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        stored
            .iter()
            .filter(|k| k.ends_with("app/index.tsx"))
            .count(),
        1
    );

    // Broken twice: the task fails with the parser's message and position.
    let stubborn = Scripted::new(
        vec![ONE_TASK],
        vec![vec![write_code("app/index.tsx", BROKEN_TSX)]],
    );
    let (_db, _seeded, status, tasks) = run_with(stubborn).await?;
    assert_eq!(status, ExecutionStatus::Failed);
    assert_eq!(
        (tasks[0].status, tasks[0].attempts),
        (TaskStatus::Failed, 1)
    );
    let error = tasks[0].error_log.clone().unwrap_or_default();
    assert!(
        error.contains("app/index.tsx:2:")
            && error.contains("TypeScript syntax error")
            && error.contains("after one repair round"),
        "{error}"
    );

    // Told, then finishing without writing it again also fails the task.
    let careless = Scripted::new(
        vec![ONE_TASK],
        vec![
            vec![write_code("eas.json", "{\"build\": {,}}")],
            vec![finish()],
        ],
    );
    let (_db, _seeded, status, tasks) = run_with(careless).await?;
    assert_eq!(status, ExecutionStatus::Failed);
    let error = tasks[0].error_log.clone().unwrap_or_default();
    assert!(
        error.contains("eas.json:1:") && error.contains("never written again"),
        "{error}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_outside_the_agents_profile_is_refused_and_twice_fails_the_task()
-> anyhow::Result<()> {
    // The developer may not publish: told so, it writes and finishes instead.
    let publish = ("publish", json!({"path": "a.md"}));
    let turned = Scripted::new(
        vec![ONE_TASK],
        vec![vec![publish.clone()], vec![write("a.md"), finish()]],
    );
    let (_db, _seeded, status, tasks) = run_with(turned).await?;
    assert_eq!(status, ExecutionStatus::Succeeded);
    assert_eq!(tasks[0].status, TaskStatus::Completed);

    let stubborn = Scripted::new(vec![ONE_TASK], vec![vec![publish]]);
    let (_db, _seeded, status, tasks) = run_with(stubborn).await?;
    assert_eq!(status, ExecutionStatus::Failed);
    let error = tasks[0].error_log.clone().unwrap_or_default();
    assert!(
        error.contains("publish is not one of this agent's tools")
            && error.contains("read_upstream, write_file"),
        "{error}"
    );
    Ok(())
}
