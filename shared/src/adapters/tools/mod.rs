//! The outside services the agents act through, each in its own module with its exact
//! wire types: requests and responses are typed there and converted at the boundary.
//! Every base URL comes from `ServiceUrls`; a credential travels only in the
//! `Authorization` header and never reaches a log or an error message.

pub mod expo;
pub mod github;
pub mod github_device;
pub mod linkedin;
pub mod oauth;
pub mod resend;
pub mod vercel;
pub mod x;

use crate::config::{Secret, ServiceUrls};
use crate::domain::Service;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Why a call to an outside service did not do what it asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The credential was refused: revoked, expired, or without the scope the call needs.
    #[error("{service} refused the credential (HTTP {status}): {message}")]
    Unauthorized {
        service: Service,
        status: u16,
        message: String,
    },
    /// Too many calls; `retry_after` is the service's own word, when it gave one.
    #[error("{service} is rate-limiting these calls (HTTP {status}): {message}")]
    RateLimited {
        service: Service,
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
    /// The service understood the call and refused it (invalid, conflicting, duplicate).
    #[error("{service} refused the request (HTTP {status}): {message}")]
    Refused {
        service: Service,
        status: u16,
        message: String,
    },
    /// The service failed or could not be reached; trying again later may work.
    #[error("{service} is unavailable: {message}")]
    Unavailable {
        service: Service,
        message: String,
        #[source]
        source: Option<reqwest::Error>,
    },
}

impl ServiceError {
    /// Whether the same call may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ServiceError::RateLimited { .. } | ServiceError::Unavailable { .. }
        )
    }
}

/// Who a credential acts as at its service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// A login, a username, an address: what the API shows as the connection's account.
    pub account: String,
}

/// HTTP to one service: its base URL, the shared client, and how it words its errors.
#[derive(Clone)]
pub struct ServiceHttp {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) service: Service,
}

/// The status, headers and body of a refused call, for a service's own reading.
pub(crate) struct Failure<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    pub body: &'a str,
}

impl ServiceHttp {
    pub fn new(http: reqwest::Client, urls: &ServiceUrls, service: Service) -> Self {
        ServiceHttp {
            http,
            base: urls.base(service).to_owned(),
            service,
        }
    }

    /// A request to `path` (from the base URL) carrying `credential` as a bearer token.
    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        credential: &Secret<String>,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(credential.expose())
            .header(reqwest::header::USER_AGENT, "autocrew")
    }

    /// Sends `request` and reads a JSON answer of type `T`; a refusal is worded by
    /// `classify`, the service's own reading of its error shapes.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        classify: fn(Service, Failure<'_>) -> ServiceError,
    ) -> Result<T, ServiceError> {
        let (status, _, body) = self.send_for_headers(request, classify).await?;
        serde_json::from_str(&body).map_err(|e| ServiceError::Unavailable {
            service: self.service,
            message: format!("its answer (HTTP {status}) is not what its API describes: {e}"),
            source: None,
        })
    }

    /// Sends `request`; the status, headers and body of its success (for an answer that
    /// names what it made in a header), or its refusal as `classify` words it.
    pub(crate) async fn send_for_headers(
        &self,
        request: reqwest::RequestBuilder,
        classify: fn(Service, Failure<'_>) -> ServiceError,
    ) -> Result<(u16, HeaderMap, String), ServiceError> {
        let (status, headers, body) = self.exchange(request).await?;
        if !(200..300).contains(&status) {
            return Err(classify(
                self.service,
                Failure {
                    status,
                    headers: &headers,
                    body: &body,
                },
            ));
        }
        Ok((status, headers, body))
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, HeaderMap, String), ServiceError> {
        let unavailable = |e: reqwest::Error| ServiceError::Unavailable {
            service: self.service,
            message: format!("could not reach {}", self.base),
            source: Some(e.without_url()),
        };
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(unavailable)?;
        Ok((status, headers, body))
    }
}

/// The usual reading of a refusal: 401 and 403 refuse the credential, 429 limits the rate,
/// 5xx is the service's own failure, any other 4xx refuses the request. `message` is the
/// service's own words, found in its error shape by `extract`.
pub(crate) fn classify_with(
    service: Service,
    failure: Failure<'_>,
    extract: fn(&serde_json::Value) -> Option<String>,
) -> ServiceError {
    let message = serde_json::from_str::<serde_json::Value>(failure.body)
        .ok()
        .and_then(|v| extract(&v))
        .unwrap_or_else(|| {
            let text: String = failure.body.chars().take(200).collect();
            if text.trim().is_empty() {
                "no explanation given".to_owned()
            } else {
                text
            }
        });
    let status = failure.status;
    match status {
        401 | 403 => ServiceError::Unauthorized {
            service,
            status,
            message,
        },
        429 => ServiceError::RateLimited {
            service,
            status,
            retry_after: retry_after(failure.headers),
            message,
        },
        500.. => ServiceError::Unavailable {
            service,
            message: format!("HTTP {status}: {message}"),
            source: None,
        },
        _ => ServiceError::Refused {
            service,
            status,
            message,
        },
    }
}

/// `Retry-After` in seconds, when the service sent one.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Who `credential` acts as at `service`: a call to the service's own "who am I".
pub async fn identify(
    http: &reqwest::Client,
    urls: &ServiceUrls,
    service: Service,
    credential: &Secret<String>,
) -> Result<Identity, ServiceError> {
    let client = ServiceHttp::new(http.clone(), urls, service);
    match service {
        Service::Github => github::identify(&client, credential).await,
        Service::Vercel => vercel::identify(&client, credential).await,
        Service::Expo => expo::identify(&client, credential).await,
        Service::Resend => resend::identify(&client, credential).await,
        Service::X => x::identify(&client, credential).await,
        Service::Linkedin => linkedin::identify(&client, credential).await,
    }
}
