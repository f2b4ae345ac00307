//! Upload grants, in memory.

use crate::domain::{UploadId, UserId};
use crate::ports::{StoreError, Upload, UploadStore};
use async_trait::async_trait;
use std::sync::Mutex;

/// The `UploadStore` twin: a grant is its user's alone.
#[derive(Default)]
pub struct MemUploads {
    grants: Mutex<Vec<Upload>>,
}

#[async_trait]
impl UploadStore for MemUploads {
    async fn grant(&self, upload: &Upload) -> Result<(), StoreError> {
        self.grants
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(upload.clone());
        Ok(())
    }

    async fn upload(&self, user: UserId, id: UploadId) -> Result<Option<Upload>, StoreError> {
        Ok(self
            .grants
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .find(|u| u.id == id && u.user_id == user)
            .cloned())
    }
}
