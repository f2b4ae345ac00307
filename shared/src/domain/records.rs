//! Records as stored and returned by the ports.

use super::ids::{ArtifactId, ProjectId, RunId, TaskId, UserId};
use super::kinds::{AgentKind, Complexity, LlmCallOutcome, Priority, RunStatus, TaskStatus};
use super::money::MicroUsd;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A user of the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    /// The plan the user is on now: their live subscription's, or free.
    pub plan: super::plans::PlanId,
    /// The semantic cache's similarity threshold; `None` while the user has not opted in.
    #[serde(default)]
    pub semantic_cache_threshold: Option<f32>,
    /// When the user proved the email is theirs; `None` until then.
    #[serde(default)]
    pub email_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The user's IANA time zone (`UTC` until set): their schedules' default.
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// A project; its events carry a per-project sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Project {
    pub id: ProjectId,
    pub user_id: UserId,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    /// Archived projects take no new commands and are listed apart.
    #[serde(default)]
    pub archived_at: Option<DateTime<Utc>>,
}

/// Changes to a project's fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub archived: Option<bool>,
}

/// An attempt of a task as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct AttemptRecord {
    pub attempt_no: u32,
    pub status: String,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub use super::limits::MAX_DEADLINE_MINUTES;

/// What is needed to start a run.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub command: String,
    pub budget: MicroUsd,
    pub max_concurrency: u32,
    /// Past this long after its creation the run fails; `None`: no deadline.
    pub deadline: Option<std::time::Duration>,
    /// The client's `Idempotency-Key` and the sha-256 of its request: the same key with the
    /// same request gives the same run, never a second one.
    pub idempotency: Option<RequestKey>,
    /// The schedule whose fire starts it.
    pub schedule: Option<super::ScheduleId>,
}

/// An `Idempotency-Key` header and the sha-256 (hex) of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub key: String,
    pub request_sha256: String,
}

/// A run: one command, its plan, its execution and its money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    pub id: RunId,
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub command: String,
    pub status: RunStatus,
    /// The Step Functions execution name: derived from the run id, so unique.
    pub execution_name: String,
    pub execution_arn: Option<String>,
    /// The "execute" step's task token while the run's tasks run.
    #[serde(skip)]
    pub execute_token: Option<String>,
    pub plan: Option<serde_json::Value>,
    pub budget: MicroUsd,
    pub reserved: MicroUsd,
    pub spent: MicroUsd,
    pub max_concurrency: u32,
    pub error: Option<String>,
    /// Past this moment the run fails with a clear error.
    pub deadline_at: Option<DateTime<Utc>>,
    /// How many executions the run has had (a resume starts another).
    pub executions: u32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The schedule whose fire started the run, if one did.
    #[serde(default)]
    pub schedule_id: Option<super::ScheduleId>,
}

/// A task of a run, with the keys of the tasks it depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    pub id: TaskId,
    pub run_id: RunId,
    pub project_id: ProjectId,
    pub parent_task_id: Option<TaskId>,
    pub key: String,
    pub agent: AgentKind,
    pub title: String,
    pub description: String,
    pub status: TaskStatus,
    pub priority: Priority,
    pub complexity: Complexity,
    pub budget: MicroUsd,
    pub depends_on: Vec<TaskId>,
    pub attempts: u32,
    pub max_attempts: u32,
    pub result: Option<serde_json::Value>,
    pub error_log: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// One try of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    pub task_id: TaskId,
    pub attempt_no: u32,
    pub started_at: DateTime<Utc>,
    /// Which invocation of the attempt this is (1 for the first): an attempt spans as many
    /// invocations as its task needs.
    #[serde(default = "first_invocation")]
    pub invocation: u32,
    /// Where the task's agent loop stood at its last checkpoint (after a model turn, after
    /// its tool calls, or parked at a critical call): the attempt resumes there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<serde_json::Value>,
}

fn first_invocation() -> u32 {
    1
}

/// Who an LLM call is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attribution {
    pub user_id: UserId,
    pub project_id: ProjectId,
    pub run_id: Option<RunId>,
    pub task_id: Option<TaskId>,
    pub agent: AgentKind,
}

/// Token counts as the provider reported them, split by how each is billed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct TokenUsage {
    /// Input tokens billed at the base rate: cache reads and writes are not included.
    pub input: u32,
    pub output: u32,
    pub cache_write: u32,
    pub cache_read: u32,
}

/// One ledger row: an LLM call, priced and attributed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LlmCall {
    pub attribution: Attribution,
    pub provider: String,
    pub model: String,
    pub outcome: LlmCallOutcome,
    pub usage: TokenUsage,
    pub cost: MicroUsd,
    pub latency_ms: u32,
    pub error: Option<String>,
    /// Which row of one logical call this is (retries, fallbacks and hits each get one).
    pub attempt: u32,
    /// Milliseconds spent waiting before this attempt: for a concurrency slot, or for as
    /// long as the provider asked (`retry-after`).
    pub waited_ms: u32,
}

/// Sums over ledger rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct CostTotals {
    pub calls: u64,
    pub usage: TokenUsage,
    pub cost: MicroUsd,
}

/// A file in the blob store, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Artifact {
    pub id: ArtifactId,
    pub project_id: ProjectId,
    pub run_id: Option<RunId>,
    pub task_id: Option<TaskId>,
    pub bucket: String,
    pub key: String,
    pub content_type: String,
    pub size_bytes: u64,
    pub checksum_sha256: String,
}
