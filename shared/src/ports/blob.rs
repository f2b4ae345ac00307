//! Artifact storage (S3 or R2).

use super::BackendError;
use async_trait::async_trait;
use std::time::Duration;

/// A stored object as written: what the artifacts table records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub bucket: String,
    pub key: String,
    pub size_bytes: u64,
    /// Hex sha-256 of the bytes, computed before upload.
    pub checksum_sha256: String,
}

/// Why a blob call failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("object {key} was not found in bucket {bucket}")]
    NotFound { bucket: String, key: String },
    #[error("bucket {bucket} failed to {action} {key}")]
    Backend {
        bucket: String,
        key: String,
        action: &'static str,
        #[source]
        source: BackendError,
    },
}

/// One bucket of artifacts.
#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<StoredBlob, BlobError>;
    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError>;
    /// A URL anyone can GET the object from until `expires_in` passes.
    async fn presigned_get(&self, key: &str, expires_in: Duration) -> Result<String, BlobError>;
    /// A URL that accepts one PUT of exactly `size_bytes` of `content_type` at `key` until
    /// `expires_in` passes (both headers are signed).
    async fn presigned_put(
        &self,
        key: &str,
        content_type: &str,
        size_bytes: u64,
        expires_in: Duration,
    ) -> Result<String, BlobError>;
    /// Deletes one object (gone already is fine).
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    /// Deletes every object whose key starts with `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BlobError>;
}
