//! Live updates: who is connected, and pushing to them.

use super::BackendError;
use crate::domain::{ProjectId, UserId};
use async_trait::async_trait;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The client is gone (HTTP 410): forget the connection.
    #[error("connection {0} is gone")]
    Gone(String),
    #[error("pushing to connection {connection} failed")]
    Backend {
        connection: String,
        #[source]
        source: BackendError,
    },
}

/// Sends bytes to one WebSocket connection (API Gateway's `@connections`).
#[async_trait]
pub trait RealtimePush: Send + Sync {
    async fn post(&self, connection_id: &str, data: &[u8]) -> Result<(), PushError>;
}

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("connection {0} is already registered")]
    AlreadyRegistered(String),
    #[error("connection {0} is not registered")]
    NotRegistered(String),
    #[error("the connection registry failed to {action}")]
    Backend {
        action: &'static str,
        #[source]
        source: BackendError,
    },
}

/// Open WebSocket connections and the project each follows.
#[async_trait]
pub trait ConnectionRegistry: Send + Sync {
    /// Registers a new connection; registering an id twice is `AlreadyRegistered`.
    async fn register(&self, connection_id: &str, user: UserId) -> Result<(), RegistryError>;
    /// Subscribes a registered connection to one project's events.
    async fn subscribe(&self, connection_id: &str, project: ProjectId)
    -> Result<(), RegistryError>;
    async fn unregister(&self, connection_id: &str) -> Result<(), RegistryError>;
    /// The user who opened a registered connection.
    async fn user_of(&self, connection_id: &str) -> Result<Option<UserId>, RegistryError>;
    /// Connections subscribed to `project`.
    async fn subscribers(&self, project: ProjectId) -> Result<Vec<String>, RegistryError>;
}
