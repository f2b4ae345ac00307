//! Secrets: signing keys, provider keys and the database password live in a secret store
//! (Secrets Manager on AWS, moto locally), never in plain environment variables.

use super::BackendError;
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {id} does not exist")]
    Missing { id: String },
    #[error("secret {id} has no string value")]
    NotText { id: String },
    #[error("could not read secret {id}")]
    Backend {
        id: String,
        #[source]
        source: BackendError,
    },
}

#[async_trait]
pub trait Secrets: Send + Sync {
    /// The current value of the secret named or identified by `id` (a name or an ARN).
    async fn secret(&self, id: &str) -> Result<String, SecretError>;
}
