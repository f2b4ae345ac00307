//! `autocrew`: operate the stack from a terminal. `autocrew --help` lists the commands;
//! `autocrew completions bash` prints shell completions.

use anyhow::Context;
use autocrew_cli::args::{Cli, Command};
use autocrew_cli::{health, run};
use autocrew_shared::adapters::postgres;
use autocrew_shared::config::Config;
use clap::{CommandFactory, Parser};
use std::time::Duration;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    autocrew_shared::telemetry::init();
    let cli = Cli::parse();
    match dispatch(cli).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            // The whole cause chain on one line, and no backtrace: this is for people.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one command; `Ok(false)` when it ran but the outcome was a failure.
async fn dispatch(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Run(args) => {
            let timeout = Duration::from_secs(args.timeout_secs);
            let report = run::run(&args.api.api, &args.command, args.quiet, timeout).await?;
            println!("{}", run::summary(&report));
            if let Some(t) = run::timings(&report) {
                println!(
                    "Timing: first task started {} ms after the command was accepted; orchestration overhead per task: median {} ms, max {} ms",
                    t.first_task_ms, t.overhead_median_ms, t.overhead_max_ms
                );
            }
            Ok(report.succeeded)
        }
        Command::Migrate => {
            let config = Config::from_env().context("failed to read configuration")?;
            let pool = postgres::connect(&config.database)?;
            let report = postgres::migrate(&pool)
                .await
                .context("failed to apply migrations")?;
            println!(
                "migrations: {} applied now, {} already applied",
                report.applied.len(),
                report.already_applied
            );
            Ok(true)
        }
        Command::Health => {
            let config = Config::from_env().context("failed to read configuration")?;
            let pool = postgres::connect(&config.database)?;
            health::check(&config, &pool).await?;
            Ok(true)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "autocrew", &mut std::io::stdout());
            Ok(true)
        }
    }
}
