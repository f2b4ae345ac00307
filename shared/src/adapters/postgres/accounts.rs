//! Credentials, refresh token families and email tokens on Postgres. Tokens are random
//! 256-bit values; only their sha-256 is stored.

use super::Pool;
use super::cached::Cached;
use super::projects::{USER_COLUMNS, user_from};
use crate::domain::records::User;
use crate::domain::{Tier, UserId};
use crate::ports::accounts::REFRESH_TTL;
use crate::ports::{AccountStore, EmailPurpose, Rotation, StoreError};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// `AccountStore` on Postgres.
#[derive(Clone)]
pub struct PgAccountStore {
    pool: Pool,
}

impl PgAccountStore {
    pub fn new(pool: Pool) -> Self {
        PgAccountStore { pool }
    }
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token with a prefix saying what it is (`acr_` refresh, `ace_` email).
fn new_token(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 32]>()))
}

const INSERT_REFRESH: &str =
    "INSERT INTO refresh_tokens (token_sha256, family_id, user_id, expires_at)
     VALUES ($1, $2, $3, now() + make_interval(secs => $4))";

#[async_trait]
impl AccountStore for PgAccountStore {
    async fn sign_up(
        &self,
        email: &str,
        display_name: &str,
        tier: Tier,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                &format!(
                    "INSERT INTO users (id, email, display_name, tier, password_hash)
                     VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}"
                ),
                &[
                    &UserId::new().0,
                    &email,
                    &display_name,
                    &tier,
                    &password_hash,
                ],
            )
            .await?;
        user_from(&row)
    }

    async fn credentials(&self, email: &str) -> Result<Option<(User, Option<String>)>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1"),
                &[&email],
            )
            .await?;
        row.map(|row| Ok((user_from(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    async fn open_session(&self, user: UserId) -> Result<String, StoreError> {
        let token = new_token("acr_");
        let client = self.pool.get().await?;
        client
            .execute_cached(
                INSERT_REFRESH,
                &[
                    &digest(&token),
                    &Uuid::new_v4(),
                    &user.0,
                    &REFRESH_TTL.as_secs_f64(),
                ],
            )
            .await?;
        Ok(token)
    }

    async fn rotate(&self, refresh_token: &str) -> Result<Rotation, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt_cached(
                "SELECT family_id, user_id, expires_at > now(), replaced_at IS NOT NULL, revoked_at IS NOT NULL
                 FROM refresh_tokens WHERE token_sha256 = $1 FOR UPDATE",
                &[&digest(refresh_token)],
            )
            .await?
        else {
            return Ok(Rotation::Refused);
        };
        let family: Uuid = row.try_get(0)?;
        let user = UserId(row.try_get(1)?);
        let (live, replaced, revoked): (bool, bool, bool) =
            (row.try_get(2)?, row.try_get(3)?, row.try_get(4)?);
        if revoked || !live {
            return Ok(Rotation::Refused);
        }
        if replaced {
            tx.execute_cached(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
                &[&family],
            )
            .await?;
            tx.commit().await?;
            return Ok(Rotation::Reused { user });
        }
        tx.execute_cached(
            "UPDATE refresh_tokens SET replaced_at = now() WHERE token_sha256 = $1",
            &[&digest(refresh_token)],
        )
        .await?;
        let next = new_token("acr_");
        tx.execute_cached(
            INSERT_REFRESH,
            &[&digest(&next), &family, &user.0, &REFRESH_TTL.as_secs_f64()],
        )
        .await?;
        tx.commit().await?;
        Ok(Rotation::Rotated {
            user,
            refresh_token: next,
        })
    }

    async fn revoke_session(&self, refresh_token: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let revoked = client
            .query_opt_cached(
                "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now())
                 WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_sha256 = $1)
                 RETURNING 1",
                &[&digest(refresh_token)],
            )
            .await?;
        Ok(revoked.is_some())
    }

    async fn issue_email_token(
        &self,
        user: UserId,
        purpose: EmailPurpose,
    ) -> Result<String, StoreError> {
        let token = new_token("ace_");
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "INSERT INTO email_tokens (token_sha256, user_id, purpose, expires_at)
                 VALUES ($1, $2, $3::text::email_token_purpose, now() + make_interval(secs => $4))",
                &[
                    &digest(&token),
                    &user.0,
                    &purpose.as_str(),
                    &purpose.ttl().as_secs_f64(),
                ],
            )
            .await?;
        Ok(token)
    }

    async fn verify_email(&self, token: &str) -> Result<Option<UserId>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(user) = use_email_token(&tx, token, EmailPurpose::VerifyEmail).await? else {
            return Ok(None);
        };
        tx.execute_cached(
            "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1",
            &[&user.0],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(user))
    }

    async fn reset_password(
        &self,
        token: &str,
        password_hash: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(user) = use_email_token(&tx, token, EmailPurpose::ResetPassword).await? else {
            return Ok(None);
        };
        // Receiving the email proves the address too.
        tx.execute_cached(
            "UPDATE users SET password_hash = $2, email_verified_at = coalesce(email_verified_at, now())
             WHERE id = $1",
            &[&user.0, &password_hash],
        )
        .await?;
        tx.execute_cached(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
            &[&user.0],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(user))
    }
}

/// Marks an unused, unexpired email token of `purpose` used; its user, or `None`.
async fn use_email_token(
    tx: &deadpool_postgres::Transaction<'_>,
    token: &str,
    purpose: EmailPurpose,
) -> Result<Option<UserId>, StoreError> {
    let row = tx
        .query_opt_cached(
            "UPDATE email_tokens SET used_at = now()
             WHERE token_sha256 = $1 AND purpose = $2::text::email_token_purpose
               AND used_at IS NULL AND expires_at > now()
             RETURNING user_id",
            &[&digest(token), &purpose.as_str()],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?.map(UserId))
}
