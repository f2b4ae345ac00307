//! `api-bench`: the API's own cost on one read, in one window. wrk drives
//! `GET /projects/{id}/events?limit=1` through a release runner's gateway; then the same
//! request goes straight into the handler, as Lambda calls it (this process builds the
//! API's state as the runner does, and counts its own CPU); then pgbench runs the SQL that
//! route runs (the rate limit count, and the project's events with its owner check) with the
//! same number of connections. Prints requests per second, p99 latency and CPU per request
//! next to pgbench's, and their ratios. Needs the local stack's
//! environment, `wrk` on the PATH (Debian: `apt-get install wrk`) and the stack's pgbench;
//! `make bench-api` sets it all up.

use anyhow::{Context, bail, ensure};
use autocrew_cli::client::sign_up;
use autocrew_tests::chaos::{Runner, Settings};
use autocrew_tests::{cpu_of, cpu_split_of, unique};
use clap::Parser;
use futures::StreamExt;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "The API's cost per request next to pgbench running the route's SQL.")]
struct Args {
    /// The runner binary: build it with `cargo build --release -p autocrew-runner`.
    #[arg(long)]
    runner: PathBuf,
    #[arg(long, default_value = ".")]
    root: PathBuf,
    #[arg(long, default_value_t = 8799)]
    port: u16,
    #[arg(long, default_value = ".local/bench-api-runner.log")]
    log: PathBuf,
    /// Seconds each load lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Open connections, for wrk and pgbench alike.
    #[arg(long, default_value_t = 50)]
    connections: u32,
    #[arg(long, default_value = "wrk")]
    wrk: PathBuf,
    #[arg(long)]
    pgbench: PathBuf,
    /// Only call the handler directly (no runner, wrk or pgbench): for a profiler, as
    /// `perf record -g -- api-bench --handler-only ...`.
    #[arg(long)]
    handler_only: bool,
}

/// What one load measured.
struct Load {
    per_second: f64,
    p99_ms: f64,
}

/// `12.34ms`, `1.2s`, `850.00us` in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn wrk(args: &Args, url: &str, token: &str) -> anyhow::Result<Load> {
    let out = Command::new(&args.wrk)
        .args([
            "-t2",
            &format!("-c{}", args.connections),
            &format!("-d{}s", args.seconds),
        ])
        .arg("--latency")
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(url)
        .output()
        .with_context(|| format!("cannot run {} (apt-get install wrk)", args.wrk.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "wrk failed: {text}");
    ensure!(!text.contains("Non-2xx"), "wrk saw errors: {text}");
    let per_second = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in {text}"))?;
    let p99_ms = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(millis)
        .with_context(|| format!("no 99% latency in {text}"))?;
    Ok(Load { per_second, p99_ms })
}

fn pgbench(args: &Args, database_url: &str, script: &str) -> anyhow::Result<Load> {
    let dir = std::env::temp_dir().join(unique("pgbench"));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("route.sql");
    std::fs::write(&file, script)?;
    let binary = std::fs::canonicalize(&args.pgbench)
        .with_context(|| format!("no pgbench at {}", args.pgbench.display()))?;
    let out = Command::new(binary)
        .current_dir(&dir)
        .args(["-n", "-M", "prepared", "-j", "2", "-l"])
        .args([
            "-c",
            &args.connections.to_string(),
            "-T",
            &args.seconds.to_string(),
        ])
        .arg("-f")
        .arg(&file)
        .arg(database_url)
        .output()
        .with_context(|| format!("cannot run {}", args.pgbench.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "pgbench failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let per_second = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no tps in {text}"))?;
    // -l writes one line per transaction; its third field is the latency in microseconds.
    let mut latencies: Vec<f64> = Vec::new();
    for entry in std::fs::read_dir(&dir)?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("pgbench_log")
        {
            for line in std::fs::read_to_string(entry.path())?.lines() {
                if let Some(us) = line
                    .split_whitespace()
                    .nth(2)
                    .and_then(|v| v.parse::<f64>().ok())
                {
                    latencies.push(us / 1000.0);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    ensure!(!latencies.is_empty(), "pgbench wrote no transaction log");
    latencies.sort_by(f64::total_cmp);
    let p99_ms = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    Ok(Load { per_second, p99_ms })
}

/// What calling the handler directly measured.
struct Direct {
    per_second: f64,
    cpu_ms: f64,
    /// Of `cpu_ms`, what ran in the process itself (the rest is the kernel's: mostly the
    /// statements' socket I/O).
    user_ms: f64,
}

/// `file` from `events/` with `swaps` made.
fn event_text(
    root: &std::path::Path,
    file: &str,
    swaps: &[(&str, &str)],
) -> anyhow::Result<String> {
    let mut text = std::fs::read_to_string(root.join("events").join(file))?;
    for (from, to) in swaps {
        text = text.replace(from, to);
    }
    Ok(text)
}

/// `direct` on a single-threaded runtime of its own, as the API's Lambda functions run
/// their handler (`flavor = "current_thread"`): no other thread to wake. First one call at a
/// time, as one Lambda instance takes them; then `connections` in flight, as many instances
/// would put on the database.
fn direct_as_lambda(args: &Args) -> anyhow::Result<(Direct, Direct)> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(direct(args))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the direct bench's thread panicked"))?
    })
}

/// The API's state, a user with a project that has an event, then the read measured one
/// call at a time and `connections` in flight (see `measure`).
async fn direct(args: &Args) -> anyhow::Result<(Direct, Direct)> {
    use autocrew_api::{Route, handle};
    const SAMPLE_TOKEN: &str = "sample.access.token";
    const SAMPLE_PROJECT: &str = "6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21";
    let options = autocrew_runner::Options {
        root: args.root.clone(),
        prefix: unique("bench-direct"),
        port: 0,
        concurrency_per_queue: 1,
    };
    let state = autocrew_runner::api_state(&options, &autocrew_shared::config::ProcessEnv).await?;
    let call = |route: Route, text: String| {
        let state = &state;
        async move {
            let request = lambda_http::request::from_str(&text)?;
            let response = handle(state, route, request).await;
            let status = response.status().as_u16();
            let body = match response.body() {
                lambda_http::Body::Text(text) => text.clone(),
                _ => String::new(),
            };
            anyhow::Ok((
                status,
                serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default(),
            ))
        }
    };
    let email = format!("{}@bench.local", unique("direct"));
    let (status, session) = call(
        Route::Signup,
        event_text(
            &args.root,
            "apigw-signup.json",
            &[("ana@example.com", &email)],
        )?,
    )
    .await?;
    ensure!(status == 201, "sign-up answered {status}: {session}");
    let token = session["access_token"]
        .as_str()
        .context("token")?
        .to_owned();
    let (status, project) = call(
        Route::CreateProject,
        event_text(
            &args.root,
            "apigw-create-project.json",
            &[(SAMPLE_TOKEN, &token)],
        )?,
    )
    .await?;
    ensure!(status == 201, "create project answered {status}: {project}");
    let project = project["id"].as_str().context("project id")?.to_owned();
    let (status, _) = call(
        Route::PostMessage,
        event_text(
            &args.root,
            "apigw-post-message.json",
            &[(SAMPLE_TOKEN, &token), (SAMPLE_PROJECT, &project)],
        )?,
    )
    .await?;
    ensure!(status == 202, "post message answered {status}");
    let read = event_text(
        &args.root,
        "apigw-list-events.json",
        &[
            (SAMPLE_TOKEN, &token),
            (SAMPLE_PROJECT, &project),
            ("\"100\"", "\"1\""),
            ("limit=100", "limit=1"),
        ],
    )?;
    let (status, body) = call(Route::ListEvents, read.clone()).await?;
    ensure!(
        status == 200 && body["events"].as_array().is_some_and(|e| e.len() == 1),
        "the read answered {status}: {body}"
    );
    let one = measure(&state, &read, args.seconds, 1).await?;
    let many = measure(&state, &read, args.seconds, args.connections as usize).await?;
    Ok((one, many))
}

/// The read (`read`, API Gateway's event) called directly, `in_flight` calls at a time for
/// `seconds`, in batches built beforehand: this process's CPU per request is the handler's
/// (its JWT check, rate limit, statements and JSON), without a gateway.
async fn measure(
    state: &autocrew_api::ApiState,
    read: &str,
    seconds: u64,
    in_flight: usize,
) -> anyhow::Result<Direct> {
    use autocrew_api::{Route, handle};
    let me = std::process::id();
    let (mut cpu, mut user, mut handled, mut busy) = (0.0, 0.0, 0u64, Duration::ZERO);
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        // Requests as the Lambda runtime hands them over, made before the clock runs.
        let batch: Vec<lambda_http::Request> = (0..2000)
            .map(|_| lambda_http::request::from_str(read))
            .collect::<Result<_, _>>()?;
        let (before, started) = (cpu_split_of(me), Instant::now());
        let statuses: Vec<u16> = futures::stream::iter(batch)
            .map(|request| async move {
                handle(state, Route::ListEvents, request)
                    .await
                    .status()
                    .as_u16()
            })
            .buffer_unordered(in_flight)
            .collect()
            .await;
        busy += started.elapsed();
        let after = cpu_split_of(me);
        user += after.0 - before.0;
        cpu += (after.0 + after.1) - (before.0 + before.1);
        ensure!(
            statuses.iter().all(|s| *s == 200),
            "a direct call failed: {:?}",
            statuses.iter().find(|s| **s != 200)
        );
        handled += statuses.len() as u64;
    }
    Ok(Direct {
        per_second: handled as f64 / busy.as_secs_f64(),
        cpu_ms: cpu * 1000.0 / handled.max(1) as f64,
        user_ms: user * 1000.0 / handled.max(1) as f64,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.handler_only {
        let (one, many) = direct_as_lambda(&args)?;
        println!(
            "the handler, called directly: one at a time {:.0} req/s, CPU {:.3} ms/request (user {:.3}); {} in flight {:.0} req/s, CPU {:.3} ms/request (user {:.3})",
            one.per_second,
            one.cpu_ms,
            one.user_ms,
            args.connections,
            many.per_second,
            many.cpu_ms,
            many.user_ms
        );
        return Ok(());
    }
    let database_url = std::env::var("DATABASE_URL")
        .context("DATABASE_URL is not set: source .local/stack.env")?;
    let settings = Settings {
        runner: args.runner.clone(),
        root: args.root.clone(),
        port: args.port,
        prefix: unique("bench-api"),
        log: args.log.clone(),
        restart_postgres: None,
        fakes: None,
        round_timeout: Duration::from_secs(60),
        model: None,
    };
    let runner = Runner::start(&settings).await?;
    let base = format!("http://127.0.0.1:{}", args.port);

    // A user with a project that has events.
    let client = sign_up(
        &base,
        &format!("{}@bench.local", unique("api")),
        "bench password 1",
    )
    .await?;
    let project = client
        .post(
            "/projects",
            &json!({"name": "api bench"}),
            "create a project",
        )
        .await?;
    let project_id = project["id"].as_str().context("no project id")?.to_owned();
    client
        .post(
            &format!("/projects/{project_id}/commands"),
            &json!({"command": "Build a recipe app for keto dieters"}),
            "post a command",
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let token = client.token();
    let user = client.get("/me", "read the account").await?["user"]["id"]
        .as_str()
        .context("no user id")?
        .to_owned();
    let url = format!("{base}/projects/{project_id}/events?limit=1");
    let probe = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await?;
    if !probe.status().is_success() {
        bail!(
            "the route answered {}: {}",
            probe.status(),
            probe.text().await?
        );
    }

    // Through the gateway, measuring the runner's CPU.
    let pid = runner.pid().context("the runner has no pid")?;
    let (cpu_before, started) = (cpu_of(pid), Instant::now());
    let api = wrk(&args, &url, &token)?;
    let runner_cpu = cpu_of(pid) - cpu_before;
    let requests = api.per_second * started.elapsed().as_secs_f64().min(args.seconds as f64);
    drop(runner);

    // The handler alone, called as Lambda calls it.
    let (one, many) = direct_as_lambda(&args)?;

    // The same two statements, straight to Postgres. pgbench reads `:name` as a variable
    // even inside a literal, so the buckets' colon is written as chr(58).
    let script = format!(
        "INSERT INTO rate_counters (bucket, window_start, hits)
  SELECT b, date_bin('60 seconds', now(), timestamptz 'epoch'), 1
  FROM unnest(ARRAY['ip' || chr(58) || '127.0.0.1', 'user' || chr(58) || '{user}']) AS b
  ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_counters.hits + 1
  RETURNING bucket, hits;
SELECT e.run_id, e.seq, e.kind, e.payload, e.created_at FROM projects p
  LEFT JOIN LATERAL (SELECT run_id, seq, kind, payload, created_at FROM events
    WHERE project_id = p.id AND seq > 0 ORDER BY seq LIMIT 1) e ON true
  WHERE p.id = '{project_id}' AND p.user_id = '{user}';
"
    );
    let pg = pgbench(&args, &database_url, &script)?;

    println!(
        "api bench, one window: GET /projects/{{id}}/events?limit=1, {} connections, {} s each",
        args.connections, args.seconds
    );
    println!(
        "  through the gateway (wrk)  {:>9.0} req/s  p99 {:>6.2} ms  runner CPU {:.3} ms/request",
        api.per_second,
        api.p99_ms,
        runner_cpu * 1000.0 / requests.max(1.0)
    );
    println!(
        "  the handler, one at a time   {:>9.0} req/s               handler CPU {:.3} ms/request (user {:.3})",
        one.per_second, one.cpu_ms, one.user_ms
    );
    println!(
        "  the handler, {} in flight    {:>9.0} req/s               handler CPU {:.3} ms/request (user {:.3})",
        args.connections, many.per_second, many.cpu_ms, many.user_ms
    );
    println!(
        "  the route's SQL (pgbench)  {:>9.0} tx/s   p99 {:>6.2} ms",
        pg.per_second, pg.p99_ms
    );
    println!(
        "  ratios: throughput {:.2}x pgbench's (the handler alone {:.2}x), p99 {:.2}x pgbench's",
        api.per_second / pg.per_second,
        many.per_second / pg.per_second,
        api.p99_ms / pg.p99_ms
    );
    Ok(())
}
