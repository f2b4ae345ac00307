//! One bucket, in memory.

use crate::domain::sha256_hex;
use crate::ports::{BlobError, BlobStore, StoredBlob};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// The `BlobStore` twin. Its links are `memory://` URLs naming the key and the expiry;
/// nothing serves them.
pub struct MemBlobs {
    bucket: String,
    objects: Mutex<BTreeMap<String, (Vec<u8>, String)>>,
}

impl Default for MemBlobs {
    fn default() -> Self {
        MemBlobs {
            bucket: "memory".into(),
            objects: Mutex::default(),
        }
    }
}

impl MemBlobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Vec<u8>, String)>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys held, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The content type an object was put with.
    pub fn content_type(&self, key: &str) -> Option<String> {
        self.lock().get(key).map(|(_, t)| t.clone())
    }
}

#[async_trait]
impl BlobStore for MemBlobs {
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<StoredBlob, BlobError> {
        let stored = StoredBlob {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            size_bytes: bytes.len() as u64,
            checksum_sha256: sha256_hex(&bytes),
        };
        self.lock()
            .insert(key.to_owned(), (bytes, content_type.to_owned()));
        Ok(stored)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        self.lock()
            .get(key)
            .map(|(bytes, _)| bytes.clone())
            .ok_or_else(|| BlobError::NotFound {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
            })
    }

    async fn presigned_get(&self, key: &str, expires_in: Duration) -> Result<String, BlobError> {
        Ok(format!(
            "memory://{}/{key}?expires_in={}",
            self.bucket,
            expires_in.as_secs()
        ))
    }

    async fn presigned_put(
        &self,
        key: &str,
        content_type: &str,
        size_bytes: u64,
        expires_in: Duration,
    ) -> Result<String, BlobError> {
        Ok(format!(
            "memory://{}/{key}?put&type={content_type}&size={size_bytes}&expires_in={}",
            self.bucket,
            expires_in.as_secs()
        ))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BlobError> {
        let mut objects = self.lock();
        let before = objects.len();
        objects.retain(|key, _| !key.starts_with(prefix));
        Ok((before - objects.len()) as u64)
    }
}
