//! Autocrew's core library.
//!
//! `domain` is pure (no AWS, no Lambda, no I/O). `ports` are the traits handlers depend on.
//! `adapters` implement the ports on Postgres and AWS. `config` and `telemetry` are read and
//! set up once per process, in `main`.

pub mod adapters;
pub mod config;
pub mod crew;
pub mod domain;
pub mod ports;
pub mod services;
pub mod telemetry;
