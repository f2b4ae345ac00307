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
    let manager = match pg.get_ssl_mode() {
        SslMode::Require => {
            let tls = tls(config.ca_file.as_deref())?;
            Manager::from_config(pg, tls, manager_config)
        }
        _ => Manager::from_config(pg, tokio_postgres::NoTls, manager_config),
    };
    Pool::builder(manager)
        .max_size(config.pool_size)
        .build()
        .map_err(|e| invalid("DATABASE_POOL_SIZE")(e.to_string()))
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
