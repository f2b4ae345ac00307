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

/// Sends bytes to one WebSocket connection, or closes it (API Gateway's `@connections`).
#[async_trait]
pub trait RealtimePush: Send + Sync {
    async fn post(&self, connection_id: &str, data: &[u8]) -> Result<(), PushError>;
    /// Closes the connection (`DELETE @connections/{id}`); API Gateway closes with 1000.
    async fn close(&self, connection_id: &str) -> Result<(), PushError>;
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

/// A registered connection: who opened it, and until when its token holds (seconds since
/// the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user: UserId,
    pub expires_at: u64,
}

/// A connection following a project, and until when its token holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    pub connection_id: String,
    pub expires_at: u64,
}

impl Follower {
    /// Its token expired at or before `now` (seconds since the epoch).
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at <= now
    }
}

/// How many projects one connection may follow.
pub const MAX_SUBSCRIPTIONS: usize = 100;

/// Open WebSocket connections and the projects each follows.
#[async_trait]
pub trait ConnectionRegistry: Send + Sync {
    /// Registers a new connection; registering an id twice is `AlreadyRegistered`.
    async fn register(&self, connection_id: &str, session: Session) -> Result<(), RegistryError>;
    /// Moves a registered connection's expiry (a fresh token of the same user).
    async fn renew(&self, connection_id: &str, expires_at: u64) -> Result<(), RegistryError>;
    /// Adds one project to those a registered connection follows (again is no change).
    async fn subscribe(&self, connection_id: &str, project: ProjectId)
    -> Result<(), RegistryError>;
    /// Stops following `project`; whether the connection followed it.
    async fn unsubscribe(
        &self,
        connection_id: &str,
        project: ProjectId,
    ) -> Result<bool, RegistryError>;
    /// The projects a connection follows.
    async fn subscriptions(&self, connection_id: &str) -> Result<Vec<ProjectId>, RegistryError>;
    /// Forgets the connection and everything it follows.
    async fn unregister(&self, connection_id: &str) -> Result<(), RegistryError>;
    /// A registered connection's session.
    async fn session(&self, connection_id: &str) -> Result<Option<Session>, RegistryError>;
    /// Connections following `project`.
    async fn subscribers(&self, project: ProjectId) -> Result<Vec<Follower>, RegistryError>;
}
