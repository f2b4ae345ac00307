//! A whole run through moto's Step Functions (the real ASL in `infra/statemachine/`) and
//! SQS queues, with each step invoked as its event source mapping would invoke it.

use anyhow::Context;
use async_trait::async_trait;
use autocrew_runner::mapping::{Mapping, poll_once};
use autocrew_runner::provision::{Outside, Provisioned, environment, provision};
use autocrew_runner::template::{Template, Trigger};
use autocrew_shared::adapters::aws::{SfnStateMachine, SqsQueue};
use autocrew_shared::adapters::postgres::{PgEventLog, PgRunStore};
use autocrew_shared::domain::models::ModelTable;
use autocrew_shared::domain::records::TokenUsage;
use autocrew_shared::domain::{AgentKind, EventKind, RunStatus, TaskStatus};
use autocrew_shared::ports::llm::{
    Content, LlmClient, LlmError, LlmRequest, LlmResponse, StopReason,
};
use autocrew_shared::ports::{EventLog, ExecutionStatus, Queue, RunStore, StateMachine};
use autocrew_steps::{Step, StepContext, StepSettings, handle_batch};
use autocrew_tests::{Seeded, TestDb, reply, sdk, seed, unique};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REGION: &str = "us-east-1";

/// The queues, bucket, table and state machine of one test, created in moto.
pub(crate) struct Pipeline {
    pub(crate) ctx: StepContext,
    pub(crate) sqs: SqsQueue,
    pub(crate) sfn: SfnStateMachine,
    pub(crate) mappings: Vec<(Step, Mapping)>,
    pub(crate) state_machine: String,
    pub(crate) connections_table: String,
    /// What was created in moto, by logical id.
    pub(crate) provisioned: Provisioned,
    /// The key connected accounts' tokens are sealed under (the API's too, in `api`).
    pub(crate) key_file: std::path::PathBuf,
}

/// Creates the template's resources in moto under a unique prefix, and the steps' context
/// from the template's environment, as the local runner does.
pub(crate) async fn pipeline(
    db: &TestDb,
    pinned: Option<(Arc<dyn LlmClient>, &str)>,
) -> anyhow::Result<Pipeline> {
    let sdk = sdk().await?;
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let template = Template::parse(&std::fs::read_to_string(root.join("template.yaml"))?)?;
    let key_file =
        std::env::temp_dir().join(format!("autocrew-test-keys/{}.key", uuid::Uuid::new_v4()));
    let outside = Outside::new(
        &template,
        REGION,
        [
            ("Stage".into(), "dev".into()),
            ("LogLevel".into(), "info".into()),
            // The steps get the test's own pool; the URL is only resolved, never used.
            (
                "DatabaseUrl".into(),
                std::env::var("DATABASE_URL").unwrap_or_default(),
            ),
            // Each pipeline seals connected accounts' tokens under a key of its own.
            ("ConnectionsKeyFile".into(), key_file.display().to_string()),
        ],
        // Nobody subscribes in these tests, so nothing is pushed.
        "http://127.0.0.1:9".into(),
    );
    let done = provision(&template, &sdk, &unique("t"), root, &outside).await?;
    let env = environment(&template, &done, &outside)?;
    let mut mappings = Vec::new();
    for function in template.functions()? {
        for trigger in &function.triggers {
            if let Trigger::Sqs {
                queue, batch_size, ..
            } = trigger
            {
                let step = Step::from_name(&function.binary).context("a step binary")?;
                let (url, arn, _) = done.queues[queue].clone();
                mappings.push((
                    step,
                    Mapping {
                        queue_url: url,
                        queue_arn: arn,
                        batch_size: *batch_size,
                        visibility: Duration::from_secs(30),
                    },
                ));
            }
        }
    }
    let settings = StepSettings::from_env(&env)?;
    let connections_table = settings.connections_table.clone();
    let mut ctx = StepContext::assemble(db.pool.clone(), &sdk, settings)?;
    if let Some((client, model)) = pinned {
        pin(&mut ctx, client, model, None);
    }
    let state_machine = env["STATE_MACHINE_ARN"].clone();
    Ok(Pipeline {
        ctx,
        sqs: SqsQueue::new(&sdk),
        sfn: SfnStateMachine::new(&sdk),
        mappings,
        state_machine,
        connections_table,
        provisioned: done,
        key_file,
    })
}

/// Every call goes to `client` with `model`, as `LLM_MODEL` pins it, priced by `prices`
/// when given (as `MODEL_TABLE_PATH` would).
pub(crate) fn pin(
    ctx: &mut StepContext,
    client: Arc<dyn LlmClient>,
    model: &str,
    prices: Option<ModelTable>,
) {
    let mut models = ctx.gateway.models().clone().pinned_to(client, model);
    if let Some(prices) = prices {
        models.table = Arc::new(prices);
    }
    ctx.gateway = ctx.gateway.with_models(models);
}

/// One pass over every event source mapping; returns how many messages were handled.
pub(crate) async fn pump(p: &Pipeline) -> anyhow::Result<usize> {
    let mut delivered = 0;
    for (step, mapping) in &p.mappings {
        delivered += poll_once(&p.sqs, mapping, REGION, Duration::ZERO, |event| {
            handle_batch(&p.ctx, *step, event, autocrew_tests::lambda_deadline())
        })
        .await?;
    }
    Ok(delivered)
}

/// Approves, as the run's user, each of its approvals still pending (the offline plan's
/// landing page asks to be published); returns how many.
pub(crate) async fn approve_pending(p: &Pipeline, seeded: &Seeded) -> anyhow::Result<usize> {
    let mut approved = 0;
    for approval in p.ctx.approvals.run_approvals(seeded.run.id).await? {
        if approval.status != autocrew_shared::domain::ApprovalStatus::Pending {
            continue;
        }
        let decided = p
            .ctx
            .approvals
            .decide(
                approval.id,
                seeded.run.user_id,
                autocrew_shared::domain::Decision::Approve,
                &approval.payload_hash,
                None,
            )
            .await?;
        p.ctx.relay.publish(decided.effects).await;
        approved += 1;
    }
    Ok(approved)
}

/// Starts the run's execution and plays every event source mapping until it ends,
/// approving what asks for approval.
pub(crate) async fn run_to_end(p: &Pipeline, seeded: &Seeded) -> anyhow::Result<ExecutionStatus> {
    let input = serde_json::json!({"run_id": seeded.run.id});
    let execution = p
        .sfn
        .start(&p.state_machine, &seeded.run.execution_name, &input)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let delivered = pump(p).await? + approve_pending(p, seeded).await?;
        let (status, _) = p.sfn.describe(&execution).await?;
        if status != ExecutionStatus::Running {
            return Ok(status);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the execution was still running after 90 s"
        );
        if delivered == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_becomes_a_completed_run_through_the_state_machine_and_the_queues()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let p = pipeline(&db, None).await?;

    let status = run_to_end(&p, &seeded).await?;

    assert_eq!(status, ExecutionStatus::Succeeded);
    let run = PgRunStore::new(db.pool.clone()).run(seeded.run.id).await?;
    assert_eq!(run.status, RunStatus::Succeeded);
    let tasks = p.ctx.tasks.run_tasks(run.id).await?;
    let agents: HashSet<AgentKind> = tasks.iter().map(|t| t.agent).collect();
    assert!(
        tasks.len() >= 6 && agents.len() >= 4,
        "{} tasks over {} agents",
        tasks.len(),
        agents.len()
    );
    assert!(
        tasks.iter().all(|t| t.status == TaskStatus::Completed),
        "every task completed"
    );

    // No task started before every dependency completed.
    let client = db.pool.get().await?;
    let completed_at: HashMap<_, _> = tasks.iter().map(|t| (t.id, t.completed_at)).collect();
    for task in &tasks {
        let first_start: chrono::DateTime<chrono::Utc> = client
            .query_one(
                "SELECT min(started_at) FROM task_attempts WHERE task_id = $1",
                &[&task.id.0],
            )
            .await?
            .get(0);
        for dep in &task.depends_on {
            let done = completed_at[dep].context("dependency without completion time")?;
            assert!(
                first_start >= done,
                "{} started before a dependency completed",
                task.key
            );
        }
    }

    // Every artifact is in S3 with the recorded size and checksum.
    let artifacts = p.ctx.artifacts.run_artifacts(run.id).await?;
    assert!(
        artifacts
            .iter()
            .any(|a| a.key.ends_with("app_skeleton/package.json"))
    );
    assert!(artifacts.iter().any(|a| a.key.ends_with("summary.json")));
    for artifact in &artifacts {
        let bytes = p.ctx.blobs.get(&artifact.key).await?;
        assert_eq!(bytes.len() as u64, artifact.size_bytes, "{}", artifact.key);
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            artifact.checksum_sha256,
            "{}",
            artifact.key
        );
    }

    // One ledger row per LLM call: the plan, then per task the offline agent's two turns
    // (its files, then finish), one more for the landing page's publish call, and for the
    // brand sheet two more turns and the two images they made (the logo and the icon).
    // Memory's embeddings are calls too: the plan's recall and the project's gist, and
    // each task's recall and what it remembered.
    let totals = p.ctx.ledger.run_totals(run.id).await?;
    assert_eq!(
        totals.calls,
        2 * tasks.len() as u64 + 2 + 4 + autocrew_tests::memory_embeddings(tasks.len())
    );
    for task in &tasks {
        let turns = match task.key.as_str() {
            "landing_copy" => 3,
            "brand_sheet" => 4,
            _ => 2,
        };
        assert_eq!(
            task.result.as_ref().map(|r| r["steps"].clone()),
            Some(serde_json::json!(turns)),
            "{}",
            task.key
        );
    }
    assert!(totals.usage.input > 0 && totals.usage.output > 0);

    // The event log is gapless and tells the whole story.
    let events = PgEventLog::new(db.pool.clone())
        .since(seeded.project.id, 0, 1000)
        .await?;
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=events.len() as i64).collect::<Vec<_>>()
    );
    let count = |kind: EventKind| events.iter().filter(|e| e.kind() == kind).count();
    assert_eq!(count(EventKind::RunPlanned), 1);
    // The landing task parked at its publish call and started again once approved.
    assert_eq!(count(EventKind::TaskStarted), tasks.len() + 1);
    assert_eq!(count(EventKind::ApprovalRequested), 1);
    assert_eq!(count(EventKind::ApprovalDecided), 1);
    assert_eq!(count(EventKind::ActionExecuted), 1);
    let published = p
        .ctx
        .blobs
        .get(&format!("sites/{}/landing/index.html", seeded.project.id))
        .await?;
    assert!(String::from_utf8_lossy(&published).contains("<h1>"));
    assert_eq!(count(EventKind::TaskCompleted), tasks.len());
    // Streamed output is pushed live, never logged: no chunk became a row.
    assert_eq!(count(EventKind::TaskProgress), 0);
    assert_eq!(
        events.last().map(|e| e.kind()),
        Some(EventKind::RunCompleted)
    );
    assert!(
        events
            .iter()
            .all(|e| e.payload().get("cost_micro_usd").is_some()),
        "each event carries the cost so far"
    );
    Ok(())
}

/// A model that always answers with the same text, as the provider it names.
struct Scripted(&'static str, String);

#[async_trait]
impl LlmClient for Scripted {
    fn provider(&self) -> &str {
        self.0
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let text = self.1.clone();
        Ok(reply(
            self.0,
            request,
            vec![Content::Text { text }],
            (10, 20),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cyclic_plan_fails_the_run_cleanly_and_dispatches_nothing() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let cyclic = r#"{"product": "Loop", "tasks": [
        {"key": "a", "agent": "developer", "title": "A", "depends_on": ["b"]},
        {"key": "b", "agent": "marketer", "title": "B", "depends_on": ["a"]}]}"#;
    let scripted = Arc::new(Scripted("anthropic", cyclic.into()));
    let p = pipeline(&db, Some((scripted, "claude-sonnet-5-5"))).await?;

    let status = run_to_end(&p, &seeded).await?;

    // Both calls (the plan and its one repair round) were priced from the table: 10 input
    // tokens at $2 and 20 output at $10 per million, each.
    assert_eq!(p.ctx.ledger.run_totals(seeded.run.id).await?.cost.0, 440);

    assert_eq!(status, ExecutionStatus::Failed);
    let run = PgRunStore::new(db.pool.clone()).run(seeded.run.id).await?;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains("after one repair round") && error.contains("cycle"),
        "{error}"
    );
    assert!(
        p.ctx.tasks.run_tasks(run.id).await?.is_empty(),
        "no task is stored from a rejected plan"
    );
    for (step, mapping) in &p.mappings {
        if let Step::Agent(_) = step {
            let left = p
                .sqs
                .receive(
                    &mapping.queue_url,
                    10,
                    Duration::ZERO,
                    Duration::from_secs(1),
                )
                .await?;
            assert!(left.is_empty(), "nothing was dispatched to {}", step.name());
        }
    }
    let events = PgEventLog::new(db.pool.clone())
        .since(seeded.project.id, 0, 100)
        .await?;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind() == EventKind::RunFailed)
            .count(),
        1
    );
    Ok(())
}

#[tokio::test]
async fn an_unreadable_message_is_reported_as_a_batch_item_failure() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let p = pipeline(&db, None).await?;
    let (_, plan) = p
        .mappings
        .iter()
        .find(|(s, _)| *s == Step::Plan)
        .context("plan queue")?;
    p.sqs
        .send(&plan.queue_url, "this is not a step message")
        .await?;

    let mut failures = Vec::new();
    poll_once(
        &p.sqs,
        plan,
        REGION,
        Duration::from_secs(1),
        |event| async {
            let response =
                handle_batch(&p.ctx, Step::Plan, event, autocrew_tests::lambda_deadline()).await;
            failures = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect();
            response
        },
    )
    .await?;

    assert_eq!(
        failures.len(),
        1,
        "the unreadable record is reported, not swallowed"
    );
    Ok(())
}

#[tokio::test]
async fn an_unreadable_message_lands_in_the_dead_letter_queue_after_the_redrive_limit()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let p = pipeline(&db, None).await?;
    let (_, plan) = p
        .mappings
        .iter()
        .find(|(s, _)| *s == Step::Plan)
        .context("plan queue")?;
    // Visibility 0: a failed record is visible again at once, instead of after the queue's
    // timeout, so the test controls time rather than sleeping through it.
    let plan = Mapping {
        visibility: Duration::ZERO,
        batch_size: 1,
        ..plan.clone()
    };
    p.sqs
        .send(&plan.queue_url, "this is not a step message")
        .await?;

    let mut deliveries = 0;
    for _ in 0..10 {
        deliveries += poll_once(&p.sqs, &plan, REGION, Duration::from_millis(200), |event| {
            handle_batch(&p.ctx, Step::Plan, event, autocrew_tests::lambda_deadline())
        })
        .await?;
    }

    assert_eq!(deliveries, 5, "maxReceiveCount in template.yaml is 5");
    let (dlq_url, _, _) = p
        .provisioned
        .queues
        .get("PlanDeadLetterQueue")
        .context("the plan DLQ")?;
    let dead = p
        .sqs
        .receive(dlq_url, 10, Duration::from_secs(1), Duration::from_secs(30))
        .await?;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "this is not a step message");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_a_price_is_refused_before_the_call_and_the_run_fails_saying_so()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let scripted = Arc::new(Scripted("anthropic", "{}".into()));
    let p = pipeline(&db, Some((scripted, "claude-unreleased-9"))).await?;

    let status = run_to_end(&p, &seeded).await?;

    assert_eq!(status, ExecutionStatus::Failed);
    let run = PgRunStore::new(db.pool.clone()).run(seeded.run.id).await?;
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains("no entry for model")
            && error.contains("claude-unreleased-9")
            && error.contains("anthropic"),
        "{error}"
    );
    let client = db.pool.get().await?;
    let row = client
        .query_one(
            "SELECT outcome::text, cost_micro_usd, error FROM llm_calls
             WHERE run_id = $1 AND model <> 'offline-hash-1536'",
            &[&seeded.run.id.0],
        )
        .await?;
    let (outcome, cost, recorded): (String, i64, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (outcome.as_str(), cost),
        ("refused", 0),
        "the refusal is on the ledger, with nothing spent"
    );
    assert!(recorded.unwrap_or_default().contains("no entry for model"));
    Ok(())
}

/// A model that plans one developer task and answers agents with a file and `finish`.
struct OneTaskModel;

#[async_trait]
impl LlmClient for OneTaskModel {
    fn provider(&self) -> &str {
        "anthropic"
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let planning = request
            .response_schema
            .as_ref()
            .and_then(|s| s["title"].as_str())
            == Some("autocrew_plan");
        if planning {
            let plan = r#"{"product": "Keto", "tasks": [{"key": "app", "agent": "developer", "title": "App"}]}"#;
            return Scripted("anthropic", plan.into()).complete(request).await;
        }
        let mut response = Scripted("anthropic", String::new())
            .complete(request)
            .await?;
        response.content = vec![
            Content::ToolUse {
                id: "t1".into(),
                name: "write_file".into(),
                input: serde_json::json!({"path": "a.md", "content": "a"}),
            },
            Content::ToolUse {
                id: "t2".into(),
                name: "finish".into(),
                input: serde_json::json!({"summary": "done"}),
            },
        ];
        response.stop_reason = StopReason::ToolUse;
        Ok(response)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_call_would_pass_the_run_budget_fails_with_budget_exceeded_and_is_not_retried()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    // Enough for the plan's worst case (about 47,000 micro-dollars), not for an agent's
    // (8,192 output tokens at $10 per million alone is 81,920).
    db.pool
        .get()
        .await?
        .execute(
            "UPDATE runs SET budget_micro_usd = 60000 WHERE id = $1",
            &[&seeded.run.id.0],
        )
        .await?;
    let p = pipeline(&db, Some((Arc::new(OneTaskModel), "claude-sonnet-5-5"))).await?;

    let status = run_to_end(&p, &seeded).await?;

    assert_eq!(status, ExecutionStatus::Failed);
    let tasks = p.ctx.tasks.run_tasks(seeded.run.id).await?;
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        (tasks[0].status, tasks[0].attempts),
        (TaskStatus::Failed, 1),
        "not retried"
    );
    assert!(
        tasks[0]
            .error_log
            .as_deref()
            .unwrap_or("")
            .contains("budget_exceeded"),
        "{:?}",
        tasks[0].error_log
    );
    let run = PgRunStore::new(db.pool.clone()).run(seeded.run.id).await?;
    assert!(run.spent <= run.budget && run.reserved == autocrew_shared::domain::MicroUsd::ZERO);
    assert_eq!(run.spent.0, 220, "only the plan's call was paid for");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_completes_on_an_openai_compatible_server_and_costs_match_its_token_counts()
-> anyhow::Result<()> {
    use autocrew_shared::adapters::llm::OpenAiClient;
    use autocrew_tests::replay::{Recorded, ReplayServer};
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let server = ReplayServer::start(vec![
        Recorded::ok("ollama-plan.json"),
        Recorded::sse("ollama-brand.sse"),
        Recorded::sse("ollama-landing.sse"),
    ])
    .await?;
    let mut p = pipeline(&db, None).await?;
    let client = OpenAiClient::compatible(
        "openai-compatible",
        &format!("{}/v1", server.url),
        None,
        Duration::from_secs(5),
    )?;
    // A self-hosted model is priced by the operator's table (MODEL_TABLE_PATH in production).
    let prices =
        autocrew_tests::model_table(&[("openai-compatible", "llama3.1:8b", "0.10", "0.20")])?;
    pin(&mut p.ctx, Arc::new(client), "llama3.1:8b", Some(prices));

    let status = run_to_end(&p, &seeded).await?;

    assert_eq!(status, ExecutionStatus::Succeeded);
    let tasks = p.ctx.tasks.run_tasks(seeded.run.id).await?;
    assert_eq!(
        tasks.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        ["brand_sheet", "landing_copy"]
    );
    let totals = p.ctx.ledger.run_totals(seeded.run.id).await?;
    assert_eq!(
        totals.usage,
        // And 34 words embedded offline for memory, at $0.
        TokenUsage {
            input: 1140 + 34,
            output: 295,
            cache_write: 0,
            cache_read: 0
        }
    );
    // 1140 input tokens at $0.10 and 295 output at $0.20 per million: 114 + 59 micro-dollars,
    // billed per call and rounded up per call: (50 + 24) + (30 + 16) + (34 + 19).
    assert_eq!(totals.cost.0, 173);
    let run = PgRunStore::new(db.pool.clone()).run(seeded.run.id).await?;
    assert_eq!(
        run.spent, totals.cost,
        "the budget was charged exactly what the ledger says"
    );
    let sent = server.received();
    assert_eq!(sent.len(), 3);
    assert!(
        sent.iter()
            .all(|r| r.path == "/v1/chat/completions" && r.body["model"] == "llama3.1:8b")
    );
    // The plan is asked for whole; the agents' turns stream.
    let streamed: Vec<bool> = sent.iter().map(|r| r.body["stream"] == true).collect();
    assert_eq!(streamed, [false, true, true]);
    let files = p.ctx.artifacts.run_artifacts(seeded.run.id).await?;
    assert!(
        files
            .iter()
            .any(|a| a.key.ends_with("brand_sheet/brand.md"))
    );
    Ok(())
}
