//! `api-bench`: the API's own cost on one read, in one window. wrk drives
//! `GET /projects/{id}/events?limit=1` through a release runner's gateway; then pgbench
//! runs the SQL that route runs (the rate limit count, the project's owner, the events)
//! with the same number of connections. Prints requests per second, p99 latency and the
//! runner's CPU per request next to pgbench's, and their ratios. Needs the local stack's
//! environment, `wrk` on the PATH (Debian: `apt-get install wrk`) and the stack's pgbench;
//! `make bench-api` sets it all up.

use anyhow::{Context, bail, ensure};
use autocrew_cli::client::sign_up;
use autocrew_tests::chaos::{Runner, Settings};
use autocrew_tests::{cpu_of, unique};
use clap::Parser;
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let database_url = std::env::var("DATABASE_URL")
        .context("DATABASE_URL is not set: source .local/stack.env")?;
    let settings = Settings {
        runner: args.runner.clone(),
        root: args.root.clone(),
        port: args.port,
        prefix: unique("bench-api"),
        log: args.log.clone(),
        restart_postgres: None,
        round_timeout: Duration::from_secs(60),
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
            json!({"name": "api bench"}),
            "create a project",
        )
        .await?;
    let project_id = project["id"].as_str().context("no project id")?.to_owned();
    client
        .post(
            &format!("/projects/{project_id}/commands"),
            json!({"command": "Build a recipe app for keto dieters"}),
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

    // The same three statements, straight to Postgres.
    let script = format!(
        "INSERT INTO rate_counters (bucket, window_start, hits)
  SELECT b, date_bin('60 seconds', now(), timestamptz 'epoch'), 1
  FROM unnest(ARRAY['ip:127.0.0.1', 'user:{user}']) AS b
  ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_counters.hits + 1
  RETURNING bucket, hits;
SELECT id, user_id, name, description, created_at, archived_at FROM projects WHERE id = '{project_id}';
SELECT project_id, run_id, seq, kind, payload, created_at FROM events WHERE project_id = '{project_id}' AND seq > 0 ORDER BY seq LIMIT 1;
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
        "  the route's SQL (pgbench)  {:>9.0} tx/s   p99 {:>6.2} ms",
        pg.per_second, pg.p99_ms
    );
    println!(
        "  ratios: throughput {:.2}x pgbench's, p99 {:.2}x pgbench's",
        api.per_second / pg.per_second,
        api.p99_ms / pg.p99_ms
    );
    Ok(())
}
