//! X API v2 (api.x.com): its wire types and calls. Posting needs a user-context token
//! (OAuth 2.0 with `tweet.write`); an app-only bearer token can identify nothing.

use super::{Failure, Identity, ServiceError, ServiceHttp, classify_with};
use crate::config::Secret;
use crate::domain::Service;
use reqwest::Method;
use serde::Deserialize;

/// The OAuth 2.0 token endpoint, on the API host.
pub const TOKEN_PATH: &str = "/2/oauth2/token";
/// What a connection asks for: reading the user and posting as them (`users.read` needs
/// `tweet.read`), and `offline.access` for a refresh token (an access token lives 2 h).
pub const SCOPES: &str = "tweet.read tweet.write users.read offline.access";

/// `GET /2/users/me`: `{"data": User}`.
#[derive(Deserialize)]
struct Me {
    data: User,
}

#[derive(Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
}

/// A post (`Tweet`): its id and text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Post {
    pub id: String,
    pub text: String,
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

/// `GET /2/users/{id}/tweets`: `data` is absent when there are none.
#[derive(Deserialize)]
struct Timeline {
    #[serde(default)]
    data: Vec<Post>,
}

/// The token's user.
pub async fn me(client: &ServiceHttp, token: &Secret<String>) -> Result<User, ServiceError> {
    let me: Me = client
        .send(client.request(Method::GET, "/2/users/me", token), classify)
        .await?;
    Ok(me.data)
}

/// `POST /2/tweets`' body.
#[derive(serde::Serialize)]
struct NewPost<'a> {
    text: &'a str,
}

/// `POST /2/tweets`: posts `text` as the token's user.
pub async fn post(
    client: &ServiceHttp,
    token: &Secret<String>,
    text: &str,
) -> Result<Post, ServiceError> {
    let posted: Data<Post> = client
        .send(
            client
                .request(Method::POST, "/2/tweets", token)
                .json(&NewPost { text }),
            classify,
        )
        .await?;
    Ok(posted.data)
}

/// `GET /2/users/{id}/tweets`: the user's latest posts (at most 10).
pub async fn recent(
    client: &ServiceHttp,
    token: &Secret<String>,
    user_id: &str,
) -> Result<Vec<Post>, ServiceError> {
    let timeline: Timeline = client
        .send(
            client.request(
                Method::GET,
                &format!("/2/users/{user_id}/tweets?max_results=10"),
                token,
            ),
            classify,
        )
        .await?;
    Ok(timeline.data)
}

/// Whether X refused a post as a duplicate of one already made.
pub fn is_duplicate(error: &ServiceError) -> bool {
    matches!(error, ServiceError::Refused { status: 403, message, .. } if message.contains("duplicate content"))
}

pub(crate) async fn identify(
    client: &ServiceHttp,
    token: &Secret<String>,
) -> Result<Identity, ServiceError> {
    let me = me(client, token).await?;
    Ok(Identity {
        account: format!("@{}", me.username),
    })
}

/// X's errors: a problem (`title`, `detail`, `type`), or `errors: [{message}]`. A 403 for
/// duplicate content refuses the post, not the token.
pub(crate) fn classify(service: Service, failure: Failure<'_>) -> ServiceError {
    if failure.status == 403 && failure.body.contains("duplicate content") {
        return ServiceError::Refused {
            service,
            status: 403,
            message: "You are not allowed to create a Tweet with duplicate content.".into(),
        };
    }
    classify_with(service, failure, |v| {
        v["detail"]
            .as_str()
            .or_else(|| v["title"].as_str())
            .or_else(|| v["errors"][0]["message"].as_str())
            .or_else(|| v["errors"][0]["detail"].as_str())
            .map(str::to_owned)
    })
}
