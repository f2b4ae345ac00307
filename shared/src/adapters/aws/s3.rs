//! `BlobStore` on S3 (or R2, or moto).

use super::boxed;
use crate::ports::{BlobError, BlobStore, StoredBlob};
use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// One bucket of artifacts.
#[derive(Clone)]
pub struct S3BlobStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3BlobStore {
    /// Path-style addressing when an endpoint is configured: local emulators and R2 serve
    /// `endpoint/bucket/key`, not `bucket.endpoint/key`.
    pub fn new(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let path_style = sdk.endpoint_url().is_some();
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .interceptor(super::metering::Metering)
            .force_path_style(path_style)
            .build();
        S3BlobStore {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The SDK client, for set-up code (creating buckets) that the port does not cover.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    fn failed(
        &self,
        key: &str,
        action: &'static str,
        source: crate::ports::BackendError,
    ) -> BlobError {
        BlobError::Backend {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            action,
            source,
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    #[tracing::instrument(name = "s3.put", skip_all, fields(key = %key))]
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<StoredBlob, BlobError> {
        let digest = Sha256::digest(&bytes);
        let size_bytes = bytes.len() as u64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.failed(key, "put", boxed(e)))?;
        Ok(StoredBlob {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            size_bytes,
            checksum_sha256: hex::encode(digest),
        })
    }

    #[tracing::instrument(name = "s3.get", skip_all, fields(key = %key))]
    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    BlobError::NotFound {
                        bucket: self.bucket.clone(),
                        key: key.to_owned(),
                    }
                } else {
                    self.failed(key, "get", boxed(e))
                }
            })?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| self.failed(key, "read", boxed(e)))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn presigned_get(&self, key: &str, expires_in: Duration) -> Result<String, BlobError> {
        let presigning = PresigningConfig::expires_in(expires_in)
            .map_err(|e| self.failed(key, "presign", boxed(e)))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|e| self.failed(key, "presign", boxed(e)))?;
        Ok(request.uri().to_owned())
    }

    async fn presigned_put(
        &self,
        key: &str,
        content_type: &str,
        size_bytes: u64,
        expires_in: Duration,
    ) -> Result<String, BlobError> {
        let presigning = PresigningConfig::expires_in(expires_in)
            .map_err(|e| self.failed(key, "presign", boxed(e)))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(size_bytes).unwrap_or(i64::MAX))
            .presigned(presigning)
            .await
            .map_err(|e| self.failed(key, "presign", boxed(e)))?;
        Ok(request.uri().to_owned())
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.failed(key, "delete", boxed(e)))?;
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BlobError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let mut deleted = 0u64;
        loop {
            // Each round lists what is left (at most 1,000 keys) and deletes it in one call.
            let listed = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .send()
                .await
                .map_err(|e| self.failed(prefix, "list", boxed(e)))?;
            let keys: Vec<ObjectIdentifier> = listed
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            if keys.is_empty() {
                return Ok(deleted);
            }
            let count = keys.len() as u64;
            let delete = Delete::builder()
                .set_objects(Some(keys))
                .quiet(true)
                .build()
                .map_err(|e| self.failed(prefix, "delete", boxed(e)))?;
            self.client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.failed(prefix, "delete", boxed(e)))?;
            deleted += count;
        }
    }
}
