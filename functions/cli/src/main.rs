//! `autocrew`: operate the stack from a terminal.
//!
//!   autocrew migrate   apply migrations/ to DATABASE_URL (twice is a no-op)
//!   autocrew health    check Postgres, pgvector and every AWS service the stack uses

mod health;

use anyhow::Context;
use autocrew_shared::adapters::postgres;
use autocrew_shared::config::Config;

const USAGE: &str = "usage: autocrew migrate | autocrew health";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    autocrew_shared::telemetry::init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain on one line, and no backtrace: this is for people.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let command = std::env::args().nth(1).unwrap_or_default();
    if !matches!(command.as_str(), "migrate" | "health") {
        anyhow::bail!("unknown command {command:?}\n{USAGE}");
    }
    let config = Config::from_env().context("failed to read configuration")?;
    let pool = postgres::connect(&config.database)?;
    match command.as_str() {
        "migrate" => {
            let report = postgres::migrate(&pool)
                .await
                .context("failed to apply migrations")?;
            println!(
                "migrations: {} applied now, {} already applied",
                report.applied.len(),
                report.already_applied
            );
        }
        _ => health::check(&config, &pool).await?,
    }
    Ok(())
}
