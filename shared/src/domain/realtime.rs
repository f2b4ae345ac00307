//! The WebSocket protocol: what a client sends and what the server pushes. Both sides
//! (the `ws` function, the notifier, the CLI) use these types; `docs/websocket.schema.json`
//! is written from them.

use super::ProjectId;
use super::events::{Event, LiveEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a client sends, by `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Follow a project, besides those already followed: the events after `after_seq` are
    /// replayed, then new ones pushed. Subscribing again replays again.
    Subscribe {
        project_id: ProjectId,
        #[serde(default)]
        after_seq: i64,
    },
    /// Stop following a project.
    Unsubscribe { project_id: ProjectId },
    /// Answered with `pong`, carrying the same `id`. API Gateway closes a connection idle
    /// for 10 minutes: a client pings every few minutes to keep it.
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 64)]
        id: Option<String>,
    },
    /// A fresh access token of the same user, sent before the one the socket opened with
    /// expires: the socket then stays open until the new one expires.
    Renew { token: String },
}

/// The actions a client may send, for the error that names them.
pub const ACTIONS: [&str; 4] = ["subscribe", "unsubscribe", "ping", "renew"];

/// The close code a `closing` frame gives when the socket's token expired. API Gateway
/// closes every socket it is asked to with 1000, so the code travels in the frame.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4401;

/// What went wrong with a client's message, for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON.
    NotJson,
    /// `action` is missing or not one of `subscribe`, `unsubscribe`, `ping`, `renew`.
    UnknownAction,
    /// A known action with missing or wrong fields.
    InvalidMessage,
    /// The project does not exist or is not the caller's.
    NotFound,
    /// The connection already follows as many projects as it may (100).
    TooManySubscriptions,
    /// A `renew` token that is not valid, or names another user.
    InvalidToken,
    /// The server could not serve the message; sending it again may work.
    Unavailable,
}

/// What the server pushes, by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// The project is no longer followed (`followed` false: it was not).
    Unsubscribed {
        project_id: ProjectId,
        followed: bool,
    },
    /// The answer to `ping`.
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// The socket now holds until `expires_at`.
    Renewed { expires_at: DateTime<Utc> },
    /// The last frame before the server closes the socket: `code` says why
    /// (4401: the token expired; connect again with a fresh one).
    Closing { code: u16, reason: String },
    /// The client's message could not be served; the socket stays open.
    Error { code: ErrorCode, error: String },
}

impl ServerMessage {
    /// An error frame.
    pub fn error(code: ErrorCode, error: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            error: error.into(),
        }
    }
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

/// The protocol as one JSON Schema (2020-12): `ClientMessage` is what a client may send,
/// `ServerMessage` what it receives; every type they use is under `$defs`.
/// `docs/websocket.schema.json` is this document (`make openapi` writes it again).
pub fn protocol_schema() -> serde_json::Value {
    use utoipa::{PartialSchema, ToSchema};
    let mut named = vec![
        ("ClientMessage".to_owned(), ClientMessage::schema()),
        ("ServerMessage".to_owned(), ServerMessage::schema()),
    ];
    ClientMessage::schemas(&mut named);
    ServerMessage::schemas(&mut named);
    let defs: serde_json::Map<String, serde_json::Value> = named
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or_default()))
        .collect();
    // utoipa writes OpenAPI's reference paths; a standalone schema keeps them in `$defs`.
    let text = serde_json::Value::Object(defs)
        .to_string()
        .replace("#/components/schemas/", "#/$defs/");
    let defs: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Autocrew WebSocket protocol",
        "description": "Frames are JSON text. A client sends ClientMessage; the server sends ServerMessage. See docs/websocket.md.",
        "oneOf": [{"$ref": "#/$defs/ClientMessage"}, {"$ref": "#/$defs/ServerMessage"}],
        "$defs": defs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::*;
    use crate::domain::{AgentKind, MicroUsd, RunId, TaskId};
    use chrono::Utc;

    fn task() -> TaskRef {
        TaskRef {
            task_id: TaskId::new(),
            key: "landing".into(),
            agent: AgentKind::Developer,
        }
    }

    /// The published schema describes what the server really sends (and a client's
    /// subscribe), so a client generated from it reads every frame.
    #[test]
    fn the_frames_the_server_sends_hold_to_the_published_schema() {
        let schema = protocol_schema();
        let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
        let project_id = ProjectId::new();
        let run_id = Some(RunId::new());
        let logged = Event {
            project_id,
            run_id,
            seq: 3,
            body: EventBody::TaskFailed(TaskFailed {
                task: task(),
                attempt: 1,
                error: "boom".into(),
                will_retry: true,
            }),
            spend: Some(RunSpend {
                tokens: TokenTotals {
                    input: 10,
                    output: 4,
                },
                cost_micro_usd: MicroUsd(33),
            }),
            created_at: Utc::now(),
        };
        let live = LiveEvent {
            project_id,
            run_id,
            body: EventBody::TaskProgress(TaskProgress {
                task: task(),
                step: 1,
                invocation: 1,
                stage: ProgressStage::Streaming {
                    delta: Some("Hel".into()),
                    chars: 3,
                    compacted: false,
                    whole_turn: false,
                },
            }),
            created_at: Utc::now(),
        };
        let frames = [
            serde_json::to_value(ServerMessage::Event { event: logged }),
            serde_json::to_value(ServerMessage::Live { event: live }),
            serde_json::to_value(ServerMessage::Subscribed {
                project_id,
                last_seq: 3,
            }),
            serde_json::to_value(ServerMessage::error(ErrorCode::NotJson, "bad")),
            serde_json::to_value(ServerMessage::Unsubscribed {
                project_id,
                followed: true,
            }),
            serde_json::to_value(ServerMessage::Pong {
                id: Some("7".into()),
            }),
            serde_json::to_value(ServerMessage::Renewed {
                expires_at: Utc::now(),
            }),
            serde_json::to_value(ServerMessage::Closing {
                code: CLOSE_TOKEN_EXPIRED,
                reason: "token expired".into(),
            }),
            serde_json::to_value(ClientMessage::Subscribe {
                project_id,
                after_seq: 0,
            }),
            serde_json::to_value(ClientMessage::Unsubscribe { project_id }),
            serde_json::to_value(ClientMessage::Ping { id: None }),
            serde_json::to_value(ClientMessage::Renew { token: "t".into() }),
        ];
        for frame in frames {
            let frame = frame.expect("serialises");
            let errors: Vec<String> = validator
                .iter_errors(&frame)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{frame}: {errors:?}");
        }
        let wrong = serde_json::json!({"type": "event", "event": {"seq": "three"}});
        assert!(
            !validator.is_valid(&wrong),
            "the schema must refuse {wrong}"
        );
    }
}
