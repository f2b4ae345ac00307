//! LinkedIn (api.linkedin.com): its wire types and calls. A member token with the
//! `openid profile w_member_social` scopes identifies its member and posts as them.

use super::{Failure, Identity, ServiceError, ServiceHttp, classify_with};
use crate::config::Secret;
use crate::domain::Service;
use reqwest::Method;
use serde::Deserialize;

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
    let me: UserInfo = client
        .send(client.request(Method::GET, "/v2/userinfo", token), classify)
        .await?;
    Ok(Identity {
        account: me.name.unwrap_or(me.sub),
    })
}

/// LinkedIn's errors: `{"status", "serviceErrorCode", "message"}`.
fn classify(service: Service, failure: Failure<'_>) -> ServiceError {
    classify_with(service, failure, |v| {
        v["message"].as_str().map(str::to_owned)
    })
}
