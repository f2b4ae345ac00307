//! The master key of envelope encryption: it makes data keys and unwraps them, and never
//! leaves its keeper (KMS on AWS, the local key file in local mode).

use super::BackendError;
use crate::config::Secret;
use async_trait::async_trait;

/// A fresh data key: the plaintext to encrypt with once, and the same key wrapped by the
/// master key, which is all that is stored.
pub struct DataKey {
    pub plaintext: Secret<[u8; 32]>,
    pub wrapped: Vec<u8>,
    /// Which master key wrapped it (a KMS key ARN, or `file:<fingerprint>`).
    pub key_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The data key was wrapped by a master key this keeper does not hold.
    #[error(
        "the credential was sealed with master key {sealed_with}, but this process holds {holds}"
    )]
    OtherKey { sealed_with: String, holds: String },
    /// The wrapped key or the sealed value was altered, or belongs to another context.
    #[error("the sealed credential does not open: it was altered or belongs to another account")]
    Tampered,
    #[error("the key keeper failed")]
    Backend(#[source] BackendError),
}

#[async_trait]
pub trait KeyKeeper: Send + Sync {
    /// A new data key bound to `context` (unwrapping it needs the same context).
    async fn data_key(&self, context: &str) -> Result<DataKey, VaultError>;
    /// The plaintext of a data key `data_key` made under `context`.
    async fn unwrap(
        &self,
        wrapped: &[u8],
        key_id: &str,
        context: &str,
    ) -> Result<Secret<[u8; 32]>, VaultError>;
}
