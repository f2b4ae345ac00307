//! What happens in a project, as one typed contract: producers build an `EventBody`, the
//! log stores its kind and payload, the WebSocket and the API send it, and clients match it.
//!
//! On the wire an event is `{project_id, run_id, seq, kind, payload, created_at}`. A run's
//! event also carries the run's tokens and cost so far inside its payload (`tokens`,
//! `cost_micro_usd`), summed by the log when it appends: that is `Event::spend`.

use super::actions::ApprovedAction;
use super::connections::Deployment;
use super::conversation::ChatMessage;
use super::{
    AgentKind, ApprovalId, ApprovalStatus, Complexity, EventKind, MessageId, MicroUsd, Priority,
    ProjectId, RunId, RunStatus, TaskId, UserId,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One entry of a project's event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub project_id: ProjectId,
    pub run_id: Option<RunId>,
    /// Strictly increasing within the project, with no gaps.
    pub seq: i64,
    pub body: EventBody,
    /// The run's tokens and cost when the event was appended (a run's logged events only).
    pub spend: Option<RunSpend>,
    pub created_at: DateTime<Utc>,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }

    /// An event read back from the log: its kind and stored payload, typed again.
    pub fn from_stored(
        (project_id, run_id, seq): (ProjectId, Option<RunId>, i64),
        kind: EventKind,
        payload: Value,
        created_at: DateTime<Utc>,
    ) -> Result<Event, serde_json::Error> {
        Event::from_wire(Wire {
            project_id,
            run_id,
            seq,
            kind,
            payload,
            created_at,
        })
    }

    /// The payload as a client receives it: the body's fields and the spend.
    pub fn payload(&self) -> Value {
        self.to_wire().map(|w| w.payload).unwrap_or(Value::Null)
    }

    fn from_wire(wire: Wire) -> Result<Event, serde_json::Error> {
        let spend = match (
            wire.payload.get("tokens"),
            wire.payload.get("cost_micro_usd"),
        ) {
            (Some(tokens), Some(cost)) => Some(RunSpend {
                tokens: serde_json::from_value(tokens.clone())?,
                cost_micro_usd: serde_json::from_value(cost.clone())?,
            }),
            _ => None,
        };
        // The adjacently tagged form, built around the payload without copying it.
        let mut tagged = serde_json::Map::with_capacity(2);
        tagged.insert("kind".into(), Value::String(wire.kind.as_str().into()));
        tagged.insert("payload".into(), wire.payload);
        let body = serde_json::from_value(Value::Object(tagged))?;
        Ok(Event {
            project_id: wire.project_id,
            run_id: wire.run_id,
            seq: wire.seq,
            body,
            spend,
            created_at: wire.created_at,
        })
    }

    fn to_wire(&self) -> Result<Wire, serde_json::Error> {
        let (kind, mut payload) = self.body.to_parts()?;
        if let (Some(spend), Some(fields)) = (&self.spend, payload.as_object_mut()) {
            fields.insert("tokens".into(), serde_json::to_value(spend.tokens)?);
            fields.insert(
                "cost_micro_usd".into(),
                serde_json::to_value(spend.cost_micro_usd)?,
            );
        }
        Ok(Wire {
            project_id: self.project_id,
            run_id: self.run_id,
            seq: self.seq,
            kind,
            payload,
            created_at: self.created_at,
        })
    }
}

/// The wire form: the kind beside a payload that holds the body's fields and the spend.
#[derive(Serialize, Deserialize)]
struct Wire {
    project_id: ProjectId,
    run_id: Option<RunId>,
    seq: i64,
    kind: EventKind,
    payload: Value,
    created_at: DateTime<Utc>,
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_wire()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Event::from_wire(Wire::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The wire form's schema: where the event sits (`project_id`, `run_id`, `seq`,
/// `created_at`) with its kind and payload (`EventBody`); a run's payload also has
/// `tokens` and `cost_micro_usd`.
impl utoipa::PartialSchema for Event {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Ref};
        let place = ObjectBuilder::new()
            .property("project_id", <ProjectId as utoipa::PartialSchema>::schema())
            .required("project_id")
            .property("run_id", utoipa::schema!(Option<RunId>))
            .required("run_id")
            .property("seq", utoipa::schema!(i64))
            .required("seq")
            .property("created_at", utoipa::schema!(DateTime<Utc>))
            .required("created_at")
            .description(Some(
                "A logged event. A run's payload also carries `tokens` ({input, output}) and `cost_micro_usd`: the run's spend when the event was logged.",
            ));
        AllOfBuilder::new()
            .item(place)
            .item(Ref::from_schema_name("EventBody"))
            .into()
    }
}

impl utoipa::ToSchema for Event {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "EventBody".into(),
            <EventBody as utoipa::PartialSchema>::schema(),
        ));
        <EventBody as utoipa::ToSchema>::schemas(schemas);
    }
}

/// An event pushed to the project's followers as it happens and never logged (a model's
/// output as it streams): no sequence, no spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveEvent {
    pub project_id: ProjectId,
    pub run_id: Option<RunId>,
    #[serde(flatten)]
    pub body: EventBody,
    pub created_at: DateTime<Utc>,
}

/// A run's tokens and cost so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunSpend {
    pub tokens: TokenTotals,
    pub cost_micro_usd: MicroUsd,
}

/// Input and output tokens, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenTotals {
    pub input: i64,
    pub output: i64,
}

/// What happened, by kind. Serialised as `{"kind": ..., "payload": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum EventBody {
    RunCreated(RunCreated),
    RunPlanned(RunPlanned),
    RunFailed(RunEnded),
    RunCompleted(RunEnded),
    TaskQueued(TaskQueued),
    TaskStarted(TaskStarted),
    TaskProgress(TaskProgress),
    TaskCompleted(TaskCompleted),
    TaskFailed(TaskFailed),
    TaskBlocked(TaskBlocked),
    ArtifactStored(ArtifactStored),
    ApprovalRequested(ApprovalRequested),
    ApprovalDecided(ApprovalDecided),
    RunCancelled(RunEnded),
    RunResumed(RunResumed),
    TaskRetried(TaskRetried),
    ActionExecuted(ActionExecuted),
    MessagePosted(MessagePosted),
    ReplyProgress(ReplyProgress),
    DeploymentUpdated(Deployment),
    MemoryRecalled(MemoryRecalled),
    MorningReport(super::marketing::MorningReport),
    PlanRevised(super::revision::PlanRevised),
}

impl EventBody {
    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::RunCreated(_) => EventKind::RunCreated,
            EventBody::RunPlanned(_) => EventKind::RunPlanned,
            EventBody::RunFailed(_) => EventKind::RunFailed,
            EventBody::RunCompleted(_) => EventKind::RunCompleted,
            EventBody::TaskQueued(_) => EventKind::TaskQueued,
            EventBody::TaskStarted(_) => EventKind::TaskStarted,
            EventBody::TaskProgress(_) => EventKind::TaskProgress,
            EventBody::TaskCompleted(_) => EventKind::TaskCompleted,
            EventBody::TaskFailed(_) => EventKind::TaskFailed,
            EventBody::TaskBlocked(_) => EventKind::TaskBlocked,
            EventBody::ArtifactStored(_) => EventKind::ArtifactStored,
            EventBody::ApprovalRequested(_) => EventKind::ApprovalRequested,
            EventBody::ApprovalDecided(_) => EventKind::ApprovalDecided,
            EventBody::RunCancelled(_) => EventKind::RunCancelled,
            EventBody::RunResumed(_) => EventKind::RunResumed,
            EventBody::TaskRetried(_) => EventKind::TaskRetried,
            EventBody::ActionExecuted(_) => EventKind::ActionExecuted,
            EventBody::MessagePosted(_) => EventKind::MessagePosted,
            EventBody::ReplyProgress(_) => EventKind::ReplyProgress,
            EventBody::DeploymentUpdated(_) => EventKind::DeploymentUpdated,
            EventBody::MemoryRecalled(_) => EventKind::MemoryRecalled,
            EventBody::MorningReport(_) => EventKind::MorningReport,
            EventBody::PlanRevised(_) => EventKind::PlanRevised,
        }
    }

    /// Its kind and payload, as the log stores them.
    pub fn to_parts(&self) -> Result<(EventKind, Value), serde_json::Error> {
        let payload = match serde_json::to_value(self)? {
            Value::Object(mut fields) => fields.remove("payload").unwrap_or(Value::Null),
            other => other,
        };
        Ok((self.kind(), payload))
    }
}

/// A command became a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunCreated {
    pub command: String,
    pub deadline_at: Option<DateTime<Utc>>,
}

/// The orchestrator's plan was accepted: what it will build and its tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunPlanned {
    pub product: String,
    pub tasks: Vec<PlannedTaskView>,
}

impl RunPlanned {
    /// The plan as stored: each task with its dependencies' keys.
    pub fn of(product: &str, tasks: &[super::records::Task]) -> Self {
        let keys: std::collections::HashMap<_, _> =
            tasks.iter().map(|t| (t.id, t.key.as_str())).collect();
        RunPlanned {
            product: product.to_owned(),
            tasks: tasks
                .iter()
                .map(|t| PlannedTaskView::of(t, &keys))
                .collect(),
        }
    }
}

/// One task of an accepted plan, its dependencies by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannedTaskView {
    pub task_id: TaskId,
    pub key: String,
    pub agent: AgentKind,
    pub title: String,
    pub priority: Priority,
    pub complexity: Complexity,
    pub depends_on: Vec<String>,
}

impl PlannedTaskView {
    /// `task` with its dependencies named by `keys` (task id → key).
    pub fn of(
        task: &super::records::Task,
        keys: &std::collections::HashMap<super::TaskId, &str>,
    ) -> Self {
        PlannedTaskView {
            task_id: task.id,
            key: task.key.clone(),
            agent: task.agent,
            title: task.title.clone(),
            priority: task.priority,
            complexity: task.complexity,
            depends_on: task
                .depends_on
                .iter()
                .filter_map(|d| keys.get(d).map(|k| (*k).to_owned()))
                .collect(),
        }
    }
}

/// A run ended (`run_completed`, `run_failed`) or was cancelled (`run_cancelled`). What
/// is known depends on who ended it: the state machine's last step gives the summary, a
/// cancel or the deadline the tasks it cancelled, a rejected plan only the error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunEnded {
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_tasks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_tasks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_calls: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

/// Which task an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskRef {
    pub task_id: TaskId,
    pub key: String,
    pub agent: AgentKind,
}

impl TaskRef {
    pub fn of(task: &super::records::Task) -> Self {
        TaskRef {
            task_id: task.id,
            key: task.key.clone(),
            agent: task.agent,
        }
    }
}

/// A task was sent to its agent's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskQueued {
    #[serde(flatten)]
    pub task: TaskRef,
    pub title: String,
    pub priority: Priority,
}

/// An agent began (or resumed, in a later invocation) an attempt of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskStarted {
    #[serde(flatten)]
    pub task: TaskRef,
    pub title: String,
    pub attempt: u32,
    pub invocation: u32,
}

/// A model turn of a task, live: output as it streams, or why the call waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskProgress {
    #[serde(flatten)]
    pub task: TaskRef,
    pub step: u32,
    pub invocation: u32,
    #[serde(flatten)]
    pub stage: ProgressStage,
}

/// What a `task_progress` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum ProgressStage {
    /// The next piece of the model's output and the characters streamed so far.
    Streaming {
        /// Absent once the log compacted the turn into its last event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<String>,
        chars: u64,
        /// Logged turns of an ended run are folded: each piece but the last is `compacted`
        /// (its text moved on), and the last (`final`) holds the turn's whole text.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        compacted: bool,
        #[serde(default, rename = "final", skip_serializing_if = "std::ops::Not::not")]
        whole_turn: bool,
    },
    /// The call waits for a concurrency slot, or as long as the provider asked.
    Waiting { waiting: String },
}

/// A task completed: its summary, files, wall time, and what its model calls used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskCompleted {
    #[serde(flatten)]
    pub task: TaskRef,
    pub summary: String,
    pub files: u64,
    pub files_checked: u64,
    pub steps: u32,
    /// From its first start, across attempts and invocations.
    pub duration_ms: i64,
    /// Filled in by the store when it completes the task.
    #[serde(default)]
    pub invocations: i64,
    #[serde(default)]
    pub task_usage: TaskUsage,
    /// Memories it wrote (or merged into ones it confirmed).
    #[serde(default)]
    pub remembered: u64,
}

/// One task's model calls, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskUsage {
    pub input: i64,
    pub output: i64,
    pub cost_micro_usd: MicroUsd,
}

/// An attempt of a task failed; another follows when `will_retry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskFailed {
    #[serde(flatten)]
    pub task: TaskRef,
    pub attempt: u32,
    pub error: String,
    pub will_retry: bool,
}

/// A task will not run: a task it depends on failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskBlocked {
    pub task_id: TaskId,
    pub key: String,
    /// The failed task's key.
    pub blocked_by: String,
    pub reason: String,
}

/// An object was stored: a file an agent wrote (`task_id` and its task's `key`, or the
/// run's summary), or a file the user uploaded (`uploaded`, `filename`; `key` is then the
/// object's key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactStored {
    #[serde(default)]
    pub task_id: Option<TaskId>,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
    pub size_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_sha256: Option<String>,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uploaded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// A critical tool call waits for a person's decision on exactly this payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalRequested {
    pub approval_id: ApprovalId,
    #[serde(flatten)]
    pub task: TaskRef,
    pub tool: String,
    pub payload: ApprovedAction,
    pub payload_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// A person decided an approval (or it expired).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalDecided {
    pub approval_id: ApprovalId,
    #[serde(flatten)]
    pub task: TaskRef,
    pub tool: String,
    pub status: ApprovalStatus,
    pub reason: Option<String>,
    pub decided_by: Option<UserId>,
}

/// A cancelled or failed run was resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunResumed {
    pub reopened_tasks: u64,
    pub execution_name: String,
    pub budget_micro_usd: MicroUsd,
    pub previous_status: RunStatus,
}

/// A failed task was sent again, with the tasks it had blocked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskRetried {
    #[serde(flatten)]
    pub task: TaskRef,
    pub reopened_tasks: u64,
}

/// A critical action ran: approved by a person (`approval_id`), or without asking because
/// the user's policy lets it (`auto_approved`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionExecuted {
    pub approval_id: Option<ApprovalId>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_approved: bool,
    pub task_id: TaskId,
    pub tool: String,
    pub result: Value,
}

/// A message of the project's conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessagePosted {
    pub message: ChatMessage,
}

/// A piece of a reply as the model writes it (pushed, never logged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplyProgress {
    pub message_id: MessageId,
    pub delta: String,
    pub chars: u64,
}

/// Memories recalled into a task's context (or the planner's, with no task), and the
/// user's similar projects the planner was shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemoryRecalled {
    pub task: Option<TaskRef>,
    pub memories: Vec<RecalledMemory>,
    #[serde(default)]
    pub projects: Vec<super::memory::SimilarProject>,
}

/// One recalled memory, as the event shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecalledMemory {
    pub memory_id: super::MemoryId,
    pub kind: super::MemoryKind,
    pub content: String,
    pub similarity: f32,
    pub user_wide: bool,
}

impl From<&super::memory::MemoryHit> for RecalledMemory {
    fn from(hit: &super::memory::MemoryHit) -> Self {
        RecalledMemory {
            memory_id: hit.memory.id,
            kind: hit.memory.kind,
            content: hit.memory.content.clone(),
            similarity: hit.similarity,
            user_wide: hit.memory.project_id.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task() -> TaskRef {
        TaskRef {
            task_id: TaskId::new(),
            key: "landing".into(),
            agent: AgentKind::Developer,
        }
    }

    #[test]
    fn a_logged_run_event_carries_the_spend_inside_its_payload() {
        let event = Event {
            project_id: ProjectId::new(),
            run_id: Some(RunId::new()),
            seq: 7,
            body: EventBody::TaskFailed(TaskFailed {
                task: task(),
                attempt: 2,
                error: "boom".into(),
                will_retry: true,
            }),
            spend: Some(RunSpend {
                tokens: TokenTotals {
                    input: 10,
                    output: 4,
                },
                cost_micro_usd: MicroUsd(33),
            }),
            created_at: Utc::now(),
        };
        let wire = serde_json::to_value(&event).unwrap();
        assert_eq!(wire["kind"], "task_failed");
        assert_eq!(wire["seq"], 7);
        assert_eq!(wire["payload"]["key"], "landing");
        assert_eq!(wire["payload"]["will_retry"], true);
        assert_eq!(wire["payload"]["tokens"], json!({"input": 10, "output": 4}));
        assert_eq!(wire["payload"]["cost_micro_usd"], 33);
        let back: Event = serde_json::from_value(wire).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn a_live_event_has_no_sequence_and_no_spend() {
        let event = LiveEvent {
            project_id: ProjectId::new(),
            run_id: None,
            body: EventBody::ReplyProgress(ReplyProgress {
                message_id: MessageId::new(),
                delta: "Hel".into(),
                chars: 3,
            }),
            created_at: Utc::now(),
        };
        let wire = serde_json::to_value(&event).unwrap();
        assert!(wire.get("seq").is_none(), "{wire}");
        assert_eq!(wire["kind"], "reply_progress");
        assert_eq!(
            wire["payload"],
            json!({"message_id": match &event.body { EventBody::ReplyProgress(p) => p.message_id, _ => unreachable!() }, "delta": "Hel", "chars": 3})
        );
        assert_eq!(serde_json::from_value::<LiveEvent>(wire).unwrap(), event);
    }

    #[test]
    fn progress_stages_are_told_apart_by_their_stage() {
        let streaming = TaskProgress {
            task: task(),
            step: 3,
            invocation: 1,
            stage: ProgressStage::Streaming {
                delta: Some("fn main".into()),
                chars: 7,
                compacted: false,
                whole_turn: false,
            },
        };
        let wire = serde_json::to_value(EventBody::TaskProgress(streaming.clone())).unwrap();
        assert_eq!(wire["payload"]["stage"], "streaming");
        assert_eq!(wire["payload"]["delta"], "fn main");
        let waiting = json!({"kind": "task_progress", "payload": {
            "task_id": TaskId::new(), "key": "k", "agent": "marketer", "step": 1,
            "invocation": 2, "stage": "waiting", "waiting": "for a slot"}});
        let EventBody::TaskProgress(parsed) = serde_json::from_value(waiting).unwrap() else {
            panic!("not a task_progress");
        };
        assert_eq!(
            parsed.stage,
            ProgressStage::Waiting {
                waiting: "for a slot".into()
            }
        );
        // A turn the log compacted keeps its count and loses its piece.
        let compacted = json!({"kind": "task_progress", "payload": {
            "task_id": TaskId::new(), "key": "k", "agent": "marketer", "step": 1,
            "invocation": 1, "stage": "streaming", "chars": 40, "compacted": true}});
        assert!(serde_json::from_value::<EventBody>(compacted).is_ok());
    }

    #[test]
    fn every_kind_has_its_variant() {
        // `kind()` is exhaustive over the variants; this checks the names agree with the
        // Postgres enum's, through serde.
        let body = EventBody::RunCancelled(RunEnded {
            error: Some("stop".into()),
            cancelled_tasks: Some(3),
            ..RunEnded::default()
        });
        let (kind, payload) = body.to_parts().unwrap();
        assert_eq!(kind, EventKind::RunCancelled);
        assert_eq!(payload, json!({"error": "stop", "cancelled_tasks": 3}));
        assert_eq!(serde_json::to_value(&body).unwrap()["kind"], kind.as_str());
    }
}
