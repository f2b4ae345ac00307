//! The domain: ids, kinds, money, records and the task graph. No I/O here.

pub mod actions;
pub mod analytics;
pub mod approvals;
pub mod billing;
pub mod capabilities;
pub mod connections;
pub mod conversation;
pub mod decimal;
pub mod events;
pub mod graph;
#[cfg(feature = "graphql")]
mod graphql;
pub mod ids;
pub mod kinds;
pub mod limits;
pub mod marketing;
pub mod memory;
pub mod messages;
pub mod models;
pub mod money;
pub mod notices;
pub mod paging;
pub mod plans;
pub mod pricing;
pub mod realtime;
pub mod records;
pub mod requests;
pub mod retention;
pub mod revision;
pub mod routing;
pub mod schedule;
pub mod schema;
pub mod signature;

pub use approvals::{Approval, Decision, payload_hash, sha256_hex};
pub use decimal::Decimal;
pub use graph::{PlanError, PlanLimits, PlannedTask, TaskGraph};
pub use ids::{
    ApprovalId, ArtifactId, ConnectionId, DeliveryId, DeploymentId, DeviceFlowId, DeviceId,
    MemoryId, MessageId, ProjectId, RunId, ScheduleId, TaskId, UploadId, UserId, WebFlowId,
    WebhookId,
};
pub use kinds::{
    AgentKind, ApprovalStatus, AttemptStatus, Complexity, ConnectionStatus, DeploymentStatus,
    EmailPurpose, EventKind, FireOutcome, LlmCallOutcome, MemoryKind, MessageStatus, Priority,
    ReservationStatus, RunStatus, ScheduleCatchUp, ScheduleKind, ScheduleOverlap, Service,
    SubscriptionStatus, TaskStatus, UnknownVariant, WebFlowStatus,
};
pub use money::MicroUsd;
pub use plans::{Interval, Plan, PlanId, Plans};
