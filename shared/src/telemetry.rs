//! Logging set-up, once per process.

use tracing_subscriber::EnvFilter;

/// JSON lines on Lambda (CloudWatch parses them), compact text elsewhere; `RUST_LOG`
/// filters, `info` by default (Postgres NOTICEs only from `warn`). Calling it twice is
/// harmless.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn"));
    // Colours only for a person at a terminal, never in CI logs or CloudWatch.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        builder
            .json()
            .with_current_span(true)
            .without_time()
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
