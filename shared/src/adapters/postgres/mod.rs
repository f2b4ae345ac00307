//! Postgres adapters (tokio-postgres behind a deadpool pool).

mod approvals;
mod artifacts;
mod budgets;
mod control;
mod effects;
mod events;
mod gateway;
mod idempotency;
mod ledger;
mod migrate;
mod outbox;
mod pool;
mod projects;
mod retention;
mod rows;
mod runs;
mod tasks;
mod tokens;
mod transitions;

pub use approvals::PgApprovalStore;
pub use artifacts::PgArtifactStore;
pub use budgets::PgBudgetStore;
pub use control::PgRunControl;
pub use events::PgEventLog;
pub use gateway::{PgConcurrencyLimiter, PgResponseCache, PgSemanticCache};
pub use idempotency::PgIdempotencyStore;
pub use ledger::PgLedger;
pub use migrate::{MIGRATIONS, MigrationError, MigrationReport, migrate};
pub use outbox::PgOutboxStore;
pub use pool::{Pool, connect, pool_for};
pub use projects::PgProjectStore;
pub use retention::PgRetention;
pub use runs::PgRunStore;
pub use tasks::PgTaskStore;
pub use tokens::PgTokenStore;
