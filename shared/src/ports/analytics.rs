//! Product analytics: events kept once per client event id, the projects' public ingest
//! keys, and traffic per day.

use super::store::StoreError;
use crate::domain::analytics::{Ingested, TrackedEvent, TrafficDay};
use crate::domain::{ProjectId, UserId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A project's public ingest key. It is published in the landing page, so it is no secret:
/// it can only add events to its project, and revoking it stops that at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestKey {
    pub key: String,
    pub project_id: ProjectId,
    pub created_at: DateTime<Utc>,
}

/// Whose a presented ingest key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHolder {
    /// The key is live: events go to this project of this user.
    Live(ProjectId, UserId),
    /// The key was revoked.
    Revoked,
    /// No such key.
    Unknown,
}

#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// Keeps `events` of `user`'s project; an event whose id the project has already is
    /// counted as a duplicate and left as it was.
    async fn ingest(
        &self,
        user: UserId,
        project: ProjectId,
        events: &[TrackedEvent],
    ) -> Result<Ingested, StoreError>;
    /// Whose `key` is.
    async fn holder(&self, key: &str) -> Result<KeyHolder, StoreError>;
    /// The project's live key, if it has one.
    async fn live_key(&self, project: ProjectId) -> Result<Option<IngestKey>, StoreError>;
    /// The project's live key, made when it has none (what a deploy embeds).
    async fn key_for(&self, project: ProjectId) -> Result<IngestKey, StoreError>;
    /// A new key for the project; the live one is revoked.
    async fn rotate_key(&self, project: ProjectId) -> Result<IngestKey, StoreError>;
    /// Revokes the live key; false when there was none.
    async fn revoke_key(&self, project: ProjectId) -> Result<bool, StoreError>;
    /// The project's events, distinct visitors and page views over `[from, to)`, as one
    /// `TrafficDay` named by `from`'s day.
    async fn totals(
        &self,
        project: ProjectId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<TrafficDay, StoreError>;
    /// The project's events, visitors and page views per day over `[from, to)`.
    async fn traffic(
        &self,
        project: ProjectId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<TrafficDay>, StoreError>;
}
