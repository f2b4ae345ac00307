//! Connected accounts and their OAuth flows, in memory.

use crate::domain::connections::Connection;
use crate::domain::{ConnectionId, ConnectionStatus, Service, UserId};
use crate::ports::StoreError;
use crate::ports::connections::{
    ConnectionStore, Credential, DeviceFlow, NewConnection, Renewal, Sealed, WebFlow, WebFlowStatus,
};
use async_trait::async_trait;
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Mutex;

/// The `ConnectionStore` twin. It keeps the store's promises: one connection per user and
/// service (connecting again replaces its credential and keeps its id), a connection and a
/// flow are their user's alone, a renewal lease has one holder, and a web flow's state is
/// good for one callback.
#[derive(Default)]
pub struct MemConnections {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    connections: Vec<(Connection, Sealed, Renewal)>,
    leased: Vec<ConnectionId>,
    device: HashMap<uuid::Uuid, DeviceFlow>,
    web: HashMap<uuid::Uuid, WebFlow>,
}

impl MemConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn connection(
        &mut self,
        id: ConnectionId,
    ) -> Result<&mut (Connection, Sealed, Renewal), StoreError> {
        self.connections
            .iter_mut()
            .find(|(c, _, _)| c.id == id)
            .ok_or_else(|| StoreError::NotFound {
                what: "connection",
                id: id.to_string(),
            })
    }
}

#[async_trait]
impl ConnectionStore for MemConnections {
    async fn connect(&self, new: NewConnection) -> Result<Connection, StoreError> {
        let mut state = self.lock();
        let same = |(c, _, _): &&mut (Connection, Sealed, Renewal)| {
            c.user_id == new.user && c.service == new.service
        };
        let renews = new.renewal.refresh.is_some();
        if let Some((kept, sealed, renewal)) = state.connections.iter_mut().find(same) {
            kept.account = new.account;
            kept.hint = new.hint;
            kept.status = ConnectionStatus::Active;
            kept.status_reason = None;
            kept.expires_at = new.renewal.expires_at;
            kept.renews = renews;
            *sealed = new.sealed;
            *renewal = new.renewal;
            return Ok(kept.clone());
        }
        let connection = Connection {
            id: ConnectionId::new(),
            user_id: new.user,
            service: new.service,
            account: new.account,
            hint: new.hint,
            status: ConnectionStatus::Active,
            status_reason: None,
            created_at: Utc::now(),
            last_used_at: None,
            expires_at: new.renewal.expires_at,
            renews,
        };
        state
            .connections
            .push((connection.clone(), new.sealed, new.renewal));
        Ok(connection)
    }

    async fn connections(&self, user: UserId) -> Result<Vec<Connection>, StoreError> {
        let mut theirs: Vec<Connection> = self
            .lock()
            .connections
            .iter()
            .filter(|(c, _, _)| c.user_id == user)
            .map(|(c, _, _)| c.clone())
            .collect();
        theirs.sort_by_key(|c| c.service.as_str());
        Ok(theirs)
    }

    async fn disconnect(&self, user: UserId, id: ConnectionId) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let before = state.connections.len();
        state
            .connections
            .retain(|(c, _, _)| !(c.id == id && c.user_id == user));
        Ok(state.connections.len() < before)
    }

    async fn credential(
        &self,
        user: UserId,
        service: Service,
    ) -> Result<Option<Credential>, StoreError> {
        let mut state = self.lock();
        let found = state
            .connections
            .iter_mut()
            .find(|(c, _, _)| c.user_id == user && c.service == service);
        Ok(found.map(|(connection, sealed, renewal)| {
            connection.last_used_at = Some(Utc::now());
            Credential {
                connection: connection.clone(),
                sealed: sealed.clone(),
                renewal: renewal.clone(),
            }
        }))
    }

    async fn claim_renewal(
        &self,
        id: ConnectionId,
        _lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        state.connection(id)?;
        if state.leased.contains(&id) {
            return Ok(false);
        }
        state.leased.push(id);
        Ok(true)
    }

    async fn renewed(
        &self,
        id: ConnectionId,
        sealed: &Sealed,
        renewal: &Renewal,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let (connection, kept, kept_renewal) = state.connection(id)?;
        connection.expires_at = renewal.expires_at;
        *kept = sealed.clone();
        kept_renewal.expires_at = renewal.expires_at;
        if renewal.refresh.is_some() {
            kept_renewal.refresh = renewal.refresh.clone();
        }
        state.leased.retain(|l| *l != id);
        Ok(())
    }

    async fn release_renewal(&self, id: ConnectionId) -> Result<(), StoreError> {
        self.lock().leased.retain(|l| *l != id);
        Ok(())
    }

    async fn invalidate(&self, id: ConnectionId, reason: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        let (connection, _, _) = state.connection(id)?;
        connection.status = ConnectionStatus::Invalid;
        connection.status_reason = Some(reason.to_owned());
        Ok(())
    }

    async fn start_flow(&self, flow: &DeviceFlow) -> Result<(), StoreError> {
        self.lock().device.insert(flow.id, flow.clone());
        Ok(())
    }

    async fn flow(&self, user: UserId, id: uuid::Uuid) -> Result<Option<DeviceFlow>, StoreError> {
        Ok(self
            .lock()
            .device
            .get(&id)
            .filter(|f| f.user == user)
            .cloned())
    }

    async fn slow_flow(&self, id: uuid::Uuid, interval_secs: u32) -> Result<(), StoreError> {
        if let Some(flow) = self.lock().device.get_mut(&id) {
            flow.interval_secs = interval_secs;
        }
        Ok(())
    }

    async fn end_flow(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        self.lock().device.remove(&id);
        Ok(())
    }

    async fn start_web_flow(&self, flow: &WebFlow) -> Result<(), StoreError> {
        self.lock().web.insert(flow.id, flow.clone());
        Ok(())
    }

    async fn web_flow(&self, user: UserId, id: uuid::Uuid) -> Result<Option<WebFlow>, StoreError> {
        Ok(self.lock().web.get(&id).filter(|f| f.user == user).cloned())
    }

    async fn claim_web_flow(&self, state_hash: &[u8]) -> Result<Option<WebFlow>, StoreError> {
        let now = Utc::now();
        let mut state = self.lock();
        let found = state.web.values_mut().find(|f| {
            f.state_hash == state_hash && f.status == WebFlowStatus::Pending && f.expires_at > now
        });
        Ok(found.map(|flow| {
            flow.status = WebFlowStatus::Exchanging;
            flow.clone()
        }))
    }

    async fn end_web_flow(
        &self,
        id: uuid::Uuid,
        outcome: Result<ConnectionId, &str>,
    ) -> Result<(), StoreError> {
        if let Some(flow) = self.lock().web.get_mut(&id) {
            match outcome {
                Ok(connection) => {
                    flow.status = WebFlowStatus::Connected;
                    flow.connection = Some(connection);
                }
                Err(reason) => {
                    flow.status = WebFlowStatus::Failed;
                    flow.reason = Some(reason.to_owned());
                }
            }
        }
        Ok(())
    }
}
