//! What was published, kept in memory.

use crate::ports::{Effects, Publisher};
use async_trait::async_trait;
use std::sync::Mutex;

/// The `Publisher` twin: keeps each change's effects, in the order they were published,
/// for a test to read (what the relay would have sent and pushed).
#[derive(Default)]
pub struct MemPublished {
    published: Mutex<Vec<Effects>>,
}

impl MemPublished {
    /// Every change published so far, oldest first.
    pub fn published(&self) -> Vec<Effects> {
        self.published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

#[async_trait]
impl Publisher for MemPublished {
    async fn publish(&self, effects: Effects) {
        self.published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(effects);
    }
}
