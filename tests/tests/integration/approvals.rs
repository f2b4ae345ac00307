//! Approvals, as a user meets them: the offline plan's landing page asks to be published,
//! its task parks holding nothing, and the decision comes through the API routes with the
//! payloads in `events/`. Approve, reject, expire, a changed payload, someone else's
//! approval, a second decision, and a wait that survives cancelling and resuming the run.

use crate::api::{SAMPLE_TOKEN, api, call, event, project, user};
use crate::pipeline::{Pipeline, pump};
use crate::run_control::{play_until_ended, sweep};
use anyhow::Context;
use autocrew_api::{ApiState, Route};
use autocrew_shared::domain::{EventKind, RunId, RunStatus, TaskStatus, payload_hash};
use autocrew_shared::ports::{BlobError, Queue, RunControl};
use autocrew_tests::TestDb;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SAMPLE_PROJECT: &str = "6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21";
const SAMPLE_APPROVAL: &str = "3c1d9e2f-4b5a-4c6d-8e7f-9a0b1c2d3e4f";

/// A run of the offline plan whose landing task waits for the approval of its publish call.
struct Parked {
    state: ApiState,
    p: Pipeline,
    token: String,
    project: String,
    run: RunId,
    /// The `approval_requested` event's payload.
    request: Value,
}

impl Parked {
    fn approval_id(&self) -> String {
        self.request["approval_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn hash(&self) -> String {
        self.request["payload_hash"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn events(&self, kind: EventKind) -> anyhow::Result<Vec<Value>> {
        let project = autocrew_shared::domain::ProjectId::parse("project", &self.project)?;
        Ok(self
            .state
            .events
            .since(project, 0, 1000)
            .await?
            .into_iter()
            .filter(|e| e.kind() == kind)
            .map(|e| e.payload())
            .collect())
    }

    /// `POST /approvals/{id}` with `body`, as `token`.
    async fn decide(&self, token: &str, id: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let mut request: Value = serde_json::from_str(&std::fs::read_to_string(format!(
            "{}/../events/apigw-decide-approval.json",
            env!("CARGO_MANIFEST_DIR")
        ))?)?;
        request["body"] = json!(body.to_string());
        let text = request
            .to_string()
            .replace(SAMPLE_TOKEN, token)
            .replace(SAMPLE_APPROVAL, id);
        call(
            &self.state,
            Route::DecideApproval,
            lambda_http::request::from_str(&text)?,
        )
        .await
    }

    async fn get(&self, token: &str, id: &str) -> anyhow::Result<(u16, Value)> {
        let request = event(
            "apigw-get-approval.json",
            &[(SAMPLE_TOKEN, token), (SAMPLE_APPROVAL, id)],
        )?;
        call(&self.state, Route::GetApproval, request).await
    }

    async fn landing(&self) -> anyhow::Result<autocrew_shared::domain::records::Task> {
        self.p
            .ctx
            .tasks
            .run_tasks(self.run)
            .await?
            .into_iter()
            .find(|t| t.key == "landing_copy")
            .context("the offline plan has landing_copy")
    }

    /// Where the published page would be, and what it holds if it is there.
    async fn published(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let key = format!("sites/{}/landing/index.html", self.project);
        match self.p.ctx.blobs.get(&key).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(BlobError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Posts the demo command through the API and plays the queues until the landing task
/// has asked for approval and parked.
async fn parked(db: &TestDb) -> anyhow::Result<Parked> {
    let (state, p) = api(db).await?;
    let token = user(
        &state,
        &format!("{}@example.com", autocrew_tests::unique("ap")),
    )
    .await?;
    let project = project(&state, &token).await?;
    let swaps = [
        (SAMPLE_TOKEN, token.as_str()),
        (SAMPLE_PROJECT, project.as_str()),
    ];
    let (status, accepted) = call(
        &state,
        Route::PostCommand,
        event("apigw-post-command.json", &swaps)?,
    )
    .await?;
    anyhow::ensure!(status == 202, "post command answered {status}: {accepted}");
    let run = RunId::parse("run_id", accepted["run_id"].as_str().unwrap_or_default())?;
    let mut parked = Parked {
        state,
        p,
        token,
        project,
        run,
        request: Value::Null,
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        pump(&parked.p).await?;
        let asked = parked.events(EventKind::ApprovalRequested).await?;
        if let Some(request) = asked.into_iter().next()
            && parked.landing().await?.status == TaskStatus::AwaitingApproval
        {
            parked.request = request;
            return Ok(parked);
        }
        anyhow::ensure!(Instant::now() < deadline, "no approval was asked in 90 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_publication_runs_once_exactly_as_shown_and_its_link_serves_the_page()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let run = parked(&db).await?;
    let id = run.approval_id();

    // Parked: the attempt ended, nothing waits in the marketer's queue, nothing is held.
    let landing = run.landing().await?;
    let client = db.pool.get().await?;
    let attempt: String = client
        .query_one(
            "SELECT status::text FROM task_attempts WHERE task_id = $1 ORDER BY attempt_no DESC LIMIT 1",
            &[&landing.id.0],
        )
        .await?
        .get(0);
    assert_eq!(attempt, "parked");
    let queue = run.p.ctx.relay.queues.url(landing.agent).context("queue")?;
    let waiting = run
        .p
        .sqs
        .receive(queue, 10, Duration::ZERO, Duration::from_secs(1))
        .await?;
    assert!(waiting.is_empty(), "a parked task holds no message");
    let held: i64 = client
        .query_one(
            "SELECT count(*) FROM budget_reservations WHERE task_id = $1 AND status = 'held'",
            &[&landing.id.0],
        )
        .await?
        .get(0);
    assert_eq!(held, 0);

    // The user reads the exact action and its hash.
    let (status, shown) = run.get(&run.token, &id).await?;
    assert_eq!(status, 200, "{shown}");
    let payload = &shown["approval"]["payload"];
    assert_eq!(payload["action"], "publish");
    assert_eq!(payload["file"], "landing/index.html");
    assert_eq!(
        shown["approval"]["payload_hash"].as_str(),
        Some(payload_hash(payload).as_str())
    );
    assert_eq!(run.hash(), payload_hash(payload));

    // Another user sees nothing and decides nothing.
    let stranger = user(
        &run.state,
        &format!("{}@example.com", autocrew_tests::unique("st")),
    )
    .await?;
    assert_eq!(run.get(&stranger, &id).await?.0, 404);
    let approve = json!({"decision": "approve", "payload_hash": run.hash()});
    assert_eq!(run.decide(&stranger, &id, approve.clone()).await?.0, 404);
    // An unknown id, a malformed decision and a hash of another payload change nothing.
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        run.decide(&run.token, &unknown, approve.clone()).await?.0,
        404
    );
    let (status, body) = run
        .decide(
            &run.token,
            &id,
            json!({"decision": "maybe", "payload_hash": run.hash()}),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    let (status, body) = run
        .decide(
            &run.token,
            &id,
            json!({"decision": "approve", "payload_hash": "abc"}),
        )
        .await?;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("payload_hash")),
        "{body}"
    );
    let other = payload_hash(&json!({"action": "publish", "file": "evil.html"}));
    let (status, body) = run
        .decide(
            &run.token,
            &id,
            json!({"decision": "approve", "payload_hash": other}),
        )
        .await?;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("payload_hash"),
        "{body}"
    );
    assert_eq!(
        run.get(&run.token, &id).await?.1["approval"]["status"],
        "pending"
    );

    let (status, decided) = run.decide(&run.token, &id, approve.clone()).await?;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["approval"]["status"], "approved");
    let (status, again) = run.decide(&run.token, &id, approve).await?;
    assert_eq!(status, 409, "a second decision is refused: {again}");

    let ended = play_until_ended(&run.p, run.run).await?;
    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    assert_eq!(run.events(EventKind::ActionExecuted).await?.len(), 1);
    let landing = run.landing().await?;
    let summary = landing.result.as_ref().map(|r| r["summary"].to_string());
    assert!(
        summary.as_deref().unwrap_or("").contains("published at"),
        "{summary:?}"
    );
    let keys: i64 = client
        .query_one(
            "SELECT count(*) FROM idempotency_keys WHERE scope = 'tool' AND completed_at IS NOT NULL
             AND key = (SELECT call_key FROM approvals WHERE id = $1::text::uuid)",
            &[&id],
        )
        .await?
        .get(0);
    assert_eq!(keys, 1, "the call's idempotency key is completed");

    // The stable link serves exactly the approved bytes, to anyone.
    let bytes = run.published().await?.context("published")?;
    assert_eq!(
        autocrew_shared::domain::sha256_hex(&bytes),
        payload["content_sha256"].as_str().unwrap_or_default()
    );
    let link = payload["link"].as_str().unwrap_or_default();
    assert!(
        link.ends_with(&format!("/sites/{}/landing/index.html", run.project)),
        "{link}"
    );
    let site = event(
        "apigw-get-site.json",
        &[(SAMPLE_PROJECT, run.project.as_str())],
    )?;
    let response = autocrew_api::handle(&run.state, Route::GetSite, site).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("content-security-policy"));
    let served = match response.body() {
        lambda_http::Body::Binary(b) => b.clone(),
        lambda_http::Body::Text(t) => t.clone().into_bytes(),
        _ => Vec::new(),
    };
    assert_eq!(served, bytes);

    // The landing task's message delivered again (at least once) repeats nothing.
    run.p
        .sqs
        .send(
            queue,
            &json!({"run_id": run.run, "task_id": landing.id}).to_string(),
        )
        .await?;
    for _ in 0..3 {
        pump(&run.p).await?;
    }
    assert_eq!(run.events(EventKind::ActionExecuted).await?.len(), 1);
    assert_eq!(run.events(EventKind::ApprovalRequested).await?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_publication_is_not_done_and_the_task_finishes_saying_why() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let run = parked(&db).await?;
    let id = run.approval_id();

    let body = json!({"decision": "reject", "payload_hash": run.hash(), "reason": "not this week"});
    let (status, decided) = run.decide(&run.token, &id, body).await?;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["approval"]["status"], "rejected");

    let ended = play_until_ended(&run.p, run.run).await?;
    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let summary = run
        .landing()
        .await?
        .result
        .map(|r| r["summary"].to_string());
    let summary = summary.unwrap_or_default();
    assert!(
        summary.contains("publish not done") && summary.contains("not this week"),
        "{summary}"
    );
    assert!(run.published().await?.is_none(), "nothing was published");
    assert!(run.events(EventKind::ActionExecuted).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_approval_is_refused_and_the_sweep_lets_the_task_go_on_without_it()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let run = parked(&db).await?;
    let id = run.approval_id();
    db.pool
        .get()
        .await?
        .execute(
            "UPDATE approvals SET expires_at = now() - interval '1 second' WHERE id = $1::text::uuid",
            &[&id],
        )
        .await?;

    let approve = json!({"decision": "approve", "payload_hash": run.hash()});
    let (status, body) = run.decide(&run.token, &id, approve).await?;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("expired"),
        "{body}"
    );

    let event = serde_json::from_str(&std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/eventbridge-schedule-sweep.json"
    ))?)?;
    let report = autocrew_sweep::handle(&sweep(&run.p, &db), event).await?;
    assert_eq!(report.approvals_expired, 1);
    let ended = play_until_ended(&run.p, run.run).await?;
    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let summary = run
        .landing()
        .await?
        .result
        .map(|r| r["summary"].to_string());
    assert!(summary.unwrap_or_default().contains("expired"));
    assert!(run.published().await?.is_none());
    let decided = run.events(EventKind::ApprovalDecided).await?;
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["status"], "expired");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_after_its_approval_is_not_published() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let run = parked(&db).await?;
    let source = run.request["payload"]["source"]
        .as_str()
        .context("source")?
        .to_owned();
    run.p
        .ctx
        .blobs
        .put(&source, b"<h1>swapped</h1>".to_vec(), "text/html")
        .await?;

    let approve = json!({"decision": "approve", "payload_hash": run.hash()});
    assert_eq!(
        run.decide(&run.token, &run.approval_id(), approve).await?.0,
        200
    );
    let ended = play_until_ended(&run.p, run.run).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let summary = run
        .landing()
        .await?
        .result
        .map(|r| r["summary"].to_string());
    assert!(
        summary
            .unwrap_or_default()
            .contains("changed after it was approved"),
        "the agent was told"
    );
    assert!(
        run.published().await?.is_none(),
        "only approved bytes are published"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_survives_cancelling_and_resuming_the_run_with_the_same_approval()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let run = parked(&db).await?;
    let id = run.approval_id();
    let control = autocrew_shared::adapters::postgres::PgRunControl::new(db.pool.clone());

    let cancelled = control.cancel(run.run, "cancelled by the user").await?;
    run.p.ctx.relay.publish(cancelled.effects).await;
    assert_eq!(run.landing().await?.status, TaskStatus::Cancelled);
    let approve = json!({"decision": "approve", "payload_hash": run.hash()});
    let (status, body) = run.decide(&run.token, &id, approve.clone()).await?;
    assert_eq!(
        status, 409,
        "a stopped run's approval waits for a resume: {body}"
    );

    let resumed = control.resume(run.run, None).await?;
    run.p.ctx.relay.publish(resumed.effects).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while run.events(EventKind::ApprovalRequested).await?.len() < 2 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the request was not announced again"
        );
        pump(&run.p).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = run.events(EventKind::ApprovalRequested).await?;
    assert_eq!(
        again[1]["approval_id"], again[0]["approval_id"],
        "one approval per call"
    );
    assert_eq!(run.landing().await?.status, TaskStatus::AwaitingApproval);

    assert_eq!(run.decide(&run.token, &id, approve).await?.0, 200);
    let ended = play_until_ended(&run.p, run.run).await?;
    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    assert!(run.published().await?.is_some());
    Ok(())
}
