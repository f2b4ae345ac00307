//! The fakes' OAuth 2.0 authorization servers: X's (`/x/i/oauth2/authorize`, PKCE S256
//! required, `/x/2/oauth2/token` with HTTP Basic from a confidential client, two-hour
//! access tokens and rotating refresh tokens) and LinkedIn's (`/linkedin/oauth/v2/...`,
//! the client secret in the body, sixty-day tokens without refresh). The consent page
//! consents at once (as the user clicking "Authorize"), unless a test declines the next
//! one; the browser is sent back to the redirect URI with the code and the state.

use super::{Fake, form_fields};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How one service's authorization server behaves.
struct Server {
    service: &'static str,
    /// Scopes a connection must ask for.
    scopes: &'static [&'static str],
    pkce: bool,
    /// The client secret in the body (LinkedIn) rather than HTTP Basic (X).
    secret_in_body: bool,
    refresh: bool,
    /// What the consent page answers when declined.
    declined: &'static str,
}

const X: Server = Server {
    service: "x",
    scopes: &["tweet.read", "tweet.write", "users.read", "offline.access"],
    pkce: true,
    secret_in_body: false,
    refresh: true,
    declined: "access_denied",
};

const LINKEDIN: Server = Server {
    service: "linkedin",
    scopes: &["openid", "profile", "w_member_social"],
    pkce: false,
    secret_in_body: true,
    refresh: false,
    declined: "user_cancelled_authorize",
};

/// A code the consent page handed out, until it is traded.
struct Code {
    service: &'static str,
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    account: String,
}

#[derive(Default)]
pub struct OAuthState {
    /// Each service app's client secret. X with none set is a public client; LinkedIn with
    /// none set takes any non-empty secret.
    pub client_secrets: BTreeMap<String, String>,
    /// Services whose next consent the user declines.
    pub decline_next: BTreeSet<String>,
    /// Whom the consents act as, per service (the demo account when unset).
    pub accounts: BTreeMap<String, String>,
    /// Seconds an access token lives, per service (X: 7200, LinkedIn: 5184000).
    pub lifetimes: BTreeMap<String, u64>,
    /// When each access token the fakes issued lapses.
    pub expiry: BTreeMap<String, Instant>,
    /// Codes traded and refresh tokens spent, for tests to count.
    pub exchanges: u32,
    pub refreshes: u32,
    codes: BTreeMap<String, Code>,
    /// Live refresh tokens: (service, account). A refresh spends its token.
    refresh_tokens: BTreeMap<String, (&'static str, String)>,
}

impl OAuthState {
    /// Every refresh token is refused from now on, as after the user revoked the app.
    pub fn revoke_refresh_tokens(&mut self) {
        self.refresh_tokens.clear();
    }
}

pub fn x_routes() -> Router<Fake> {
    Router::new()
        .route(
            "/i/oauth2/authorize",
            axum::routing::get(|state, query| authorize(&X, state, query)),
        )
        .route(
            "/2/oauth2/token",
            axum::routing::post(|state, headers, body| token(&X, state, headers, body)),
        )
}

pub fn linkedin_routes() -> Router<Fake> {
    Router::new()
        .route(
            "/oauth/v2/authorization",
            axum::routing::get(|state, query| authorize(&LINKEDIN, state, query)),
        )
        .route(
            "/oauth/v2/accessToken",
            axum::routing::post(|state, headers, body| token(&LINKEDIN, state, headers, body)),
        )
}

fn page(status: StatusCode, text: &str) -> Response {
    (status, text.to_owned()).into_response()
}

/// `redirect_uri` with `pairs` added to its query, as a 302.
fn back(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!(
        "{redirect_uri}{separator}{}",
        autocrew_shared::adapters::tools::oauth::form(pairs)
    );
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// The consent page: checks the request as the service does, then sends the browser back.
async fn authorize(
    server: &'static Server,
    State(fake): State<Fake>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let field = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    let redirect_uri = field("redirect_uri");
    if field("response_type") != "code"
        || field("client_id").is_empty()
        || !(redirect_uri.starts_with("https://") || redirect_uri.starts_with("http://"))
    {
        return page(
            StatusCode::BAD_REQUEST,
            "Something went wrong: response_type=code, client_id and an absolute redirect_uri are required.",
        );
    }
    let asked: BTreeSet<&str> = field("scope").split(' ').collect();
    if let Some(missing) = server.scopes.iter().find(|s| !asked.contains(**s)) {
        return back(
            redirect_uri,
            &[
                ("error", "invalid_scope"),
                ("error_description", &format!("{missing} was not requested")),
                ("state", field("state")),
            ],
        );
    }
    if server.pkce
        && (field("code_challenge").len() != 43 || field("code_challenge_method") != "S256")
    {
        return page(
            StatusCode::BAD_REQUEST,
            "Something went wrong: a code_challenge with code_challenge_method=S256 is required.",
        );
    }
    let mut oauth = fake.oauth.lock().unwrap_or_else(|e| e.into_inner());
    if oauth.decline_next.remove(server.service) {
        return back(
            redirect_uri,
            &[
                ("error", server.declined),
                ("error_description", "The user declined."),
                ("state", field("state")),
            ],
        );
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    let account = oauth
        .accounts
        .get(server.service)
        .cloned()
        .unwrap_or_else(|| super::default_account(server.service).to_owned());
    oauth.codes.insert(
        code.clone(),
        Code {
            service: server.service,
            client_id: field("client_id").to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            challenge: server.pkce.then(|| field("code_challenge").to_owned()),
            account,
        },
    );
    back(redirect_uri, &[("state", field("state")), ("code", &code)])
}

fn refused(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The client, as the token endpoint checks it: a confidential X client by HTTP Basic
/// alone, a public one by `client_id` in the body; LinkedIn's by id and secret in the body.
fn client_checks(
    server: &Server,
    oauth: &OAuthState,
    headers: &HeaderMap,
    fields: &BTreeMap<String, String>,
) -> Result<String, Response> {
    let secret = oauth.client_secrets.get(server.service);
    let body_id = fields.get("client_id").cloned().unwrap_or_default();
    if !server.secret_in_body
        && let Some(secret) = secret
    {
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .and_then(|v| String::from_utf8(v).ok());
        return match basic.as_deref().and_then(|b| b.split_once(':')) {
            Some((id, given)) if given == secret && !id.is_empty() => Ok(id.to_owned()),
            _ => Err(refused(
                StatusCode::UNAUTHORIZED,
                "unauthorized_client",
                "Missing valid authorization header",
            )),
        };
    }
    if body_id.is_empty() {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter [client_id].",
        ));
    }
    if server.secret_in_body {
        let given = fields
            .get("client_secret")
            .map(String::as_str)
            .unwrap_or_default();
        if given.is_empty() || secret.is_some_and(|s| s != given) {
            return Err(refused(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed.",
            ));
        }
    }
    Ok(body_id)
}

/// The token endpoint: trades a code (checking the redirect URI and the PKCE verifier) or
/// spends a refresh token; each answer is a new access token (and refresh token, for X).
async fn token(
    server: &'static Server,
    State(fake): State<Fake>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return refused(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The body must be form-encoded.",
        );
    }
    let fields = form_fields(&body);
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    let mut oauth = fake.oauth.lock().unwrap_or_else(|e| e.into_inner());
    let client_id = match client_checks(server, &oauth, &headers, &fields) {
        Ok(id) => id,
        Err(refusal) => return refusal,
    };
    let account = match field("grant_type") {
        "authorization_code" => {
            let Some(code) = oauth.codes.remove(field("code")) else {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Value passed for the authorization code was invalid.",
                );
            };
            let verified = match &code.challenge {
                Some(challenge) => {
                    autocrew_shared::adapters::tools::oauth::challenge(field("code_verifier"))
                        == *challenge
                }
                None => true,
            };
            if code.service != server.service
                || code.client_id != client_id
                || code.redirect_uri != field("redirect_uri")
                || !verified
            {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The code, redirect_uri or code_verifier does not match.",
                );
            }
            oauth.exchanges += 1;
            code.account
        }
        "refresh_token" if server.refresh => {
            match oauth.refresh_tokens.remove(field("refresh_token")) {
                Some((service, account)) if service == server.service => {
                    oauth.refreshes += 1;
                    account
                }
                _ => {
                    return refused(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "Value passed for the token was invalid.",
                    );
                }
            }
        }
        _ => {
            return refused(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The grant type is not supported.",
            );
        }
    };
    let lifetime = oauth
        .lifetimes
        .get(server.service)
        .copied()
        .unwrap_or(match server.service {
            "x" => 7200,
            _ => 5_184_000,
        });
    let access = format!("{}-oauth-{}", server.service, uuid::Uuid::new_v4().simple());
    oauth.expiry.insert(
        access.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    let refresh = server.refresh.then(|| {
        let refresh = format!(
            "{}-refresh-{}",
            server.service,
            uuid::Uuid::new_v4().simple()
        );
        oauth
            .refresh_tokens
            .insert(refresh.clone(), (server.service, account.clone()));
        refresh
    });
    drop(oauth);
    fake.accept(server.service, &access, &account);
    let mut answer = json!({
        "access_token": access, "expires_in": lifetime,
        "scope": server.scopes.join(if server.service == "x" { " " } else { "," }),
        "token_type": if server.service == "x" { "bearer" } else { "Bearer" },
    });
    if let Some(refresh) = refresh {
        answer["refresh_token"] = json!(refresh);
    }
    Json(answer).into_response()
}
