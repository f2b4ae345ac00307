//! The `autocrew` command's library: the API client and the `run` flow, also used by the
//! end-to-end tests.

pub mod account;
pub mod approvals;
pub mod args;
pub mod billing;
pub mod browse;
pub mod chat;
pub mod client;
pub mod connect;
pub mod dlq;
pub mod health;
pub mod run;
pub mod schedule;
pub mod session;
