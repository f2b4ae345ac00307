//! Open WebSocket connections and what was pushed to them, in memory.

use crate::domain::ProjectId;
use crate::ports::realtime::{
    ConnectionRegistry, Follower, PushError, RealtimePush, RegistryError, Session,
};
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
    sessions: HashMap<String, Session>,
    subscriptions: Vec<(String, ProjectId)>,
    frames: HashMap<String, Vec<String>>,
    closed: Vec<String>,
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

    /// Whether the server closed `connection`.
    pub fn was_closed(&self, connection: &str) -> bool {
        self.lock().closed.iter().any(|c| c == connection)
    }
}

#[async_trait]
impl ConnectionRegistry for MemRealtime {
    async fn register(&self, connection_id: &str, session: Session) -> Result<(), RegistryError> {
        let mut state = self.lock();
        if state.sessions.contains_key(connection_id) {
            return Err(RegistryError::AlreadyRegistered(connection_id.to_owned()));
        }
        state.sessions.insert(connection_id.to_owned(), session);
        Ok(())
    }

    async fn renew(&self, connection_id: &str, expires_at: u64) -> Result<(), RegistryError> {
        match self.lock().sessions.get_mut(connection_id) {
            Some(session) => {
                session.expires_at = expires_at;
                Ok(())
            }
            None => Err(RegistryError::NotRegistered(connection_id.to_owned())),
        }
    }

    async fn subscribe(
        &self,
        connection_id: &str,
        project: ProjectId,
    ) -> Result<(), RegistryError> {
        let mut state = self.lock();
        if !state.sessions.contains_key(connection_id) {
            return Err(RegistryError::NotRegistered(connection_id.to_owned()));
        }
        let subscription = (connection_id.to_owned(), project);
        if !state.subscriptions.contains(&subscription) {
            state.subscriptions.push(subscription);
        }
        Ok(())
    }

    async fn unsubscribe(
        &self,
        connection_id: &str,
        project: ProjectId,
    ) -> Result<bool, RegistryError> {
        let mut state = self.lock();
        let before = state.subscriptions.len();
        state
            .subscriptions
            .retain(|(c, p)| !(c == connection_id && *p == project));
        Ok(state.subscriptions.len() < before)
    }

    async fn subscriptions(&self, connection_id: &str) -> Result<Vec<ProjectId>, RegistryError> {
        Ok(self
            .lock()
            .subscriptions
            .iter()
            .filter(|(c, _)| c == connection_id)
            .map(|(_, p)| *p)
            .collect())
    }

    async fn unregister(&self, connection_id: &str) -> Result<(), RegistryError> {
        let mut state = self.lock();
        state.sessions.remove(connection_id);
        state.subscriptions.retain(|(c, _)| c != connection_id);
        Ok(())
    }

    async fn session(&self, connection_id: &str) -> Result<Option<Session>, RegistryError> {
        Ok(self.lock().sessions.get(connection_id).copied())
    }

    async fn subscribers(&self, project: ProjectId) -> Result<Vec<Follower>, RegistryError> {
        let state = self.lock();
        Ok(state
            .subscriptions
            .iter()
            .filter(|(_, p)| *p == project)
            .map(|(c, _)| Follower {
                connection_id: c.clone(),
                expires_at: state.sessions.get(c).map_or(0, |s| s.expires_at),
            })
            .collect())
    }
}

#[async_trait]
impl RealtimePush for MemRealtime {
    async fn post(&self, connection_id: &str, data: &[u8]) -> Result<(), PushError> {
        let mut state = self.lock();
        if !state.sessions.contains_key(connection_id) {
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

    async fn close(&self, connection_id: &str) -> Result<(), PushError> {
        let mut state = self.lock();
        if !state.sessions.contains_key(connection_id) {
            return Err(PushError::Gone(connection_id.to_owned()));
        }
        state.closed.push(connection_id.to_owned());
        Ok(())
    }
}
