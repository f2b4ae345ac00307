//! What the steps answer their state machines' task tokens with: the ASL reads these
//! fields (`infra/`), so each is a type rather than a literal.

use autocrew_shared::domain::{RunId, RunStatus};
use serde::Serialize;

/// The plan was accepted with this many tasks.
#[derive(Serialize)]
pub(crate) struct Planned {
    pub run_id: RunId,
    pub tasks: usize,
}

/// The run's `summary.json` is stored at `summary_key`.
#[derive(Serialize)]
pub(crate) struct Compiled {
    pub run_id: RunId,
    pub summary_key: String,
}

/// The run ended with `status`.
#[derive(Serialize)]
pub(crate) struct Notified {
    pub run_id: RunId,
    pub status: RunStatus,
}

/// A look at a long job: whether it is done.
#[derive(Serialize)]
pub(crate) struct Watched {
    pub done: bool,
}
