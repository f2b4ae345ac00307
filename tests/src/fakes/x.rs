//! A small X API v2 that keeps posts: `GET /2/users/me`, `POST /2/tweets` (refusing a
//! duplicate of the user's own post with X's 403 problem), `GET /2/users/{id}/tweets`.

use super::{Fake, error_json};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Posted {
    pub id: String,
    pub username: String,
    pub text: String,
}

#[derive(Default)]
pub struct XState {
    /// Oldest first.
    pub posts: Vec<Posted>,
}

pub fn routes() -> Router<Fake> {
    Router::new()
        .route("/2/users/me", get(me))
        .route("/2/tweets", post(create).get(lookup))
        .route("/2/users/{id}/tweets", get(timeline))
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    error_json(
        status,
        json!({"title": title, "type": "about:blank", "status": status.as_u16(), "detail": detail}),
    )
}

fn username(fake: &Fake, headers: &HeaderMap) -> Result<String, Response> {
    fake.user_of(headers, "x")
        .ok_or_else(|| problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"))
}

fn user_id(username: &str) -> String {
    format!(
        "{}",
        1_000_000 + username.bytes().map(u64::from).sum::<u64>()
    )
}

async fn me(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    match username(&fake, &headers) {
        Ok(name) => Json(json!({"data": {"id": user_id(&name), "name": name, "username": name}}))
            .into_response(),
        Err(refused) => refused,
    }
}

async fn create(State(fake): State<Fake>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let name = match username(&fake, &headers) {
        Ok(name) => name,
        Err(refused) => return refused,
    };
    let text = body["text"].as_str().unwrap_or_default().to_owned();
    if text.is_empty() || text.chars().count() > 280 {
        return error_json(
            StatusCode::BAD_REQUEST,
            json!({"errors": [{"message": "text must be 1-280 characters"}], "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"}),
        );
    }
    let mut state = fake.x.lock().unwrap_or_else(|e| e.into_inner());
    if state
        .posts
        .iter()
        .any(|p| p.username == name && p.text == text)
    {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "You are not allowed to create a Tweet with duplicate content.",
        );
    }
    let id = format!(
        "{}",
        1_860_000_000_000_000_000u64 + state.posts.len() as u64
    );
    state.posts.push(Posted {
        id: id.clone(),
        username: name,
        text: text.clone(),
    });
    if fake.failing("x.post") {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "Service Unavailable",
        );
    }
    (
        StatusCode::CREATED,
        Json(json!({"data": {"id": id, "text": text, "edit_history_tweet_ids": [id]}})),
    )
        .into_response()
}

/// A post's public metrics as the fake counts them: fixed by its text, so a test knows them.
pub fn metrics_of(text: &str) -> Value {
    let likes = 3 + (text.len() % 17);
    json!({"retweet_count": 1, "reply_count": 2, "like_count": likes, "quote_count": 0,
           "bookmark_count": 0, "impression_count": 100 + 10 * likes})
}

/// `GET /2/tweets?ids=...&tweet.fields=...`: the posts by id (unknown ids are left out of
/// `data` and named in `errors`, as X does).
async fn lookup(
    State(fake): State<Fake>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Err(refused) = username(&fake, &headers) {
        return refused;
    }
    let Some(ids) = query.get("ids").filter(|ids| !ids.is_empty()) else {
        return error_json(
            StatusCode::BAD_REQUEST,
            json!({"errors": [{"parameters": {"ids": []}, "message": "The `ids` query parameter can not be empty"}], "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"}),
        );
    };
    let metrics = query
        .get("tweet.fields")
        .is_some_and(|f| f.split(',').any(|f| f == "public_metrics"));
    let state = fake.x.lock().unwrap_or_else(|e| e.into_inner());
    let (mut data, mut errors) = (Vec::new(), Vec::new());
    for id in ids.split(',') {
        match state.posts.iter().find(|p| p.id == id) {
            Some(p) if metrics => data.push(json!({"id": p.id, "text": p.text, "edit_history_tweet_ids": [p.id], "public_metrics": metrics_of(&p.text)})),
            Some(p) => data.push(json!({"id": p.id, "text": p.text, "edit_history_tweet_ids": [p.id]})),
            None => errors.push(json!({"value": id, "detail": format!("Could not find tweet with ids: [{id}]."), "title": "Not Found Error", "resource_type": "tweet", "parameter": "ids", "resource_id": id, "type": "https://api.twitter.com/2/problems/resource-not-found"})),
        }
    }
    let mut body = json!({});
    if !data.is_empty() {
        body["data"] = json!(data);
    }
    if !errors.is_empty() {
        body["errors"] = json!(errors);
    }
    Json(body).into_response()
}

async fn timeline(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(refused) = username(&fake, &headers) {
        return refused;
    }
    let state = fake.x.lock().unwrap_or_else(|e| e.into_inner());
    let posts: Vec<Value> = state
        .posts
        .iter()
        .rev()
        .filter(|p| user_id(&p.username) == id)
        .take(10)
        .map(|p| json!({"id": p.id, "text": p.text, "edit_history_tweet_ids": [p.id]}))
        .collect();
    if posts.is_empty() {
        return Json(json!({"meta": {"result_count": 0}})).into_response();
    }
    Json(json!({"data": posts, "meta": {"result_count": posts.len()}})).into_response()
}
