//! Envelope encryption of connected accounts' credentials. Each credential is sealed with
//! AES-256-GCM under a data key of its own; only the data key wrapped by the master key
//! (`KeyKeeper`: KMS on AWS, the local key file in local mode) is stored beside it. The
//! seal context (user and service) is the additional data, and the keeper binds the data
//! key to it too, so a sealed credential copied to another row does not open.

use crate::config::Secret;
use crate::ports::{KeyKeeper, Sealed, VaultError};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::sync::Arc;

/// Seals and opens credentials.
#[derive(Clone)]
pub struct Vault {
    keeper: Arc<dyn KeyKeeper>,
}

impl Vault {
    pub fn new(keeper: Arc<dyn KeyKeeper>) -> Self {
        Vault { keeper }
    }

    /// `credential` sealed under a new data key bound to `context`.
    pub async fn seal(
        &self,
        credential: &Secret<String>,
        context: &str,
    ) -> Result<Sealed, VaultError> {
        let key = self.keeper.data_key(context).await?;
        let secret = seal_with(
            key.plaintext.expose(),
            context,
            credential.expose().as_bytes(),
        )?;
        Ok(Sealed {
            secret,
            wrapped_key: key.wrapped,
            key_id: key.key_id,
        })
    }

    /// The credential `sealed` holds, if it was sealed under `context`.
    pub async fn open(&self, sealed: &Sealed, context: &str) -> Result<Secret<String>, VaultError> {
        let key = self
            .keeper
            .unwrap(&sealed.wrapped_key, &sealed.key_id, context)
            .await?;
        let bytes = open_with(key.expose(), context, &sealed.secret)?;
        String::from_utf8(bytes)
            .map(Secret::new)
            .map_err(|_| VaultError::Tampered)
    }
}

fn aead_key(key: &[u8; 32]) -> Result<LessSafeKey, VaultError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| VaultError::Tampered)
}

/// `plaintext` under AES-256-GCM with a random nonce and `context` as additional data:
/// nonce || ciphertext || tag.
pub(crate) fn seal_with(
    key: &[u8; 32],
    context: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|e| VaultError::Backend(Box::new(e)))?;
    let mut sealed = plaintext.to_vec();
    aead_key(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| VaultError::Tampered)?;
    let mut out = nonce.to_vec();
    out.extend(sealed);
    Ok(out)
}

/// The plaintext of `sealed` (from `seal_with` with the same key and context).
pub(crate) fn open_with(
    key: &[u8; 32],
    context: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, VaultError> {
    if sealed.len() < NONCE_LEN {
        return Err(VaultError::Tampered);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Tampered)?;
    let mut body = body.to_vec();
    let plain = aead_key(key)?
        .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
        .map_err(|_| VaultError::Tampered)?;
    Ok(plain.to_vec())
}

/// Fresh random bytes for a key.
pub(crate) fn random_key() -> Result<[u8; 32], VaultError> {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).map_err(|e| VaultError::Backend(Box::new(e)))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let key = random_key().unwrap();
        let sealed = seal_with(&key, "user-a/github", b"ghp_secret").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"ghp_secret"));
        assert_eq!(
            open_with(&key, "user-a/github", &sealed).unwrap(),
            b"ghp_secret"
        );
        assert!(matches!(
            open_with(&key, "user-b/github", &sealed),
            Err(VaultError::Tampered)
        ));
        let other = random_key().unwrap();
        assert!(open_with(&other, "user-a/github", &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open_with(&key, "user-a/github", &flipped).is_err());
        // Two seals of the same value differ (a fresh nonce each time).
        assert_ne!(
            sealed,
            seal_with(&key, "user-a/github", b"ghp_secret").unwrap()
        );
    }
}
