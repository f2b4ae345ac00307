//! The connection pool, built once per process.

use crate::config::{ConfigError, DatabaseConfig};
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use std::str::FromStr;

/// A pool of Postgres connections; cheap to clone, shared by every store.
pub type Pool = deadpool_postgres::Pool;

/// Builds the pool from configuration. No connection is opened until the first use.
pub fn connect(config: &DatabaseConfig) -> Result<Pool, ConfigError> {
    let pg = tokio_postgres::Config::from_str(config.url.expose()).map_err(|e| {
        ConfigError::Invalid {
            name: "DATABASE_URL",
            reason: e.to_string(),
        }
    })?;
    pool_for(pg, config.pool_size).map_err(|e| ConfigError::Invalid {
        name: "DATABASE_POOL_SIZE",
        reason: e.to_string(),
    })
}

/// Builds a pool of at most `size` connections for an already parsed connection config.
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
