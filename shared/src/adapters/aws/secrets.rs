//! `Secrets` on AWS Secrets Manager (or moto's).

use super::boxed;
use crate::ports::{SecretError, Secrets};
use async_trait::async_trait;

#[derive(Clone)]
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManager {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        let config = aws_sdk_secretsmanager::config::Builder::from(sdk)
            .interceptor(super::metering::Metering)
            .build();
        SecretsManager {
            client: aws_sdk_secretsmanager::Client::from_conf(config),
        }
    }

    /// The SDK client, for set-up code (creating secrets) that the port does not cover.
    pub fn client(&self) -> &aws_sdk_secretsmanager::Client {
        &self.client
    }
}

#[async_trait]
impl Secrets for SecretsManager {
    async fn secret(&self, id: &str) -> Result<String, SecretError> {
        match self.client.get_secret_value().secret_id(id).send().await {
            Ok(out) => out
                .secret_string
                .ok_or_else(|| SecretError::NotText { id: id.to_owned() }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Err(SecretError::Missing { id: id.to_owned() })
            }
            Err(e) => Err(SecretError::Backend {
                id: id.to_owned(),
                source: boxed(e),
            }),
        }
    }
}
