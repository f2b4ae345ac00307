//! A fake of Expo's Push API (`/expo/push/send`, `/expo/push/getReceipts`), checking each
//! request against the documented message format (only the documented fields, with their
//! types; at most 100 messages, 1,000 receipt ids) and answering in the documented shapes
//! (the recorded `tests/recorded/expo-push-*.json`). A token can be made unregistered at
//! send (the ticket says `DeviceNotRegistered`) or after (its receipt does), as happens when
//! an app is uninstalled; a number of sends can answer 503 first, as in an outage.

use super::Fake;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// A push the fake took.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub to: String,
    pub message: Value,
    pub ticket: Option<String>,
}

#[derive(Default)]
pub struct PushState {
    pub pushed: Vec<Pushed>,
    /// Tokens refused at send (the ticket's error).
    pub unregistered: BTreeSet<String>,
    /// Tokens whose receipts say the device is gone.
    pub uninstalled: BTreeSet<String>,
    /// Ticket id → token.
    pub tickets: BTreeMap<String, String>,
    /// Receipt ids asked for, in order.
    pub receipts_asked: Vec<String>,
    /// Sends to answer 503 before taking any.
    pub outages: u32,
}

impl Fake {
    /// `token`'s device is gone: sends to it are refused with `DeviceNotRegistered` (at
    /// send), or they are taken and their receipts say so (after).
    pub fn expo_device_gone(&self, token: &str, at_send: bool) {
        if let Ok(mut state) = self.expo_push.lock() {
            let set = match at_send {
                true => &mut state.unregistered,
                false => &mut state.uninstalled,
            };
            set.insert(token.to_owned());
        }
    }

    /// The next `sends` sends answer 503.
    pub fn expo_push_outage(&self, sends: u32) {
        if let Ok(mut state) = self.expo_push.lock() {
            state.outages = sends;
        }
    }

    /// Every push the fake took, oldest first.
    pub fn expo_pushes(&self) -> Vec<Pushed> {
        self.expo_push
            .lock()
            .map(|s| s.pushed.clone())
            .unwrap_or_default()
    }

    /// Every receipt id asked for.
    pub fn expo_receipts_asked(&self) -> Vec<String> {
        self.expo_push
            .lock()
            .map(|s| s.receipts_asked.clone())
            .unwrap_or_default()
    }
}

pub fn routes() -> Router<Fake> {
    Router::new()
        .route("/send", post(send))
        .route("/getReceipts", post(get_receipts))
}

/// A whole request refused, as Expo answers one.
fn request_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"errors": [{"code": code, "message": message}]})),
    )
        .into_response()
}

/// The documented message fields and what each holds.
fn check_field(name: &str, value: &Value) -> Result<(), String> {
    let ok = match name {
        "to" => match value {
            Value::String(token) => is_token(token),
            Value::Array(tokens) => {
                !tokens.is_empty() && tokens.iter().all(|t| t.as_str().is_some_and(is_token))
            }
            _ => false,
        },
        "data" => value.is_object(),
        "title" | "body" | "subtitle" | "channelId" | "categoryId" => value.is_string(),
        "ttl" | "expiration" | "badge" => value.is_number(),
        "priority" => matches!(value.as_str(), Some("default" | "normal" | "high")),
        "sound" => value.is_null() || value.as_str() == Some("default"),
        "mutableContent" => value.is_boolean(),
        other => return Err(format!("\"{other}\" is not an allowed field")),
    };
    match ok {
        true => Ok(()),
        false => Err(format!("\"{name}\" has an invalid value: {value}")),
    }
}

fn is_token(token: &str) -> bool {
    autocrew_shared::domain::notices::is_expo_token(token)
}

async fn send(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    if !headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        return request_error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "The request body must be JSON.",
        );
    }
    let Ok(mut state) = fake.expo_push.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if state.outages > 0 {
        state.outages -= 1;
        return request_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "INTERNAL_SERVER_ERROR",
            "The push service is temporarily unavailable.",
        );
    }
    let messages = match serde_json::from_str::<Value>(&body) {
        Ok(Value::Array(messages)) => messages,
        Ok(message @ Value::Object(_)) => vec![message],
        _ => {
            return request_error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "The body must be a message object or an array of message objects.",
            );
        }
    };
    if messages.len() > 100 {
        return request_error(
            StatusCode::BAD_REQUEST,
            "PUSH_TOO_MANY_NOTIFICATIONS",
            "You are trying to send more than 100 push notifications in one request.",
        );
    }
    for (i, message) in messages.iter().enumerate() {
        let Some(fields) = message.as_object() else {
            return request_error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!("Message {i} is not an object."),
            );
        };
        if !fields.contains_key("to") {
            return request_error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!("Message {i}: \"to\" is required."),
            );
        }
        if let Some(error) = fields
            .iter()
            .find_map(|(name, value)| check_field(name, value).err())
        {
            return request_error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!("Message {i}: {error}"),
            );
        }
    }
    // One ticket per recipient, in order.
    let mut tickets = Vec::new();
    for message in messages {
        let recipients: Vec<String> = match &message["to"] {
            Value::String(token) => vec![token.clone()],
            Value::Array(tokens) => tokens
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        for to in recipients {
            if state.unregistered.contains(&to) {
                tickets.push(json!({
                    "status": "error",
                    "message": format!("\"{to}\" is not a registered push notification recipient"),
                    "details": {"error": "DeviceNotRegistered"},
                }));
                state.pushed.push(Pushed {
                    to,
                    message: message.clone(),
                    ticket: None,
                });
                continue;
            }
            let id = uuid::Uuid::new_v4().to_string().to_uppercase();
            state.tickets.insert(id.clone(), to.clone());
            state.pushed.push(Pushed {
                to,
                message: message.clone(),
                ticket: Some(id.clone()),
            });
            tickets.push(json!({"status": "ok", "id": id}));
        }
    }
    axum::Json(json!({ "data": tickets })).into_response()
}

async fn get_receipts(State(fake): State<Fake>, body: String) -> Response {
    let ids: Vec<String> = match serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| serde_json::from_value(v["ids"].clone()).ok())
    {
        Some(ids) => ids,
        None => {
            return request_error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "The body must be {\"ids\": [ticket ids]}.",
            );
        }
    };
    if ids.len() > 1000 {
        return request_error(
            StatusCode::BAD_REQUEST,
            "PUSH_TOO_MANY_RECEIPTS",
            "You are trying to get more than 1000 push receipts in one request.",
        );
    }
    let Ok(mut state) = fake.expo_push.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut receipts = serde_json::Map::new();
    for id in ids {
        state.receipts_asked.push(id.clone());
        // An id Expo does not know is left out of the answer.
        let Some(token) = state.tickets.get(&id).cloned() else {
            continue;
        };
        let receipt = match state.uninstalled.contains(&token) {
            true => json!({
                "status": "error",
                "message": format!("\"{token}\" is not a registered push notification recipient"),
                "details": {"error": "DeviceNotRegistered"},
            }),
            false => json!({"status": "ok"}),
        };
        receipts.insert(id, receipt);
    }
    axum::Json(json!({ "data": receipts })).into_response()
}
