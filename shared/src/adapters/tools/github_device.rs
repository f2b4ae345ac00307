//! GitHub's OAuth device flow (github.com, not the API host): an OAuth app with the device
//! flow enabled asks for a device code and a user code; the user enters the user code at
//! the verification page; polling the token endpoint then answers the user's token. Both
//! endpoints take a form-encoded body and answer JSON when asked to (`Accept`); the token
//! endpoint answers its pending and refused states as `error` fields with HTTP 200.

use super::ServiceError;
use crate::config::Secret;
use crate::domain::Service;
use serde::Deserialize;

/// The scope a connection needs: private repositories, their contents and pull requests.
const SCOPE: &str = "repo";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `POST /login/device/code`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    /// Seconds until both codes expire (900).
    pub expires_in: u64,
    /// The least number of seconds between two polls (5).
    pub interval: u64,
}

/// Where a device flow stands, as the token endpoint says.
#[derive(Debug)]
pub enum DeviceToken {
    Token(Secret<String>),
    /// The user has not entered the code yet.
    Pending,
    /// Polled too soon: wait at least this many seconds from now on.
    SlowDown(u64),
    /// The codes expired: start again.
    Expired,
    /// The user cancelled at the verification page.
    Denied,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    interval: Option<u64>,
}

/// `application/x-www-form-urlencoded`: unreserved characters as they are, the rest
/// percent-encoded.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn post_form<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: String,
    pairs: &[(&str, &str)],
) -> Result<T, ServiceError> {
    let unavailable = |message: String, source: Option<reqwest::Error>| ServiceError::Unavailable {
        service: Service::Github,
        message,
        source,
    };
    let response = http
        .post(&url)
        .header(reqwest::header::ACCEPT, "application/json")
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::USER_AGENT, "autocrew")
        .body(form(pairs))
        .send()
        .await
        .map_err(|e| unavailable("could not reach github.com".into(), Some(e.without_url())))?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| {
        unavailable(
            "could not read github.com's answer".into(),
            Some(e.without_url()),
        )
    })?;
    match status {
        200..=299 => serde_json::from_str(&body).map_err(|e| {
            unavailable(
                format!("its answer is not what its documentation describes: {e}"),
                None,
            )
        }),
        429 | 500.. => Err(unavailable(format!("HTTP {status}"), None)),
        _ => Err(ServiceError::Refused {
            service: Service::Github,
            status,
            message: body.chars().take(200).collect(),
        }),
    }
}

/// Starts a device flow for the OAuth app `client_id`.
pub async fn device_code(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
) -> Result<DeviceCode, ServiceError> {
    let url = format!("{base}/login/device/code");
    post_form(http, url, &[("client_id", client_id), ("scope", SCOPE)]).await
}

/// One poll of the token endpoint for `device_code`.
pub async fn device_token(
    http: &reqwest::Client,
    base: &str,
    (client_id, device_code): (&str, &Secret<String>),
) -> Result<DeviceToken, ServiceError> {
    let url = format!("{base}/login/oauth/access_token");
    let pairs = [
        ("client_id", client_id),
        ("device_code", device_code.expose().as_str()),
        ("grant_type", GRANT_TYPE),
    ];
    let answer: TokenAnswer = post_form(http, url, &pairs).await?;
    Ok(match (answer.access_token, answer.error.as_deref()) {
        (Some(token), _) => DeviceToken::Token(Secret::new(token)),
        (None, Some("authorization_pending")) => DeviceToken::Pending,
        (None, Some("slow_down")) => DeviceToken::SlowDown(answer.interval.unwrap_or(10)),
        (None, Some("expired_token")) => DeviceToken::Expired,
        (None, Some("access_denied")) => DeviceToken::Denied,
        (None, error) => {
            return Err(ServiceError::Refused {
                service: Service::Github,
                status: 200,
                message: format!(
                    "{} ({})",
                    answer
                        .error_description
                        .as_deref()
                        .unwrap_or("no description"),
                    error.unwrap_or("no error code")
                ),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_form_body_percent_encodes_what_is_not_unreserved() {
        assert_eq!(
            super::form(&[("grant_type", super::GRANT_TYPE), ("scope", "repo")]),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&scope=repo"
        );
    }
}
