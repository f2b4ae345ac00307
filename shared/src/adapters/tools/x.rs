//! X API v2 (api.x.com): its wire types and calls. Posting needs a user-context token
//! (OAuth 2.0 with `tweet.write`); an app-only bearer token can identify nothing.

use super::{Failure, Identity, ServiceError, ServiceHttp, classify_with};
use crate::config::Secret;
use crate::domain::Service;
use reqwest::Method;
use serde::Deserialize;

/// `GET /2/users/me`: `{"data": User}`; only `username` is read.
#[derive(Deserialize)]
struct Me {
    data: User,
}

#[derive(Deserialize)]
struct User {
    username: String,
}

pub(crate) async fn identify(
    client: &ServiceHttp,
    token: &Secret<String>,
) -> Result<Identity, ServiceError> {
    let me: Me = client
        .send(client.request(Method::GET, "/2/users/me", token), classify)
        .await?;
    Ok(Identity {
        account: format!("@{}", me.data.username),
    })
}

/// X's errors: a problem (`title`, `detail`, `type`), or `errors: [{message}]`.
pub(crate) fn classify(service: Service, failure: Failure<'_>) -> ServiceError {
    classify_with(service, failure, |v| {
        v["detail"]
            .as_str()
            .or_else(|| v["title"].as_str())
            .or_else(|| v["errors"][0]["message"].as_str())
            .or_else(|| v["errors"][0]["detail"].as_str())
            .map(str::to_owned)
    })
}
