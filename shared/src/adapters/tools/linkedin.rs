//! LinkedIn (api.linkedin.com): its wire types and calls. A member token with the
//! `openid profile w_member_social` scopes identifies its member and posts as them
//! through the versioned Posts API (`/rest/posts`).

use super::{Failure, Identity, ServiceError, ServiceHttp, classify_with};
use crate::config::Secret;
use crate::domain::Service;
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// The Posts API version this adapter speaks (`LinkedIn-Version`, YYYYMM): the newest one
/// the reference documents. LinkedIn supports a version for at least a year after it is
/// published, so it is due to be moved on by January 2027.
pub const VERSION: &str = "202601";
/// What a connection asks for: the member's id (`openid profile`, read from `userinfo`) and
/// posting as them (`w_member_social`).
pub const SCOPES: &str = "openid profile w_member_social";

/// `GET /v2/userinfo` (OpenID Connect): `sub` names the member (`urn:li:person:{sub}`).
#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    #[serde(default)]
    name: Option<String>,
}

pub(crate) async fn identify(
    client: &ServiceHttp,
    token: &Secret<String>,
) -> Result<Identity, ServiceError> {
    let me = userinfo(client, token).await?;
    Ok(Identity {
        account: me.name.unwrap_or(me.sub),
    })
}

async fn userinfo(client: &ServiceHttp, token: &Secret<String>) -> Result<UserInfo, ServiceError> {
    client
        .send(client.request(Method::GET, "/v2/userinfo", token), classify)
        .await
}

/// The member a token posts as, as a Posts API author: `urn:li:person:{sub}`.
pub async fn member_urn(
    client: &ServiceHttp,
    token: &Secret<String>,
) -> Result<String, ServiceError> {
    Ok(format!(
        "urn:li:person:{}",
        userinfo(client, token).await?.sub
    ))
}

/// A text post, as `POST /rest/posts` takes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NewPost<'a> {
    author: &'a str,
    commentary: &'a str,
    visibility: &'static str,
    distribution: Distribution,
    lifecycle_state: &'static str,
    is_reshare_disabled_by_author: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Distribution {
    feed_distribution: &'static str,
    target_entities: [(); 0],
    third_party_distribution_channels: [(); 0],
}

/// Posts `text` publicly in the member's feed; answers the post's URN (LinkedIn's 201
/// has no body: the URN is in `x-restli-id`). A post LinkedIn refuses as a duplicate of
/// one it holds (a retry after a lost answer) answers that post's URN.
pub async fn create_post(
    client: &ServiceHttp,
    token: &Secret<String>,
    (author, text): (&str, &str),
) -> Result<String, ServiceError> {
    let post = NewPost {
        author,
        commentary: text,
        visibility: "PUBLIC",
        distribution: Distribution {
            feed_distribution: "MAIN_FEED",
            target_entities: [],
            third_party_distribution_channels: [],
        },
        lifecycle_state: "PUBLISHED",
        is_reshare_disabled_by_author: false,
    };
    let request = client
        .request(Method::POST, "/rest/posts", token)
        .header("LinkedIn-Version", VERSION)
        .header("X-Restli-Protocol-Version", "2.0.0")
        .json(&post);
    match client.send_for_headers(request, classify).await {
        Ok((_, headers, _)) => headers
            .get("x-restli-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| ServiceError::Unavailable {
                service: Service::Linkedin,
                message: "its 201 named no post (no x-restli-id header)".into(),
                source: None,
            }),
        Err(ServiceError::Refused {
            status: 422,
            message,
            ..
        }) if duplicate_of(&message).is_some() => Ok(duplicate_of(&message).unwrap_or_default()),
        Err(e) => Err(e),
    }
}

/// `GET /rest/socialActions/{urn}`: a post's likes and comments summaries.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SocialActions {
    #[serde(default)]
    likes_summary: Option<LikesSummary>,
    #[serde(default)]
    comments_summary: Option<CommentsSummary>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LikesSummary {
    total_likes: Option<i64>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommentsSummary {
    aggregated_total_comments: Option<i64>,
    total_first_level_comments: Option<i64>,
}

/// How a post did: its likes and comments (LinkedIn's Social Actions API; reposts and
/// impressions need the organization analytics a member's post has none of).
pub async fn post_metrics(
    client: &ServiceHttp,
    token: &Secret<String>,
    urn: &str,
) -> Result<crate::domain::marketing::PostMetrics, ServiceError> {
    // The URN is a path segment: its colons are percent-encoded, as LinkedIn asks.
    let path = format!("/rest/socialActions/{}", urn.replace(':', "%3A"));
    let request = client
        .request(Method::GET, &path, token)
        .header("LinkedIn-Version", VERSION)
        .header("X-Restli-Protocol-Version", "2.0.0");
    let actions: SocialActions = client.send(request, classify).await?;
    Ok(crate::domain::marketing::PostMetrics {
        likes: actions.likes_summary.and_then(|l| l.total_likes),
        replies: actions
            .comments_summary
            .and_then(|c| c.aggregated_total_comments.or(c.total_first_level_comments)),
        reposts: None,
        impressions: None,
    })
}

/// The post a duplicate refusal names: "Content is a duplicate of urn:li:share:...".
fn duplicate_of(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("duplicate of ")?;
    let urn: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
        .collect();
    urn.starts_with("urn:li:").then_some(urn)
}

/// Where a person opens a post.
pub fn post_link(urn: &str) -> String {
    format!("https://www.linkedin.com/feed/update/{urn}/")
}

/// LinkedIn's errors: `{"status", "serviceErrorCode", "code", "message"}`.
fn classify(service: Service, failure: Failure<'_>) -> ServiceError {
    classify_with(service, failure, |v| {
        v["message"].as_str().map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_duplicate_refusal_names_the_post_it_duplicates() {
        assert_eq!(
            super::duplicate_of("Content is a duplicate of urn:li:share:7262201467839291392"),
            Some("urn:li:share:7262201467839291392".to_owned())
        );
        assert_eq!(super::duplicate_of("Field Value validation failed"), None);
    }
}
