//! In-memory twins of the ports: the same contracts as the Postgres adapters, held in a
//! process's memory, so route logic and the steps' decisions are tested in milliseconds
//! with no database (`cargo test --lib`). They keep the ports' promises that callers rely
//! on (an owner's resource is the owner's, a missing one is `NotFound`), not Postgres's
//! concurrency: the real-backend tier tests those.

mod projects;

pub use projects::MemProjects;
