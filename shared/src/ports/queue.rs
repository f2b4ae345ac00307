//! Message queues (SQS): how steps reach the agents.

use super::BackendError;
use async_trait::async_trait;
use std::time::Duration;

/// A received message. Delete it by its receipt handle once handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// The sender's trace, from the message's `traceparent` attribute.
    pub traceparent: Option<String>,
}

/// Why a queue call failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue {queue} failed to {action}")]
    Backend {
        queue: String,
        action: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("queue {queue} answered without {field}")]
    Malformed { queue: String, field: &'static str },
}

/// At-least-once delivery with visibility timeouts.
#[async_trait]
pub trait Queue: Send + Sync {
    /// The URL of the queue named `name`.
    async fn url_of(&self, name: &str) -> Result<String, QueueError>;
    /// Sends one message, returns its id.
    async fn send(&self, queue_url: &str, body: &str) -> Result<String, QueueError>;
    /// Sends one message that becomes visible after `delay` (at most 15 minutes).
    async fn send_delayed(
        &self,
        queue_url: &str,
        body: &str,
        delay: Duration,
    ) -> Result<String, QueueError>;
    /// Receives up to `max` messages (1-10), waiting up to `wait` for the first; received
    /// messages stay hidden from other consumers for `visibility`.
    async fn receive(
        &self,
        queue_url: &str,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, QueueError>;
    async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), QueueError>;
    /// Makes a received message visible again after `visibility` (zero: at once).
    async fn change_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError>;
}
