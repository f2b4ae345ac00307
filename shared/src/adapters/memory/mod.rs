//! In-memory twins of the ports: the same contracts as the Postgres and S3 adapters, held
//! in a process's memory, so route logic and the steps' decisions are tested in
//! milliseconds with no database (`cargo test --lib`). They keep the ports' promises that
//! callers rely on (an owner's resource is the owner's, a missing one is `NotFound`,
//! sequences have no gaps), not Postgres's concurrency: the real-backend tier tests those.

mod accounts;
mod approvals;
mod artifacts;
mod blobs;
mod browse;
mod budgets;
mod connections;
mod conversations;
mod events;
mod ledger;
mod mailer;
mod policies;
mod projects;
mod published;
mod realtime;
mod runs;
mod uploads;

pub use accounts::MemAccounts;
pub use approvals::MemApprovals;
pub use artifacts::MemArtifacts;
pub use blobs::MemBlobs;
pub use browse::MemBrowse;
pub use budgets::MemBudgets;
pub use connections::MemConnections;
pub use conversations::MemConversations;
pub use events::MemEvents;
pub use ledger::MemLedger;
pub use mailer::MemMailer;
pub use policies::MemPolicies;
pub use projects::MemProjects;
pub use published::MemPublished;
pub use realtime::MemRealtime;
pub use runs::MemRuns;
pub use uploads::MemUploads;
