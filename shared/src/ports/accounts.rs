//! Accounts: passwords, sign-in sessions (rotating refresh tokens) and the one-time tokens
//! that email links carry. Access tokens are not here: they are verified without storage
//! (`services::access`).

use super::store::StoreError;
use crate::domain::records::User;
use crate::domain::{MicroUsd, UserId};
use async_trait::async_trait;
use std::time::Duration;

/// How long a refresh token lives; each rotation gives a new one this long.
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

pub use crate::domain::kinds::EmailPurpose;

/// The result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: here is its successor (shown once).
    Rotated { user: UserId, refresh_token: String },
    /// Unknown, expired or revoked.
    Refused,
    /// The token had already been rotated: someone replayed it. Its whole family (every
    /// token of that sign-in) is now revoked.
    Reused { user: UserId },
}

/// Users' credentials and sessions.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// A new user with a password (an argon2id PHC string), on the free plan with `trial`
    /// credit recorded as such; an email already taken is a `Conflict`.
    async fn sign_up(
        &self,
        email: &str,
        display_name: &str,
        trial: MicroUsd,
        password_hash: &str,
    ) -> Result<User, StoreError>;
    /// The user with `email` and their password hash (`None` when they have none).
    async fn credentials(&self, email: &str) -> Result<Option<(User, Option<String>)>, StoreError>;
    /// Opens a sign-in session: a new refresh token family; returns its first token.
    async fn open_session(&self, user: UserId) -> Result<String, StoreError>;
    /// Presents a refresh token: rotates it, or says why not (revoking its family on reuse).
    async fn rotate(&self, refresh_token: &str) -> Result<Rotation, StoreError>;
    /// Revokes the session a refresh token belongs to; `false` when the token is unknown.
    async fn revoke_session(&self, refresh_token: &str) -> Result<bool, StoreError>;
    /// A one-time token for an email link (shown once; only its hash is kept).
    async fn issue_email_token(
        &self,
        user: UserId,
        purpose: EmailPurpose,
    ) -> Result<String, StoreError>;
    /// Uses a verification token: the user's email is verified. `None` when the token is
    /// unknown, used or expired.
    async fn verify_email(&self, token: &str) -> Result<Option<UserId>, StoreError>;
    /// Everything kept about `user`, as one JSON document (no password hash, tokens or
    /// workflow handles): the account, projects, runs, tasks and attempts, events, the
    /// ledger, artifacts (metadata), approvals.
    async fn export(&self, user: UserId) -> Result<serde_json::Value, StoreError>;
    /// Deletes the account and every row that belongs to it; returns its projects' ids
    /// (their files are the caller's to delete). `NotFound` when it is already gone.
    async fn delete_account(
        &self,
        user: UserId,
    ) -> Result<Vec<crate::domain::ProjectId>, StoreError>;
    /// Uses a reset token: the password becomes `password_hash` and every session of the
    /// user is revoked, in one transaction. `None` when the token is unknown, used or
    /// expired.
    async fn reset_password(
        &self,
        token: &str,
        password_hash: &str,
    ) -> Result<Option<UserId>, StoreError>;
    /// The user `issuer`'s `subject` names, made (with `trial` credit) on first sight. It takes
    /// `email` (verified by the issuer) when no account has it; else an address made from
    /// the subject, so an external sign-in never opens another account.
    async fn external_user(
        &self,
        issuer: &str,
        subject: &str,
        email: Option<&str>,
        trial: MicroUsd,
    ) -> Result<UserId, StoreError>;
}
