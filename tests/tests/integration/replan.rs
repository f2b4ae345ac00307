//! Re-planning through moto's Step Functions and SQS: a task that fails for good, an
//! agent's `finish` saying the plan must change, and a user's message amending the running
//! plan each make the orchestrator replace only the tasks that have not started; completed
//! work is never redone; revisions stop at their bound, and each is a `plan_revised` event.

use crate::api::{SAMPLE_TOKEN, api_on, call, event, project, user};
use crate::run_control::play_until_ended;
use async_trait::async_trait;
use autocrew_api::Route;
use autocrew_shared::crew::planner::{REVISION_PREAMBLE, RevisionContext};
use autocrew_shared::domain::events::EventBody;
use autocrew_shared::domain::records::Task;
use autocrew_shared::domain::revision::{MAX_REVISIONS, PlanRevised};
use autocrew_shared::domain::{RunId, RunStatus, TaskStatus};
use autocrew_shared::ports::llm::{Content, LlmClient, LlmError, LlmRequest, LlmResponse};
use autocrew_shared::ports::{EventLog, StateMachine};
use autocrew_tests::{TestDb, reply, seed};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const PLAN: &str = r#"{"product": "Keto", "tasks": [
    {"key": "first", "agent": "developer", "title": "First"},
    {"key": "second", "agent": "marketer", "title": "Second", "depends_on": ["first"]},
    {"key": "third", "agent": "ops", "title": "Third", "depends_on": ["second"]},
    {"key": "side", "agent": "sales", "title": "Side", "depends_on": ["first"]}]}"#;

/// A model the test steers: it plans four tasks; an agent writes a file and finishes
/// (saying the plan must change when its task is `replan_from`), unless its key is in
/// `failing` (it answers with nothing: the task fails at once). A revision
/// redoes each failed task under a new key, rewires what waited on it, and drops `side`
/// when asked to by a message or a finish.
#[derive(Default)]
struct Replanner {
    failing: Vec<String>,
    replan_from: Option<String>,
    turns: Mutex<HashMap<String, u32>>,
    revisions: Mutex<Vec<RevisionContext>>,
}

impl Replanner {
    fn turns(&self, key: &str) -> u32 {
        self.turns
            .lock()
            .map(|t| t.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn revise(&self, context: &RevisionContext) -> Value {
        let taken: Vec<&str> = context.tasks.iter().map(|t| t.key.as_str()).collect();
        let redo = |key: &str| {
            (2..)
                .map(|n| format!("{}_v{n}", key.split("_v").next().unwrap_or(key)))
                .find(|k| !taken.contains(&k.as_str()))
                .unwrap_or_default()
        };
        let renamed: HashMap<&str, String> = context
            .tasks
            .iter()
            .filter(|t| t.status == "failed")
            .map(|t| (t.key.as_str(), redo(&t.key)))
            .collect();
        let drop_side = !context.reason.contains("failed");
        let mut tasks = Vec::new();
        for t in &context.tasks {
            let key = match (t.status.as_str(), renamed.get(t.key.as_str())) {
                ("failed", Some(new)) => new.clone(),
                ("pending" | "ready", _) if drop_side && t.key == "side" => continue,
                ("pending" | "ready", _) => t.key.clone(),
                _ => continue,
            };
            let deps: Vec<String> = t
                .depends_on
                .iter()
                .map(|d| {
                    renamed
                        .get(d.as_str())
                        .cloned()
                        .unwrap_or_else(|| d.clone())
                })
                .collect();
            tasks.push(json!({"key": key, "agent": t.agent, "title": t.title,
                "description": t.description, "depends_on": deps,
                "priority": t.priority, "complexity": t.complexity}));
        }
        json!({"product": context.product, "tasks": tasks})
    }
}

fn revision_of(request: &LlmRequest) -> Option<RevisionContext> {
    let texts: Vec<&str> = request
        .messages
        .iter()
        .flat_map(|m| m.content.iter())
        .filter_map(|c| match c {
            Content::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let at = texts.iter().position(|t| t.contains(REVISION_PREAMBLE))?;
    texts[at..].iter().find_map(|t| {
        let rest = t.split(REVISION_PREAMBLE).last().unwrap_or(t);
        serde_json::from_str(rest.trim()).ok()
    })
}

#[async_trait]
impl LlmClient for Replanner {
    fn provider(&self) -> &str {
        "anthropic"
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        if request.response_schema.is_some() {
            let text = match revision_of(request) {
                Some(context) => {
                    let answer = self.revise(&context);
                    if let Ok(mut seen) = self.revisions.lock() {
                        seen.push(context);
                    }
                    answer.to_string()
                }
                None => PLAN.to_owned(),
            };
            return Ok(reply(
                "anthropic",
                request,
                vec![Content::Text { text }],
                (10, 20),
            ));
        }
        let key = request
            .messages
            .first()
            .and_then(|m| {
                m.content.iter().find_map(|c| match c {
                    Content::Text { text } => serde_json::from_str::<Value>(text).ok(),
                    _ => None,
                })
            })
            .and_then(|c| c["task_key"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if let Ok(mut turns) = self.turns.lock() {
            *turns.entry(key.clone()).or_default() += 1;
        }
        let content = if self.failing.contains(&key) {
            vec![Content::Text {
                text: String::new(),
            }]
        } else {
            let mut finish = json!({"summary": format!("{key} done")});
            if self.replan_from.as_deref() == Some(key.as_str()) {
                finish["replan"] = json!("the side task is not needed: the research covers it");
            }
            vec![
                Content::ToolUse {
                    id: "w".into(),
                    name: "write_file".into(),
                    input: json!({"path": format!("{key}.md"), "content": format!("# {key}")}),
                },
                Content::ToolUse {
                    id: "f".into(),
                    name: "finish".into(),
                    input: finish,
                },
            ]
        };
        Ok(reply("anthropic", request, content, (10, 20)))
    }
}

fn by_key(tasks: &[Task]) -> HashMap<String, Task> {
    tasks.iter().map(|t| (t.key.clone(), t.clone())).collect()
}

async fn revisions(
    db: &TestDb,
    project: autocrew_shared::domain::ProjectId,
) -> anyhow::Result<Vec<PlanRevised>> {
    let log = autocrew_shared::adapters::postgres::PgEventLog::new(db.pool.clone());
    Ok(log
        .since(project, 0, 1000)
        .await?
        .into_iter()
        .filter_map(|e| match &e.body {
            EventBody::PlanRevised(r) => Some(r.clone()),
            _ => None,
        })
        .collect())
}

async fn run_with(
    db: &TestDb,
    model: Arc<Replanner>,
) -> anyhow::Result<(
    crate::pipeline::Pipeline,
    autocrew_tests::Seeded,
    autocrew_shared::domain::records::Run,
)> {
    let p = crate::pipeline::pipeline(db, Some((model, "claude-sonnet-5-5"))).await?;
    let seeded = seed(db, 4).await?;
    p.sfn
        .start(
            &p.state_machine,
            &seeded.run.execution_name,
            &json!({"run_id": seeded.run.id}),
        )
        .await?;
    let ended = play_until_ended(&p, seeded.run.id).await?;
    Ok((p, seeded, ended))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_fails_for_good_is_redone_under_a_new_key_and_only_work_not_started_changes()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let model = Arc::new(Replanner {
        failing: vec!["second".into()],
        ..Replanner::default()
    });
    let (p, seeded, ended) = run_with(&db, model.clone()).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let tasks = by_key(&p.ctx.tasks.run_tasks(seeded.run.id).await?);
    let revised = revisions(&db, seeded.run.project_id).await?;
    let [one] = revised.as_slice() else {
        anyhow::bail!("one revision: {revised:?}")
    };
    assert_eq!(one.round, 1);
    assert!(one.reason.contains("task second failed"), "{}", one.reason);
    assert_eq!(
        (&one.added, &one.changed, &one.removed, &one.replaced),
        (
            &vec!["second_v2".to_owned()],
            &vec!["third".to_owned()],
            &vec![],
            &vec!["second".to_owned()]
        )
    );
    let third = one.tasks.iter().find(|t| t.key == "third");
    assert_eq!(
        third.map(|t| t.depends_on.clone()),
        Some(vec!["second_v2".to_owned()])
    );
    // The orchestrator saw the run as it stood: first done, second failed, third waiting.
    let seen = model
        .revisions
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let status = |key: &str| {
        seen[0]
            .tasks
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.status.clone())
    };
    assert_eq!(status("first").as_deref(), Some("completed"));
    assert_eq!(status("second").as_deref(), Some("failed"));
    assert_eq!(status("third").as_deref(), Some("pending"));
    // Completed work was kept, never re-run; the redo and what waited on it ran.
    assert_eq!(
        (tasks["first"].status, model.turns("first")),
        (TaskStatus::Completed, 1)
    );
    assert_eq!(tasks["second"].status, TaskStatus::Replaced);
    assert_eq!(tasks["second_v2"].status, TaskStatus::Completed);
    assert_eq!(tasks["third"].status, TaskStatus::Completed);
    assert_eq!(model.turns("third"), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_stop_at_their_bound_and_the_last_failure_blocks_what_waits_on_it()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let model = Arc::new(Replanner {
        failing: vec!["second".into(), "second_v2".into(), "second_v3".into()],
        ..Replanner::default()
    });
    let (p, seeded, ended) = run_with(&db, model.clone()).await?;

    assert_eq!(ended.status, RunStatus::Failed, "{:?}", ended.error);
    let revised = revisions(&db, seeded.run.project_id).await?;
    assert_eq!(revised.len() as u32, MAX_REVISIONS, "{revised:?}");
    assert_eq!(revised[1].added, ["second_v3"]);
    assert_eq!(revised[1].replaced, ["second_v2"]);
    let tasks = by_key(&p.ctx.tasks.run_tasks(seeded.run.id).await?);
    assert_eq!(tasks["second_v3"].status, TaskStatus::Failed);
    assert_eq!(tasks["third"].status, TaskStatus::Blocked);
    assert_eq!(
        (tasks["first"].status, model.turns("first")),
        (TaskStatus::Completed, 1)
    );
    assert_eq!(
        (tasks["side"].status, model.turns("side")),
        (TaskStatus::Completed, 1)
    );
    let error = ended.error.unwrap_or_default();
    assert!(error.contains("second_v3"), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_saying_the_plan_must_change_gets_the_tasks_not_started_revised()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let model = Arc::new(Replanner {
        replan_from: Some("first".into()),
        ..Replanner::default()
    });
    let (p, seeded, ended) = run_with(&db, model.clone()).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let revised = revisions(&db, seeded.run.project_id).await?;
    let [one] = revised.as_slice() else {
        anyhow::bail!("one revision: {revised:?}")
    };
    assert!(
        one.reason
            .contains("first (developer) says the plan must change"),
        "{}",
        one.reason
    );
    assert_eq!(one.removed, ["side"]);
    assert!(one.added.is_empty() && one.replaced.is_empty(), "{one:?}");
    let tasks = by_key(&p.ctx.tasks.run_tasks(seeded.run.id).await?);
    assert_eq!(tasks["side"].status, TaskStatus::Replaced);
    assert_eq!(model.turns("side"), 0, "a removed task never runs");
    assert_eq!(
        (tasks["first"].status, model.turns("first")),
        (TaskStatus::Completed, 1)
    );
    assert_eq!(tasks["third"].status, TaskStatus::Completed);
    Ok(())
}

/// Plays the pipeline until `done` holds for the run's tasks.
async fn play_until(
    p: &crate::pipeline::Pipeline,
    run: RunId,
    done: impl Fn(&HashMap<String, Task>) -> bool,
) -> anyhow::Result<()> {
    use autocrew_runner::mapping::poll_once;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "not reached within 60 s"
        );
        // Looked at after each step's delivery: one pass over the queues may run a run.
        for (step, mapping) in &p.mappings {
            if done(&by_key(&p.ctx.tasks.run_tasks(run).await?)) {
                return Ok(());
            }
            poll_once(
                &p.sqs,
                mapping,
                "us-east-1",
                std::time::Duration::ZERO,
                |event| {
                    autocrew_steps::handle_batch(
                        &p.ctx,
                        *step,
                        event,
                        autocrew_tests::lambda_deadline(),
                    )
                },
            )
            .await?;
        }
    }
}

fn amend(
    token: &str,
    project: &str,
    run: RunId,
    text: &str,
) -> anyhow::Result<lambda_http::Request> {
    let body = json!({"text": text, "amend_run_id": run}).to_string();
    Ok(event(
        "apigw-post-message.json",
        &[
            (SAMPLE_TOKEN, token),
            ("6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21", project),
        ],
    )?
    .map(|_| lambda_http::Body::Text(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_amends_the_running_plan_of_its_owner_only() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let model = Arc::new(Replanner::default());
    let p = crate::pipeline::pipeline(&db, Some((model.clone(), "claude-sonnet-5-5"))).await?;
    let (state, p) = api_on(&db, p, |_| {}).await?;
    let ana = user(&state, "ana@example.com").await?;
    // A subscriber: the test's model is priced (sign-up gives the free plan).
    let ana_id = db
        .pool
        .get()
        .await?
        .query_one("SELECT id FROM users", &[])
        .await?
        .get(0);
    autocrew_tests::funds::fund(&db.pool, autocrew_shared::domain::UserId(ana_id), 2000).await?;
    let keto = project(&state, &ana).await?;
    let request = event(
        "apigw-post-command.json",
        &[
            (SAMPLE_TOKEN, ana.as_str()),
            ("6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21", keto.as_str()),
        ],
    )?;
    let (status, started) = call(&state, Route::PostCommand, request).await?;
    assert_eq!(status, 202, "{started}");
    let run = RunId::parse("run_id", started["run_id"].as_str().unwrap_or_default())?;
    // The plan is accepted: "first" is on its way, the rest waits for it.
    play_until(&p, run, |t| !t.is_empty()).await?;

    // Bo cannot amend Ana's run; Ana can, once.
    let bo = user(&state, "bo@example.com").await?;
    let (status, _) = call(&state, Route::PostMessage, amend(&bo, &keto, run, "Stop")?).await?;
    assert_eq!(status, 404);
    let text = "Drop the side task: we have no sales team yet";
    let (status, amended) =
        call(&state, Route::PostMessage, amend(&ana, &keto, run, text)?).await?;
    assert_eq!(
        (status, amended["revision"].as_str()),
        (202, Some("asked")),
        "{amended}"
    );
    let (status, again) = call(&state, Route::PostMessage, amend(&ana, &keto, run, text)?).await?;
    assert_eq!(status, 409, "a revision is under way: {again}");

    let ended = play_until_ended(&p, run).await?;
    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let project_id = state
        .projects
        .project(autocrew_shared::domain::ProjectId::parse("project", &keto)?)
        .await?
        .id;
    let revised = revisions(&db, project_id).await?;
    let [one] = revised.as_slice() else {
        anyhow::bail!("one revision: {revised:?}")
    };
    assert_eq!(one.reason, format!("the user asked: {text}"));
    assert_eq!(one.removed, ["side"]);
    let tasks = by_key(&p.ctx.tasks.run_tasks(run).await?);
    assert_eq!(tasks["side"].status, TaskStatus::Replaced);
    assert_eq!(model.turns("first"), 1, "completed work is not redone");
    // An ended run's plan is not amended.
    let (status, late) = call(&state, Route::PostMessage, amend(&ana, &keto, run, text)?).await?;
    assert_eq!(status, 409, "{late}");
    Ok(())
}
