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

/// GitHub's sign-in host answers JSON only when asked, and refuses as `error` fields.
async fn post_form<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: String,
    pairs: &[(&str, &str)],
    client_id: &str,
) -> Result<T, ServiceError> {
    let client = super::oauth::ClientAuth::Public { client_id };
    super::oauth::post_form(http, Service::Github, &url, pairs, &client).await
}

/// Starts a device flow for the OAuth app `client_id`.
pub async fn device_code(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
) -> Result<DeviceCode, ServiceError> {
    let url = format!("{base}/login/device/code");
    post_form(http, url, &[("scope", SCOPE)], client_id).await
}

/// One poll of the token endpoint for `device_code`.
pub async fn device_token(
    http: &reqwest::Client,
    base: &str,
    (client_id, device_code): (&str, &Secret<String>),
) -> Result<DeviceToken, ServiceError> {
    let url = format!("{base}/login/oauth/access_token");
    let pairs = [
        ("device_code", device_code.expose().as_str()),
        ("grant_type", GRANT_TYPE),
    ];
    let answer: TokenAnswer = post_form(http, url, &pairs, client_id).await?;
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
