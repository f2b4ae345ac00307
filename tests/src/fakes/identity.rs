//! The service the agents do not act through yet, as far as connecting it needs:
//! LinkedIn's OpenID `userinfo`.

use super::{Fake, error_json};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub fn linkedin_routes() -> Router<Fake> {
    Router::new().route("/v2/userinfo", get(linkedin_userinfo))
}

async fn linkedin_userinfo(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    match fake.user_of(&headers, "linkedin") {
        Some(name) => Json(json!({"sub": "782bbtaQ", "name": name, "email_verified": true, "locale": {"country": "US", "language": "en"}})).into_response(),
        None => error_json(StatusCode::UNAUTHORIZED, json!({"status": 401, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN", "message": "Invalid access token"})),
    }
}
