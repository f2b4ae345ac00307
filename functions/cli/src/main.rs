//! `autocrew`: operate the stack from a terminal.
//!
//!   autocrew migrate                 apply migrations/ to DATABASE_URL (twice is a no-op)
//!   autocrew health                  check Postgres, pgvector and every AWS service used
//!   autocrew run "<command>" [--api URL] [--quiet]
//!                                    run a command as the mobile app would, live

use anyhow::Context;
use autocrew_cli::{health, run};
use autocrew_shared::adapters::postgres;
use autocrew_shared::config::Config;
use std::time::Duration;

const USAGE: &str =
    "usage: autocrew migrate | autocrew health | autocrew run \"<command>\" [--api URL] [--quiet]";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    autocrew_shared::telemetry::init();
    match dispatch().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            // The whole cause chain on one line, and no backtrace: this is for people.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the command line; `Ok(false)` when it ran but the outcome was a failure.
async fn dispatch() -> anyhow::Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => {
            let command = args
                .get(1)
                .filter(|c| !c.starts_with("--"))
                .context(USAGE)?;
            let flag = |name: &str| {
                args.iter()
                    .position(|a| a == name)
                    .and_then(|i| args.get(i + 1))
                    .cloned()
            };
            let api = flag("--api")
                .or_else(|| std::env::var("AUTOCREW_API_URL").ok())
                .unwrap_or_else(|| "http://127.0.0.1:8787".into());
            let quiet = args.iter().any(|a| a == "--quiet");
            let report = run::run(&api, command, quiet, Duration::from_secs(300)).await?;
            println!("{}", run::summary(&report));
            if let Some(t) = run::timings(&report) {
                println!(
                    "Timing: first task started {} ms after the command was accepted; orchestration overhead per task: median {} ms, max {} ms",
                    t.first_task_ms, t.overhead_median_ms, t.overhead_max_ms
                );
            }
            Ok(report.succeeded)
        }
        Some(command @ ("migrate" | "health")) => {
            let config = Config::from_env().context("failed to read configuration")?;
            let pool = postgres::connect(&config.database)?;
            if command == "migrate" {
                let report = postgres::migrate(&pool)
                    .await
                    .context("failed to apply migrations")?;
                println!(
                    "migrations: {} applied now, {} already applied",
                    report.applied.len(),
                    report.already_applied
                );
            } else {
                health::check(&config, &pool).await?;
            }
            Ok(true)
        }
        other => anyhow::bail!("unknown command {:?}\n{USAGE}", other.unwrap_or("")),
    }
}
