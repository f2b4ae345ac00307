//! Users' uploads by presigned PUT: the grant, kept until the file is checked in.

use super::store::StoreError;
use crate::domain::{ProjectId, UploadId, UserId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A granted upload: where the file goes and what it must be.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Upload {
    pub id: UploadId,
    pub project_id: ProjectId,
    #[serde(skip)]
    pub user_id: UserId,
    pub key: String,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: u64,
    /// The presigned PUT stops working then.
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait UploadStore: Send + Sync {
    async fn grant(&self, upload: &Upload) -> Result<(), StoreError>;
    /// `user`'s upload; another user's is not there.
    async fn upload(&self, user: UserId, id: UploadId) -> Result<Option<Upload>, StoreError>;
}
