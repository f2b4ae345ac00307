//! Connected accounts as the API and the tools use them: a token is checked with its
//! service and sealed when connected; a tool gets the opened token of the user's
//! connection, or an error that names the connection (none, or refused earlier).

use crate::adapters::tools::{self, Identity, ServiceError, ServiceHttp};
use crate::config::{Secret, ServiceUrls};
use crate::domain::connections::{Connection, hint, seal_context};
use crate::domain::{ConnectionStatus, Service, UserId};
use crate::ports::{ConnectionStore, NewConnection, StoreError, VaultError};
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
}

/// A user's opened connection: the HTTP client for its service and the token.
pub struct Opened {
    pub connection: Connection,
    pub http: ServiceHttp,
    pub token: Secret<String>,
}

#[derive(Clone)]
pub struct ConnectedAccounts {
    store: Arc<dyn ConnectionStore>,
    vault: Vault,
    urls: ServiceUrls,
    http: reqwest::Client,
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
            })
            .await?)
    }

    /// `user`'s working connection to `service`, opened for a call.
    pub async fn open(&self, user: UserId, service: Service) -> Result<Opened, AccountError> {
        let Some((connection, sealed)) = self.store.credential(user, service).await? else {
            return Err(AccountError::NotConnected { service });
        };
        if connection.status == ConnectionStatus::Invalid {
            return Err(AccountError::Refused {
                service,
                account: connection.account,
                reason: connection.status_reason.unwrap_or_default(),
            });
        }
        let token = self
            .vault
            .open(&sealed, &seal_context(user, service))
            .await?;
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
