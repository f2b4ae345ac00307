//! Local fakes of the outside services the agents act through. Each is a small HTTP
//! server that speaks its service's wire format and keeps state, under its own prefix
//! (`/github`, `/resend`, `/x`) of one listener, so a demo or a test points `GITHUB_API_URL` (and the
//! others) at it and sees a repository fill up. Tokens are accepted unless revoked
//! (`revoke`); each token's account is a demo one unless set (`accept`).

pub mod github;
pub mod resend;
pub mod x;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// The fakes' shared state.
#[derive(Clone, Default)]
pub struct Fake {
    pub base_url: Arc<Mutex<String>>,
    /// (service, token) → account.
    accounts: Arc<Mutex<BTreeMap<(String, String), String>>>,
    revoked: Arc<Mutex<BTreeSet<String>>>,
    /// Failures to play once, by name: the fake does the work, then answers 502 as if the
    /// caller died before hearing back (`github.update_ref`).
    fail_once: Arc<Mutex<BTreeSet<String>>>,
    pub github: Arc<Mutex<github::GithubState>>,
    pub resend: Arc<Mutex<resend::ResendState>>,
    pub x: Arc<Mutex<x::XState>>,
}

impl Fake {
    /// Tokens of `service` act as `account` from now on.
    pub fn accept(&self, service: &str, token: &str, account: &str) {
        if let Ok(mut accounts) = self.accounts.lock() {
            accounts.insert((service.to_owned(), token.to_owned()), account.to_owned());
        }
    }

    /// The token is refused from now on, as a revoked one is.
    pub fn revoke(&self, token: &str) {
        if let Ok(mut revoked) = self.revoked.lock() {
            revoked.insert(token.to_owned());
        }
    }

    /// The next `what` does its work and then answers 502.
    pub fn fail_once_after(&self, what: &str) {
        if let Ok(mut fail) = self.fail_once.lock() {
            fail.insert(what.to_owned());
        }
    }

    /// Whether `what` should fail now (once).
    pub(crate) fn failing(&self, what: &str) -> bool {
        self.fail_once
            .lock()
            .map(|mut fail| fail.remove(what))
            .unwrap_or(false)
    }

    /// The account a request's bearer token acts as at `service`, unless it is revoked.
    pub fn user_of(&self, headers: &HeaderMap, service: &str) -> Option<String> {
        let token = headers
            .get("authorization")?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .trim()
            .to_owned();
        if token.is_empty() || self.revoked.lock().ok()?.contains(&token) {
            return None;
        }
        let accounts = self.accounts.lock().ok()?;
        Some(
            accounts
                .get(&(service.to_owned(), token))
                .cloned()
                .unwrap_or_else(|| default_account(service).to_owned()),
        )
    }

    /// Where a person would open what `service` made (links in answers).
    pub fn web_base(&self, service: &str) -> String {
        let base = self.base_url.lock().map(|b| b.clone()).unwrap_or_default();
        format!("{base}/{service}/web")
    }
}

/// Whom a token acts as when no test said otherwise: a login, a verified domain, a handle.
fn default_account(service: &str) -> &'static str {
    match service {
        "resend" => "demo.autocrew.test",
        "x" => "autocrew_demo",
        _ => "autocrew-demo",
    }
}

pub(crate) fn error_json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Every fake under its prefix.
pub fn router(fake: Fake) -> Router {
    Router::new()
        .nest("/github", github::routes())
        .nest("/resend", resend::routes())
        .nest("/x", x::routes())
        .with_state(fake)
}

/// The fakes on a free loopback port; their state, and the base URL of each.
pub async fn start() -> anyhow::Result<(Fake, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let fake = Fake::default();
    if let Ok(mut base) = fake.base_url.lock() {
        *base = url.clone();
    }
    let app = router(fake.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((fake, url))
}
