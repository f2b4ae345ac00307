//! The connection pool, built once per process. With `sslmode=require` connections are TLS
//! (rustls), and the server's certificate is verified against the system's roots plus
//! `DATABASE_CA_FILE`, host name included: stricter than libpq's `require`, which
//! encrypts without checking who answers. Other modes (`disable`, and `prefer`, the
//! default) connect in plain text; on AWS the configuration refuses them.

use crate::config::{ConfigError, DatabaseConfig};
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::config::SslMode;

/// A pool of Postgres connections; cheap to clone, shared by every store.
pub type Pool = deadpool_postgres::Pool;

fn invalid(name: &'static str) -> impl Fn(String) -> ConfigError {
    move |reason| ConfigError::Invalid { name, reason }
}

/// Builds the pool from configuration. No connection is opened until the first use.
pub fn connect(config: &DatabaseConfig) -> Result<Pool, ConfigError> {
    let mut pg = tokio_postgres::Config::from_str(config.url.expose())
        .map_err(|e| invalid("DATABASE_URL")(e.to_string()))?;
    if let Some(password) = &config.password {
        pg.password(password.expose());
    }
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match (pg.get_ssl_mode(), &config.iam_signer) {
        (SslMode::Require, Some(signer)) => {
            let tls = tls(config.ca_file.as_deref())?;
            let connect = IamConnect::new(&pg, signer.clone(), tls)?;
            Manager::from_connect(pg, connect, manager_config)
        }
        (_, Some(_)) => {
            return Err(invalid("DATABASE_URL")(
                "IAM authentication needs TLS: add ?sslmode=require".into(),
            ));
        }
        (SslMode::Require, None) => {
            let tls = tls(config.ca_file.as_deref())?;
            Manager::from_config(pg, tls, manager_config)
        }
        (_, None) => Manager::from_config(pg, tokio_postgres::NoTls, manager_config),
    };
    Pool::builder(manager)
        .max_size(config.pool_size)
        .build()
        .map_err(|e| invalid("DATABASE_POOL_SIZE")(e.to_string()))
}

/// Connects with a fresh RDS IAM authentication token as the password: a token lasts 15
/// minutes and only its connection's start needs it, so one token serves the connections
/// opened in the next 10 minutes.
struct IamConnect {
    signer: crate::adapters::aws::RdsAuth,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    endpoint: (String, u16),
    user: String,
    token: tokio::sync::Mutex<Option<(String, std::time::Instant)>>,
}

impl IamConnect {
    fn new(
        pg: &tokio_postgres::Config,
        signer: crate::adapters::aws::RdsAuth,
        tls: tokio_postgres_rustls::MakeRustlsConnect,
    ) -> Result<Self, ConfigError> {
        let host = match pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => {
                return Err(invalid("DATABASE_URL")(
                    "IAM authentication needs a host name".into(),
                ));
            }
        };
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let user = pg
            .get_user()
            .ok_or_else(|| {
                invalid("DATABASE_URL")("IAM authentication needs the database user".into())
            })?
            .to_owned();
        Ok(IamConnect {
            signer,
            tls,
            endpoint: (host, port),
            user,
            token: tokio::sync::Mutex::new(None),
        })
    }

    async fn token(&self) -> Result<String, String> {
        let mut held = self.token.lock().await;
        if let Some((token, made)) = held.as_ref()
            && made.elapsed() < std::time::Duration::from_secs(600)
        {
            return Ok(token.clone());
        }
        let endpoint = (self.endpoint.0.as_str(), self.endpoint.1);
        let token = self
            .signer
            .token(endpoint, &self.user, std::time::SystemTime::now())
            .await?;
        *held = Some((token.clone(), std::time::Instant::now()));
        Ok(token)
    }
}

impl deadpool_postgres::Connect for IamConnect {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> futures::future::BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        let mut pg_config = pg_config.clone();
        Box::pin(async move {
            match self.token().await {
                Ok(token) => {
                    pg_config.password(token);
                }
                // Connecting without it fails with the server's own refusal, which says
                // what is wrong; the reason the token could not be made goes to the log.
                Err(e) => tracing::error!(error = %e, "no IAM token for the database"),
            }
            let (client, connection) = pg_config.connect(self.tls.clone()).await?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "a database connection ended");
                }
            });
            Ok((client, task))
        })
    }
}

/// The TLS connector: the system's roots, and the certificates of `ca_file`.
fn tls(ca_file: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| invalid("DATABASE_CA_FILE")(format!("cannot read {path}: {e}")))?
            .collect::<Result<_, _>>()
            .map_err(|e| invalid("DATABASE_CA_FILE")(format!("{path} is not PEM: {e}")))?;
        if certs.is_empty() {
            return Err(invalid("DATABASE_CA_FILE")(format!(
                "{path} holds no certificate"
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| invalid("DATABASE_CA_FILE")(format!("{path}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("DATABASE_URL")(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Builds a pool of at most `size` connections for an already parsed connection config
/// (plain text: tools that connect to the local stack).
pub fn pool_for(
    pg: tokio_postgres::Config,
    size: usize,
) -> Result<Pool, deadpool_postgres::BuildError> {
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager).max_size(size).build()
}
