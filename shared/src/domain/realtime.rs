//! The WebSocket protocol: what a client sends and what the server pushes. Both sides
//! (the `ws` function, the notifier, the CLI) use these types; `docs/websocket.schema.json`
//! is written from them.

use super::ProjectId;
use super::events::{Event, LiveEvent};
use serde::{Deserialize, Serialize};

/// What a client sends, by `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
            serde_json::to_value(ServerMessage::Error {
                error: "bad".into(),
            }),
            serde_json::to_value(ClientMessage::Subscribe {
                project_id,
                after_seq: 0,
            }),
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
