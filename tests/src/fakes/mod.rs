//! Local fakes of the outside services the agents act through. Each is a small HTTP
//! server that speaks its service's wire format and keeps state, under its own prefix
//! (`/github`, `/vercel`, `/expo`, `/resend`, `/x`, `/linkedin`, `/stripe`) of one listener, so a demo or a test points `GITHUB_API_URL` (and the
//! others) at it and sees a repository fill up. Tokens are accepted unless revoked
//! (`revoke`); each token's account is a demo one unless set (`accept`).

// A fake's checks return the service's own error response as `Err`, as axum handlers do.
#![allow(clippy::result_large_err)]

pub mod expo;
pub mod expo_push;
pub mod github;
pub mod linkedin;
pub mod oauth;
pub mod resend;
pub mod stripe;
pub mod vercel;
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
    /// Answers to hold once, by name: the fake does the work, then waits this long before
    /// answering, so a chaos round can kill the caller in between (`github.update_ref`).
    hold_once: Arc<Mutex<BTreeMap<String, std::time::Duration>>>,
    pub github: Arc<Mutex<github::GithubState>>,
    pub resend: Arc<Mutex<resend::ResendState>>,
    pub x: Arc<Mutex<x::XState>>,
    pub vercel: Arc<Mutex<vercel::VercelState>>,
    pub expo: Arc<Mutex<expo::ExpoState>>,
    pub expo_push: Arc<Mutex<expo_push::PushState>>,
    pub linkedin: Arc<Mutex<linkedin::LinkedinState>>,
    pub stripe: Arc<Mutex<stripe::StripeState>>,
    /// X's and LinkedIn's authorization servers.
    pub oauth: Arc<Mutex<oauth::OAuthState>>,
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

    /// The next `what` does its work and then waits `hold` before it answers.
    pub fn hold_once_after(&self, what: &str, hold: std::time::Duration) {
        if let Ok(mut held) = self.hold_once.lock() {
            held.insert(what.to_owned(), hold);
        }
    }

    /// How long `what` waits before answering now (once), if it should.
    pub(crate) fn holding(&self, what: &str) -> Option<std::time::Duration> {
        self.hold_once.lock().ok()?.remove(what)
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
        // An OAuth access token is refused once it lapsed, as the services do.
        let lapsed = self
            .oauth
            .lock()
            .ok()?
            .expiry
            .get(&token)
            .is_some_and(|at| *at <= std::time::Instant::now());
        if lapsed {
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
pub(crate) fn default_account(service: &str) -> &'static str {
    match service {
        "resend" => "demo.autocrew.test",
        "x" => "autocrew_demo",
        "linkedin" => "Autocrew Demo",
        _ => "autocrew-demo",
    }
}

/// A form body's fields (`application/x-www-form-urlencoded`, percent-decoded).
pub(crate) fn form_fields(body: &str) -> BTreeMap<String, String> {
    let decode = |text: &str| {
        let bytes = text.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1..i + 3)) {
                (b'%', Some(hex)) => match u8::from_str_radix(&String::from_utf8_lossy(hex), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                },
                (b, _) => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

pub(crate) fn error_json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// What the fakes hold, for a person to read: repositories with their commits and files,
/// pull requests, emails sent, posts made, sites deployed, app builds.
pub fn summary(fake: &Fake) -> Value {
    let github = fake.github.lock().unwrap_or_else(|e| e.into_inner());
    let repositories: Vec<Value> = github
        .repos
        .iter()
        .map(|((owner, name), repo)| {
            let branches: serde_json::Map<String, Value> = repo
                .branches
                .keys()
                .map(|b| (b.clone(), serde_json::json!(repo.history(b).len())))
                .collect();
            serde_json::json!({
                "repository": format!("{owner}/{name}"),
                "private": repo.private,
                "commits_by_branch": branches,
                "files": repo.files(&repo.default_branch).keys().collect::<Vec<_>>(),
                "last_commit": repo.history(&repo.default_branch).first().map(|(_, c)| c.message.lines().next().unwrap_or("").to_owned()),
                "pull_requests": repo.pulls.iter().map(|p| serde_json::json!({"number": p.number, "title": p.title, "head": p.head})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let emails: Vec<Value> = fake
        .resend
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .sent
        .iter()
        .map(|e| serde_json::json!({"from": e.from, "to": e.to, "subject": e.subject}))
        .collect();
    let posts: Vec<Value> = fake
        .x
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .posts
        .iter()
        .map(|p| serde_json::json!({"account": p.username, "text": p.text}))
        .collect();
    let sites: Vec<Value> = fake
        .vercel
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .deployments
        .iter()
        .map(|d| {
            let base = fake.base_url.lock().map(|b| b.clone()).unwrap_or_default();
            serde_json::json!({"project": d.name, "url": format!("{base}/vercel/sites/{}/", d.id), "files": d.files.keys().collect::<Vec<_>>(), "failed": d.failed})
        })
        .collect();
    let builds: Vec<Value> = {
        let base = fake.base_url.lock().map(|b| b.clone()).unwrap_or_default();
        let expo = fake.expo.lock().unwrap_or_else(|e| e.into_inner());
        expo.builds
            .iter()
            .map(|b| serde_json::json!({"app": b.app, "platform": b.platform, "git_ref": b.git_ref, "status": b.status, "archive": (b.status == "FINISHED").then(|| format!("{base}/expo/artifacts/{}", b.id))}))
            .collect()
    };
    let linkedin: Vec<Value> = fake
        .linkedin
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .posts
        .iter()
        .map(|p| serde_json::json!({"urn": p.urn, "author": p.author, "text": p.text}))
        .collect();
    serde_json::json!({"github": repositories, "resend": emails, "x": posts, "linkedin": linkedin, "vercel": sites, "eas": builds})
}

/// Every fake under its prefix, and `GET /_state` (`summary`).
pub fn router(fake: Fake) -> Router {
    Router::new()
        .route(
            "/_state",
            axum::routing::get(
                |axum::extract::State(fake): axum::extract::State<Fake>| async move {
                    axum::Json(summary(&fake))
                },
            ),
        )
        .route("/_control", axum::routing::post(control))
        .nest("/github", github::routes())
        .nest("/resend", resend::routes())
        .nest("/x", x::routes().merge(oauth::x_routes()))
        .nest("/vercel", vercel::routes())
        .nest("/expo", expo::routes().nest("/push", expo_push::routes()))
        .nest("/stripe", stripe::routes())
        .nest(
            "/linkedin",
            linkedin::routes().merge(oauth::linkedin_routes()),
        )
        .with_state(fake)
}

/// `POST /_control`: `{"fail_once_after": what}` or `{"hold_once_after": what,
/// "seconds": n}`, for a test in another process (a chaos round).
async fn control(
    axum::extract::State(fake): axum::extract::State<Fake>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Some(what) = body["fail_once_after"].as_str() {
        fake.fail_once_after(what);
    }
    if let Some(what) = body["hold_once_after"].as_str() {
        let seconds = body["seconds"].as_u64().unwrap_or(10).min(600);
        fake.hold_once_after(what, std::time::Duration::from_secs(seconds));
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The fakes on a free loopback port; their state, and their base URL.
pub async fn start() -> anyhow::Result<(Fake, String)> {
    start_on(0).await
}

/// The fakes on loopback port `port` (0: a free one).
pub async fn start_on(port: u16) -> anyhow::Result<(Fake, String)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
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
