//! Issue 8's done-when, as a user runs it: a whole run on each provider's official path
//! (`OPENAI_API_BASE_URL`, `ANTHROPIC_BASE_URL`, `GEMINI_BASE_URL`), against a server that
//! checks every request against the provider's published request types (its official SDK),
//! the per-model rules the provider documents, and strict structured output
//! (`tests/provider_check/server.py`). Behind it, the offline model answers in the same wire
//! format. The run completes with no request refused.

use anyhow::Context;
use autocrew_cli::run::run;
use autocrew_runner::{Options, start};
use autocrew_tests::compatible_server::CompatibleServer;
use autocrew_tests::{EnvOver, TestDb, unique};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The checking server in front of `backend`, and its base URL.
async fn checker(backend: &str) -> anyhow::Result<(tokio::process::Child, String)> {
    let python = root().join(".local/venv/bin/python");
    let mut child = tokio::process::Command::new(&python)
        .arg(root().join("tests/provider_check/server.py"))
        .args(["--backend", backend])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "{} (the local stack's venv: make up installs it)",
                python.display()
            )
        })?;
    let stdout = child.stdout.take().context("the checker's stdout")?;
    let line = tokio::time::timeout(
        Duration::from_secs(60),
        BufReader::new(stdout).lines().next_line(),
    )
    .await
    .context("the checker did not start within 60 s")??
    .context("the checker exited before listening")?;
    let port = serde_json::from_str::<Value>(&line)?["port"]
        .as_u64()
        .context("the checker's port")?;
    Ok((child, format!("http://127.0.0.1:{port}")))
}

/// Runs the demo command with only `provider` configured, its base URL pointing at the
/// checker; returns the run's report and what the checker saw for that provider.
async fn whole_run(
    provider: &str,
) -> anyhow::Result<(autocrew_cli::run::RunReport, Value, TestDb)> {
    let db = TestDb::migrated().await?;
    let backend = CompatibleServer::start(0).await?;
    let backend_root = backend.base_url.trim_end_matches("/v1").to_owned();
    let (mut child, check) = checker(&backend_root).await?;
    let mut vars = HashMap::from([
        ("DATABASE_URL", db.url()),
        ("ANTHROPIC_API_KEY", String::new()),
        ("OPENAI_API_KEY", String::new()),
        ("OPENAI_BASE_URL", String::new()),
        ("GEMINI_API_KEY", String::new()),
        ("LLM_MODEL", String::new()),
        ("LLM_FALLBACK", String::new()),
    ]);
    match provider {
        "openai" => {
            vars.insert("OPENAI_API_KEY", "sk-check".into());
            vars.insert("OPENAI_API_BASE_URL", format!("{check}/v1"));
        }
        "anthropic" => {
            vars.insert("ANTHROPIC_API_KEY", "sk-ant-check".into());
            vars.insert("ANTHROPIC_BASE_URL", check.clone());
        }
        _ => {
            vars.insert("GEMINI_API_KEY", "AIza-check".into());
            vars.insert("GEMINI_BASE_URL", check.clone());
        }
    }
    let options = Options {
        root: root(),
        prefix: unique(provider),
        port: 0,
        concurrency_per_queue: 10,
    };
    let runner = start(options, &EnvOver(vars)).await?;
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
    runner.stop().await;
    let stats: Value = reqwest::get(format!("{check}/_check/stats"))
        .await?
        .json()
        .await?;
    let _ = child.kill().await;
    Ok((report?, stats[provider].clone(), db))
}

async fn assert_clean_run(provider: &str) -> anyhow::Result<()> {
    let (report, seen, db) = whole_run(provider).await?;

    assert_eq!(
        seen["refused"],
        serde_json::json!([]),
        "{provider}: refused requests"
    );
    assert!(
        report.succeeded,
        "{provider}: the run failed: {}",
        report.run
    );
    let requests = seen["requests"].as_u64().unwrap_or(0);
    // The plan, then two turns for each of the seven tasks.
    assert!(requests >= 15, "{provider}: {requests} requests checked");
    assert!(
        seen["strict_schemas"].as_u64() >= Some(1),
        "{provider}: the plan went out strict"
    );
    assert!(
        seen["strict_tools"].as_u64() >= Some(14),
        "{provider}: every agent turn had strict tools"
    );
    // The designer's two images go to OpenAI's Images API on the OpenAI path (checked
    // here too), and to the offline drawing on the others, which have no image model.
    let providers: Vec<String> = db
        .pool
        .get()
        .await?
        .query(
            "SELECT DISTINCT provider FROM llm_calls
             WHERE model NOT IN ('offline-draw-1', 'offline-hash-1536')",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(providers, [provider], "every call went to {provider}");
    let drawn: i64 = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM llm_calls WHERE model = 'offline-draw-1'",
            &[],
        )
        .await?
        .get(0);
    let images = seen["images"].as_u64().unwrap_or(0);
    assert_eq!(
        images + drawn as u64,
        2,
        "{provider}: the logo and the icon, each made once"
    );
    // Memory's embeddings go to OpenAI's Embeddings API on the OpenAI path (checked here
    // too), and to the offline embedder on the others.
    let embedded: i64 = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM llm_calls WHERE model = 'offline-hash-1536'",
            &[],
        )
        .await?
        .get(0);
    let checked_embeddings = seen["embeddings"].as_u64().unwrap_or(0);
    assert!(
        checked_embeddings + embedded as u64 >= 16,
        "{provider}: the plan's recall and gist, and each task's recall and memories"
    );
    assert_eq!(checked_embeddings > 0, provider == "openai", "{seen}");
    let totals = &report.run["totals"];
    assert_eq!(
        totals["calls"].as_u64(),
        Some(requests + drawn as u64 + embedded as u64),
        "one ledger row per request"
    );
    assert!(
        totals["cost"].as_i64() > Some(0),
        "{provider}: priced from the model table"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_run_on_the_official_openai_path_sends_nothing_the_provider_refuses()
-> anyhow::Result<()> {
    assert_clean_run("openai").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_run_on_the_anthropic_path_sends_nothing_the_provider_refuses() -> anyhow::Result<()>
{
    assert_clean_run("anthropic").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_run_on_the_gemini_path_sends_nothing_the_provider_refuses() -> anyhow::Result<()> {
    assert_clean_run("gemini").await
}
