//! The outbox: messages written with the state change they carry out, sent after commit.

use super::store::StoreError;
use crate::domain::RunId;
use crate::domain::events::Event;
use crate::domain::messages::OutboxEntry;
use async_trait::async_trait;
use std::time::Duration;

/// What a committed state change sends out: the events it appended (to push live) and the
/// outbox entries it wrote (to relay). Both were written in the change's own transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    pub events: Vec<Event>,
    pub outbox: Vec<OutboxEntry>,
}

impl Effects {
    /// Adds `other`'s events and entries after this one's.
    pub fn merge(&mut self, other: Effects) {
        self.events.extend(other.events);
        self.outbox.extend(other.outbox);
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.outbox.is_empty()
    }
}

/// The outbox table, as the relay and the reconciler see it.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Forgets entries that were sent.
    async fn delivered(&self, ids: &[i64]) -> Result<(), StoreError>;
    /// Counts a failed send, keeping its error for whoever looks.
    async fn failed(&self, id: i64, error: &str) -> Result<(), StoreError>;
    /// Entries written more than `age` ago, oldest first, at most `limit`: those the relay
    /// after their commit did not send (it crashed, or the send failed).
    async fn due(&self, age: Duration, limit: u32) -> Result<Vec<OutboxEntry>, StoreError>;
    /// `due` for one run's entries: what a worker that died between commit and send left.
    async fn due_for_run(&self, run: RunId, age: Duration) -> Result<Vec<OutboxEntry>, StoreError>;
    /// How many entries wait, and the age in seconds of the oldest.
    async fn backlog(&self) -> Result<(u64, f64), StoreError>;
}

/// Sends out what a committed change sends (its outbox entries, then its events). Never
/// fails: what was not sent stays in the outbox for the reconciler.
#[async_trait]
pub trait Publisher: Send + Sync {
    async fn publish(&self, effects: Effects);
}
