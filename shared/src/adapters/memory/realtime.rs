//! Open WebSocket connections and what was pushed to them, in memory.

use crate::domain::{ProjectId, UserId};
use crate::ports::realtime::{ConnectionRegistry, PushError, RealtimePush, RegistryError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// The twin of the connection registry and of `@connections`: a connection is registered
/// once, by one user, follows the projects it subscribed to, and gets the frames pushed to
/// it in order (`frames`). Pushing to a connection that is not registered is `Gone`, as API
/// Gateway answers 410 for one that closed.
#[derive(Default)]
pub struct MemRealtime {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    users: HashMap<String, UserId>,
    subscriptions: Vec<(String, ProjectId)>,
    frames: HashMap<String, Vec<String>>,
}

impl MemRealtime {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The frames pushed to `connection`, oldest first.
    pub fn frames(&self, connection: &str) -> Vec<String> {
        self.lock()
            .frames
            .get(connection)
            .cloned()
            .unwrap_or_default()
    }
}

#[async_trait]
impl ConnectionRegistry for MemRealtime {
    async fn register(&self, connection_id: &str, user: UserId) -> Result<(), RegistryError> {
        let mut state = self.lock();
        if state.users.contains_key(connection_id) {
            return Err(RegistryError::AlreadyRegistered(connection_id.to_owned()));
        }
        state.users.insert(connection_id.to_owned(), user);
        Ok(())
    }

    async fn subscribe(
        &self,
        connection_id: &str,
        project: ProjectId,
    ) -> Result<(), RegistryError> {
        let mut state = self.lock();
        if !state.users.contains_key(connection_id) {
            return Err(RegistryError::NotRegistered(connection_id.to_owned()));
        }
        let subscription = (connection_id.to_owned(), project);
        if !state.subscriptions.contains(&subscription) {
            state.subscriptions.push(subscription);
        }
        Ok(())
    }

    async fn unregister(&self, connection_id: &str) -> Result<(), RegistryError> {
        let mut state = self.lock();
        state.users.remove(connection_id);
        state.subscriptions.retain(|(c, _)| c != connection_id);
        Ok(())
    }

    async fn user_of(&self, connection_id: &str) -> Result<Option<UserId>, RegistryError> {
        Ok(self.lock().users.get(connection_id).copied())
    }

    async fn subscribers(&self, project: ProjectId) -> Result<Vec<String>, RegistryError> {
        Ok(self
            .lock()
            .subscriptions
            .iter()
            .filter(|(_, p)| *p == project)
            .map(|(c, _)| c.clone())
            .collect())
    }
}

#[async_trait]
impl RealtimePush for MemRealtime {
    async fn post(&self, connection_id: &str, data: &[u8]) -> Result<(), PushError> {
        let mut state = self.lock();
        if !state.users.contains_key(connection_id) {
            return Err(PushError::Gone(connection_id.to_owned()));
        }
        let frame = String::from_utf8_lossy(data).into_owned();
        state
            .frames
            .entry(connection_id.to_owned())
            .or_default()
            .push(frame);
        Ok(())
    }
}
