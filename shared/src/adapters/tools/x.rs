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

/// A list of posts (`GET /2/users/{id}/tweets`, `GET /2/tweets`): `data` is absent when
/// there are none.
#[derive(Deserialize)]
struct Timeline<T = Post> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
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
    let timeline: Timeline<Post> = client
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

/// A post with its public metrics (`tweet.fields=public_metrics`).
#[derive(Deserialize)]
struct Measured {
    id: String,
    public_metrics: Option<PublicMetrics>,
}

#[derive(Deserialize)]
struct PublicMetrics {
    like_count: Option<i64>,
    reply_count: Option<i64>,
    retweet_count: Option<i64>,
    quote_count: Option<i64>,
    impression_count: Option<i64>,
}

/// `GET /2/tweets?ids=...&tweet.fields=public_metrics`: how each post did, by id (at most
/// 100 ids a call; a deleted post is left out).
pub async fn post_metrics(
    client: &ServiceHttp,
    token: &Secret<String>,
    ids: &[&str],
) -> Result<Vec<(String, crate::domain::marketing::PostMetrics)>, ServiceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = ids.iter().take(100).copied().collect();
    let path = format!(
        "/2/tweets?ids={}&tweet.fields=public_metrics",
        ids.join(",")
    );
    let found: Timeline<Measured> = client
        .send(client.request(Method::GET, &path, token), classify)
        .await?;
    Ok(found
        .data
        .into_iter()
        .map(|post| {
            let m = post.public_metrics;
            let metrics = crate::domain::marketing::PostMetrics {
                likes: m.as_ref().and_then(|m| m.like_count),
                replies: m.as_ref().and_then(|m| m.reply_count),
                reposts: m.as_ref().and_then(|m| {
                    Some(m.retweet_count.unwrap_or(0) + m.quote_count.unwrap_or(0))
                        .filter(|_| m.retweet_count.is_some() || m.quote_count.is_some())
                }),
                impressions: m.as_ref().and_then(|m| m.impression_count),
            };
            (post.id, metrics)
        })
        .collect())
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
