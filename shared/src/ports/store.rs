//! Relational state: users and projects, runs, tasks.

use super::BackendError;
use super::Effects;
use crate::domain::events::{ArtifactStored, EventBody, TaskCompleted};
use crate::domain::messages::Outgoing;
use crate::domain::records::{Artifact, Attempt, NewRun, Project, ProjectChanges, Run, Task, User};
use crate::domain::{
    AgentKind, ProjectId, RunId, RunStatus, TaskGraph, TaskId, TaskStatus, UserId,
};
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
    #[error("the Idempotency-Key {key:?} was used with a different request")]
    IdempotencyMismatch { key: String },
    #[error("attempt {attempt} of task {task} is not the running one")]
    StaleAttempt { task: TaskId, attempt: u32 },
    #[error("run {run} is already {status}")]
    RunEnded { run: RunId, status: RunStatus },
    #[error("the database failed")]
    Backend(#[source] BackendError),
}

/// Users and their projects.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Creates a user, on the free plan with no trial credit; an email already taken is a
    /// `Conflict`.
    async fn create_user(&self, email: &str, display_name: &str) -> Result<User, StoreError>;
    /// Creates a project owned by `user`.
    async fn create_project(
        &self,
        user: UserId,
        name: &str,
        description: &str,
    ) -> Result<Project, StoreError>;
    async fn project(&self, id: ProjectId) -> Result<Project, StoreError>;
    /// Changes `user`'s project; another user's is `NotFound`.
    async fn update_project(
        &self,
        user: UserId,
        id: ProjectId,
        changes: &ProjectChanges,
    ) -> Result<Project, StoreError>;
    /// Deletes `user`'s project with its runs, tasks, events and artifact rows; a project
    /// with a run not ended is a `Conflict`, another user's is `NotFound`.
    async fn delete_project(&self, user: UserId, id: ProjectId) -> Result<(), StoreError>;
    async fn user(&self, id: UserId) -> Result<User, StoreError>;
    /// Sets the user's IANA time zone (checked by the caller).
    async fn set_timezone(&self, id: UserId, timezone: &str) -> Result<User, StoreError>;
    /// Opts the user in to the semantic cache with `threshold`, or out with `None`.
    async fn set_semantic_cache(
        &self,
        id: UserId,
        threshold: Option<f32>,
    ) -> Result<User, StoreError>;
}

/// Who may plan a run now (see `RunStore::begin_planning`).
#[derive(Debug, Clone, PartialEq)]
pub enum PlanLease {
    /// This worker plans: the run is `planning` under its token and heartbeat.
    Granted(Run),
    /// Another worker is planning and its heartbeat is fresh.
    Busy,
    /// The run is past planning (or ended): answer the token again and stop.
    Done(Run),
}

/// Runs: one per command.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Stores a pending run (its execution name derived from its id), appends
    /// `run_created` and writes the start of its execution to the outbox, in one transaction.
    /// With an idempotency key already used for the same request, the run it created comes
    /// back and nothing changes (no effects); with another request, `IdempotencyMismatch`.
    async fn create_run(&self, new: NewRun) -> Result<Changed<Run>, StoreError>;
    async fn run(&self, id: RunId) -> Result<Run, StoreError>;
    /// The trace the run was created in (W3C `traceparent`), if it was traced.
    async fn traceparent(&self, id: RunId) -> Result<Option<String>, StoreError>;
    /// Asks the orchestrator for a revision of the running run's plan (`domain::revision`),
    /// for `reason`: true when asked now; false when one is pending already, the run is
    /// not running, or it has had its revisions. While one is pending the run does not end.
    async fn request_revision(&self, run: RunId, reason: &str)
    -> Result<Changed<bool>, StoreError>;
    /// Records the ARN StartExecution answered with.
    async fn set_execution_arn(&self, id: RunId, arn: &str) -> Result<(), StoreError>;
    /// Takes the planning lease: a pending run, or a planning one whose planner's heartbeat
    /// is older than `stale_after`, becomes `planning` under `token`.
    async fn begin_planning(
        &self,
        id: RunId,
        token: &str,
        stale_after: std::time::Duration,
    ) -> Result<PlanLease, StoreError>;
    /// The planner is alive; `false` when the run is not planning any more.
    async fn plan_heartbeat(&self, id: RunId) -> Result<bool, StoreError>;
    /// Sends the plan message again for runs whose planner's heartbeat is older than
    /// `age` (it died), at most `limit`.
    async fn replan_stale(
        &self,
        age: std::time::Duration,
        limit: u32,
    ) -> Result<Effects, StoreError>;
    /// Moves the run on. A run that has ended does not move again (`RunEnded`).
    async fn set_status(
        &self,
        id: RunId,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<Run, StoreError>;
    /// Ends the run as `status` (with `error`), appending `kind` with `payload`, and writes
    /// `answer` to the outbox, in one transaction. A run already ended only gets the answer.
    async fn end_run(
        &self,
        id: RunId,
        status: RunStatus,
        error: Option<&str>,
        event: EventBody,
        answer: Outgoing,
    ) -> Result<Effects, StoreError>;
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
    /// Attempts remain: the task is queued again, its message sent after the backoff.
    Retry { next_attempt: u32 },
    /// No attempts remain (or the error is not retryable): failed, dependants blocked.
    Failed {
        blocked: Vec<TaskId>,
        run_settled: bool,
    },
}

/// Why an attempt failed, as the task store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    pub error: String,
    /// Worth another attempt (our own trouble, a provider's 5xx), if attempts remain.
    pub retryable: bool,
    /// How long the next attempt waits.
    pub backoff: std::time::Duration,
    /// Whether, failing for good, the task may have the plan revised around it: not when
    /// the budget stopped it (new work needs money too).
    pub replannable: bool,
}

/// A task's state change together with what it sends out (see `Effects`).
#[derive(Debug, Clone, PartialEq)]
pub struct Changed<T> {
    pub value: T,
    pub effects: Effects,
}

/// An attempt that started, with what its agent needs, read in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub attempt: Attempt,
    pub task: Task,
    pub run: Run,
    /// Every task of the run, in plan order (the agent reads its upstream tasks' results).
    pub run_tasks: Vec<Task>,
}

/// What `start_attempt` did.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per task start and matched at once; a box would only add an allocation"
)]
pub enum Start {
    Started(Changed<Started>),
    /// The task was not queued for that agent: nothing changed; here it is as it stands.
    NotQueued(Task),
}

/// Reading tasks as they stand: what the API shows of a run.
#[async_trait]
pub trait TaskReads: Send + Sync {
    async fn task(&self, id: TaskId) -> Result<Task, StoreError>;
    /// The run's tasks in plan order.
    async fn run_tasks(&self, run: RunId) -> Result<Vec<Task>, StoreError>;
}

/// Tasks of runs, and the ready-set decisions. Every change that sends something (a task
/// to its queue, an answer to the state machine) writes it to the outbox and appends its
/// events in the change's own transaction, and returns them as `Effects` to publish.
#[async_trait]
pub trait TaskStore: TaskReads {
    /// Stores the graph's tasks for `run`; tasks with no dependencies start `ready`.
    async fn insert_graph(&self, run: &Run, graph: &TaskGraph) -> Result<Vec<Task>, StoreError>;
    /// Accepts the plan of a planning run in one transaction: the plan and its tasks are
    /// stored, the run is `running`, `run_planned` (the `product` and the stored tasks) is
    /// appended and `answer` goes to the outbox. A run that is not planning any more
    /// changes nothing and gets its tasks back.
    async fn accept_plan(
        &self,
        run: &Run,
        plan: &serde_json::Value,
        graph: &TaskGraph,
        product: &str,
        answer: Outgoing,
    ) -> Result<Changed<Vec<Task>>, StoreError>;
    /// Moves ready tasks of a running run to `queued`, highest priority first, as many as
    /// its concurrency limit leaves room for, and sends each to its agent. Two dispatchers
    /// never claim the same task.
    async fn dispatch(&self, run: RunId) -> Result<Changed<Vec<Task>>, StoreError>;
    /// The execute step: keeps the run's execute token, dispatches, and answers the token
    /// at once if every task has already ended.
    async fn execute(&self, run: RunId, token: &str) -> Result<Effects, StoreError>;
    /// `queued` → `running` for `agent`, opening the next attempt (or, for a task handed
    /// on by `continue_attempt`, the next invocation of its open attempt), and reading the
    /// task, its run and the run's tasks in the same transaction. `NotQueued` when the task is not
    /// queued (a duplicate delivery, or one for a running attempt) or not `agent`'s.
    async fn start_attempt(&self, task: TaskId, agent: AgentKind) -> Result<Start, StoreError>;
    /// Stores where the running `attempt`'s agent loop stands. `false` when it is not the
    /// task's running attempt any more (cancelled, or reclaimed): its worker must stop.
    async fn save_checkpoint(
        &self,
        task: TaskId,
        attempt: u32,
        checkpoint: &serde_json::Value,
    ) -> Result<bool, StoreError>;
    /// Hands the running `attempt` on to a fresh invocation: the task goes back to
    /// `queued` with its attempt still open, and its message goes to the outbox in the same
    /// transaction. The next `start_attempt` resumes the same attempt at its checkpoint.
    async fn continue_attempt(&self, task: TaskId, attempt: u32) -> Result<Effects, StoreError>;
    /// Adds an invocation's time on the attempt (Lambda bills it whatever the outcome).
    async fn record_busy(
        &self,
        task: TaskId,
        attempt: u32,
        busy: std::time::Duration,
    ) -> Result<(), StoreError>;
    /// The attempt is alive. `false` when it is not the task's running attempt any more
    /// (cancelled, or failed as stale and run again elsewhere): its worker must stop.
    async fn heartbeat(&self, task: TaskId, attempt: u32) -> Result<bool, StoreError>;
    /// `running` → `completed` for `attempt`, appending `task_completed` (with the task's
    /// invocations and usage filled in), releasing dependants and dispatching in the same
    /// transaction.
    async fn complete(
        &self,
        task: TaskId,
        attempt: u32,
        result: &serde_json::Value,
        completed: TaskCompleted,
    ) -> Result<Changed<Completion>, StoreError>;
    /// Closes `attempt` as failed (releasing the budget reservations its calls still hold);
    /// queues the task again while attempts remain and the failure is retryable, else fails
    /// it and blocks its dependants.
    async fn fail_attempt(
        &self,
        task: TaskId,
        attempt: u32,
        failure: &AttemptFailure,
    ) -> Result<Changed<Failure>, StoreError>;
    /// Fails, as retryable, up to `limit` running attempts whose heartbeat is older than
    /// `age`: their workers died. Returns the effects (each task queued again, or failed).
    async fn reclaim_stale(
        &self,
        age: std::time::Duration,
        limit: u32,
    ) -> Result<Effects, StoreError>;
    /// `reclaim_stale` for one task: `None` when its running attempt is not stale.
    async fn reclaim_stale_task(
        &self,
        task: TaskId,
        age: std::time::Duration,
    ) -> Result<Option<Effects>, StoreError>;
    /// Applies a checked revision of the run's tasks as they were read (`expected`: their
    /// ids and statuses, so a task that started meanwhile is never changed); `None` when
    /// none is pending any more or the tasks moved on (the caller asks again).
    async fn revise(
        &self,
        run: RunId,
        expected: &[(TaskId, crate::domain::TaskStatus)],
        revision: &crate::domain::revision::Revision,
    ) -> Result<Changed<Option<crate::domain::revision::PlanRevised>>, StoreError>;
    /// Why a revision of the run's plan is pending, if one is.
    async fn pending_revision(&self, run: RunId) -> Result<Option<String>, StoreError>;
    /// Gives the pending revision up (`why` is logged with the tasks it blocks): each failed
    /// task blocks its dependants as it would have without one, and the run may end.
    async fn abandon_revision(&self, run: RunId, why: &str) -> Result<Effects, StoreError>;
}

/// An object a step put in the blob store, to be recorded once per `key` (the idempotency
/// key of the write), with its `artifact_stored` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub key: String,
    pub artifact: Artifact,
    pub stored: ArtifactStored,
}

/// The artifacts table: what was stored in the blob store, by whom.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Records an artifact; recording the same bucket and key again updates its size and
    /// checksum.
    async fn record(&self, artifact: &Artifact) -> Result<(), StoreError>;
    /// Records the artifacts a step wrote, each once per its idempotency key, in one
    /// transaction: each key is claimed, its artifact recorded and `artifact_stored`
    /// appended with its payload. A key already claimed changes nothing (a retry replayed
    /// the write). Returns the new records' effects.
    async fn record_once(&self, written: &[Written]) -> Result<Effects, StoreError>;
    /// A run's artifacts, oldest first.
    async fn run_artifacts(&self, run: RunId) -> Result<Vec<Artifact>, StoreError>;
}
