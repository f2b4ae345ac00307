//! Email through Resend's HTTP API (`POST /emails`), as deployed stacks send it.

use crate::ports::{Email, MailError, Mailer, Secrets};
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Resend's API root; `RESEND_BASE_URL` replaces it (tests point it at a local server).
pub const RESEND_BASE_URL: &str = "https://api.resend.com";

/// Resend's `POST /emails` body: one plain-text email.
#[derive(serde::Serialize)]
struct ResendEmail<'a> {
    from: &'a str,
    to: [&'a str; 1],
    subject: &'a str,
    text: &'a str,
}

/// `Mailer` on Resend. The API key is read from the secret store on the first send, so a
/// missing key fails the emails (logged, and asked for again) rather than every route.
pub struct ResendMailer {
    http: reqwest::Client,
    base_url: String,
    secrets: Arc<dyn Secrets>,
    key_secret: String,
    api_key: OnceCell<String>,
    /// `Autocrew <noreply@example.com>`: a sender on a domain verified in Resend.
    from: String,
}

impl ResendMailer {
    pub fn new(base_url: &str, secrets: Arc<dyn Secrets>, key_secret: &str, from: &str) -> Self {
        ResendMailer {
            http: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            secrets,
            key_secret: key_secret.to_owned(),
            api_key: OnceCell::new(),
            from: from.to_owned(),
        }
    }
}

#[async_trait]
impl Mailer for ResendMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let api_key = self
            .api_key
            .get_or_try_init(|| async {
                self.secrets
                    .secret(&self.key_secret)
                    .await
                    .map(|key| key.trim().to_owned())
            })
            .await
            .map_err(|e| MailError::Unreachable(Box::new(e)))?;
        let response = self
            .http
            .post(format!("{}/emails", self.base_url))
            .bearer_auth(api_key)
            .timeout(std::time::Duration::from_secs(10))
            .json(&ResendEmail {
                from: &self.from,
                to: [&email.to],
                subject: &email.subject,
                text: &email.text,
            })
            .send()
            .await
            .map_err(|e| MailError::Unreachable(Box::new(e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect();
        Err(MailError::Refused {
            status: status.as_u16(),
            body,
        })
    }
}
