//! GitHub REST (api.github.com, version 2022-11-28): its wire types and calls.

use super::{Failure, Identity, ServiceError, ServiceHttp, classify_with, retry_after};
use crate::config::Secret;
use crate::domain::Service;
use reqwest::Method;
use serde::Deserialize;

/// The REST API version every request asks for (`X-GitHub-Api-Version`).
pub const API_VERSION: &str = "2022-11-28";

fn request(
    client: &ServiceHttp,
    method: Method,
    path: &str,
    token: &Secret<String>,
) -> reqwest::RequestBuilder {
    client
        .request(method, path, token)
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", API_VERSION)
}

/// `GET /user`: the authenticated user (`private-user` / `public-user`; only `login` is read).
#[derive(Deserialize)]
struct User {
    login: String,
}

pub(crate) async fn identify(
    client: &ServiceHttp,
    token: &Secret<String>,
) -> Result<Identity, ServiceError> {
    let user: User = client
        .send(request(client, Method::GET, "/user", token), classify)
        .await?;
    Ok(Identity {
        account: user.login,
    })
}

/// GitHub's `basic-error` (`message`), and its rate limits: a 429, or a 403 whose
/// `x-ratelimit-remaining` is 0 or that carries `retry-after` (the secondary limits), is a
/// rate limit, not a refused credential.
fn classify(service: Service, failure: Failure<'_>) -> ServiceError {
    let limited = failure.status == 429
        || (failure.status == 403
            && (failure.headers.contains_key(reqwest::header::RETRY_AFTER)
                || failure
                    .headers
                    .get("x-ratelimit-remaining")
                    .is_some_and(|v| v.as_bytes() == b"0")));
    if limited {
        let message = message(failure.body);
        let reset = failure
            .headers
            .get("x-ratelimit-reset")
            .and_then(|v| v.to_str().ok()?.parse::<i64>().ok())
            .map(|epoch| {
                std::time::Duration::from_secs(
                    (epoch - chrono::Utc::now().timestamp()).max(1) as u64
                )
            });
        return ServiceError::RateLimited {
            service,
            status: failure.status,
            retry_after: retry_after(failure.headers).or(reset),
            message,
        };
    }
    classify_with(service, failure, |v| {
        let message = v["message"].as_str()?;
        // A 422 lists what was wrong in `errors`.
        let details: Vec<String> = v["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                e["message"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| Some(format!("{} {}", e["field"].as_str()?, e["code"].as_str()?)))
            })
            .collect();
        Some(if details.is_empty() {
            message.to_owned()
        } else {
            format!("{message}: {}", details.join("; "))
        })
    })
}

fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "rate limit exceeded".to_owned())
}
