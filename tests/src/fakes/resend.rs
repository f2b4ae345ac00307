//! A small Resend that keeps the emails it was asked to send: `GET /domains` (the key's
//! verified domain), `POST /emails` with Resend's own `Idempotency-Key` rules (the same key
//! and body answer the first email's id; the same key with another body is a 409), and
//! its error shape (`statusCode`, `name`, `message`).

use super::{Fake, error_json};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct SentEmail {
    pub id: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub idempotency_key: Option<String>,
}

#[derive(Default)]
pub struct ResendState {
    pub sent: Vec<SentEmail>,
    /// Idempotency key → (the request's body, the email's id).
    keys: BTreeMap<String, (Value, String)>,
}

pub fn routes() -> Router<Fake> {
    Router::new()
        .route("/domains", get(domains))
        .route("/emails", post(send))
}

fn refuse(status: StatusCode, name: &str, message: &str) -> Response {
    error_json(
        status,
        json!({"statusCode": status.as_u16(), "name": name, "message": message}),
    )
}

fn domain(fake: &Fake, headers: &HeaderMap) -> Result<String, Response> {
    fake.user_of(headers, "resend").ok_or_else(|| {
        refuse(
            StatusCode::UNAUTHORIZED,
            "validation_error",
            "API key is invalid",
        )
    })
}

async fn domains(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    match domain(&fake, &headers) {
        Ok(domain) => Json(json!({"object": "list", "has_more": false, "data": [{
            "id": "d91cd9bd-1176-453e-8fc1-35364d380206", "name": domain, "status": "verified",
            "created_at": "2026-12-01 00:00:00.000000+00", "region": "us-east-1",
            "capabilities": {"sending": "enabled", "receiving": "disabled"}
        }]}))
        .into_response(),
        Err(refused) => refused,
    }
}

async fn send(State(fake): State<Fake>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let domain = match domain(&fake, &headers) {
        Ok(domain) => domain,
        Err(refused) => return refused,
    };
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    let (from, subject) = (text("from"), text("subject"));
    let to: Vec<String> = match &body["to"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    };
    if from.is_empty() || to.is_empty() || subject.is_empty() {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_required_field",
            "The `from`, `to` and `subject` fields are required.",
        );
    }
    let sender_domain = from
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .trim_end_matches('>');
    if sender_domain != domain {
        return refuse(
            StatusCode::FORBIDDEN,
            "validation_error",
            &format!(
                "The {sender_domain} domain is not verified. Please, add and verify your domain on https://resend.com/domains"
            ),
        );
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|k| k.to_str().ok())
        .map(str::to_owned);
    let mut state = fake.resend.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(key) = &key {
        if key.len() > 256 {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "The key must be between 1-256 chars.",
            );
        }
        if let Some((first, id)) = state.keys.get(key) {
            if *first != body {
                return refuse(
                    StatusCode::CONFLICT,
                    "invalid_idempotent_request",
                    "Same idempotency key used with a different request payload. Change your idempotency key or payload.",
                );
            }
            return Json(json!({"id": id})).into_response();
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    state.sent.push(SentEmail {
        id: id.clone(),
        from,
        to,
        subject,
        text: text("text"),
        idempotency_key: key.clone(),
    });
    if let Some(key) = key {
        state.keys.insert(key, (body, id.clone()));
    }
    Json(json!({"id": id})).into_response()
}
