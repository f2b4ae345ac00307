//! Typed configuration, read from the environment once, in `main`. A missing or invalid
//! variable fails start-up and names the variable; secrets never print.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Where variables come from: the process environment in `main`, a map in tests (so no
/// test ever calls `set_var`).
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// Why configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set")]
    Missing { name: &'static str },
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A value that must never reach a log: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

/// Read from a service's answer (a token endpoint's), kept as secret as any other.
impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A variable that must be set and not blank.
pub fn required(env: &dyn Env, name: &'static str) -> Result<String, ConfigError> {
    match env.get(name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing { name }),
    }
}

/// A variable that may be unset; blank counts as unset.
pub fn optional(env: &dyn Env, name: &'static str) -> Option<String> {
    env.get(name).filter(|v| !v.trim().is_empty())
}

pub fn parsed<T: FromStr>(env: &dyn Env, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    match optional(env, name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
    }
}

/// The Postgres connection.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `postgres://user[:password]@host:port/db[?sslmode=require]`; may hold a password,
    /// so it is a secret.
    pub url: Secret<String>,
    /// Pool size per process (`DATABASE_POOL_SIZE`, default 8).
    pub pool_size: usize,
    /// `DATABASE_PASSWORD_SECRET`: a Secrets Manager secret holding the password (its
    /// plain value, or RDS's JSON with a `password` field); replaces the URL's.
    pub password_secret: Option<String>,
    /// The password read from `password_secret` (`adapters::database_config` fills it).
    pub password: Option<Secret<String>>,
    /// `DATABASE_CA_FILE`: PEM certificates trusted besides the system's (a private CA,
    /// RDS's bundle).
    pub ca_file: Option<String>,
    /// `DATABASE_IAM_AUTH=true`: each new connection signs in with a fresh RDS IAM
    /// authentication token instead of a password (`adapters::database_config` makes the
    /// signer from the function's credentials).
    pub iam_auth: bool,
    pub iam_signer: Option<crate::adapters::aws::RdsAuth>,
}

impl DatabaseConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let url = required(env, "DATABASE_URL")?;
        // Check the URL here so a typo fails start-up, not the first request. The reason
        // given by the parser never includes the password.
        let parsed_url =
            tokio_postgres::Config::from_str(&url).map_err(|e| ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: e.to_string(),
            })?;
        // On Lambda the database is across a network: never in plain text.
        if env.get("AWS_LAMBDA_FUNCTION_NAME").is_some()
            && parsed_url.get_ssl_mode() != tokio_postgres::config::SslMode::Require
        {
            return Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: "must ask for TLS with ?sslmode=require on AWS".into(),
            });
        }
        let pool_size = parsed(env, "DATABASE_POOL_SIZE", 8usize)?;
        if pool_size == 0 {
            return Err(ConfigError::Invalid {
                name: "DATABASE_POOL_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        Ok(DatabaseConfig {
            url: Secret::new(url),
            pool_size,
            password_secret: optional(env, "DATABASE_PASSWORD_SECRET"),
            password: None,
            ca_file: optional(env, "DATABASE_CA_FILE"),
            iam_auth: parsed(env, "DATABASE_IAM_AUTH", false)?,
            iam_signer: None,
        })
    }
}

/// How to reach AWS, or the local emulator that speaks its APIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// `AWS_REGION`.
    pub region: String,
    /// `AWS_ENDPOINT_URL`: set for the local stack (moto), unset on AWS.
    pub endpoint_url: Option<String>,
}

impl AwsConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let region = required(env, "AWS_REGION")?;
        let endpoint_url = optional(env, "AWS_ENDPOINT_URL");
        if let Some(url) = &endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                name: "AWS_ENDPOINT_URL",
                reason: "must start with http:// or https://".into(),
            });
        }
        Ok(AwsConfig {
            region,
            endpoint_url,
        })
    }
}

/// Everything a process reads at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub aws: AwsConfig,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(Config {
            database: DatabaseConfig::from_env(env)?,
            aws: AwsConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = Config::from_source(&env(&[("AWS_REGION", "us-east-1")])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                name: "DATABASE_URL"
            }
        );
        assert_eq!(
            err.to_string(),
            "environment variable DATABASE_URL is not set"
        );
    }

    #[test]
    fn an_invalid_value_is_named_with_the_reason() {
        let err = Config::from_source(&env(&[
            ("DATABASE_URL", "postgres://u@h/db"),
            ("AWS_REGION", "us-east-1"),
            ("DATABASE_POOL_SIZE", "many"),
        ]))
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    name: "DATABASE_POOL_SIZE",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn an_endpoint_without_a_scheme_is_rejected() {
        let err = AwsConfig::from_env(&env(&[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "127.0.0.1:5000"),
        ]))
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    name: "AWS_ENDPOINT_URL",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_database_url_never_prints() {
        let config = Config::from_source(&env(&[
            (
                "DATABASE_URL",
                "postgres://app:hunter2@db.internal/autocrew",
            ),
            ("AWS_REGION", "eu-west-1"),
        ]))
        .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.database.pool_size, 8);
        assert_eq!(config.aws.endpoint_url, None);
    }
}

/// Heartbeats: a working step beats every `every`; one silent for `stale_after` is
/// presumed dead. Each beat also hides the step's SQS message for `stale_after` plus two
/// beats, so a dead worker's message comes back soon after it is presumed dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub every: Duration,
    pub stale_after: Duration,
}

impl Liveness {
    /// Reads `HEARTBEAT_SECS` (default 5) and `STALE_AFTER_SECS` (default 20, more than
    /// three beats).
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let seconds = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match optional(env, name) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
                    _ => Err(ConfigError::Invalid {
                        name,
                        reason: format!("must be a positive whole number of seconds, got {v:?}"),
                    }),
                },
            }
        };
        let liveness = Liveness {
            every: seconds("HEARTBEAT_SECS", 5)?,
            stale_after: seconds("STALE_AFTER_SECS", 20)?,
        };
        if liveness.stale_after < liveness.every * 3 {
            return Err(ConfigError::Invalid {
                name: "STALE_AFTER_SECS",
                reason: "must be at least three heartbeats (HEARTBEAT_SECS)".into(),
            });
        }
        Ok(liveness)
    }

    /// How long each beat hides the step's message.
    pub fn visibility(&self) -> Duration {
        self.stale_after + self.every * 2
    }
}

/// Sign-in: the secret holding the access tokens' signing keys (`JWT_SIGNING_SECRET`, a
/// Secrets Manager name or ARN) and where emailed links point (`APP_LINK_BASE`, optional:
/// without it, emails carry only the code).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub signing_secret: String,
    pub app_link_base: Option<String>,
    /// An external OpenID Connect issuer whose tokens are accepted too (`OIDC_ISSUER`).
    pub oidc: Option<crate::services::oidc::OidcConfig>,
    /// The trial credit a new user gets, signing up or first seen in an external token
    /// (`FREE_TRIAL_CREDIT_USD`, $1 by default): enough to try a real model once.
    pub trial_credit: crate::domain::MicroUsd,
}

impl AuthConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(AuthConfig {
            signing_secret: required(env, "JWT_SIGNING_SECRET")?,
            app_link_base: optional(env, "APP_LINK_BASE"),
            oidc: crate::services::oidc::OidcConfig::from_env(env)?,
            trial_credit: dollars(env, "FREE_TRIAL_CREDIT_USD", "1")?,
        })
    }
}

/// An amount of dollars (`"1"`, `"0.50"`) from `name`, or `default`.
pub fn dollars(
    env: &dyn Env,
    name: &'static str,
    default: &str,
) -> Result<crate::domain::MicroUsd, ConfigError> {
    let text = optional(env, name).unwrap_or_else(|| default.to_owned());
    crate::domain::pricing::parse_dollars(text.trim()).map_err(|_| ConfigError::Invalid {
        name,
        reason: format!("must be an amount of dollars like \"1\" or \"0.50\", got {text:?}"),
    })
}

/// Where email goes (`EMAIL_PROVIDER`): `resend` on a deployed stack (the API key in the
/// secret `RESEND_API_KEY_SECRET`, sent from `EMAIL_FROM`), or `outbox`, a table that
/// `autocrew mail` shows (local mode, the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailConfig {
    Outbox,
    Resend {
        key_secret: String,
        from: String,
        base_url: String,
    },
}

impl MailConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        match optional(env, "EMAIL_PROVIDER").as_deref().map(str::trim) {
            None | Some("outbox") => Ok(MailConfig::Outbox),
            Some("resend") => Ok(MailConfig::Resend {
                key_secret: required(env, "RESEND_API_KEY_SECRET")?,
                from: required(env, "EMAIL_FROM")?,
                base_url: optional(env, "RESEND_BASE_URL")
                    .unwrap_or_else(|| crate::adapters::mail::RESEND_BASE_URL.to_owned()),
            }),
            Some(other) => Err(ConfigError::Invalid {
                name: "EMAIL_PROVIDER",
                reason: format!("must be resend or outbox, got {other:?}"),
            }),
        }
    }
}

/// Where connected accounts' credentials are sealed: a KMS key on AWS
/// (`CONNECTIONS_KMS_KEY_ID`), or a local key file (`CONNECTIONS_KEY_FILE`, local mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultConfig {
    Kms { key_id: String },
    File { path: std::path::PathBuf },
}

impl VaultConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        if let Some(key_id) = optional(env, "CONNECTIONS_KMS_KEY_ID") {
            return Ok(VaultConfig::Kms { key_id });
        }
        match optional(env, "CONNECTIONS_KEY_FILE") {
            Some(path) => Ok(VaultConfig::File { path: path.into() }),
            None => Err(ConfigError::Missing {
                name: "CONNECTIONS_KMS_KEY_ID (or CONNECTIONS_KEY_FILE in local mode)",
            }),
        }
    }
}

/// The OAuth apps connections can be made through instead of a pasted token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthApps {
    /// `GITHUB_OAUTH_CLIENT_ID`: a GitHub OAuth app with the device flow enabled; without
    /// it, GitHub is connected with a token only.
    pub github_client_id: Option<String>,
    /// `GITHUB_OAUTH_URL` (`https://github.com`): where GitHub's device flow lives.
    pub github_url: String,
    /// `X_OAUTH_CLIENT_ID`: an X app with OAuth 2.0 on; without it, X is connected with a
    /// token only. Its token endpoint is on the API host (`X_API_URL`).
    pub x_client_id: Option<String>,
    /// `X_OAUTH_URL` (`https://x.com`): where X's consent page lives.
    pub x_url: String,
    /// `LINKEDIN_OAUTH_CLIENT_ID`: a LinkedIn app with "Sign In with LinkedIn using OpenID
    /// Connect" and "Share on LinkedIn"; without it, LinkedIn is connected with a token only.
    pub linkedin_client_id: Option<String>,
    /// `LINKEDIN_OAUTH_URL` (`https://www.linkedin.com`): LinkedIn's consent page and token
    /// endpoint.
    pub linkedin_url: String,
    /// `OAUTH_CLIENT_SECRETS_SECRET`: the secret (a name or ARN) holding the OAuth apps'
    /// client secrets as a JSON object by service (`{"x": "...", "linkedin": "..."}`).
    /// LinkedIn needs one; X without one is a public client (PKCE alone).
    pub client_secrets: Option<String>,
}

impl OAuthApps {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let url = |name: &'static str, default: &str| {
            let url = optional(env, name).unwrap_or_else(|| default.to_owned());
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!("must be an http(s) URL, got {url:?}"),
                });
            }
            Ok(url.trim_end_matches('/').to_owned())
        };
        let client_id = |name: &'static str| {
            optional(env, name)
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty())
        };
        Ok(OAuthApps {
            github_client_id: client_id("GITHUB_OAUTH_CLIENT_ID"),
            github_url: url("GITHUB_OAUTH_URL", "https://github.com")?,
            x_client_id: client_id("X_OAUTH_CLIENT_ID"),
            x_url: url("X_OAUTH_URL", "https://x.com")?,
            linkedin_client_id: client_id("LINKEDIN_OAUTH_CLIENT_ID"),
            linkedin_url: url("LINKEDIN_OAUTH_URL", "https://www.linkedin.com")?,
            client_secrets: client_id("OAUTH_CLIENT_SECRETS_SECRET"),
        })
    }
}

/// The outside services' API base URLs (`GITHUB_API_URL`, `VERCEL_API_URL`,
/// `EXPO_API_URL`, `RESEND_API_URL`, `X_API_URL`, `LINKEDIN_API_URL`), the public ones by
/// default. The tools reach nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrls {
    urls: Vec<(crate::domain::Service, String)>,
}

impl ServiceUrls {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        use crate::domain::Service;
        let urls = Service::ALL
            .iter()
            .map(|service| {
                let (name, default) = match service {
                    Service::Github => ("GITHUB_API_URL", "https://api.github.com"),
                    Service::Vercel => ("VERCEL_API_URL", "https://api.vercel.com"),
                    Service::Expo => ("EXPO_API_URL", "https://api.expo.dev"),
                    Service::Resend => ("RESEND_API_URL", "https://api.resend.com"),
                    Service::X => ("X_API_URL", "https://api.x.com"),
                    Service::Linkedin => ("LINKEDIN_API_URL", "https://api.linkedin.com"),
                };
                let url = optional(env, name).unwrap_or_else(|| default.to_owned());
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::Invalid {
                        name,
                        reason: format!("must be an http(s) URL, got {url:?}"),
                    });
                }
                Ok((*service, url.trim_end_matches('/').to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(ServiceUrls { urls })
    }

    /// The base URL of `service`'s API, without a trailing slash.
    pub fn base(&self, service: crate::domain::Service) -> &str {
        self.urls
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, url)| url.as_str())
            .unwrap_or_default()
    }
}

/// Variables from a secret over the environment's: `values` answer first.
pub struct Overlay<'a> {
    pub values: std::collections::HashMap<String, String>,
    pub base: &'a dyn Env,
}

impl Env for Overlay<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
            .or_else(|| self.base.get(name))
    }
}

mod billing;
mod notices;
pub use billing::{BillingConfig, plans, tasks_in_flight};
pub use notices::NoticeConfig;
