//! Connected accounts as the API and the tools use them: a token is checked with its
//! service and sealed when connected; a tool gets the opened token of the user's
//! connection, or an error that names the connection (none, or refused earlier).

use crate::adapters::tools::github_device::{self, DeviceToken};
use crate::adapters::tools::{self, Identity, ServiceError, ServiceHttp};
use crate::config::{OAuthApps, Secret, ServiceUrls};
use crate::domain::connections::{Connection, hint, seal_context};
use crate::domain::{ConnectionStatus, Service, UserId};
use crate::ports::{
    ConnectionStore, DeviceFlow, NewConnection, Renewal, Secrets, StoreError, VaultError,
};
use crate::services::Vault;
use std::sync::Arc;

/// Why a connection could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(
        "no {service} account is connected: connect one (POST /me/connections) and retry the task"
    )]
    NotConnected { service: Service },
    /// The service refused the token before; nothing is sent with it again.
    #[error(
        "the {service} connection ({account}) was refused by {service}: {reason}. Connect it again with a working token, then retry the task"
    )]
    Refused {
        service: Service,
        account: String,
        reason: String,
    },
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("the connection's token could not be opened")]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{service} offers no device flow: connect it with a token (POST /me/connections)")]
    NoDeviceFlow { service: Service },
    #[error(
        "connecting {service} by its device flow is not set up here (GITHUB_OAUTH_CLIENT_ID): connect it with a token"
    )]
    DeviceFlowNotConfigured { service: Service },
    #[error("no such device flow")]
    FlowNotFound,
    #[error(
        "{service} offers no OAuth web flow: connect it with a token (POST /me/connections){}",
        if *service == Service::Github { " or by its device flow (POST /me/connections/device)" } else { "" }
    )]
    NoWebFlow { service: Service },
    #[error(
        "connecting {service} by OAuth is not set up here ({missing}): connect it with a token"
    )]
    WebFlowNotConfigured {
        service: Service,
        missing: &'static str,
    },
    /// The access token lapsed and nothing renews it.
    #[error(
        "the {service} connection ({account}) expired at {at}: connect it again, then retry the task"
    )]
    Expired {
        service: Service,
        account: String,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The flow is over without a connection (expired, or the user cancelled).
    #[error("{0}")]
    FlowEnded(String),
}

/// Where a device flow stands after a poll.
#[derive(Debug)]
pub enum FlowStep {
    /// The user has not entered the code yet: poll again after this many seconds.
    Pending {
        interval_secs: u32,
    },
    Connected(Connection),
}

/// The additional data a device code is sealed under: the user, service and flow.
fn flow_context(user: UserId, service: Service, flow: uuid::Uuid) -> String {
    format!("{}/device-flow/{flow}", seal_context(user, service))
}

/// A user's opened connection: the HTTP client for its service and the token.
pub struct Opened {
    pub connection: Connection,
    pub http: ServiceHttp,
    pub token: Secret<String>,
}

#[derive(Clone)]
pub struct ConnectedAccounts {
    pub(super) store: Arc<dyn ConnectionStore>,
    pub(super) vault: Vault,
    pub(super) urls: ServiceUrls,
    pub(super) http: reqwest::Client,
    pub(super) oauth: OAuthApps,
    /// Where the OAuth apps' client secrets are read (`OAuthApps::client_secrets`).
    pub(super) secrets: Option<Arc<dyn Secrets>>,
}

impl ConnectedAccounts {
    pub fn new(
        store: Arc<dyn ConnectionStore>,
        vault: Vault,
        urls: ServiceUrls,
        http: reqwest::Client,
    ) -> Self {
        ConnectedAccounts {
            store,
            vault,
            urls,
            http,
            oauth: OAuthApps::default(),
            secrets: None,
        }
    }

    /// The same accounts, also connected (and renewed) through these OAuth apps, whose
    /// client secrets are read from `secrets`.
    pub fn with_oauth(mut self, oauth: OAuthApps, secrets: Arc<dyn Secrets>) -> Self {
        self.oauth = oauth;
        self.secrets = Some(secrets);
        self
    }

    /// Starts `service`'s device flow for `user`: the code the user enters, where, and
    /// until when. The device code is kept sealed until the flow ends.
    pub async fn start_device_flow(
        &self,
        user: UserId,
        service: Service,
    ) -> Result<DeviceFlow, AccountError> {
        let client_id = self.device_client(service)?;
        let code =
            github_device::device_code(&self.http, &self.oauth.github_url, client_id).await?;
        let id = uuid::Uuid::new_v4();
        let sealed = self
            .vault
            .seal(
                &Secret::new(code.device_code),
                &flow_context(user, service, id),
            )
            .await?;
        let flow = DeviceFlow {
            id,
            user,
            service,
            sealed,
            user_code: code.user_code,
            verification_uri: code.verification_uri,
            interval_secs: u32::try_from(code.interval.clamp(1, 60)).unwrap_or(5),
            expires_at: chrono::Utc::now()
                + chrono::Duration::seconds(
                    i64::try_from(code.expires_in.min(3600)).unwrap_or(900),
                ),
        };
        self.store.start_flow(&flow).await?;
        Ok(flow)
    }

    /// Asks the service once whether `user` entered flow `id`'s code: still pending, or
    /// connected (the token checked and sealed like a pasted one). An expired or cancelled
    /// flow ends, saying so.
    pub async fn poll_device_flow(
        &self,
        user: UserId,
        id: uuid::Uuid,
    ) -> Result<FlowStep, AccountError> {
        let flow = self
            .store
            .flow(user, id)
            .await?
            .ok_or(AccountError::FlowNotFound)?;
        let ended = |reason: &str| AccountError::FlowEnded(reason.to_owned());
        if flow.expires_at <= chrono::Utc::now() {
            self.store.end_flow(id).await?;
            return Err(ended(
                "the code expired before it was entered: start the device flow again",
            ));
        }
        let client_id = self.device_client(flow.service)?;
        let device_code = self
            .vault
            .open(&flow.sealed, &flow_context(user, flow.service, id))
            .await?;
        let polled = github_device::device_token(
            &self.http,
            &self.oauth.github_url,
            (client_id, &device_code),
        )
        .await?;
        match polled {
            DeviceToken::Token(token) => {
                let connection = self.connect(user, flow.service, &token).await?;
                self.store.end_flow(id).await?;
                Ok(FlowStep::Connected(connection))
            }
            DeviceToken::Pending => Ok(FlowStep::Pending {
                interval_secs: flow.interval_secs,
            }),
            DeviceToken::SlowDown(secs) => {
                let interval_secs = u32::try_from(secs.clamp(1, 120)).unwrap_or(10);
                self.store.slow_flow(id, interval_secs).await?;
                Ok(FlowStep::Pending { interval_secs })
            }
            DeviceToken::Expired => {
                self.store.end_flow(id).await?;
                Err(ended(
                    "the code expired at the service: start the device flow again",
                ))
            }
            DeviceToken::Denied => {
                self.store.end_flow(id).await?;
                Err(ended("the user cancelled the connection at the service"))
            }
        }
    }

    /// The OAuth app that runs `service`'s device flow.
    fn device_client(&self, service: Service) -> Result<&str, AccountError> {
        match service {
            Service::Github => self
                .oauth
                .github_client_id
                .as_deref()
                .ok_or(AccountError::DeviceFlowNotConfigured { service }),
            other => Err(AccountError::NoDeviceFlow { service: other }),
        }
    }

    /// The same accounts, reaching the services at `urls`.
    pub fn with_urls(mut self, urls: ServiceUrls) -> Self {
        self.urls = urls;
        self
    }

    pub fn store(&self) -> &dyn ConnectionStore {
        self.store.as_ref()
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Who `token` acts as at `service`, asked of the service itself.
    pub async fn identify(
        &self,
        service: Service,
        token: &Secret<String>,
    ) -> Result<Identity, ServiceError> {
        tools::identify(&self.http, &self.urls, service, token).await
    }

    /// Checks `token` with `service`, seals it, and keeps it as `user`'s connection.
    pub async fn connect(
        &self,
        user: UserId,
        service: Service,
        token: &Secret<String>,
    ) -> Result<Connection, AccountError> {
        self.connect_renewable(user, service, token, Renewal::default())
            .await
    }

    /// `connect`, for a token that lapses and may be renewed (`renewal`'s refresh token is
    /// already sealed, under `refresh_context`).
    pub(super) async fn connect_renewable(
        &self,
        user: UserId,
        service: Service,
        token: &Secret<String>,
        renewal: Renewal,
    ) -> Result<Connection, AccountError> {
        let identity = self.identify(service, token).await?;
        let sealed = self.vault.seal(token, &seal_context(user, service)).await?;
        Ok(self
            .store
            .connect(NewConnection {
                user,
                service,
                account: identity.account.chars().take(200).collect(),
                hint: hint(token.expose()),
                sealed,
                renewal,
            })
            .await?)
    }

    /// `user`'s working connection to `service`, opened for a call.
    pub async fn open(&self, user: UserId, service: Service) -> Result<Opened, AccountError> {
        let Some(credential) = self.store.credential(user, service).await? else {
            return Err(AccountError::NotConnected { service });
        };
        if credential.connection.status == ConnectionStatus::Invalid {
            return Err(AccountError::Refused {
                service,
                account: credential.connection.account,
                reason: credential.connection.status_reason.unwrap_or_default(),
            });
        }
        let (connection, token) = match credential.renewal.expires_at {
            Some(at) if at <= chrono::Utc::now() + super::web_flows::RENEW_AHEAD => {
                self.renew(user, credential).await?
            }
            _ => {
                let token = self
                    .vault
                    .open(&credential.sealed, &seal_context(user, service))
                    .await?;
                (credential.connection, token)
            }
        };
        Ok(Opened {
            connection,
            http: ServiceHttp::new(self.http.clone(), &self.urls, service),
            token,
        })
    }

    /// Records that `service` refused the connection's token (so no call repeats the
    /// refusal) and says so in terms the user can act on.
    pub async fn refused(&self, opened: &Opened, error: &ServiceError) -> AccountError {
        let reason = error.to_string();
        if let Err(e) = self.store.invalidate(opened.connection.id, &reason).await {
            tracing::warn!(error = %e, "could not mark the connection invalid");
        }
        AccountError::Refused {
            service: opened.connection.service,
            account: opened.connection.account.clone(),
            reason,
        }
    }
}
