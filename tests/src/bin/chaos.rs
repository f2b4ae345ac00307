//! `autocrew-chaos`: kill -9 the local runner in the middle of runs and check that every
//! run still succeeds with nothing lost or done twice (see `autocrew_tests::chaos`).
//! Needs the local stack's environment (`make up`, then `.local/stack.env`).

use autocrew_tests::chaos::{self, Phase, Runner, Settings};
use clap::Parser;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    about = "Kill -9 the local runner at chosen moments of runs; every run must still succeed."
)]
struct Args {
    /// How many rounds (phases take turns: planning, dispatch, model turn, tool call,
    /// completion, a Postgres restart when --restart-postgres is given, a push killed
    /// between its commit and its record when the fakes run, and the middle of a long
    /// streamed turn).
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// The runner binary.
    #[arg(long)]
    runner: PathBuf,
    /// The folder holding template.yaml.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    #[arg(long, default_value_t = 8797)]
    port: u16,
    /// Where the runners write their logs.
    #[arg(long, default_value = ".local/chaos-runner.log")]
    log: PathBuf,
    /// A shell command restarting Postgres, for the rounds that restart it mid-run.
    #[arg(long)]
    restart_postgres: Option<String>,
    /// Only this phase, every round.
    #[arg(long, value_enum)]
    phase: Option<Phase>,
    /// Seed of the kill moments, to replay a sequence of rounds.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    let url = autocrew_tests::stack_database_url()?;
    let model =
        std::sync::Arc::new(autocrew_tests::compatible_server::CompatibleServer::start(0).await?);
    let settings = Settings {
        runner: args.runner,
        root: args.root,
        port: args.port,
        prefix: format!("chaos-{}", std::process::id()),
        log: args.log,
        restart_postgres: args.restart_postgres,
        round_timeout: Duration::from_secs(240),
        fakes: std::env::var("GITHUB_API_URL")
            .ok()
            .and_then(|url| url.strip_suffix("/github").map(str::to_owned)),
        model: Some(model),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut runner = Some(Runner::start(&settings).await?);
    let (mut recoveries, mut completions, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..args.rounds {
        let phase = match args
            .phase
            .unwrap_or(Phase::ALL[usize::try_from(i).unwrap_or(0) % Phase::ALL.len()])
        {
            // Without the fakes there is no push to kill: a tool call stands in.
            Phase::PushCommit if settings.fakes.is_none() => Phase::ToolCall,
            phase => phase,
        };
        let current = match runner.take() {
            Some(r) => r,
            None => Runner::start(&settings).await?,
        };
        let outcome = chaos::round(&settings, current, phase, rng.random()).await;
        let result = match outcome {
            Ok((next, round)) => {
                runner = Some(next);
                chaos::check(&url, &round.run_id).await.map(|()| round)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(round) => {
                println!(
                    "round {:>3}/{} {:<11} run {} recovered in {:>5.1} s, completed in {:>5.1} s: ok",
                    i + 1,
                    args.rounds,
                    format!("{phase:?}"),
                    round.run_id,
                    round.recovery.as_secs_f64(),
                    round.completion.as_secs_f64()
                );
                recoveries.push(round.recovery);
                completions.push(round.completion);
            }
            Err(e) => {
                println!(
                    "round {:>3}/{} {phase:?}: FAILED: {e:#}",
                    i + 1,
                    args.rounds
                );
                failures.push(format!("round {} ({phase:?}): {e:#}", i + 1));
            }
        }
    }
    if let Some(runner) = runner {
        runner.kill().await?;
    }
    let p = |values: &[Duration], q| chaos::percentile(values, q).as_secs_f64();
    println!(
        "\n{} rounds: {} succeeded with every check passed (0 lost tasks, 0 duplicated effects), {} failed",
        args.rounds,
        recoveries.len(),
        failures.len()
    );
    println!(
        "recovery (kill until the interrupted work runs again, runner restart included): p50 {:.1} s, p95 {:.1} s, max {:.1} s",
        p(&recoveries, 50),
        p(&recoveries, 95),
        p(&recoveries, 100)
    );
    println!(
        "kill to the run's end: p50 {:.1} s, p95 {:.1} s",
        p(&completions, 50),
        p(&completions, 95)
    );
    for failure in &failures {
        println!("  {failure}");
    }
    let slow = p(&recoveries, 95) > 60.0;
    if slow {
        println!("recovery p95 is over the 60 s target");
    }
    Ok(if failures.is_empty() && !slow {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
