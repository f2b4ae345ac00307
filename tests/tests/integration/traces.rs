//! One run is one trace: the API call that starts it (with the caller's own `traceparent`),
//! the execution it starts, every step the state machine and the queues reach, and the
//! model calls, queue sends and executions inside them, all under the caller's trace id,
//! each span's parent inside the same trace. The local runner hosts every function; the
//! spans go to a trace file as JSON lines.

use crate::app_journey::{App, WithDatabase};
use anyhow::Context;
use autocrew_runner::{Options, start};
use autocrew_shared::telemetry::TraceContext;
use autocrew_tests::{TestDb, repo_root, unique};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runs_trace_follows_it_from_the_api_call_through_every_function() -> anyhow::Result<()> {
    let file = std::env::temp_dir().join(format!("autocrew-traces-{}.jsonl", std::process::id()));
    autocrew_shared::telemetry::trace_to_file(&file);
    let db = TestDb::migrated().await?;
    let options = Options {
        root: repo_root(),
        prefix: unique("traces"),
        port: 0,
        concurrency_per_queue: 10,
    };
    let runner = start(options, &WithDatabase(db.url())).await?;
    let app = App {
        http: reqwest::Client::new(),
        base: format!("http://{}", runner.addr),
    };
    let outcome = traced_run(&app, &file).await;
    runner.stop().await;
    outcome
}

async fn traced_run(app: &App, file: &std::path::Path) -> anyhow::Result<()> {
    let credentials = json!({"email": "ana@example.com", "password": "correct horse battery"});
    let session = app.post("/auth/signup", None, credentials, 201).await?;
    let token = session["access_token"]
        .as_str()
        .context("token")?
        .to_owned();
    // Publishing runs without asking, so the run ends on its own.
    let (status, _) = app
        .send(
            reqwest::Method::PUT,
            "/me/policies/publish",
            Some(&token),
            Some(json!({"approval": "auto"})),
            None,
        )
        .await?;
    anyhow::ensure!(status == 200, "the publish policy answered {status}");
    let project = app
        .post(
            "/projects",
            Some(&token),
            json!({"name": "Keto recipes"}),
            201,
        )
        .await?;
    let project_id = project["id"].as_str().context("project id")?;
    // The caller's own trace: what a traced app or gateway sends.
    let caller = TraceContext::new_root();
    let started = app
        .http
        .post(format!("{}/projects/{project_id}/commands", app.base))
        .bearer_auth(&token)
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .header("traceparent", caller.traceparent())
        .json(&json!({"command": "Build a recipe app for keto dieters", "budget_usd": 5}))
        .send()
        .await?;
    anyhow::ensure!(
        started.status() == 202,
        "the command answered {}",
        started.status()
    );
    let started: Value = started.json().await?;
    let run_id = started["run_id"].as_str().context("run id")?.to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let run = app.get(&format!("/runs/{run_id}"), &token).await?;
        let status = run["run"]["status"].as_str().unwrap_or_default().to_owned();
        if status == "succeeded" {
            break;
        }
        anyhow::ensure!(status != "failed", "the run failed: {run}");
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the run did not end: {run}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The notify step's spans close as it answers; give the file a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let trace_id = format!("{:032x}", caller.trace_id);
    let text = std::fs::read_to_string(file)?;
    let spans: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|span| span["trace_id"] == trace_id.as_str())
        .collect();
    let functions: BTreeSet<&str> = spans
        .iter()
        .filter_map(|span| span["function"].as_str())
        .collect();
    for function in [
        "api-post-command",
        "step-plan",
        "step-execute",
        "step-developer",
        "step-marketer",
        "step-compile",
        "step-notify",
    ] {
        assert!(
            functions.contains(function),
            "{function} is not in the run's trace; it has {functions:?}"
        );
    }
    let names: BTreeSet<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    for name in [
        "invocation",
        "sfn.start_execution",
        "sqs.send",
        "llm.call",
        "relay",
    ] {
        assert!(names.contains(name), "no {name} span in {names:?}");
    }
    // One tree: every span's parent is the caller's span or another span of the trace.
    let ids: HashSet<&str> = spans.iter().filter_map(|s| s["span_id"].as_str()).collect();
    let caller_span = format!("{:016x}", caller.span_id);
    for span in &spans {
        let parent = span["parent_id"].as_str().unwrap_or_default();
        assert!(
            parent == caller_span || ids.contains(parent),
            "{span} hangs from a span outside the trace"
        );
    }
    // Nothing of another trace claims the run's functions' invocations.
    let roots = spans
        .iter()
        .filter(|s| s["parent_id"] == caller_span.as_str())
        .count();
    assert_eq!(
        roots, 1,
        "the API call is the trace's one root under the caller"
    );
    Ok(())
}
