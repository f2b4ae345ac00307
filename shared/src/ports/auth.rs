//! Bearer tokens: the seam where real authentication plugs in.

use super::store::StoreError;
use crate::domain::UserId;
use async_trait::async_trait;

/// Issues and checks API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// A new token for `user`; only its hash is kept, so this is the one time it is seen.
    async fn issue(&self, user: UserId) -> Result<String, StoreError>;
    /// The user a token belongs to, if it is known and not expired.
    async fn verify(&self, token: &str) -> Result<Option<UserId>, StoreError>;
}
