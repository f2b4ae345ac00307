//! `engine-bench`: the engine's own cost per run on the local stack, with the offline model
//! and the cache off: runner CPU, Postgres CPU and commits per run and per task, and runs per
//! second one at a time and with one run a user in flight (10 by default). The emulator's (moto's) CPU is not ours and
//! is reported apart. Every run goes through the API and is followed over the WebSocket, as
//! the app would. Needs the local stack's environment (`make up`, then `.local/stack.env`).

use anyhow::{Context, ensure};
use autocrew_cli::approvals::{Verdict, decide};
use autocrew_cli::client::{Client, sign_up};
use autocrew_runner::template::Template;
use autocrew_shared::adapters::aws::metering::Metered;
use autocrew_tests::chaos::{Runner, Settings};
use autocrew_tests::{cpu_of, trace, unique};
use clap::Parser;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    about = "The engine's cost per run: CPU, commits, throughput (offline model, cache off)."
)]
struct Args {
    /// The runner binary: build it with `cargo build --release -p autocrew-runner`.
    #[arg(long)]
    runner: PathBuf,
    #[arg(long, default_value = ".")]
    root: PathBuf,
    #[arg(long, default_value_t = 8798)]
    port: u16,
    /// Runs in each of the two phases.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Users the runs are spread over (the API lets one address sign up 10 a minute).
    #[arg(long, default_value_t = 10)]
    users: usize,
    #[arg(long, default_value = ".local/bench-runner.log")]
    log: PathBuf,
    /// The moto server's pid file, to report its CPU apart.
    #[arg(long, default_value = ".local/moto.pid")]
    moto_pid_file: PathBuf,
    /// Runs traced through Postgres's statement log after the measured ones (their
    /// statements and commits by what they touch); 0 for none. The log costs CPU, so the
    /// traced runs are not part of the figures above them.
    #[arg(long, default_value_t = 3)]
    trace_runs: usize,
    /// Postgres's log file (the stack's).
    #[arg(long, default_value = ".local/pg/postgres.log")]
    pg_log: PathBuf,
    /// Runs at a real model's pace after the others, all in flight, to price a run's
    /// Lambda GB-seconds and AWS cost as real models make them; 0 for none.
    #[arg(long, default_value_t = 2)]
    real_speed_runs: usize,
    /// The model's pace in those runs: tokens a second...
    #[arg(long, default_value_t = 60.0)]
    pace_tps: f64,
    /// ...and the size of each file written, in tokens (one a turn).
    #[arg(long, default_value_t = 2000)]
    file_tokens: u32,
}

/// CPU seconds of every Postgres process (the postmaster counts its reaped backends).
fn postgres_cpu() -> f64 {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            total += cpu_of(pid);
        }
    }
    total
}

async fn commits(db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    // Backends report their counts at most once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Ok(db
        .query_one(
            "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await?
        .get(0))
}

/// Posts a command on `project` and follows its run over the WebSocket to its end, from
/// the project's sequence `after` (moved past the run's last event); whether it succeeded.
async fn one_run(client: &Client, project: &str, after: &mut i64) -> anyhow::Result<bool> {
    let mut stream = client.follow(project, *after).await?;
    let accepted = client
        .post(
            &format!("/projects/{project}/commands"),
            &json!({"command": format!("Build a recipe app for keto dieters ({})", unique("b"))}),
            "post the command",
        )
        .await?;
    let run = accepted["run_id"].as_str().context("no run id")?.to_owned();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(120), stream.next())
            .await
            .with_context(|| format!("run {run} did not end in 120 s"))??
            .context("the live stream closed")?
            .to_value();
        *after = event["seq"].as_i64().unwrap_or(*after);
        if event["run_id"].as_str() != Some(run.as_str()) {
            continue;
        }
        match event["kind"].as_str() {
            Some("approval_requested") => {
                let p = &event["payload"];
                decide(
                    client,
                    p["approval_id"].as_str().unwrap_or_default(),
                    Verdict::Approve,
                    p["payload_hash"].as_str().unwrap_or_default(),
                    None,
                )
                .await?;
            }
            Some("run_completed") => return Ok(true),
            Some("run_failed" | "run_cancelled") => return Ok(false),
            _ => {}
        }
    }
}

struct Measured {
    wall: Duration,
    runner_cpu: f64,
    postgres_cpu: f64,
    moto_cpu: f64,
    commits: i64,
}

async fn measure(
    runner_pid: u32,
    moto_pid: Option<u32>,
    db: &tokio_postgres::Client,
    clients: &mut [(Client, String, i64)],
    runs: usize,
    in_flight: usize,
) -> anyhow::Result<Measured> {
    let (c0, r0, p0) = (commits(db).await?, cpu_of(runner_pid), postgres_cpu());
    let m0 = moto_pid.map(cpu_of).unwrap_or(0.0);
    let started = Instant::now();
    let mut done = 0;
    while done < runs {
        let batch = in_flight.min(runs - done);
        let outcomes = futures::future::join_all(
            clients[..batch]
                .iter_mut()
                .map(|(client, project, after)| one_run(client, project, after)),
        )
        .await;
        for outcome in outcomes {
            ensure!(outcome?, "a run did not succeed");
        }
        done += batch;
    }
    let wall = started.elapsed();
    let (r1, p1) = (cpu_of(runner_pid), postgres_cpu());
    let m1 = moto_pid.map(cpu_of).unwrap_or(0.0);
    Ok(Measured {
        wall,
        runner_cpu: r1 - r0,
        postgres_cpu: p1 - p0,
        moto_cpu: m1 - m0,
        commits: commits(db).await? - c0 - 1,
    })
}

fn show(name: &str, m: &Measured, runs: usize, tasks_per_run: f64) {
    let per_run = |x: f64| x / runs as f64;
    println!(
        "{name:<22} {:>6.2} runs/s  per run: runner CPU {:>6.1} ms, Postgres CPU {:>6.1} ms, {:>5.0} commits  \
         per task: engine CPU {:>5.2} ms, {:>5.1} commits  (moto CPU {:>6.1} ms/run, not ours)",
        runs as f64 / m.wall.as_secs_f64(),
        per_run(m.runner_cpu) * 1000.0,
        per_run(m.postgres_cpu) * 1000.0,
        per_run(m.commits as f64),
        per_run(m.runner_cpu + m.postgres_cpu) * 1000.0 / tasks_per_run,
        per_run(m.commits as f64) / tasks_per_run,
        per_run(m.moto_cpu) * 1000.0,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (_, db) = autocrew_tests::stack_database().await?;
    let settings = Settings {
        runner: args.runner.clone(),
        root: args.root.clone(),
        port: args.port,
        prefix: format!("bench-{}", std::process::id()),
        log: args.log.clone(),
        round_timeout: Duration::from_secs(120),
        restart_postgres: None,
        fakes: None,
        model: None,
    };
    let runner = Runner::start(&settings).await?;
    let runner_pid = runner.pid().context("the runner has no pid")?;
    let moto_pid = std::fs::read_to_string(&args.moto_pid_file)
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let base = format!("http://127.0.0.1:{}", args.port);
    let mut clients = Vec::new();
    for _ in 0..args.users.max(1) {
        let client = sign_up(
            &base,
            &format!("{}@bench.local", unique("bench")),
            "bench password 1",
        )
        .await?;
        let project = client
            .post("/projects", &json!({"name": "Bench"}), "create a project")
            .await?;
        let id = project["id"].as_str().context("no project id")?.to_owned();
        clients.push((client, id, 0));
    }
    // Warm up: connections, prepared statements, caches of the runner.
    measure(runner_pid, moto_pid, &db, &mut clients, 3, 1).await?;
    let tasks_per_run = 7.0;
    let metered_before = metering(&base).await?;
    let one = measure(runner_pid, moto_pid, &db, &mut clients, args.runs, 1).await?;
    let metered_after = metering(&base).await?;
    let in_flight = clients.len();
    let ten = measure(
        runner_pid,
        moto_pid,
        &db,
        &mut clients,
        args.runs,
        in_flight,
    )
    .await?;
    println!(
        "engine bench: {} runs each, the demo command (plan, 7 tasks, compile; 15 offline model calls), cache off",
        args.runs
    );
    show("one at a time", &one, args.runs, tasks_per_run);
    show(
        &format!("{in_flight} in flight"),
        &ten,
        args.runs,
        tasks_per_run,
    );
    println!(
        "throughput with {in_flight} in flight: {:.2}x one at a time",
        one.wall.as_secs_f64() / ten.wall.as_secs_f64()
    );
    aws_cost(&args, (&metered_before, &metered_after), args.runs)?;
    if args.trace_runs > 0 {
        traced(
            &args,
            &db,
            (runner_pid, moto_pid),
            &mut clients,
            tasks_per_run,
        )
        .await?;
    }
    runner.kill().await?;
    if args.real_speed_runs > 0 {
        real_speed(&args, &settings, (&db, moto_pid), &mut clients).await?;
    }
    Ok(())
}

/// Runs `--real-speed-runs` at once with the offline model behind the compatible server at
/// a real pace, and prices them from what the runner counted: a run's Lambda GB-seconds
/// are mostly time spent waiting on streams.
async fn real_speed(
    args: &Args,
    settings: &Settings,
    (db, moto_pid): (&tokio_postgres::Client, Option<u32>),
    clients: &mut [(Client, String, i64)],
) -> anyhow::Result<()> {
    let pace = autocrew_tests::pace::Pace {
        tokens_per_sec: Some(args.pace_tps),
        first_token: Duration::from_millis(700),
        file_tokens: Some(args.file_tokens),
        ..Default::default()
    };
    let model = autocrew_tests::compatible_server::CompatibleServer::start_paced(0, pace).await?;
    let settings = Settings {
        model: Some(std::sync::Arc::new(model)),
        ..settings.clone()
    };
    let runner = Runner::start(&settings).await?;
    let runner_pid = runner.pid().context("the runner has no pid")?;
    let base = format!("http://127.0.0.1:{}", args.port);
    let runs = args.real_speed_runs.min(clients.len());
    let before = metering(&base).await?;
    let measured = measure(runner_pid, moto_pid, db, clients, runs, runs).await;
    let after = metering(&base).await?;
    runner.kill().await?;
    let measured = measured?;
    println!(
        "at a real pace ({} tokens a second, files of {} tokens written one a turn): {runs} runs at once took {:.0} s; runner CPU {:.1} s a run",
        args.pace_tps,
        args.file_tokens,
        measured.wall.as_secs_f64(),
        measured.runner_cpu / runs as f64,
    );
    aws_cost(args, (&before, &after), runs)
}

/// Runs `--trace-runs` one at a time with the statement log on, and prints what they asked
/// of Postgres per run and per task, by category.
async fn traced(
    args: &Args,
    db: &tokio_postgres::Client,
    (runner_pid, moto_pid): (u32, Option<u32>),
    clients: &mut [(Client, String, i64)],
    tasks_per_run: f64,
) -> anyhow::Result<()> {
    let from = std::fs::metadata(&args.pg_log)
        .with_context(|| format!("cannot read {}", args.pg_log.display()))?
        .len();
    trace::start(db).await?;
    let measured = measure(runner_pid, moto_pid, db, clients, args.trace_runs, 1).await;
    trace::stop(db).await?;
    measured?;
    let log = std::fs::read(&args.pg_log)?;
    let text = String::from_utf8_lossy(log.get(usize::try_from(from)?..).unwrap_or_default());
    let found = trace::parse(&text);
    let runs = args.trace_runs as f64;
    println!(
        "traced {} run(s) one at a time (statement log on): per run {:.0} statements in {:.0} transactions; per task {:.1} statements, {:.1} commits",
        args.trace_runs,
        found.total_statements() as f64 / runs,
        found.total_commits() as f64 / runs,
        found.total_statements() as f64 / runs / tasks_per_run,
        found.total_commits() as f64 / runs / tasks_per_run,
    );
    println!(
        "  {:<30} {:>12} {:>14}",
        "per run, by what it touches", "statements", "transactions"
    );
    let mut kinds: Vec<&str> = found
        .statements
        .keys()
        .chain(found.commits.keys())
        .copied()
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in kinds {
        println!(
            "  {kind:<30} {:>12.1} {:>14.1}",
            found.statements.get(kind).copied().unwrap_or(0) as f64 / runs,
            found.commits.get(kind).copied().unwrap_or(0) as f64 / runs,
        );
    }
    Ok(())
}

/// What the runner counted so far (`GET /metering`).
async fn metering(base: &str) -> anyhow::Result<Metered> {
    Ok(reqwest::get(format!("{base}/metering"))
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// AWS list prices, us-east-1, as published on 2026-12-01: Lambda on arm64, SQS standard
/// queues, Step Functions standard workflows, S3 Standard.
const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
const LAMBDA_PER_GB_SECOND: f64 = 0.000_013_333_4;
const SQS_PER_REQUEST: f64 = 0.40 / 1e6;
const SFN_PER_TRANSITION: f64 = 0.025 / 1e3;
const S3_PER_PUT: f64 = 0.005 / 1e3;
const S3_PER_GET: f64 = 0.0004 / 1e3;

/// Prices one run from the calls the runner counted over the one-at-a-time runs: Lambda
/// invocations and GB-seconds (each function's `MemorySize`), SQS requests, Step Functions
/// transitions, S3 requests. Two counts are not the runner's to make and are derived: the
/// state machine's own `sqs:sendMessage` per task state, and one receive per consumed
/// message (Lambda's pollers long-poll; the runner's idle polls every second are left out).
fn aws_cost(args: &Args, (before, after): (&Metered, &Metered), runs: usize) -> anyhow::Result<()> {
    let template = Template::parse(&std::fs::read_to_string(args.root.join("template.yaml"))?)?;
    let memory: std::collections::HashMap<String, u64> = template
        .functions()?
        .into_iter()
        .map(|f| (f.binary, f.memory_mb))
        .collect();
    let per_run = |n: u64| n as f64 / runs as f64;
    let calls = |name: &str| {
        after.calls.get(name).copied().unwrap_or(0) - before.calls.get(name).copied().unwrap_or(0)
    };
    let (mut invocations, mut gb_seconds) = (0u64, 0f64);
    for (function, now) in &after.invocations {
        let was = before
            .invocations
            .get(function)
            .copied()
            .unwrap_or_default();
        let (count, ms) = (now.count - was.count, now.total_ms - was.total_ms);
        invocations += count;
        gb_seconds +=
            ms as f64 / 1000.0 * memory.get(function).copied().unwrap_or(128) as f64 / 1024.0;
    }
    // Each task state of the state machine ends with one answer to its token.
    let transitions = calls("SFN.SendTaskSuccess") + calls("SFN.SendTaskFailure");
    let consumed = calls("SQS.DeleteMessage") + calls("SQS.DeleteMessageBatch");
    let sqs = calls("SQS.SendMessage")
        + calls("SQS.SendMessageBatch")
        + calls("SQS.ChangeMessageVisibility")
        + calls("SQS.DeleteMessage")
        + calls("SQS.DeleteMessageBatch")
        + transitions
        + consumed;
    let (puts, gets) = (
        calls("S3.PutObject") + calls("S3.CopyObject"),
        calls("S3.GetObject"),
    );
    let lambda =
        per_run(invocations) * LAMBDA_PER_REQUEST + gb_seconds / runs as f64 * LAMBDA_PER_GB_SECOND;
    let queue = per_run(sqs) * SQS_PER_REQUEST;
    let machine = per_run(transitions) * SFN_PER_TRANSITION;
    let storage = per_run(puts) * S3_PER_PUT + per_run(gets) * S3_PER_GET;
    println!(
        "AWS per run, from counted calls at us-east-1 list prices of 2026-12-01 (Lambda arm64, SQS standard, Step Functions standard, S3 Standard):"
    );
    println!(
        "  Lambda      {:>6.1} invocations, {:>7.3} GB-s   ${:.7}",
        per_run(invocations),
        gb_seconds / runs as f64,
        lambda
    );
    println!(
        "  SQS         {:>6.1} requests                ${queue:.7}",
        per_run(sqs)
    );
    println!(
        "  Step Fns    {:>6.1} transitions             ${machine:.7}",
        per_run(transitions)
    );
    println!(
        "  S3          {:>6.1} PUTs, {:>5.1} GETs         ${storage:.7}",
        per_run(puts),
        per_run(gets)
    );
    println!(
        "  total                                       ${:.7}",
        lambda + queue + machine + storage
    );
    let others: Vec<String> = after
        .calls
        .iter()
        .filter(|(name, _)| {
            name.starts_with("DynamoDB.") || name.starts_with("ApiGatewayManagementApi.")
        })
        .map(|(name, _)| format!("{name} {:.1}", per_run(calls(name))))
        .collect();
    println!(
        "  also counted, per run (not priced here): {}",
        others.join(", ")
    );
    Ok(())
}
