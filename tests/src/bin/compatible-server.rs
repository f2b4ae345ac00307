//! `compatible-server [--port N]`: the offline model behind an OpenAI-compatible API (see
//! `autocrew_tests::compatible_server`), for running the demo over the compatible adapter.
//! `PACE_TPS`, `PACE_FIRST_TOKEN_MS`, `PACE_FILE_TOKENS`, `PACE_STALL_EVERY` and
//! `PACE_ENDLESS_MODEL` give it a real model's pace (`autocrew_tests::pace`):
//!
//! ```sh
//! cargo run -p autocrew-tests --bin compatible-server -- --port 11434 &
//! OPENAI_BASE_URL=http://127.0.0.1:11434/v1 LLM_MODEL=offline-template-1 \
//!   MODEL_TABLE_PATH=$PWD/infra/local/compatible-models.json make demo
//! ```

use autocrew_tests::compatible_server::CompatibleServer;
use autocrew_tests::pace::Pace;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port = match args.iter().position(|a| a == "--port") {
        Some(i) => args
            .get(i + 1)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("--port needs a port number"))?,
        None => 11434,
    };
    let pace = Pace::from_env()?;
    let server = CompatibleServer::start_paced(port, pace.clone()).await?;
    println!(
        "OpenAI-compatible server (the offline model) at {}; pace: {pace:?}",
        server.base_url
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
