//! Vercel REST (api.vercel.com): its wire types and calls.

use super::{Failure, Identity, ServiceError, ServiceHttp, classify_with};
use crate::config::Secret;
use crate::domain::Service;
use reqwest::Method;
use serde::Deserialize;

/// `GET /v2/user`: `{"user": AuthUser}`; only `username` is read.
#[derive(Deserialize)]
struct UserResponse {
    user: AuthUser,
}

#[derive(Deserialize)]
struct AuthUser {
    username: String,
}

pub(crate) async fn identify(
    client: &ServiceHttp,
    token: &Secret<String>,
) -> Result<Identity, ServiceError> {
    let answer: UserResponse = client
        .send(client.request(Method::GET, "/v2/user", token), classify)
        .await?;
    Ok(Identity {
        account: answer.user.username,
    })
}

/// Vercel's errors: `{"error": {"code", "message"}}`.
fn classify(service: Service, failure: Failure<'_>) -> ServiceError {
    classify_with(service, failure, |v| {
        let error = &v["error"];
        let message = error["message"].as_str()?;
        Some(match error["code"].as_str() {
            Some(code) => format!("{message} ({code})"),
            None => message.to_owned(),
        })
    })
}
