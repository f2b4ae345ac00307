//! `run-report [--run ID] [--root DIR]`: what a run's tasks cost in time and in Lambda, as
//! Postgres recorded them: each task's wall time (first start to its end), attempts,
//! invocations, model calls and output tokens, the time its invocations spent on it, and
//! that time in GB-seconds at its function's `MemorySize` (from `template.yaml`), priced at
//! Lambda's arm64 list price. Without `--run`, the latest run. Reads `DATABASE_URL`
//! (`.local/stack.env`). `make demo-realtime` prints it after the run.

use anyhow::Context;
use autocrew_runner::template::Template;
use clap::Parser;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(about = "A run's tasks: wall time, invocations, Lambda GB-seconds and their cost.")]
struct Args {
    /// The run (default: the latest).
    #[arg(long)]
    run: Option<uuid::Uuid>,
    /// The folder holding template.yaml.
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

/// Lambda on arm64, us-east-1 list prices of 2026-12-01 (as the engine bench prices them).
const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
const LAMBDA_PER_GB_SECOND: f64 = 0.000_013_333_4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (_, db) = autocrew_tests::stack_database().await?;
    let template = Template::parse(&std::fs::read_to_string(args.root.join("template.yaml"))?)?;
    let memory: HashMap<String, u64> = template
        .functions()?
        .into_iter()
        .map(|f| (f.binary, f.memory_mb))
        .collect();
    let run: uuid::Uuid = match args.run {
        Some(run) => run,
        None => db
            .query_opt("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1", &[])
            .await?
            .context("there is no run yet")?
            .get(0),
    };
    let head = db
        .query_one(
            "SELECT status::text, command, extract(epoch FROM coalesce(completed_at, now()) - created_at)::float8
             FROM runs WHERE id = $1",
            &[&run],
        )
        .await
        .with_context(|| format!("no run {run}"))?;
    let (status, command, took): (String, String, f64) = (head.get(0), head.get(1), head.get(2));
    println!("run {run} ({status}): {command:?}, {took:.0} s from the command to the end");
    let rows = db
        .query(
            "SELECT t.task_key, t.agent::text,
                    extract(epoch FROM coalesce(t.completed_at, now()) - t.started_at)::float8,
                    count(a.*)::bigint, coalesce(sum(a.invocations), 0)::bigint,
                    coalesce(sum(a.busy_ms), 0)::bigint,
                    (SELECT count(*) FROM llm_calls c WHERE c.task_id = t.id AND c.outcome = 'ok'),
                    (SELECT coalesce(sum(output_tokens), 0)::bigint FROM llm_calls c WHERE c.task_id = t.id)
             FROM tasks t LEFT JOIN task_attempts a ON a.task_id = t.id
             WHERE t.run_id = $1 GROUP BY t.id ORDER BY t.started_at NULLS LAST",
            &[&run],
        )
        .await?;
    println!(
        "  {:<16} {:<10} {:>8} {:>8} {:>11} {:>6} {:>8} {:>9} {:>8} {:>10}",
        "task",
        "agent",
        "wall s",
        "attempts",
        "invocations",
        "calls",
        "tokens",
        "Lambda s",
        "GB-s",
        "Lambda $"
    );
    let (mut invocations, mut gb_seconds) = (0i64, 0f64);
    for row in &rows {
        let (key, agent): (String, String) = (row.get(0), row.get(1));
        let wall: Option<f64> = row.get(2);
        let (attempts, invoked, busy_ms): (i64, i64, i64) = (row.get(3), row.get(4), row.get(5));
        let (calls, tokens): (i64, i64) = (row.get(6), row.get(7));
        let mb = memory.get(&format!("step-{agent}")).copied().unwrap_or(128);
        let gb_s = busy_ms as f64 / 1000.0 * mb as f64 / 1024.0;
        let cost = invoked as f64 * LAMBDA_PER_REQUEST + gb_s * LAMBDA_PER_GB_SECOND;
        invocations += invoked;
        gb_seconds += gb_s;
        println!(
            "  {key:<16} {agent:<10} {:>8.1} {attempts:>8} {invoked:>11} {calls:>6} {tokens:>8} {:>9.1} {gb_s:>8.2} {cost:>10.6}",
            wall.unwrap_or(0.0),
            busy_ms as f64 / 1000.0,
        );
    }
    let cost = invocations as f64 * LAMBDA_PER_REQUEST + gb_seconds * LAMBDA_PER_GB_SECOND;
    println!(
        "  agent steps in all: {invocations} invocations, {gb_seconds:.2} GB-s, ${cost:.6} of Lambda (arm64, us-east-1 list price)"
    );
    Ok(())
}
