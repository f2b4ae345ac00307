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

pub use host::{Options, Running, start};
