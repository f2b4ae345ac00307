//! Access tokens: JWTs signed with HS256, living 15 minutes, checked with no database
//! round trip. The signing keys come from a secret (Secrets Manager on AWS, moto locally)
//! holding JSON like `{"active_kid": "2026-12", "2026-12": "<at least 32 bytes>"}`: tokens
//! are signed with the active key and name it in their `kid`; every key in the secret is
//! accepted, so a key rotates by adding the new one, making it active, and removing the old
//! one once the tokens it signed have expired (15 minutes later).
//!
//! HS256 because only our own functions verify these tokens, and an HMAC costs about a
//! microsecond where a signature check costs tens: every request pays it.

use super::oidc::ExternalIssuer;
use crate::domain::UserId;
use crate::ports::Secrets;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long an access token lives.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

/// The issuer and audience our tokens carry and require.
pub const ISSUER: &str = "autocrew";
pub const AUDIENCE: &str = "autocrew-api";

/// A key shorter than this is refused: HS256 needs at least its hash's length.
const MIN_KEY_BYTES: usize = 32;

/// Why a bearer token was refused. Every case is a 401 to the client; the reason goes
/// to the log.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is signed with {0:?}; only HS256 is accepted")]
    Algorithm(String),
    #[error("the token names no key, or a key we do not hold ({0:?})")]
    UnknownKey(Option<String>),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// The token holds, but the user it names could not be looked up (the database).
    #[error("the token's user could not be looked up: {0}")]
    Unavailable(String),
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user.
    pub sub: UserId,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

/// Who a verified token names, and until when it holds (seconds since the epoch): a
/// WebSocket keeps the time to close itself when the token it opened with expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub user: UserId,
    pub expires_at: u64,
}

/// A freshly issued access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessToken {
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// The keys of the signing secret: the active one signs, all of them verify.
pub struct SigningKeys {
    active: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        let mut kids: Vec<&String> = self.decoding.keys().collect();
        kids.sort();
        f.debug_struct("SigningKeys")
            .field("active", &self.active)
            .field("kids", &kids)
            .finish()
    }
}

impl SigningKeys {
    /// Reads the secret's JSON; says what is wrong with it, never what it holds.
    pub fn parse(secret: &str) -> Result<Self, String> {
        let fields: HashMap<String, String> = serde_json::from_str(secret).map_err(|_| {
            "the signing secret must be a JSON object of strings, like {\"active_kid\": \"k1\", \"k1\": \"<key>\"}".to_owned()
        })?;
        let active = fields
            .get("active_kid")
            .cloned()
            .ok_or("the signing secret has no \"active_kid\"")?;
        let mut decoding = HashMap::new();
        let mut encoding = None;
        for (kid, key) in &fields {
            if kid == "active_kid" {
                continue;
            }
            if key.len() < MIN_KEY_BYTES {
                return Err(format!(
                    "signing key {kid:?} is {} bytes; at least {MIN_KEY_BYTES} are needed",
                    key.len()
                ));
            }
            let unusable =
                |e: jsonwebtoken::errors::Error| format!("signing key {kid:?} cannot be used: {e}");
            decoding.insert(
                kid.clone(),
                DecodingKey::from_secret(key.as_bytes()).map_err(unusable)?,
            );
            if *kid == active {
                encoding = Some(EncodingKey::from_secret(key.as_bytes()).map_err(unusable)?);
            }
        }
        let encoding = encoding.ok_or_else(|| {
            format!("the signing secret's active_kid {active:?} names no key in it")
        })?;
        Ok(SigningKeys {
            active,
            encoding,
            decoding,
        })
    }

    /// The kid new tokens carry.
    pub fn active_kid(&self) -> &str {
        &self.active
    }

    /// A token for `user`, issued `now` (seconds since the epoch).
    pub fn issue(&self, user: UserId, now: u64) -> AccessToken {
        let claims = AccessClaims {
            sub: user,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + ACCESS_TTL.as_secs(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.active.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            // HMAC over our own serialisable claims cannot fail.
            .unwrap_or_default();
        AccessToken {
            access_token,
            expires_in: ACCESS_TTL.as_secs(),
        }
    }

    /// The user a token was issued to, if it is ours, unexpired and untampered.
    pub fn verify(&self, token: &str) -> Result<UserId, AccessError> {
        self.verify_until(token).map(|v| v.user)
    }

    /// `verify`, with the token's expiry.
    pub fn verify_until(&self, token: &str) -> Result<Verified, AccessError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AccessError::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(AccessError::Algorithm(format!("{:?}", header.alg)));
        }
        let key = header
            .kid
            .as_ref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or_else(|| AccessError::UnknownKey(header.kid.clone()))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 30;
        jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .map(|data| Verified {
                user: data.claims.sub,
                expires_at: data.claims.exp,
            })
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AccessError::Expired,
                _ => AccessError::Invalid(e.to_string()),
            })
    }

    /// A fresh secret's JSON with one random key named `kid`: what the template's
    /// generated secret holds, for local set-ups and tests.
    pub fn generate(kid: &str) -> String {
        use base64::Engine;
        let key =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 48]>());
        let secret = std::collections::BTreeMap::from([("active_kid", kid), (kid, key.as_str())]);
        serde_json::to_string(&secret).unwrap_or_default()
    }
}

/// A token naming an unknown key reloads the secret at most this often.
const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// The signing keys as a function holds them: read from the secret store at start, and
/// read again (at most every 30 s) when a token names a key not held, since another
/// instance may already sign with a rotated key.
pub struct KeyRing {
    source: Option<(Arc<dyn Secrets>, String)>,
    keys: RwLock<Arc<SigningKeys>>,
    reloaded: tokio::sync::Mutex<Instant>,
    /// An external OpenID Connect issuer whose tokens are accepted too.
    external: Option<Arc<ExternalIssuer>>,
}

impl KeyRing {
    /// Reads the secret `secret_id`; says what is wrong when it cannot be used.
    pub async fn load(secrets: Arc<dyn Secrets>, secret_id: &str) -> Result<Self, String> {
        let keys = Self::read(secrets.as_ref(), secret_id).await?;
        Ok(KeyRing {
            source: Some((secrets, secret_id.to_owned())),
            keys: RwLock::new(Arc::new(keys)),
            reloaded: tokio::sync::Mutex::new(Instant::now()),
            external: None,
        })
    }

    /// Keys that never change (tests, tools).
    pub fn fixed(keys: SigningKeys) -> Self {
        KeyRing {
            source: None,
            keys: RwLock::new(Arc::new(keys)),
            reloaded: tokio::sync::Mutex::new(Instant::now()),
            external: None,
        }
    }

    /// Accepts `issuer`'s tokens too: those signed with its algorithms go to it, ours
    /// (HS256) never do, so neither can pass for the other.
    pub fn with_external(mut self, issuer: ExternalIssuer) -> Self {
        self.external = Some(Arc::new(issuer));
        self
    }

    async fn read(secrets: &dyn Secrets, id: &str) -> Result<SigningKeys, String> {
        let text = secrets.secret(id).await.map_err(|e| e.to_string())?;
        SigningKeys::parse(&text).map_err(|e| format!("secret {id}: {e}"))
    }

    fn current(&self) -> Arc<SigningKeys> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A token for `user`, signed with the active key.
    pub fn issue(&self, user: UserId) -> AccessToken {
        self.issue_at(user, now_secs())
    }

    /// A token for `user` as if issued at `issued_at` (seconds since the epoch).
    pub fn issue_at(&self, user: UserId, issued_at: u64) -> AccessToken {
        self.current().issue(user, issued_at)
    }

    /// The user a token was issued to; see `SigningKeys::verify` (and `ExternalIssuer`
    /// for an external issuer's tokens).
    pub async fn verify(&self, token: &str) -> Result<UserId, AccessError> {
        self.verify_until(token).await.map(|v| v.user)
    }

    /// `verify`, with the token's expiry.
    pub async fn verify_until(&self, token: &str) -> Result<Verified, AccessError> {
        if let Some(external) = &self.external
            && jsonwebtoken::decode_header(token).is_ok_and(|h| ExternalIssuer::handles(h.alg))
        {
            return external.verify(token).await;
        }
        match self.current().verify_until(token) {
            Err(AccessError::UnknownKey(Some(kid))) => {
                self.reload_if_due().await;
                self.current()
                    .verify_until(token)
                    .map_err(|_| AccessError::UnknownKey(Some(kid)))
            }
            other => other,
        }
    }

    async fn reload_if_due(&self) {
        let Some((secrets, id)) = &self.source else {
            return;
        };
        let mut last = self.reloaded.lock().await;
        if last.elapsed() < RELOAD_EVERY {
            return;
        }
        *last = Instant::now();
        match Self::read(secrets.as_ref(), id).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                match self.keys.write() {
                    Ok(mut held) => *held = keys,
                    Err(poisoned) => *poisoned.into_inner() = keys,
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not reload the signing keys"),
        }
    }
}

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keys() -> SigningKeys {
        SigningKeys::parse(&SigningKeys::generate("k1")).unwrap()
    }

    #[test]
    fn a_token_verifies_to_its_user_until_it_expires() {
        let keys = keys();
        let user = UserId::new();
        let now = now_secs();
        let token = keys.issue(user, now);
        assert_eq!(token.expires_in, 900);
        assert_eq!(keys.verify(&token.access_token), Ok(user));
        let old = keys.issue(user, now - 900 - 31);
        assert_eq!(keys.verify(&old.access_token), Err(AccessError::Expired));
    }

    #[test]
    fn a_rotated_secret_accepts_the_old_key_and_signs_with_the_new() {
        let user = UserId::new();
        let k1 = "a".repeat(40);
        let before =
            SigningKeys::parse(&serde_json::json!({"active_kid": "k1", "k1": k1}).to_string())
                .unwrap();
        let issued = before.issue(user, now_secs());
        let after = SigningKeys::parse(
            &serde_json::json!({"active_kid": "k2", "k1": k1, "k2": "b".repeat(40)}).to_string(),
        )
        .unwrap();
        assert_eq!(after.verify(&issued.access_token), Ok(user));
        let fresh = after.issue(user, now_secs()).access_token;
        assert_eq!(
            jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(),
            Some("k2")
        );
        // Once k1 is removed, its tokens name a key no longer held.
        let later = SigningKeys::parse(
            &serde_json::json!({"active_kid": "k2", "k2": "b".repeat(40)}).to_string(),
        )
        .unwrap();
        assert_eq!(
            later.verify(&issued.access_token),
            Err(AccessError::UnknownKey(Some("k1".into())))
        );
        assert_eq!(later.verify(&fresh), Ok(user));
    }

    #[test]
    fn forged_and_broken_tokens_are_refused() {
        let keys = keys();
        let user = UserId::new();
        let token = keys.issue(user, now_secs()).access_token;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = token.split('.').collect();
        // alg none, with and without a signature.
        let none = engine.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        assert!(matches!(
            keys.verify(&format!("{none}.{}.", parts[1])),
            Err(AccessError::Malformed | AccessError::Algorithm(_))
        ));
        // A changed payload.
        let other = engine.encode(
            serde_json::json!({"sub": UserId::new(), "iss": ISSUER, "aud": AUDIENCE, "iat": now_secs(), "exp": now_secs() + 900}).to_string(),
        );
        assert!(matches!(
            keys.verify(&format!("{}.{other}.{}", parts[0], parts[2])),
            Err(AccessError::Invalid(_))
        ));
        // Another key under the same kid.
        let forger = SigningKeys::parse(&SigningKeys::generate("k1")).unwrap();
        assert!(matches!(
            keys.verify(&forger.issue(user, now_secs()).access_token),
            Err(AccessError::Invalid(_))
        ));
        for junk in ["", "abc", "a.b.c", "Bearer x", &"x".repeat(10_000)] {
            assert!(keys.verify(junk).is_err(), "{junk:?} was accepted");
        }
    }

    #[test]
    fn a_bad_secret_says_what_is_wrong_without_its_keys() {
        assert!(SigningKeys::parse("not json").is_err());
        let short = SigningKeys::parse(r#"{"active_kid": "k1", "k1": "short"}"#).unwrap_err();
        assert!(short.contains("at least 32"), "{short}");
        assert!(!short.contains("short\""), "{short}");
        let missing = SigningKeys::parse(&format!(
            r#"{{"active_kid": "k2", "k1": "{}"}}"#,
            "a".repeat(40)
        ))
        .unwrap_err();
        assert!(missing.contains("k2"), "{missing}");
    }
}
