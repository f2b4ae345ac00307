//! A whole command, as a user runs it: the local runner hosts every function from
//! `template.yaml` over moto and Postgres, and the CLI's client drives it over HTTP and the
//! WebSocket, exactly as `make demo` does.

use anyhow::Context;
use autocrew_cli::run::{run, timings};
use autocrew_runner::{Options, start};
use autocrew_shared::adapters::aws::{S3BlobStore, SfnStateMachine};
use autocrew_shared::config::{Env, ProcessEnv};
use autocrew_shared::ports::{BlobStore, ExecutionStatus, StateMachine};
use autocrew_tests::{TestDb, sdk, unique};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The process environment with `DATABASE_URL` pointing at the test's own database.
struct WithDatabase(String);

impl Env for WithDatabase {
    fn get(&self, name: &str) -> Option<String> {
        if name == "DATABASE_URL" {
            Some(self.0.clone())
        } else {
            ProcessEnv.get(name)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_runs_to_completion_through_the_runner_and_is_followed_live_over_the_websocket()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let root = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let options = Options {
        root,
        prefix: unique("e2e"),
        port: 0,
        concurrency_per_queue: 10,
    };
    let runner = start(options, &WithDatabase(db.url())).await?;
    let base = format!("http://{}", runner.addr);

    let report = run(
        &base,
        "Build a recipe app for keto dieters",
        autocrew_cli::run::Following {
            quiet: true,
            timeout: Duration::from_secs(120),
            auto_approve: true,
            save_session: false,
            show_urls: false,
        },
    )
    .await;
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            runner.stop().await;
            return Err(e);
        }
    };

    assert!(report.succeeded, "the run failed: {}", report.run);
    let tasks = report.run["tasks"].as_array().context("tasks")?;
    let agents: HashSet<&str> = tasks.iter().filter_map(|t| t["agent"].as_str()).collect();
    assert!(tasks.len() >= 6 && agents.len() >= 4);
    assert!(
        tasks.iter().all(|t| t["status"] == "completed"),
        "every task completed"
    );

    // The WebSocket delivered every event of the project in order, with no gap.
    let seqs: Vec<i64> = report
        .events
        .iter()
        .filter_map(|e| e["seq"].as_i64())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(
        report.events.last().and_then(|e| e["kind"].as_str()),
        Some("run_completed")
    );

    // Each agent's output streamed live over the socket as it was written (not logged: no
    // sequence number).
    for task in tasks {
        let key = task["key"].as_str().unwrap_or("");
        let streamed: String = report
            .events
            .iter()
            .filter(|e| e["kind"] == "task_progress" && e["payload"]["key"] == key)
            .inspect(|e| assert!(e.get("seq").is_none(), "a live message has no seq"))
            .filter_map(|e| e["payload"]["delta"].as_str())
            .collect();
        assert!(
            streamed.contains("write_file") || streamed.contains("\"path\""),
            "{key}: {streamed:.200}"
        );
    }

    // No task started before all its dependencies completed, nor before it was queued.
    let at = |kind: &str, key: &str| {
        report
            .events
            .iter()
            .find(|e| e["kind"] == kind && e["payload"]["key"] == key)
            .and_then(|e| e["seq"].as_i64())
    };
    let keys: HashMap<&str, &str> = tasks
        .iter()
        .filter_map(|t| Some((t["id"].as_str()?, t["key"].as_str()?)))
        .collect();
    for task in tasks {
        let key = task["key"].as_str().unwrap_or("");
        let started = at("task_started", key).context("task_started")?;
        assert!(
            at("task_queued", key).context("task_queued")? < started,
            "{key} started before it was queued"
        );
        for dep in task["depends_on"].as_array().into_iter().flatten() {
            let dep_key = keys[dep.as_str().unwrap_or("")];
            assert!(
                at("task_completed", dep_key).context("dependency completed")? < started,
                "{key} started before {dep_key}"
            );
        }
    }

    // The execution succeeded, every artifact is in S3 as recorded, every call is priced.
    let sdk = sdk().await?;
    let arn = report.run["run"]["execution_arn"]
        .as_str()
        .context("execution arn")?;
    assert_eq!(
        SfnStateMachine::new(&sdk).describe(arn).await?.0,
        ExecutionStatus::Succeeded
    );
    let artifacts = report.run["artifacts"].as_array().context("artifacts")?;
    assert!(artifacts.len() > tasks.len());
    for artifact in artifacts {
        let key = artifact["key"].as_str().unwrap_or("");
        let bucket = artifact["url"]
            .as_str()
            .and_then(|u| u.split('/').nth(3))
            .context("bucket in the URL")?;
        let bytes = S3BlobStore::new(&sdk, bucket).get(key).await?;
        assert_eq!(
            bytes.len() as u64,
            artifact["size_bytes"].as_u64().unwrap_or(0),
            "{key}"
        );
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            artifact["checksum_sha256"].as_str().unwrap_or(""),
            "{key}"
        );
        let fetched = reqwest::get(artifact["url"].as_str().unwrap_or("")).await?;
        assert!(
            fetched.status().is_success(),
            "the presigned URL of {key} answers {}",
            fetched.status()
        );
    }
    assert_eq!(
        report.run["totals"]["calls"].as_u64(),
        Some(2 * tasks.len() as u64 + 2 + 4 + autocrew_tests::memory_embeddings(tasks.len())),
        "a ledger row per LLM call: the plan, two turns per agent (write files, finish), the landing page's publish turn, the designer's two image turns and two images, and memory's embeddings: {} {:#?}",
        report.costs,
        report.run["tasks"]
    );
    assert!(timings(&report).is_some());

    runner.stop().await;
    Ok(())
}
