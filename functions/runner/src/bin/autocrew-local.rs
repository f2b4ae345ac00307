//! `autocrew-local`: the local runner. Reads DATABASE_URL, AWS_REGION and AWS_ENDPOINT_URL;
//! `--port N` (default 8787), `--root DIR` (default the current folder), `--prefix NAME`
//! (default autocrew-local: the emulator's resources are named after it, so two runners
//! with different prefixes never take each other's messages).

use autocrew_runner::{Options, start};
use autocrew_shared::config::ProcessEnv;
use std::process::ExitCode;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> ExitCode {
    autocrew_shared::telemetry::init();
    let port = match arg("--port").map(|p| p.parse::<u16>()) {
        None => 8787,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("error: --port must be a port number");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        root: arg("--root").map(Into::into).unwrap_or_else(|| ".".into()),
        prefix: arg("--prefix").unwrap_or_else(|| "autocrew-local".into()),
        port,
        concurrency_per_queue: 10,
    };
    let running = match start(options, &ProcessEnv).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("error: the runner could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = running.addr;
    println!(
        "autocrew-local: HTTP API http://{addr}  WebSocket ws://{addr}/ws  @connections http://{addr}/@connections"
    );
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                eprintln!("error: cannot listen for SIGTERM: {e}");
                return ExitCode::FAILURE;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    running.stop().await;
    ExitCode::SUCCESS
}
