//! Development bearer tokens.

use super::Pool;
use super::cached::Cached;
use crate::domain::UserId;
use crate::ports::{StoreError, TokenStore};
use async_trait::async_trait;
use sha2::{Digest, Sha256};

/// `TokenStore` on Postgres: random 256-bit tokens, stored as sha-256, valid 30 days.
#[derive(Clone)]
pub struct PgTokenStore {
    pool: Pool,
}

impl PgTokenStore {
    pub fn new(pool: Pool) -> Self {
        PgTokenStore { pool }
    }
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[async_trait]
impl TokenStore for PgTokenStore {
    async fn issue(&self, user: UserId) -> Result<String, StoreError> {
        let token = format!("acdev_{}", hex::encode(rand::random::<[u8; 32]>()));
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "INSERT INTO api_tokens (token_sha256, user_id, expires_at) VALUES ($1, $2, now() + interval '30 days')",
                &[&digest(&token), &user.0],
            )
            .await?;
        Ok(token)
    }

    async fn verify(&self, token: &str) -> Result<Option<UserId>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                "SELECT user_id FROM api_tokens WHERE token_sha256 = $1 AND expires_at > now()",
                &[&digest(token)],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.map(UserId))
    }
}
