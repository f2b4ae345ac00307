//! The API's request bodies: the routes read them, the CLI (and any Rust client) writes
//! them, and the OpenAPI document's request schemas are derived from them. Unknown fields
//! are refused, so a misspelt field is a 400 naming it rather than a silent default.

use super::Decision;
use serde::{Deserialize, Serialize};

/// Largest upload: 25 MiB.
pub const MAX_UPLOAD_BYTES: u64 = 25 * 1024 * 1024;

/// The types a user may upload: images, PDF and text formats. Each has a check of its
/// bytes in `matches_type`.
pub const UPLOAD_TYPES: [&str; 9] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/json",
];

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `approve` or `reject`.
    #[schema(schema_with = super::schema::decision)]
    pub decision: Decision,
    /// The sha-256 of the payload the person was shown (`payload_hash` of the approval).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub payload_hash: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(min_length = 10, max_length = 256)]
    pub password: String,
    #[serde(default)]
    #[schema(max_length = 100)]
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    pub token: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: Option<String>,
    #[serde(default)]
    pub archived: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnectionBody {
    #[schema(schema_with = super::schema::service)]
    pub service: String,
    /// The service's API token (a GitHub personal access token, a Vercel token, an Expo
    /// access token, a Resend API key, an X or LinkedIn OAuth 2.0 user token).
    #[schema(min_length = 1, max_length = 4096)]
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceFlowBody {
    /// The service to connect by its OAuth device flow (GitHub offers one).
    #[schema(schema_with = super::schema::service)]
    pub service: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    #[schema(min_length = 1, max_length = 4000)]
    pub text: String,
    /// Start a run with the text as its command instead of asking the orchestrator.
    #[serde(default)]
    pub as_command: bool,
    /// Amend this running run's plan: the orchestrator revises the tasks that have not
    /// started, with the text as the reason (`domain::revision`).
    #[serde(default)]
    pub amend_run_id: Option<super::RunId>,
    /// With `as_command`: the run's budget in dollars (default 5).
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 100)]
    pub budget_usd: Option<f64>,
    /// With `as_command`: tasks running at once (default 4).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 16)]
    pub max_concurrency: Option<u32>,
    /// With `as_command`: minutes before an unfinished run fails (default 360).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1440)]
    pub deadline_minutes: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `null` opts out; 0.5 to 1.0 opts in at that cosine similarity; absent, unchanged.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<f32>, minimum = 0.5, maximum = 1.0)]
    pub semantic_cache_threshold: Option<Option<f32>>,
    /// The caller's IANA time zone (`Europe/Paris`): their schedules' default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 64)]
    pub timezone: Option<String>,
    /// AI spend a subscriber allows past the included budget each period, in dollars
    /// (`"25"`), metered and invoiced by Stripe; `null` turns overage off; absent, unchanged.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, example = "25", max_length = 20)]
    pub overage_cap_usd: Option<Option<String>>,
}

/// A field that is present, as `Some` of its value (which may be `null`): tells `null`
/// from absent.
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebFlowBody {
    /// The service to connect by its OAuth web flow (X, LinkedIn).
    #[schema(schema_with = super::schema::service)]
    pub service: String,
    /// Where the browser goes once the flow ended, with `status`, `service`, `flow_id` and
    /// `connection_id` or `error` added to its query: the app's deep link
    /// (`autocrew://connections`), or an https URL. Without it, the callback shows a page.
    #[schema(max_length = 2048)]
    pub return_to: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// `ask`: every call waits for the caller's approval of its exact payload; `auto`: calls
    /// run without asking (still once per idempotency key, within the tool's limits).
    #[schema(pattern = "^(ask|auto)$")]
    pub approval: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCommand {
    #[schema(min_length = 1, max_length = 4000)]
    pub command: String,
    /// The run's budget in dollars (default 5).
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 100)]
    pub budget_usd: Option<f64>,
    /// Tasks running at once (default 4).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 16)]
    pub max_concurrency: Option<u32>,
    /// Minutes before an unfinished run fails (default 360).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1440)]
    pub deadline_minutes: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// A new budget for the run, in dollars.
    #[serde(default)]
    pub budget_usd: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    #[schema(min_length = 1, max_length = 200)]
    pub filename: String,
    #[schema(schema_with = super::schema::upload_type)]
    pub content_type: String,
    #[schema(minimum = 1, maximum = 26_214_400)]
    pub size_bytes: u64,
}

/// `POST /projects/{project_id}/schedules`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// `cron(minutes hours day-of-month month day-of-week year)`, `rate(value unit)` or
    /// `at(yyyy-mm-ddThh:mm:ss)`, as EventBridge Scheduler reads them.
    #[schema(min_length = 1, max_length = 256)]
    pub expression: String,
    /// The IANA time zone the expression is read in (default UTC).
    #[serde(default)]
    #[schema(max_length = 64)]
    pub timezone: Option<String>,
    /// The command each fire runs.
    #[schema(min_length = 1, max_length = 4000)]
    pub command: String,
    /// Each run's budget in dollars (default 5).
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 100)]
    pub budget_usd: Option<f64>,
    /// While the last run is going, a fire is skipped (default) or waits for it.
    #[serde(default)]
    pub overlap: Option<super::ScheduleOverlap>,
    /// Fires missed while nothing fired the schedule are skipped (default), or make one run.
    #[serde(default)]
    pub catch_up: Option<super::ScheduleCatchUp>,
    /// Whether it fires (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `PATCH /schedules/{schedule_id}`: what to change; `enabled` pauses and resumes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub expression: Option<String>,
    #[serde(default)]
    #[schema(max_length = 64)]
    pub timezone: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 4000)]
    pub command: Option<String>,
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 100)]
    pub budget_usd: Option<f64>,
    #[serde(default)]
    pub overlap: Option<super::ScheduleOverlap>,
    #[serde(default)]
    pub catch_up: Option<super::ScheduleCatchUp>,
    #[serde(default)]
    pub enabled: Option<bool>,
}
