//! Relational state: users and projects, runs, tasks.

use super::BackendError;
use crate::domain::records::{Artifact, Attempt, NewRun, Project, Run, Task, User};
use crate::domain::{ProjectId, RunId, RunStatus, TaskGraph, TaskId, TaskStatus, Tier, UserId};
use async_trait::async_trait;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {id} was not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("task {task} is {actual}, expected {expected}")]
    WrongTaskStatus {
        task: TaskId,
        expected: TaskStatus,
        actual: TaskStatus,
    },
    #[error("run {run} is already {status}")]
    RunEnded { run: RunId, status: RunStatus },
    #[error("the database failed")]
    Backend(#[source] BackendError),
}

/// Users and their projects.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Creates a user; an email already taken is a `Conflict`.
    async fn create_user(
        &self,
        email: &str,
        display_name: &str,
        tier: Tier,
    ) -> Result<User, StoreError>;
    /// Creates a project owned by `user`.
    async fn create_project(
        &self,
        user: UserId,
        name: &str,
        description: &str,
    ) -> Result<Project, StoreError>;
    async fn project(&self, id: ProjectId) -> Result<Project, StoreError>;
    async fn user(&self, id: UserId) -> Result<User, StoreError>;
    /// Opts the user in to the semantic cache with `threshold`, or out with `None`.
    async fn set_semantic_cache(
        &self,
        id: UserId,
        threshold: Option<f32>,
    ) -> Result<User, StoreError>;
}

/// Runs: one per command.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Stores a pending run; its execution name is derived from its id.
    async fn create_run(&self, new: NewRun) -> Result<Run, StoreError>;
    async fn run(&self, id: RunId) -> Result<Run, StoreError>;
    /// Records the ARN StartExecution answered with.
    async fn set_execution_arn(&self, id: RunId, arn: &str) -> Result<(), StoreError>;
    /// Keeps the token of the state machine's "execute" step, answered when the run settles.
    async fn set_execute_token(&self, id: RunId, token: &str) -> Result<(), StoreError>;
    /// Stores the validated plan as it was accepted.
    async fn record_plan(&self, id: RunId, plan: &serde_json::Value) -> Result<(), StoreError>;
    /// Moves the run on. A run that has ended does not move again (`RunEnded`).
    async fn set_status(
        &self,
        id: RunId,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<Run, StoreError>;
}

/// What completing a task changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Dependants whose last dependency this was: now `ready`. Decided in the same
    /// transaction as the completion, so racing completions never lose or double-release one.
    pub released: Vec<TaskId>,
    /// Every task of the run has ended.
    pub run_settled: bool,
}

/// What failing an attempt changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Attempts remain: the task is queued again.
    Retry { next_attempt: u32 },
    /// No attempts remain (or the error is not retryable): failed, dependants blocked.
    Failed {
        blocked: Vec<TaskId>,
        run_settled: bool,
    },
}

/// Tasks of runs, and the ready-set decisions.
#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Stores the graph's tasks for `run`; tasks with no dependencies start `ready`.
    async fn insert_graph(&self, run: &Run, graph: &TaskGraph) -> Result<Vec<Task>, StoreError>;
    async fn task(&self, id: TaskId) -> Result<Task, StoreError>;
    /// The run's tasks in plan order.
    async fn run_tasks(&self, run: RunId) -> Result<Vec<Task>, StoreError>;
    /// Moves ready tasks to `queued`, highest priority first, as many as the run's
    /// concurrency limit leaves room for. Two dispatchers never claim the same task.
    async fn claim_ready(&self, run: RunId) -> Result<Vec<Task>, StoreError>;
    /// `queued` → `ready`: a claimed task whose message could not be sent.
    async fn unclaim(&self, task: TaskId) -> Result<(), StoreError>;
    /// `queued` → `running` and opens the next attempt. `None` when the task is not queued:
    /// a duplicate delivery, to be acknowledged and ignored.
    async fn start_attempt(&self, task: TaskId) -> Result<Option<Attempt>, StoreError>;
    /// Whether the task is `running` on an attempt that started more than `age` ago: past
    /// the function's timeout, that attempt died without recording an outcome.
    async fn running_longer_than(
        &self,
        task: TaskId,
        age: std::time::Duration,
    ) -> Result<bool, StoreError>;
    /// `running` → `completed`, releasing dependants in the same transaction.
    async fn complete(
        &self,
        task: TaskId,
        result: &serde_json::Value,
    ) -> Result<Completion, StoreError>;
    /// Closes the running attempt as failed; retries while attempts remain and `retryable`.
    async fn fail_attempt(
        &self,
        task: TaskId,
        error: &str,
        retryable: bool,
    ) -> Result<Failure, StoreError>;
}

/// The artifacts table: what was stored in the blob store, by whom.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Records an artifact; recording the same bucket and key again is a no-op.
    async fn record(&self, artifact: &Artifact) -> Result<(), StoreError>;
    /// A run's artifacts, oldest first.
    async fn run_artifacts(&self, run: RunId) -> Result<Vec<Artifact>, StoreError>;
}
