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
    ) -> Result<Option<(Connection, Sealed)>, StoreError>;
    /// Marks the connection invalid with the service's reason: tools using it fail at once
    /// until the user connects again.
    async fn invalidate(&self, id: ConnectionId, reason: &str) -> Result<(), StoreError>;
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
    /// Moves a deployment to `status` (with its URL or error), unless it already ended.
    async fn update(
        &self,
        id: crate::domain::DeploymentId,
        status: crate::domain::DeploymentStatus,
        (url, error): (Option<&str>, Option<&str>),
    ) -> Result<super::Changed<crate::domain::connections::Deployment>, StoreError>;
    /// A project's deployments, newest first (at most 100).
    async fn project_deployments(
        &self,
        project: crate::domain::ProjectId,
    ) -> Result<Vec<crate::domain::connections::Deployment>, StoreError>;
}
