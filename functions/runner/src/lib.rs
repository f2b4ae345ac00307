//! The local runner. It plays the pieces of AWS that moto cannot: it reads `template.yaml`,
//! creates the declared queues, bucket, table and state machine in moto, hosts every
//! function in one process, acts as Lambda's SQS event source mappings, and serves the HTTP
//! and WebSocket API Gateway, including the `@connections` management API, and fires the
//! template's schedules.

pub mod gateway;
pub mod host;
pub mod mapping;
pub mod provision;
pub mod schedule;
pub mod template;

pub use host::{Options, Running, api_state, start};

/// Runs one invocation of `function` and counts it, with its duration (see
/// `adapters::aws::metering`), as Lambda would bill it.
pub(crate) async fn invocation<T>(function: &str, work: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = work.await;
    autocrew_shared::adapters::aws::metering::invoked(function, started.elapsed());
    out
}
