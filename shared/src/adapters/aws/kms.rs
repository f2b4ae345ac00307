//! `KeyKeeper` on AWS KMS: data keys from GenerateDataKey, unwrapped by Decrypt, both
//! under an encryption context that names the credential's user and service.

use super::boxed;
use crate::config::Secret;
use crate::ports::{DataKey, KeyKeeper, VaultError};
use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;

/// The encryption context's one key (KMS logs it in CloudTrail with each use).
const CONTEXT_KEY: &str = "autocrew:connection";

#[derive(Clone)]
pub struct KmsKeyKeeper {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsKeyKeeper {
    /// Keeps data keys under the KMS key `key_id` (an id, ARN or alias).
    pub fn new(sdk: &aws_config::SdkConfig, key_id: &str) -> Self {
        let config = aws_sdk_kms::config::Builder::from(sdk)
            .interceptor(super::metering::Metering)
            .build();
        KmsKeyKeeper {
            client: aws_sdk_kms::Client::from_conf(config),
            key_id: key_id.to_owned(),
        }
    }

    /// The SDK client, for set-up code (creating the key) that the port does not cover.
    pub fn client(&self) -> &aws_sdk_kms::Client {
        &self.client
    }
}

fn key_bytes(bytes: &[u8]) -> Result<Secret<[u8; 32]>, VaultError> {
    <[u8; 32]>::try_from(bytes)
        .map(Secret::new)
        .map_err(|_| VaultError::Tampered)
}

#[async_trait]
impl KeyKeeper for KmsKeyKeeper {
    async fn data_key(&self, context: &str) -> Result<DataKey, VaultError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await
            .map_err(|e| VaultError::Backend(boxed(e)))?;
        let (Some(plaintext), Some(wrapped)) = (out.plaintext, out.ciphertext_blob) else {
            return Err(VaultError::Backend(
                "KMS GenerateDataKey answered without the key".into(),
            ));
        };
        Ok(DataKey {
            plaintext: key_bytes(plaintext.as_ref())?,
            wrapped: wrapped.into_inner(),
            key_id: out.key_id.unwrap_or_else(|| self.key_id.clone()),
        })
    }

    async fn unwrap(
        &self,
        wrapped: &[u8],
        key_id: &str,
        context: &str,
    ) -> Result<Secret<[u8; 32]>, VaultError> {
        let out = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await;
        match out {
            Ok(out) => key_bytes(
                out.plaintext
                    .as_ref()
                    .map(|b| b.as_ref())
                    .unwrap_or_default(),
            ),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_invalid_ciphertext_exception() || s.is_incorrect_key_exception()
                }) =>
            {
                Err(VaultError::Tampered)
            }
            Err(e) => Err(VaultError::Backend(boxed(e))),
        }
    }
}
