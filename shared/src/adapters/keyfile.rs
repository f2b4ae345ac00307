//! `KeyKeeper` on a local key file: local mode's stand-in for KMS. The file holds 32
//! random bytes, made on first use with mode 0600 under `.local/`. Data keys are wrapped
//! with AES-256-GCM under it, with the credential's context as additional data.

use crate::config::Secret;
use crate::ports::{DataKey, KeyKeeper, VaultError};
use crate::services::vault::{open_with, random_key, seal_with};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

pub struct FileKeyKeeper {
    master: Secret<[u8; 32]>,
    /// `file:` and the first 16 hex digits of the key's sha-256: tells keys apart without
    /// showing them.
    key_id: String,
}

impl FileKeyKeeper {
    /// The key in `path`, made there first if the file does not exist.
    pub fn open_or_create(path: &Path) -> std::io::Result<Self> {
        let master = match std::fs::read(path) {
            Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} holds {} bytes; a connections key is 32 random bytes",
                        path.display(),
                        bytes.len()
                    ),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path)?,
            Err(e) => return Err(e),
        };
        Ok(Self::from_bytes(master))
    }

    fn from_bytes(master: [u8; 32]) -> Self {
        let fingerprint = hex::encode(Sha256::digest(master));
        FileKeyKeeper {
            master: Secret::new(master),
            key_id: format!("file:{}", &fingerprint[..16]),
        }
    }
}

/// Writes a new key to `path`, unless another process just did (then that one is read).
fn create(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let key = random_key().map_err(std::io::Error::other)?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(&key)?;
            file.sync_all()?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Lost the race to another process: give its write a moment, then use its key.
            for _ in 0..50 {
                let bytes = std::fs::read(path)?;
                if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
                    return Ok(key);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a 32-byte key", path.display()),
            ))
        }
        Err(e) => Err(e),
    }
}

#[async_trait]
impl KeyKeeper for FileKeyKeeper {
    async fn data_key(&self, context: &str) -> Result<DataKey, VaultError> {
        let key = random_key()?;
        Ok(DataKey {
            wrapped: seal_with(self.master.expose(), context, &key)?,
            plaintext: Secret::new(key),
            key_id: self.key_id.clone(),
        })
    }

    async fn unwrap(
        &self,
        wrapped: &[u8],
        key_id: &str,
        context: &str,
    ) -> Result<Secret<[u8; 32]>, VaultError> {
        if key_id != self.key_id {
            return Err(VaultError::OtherKey {
                sealed_with: key_id.to_owned(),
                holds: self.key_id.clone(),
            });
        }
        let bytes = open_with(self.master.expose(), context, wrapped)?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Secret::new)
            .map_err(|_| VaultError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::Vault;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_credential_sealed_under_the_key_file_opens_only_with_that_file_and_context() {
        let dir = std::env::temp_dir().join(format!("autocrew-keyfile-{}", uuid::Uuid::new_v4()));
        let path = dir.join("keys/connections.key");
        let keeper = FileKeyKeeper::open_or_create(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let vault = Vault::new(Arc::new(keeper));
        let token = Secret::new("ghp_0123456789abcdef".to_owned());
        let sealed = vault.seal(&token, "u1/github").await.unwrap();
        // The same file read again opens it; another context or another file does not.
        let again = Vault::new(Arc::new(FileKeyKeeper::open_or_create(&path).unwrap()));
        assert_eq!(
            again.open(&sealed, "u1/github").await.unwrap().expose(),
            token.expose()
        );
        assert!(matches!(
            again.open(&sealed, "u2/github").await,
            Err(VaultError::Tampered)
        ));
        let other = Vault::new(Arc::new(
            FileKeyKeeper::open_or_create(&dir.join("other.key")).unwrap(),
        ));
        let err = other.open(&sealed, "u1/github").await.unwrap_err();
        assert!(matches!(err, VaultError::OtherKey { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
