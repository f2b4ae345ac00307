//! The bodies of the queue messages, and what the outbox holds. The state machine writes `CallbackMessage`s (see
//! `infra/statemachine/run.asl.json`); the dispatcher writes `TaskMessage`s.

use crate::domain::{RunId, TaskId};
use serde::{Deserialize, Serialize};

/// Sent by a `waitForTaskToken` step: which run, and the token to answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallbackMessage {
    pub run_id: RunId,
    pub task_token: String,
    /// Only for the notify step: how the run ended, and why if it failed.
    #[serde(default)]
    pub outcome: Option<RunOutcome>,
    /// The state machine's error object (`{"Error": ..., "Cause": ...}`), when failed.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    /// For the plan queue: a revision of the running run's plan is asked for, and why
    /// (`domain::revision`); such a message has no task token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revise: Option<String>,
}

impl CallbackMessage {
    /// The failure's cause for people: `Cause`, else `Error`, else nothing.
    pub fn error_text(&self) -> Option<String> {
        let error = self.error.as_ref()?;
        error["Cause"]
            .as_str()
            .filter(|c| !c.is_empty())
            .or_else(|| error["Error"].as_str())
            .or_else(|| error.as_str())
            .map(str::to_owned)
    }
}

/// How a run ended, as the state machine tells the notify step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    Failed,
}

/// One task for one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskMessage {
    pub run_id: RunId,
    pub task_id: TaskId,
}

/// A reply for the orchestrator to write (the chat queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplyMessage {
    pub message_id: crate::domain::MessageId,
}

/// The run state machine's input: the ASL reads `$.run_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionInput {
    pub run_id: RunId,
}

/// The job-watch state machine's input: which call's job to look at, for which task, and
/// how long to wait between looks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchInput {
    pub call_key: String,
    pub task_id: TaskId,
    pub poll_secs: u32,
}

/// The execute step's answer: every task of the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Executed {
    pub run_id: RunId,
    /// How many tasks the run has.
    pub completed: i64,
}

/// A state machine's input or a task token's answer as JSON. These hold ids, names and
/// numbers only, so they always serialise.
pub fn as_json(value: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// A message the engine sends out, kept in the outbox until it is sent: written in the
/// same transaction as the state change it carries out (see migration 0005).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outgoing {
    /// A task for its agent's queue, delivered after `delay_secs` (a retry's backoff).
    Task {
        agent: crate::domain::AgentKind,
        message: TaskMessage,
        #[serde(default)]
        delay_secs: u32,
    },
    /// The plan step's message again, for the plan queue: its planner died.
    Replan { message: CallbackMessage },
    /// Answers a `waitForTaskToken` step.
    TaskSuccess {
        token: String,
        output: serde_json::Value,
    },
    /// Fails a `waitForTaskToken` step; `error` is the name `Catch` matches on.
    TaskFailure {
        token: String,
        error: String,
        cause: String,
    },
    /// Starts the run's execution under its unique name.
    StartExecution {
        run_id: RunId,
        name: String,
        input: ExecutionInput,
    },
    /// Stops the run's execution (a cancelled run).
    StopExecution { name: String, cause: String },
    /// Starts the watch execution of a long job under its unique name: the job-watch
    /// state machine polls the service until the job ends or its deadline passes.
    StartWatch { name: String, input: WatchInput },
    /// A conversation's pending reply, for the chat queue.
    Reply { message: ReplyMessage },
    /// Push notifications and webhook deliveries are due (`domain::notices`): the deliver
    /// step sends every notice due when it gets this, so one nudge is as good as many.
    DeliverNotices,
}

/// An outbox row: its id (to delete once sent), its message, and the trace it was written
/// in (W3C `traceparent`), which the relay sends it on in.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub id: i64,
    pub message: Outgoing,
    pub traceparent: Option<String>,
}

impl OutboxEntry {
    /// An entry written now, in the current trace.
    pub fn new(id: i64, message: Outgoing) -> Self {
        OutboxEntry {
            id,
            message,
            traceparent: crate::telemetry::current().map(|c| c.traceparent()),
        }
    }
}

/// One fire of a schedule, as EventBridge Scheduler delivers it to the schedule-fire
/// function: the schedule and the time the fire is for (its `<aws.scheduler.scheduled-time>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFire {
    pub schedule_id: super::ScheduleId,
    pub scheduled_at: chrono::DateTime<chrono::Utc>,
}

/// The target input EventBridge Scheduler sends: a `ScheduleFire` with the fire's time filled
/// in by Scheduler's context attribute.
pub fn schedule_fire_input(schedule: super::ScheduleId) -> String {
    format!(r#"{{"schedule_id":"{schedule}","scheduled_at":"<aws.scheduler.scheduled-time>"}}"#)
}
