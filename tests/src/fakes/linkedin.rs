//! A fake of LinkedIn: OpenID `userinfo` and the versioned Posts API (`POST /rest/posts`),
//! which it checks as LinkedIn does (the version headers, the required fields, no unknown
//! field, the author being the token's member) and which refuses the same text twice from
//! one member as a duplicate naming the first post.

use super::{Fake, error_json};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Post {
    pub urn: String,
    pub author: String,
    pub text: String,
}

#[derive(Default)]
pub struct LinkedinState {
    pub posts: Vec<Post>,
}

pub fn routes() -> Router<Fake> {
    Router::new()
        .route("/v2/userinfo", get(userinfo))
        .route("/rest/posts", post(create_post))
        .route("/rest/socialActions/{urn}", get(social_actions))
}

/// A post's likes and comments as the fake counts them: fixed by its text, so a test
/// knows them.
pub fn engagement_of(text: &str) -> (i64, i64) {
    let likes = 2 + (text.len() as i64 % 13);
    (likes, 1)
}

/// `GET /rest/socialActions/{urn}` (versioned): the post's likes and comments summaries.
async fn social_actions(
    State(fake): State<Fake>,
    headers: HeaderMap,
    axum::extract::Path(urn): axum::extract::Path<String>,
) -> Response {
    if fake.user_of(&headers, "linkedin").is_none() {
        return unauthorized();
    }
    let version = headers
        .get("linkedin-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if version.len() != 6 {
        return error_json(
            StatusCode::BAD_REQUEST,
            json!({"status": 400, "code": "VERSION_MISSING", "message": "A version must be present. Please specify a version by adding the LinkedIn-Version header."}),
        );
    }
    let state = fake.linkedin.lock().unwrap_or_else(|e| e.into_inner());
    let Some(post) = state.posts.iter().find(|p| p.urn == urn) else {
        return error_json(
            StatusCode::NOT_FOUND,
            json!({"status": 404, "code": "NOT_FOUND", "message": format!("Not found: {urn}")}),
        );
    };
    let (likes, comments) = engagement_of(&post.text);
    Json(json!({
        "target": urn,
        "likesSummary": {"totalLikes": likes, "likedByCurrentUser": false},
        "commentsSummary": {"totalFirstLevelComments": comments, "aggregatedTotalComments": comments}
    }))
    .into_response()
}

/// The member id (`sub`) a fake account has: its letters and digits.
fn sub_of(account: &str) -> String {
    account
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

fn unauthorized() -> Response {
    error_json(
        StatusCode::UNAUTHORIZED,
        json!({"status": 401, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN", "message": "Invalid access token"}),
    )
}

async fn userinfo(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    match fake.user_of(&headers, "linkedin") {
        Some(name) => Json(json!({"sub": sub_of(&name), "name": name, "email_verified": true, "locale": {"country": "US", "language": "en"}})).into_response(),
        None => unauthorized(),
    }
}

const FIELDS: [&str; 6] = [
    "author",
    "commentary",
    "visibility",
    "distribution",
    "lifecycleState",
    "isReshareDisabledByAuthor",
];

async fn create_post(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(member) = fake.user_of(&headers, "linkedin") else {
        return unauthorized();
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let version = header("linkedin-version");
    if version.len() != 6 || !version.chars().all(|c| c.is_ascii_digit()) {
        return error_json(
            StatusCode::BAD_REQUEST,
            json!({"status": 400, "code": "VERSION_MISSING", "message": "A version must be present. Please specify a version by adding the LinkedIn-Version header."}),
        );
    }
    if header("x-restli-protocol-version") != "2.0.0" {
        return error_json(
            StatusCode::BAD_REQUEST,
            json!({"status": 400, "message": "the Posts API needs X-Restli-Protocol-Version: 2.0.0"}),
        );
    }
    let mut problems = Vec::new();
    for field in body.as_object().into_iter().flat_map(|o| o.keys()) {
        if !FIELDS.contains(&field.as_str()) {
            problems.push(format!(
                "ERROR :: /{field} :: unrecognized field found but not allowed"
            ));
        }
    }
    for field in [
        "author",
        "commentary",
        "visibility",
        "distribution",
        "lifecycleState",
    ] {
        if body[field].is_null() {
            problems.push(format!(
                "ERROR :: /{field} :: field is required but not found and has no default value"
            ));
        }
    }
    if !problems.is_empty() {
        return error_json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"status": 422, "message": problems.join("\n")}),
        );
    }
    let author = body["author"].as_str().unwrap_or_default().to_owned();
    if author != format!("urn:li:person:{}", sub_of(&member)) {
        return error_json(
            StatusCode::FORBIDDEN,
            json!({"status": 403, "serviceErrorCode": 100, "code": "ACCESS_DENIED", "message": format!("Not enough permissions to access: partnerApiPostsExternal.CREATE.{version}")}),
        );
    }
    let text = body["commentary"].as_str().unwrap_or_default().to_owned();
    let mut state = fake.linkedin.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(first) = state
        .posts
        .iter()
        .find(|p| p.author == author && p.text == text)
    {
        return error_json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"status": 422, "message": format!("Content is a duplicate of {}", first.urn)}),
        );
    }
    let urn = format!(
        "urn:li:share:{}",
        7_262_201_467_839_291_392u64 + state.posts.len() as u64
    );
    state.posts.push(Post {
        urn: urn.clone(),
        author,
        text,
    });
    drop(state);
    if fake.failing("linkedin.post") {
        return error_json(
            StatusCode::BAD_GATEWAY,
            json!({"message": "the fake posted, then lost the answer"}),
        );
    }
    (StatusCode::CREATED, [("x-restli-id", urn)]).into_response()
}
