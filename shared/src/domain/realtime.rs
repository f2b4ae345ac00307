//! The WebSocket protocol: what a client sends and what the server pushes. Both sides
//! (the `ws` function, the notifier, the CLI) use these types; `docs/websocket.schema.json`
//! is written from them.

use super::ProjectId;
use super::events::{Event, LiveEvent};
use serde::{Deserialize, Serialize};

/// What a client sends, by `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Follow a project: the events after `after_seq` are replayed, then new ones pushed.
    Subscribe {
        project_id: ProjectId,
        #[serde(default)]
        after_seq: i64,
    },
}

/// What the server pushes, by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// A logged event, replayed or new. Clients drop sequence numbers they already have.
    Event { event: Event },
    /// A live-only event (streamed model output): no sequence number, never replayed.
    Live { event: LiveEvent },
    /// The replay is done: everything up to `last_seq` was sent.
    Subscribed {
        project_id: ProjectId,
        last_seq: i64,
    },
    /// The client's message could not be served.
    Error { error: String },
}

impl ServerMessage {
    /// The frame's text.
    pub fn to_text(&self) -> String {
        // Every field serialises: ids, strings, numbers and JSON values only.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"type":"error","error":"the server could not write a message: {e}"}}"#)
        })
    }
}
