//! The crew's contracts with the model: how a command becomes a plan, and how a task
//! becomes an agent's output. Requests and answers are plain JSON with a schema, so the
//! same code works with the offline provider and with real models.

pub mod agents;
pub mod chat;
pub mod code_check;
pub mod planner;
pub mod profiles;
pub mod schema;
pub mod strict;
pub mod tools;

pub use agents::AgentTaskContext;
pub use planner::{PlanReply, PlanningError};
pub use profiles::{AgentProfile, AgentProfiles, ProfileError};
pub use schema::SchemaViolations;

/// The `title` of the plan's JSON Schema, which names it on the wire (OpenAI's
/// `json_schema.name`, Anthropic's forced answer tool).
pub const PLAN_SCHEMA_TITLE: &str = "autocrew_plan";
