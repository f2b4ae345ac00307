//! The two services the agents do not act through yet, as far as connecting them needs:
//! Expo's GraphQL `meActor` and LinkedIn's OpenID `userinfo`.

use super::{Fake, error_json};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn expo_routes() -> Router<Fake> {
    Router::new().route("/graphql", post(expo_graphql))
}

pub fn linkedin_routes() -> Router<Fake> {
    Router::new().route("/v2/userinfo", get(linkedin_userinfo))
}

async fn expo_graphql(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(username) = fake.user_of(&headers, "expo") else {
        return Json(json!({"data": null, "errors": [{"message": "Your session has expired or is invalid", "extensions": {"errorCode": "UNAUTHORIZED_ERROR"}}]})).into_response();
    };
    if !body["query"]
        .as_str()
        .is_some_and(|q| q.contains("meActor"))
    {
        return error_json(
            StatusCode::BAD_REQUEST,
            json!({"errors": [{"message": "this fake answers only meActor"}]}),
        );
    }
    Json(json!({"data": {"meActor": {"__typename": "User", "id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "username": username, "accounts": [{"id": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e", "name": username}]}}})).into_response()
}

async fn linkedin_userinfo(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    match fake.user_of(&headers, "linkedin") {
        Some(name) => Json(json!({"sub": "782bbtaQ", "name": name, "email_verified": true, "locale": {"country": "US", "language": "en"}})).into_response(),
        None => error_json(StatusCode::UNAUTHORIZED, json!({"status": 401, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN", "message": "Invalid access token"})),
    }
}
