//! A project's conversation: the user's messages and the orchestrator's replies, and what
//! a reply is written from.

use super::{MessageId, MicroUsd, ProjectId, RunId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Author {
    User,
    /// The orchestrator, answering.
    Assistant,
}

pub use super::kinds::MessageStatus;

/// One message of a project's thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    pub id: MessageId,
    pub project_id: ProjectId,
    pub author: Author,
    pub text: String,
    pub status: MessageStatus,
    /// The user's message a reply answers.
    pub reply_to: Option<MessageId>,
    /// The run a message started (a message sent as a command).
    pub run_id: Option<RunId>,
    /// Why a reply failed.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A run as the orchestrator is told about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunBrief {
    pub run_id: RunId,
    pub command: String,
    pub status: String,
    pub cost_micro_usd: i64,
    pub tasks_done: i64,
    pub tasks_total: i64,
    pub created_at: DateTime<Utc>,
}

/// What a reply is written from: the project, its latest runs and files, what it cost,
/// and the thread so far (oldest first, the question last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectBrief {
    pub project: String,
    pub description: String,
    pub runs: Vec<RunBrief>,
    pub runs_total: i64,
    /// Keys of the latest artifacts, shortest form (under the project).
    pub artifacts: Vec<String>,
    pub artifacts_total: i64,
    pub cost_micro_usd: MicroUsd,
    pub pending_approvals: i64,
}
