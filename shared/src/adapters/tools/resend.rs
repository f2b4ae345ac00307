//! Resend (api.resend.com): its wire types and calls.

use super::{Failure, Identity, ServiceError, ServiceHttp, classify_with};
use crate::config::Secret;
use crate::domain::Service;
use reqwest::Method;
use serde::Deserialize;

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
