//! Users' connected accounts, with their credentials sealed (see `services::vault`).

use super::store::StoreError;
use crate::domain::connections::Connection;
use crate::domain::{ConnectionId, Service, UserId};
use async_trait::async_trait;

/// A credential as stored: AES-256-GCM under its own data key, which is kept wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// nonce (12 bytes) || ciphertext || tag (16 bytes)
    pub secret: Vec<u8>,
    pub wrapped_key: Vec<u8>,
    pub key_id: String,
}

/// A connection to make: who the credential acts as, and the credential sealed.
pub struct NewConnection {
    pub user: UserId,
    pub service: Service,
    pub account: String,
    pub hint: String,
    pub sealed: Sealed,
    /// An OAuth grant's: when the access token lapses, and the refresh token that renews it.
    pub renewal: Renewal,
}

/// When a connection's access token lapses and what renews it (nothing for a pasted token).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewal {
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The refresh token, sealed.
    pub refresh: Option<Sealed>,
}

/// A connection with its sealed credential, as a tool opens it.
#[derive(Debug, Clone)]
pub struct Credential {
    pub connection: Connection,
    pub sealed: Sealed,
    pub renewal: Renewal,
}

pub use crate::domain::kinds::WebFlowStatus;

/// A connection being made by OAuth's authorization-code flow: the user is at the
/// service's consent page, and the service will send the browser back with a code and
/// the state whose hash is kept here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebFlow {
    pub id: uuid::Uuid,
    pub user: UserId,
    pub service: Service,
    /// SHA-256 of the state sent to the service.
    pub state_hash: Vec<u8>,
    /// The PKCE code verifier, sealed.
    pub sealed: Sealed,
    pub redirect_uri: String,
    pub return_to: Option<String>,
    pub status: WebFlowStatus,
    /// Why it failed, in words the user is shown.
    pub reason: Option<String>,
    pub connection: Option<ConnectionId>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// A connection being made by OAuth's device flow: the service's device code, sealed, and
/// what the user is shown, until the user approves at the service or the code expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFlow {
    pub id: uuid::Uuid,
    pub user: UserId,
    pub service: Service,
    pub sealed: Sealed,
    pub user_code: String,
    pub verification_uri: String,
    pub interval_secs: u32,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Stores the connection; one already there for the same service is replaced (its new
    /// credential, account and an active status), keeping its id.
    async fn connect(&self, new: NewConnection) -> Result<Connection, StoreError>;
    /// `user`'s connections, by service.
    async fn connections(&self, user: UserId) -> Result<Vec<Connection>, StoreError>;
    /// Removes `user`'s connection; false when there is none (or it is another user's).
    async fn disconnect(&self, user: UserId, id: ConnectionId) -> Result<bool, StoreError>;
    /// `user`'s connection to `service` with its sealed credential, marked as used now.
    async fn credential(
        &self,
        user: UserId,
        service: Service,
    ) -> Result<Option<Credential>, StoreError>;
    /// Takes the lease on renewing the connection's access token for `lease`: false while
    /// another process holds it.
    async fn claim_renewal(
        &self,
        id: ConnectionId,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError>;
    /// Keeps the renewed access token (and the new refresh token, when the service rotated
    /// it; the old one otherwise) and gives the lease back.
    async fn renewed(
        &self,
        id: ConnectionId,
        sealed: &Sealed,
        renewal: &Renewal,
    ) -> Result<(), StoreError>;
    /// Gives the renewal lease back without renewing.
    async fn release_renewal(&self, id: ConnectionId) -> Result<(), StoreError>;
    /// Marks the connection invalid with the service's reason: tools using it fail at once
    /// until the user connects again.
    async fn invalidate(&self, id: ConnectionId, reason: &str) -> Result<(), StoreError>;
    /// Keeps a device flow while its user approves it at the service.
    async fn start_flow(&self, flow: &DeviceFlow) -> Result<(), StoreError>;
    /// `user`'s device flow `id` (none for another user's, or one that ended).
    async fn flow(&self, user: UserId, id: uuid::Uuid) -> Result<Option<DeviceFlow>, StoreError>;
    /// The service asked to poll less often.
    async fn slow_flow(&self, id: uuid::Uuid, interval_secs: u32) -> Result<(), StoreError>;
    /// Forgets the flow (it connected, was denied or expired).
    async fn end_flow(&self, id: uuid::Uuid) -> Result<(), StoreError>;
    /// Keeps a web flow while its user is at the service's consent page.
    async fn start_web_flow(&self, flow: &WebFlow) -> Result<(), StoreError>;
    /// `user`'s web flow `id` (none for another user's).
    async fn web_flow(&self, user: UserId, id: uuid::Uuid) -> Result<Option<WebFlow>, StoreError>;
    /// The pending, unexpired flow whose state hashes to `state_hash`, now `exchanging`:
    /// a state is good for one callback.
    async fn claim_web_flow(&self, state_hash: &[u8]) -> Result<Option<WebFlow>, StoreError>;
    /// The flow ended: connected (to `Ok`) or failed (with `Err`'s reason).
    async fn end_web_flow(
        &self,
        id: uuid::Uuid,
        outcome: Result<ConnectionId, &str>,
    ) -> Result<(), StoreError>;
}

/// Whether each of a user's tools that act in the world asks a person first (the default)
/// or runs on its own.
#[async_trait]
pub trait ToolPolicies: Send + Sync {
    /// Whether `user` lets calls of `tool` run without asking.
    async fn auto_approves(&self, user: UserId, tool: &str) -> Result<bool, StoreError>;
    /// The tools `user` set a policy for, with whether each is auto-approved.
    async fn policies(&self, user: UserId) -> Result<Vec<(String, bool)>, StoreError>;
    async fn set_policy(
        &self,
        user: UserId,
        tool: &str,
        auto_approve: bool,
    ) -> Result<(), StoreError>;
}

/// A deploy or build just started at a service.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub user: UserId,
    pub project: crate::domain::ProjectId,
    pub run: Option<crate::domain::RunId>,
    pub task: Option<crate::domain::TaskId>,
    pub service: Service,
    pub kind: String,
    pub status: crate::domain::DeploymentStatus,
    pub url: Option<String>,
    pub inspect_url: Option<String>,
    pub provider_id: String,
    pub error: Option<String>,
    /// A long job's: the tool call that started it, and when its watcher gives up.
    pub job: Option<(String, chrono::DateTime<chrono::Utc>)>,
}

/// Where a deployment stands now, as its service says; `None` keeps what was recorded.
#[derive(Debug, Clone, Default)]
pub struct DeploymentChange {
    pub status: Option<crate::domain::DeploymentStatus>,
    pub url: Option<String>,
    pub inspect_url: Option<String>,
    /// The thing's own id once it has one (an EAS build's, after its job receipt's).
    pub provider_id: Option<String>,
    pub error: Option<String>,
}

/// A task parked while the long job its tool call started runs.
pub struct JobPark<'a> {
    pub task: crate::domain::TaskId,
    pub attempt: u32,
    /// Where the agent loop resumes once the job ended.
    pub checkpoint: &'a serde_json::Value,
    /// The tool call that started the job (its deployments' `call_key`).
    pub call_key: &'a str,
    /// Seconds between the watcher's looks.
    pub poll_secs: u32,
}

/// The `deployments` rows; each change emits `deployment_updated` in the same transaction.
#[async_trait]
pub trait DeploymentStore: Send + Sync {
    /// Records a deploy or build; one already recorded under the same service and
    /// provider id (a retried call) is returned as it is.
    async fn record(
        &self,
        new: &NewDeployment,
    ) -> Result<super::Changed<crate::domain::connections::Deployment>, StoreError>;
    /// Applies `change` to a deployment, unless it already ended or nothing changed.
    async fn update(
        &self,
        id: crate::domain::DeploymentId,
        change: &DeploymentChange,
    ) -> Result<super::Changed<crate::domain::connections::Deployment>, StoreError>;
    /// A project's deployments, newest first (at most 100).
    async fn project_deployments(
        &self,
        project: crate::domain::ProjectId,
    ) -> Result<Vec<crate::domain::connections::Deployment>, StoreError>;
    /// The deployments one tool call started (a long job), oldest first.
    async fn job(
        &self,
        call_key: &str,
    ) -> Result<Vec<crate::domain::connections::Deployment>, StoreError>;
    /// Parks the running task while its job runs: the attempt ends `parked`, the task waits
    /// as `awaiting_job` with the checkpoint, its held budget is released, and the job's
    /// watch execution is started through the outbox.
    async fn park_for_job(&self, park: &JobPark<'_>) -> Result<super::Changed<()>, StoreError>;
    /// The job ended: its parked task is ready again (with one more attempt: the parked
    /// one did not fail) and dispatched. A task that moved on meanwhile is left alone.
    async fn job_ended(&self, call_key: &str) -> Result<super::Changed<()>, StoreError>;
    /// Jobs whose watch stopped (its execution failed or was lost): those still going
    /// `margin` past their deadline, with their task still parked, are recorded
    /// `timed_out` and their tasks made ready, at most `limit`. How many were ended.
    async fn end_abandoned_jobs(
        &self,
        margin: std::time::Duration,
        limit: u32,
    ) -> Result<super::Changed<usize>, StoreError>;
}
