//! Credentials, sessions and emailed tokens, in memory.

use super::MemProjects;
use crate::domain::records::User;
use crate::domain::{MicroUsd, ProjectId, UserId};
use crate::ports::{AccountStore, EmailPurpose, ProjectStore, Rotation, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The `AccountStore` twin, its users kept in a `MemProjects`. Refresh tokens rotate within
/// a family (one per sign-in); presenting a rotated one revokes the family, as the Postgres
/// adapter does. Tokens never expire here: the real-backend tier tests the clock.
pub struct MemAccounts {
    users: Arc<MemProjects>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    passwords: HashMap<UserId, String>,
    /// Refresh token → its family, user, and whether it is the family's current one.
    refresh: HashMap<String, Refresh>,
    revoked_families: Vec<u64>,
    next_family: u64,
    /// Emailed token → its user and purpose; removed once used.
    emailed: HashMap<String, (UserId, EmailPurpose)>,
}

struct Refresh {
    family: u64,
    user: UserId,
    current: bool,
}

impl MemAccounts {
    pub fn new(users: Arc<MemProjects>) -> MemAccounts {
        MemAccounts {
            users,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The emailed tokens not used yet, for `user` and `purpose` (what a test reads from
    /// the inbox).
    pub fn emailed(&self, user: UserId, purpose: EmailPurpose) -> Vec<String> {
        self.lock()
            .emailed
            .iter()
            .filter(|(_, (u, p))| *u == user && *p == purpose)
            .map(|(token, _)| token.clone())
            .collect()
    }
}

fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl State {
    fn open(&mut self, user: UserId) -> String {
        self.next_family += 1;
        let refresh = token();
        self.refresh.insert(
            refresh.clone(),
            Refresh {
                family: self.next_family,
                user,
                current: true,
            },
        );
        refresh
    }

    fn revoke_user(&mut self, user: UserId) {
        let families: Vec<u64> = self
            .refresh
            .values()
            .filter(|r| r.user == user)
            .map(|r| r.family)
            .collect();
        self.revoked_families.extend(families);
    }
}

#[async_trait]
impl AccountStore for MemAccounts {
    async fn sign_up(
        &self,
        email: &str,
        display_name: &str,
        _trial: MicroUsd,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        // The twin keeps no budgets (the budget store has no twin), so no trial credit.
        let user = self.users.create_user(email, display_name).await?;
        self.lock()
            .passwords
            .insert(user.id, password_hash.to_owned());
        Ok(user)
    }

    async fn credentials(&self, email: &str) -> Result<Option<(User, Option<String>)>, StoreError> {
        Ok(self.users.user_by_email(email).map(|user| {
            let hash = self.lock().passwords.get(&user.id).cloned();
            (user, hash)
        }))
    }

    async fn open_session(&self, user: UserId) -> Result<String, StoreError> {
        Ok(self.lock().open(user))
    }

    async fn rotate(&self, refresh_token: &str) -> Result<Rotation, StoreError> {
        let mut state = self.lock();
        let Some(presented) = state.refresh.get(refresh_token) else {
            return Ok(Rotation::Refused);
        };
        let (family, user, current) = (presented.family, presented.user, presented.current);
        if state.revoked_families.contains(&family) {
            return Ok(Rotation::Refused);
        }
        if !current {
            state.revoked_families.push(family);
            return Ok(Rotation::Reused { user });
        }
        if let Some(presented) = state.refresh.get_mut(refresh_token) {
            presented.current = false;
        }
        let next = token();
        state.refresh.insert(
            next.clone(),
            Refresh {
                family,
                user,
                current: true,
            },
        );
        Ok(Rotation::Rotated {
            user,
            refresh_token: next,
        })
    }

    async fn revoke_session(&self, refresh_token: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(family) = state.refresh.get(refresh_token).map(|r| r.family) else {
            return Ok(false);
        };
        state.revoked_families.push(family);
        Ok(true)
    }

    async fn issue_email_token(
        &self,
        user: UserId,
        purpose: EmailPurpose,
    ) -> Result<String, StoreError> {
        let token = token();
        self.lock().emailed.insert(token.clone(), (user, purpose));
        Ok(token)
    }

    async fn verify_email(&self, token: &str) -> Result<Option<UserId>, StoreError> {
        let used = {
            let mut state = self.lock();
            match state.emailed.get(token) {
                Some((user, EmailPurpose::VerifyEmail)) => {
                    let user = *user;
                    state.emailed.remove(token);
                    Some(user)
                }
                _ => None,
            }
        };
        Ok(used.filter(|user| self.users.verify(*user)))
    }

    async fn export(&self, user: UserId) -> Result<serde_json::Value, StoreError> {
        let user = self.users.user(user).await?;
        let user = serde_json::to_value(user).map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(serde_json::Value::Object(
            [("user".to_owned(), user)].into_iter().collect(),
        ))
    }

    async fn delete_account(&self, user: UserId) -> Result<Vec<ProjectId>, StoreError> {
        self.users.user(user).await?;
        let mut state = self.lock();
        state.passwords.remove(&user);
        state.revoke_user(user);
        Ok(self.users.forget_user(user))
    }

    async fn reset_password(
        &self,
        token: &str,
        password_hash: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let mut state = self.lock();
        let user = match state.emailed.get(token) {
            Some((user, EmailPurpose::ResetPassword)) => *user,
            _ => return Ok(None),
        };
        state.emailed.remove(token);
        state.passwords.insert(user, password_hash.to_owned());
        state.revoke_user(user);
        Ok(Some(user))
    }

    async fn external_user(
        &self,
        issuer: &str,
        subject: &str,
        email: Option<&str>,
        _trial: MicroUsd,
    ) -> Result<UserId, StoreError> {
        let made = format!("{subject}@{issuer}.external");
        let address = match email {
            Some(email) if self.users.user_by_email(email).is_none() => email.to_owned(),
            _ => made,
        };
        if let Some(user) = self.users.user_by_email(&address) {
            return Ok(user.id);
        }
        Ok(self.users.create_user(&address, subject).await?.id)
    }
}
