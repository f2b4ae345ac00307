//! Steering runs through moto's Step Functions and SQS, each step invoked as its event
//! source mapping would: resume after a failure, retry a task, cancel during a model turn,
//! deadlines, and the sweep repairing what a dead worker left.

use crate::pipeline::{Pipeline, pipeline};
use async_trait::async_trait;
use autocrew_runner::mapping::poll_once;
use autocrew_shared::adapters::postgres::{
    PgApprovalStore, PgIdempotencyStore, PgRunControl, PgRunStore,
};
use autocrew_shared::domain::records::{Run, Task};
use autocrew_shared::domain::{EventKind, MicroUsd, RunId, RunStatus, TaskStatus};
use autocrew_shared::ports::llm::{Content, LlmClient, LlmError, LlmRequest, LlmResponse};
use autocrew_shared::ports::{
    EventLog, ExecutionStatus, Queue, RunControl, RunStore, StateMachine, TaskReads, TaskStore,
};
use autocrew_steps::handle_batch;
use autocrew_sweep::SweepState;
use autocrew_tests::{Drive, TestDb, reply, seed, seed_running};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const PLAN: &str = r#"{"product": "Keto", "tasks": [
    {"key": "first", "agent": "developer", "title": "First"},
    {"key": "second", "agent": "marketer", "title": "Second", "depends_on": ["first"]},
    {"key": "third", "agent": "ops", "title": "Third", "depends_on": ["second"]}]}"#;

/// A model the test steers: it plans three tasks in a chain; an agent writes a file and
/// finishes, unless its task is listed as failing (it then answers with nothing, which
/// fails the task at once), or held (its first turn waits until released).
#[derive(Default)]
struct Steerable {
    failing: Mutex<HashSet<String>>,
    turns: Mutex<HashMap<String, u32>>,
    hold: Option<String>,
    entered: Notify,
    release: Notify,
}

impl Steerable {
    fn turns(&self, key: &str) -> u32 {
        self.turns
            .lock()
            .map(|t| t.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

#[async_trait]
impl LlmClient for Steerable {
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
            let text = PLAN.to_owned();
            return Ok(reply(
                "anthropic",
                request,
                vec![Content::Text { text }],
                (10, 20),
            ));
        }
        let first = request.messages.first().and_then(|m| {
            m.content.iter().find_map(|c| match c {
                Content::Text { text } => serde_json::from_str::<serde_json::Value>(text).ok(),
                _ => None,
            })
        });
        let key = first
            .as_ref()
            .and_then(|c| c["task_key"].as_str())
            .unwrap_or_default()
            .to_owned();
        let turn = {
            let mut turns = self.turns.lock().expect("turns");
            let n = turns.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        if self.hold.as_deref() == Some(key.as_str()) && turn == 1 {
            self.entered.notify_one();
            self.release.notified().await;
        }
        let failing = self
            .failing
            .lock()
            .map(|f| f.contains(&key))
            .unwrap_or(false);
        let content = if failing {
            vec![Content::Text {
                text: String::new(),
            }]
        } else {
            vec![
                Content::ToolUse {
                    id: "w".into(),
                    name: "write_file".into(),
                    input: json!({"path": format!("{key}.md"), "content": format!("# {key}")}),
                },
                Content::ToolUse {
                    id: "f".into(),
                    name: "finish".into(),
                    input: json!({"summary": format!("{key} done")}),
                },
            ]
        };
        Ok(reply("anthropic", request, content, (10, 20)))
    }
}

/// Plays every event source mapping until the run has ended and its latest execution too.
pub(crate) async fn play_until_ended(p: &Pipeline, run: RunId) -> anyhow::Result<Run> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut delivered = 0;
        for (step, mapping) in &p.mappings {
            delivered += poll_once(&p.sqs, mapping, "us-east-1", Duration::ZERO, |event| {
                handle_batch(&p.ctx, *step, event, autocrew_tests::lambda_deadline())
            })
            .await?;
        }
        let current = p.ctx.runs.run(run).await?;
        let arn = p
            .ctx
            .state_machine
            .execution_arn(&p.state_machine, &current.execution_name);
        let execution = p.sfn.describe(&arn).await.map(|(status, _)| status);
        if current.status.is_terminal()
            && matches!(&execution, Ok(status) if *status != ExecutionStatus::Running)
        {
            return Ok(current);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "run {run} did not end in 90 s: it is {}, its execution {execution:?}",
            current.status
        );
        if delivered == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Starts the seeded run's execution as the API's relay does.
async fn start(p: &Pipeline, run: &Run) -> anyhow::Result<()> {
    p.sfn
        .start(
            &p.state_machine,
            &run.execution_name,
            &json!({"run_id": run.id}),
        )
        .await?;
    Ok(())
}

fn by_key(tasks: &[Task]) -> HashMap<String, Task> {
    tasks.iter().map(|t| (t.key.clone(), t.clone())).collect()
}

async fn kinds(db: &TestDb, run: &Run) -> anyhow::Result<Vec<EventKind>> {
    Ok(
        autocrew_shared::adapters::postgres::PgEventLog::new(db.pool.clone())
            .since(run.project_id, 0, 1000)
            .await?
            .into_iter()
            .filter(|e| e.run_id == Some(run.id))
            .map(|e| e.kind())
            .collect(),
    )
}

/// A failed run, as `Steerable` with `second` failing leaves it.
async fn failed_run(db: &TestDb, model: Arc<Steerable>) -> anyhow::Result<(Pipeline, Run)> {
    model
        .failing
        .lock()
        .expect("failing")
        .insert("second".into());
    let p = pipeline(db, Some((model, "claude-sonnet-5-5"))).await?;
    let seeded = seed(db, 4).await?;
    start(&p, &seeded.run).await?;
    let run = play_until_ended(&p, seeded.run.id).await?;
    Ok((p, run))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_names_its_task_blocks_what_follows_and_resumes_without_redoing_completed_work()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let model = Arc::new(Steerable::default());
    let (p, failed) = failed_run(&db, model.clone()).await?;
    let before = by_key(&p.ctx.tasks.run_tasks(failed.id).await?);

    assert_eq!(failed.status, RunStatus::Failed);
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains("second"),
        "the run's error names the task: {error}"
    );
    assert_eq!(before["first"].status, TaskStatus::Completed);
    assert_eq!(before["second"].status, TaskStatus::Failed);
    assert_eq!(before["third"].status, TaskStatus::Blocked);
    let reason = before["third"].error_log.clone().unwrap_or_default();
    assert!(reason.contains("dependency second failed"), "{reason}");

    model.failing.lock().expect("failing").clear();
    let control = PgRunControl::new(db.pool.clone());
    let resumed = control
        .resume(failed.id, Some(MicroUsd::from_dollars(8)))
        .await?;
    p.ctx.relay.publish(resumed.effects).await;
    let run = play_until_ended(&p, failed.id).await?;
    let after = by_key(&p.ctx.tasks.run_tasks(failed.id).await?);

    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!((run.executions, run.budget), (2, MicroUsd::from_dollars(8)));
    assert_eq!(
        (after["first"].completed_at, after["first"].attempts),
        (before["first"].completed_at, before["first"].attempts),
        "the completed task was not touched"
    );
    assert_eq!(
        model.turns("first"),
        1,
        "and its model was not called again"
    );
    assert_eq!(after["second"].attempts, 2);
    assert!(after.values().all(|t| t.status == TaskStatus::Completed));
    let kinds = kinds(&db, &run).await?;
    assert!(kinds.contains(&EventKind::RunResumed));
    assert_eq!(kinds.last(), Some(&EventKind::RunCompleted));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_the_failed_task_of_a_failed_run_finishes_it() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let model = Arc::new(Steerable::default());
    let (p, failed) = failed_run(&db, model.clone()).await?;
    let second = by_key(&p.ctx.tasks.run_tasks(failed.id).await?)["second"].id;
    let control = PgRunControl::new(db.pool.clone());

    let first_is_not_failed = control
        .retry_task(by_key(&p.ctx.tasks.run_tasks(failed.id).await?)["first"].id)
        .await;
    model.failing.lock().expect("failing").clear();
    let retried = control.retry_task(second).await?;
    p.ctx.relay.publish(retried.effects).await;
    let run = play_until_ended(&p, failed.id).await?;

    assert!(
        matches!(first_is_not_failed, Err(autocrew_shared::ports::StoreError::Conflict(ref m)) if m.contains("only a failed task")),
        "{first_is_not_failed:?}"
    );
    assert_eq!(retried.value.status, TaskStatus::Ready);
    let events = autocrew_shared::adapters::postgres::PgEventLog::new(db.pool.clone())
        .since(run.project_id, 0, 1000)
        .await?;
    let trace: Vec<String> = events
        .iter()
        .map(|e| format!("{} {} {}", e.seq, e.kind(), e.payload()["key"]))
        .collect();
    assert_eq!(
        run.status,
        RunStatus::Succeeded,
        "{:?} {trace:#?}",
        run.error
    );
    assert!(kinds(&db, &run).await?.contains(&EventKind::TaskRetried));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_during_a_model_turn_stops_there_and_its_execution_is_stopped()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let model = Arc::new(Steerable {
        hold: Some("first".into()),
        ..Steerable::default()
    });
    let p = pipeline(&db, Some((model.clone(), "claude-sonnet-5-5"))).await?;
    let seeded = seed(&db, 4).await?;
    start(&p, &seeded.run).await?;
    let control = PgRunControl::new(db.pool.clone());

    let cancel = async {
        model.entered.notified().await;
        let cancelled = control.cancel(seeded.run.id, "cancelled by the user").await;
        if let Ok(changed) = &cancelled {
            p.ctx.relay.publish(changed.effects.clone()).await;
        }
        model.release.notify_one();
        cancelled
    };
    let (ended, cancelled) = tokio::join!(play_until_ended(&p, seeded.run.id), cancel);
    let run = ended?;
    let cancelled = cancelled?;
    let tasks = by_key(&p.ctx.tasks.run_tasks(run.id).await?);

    assert_eq!(cancelled.value.status, RunStatus::Cancelled);
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(tasks.values().all(|t| t.status == TaskStatus::Cancelled));
    assert_eq!(model.turns("first"), 1, "the turn in flight was the last");
    assert_eq!(model.turns("second"), 0, "nothing more was dispatched");
    let client = db.pool.get().await?;
    let files: i64 = client
        .query_one(
            "SELECT count(*) FROM artifacts WHERE run_id = $1 AND task_id IS NOT NULL",
            &[&run.id.0],
        )
        .await?
        .get(0);
    assert_eq!(files, 0, "the turn's tool calls did not run");
    let held: i64 = client
        .query_one(
            "SELECT count(*) FROM budget_reservations WHERE run_id = $1 AND status = 'held'",
            &[&run.id.0],
        )
        .await?
        .get(0);
    assert_eq!(held, 0, "the turn in flight settled its reservation");
    let arn = p
        .ctx
        .state_machine
        .execution_arn(&p.state_machine, &run.execution_name);
    // Aborted on AWS; moto only stops between states, so the failed wait ends it Failed.
    assert!(matches!(
        p.sfn.describe(&arn).await?.0,
        ExecutionStatus::Aborted | ExecutionStatus::Failed
    ));
    assert!(kinds(&db, &run).await?.contains(&EventKind::RunCancelled));
    let again = control.cancel(run.id, "again").await;
    assert!(
        matches!(
            again,
            Err(autocrew_shared::ports::StoreError::RunEnded { .. })
        ),
        "a finished run cannot be cancelled: {again:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_run_past_its_deadline_fails_with_a_clear_error_and_its_open_tasks_stop()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed_running(&db, 4).await?;
    let tasks = autocrew_shared::adapters::postgres::PgTaskStore::new(db.pool.clone());
    tasks
        .insert_graph(
            &seeded.run,
            &autocrew_shared::domain::TaskGraph::build(
                &[autocrew_tests::planned("a", "ops", &[])],
                autocrew_shared::domain::PlanLimits::default(),
            )?,
        )
        .await?;
    let client = db.pool.get().await?;
    client
        .execute(
            "UPDATE runs SET deadline_at = now() - interval '1 second' WHERE id = $1",
            &[&seeded.run.id.0],
        )
        .await?;
    let control = PgRunControl::new(db.pool.clone());

    let effects = control.fail_overdue(10).await?;
    let again = control.fail_overdue(10).await?;

    let run = PgRunStore::new(db.pool.clone()).run(seeded.run.id).await?;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .clone()
            .unwrap_or_default()
            .contains("passed its deadline")
    );
    assert_eq!(
        tasks.run_tasks(run.id).await?[0].status,
        TaskStatus::Cancelled
    );
    assert_eq!(
        effects.events.iter().map(|e| e.kind()).collect::<Vec<_>>(),
        [EventKind::RunFailed]
    );
    assert!(matches!(
        effects.outbox[0].message,
        autocrew_shared::services::Outgoing::StopExecution { .. }
    ));
    assert!(again.is_empty(), "a failed run is not failed twice");
    Ok(())
}

/// The sweep, over the pipeline's stores and relay.
pub(crate) fn sweep(p: &Pipeline, db: &TestDb) -> SweepState {
    SweepState {
        tasks: p.ctx.tasks.clone(),
        runs: p.ctx.runs.clone(),
        control: Arc::new(PgRunControl::new(db.pool.clone())),
        relay: p.ctx.relay.clone(),
        liveness: p.ctx.liveness,
        budgets: Arc::new(autocrew_shared::adapters::postgres::PgBudgetStore::new(
            db.pool.clone(),
        )),
        retention: Arc::new(autocrew_shared::adapters::postgres::PgRetention::new(
            db.pool.clone(),
        )),
        retention_policy: autocrew_shared::domain::retention::RetentionPolicy::embedded(),
        approvals: Arc::new(PgApprovalStore::new(db.pool.clone())),
        idempotency: Arc::new(PgIdempotencyStore::new(db.pool.clone())),
        limiter: Arc::new(autocrew_shared::adapters::postgres::PgRateLimiter::new(
            db.pool.clone(),
        )),
        deployments: p.ctx.deployments.clone(),
        billing: autocrew_shared::services::Billing::new(
            Arc::new(autocrew_shared::adapters::postgres::PgBilling::new(
                db.pool.clone(),
            )),
            autocrew_tests::funds::plans(),
            autocrew_shared::config::BillingConfig::from_env(&std::collections::HashMap::<
                String,
                String,
            >::new())
            .expect("the default billing configuration"),
        ),
        notices: p.ctx.deliverer.store.clone(),
        receipt_delay: p.ctx.deliverer.receipt_delay,
    }
}

#[tokio::test]
async fn the_sweep_sends_what_a_dead_worker_left_in_the_outbox_and_reclaims_its_attempt()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let p = pipeline(&db, None).await?;
    let seeded = seed_running(&db, 4).await?;
    let tasks = &p.ctx.tasks;
    let stored = tasks
        .insert_graph(
            &seeded.run,
            &autocrew_shared::domain::TaskGraph::build(
                &[
                    autocrew_tests::planned("left", "ops", &[]),
                    autocrew_tests::planned("dead", "sales", &[]),
                ],
                autocrew_shared::domain::PlanLimits::default(),
            )?,
        )
        .await?;
    // A worker dispatched both and died before sending; another started `dead` and died
    // without a heartbeat since.
    tasks.claim_ready(seeded.run.id).await?;
    tasks.start(stored[1].id).await?;
    let budgets = autocrew_shared::adapters::postgres::PgBudgetStore::new(db.pool.clone());
    use autocrew_shared::ports::BudgetStore;
    budgets
        .reserve(
            seeded.user.id,
            (Some(seeded.run.id), Some(stored[1].id)),
            MicroUsd(40_000),
        )
        .await?;
    let client = db.pool.get().await?;
    client
        .execute(
            "UPDATE outbox SET created_at = now() - interval '1 minute'",
            &[],
        )
        .await?;
    client
        .execute(
            "UPDATE task_attempts SET heartbeat_at = now() - interval '1 minute' WHERE task_id = $1",
            &[&stored[1].id.0],
        )
        .await?;
    let event = serde_json::from_str(&std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/eventbridge-schedule-sweep.json"
    ))?)?;

    let report = autocrew_sweep::handle(&sweep(&p, &db), event).await?;

    assert!(report.outbox_sent >= 2, "{report:?}");
    assert!(report.stale_attempt_effects >= 1, "{report:?}");
    let left: i64 = client
        .query_one("SELECT count(*) FROM outbox", &[])
        .await?
        .get(0);
    assert_eq!(left, 0, "everything was sent");
    let dead = tasks.task(stored[1].id).await?;
    assert_eq!((dead.status, dead.attempts), (TaskStatus::Queued, 1));
    let error: Option<String> = client
        .query_one(
            "SELECT error FROM task_attempts WHERE task_id = $1 AND attempt_no = 1",
            &[&stored[1].id.0],
        )
        .await?
        .get(0);
    assert!(
        error
            .unwrap_or_default()
            .contains("stopped sending heartbeats")
    );
    let ops_queue = p
        .ctx
        .relay
        .queues
        .url(autocrew_shared::domain::AgentKind::Ops)
        .unwrap_or_default()
        .to_owned();
    let received = p
        .sqs
        .receive(
            &ops_queue,
            10,
            Duration::from_secs(1),
            Duration::from_secs(30),
        )
        .await?;
    assert!(
        received
            .iter()
            .any(|m| m.body.contains(&stored[0].id.to_string())),
        "the task left unsent reached its queue"
    );
    Ok(())
}
