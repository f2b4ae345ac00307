//! Connecting by OAuth's authorization-code flow (X with PKCE, LinkedIn), and renewing
//! the tokens such a flow grants. The user opens the link `start_web_flow` makes, consents
//! at the service, and the service sends the browser to the public callback with a code
//! and our state; `finish_web_flow` trades the code for tokens and connects. The state is
//! the flow's only handle in the browser: it is random, kept only as a hash, and good for
//! one callback.

use super::accounts::{AccountError, ConnectedAccounts};
use crate::adapters::tools::oauth::{self, Authorize, ClientAuth, Grant, Pkce};
use crate::adapters::tools::{ServiceError, x};
use crate::config::Secret;
use crate::domain::connections::{Connection, seal_context};
use crate::domain::{Service, UserId};
use crate::ports::{Credential, Renewal, WebFlow, WebFlowStatus};
use sha2::Digest;
use std::time::Duration;

/// A token this close to lapsing is renewed before use.
pub(super) const RENEW_AHEAD: chrono::Duration = chrono::Duration::seconds(120);
/// How long the user has to consent (the services' codes live 30 s to 10 min after that).
const FLOW_LIFETIME: chrono::Duration = chrono::Duration::minutes(15);
/// How long one process may hold a connection's renewal before another takes it over.
const RENEWAL_LEASE: Duration = Duration::from_secs(30);

/// What the service sent the browser back with.
pub enum Callback<'a> {
    Code(&'a str),
    /// The user declined, or the service refused the request (`error`,
    /// `error_description`).
    Refused {
        error: &'a str,
        description: Option<&'a str>,
    },
}

/// A web flow just started: the link the user opens.
pub struct Started {
    pub flow: WebFlow,
    pub authorize_url: String,
}

/// One service's OAuth app as this deployment has it.
struct App<'a> {
    client_id: &'a str,
    authorize_url: String,
    token_url: String,
    scope: &'static str,
    /// X: PKCE (S256); LinkedIn's web flow takes the client secret instead.
    pkce: bool,
}

fn state_hash(state: &str) -> Vec<u8> {
    sha2::Sha256::digest(state.as_bytes()).to_vec()
}

/// The additional data a flow's PKCE verifier is sealed under.
fn verifier_context(user: UserId, service: Service, flow: uuid::Uuid) -> String {
    format!("{}/web-flow/{flow}", seal_context(user, service))
}

/// The additional data a connection's refresh token is sealed under.
fn refresh_context(user: UserId, service: Service) -> String {
    format!("{}/refresh", seal_context(user, service))
}

impl ConnectedAccounts {
    /// The OAuth app that connects `service` by its web flow.
    fn web_app(&self, service: Service) -> Result<App<'_>, AccountError> {
        let missing = |missing| AccountError::WebFlowNotConfigured { service, missing };
        match service {
            Service::X => Ok(App {
                client_id: self
                    .oauth
                    .x_client_id
                    .as_deref()
                    .ok_or(missing("X_OAUTH_CLIENT_ID"))?,
                authorize_url: format!("{}/i/oauth2/authorize", self.oauth.x_url),
                token_url: format!("{}{}", self.urls.base(Service::X), x::TOKEN_PATH),
                scope: x::SCOPES,
                pkce: true,
            }),
            Service::Linkedin => Ok(App {
                client_id: self
                    .oauth
                    .linkedin_client_id
                    .as_deref()
                    .ok_or(missing("LINKEDIN_OAUTH_CLIENT_ID"))?,
                authorize_url: format!("{}/oauth/v2/authorization", self.oauth.linkedin_url),
                token_url: format!("{}/oauth/v2/accessToken", self.oauth.linkedin_url),
                scope: crate::adapters::tools::linkedin::SCOPES,
                pkce: false,
            }),
            other => Err(AccountError::NoWebFlow { service: other }),
        }
    }

    /// The app's client secret, from the secret store: `None` where the app has none
    /// (a public X client).
    async fn client_secret(
        &self,
        service: Service,
    ) -> Result<Option<Secret<String>>, AccountError> {
        let (Some(id), Some(secrets)) = (&self.oauth.client_secrets, &self.secrets) else {
            return Ok(None);
        };
        let text = secrets.secret(id).await.map_err(|e| {
            tracing::error!(error = %e, "could not read the OAuth client secrets");
            AccountError::WebFlowNotConfigured {
                service,
                missing: "a readable OAUTH_CLIENT_SECRETS_SECRET",
            }
        })?;
        let fields: std::collections::HashMap<String, String> = serde_json::from_str(&text)
            .map_err(|_| AccountError::WebFlowNotConfigured {
                service,
                missing: "OAUTH_CLIENT_SECRETS_SECRET as a JSON object of secrets by service",
            })?;
        Ok(fields
            .get(service.as_str())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .map(Secret::new))
    }

    /// Starts `service`'s web flow for `user`: the link to the service's consent page,
    /// which sends the browser back to `redirect_uri` (the API's public callback), and then
    /// to `return_to` (the app's deep link), if given.
    pub async fn start_web_flow(
        &self,
        user: UserId,
        service: Service,
        redirect_uri: &str,
        return_to: Option<&str>,
    ) -> Result<Started, AccountError> {
        let app = self.web_app(service)?;
        // LinkedIn cannot trade a code without the secret: say so before the user consents.
        if !app.pkce && self.client_secret(service).await?.is_none() {
            return Err(AccountError::WebFlowNotConfigured {
                service,
                missing: "the client secret in OAUTH_CLIENT_SECRETS_SECRET",
            });
        }
        let id = uuid::Uuid::new_v4();
        let state = oauth::random_token();
        let pkce = Pkce::new();
        let sealed = self
            .vault
            .seal(&pkce.verifier, &verifier_context(user, service, id))
            .await?;
        let flow = WebFlow {
            id,
            user,
            service,
            state_hash: state_hash(&state),
            sealed,
            redirect_uri: redirect_uri.to_owned(),
            return_to: return_to.map(str::to_owned),
            status: WebFlowStatus::Pending,
            reason: None,
            connection: None,
            expires_at: chrono::Utc::now() + FLOW_LIFETIME,
        };
        self.store.start_web_flow(&flow).await?;
        let authorize_url = Authorize {
            url: &app.authorize_url,
            client_id: app.client_id,
            redirect_uri,
            scope: app.scope,
            state: &state,
            challenge: app.pkce.then_some(pkce.challenge.as_str()),
        }
        .link();
        Ok(Started {
            flow,
            authorize_url,
        })
    }

    /// `user`'s web flow `id`, as it stands.
    pub async fn web_flow(&self, user: UserId, id: uuid::Uuid) -> Result<WebFlow, AccountError> {
        self.store
            .web_flow(user, id)
            .await?
            .ok_or(AccountError::FlowNotFound)
    }

    /// The service sent the browser back: connects with the code, or records why not. The
    /// ended flow says which; an unknown, used or expired state is `FlowEnded`.
    pub async fn finish_web_flow(
        &self,
        state: &str,
        callback: Callback<'_>,
    ) -> Result<(WebFlow, Option<Connection>), AccountError> {
        let Some(mut flow) = self.store.claim_web_flow(&state_hash(state)).await? else {
            return Err(AccountError::FlowEnded(
                "this link is no longer valid: it was used already, or it expired. Start connecting again from the app.".into(),
            ));
        };
        let outcome = match callback {
            Callback::Refused { error, description } => Err(match error {
                "access_denied" | "user_cancelled_authorize" | "user_cancelled_login" => {
                    format!("the connection was declined at {}", flow.service)
                }
                _ => format!(
                    "{} refused: {} ({error})",
                    flow.service,
                    description.unwrap_or("no description")
                ),
            }),
            Callback::Code(code) => match self.trade(&flow, code).await {
                Ok(connection) => Ok(connection),
                Err(AccountError::Service(e)) => Err(format!("{e}")),
                Err(AccountError::Store(e)) => return Err(AccountError::Store(e)),
                Err(e) => Err(e.to_string()),
            },
        };
        let ended = match &outcome {
            Ok(connection) => Ok(connection.id),
            Err(reason) => Err(reason.as_str()),
        };
        self.store.end_web_flow(flow.id, ended).await?;
        match outcome {
            Ok(connection) => {
                flow.status = WebFlowStatus::Connected;
                flow.connection = Some(connection.id);
                Ok((flow, Some(connection)))
            }
            Err(reason) => {
                tracing::info!(flow = %flow.id, service = %flow.service, %reason, "an OAuth web flow failed");
                flow.status = WebFlowStatus::Failed;
                flow.reason = Some(reason);
                Ok((flow, None))
            }
        }
    }

    /// Trades the flow's code for tokens and connects with them.
    async fn trade(&self, flow: &WebFlow, code: &str) -> Result<Connection, AccountError> {
        let app = self.web_app(flow.service)?;
        let secret = self.client_secret(flow.service).await?;
        let verifier = match app.pkce {
            true => Some(
                self.vault
                    .open(
                        &flow.sealed,
                        &verifier_context(flow.user, flow.service, flow.id),
                    )
                    .await?,
            ),
            false => None,
        };
        let client = client_auth(flow.service, app.client_id, secret.as_ref())?;
        let grant = oauth::exchange_code(
            &self.http,
            flow.service,
            &app.token_url,
            &client,
            (code, &flow.redirect_uri, verifier.as_ref()),
        )
        .await?;
        let renewal = self.renewal(flow.user, flow.service, &grant).await?;
        self.connect_renewable(flow.user, flow.service, &grant.access_token, renewal)
            .await
    }

    /// When `grant`'s access token lapses, and its refresh token sealed.
    async fn renewal(
        &self,
        user: UserId,
        service: Service,
        grant: &Grant,
    ) -> Result<Renewal, AccountError> {
        let refresh = match &grant.refresh_token {
            Some(token) => Some(
                self.vault
                    .seal(token, &refresh_context(user, service))
                    .await?,
            ),
            None => None,
        };
        Ok(Renewal {
            expires_at: grant.expires_in.map(|secs| {
                chrono::Utc::now() + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(0))
            }),
            refresh,
        })
    }

    /// Renews a lapsing access token with the connection's refresh token: one process at a
    /// time (a lease), the others wait for its result. A refresh token the service refuses
    /// marks the connection invalid, so no call repeats the refusal.
    pub(super) async fn renew(
        &self,
        user: UserId,
        credential: Credential,
    ) -> Result<(Connection, Secret<String>), AccountError> {
        let service = credential.connection.service;
        let lapsed = |credential: &Credential| AccountError::Expired {
            service,
            account: credential.connection.account.clone(),
            at: credential
                .renewal
                .expires_at
                .unwrap_or_else(chrono::Utc::now),
        };
        if credential.renewal.refresh.is_none() {
            // Nothing renews it: it serves until it lapses.
            if credential
                .renewal
                .expires_at
                .is_some_and(|at| at > chrono::Utc::now())
            {
                let token = self
                    .vault
                    .open(&credential.sealed, &seal_context(user, service))
                    .await?;
                return Ok((credential.connection, token));
            }
            return Err(lapsed(&credential));
        }
        let id = credential.connection.id;
        for _ in 0..(RENEWAL_LEASE.as_secs() + 5) {
            let claimed = self.store.claim_renewal(id, RENEWAL_LEASE).await?;
            // Read again: another process may have renewed since this one looked.
            let Some(current) = self.store.credential(user, service).await? else {
                return Err(AccountError::NotConnected { service });
            };
            let fresh = current
                .renewal
                .expires_at
                .is_some_and(|at| at > chrono::Utc::now() + RENEW_AHEAD);
            if fresh {
                if claimed {
                    self.store.release_renewal(id).await?;
                }
                let token = self
                    .vault
                    .open(&current.sealed, &seal_context(user, service))
                    .await?;
                return Ok((current.connection, token));
            }
            if claimed {
                let renewed = self.renew_now(user, &current).await;
                if renewed.is_err() {
                    self.store.release_renewal(id).await?;
                }
                return renewed.map(|(token, expires_at)| {
                    let connection = Connection {
                        expires_at,
                        ..current.connection
                    };
                    (connection, token)
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(AccountError::Service(ServiceError::Unavailable {
            service,
            message: "its token is being renewed elsewhere and that did not finish".into(),
            source: None,
        }))
    }

    /// Holding the lease: the refresh call, and the renewed tokens kept. The new access
    /// token, and when it lapses.
    async fn renew_now(
        &self,
        user: UserId,
        current: &Credential,
    ) -> Result<(Secret<String>, Option<chrono::DateTime<chrono::Utc>>), AccountError> {
        let service = current.connection.service;
        let Some(refresh) = &current.renewal.refresh else {
            return Err(AccountError::Expired {
                service,
                account: current.connection.account.clone(),
                at: current.renewal.expires_at.unwrap_or_else(chrono::Utc::now),
            });
        };
        let app = self.web_app(service)?;
        let secret = self.client_secret(service).await?;
        let client = client_auth(service, app.client_id, secret.as_ref())?;
        let refresh_token = self
            .vault
            .open(refresh, &refresh_context(user, service))
            .await?;
        let grant = match oauth::refresh(
            &self.http,
            service,
            &app.token_url,
            &client,
            &refresh_token,
        )
        .await
        {
            Ok(grant) => grant,
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                let reason = format!("its refresh token was refused: {e}");
                self.store
                    .invalidate(current.connection.id, &reason)
                    .await?;
                return Err(AccountError::Refused {
                    service,
                    account: current.connection.account.clone(),
                    reason,
                });
            }
        };
        let renewal = self.renewal(user, service, &grant).await?;
        let sealed = self
            .vault
            .seal(&grant.access_token, &seal_context(user, service))
            .await?;
        self.store
            .renewed(current.connection.id, &sealed, &renewal)
            .await?;
        tracing::info!(%user, %service, connection = %current.connection.id, "renewed a connection's access token");
        Ok((grant.access_token, renewal.expires_at))
    }
}

/// How `service`'s token endpoint wants the client to prove itself: X takes HTTP Basic
/// from a confidential client and the id alone from a public one; LinkedIn takes the
/// secret in the body and has no public clients.
fn client_auth<'a>(
    service: Service,
    client_id: &'a str,
    secret: Option<&'a Secret<String>>,
) -> Result<ClientAuth<'a>, AccountError> {
    Ok(match (service, secret) {
        (Service::Linkedin, Some(secret)) => ClientAuth::Body { client_id, secret },
        (Service::Linkedin, None) => {
            return Err(AccountError::WebFlowNotConfigured {
                service,
                missing: "the client secret in OAUTH_CLIENT_SECRETS_SECRET",
            });
        }
        (_, Some(secret)) => ClientAuth::Basic { client_id, secret },
        (_, None) => ClientAuth::Public { client_id },
    })
}
