//! Vercel REST (api.vercel.com): its wire types and calls. A site is deployed as one
//! deployment with its files inlined (`POST /v13/deployments`), then followed by its
//! `readyState` (`GET /v13/deployments/{id}`).

use super::{Failure, Identity, ServiceError, ServiceHttp, classify_with};
use crate::config::Secret;
use crate::domain::Service;
use reqwest::Method;
use serde::{Deserialize, Serialize};

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

/// One inlined file of a deployment (`InlinedFile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlinedFile {
    /// The path inside the deployment, like `index.html`.
    pub file: String,
    pub data: String,
    /// `utf-8` for text, `base64` for anything else.
    pub encoding: &'static str,
}

/// A deployment as Vercel answers for it (the fields read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VercelDeployment {
    pub id: String,
    /// The deployment's own host, without the scheme.
    pub url: String,
    /// QUEUED, INITIALIZING, BUILDING, READY, ERROR or CANCELED.
    pub ready_state: String,
    #[serde(default)]
    pub inspector_url: Option<String>,
    /// Production domains it is aliased to, once ready.
    #[serde(default)]
    pub alias: Vec<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
}

impl VercelDeployment {
    /// Where the site is served: its first alias once there is one, else its own URL.
    pub fn site_url(&self) -> String {
        let host = self.alias.first().unwrap_or(&self.url);
        match host.starts_with("http://") || host.starts_with("https://") {
            // A local stand-in (the demo's fake) answers with its own scheme.
            true => host.clone(),
            false => format!("https://{host}"),
        }
    }
}

/// `POST /v13/deployments`' body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NewDeployment<'a> {
    name: &'a str,
    files: &'a [InlinedFile],
    target: &'static str,
    project_settings: ProjectSettings,
}

/// No framework: the files are served as they are (`null`, not left out).
#[derive(Serialize)]
struct ProjectSettings {
    framework: Option<String>,
}

/// `POST /v13/deployments`: a production deployment of `files` under the project `name`
/// (made on first use), as a static site (no framework, no build).
pub async fn create_deployment(
    client: &ServiceHttp,
    token: &Secret<String>,
    name: &str,
    files: &[InlinedFile],
) -> Result<VercelDeployment, ServiceError> {
    let body = NewDeployment {
        name,
        files,
        target: "production",
        project_settings: ProjectSettings { framework: None },
    };
    client
        .send(
            client
                .request(
                    Method::POST,
                    "/v13/deployments?skipAutoDetectionConfirmation=1",
                    token,
                )
                .json(&body),
            classify,
        )
        .await
}

/// `PATCH /v12/deployments/{id}/cancel`: stops a deployment still building; Vercel answers
/// it, `CANCELED`.
pub async fn cancel_deployment(
    client: &ServiceHttp,
    token: &Secret<String>,
    id: &str,
) -> Result<VercelDeployment, ServiceError> {
    client
        .send(
            client.request(
                Method::PATCH,
                &format!("/v12/deployments/{id}/cancel"),
                token,
            ),
            classify,
        )
        .await
}

/// `GET /v13/deployments/{id}`.
pub async fn deployment(
    client: &ServiceHttp,
    token: &Secret<String>,
    id: &str,
) -> Result<VercelDeployment, ServiceError> {
    client
        .send(
            client.request(Method::GET, &format!("/v13/deployments/{id}"), token),
            classify,
        )
        .await
}
