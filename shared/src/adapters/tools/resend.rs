//! Resend (api.resend.com): its wire types and calls.

use super::{Failure, Identity, ServiceError, ServiceHttp, classify_with};
use crate::config::Secret;
use crate::domain::Service;
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// `GET /domains`: `{"object": "list", "data": [Domain]}`; only `name` is read.
#[derive(Deserialize)]
struct Domains {
    data: Vec<Domain>,
}

#[derive(Deserialize)]
struct Domain {
    name: String,
}

/// Resend has no "who am I": the key's domains say whose it is. A key restricted to
/// sending may not list them (401 `restricted_api_key`); it is still a working key.
pub(crate) async fn identify(
    client: &ServiceHttp,
    key: &Secret<String>,
) -> Result<Identity, ServiceError> {
    match client
        .send::<Domains>(client.request(Method::GET, "/domains", key), classify)
        .await
    {
        Ok(domains) => Ok(Identity {
            account: match domains.data.first() {
                Some(domain) => domain.name.clone(),
                None => "API key (no domains yet)".to_owned(),
            },
        }),
        Err(ServiceError::Unauthorized { message, .. })
            if message.contains("restricted_api_key") =>
        {
            Ok(Identity {
                account: "sending-only API key".to_owned(),
            })
        }
        Err(e) => Err(e),
    }
}

/// Resend's errors: `{"statusCode", "name", "message"}`.
fn classify(service: Service, failure: Failure<'_>) -> ServiceError {
    classify_with(service, failure, |v| {
        let message = v["message"].as_str()?;
        Some(match v["name"].as_str() {
            Some(name) => format!("{message} ({name})"),
            None => message.to_owned(),
        })
    })
}

/// `POST /emails`: one email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutgoingEmail {
    /// `Name <address@verified-domain>`.
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

#[derive(Deserialize)]
struct Sent {
    id: String,
}

/// Sends `email` once per `idempotency_key` (Resend keeps a key for 24 hours and answers a
/// repeat with the first email's id): the email's id.
pub async fn send_email(
    client: &ServiceHttp,
    key: &Secret<String>,
    email: &OutgoingEmail,
    idempotency_key: &str,
) -> Result<String, ServiceError> {
    let sent: Sent = client
        .send(
            client
                .request(Method::POST, "/emails", key)
                .header("Idempotency-Key", idempotency_key)
                .json(email),
            classify,
        )
        .await?;
    Ok(sent.id)
}
