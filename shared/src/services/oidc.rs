//! Tokens of an external OpenID Connect issuer (Cognito, Auth0, Clerk...), accepted beside
//! our own when `OIDC_ISSUER` and `OIDC_AUDIENCE` are set. Such a token is checked against
//! the issuer's published keys (its JWKS, fetched once and again when a token names a key
//! not held, at most every 30 s): its signature (RS256 or ES256, as the key says), `iss`,
//! `aud` and `exp`. Its `sub` then names a user of ours (`AccountStore::external_user`),
//! created on first sight; the mapping is kept in memory, so a known token costs no
//! database round trip either.

use super::access::{AccessError, Verified};
use crate::config::{ConfigError, Env, optional};
use crate::domain::{MicroUsd, UserId};
use crate::ports::AccountStore;
use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Where the issuer is and what our tokens from it must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// `iss` exactly as the issuer writes it.
    pub issuer: String,
    /// The `aud` our API is known by there (Cognito: the app client id).
    pub audience: String,
    /// The issuer's keys (default `{issuer}/.well-known/jwks.json`).
    pub jwks_url: String,
}

impl OidcConfig {
    /// `OIDC_ISSUER` and `OIDC_AUDIENCE` (both, or neither: off), `OIDC_JWKS_URL`.
    pub fn from_env(env: &dyn Env) -> Result<Option<Self>, ConfigError> {
        let issuer = optional(env, "OIDC_ISSUER").map(|v| v.trim().to_owned());
        let audience = optional(env, "OIDC_AUDIENCE").map(|v| v.trim().to_owned());
        match (issuer, audience) {
            (None, None) => Ok(None),
            (Some(issuer), Some(audience)) => {
                if !(issuer.starts_with("https://") || issuer.starts_with("http://127.0.0.1")) {
                    return Err(ConfigError::Invalid {
                        name: "OIDC_ISSUER",
                        reason: format!("must be the issuer's https URL, got {issuer:?}"),
                    });
                }
                let jwks_url = optional(env, "OIDC_JWKS_URL").unwrap_or_else(|| {
                    format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'))
                });
                Ok(Some(OidcConfig {
                    issuer,
                    audience,
                    jwks_url,
                }))
            }
            (Some(_), None) => Err(ConfigError::Invalid {
                name: "OIDC_AUDIENCE",
                reason: "is required with OIDC_ISSUER".into(),
            }),
            (None, Some(_)) => Err(ConfigError::Invalid {
                name: "OIDC_ISSUER",
                reason: "is required with OIDC_AUDIENCE".into(),
            }),
        }
    }
}

/// The claims read from an external token.
#[derive(Debug, Deserialize)]
struct ExternalClaims {
    sub: String,
    exp: u64,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
}

/// A token from another key set is refetched at most this often.
const REFETCH_EVERY: Duration = Duration::from_secs(30);

/// Subjects remembered per process at most; past it the memory starts again.
const REMEMBERED: usize = 100_000;

/// An external issuer, with its keys and the users its subjects name.
pub struct ExternalIssuer {
    config: OidcConfig,
    http: reqwest::Client,
    keys: RwLock<Arc<JwkSet>>,
    fetched: tokio::sync::Mutex<Option<Instant>>,
    accounts: Arc<dyn AccountStore>,
    trial: MicroUsd,
    users: RwLock<HashMap<String, UserId>>,
}

impl ExternalIssuer {
    /// Users first seen in a token get `trial` credit.
    pub fn new(config: OidcConfig, accounts: Arc<dyn AccountStore>, trial: MicroUsd) -> Self {
        ExternalIssuer {
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new(Arc::new(JwkSet { keys: Vec::new() })),
            fetched: tokio::sync::Mutex::new(None),
            accounts,
            trial,
            users: RwLock::new(HashMap::new()),
        }
    }

    /// Whether this issuer checks tokens signed with `alg` (ours are HS256, never its).
    pub fn handles(alg: Algorithm) -> bool {
        matches!(alg, Algorithm::RS256 | Algorithm::ES256)
    }

    /// Our user for a valid token of the issuer.
    pub async fn verify(&self, token: &str) -> Result<Verified, AccessError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AccessError::Malformed)?;
        let kid = header.kid.clone().ok_or(AccessError::UnknownKey(None))?;
        let key = match self.key(&kid, header.alg) {
            Some(key) => key,
            None => {
                self.refetch_if_due().await;
                self.key(&kid, header.alg)
                    .ok_or(AccessError::UnknownKey(Some(kid)))?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<ExternalClaims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AccessError::Expired,
                _ => AccessError::Invalid(e.to_string()),
            })?
            .claims;
        if claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(AccessError::Invalid("sub must be 1-255 characters".into()));
        }
        Ok(Verified {
            user: self.user(&claims).await?,
            expires_at: claims.exp,
        })
    }

    /// The key named `kid`, if held and made for `alg`.
    fn key(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        let keys = match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let jwk = keys.find(kid)?;
        let fits = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => alg == Algorithm::RS256,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => alg == Algorithm::ES256,
            _ => false,
        };
        // A key that names its algorithm must name this one.
        let named = match jwk.common.key_algorithm {
            None => true,
            Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
            Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
            Some(_) => false,
        };
        (fits && named)
            .then(|| DecodingKey::from_jwk(jwk).ok())
            .flatten()
    }

    async fn refetch_if_due(&self) {
        let mut last = self.fetched.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFETCH_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let fetched = async {
            let response = self.http.get(&self.config.jwks_url).send().await?;
            response.error_for_status()?.json::<JwkSet>().await
        };
        match fetched.await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                match self.keys.write() {
                    Ok(mut held) => *held = keys,
                    Err(poisoned) => *poisoned.into_inner() = keys,
                }
            }
            Err(e) => {
                tracing::warn!(url = %self.config.jwks_url, error = %e, "could not fetch the issuer's keys")
            }
        }
    }

    /// Our user for the token's subject: remembered, or found (or made) in the store.
    async fn user(&self, claims: &ExternalClaims) -> Result<UserId, AccessError> {
        let remembered = match self.users.read() {
            Ok(users) => users.get(&claims.sub).copied(),
            Err(poisoned) => poisoned.into_inner().get(&claims.sub).copied(),
        };
        if let Some(user) = remembered {
            return Ok(user);
        }
        // Only an address the issuer says it verified becomes the account's.
        let email = match claims.email_verified {
            Some(true) => claims.email.as_deref(),
            _ => None,
        };
        let user = self
            .accounts
            .external_user(&self.config.issuer, &claims.sub, email, self.trial)
            .await
            .map_err(|e| AccessError::Unavailable(e.to_string()))?;
        if let Ok(mut users) = self.users.write() {
            if users.len() >= REMEMBERED {
                users.clear();
            }
            users.insert(claims.sub.clone(), user);
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Option<OidcConfig>, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OidcConfig::from_env(&env)
    }

    #[test]
    fn the_issuer_and_audience_come_together_and_the_keys_default_to_the_well_known_url() {
        assert_eq!(config(&[]).ok(), Some(None));
        assert!(config(&[("OIDC_ISSUER", "https://id.example.com")]).is_err());
        assert!(config(&[("OIDC_AUDIENCE", "app")]).is_err());
        assert!(config(&[("OIDC_ISSUER", "id.example.com"), ("OIDC_AUDIENCE", "app")]).is_err());
        let on = config(&[
            ("OIDC_ISSUER", "https://id.example.com/"),
            ("OIDC_AUDIENCE", "app"),
        ]);
        assert_eq!(
            on.ok().flatten().map(|c| c.jwks_url),
            Some("https://id.example.com/.well-known/jwks.json".to_owned())
        );
    }
}
