//! Adapters: the ports on real backends. Every endpoint comes from config, so the same code
//! talks to AWS or to the local stack.

pub mod aws;
pub mod expo_push;
pub mod keyfile;
pub mod llm;
pub mod mail;
pub mod memory;
pub mod postgres;
pub mod stripe;
pub mod tools;
pub mod topics;
pub mod webhooks;

use crate::services::{AgentQueues, GatewayStores, Notifier, Relay};
use std::sync::Arc;

/// The notifier every function uses: the event log in Postgres, the connection
/// registry in DynamoDB (`table`), pushes through `@connections` at `callback_url`.
pub fn notifier(
    pool: &postgres::Pool,
    sdk: &aws_config::SdkConfig,
    table: &str,
    callback_url: &str,
) -> Notifier {
    Notifier::new(
        Arc::new(postgres::PgEventLog::new(pool.clone())),
        Arc::new(aws::DynamoConnectionRegistry::new(sdk, table)),
        Arc::new(aws::ApiGatewayPush::new(sdk, callback_url)),
    )
}

/// The gateway's stores, all in Postgres: budgets, ledger, exact and semantic caches, and
/// each call's bookkeeping (reservation, provider slot, settlement, ledger row).
pub fn gateway_stores(pool: &postgres::Pool) -> GatewayStores {
    GatewayStores {
        budgets: Arc::new(postgres::PgBudgetStore::new(pool.clone())),
        ledger: Arc::new(postgres::PgLedger::new(pool.clone())),
        cache: Arc::new(postgres::PgResponseCache::new(pool.clone())),
        semantic: Arc::new(postgres::PgSemanticCache::new(pool.clone())),
        calls: Arc::new(postgres::PgCallBook::new(pool.clone())),
    }
}

/// The relay every function publishes through: the outbox and runs in Postgres, SQS for
/// the agents' queues (`queues`), Step Functions for callbacks and executions.
pub fn relay(
    pool: &postgres::Pool,
    sdk: &aws_config::SdkConfig,
    queues: AgentQueues,
    machines: StateMachines,
    notifier: Notifier,
) -> Relay {
    Relay {
        outbox: Arc::new(postgres::PgOutboxStore::new(pool.clone())),
        queue: Arc::new(aws::SqsQueue::new(sdk)),
        state_machine: Arc::new(aws::SfnStateMachine::new(sdk)),
        runs: Arc::new(postgres::PgRunStore::new(pool.clone())),
        queues,
        state_machine_arn: machines.run,
        watch_state_machine_arn: machines.watch,
        notifier,
    }
}

/// The state machines a relay starts executions of: runs' (`STATE_MACHINE_ARN`) and long
/// jobs' watches (`WATCH_STATE_MACHINE_ARN`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateMachines {
    pub run: Option<String>,
    pub watch: Option<String>,
}

impl StateMachines {
    pub fn from_env(env: &dyn crate::config::Env) -> Self {
        StateMachines {
            run: crate::config::optional(env, "STATE_MACHINE_ARN"),
            watch: crate::config::optional(env, "WATCH_STATE_MACHINE_ARN"),
        }
    }
}

/// The access tokens' signing keys, read from the secret store.
pub async fn key_ring(
    sdk: &aws_config::SdkConfig,
    pool: &postgres::Pool,
    config: &crate::config::AuthConfig,
) -> Result<crate::services::access::KeyRing, crate::config::ConfigError> {
    let keys = crate::services::access::KeyRing::load(
        Arc::new(aws::SecretsManager::new(sdk)),
        &config.signing_secret,
    )
    .await
    .map_err(|reason| crate::config::ConfigError::Invalid {
        name: "JWT_SIGNING_SECRET",
        reason,
    })?;
    // An external issuer's tokens name users of ours through the account store.
    Ok(match &config.oidc {
        Some(oidc) => keys.with_external(crate::services::oidc::ExternalIssuer::new(
            oidc.clone(),
            Arc::new(postgres::PgAccountStore::new(pool.clone())),
            config.trial_credit,
        )),
        None => keys,
    })
}

/// The mailer `config` names.
pub fn mailer(
    pool: &postgres::Pool,
    sdk: &aws_config::SdkConfig,
    config: &crate::config::MailConfig,
) -> Arc<dyn crate::ports::Mailer> {
    match config {
        crate::config::MailConfig::Outbox => Arc::new(postgres::PgMailOutbox::new(pool.clone())),
        crate::config::MailConfig::Resend {
            key_secret,
            from,
            base_url,
        } => Arc::new(mail::ResendMailer::new(
            base_url,
            Arc::new(aws::SecretsManager::new(sdk)),
            key_secret,
            from,
        )),
    }
}

/// The database configuration from `env`, with the password read from the secret store
/// when `DATABASE_PASSWORD_SECRET` names one.
pub async fn database_config(
    env: &dyn crate::config::Env,
) -> Result<crate::config::DatabaseConfig, crate::config::ConfigError> {
    use crate::config::{AwsConfig, ConfigError, DatabaseConfig, Secret};
    use crate::ports::Secrets;
    let mut config = DatabaseConfig::from_env(env)?;
    if config.iam_auth {
        let sdk = aws::sdk_config(&AwsConfig::from_env(env)?).await;
        config.iam_signer = Some(aws::RdsAuth::new(&sdk).ok_or_else(|| ConfigError::Invalid {
            name: "DATABASE_IAM_AUTH",
            reason: "no AWS credentials or region to sign the database's tokens with".into(),
        })?);
        return Ok(config);
    }
    let Some(id) = config.password_secret.clone() else {
        return Ok(config);
    };
    let invalid = |reason: String| ConfigError::Invalid {
        name: "DATABASE_PASSWORD_SECRET",
        reason,
    };
    let sdk = aws::sdk_config(&AwsConfig::from_env(env)?).await;
    let value = aws::SecretsManager::new(&sdk)
        .secret(&id)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    // RDS keeps `{"username": ..., "password": ...}`; a plain secret is the password.
    let password = match serde_json::from_str::<serde_json::Value>(&value) {
        Ok(serde_json::Value::Object(fields)) => fields
            .get("password")
            .and_then(|p| p.as_str())
            .map(str::to_owned)
            .ok_or_else(|| invalid(format!("secret {id} is JSON without a \"password\"")))?,
        _ => value,
    };
    config.password = Some(Secret::new(password));
    Ok(config)
}

/// The providers' API keys from the secret `PROVIDER_KEYS_SECRET` names (a JSON object of
/// `*_API_KEY` names to keys), as variables to lay over the environment; none when the
/// variable is unset. Only API key names are taken, so the secret cannot redirect
/// anything else.
pub async fn provider_keys(
    env: &dyn crate::config::Env,
) -> Result<std::collections::HashMap<String, String>, crate::config::ConfigError> {
    use crate::config::{AwsConfig, ConfigError, optional};
    use crate::ports::Secrets;
    let Some(id) = optional(env, "PROVIDER_KEYS_SECRET") else {
        return Ok(Default::default());
    };
    let invalid = |reason: String| ConfigError::Invalid {
        name: "PROVIDER_KEYS_SECRET",
        reason,
    };
    let sdk = aws::sdk_config(&AwsConfig::from_env(env)?).await;
    let text = aws::SecretsManager::new(&sdk)
        .secret(&id)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    let fields: std::collections::HashMap<String, String> = serde_json::from_str(&text)
        .map_err(|_| invalid(format!("secret {id} must be a JSON object of strings")))?;
    if let Some(other) = fields.keys().find(|k| !k.ends_with("_API_KEY")) {
        return Err(invalid(format!(
            "secret {id} holds {other:?}; only provider API keys (NAME_API_KEY) belong there"
        )));
    }
    Ok(fields)
}

/// The vault sealing connected accounts' credentials: KMS on AWS, the local key file in
/// local mode (made on first use).
pub fn vault(
    config: &crate::config::VaultConfig,
    sdk: &aws_config::SdkConfig,
) -> Result<crate::services::Vault, crate::config::ConfigError> {
    use crate::config::VaultConfig;
    let keeper: Arc<dyn crate::ports::KeyKeeper> = match config {
        VaultConfig::Kms { key_id } => Arc::new(aws::KmsKeyKeeper::new(sdk, key_id)),
        VaultConfig::File { path } => {
            Arc::new(keyfile::FileKeyKeeper::open_or_create(path).map_err(|e| {
                crate::config::ConfigError::Invalid {
                    name: "CONNECTIONS_KEY_FILE",
                    reason: format!("{}: {e}", path.display()),
                }
            })?)
        }
    };
    Ok(crate::services::Vault::new(keeper))
}

/// Billing as `config` sets it up: Stripe with the key and webhook secrets in the secret
/// `config.stripe_secret` names, or no Stripe (its routes answer 503) when it names none.
pub async fn billing(
    pool: &postgres::Pool,
    sdk: &aws_config::SdkConfig,
    config: &crate::config::BillingConfig,
) -> Result<crate::services::Billing, crate::config::ConfigError> {
    use crate::config::ConfigError;
    use crate::ports::Secrets;
    let plans = crate::config::plans()?;
    let mut billing = crate::services::Billing::new(
        Arc::new(postgres::PgBilling::new(pool.clone())),
        plans,
        config.clone(),
    );
    let Some(id) = &config.stripe_secret else {
        return Ok(billing);
    };
    let invalid = |reason: String| ConfigError::Invalid {
        name: "STRIPE_SECRET",
        reason,
    };
    let text = aws::SecretsManager::new(sdk)
        .secret(id)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    let keys: crate::services::billing::StripeKeys = serde_json::from_str(&text).map_err(|e| {
        invalid(format!(
            "secret {id} must be {{\"api_key\": \"sk_…\", \"webhook_secrets\": [\"whsec_…\"]}}: {e}"
        ))
    })?;
    if keys.webhook_secrets.is_empty() {
        return Err(invalid(format!("secret {id} names no webhook secret")));
    }
    let stripe = stripe::StripePayments::new(&config.stripe_api_url, keys.api_key)
        .map_err(|e| invalid(e.to_string()))?;
    billing.payments = Some(Arc::new(stripe));
    billing.webhook_secrets = Arc::new(keys.webhook_secrets);
    Ok(billing)
}

/// The deliver step's service: the notice store, Expo's Push API and the webhook sender.
pub fn deliverer(
    pool: &postgres::Pool,
    config: &crate::config::NoticeConfig,
) -> Result<crate::services::notices::Deliverer, crate::config::ConfigError> {
    let client_error = |e: reqwest::Error| crate::config::ConfigError::Invalid {
        name: "the HTTP client",
        reason: e.to_string(),
    };
    Ok(crate::services::notices::Deliverer {
        store: std::sync::Arc::new(postgres::PgNotices::new(pool.clone())),
        push: std::sync::Arc::new(
            expo_push::ExpoPush::new(&config.expo_push_url, config.expo_access_token.clone())
                .map_err(client_error)?,
        ),
        webhooks: std::sync::Arc::new(
            webhooks::HttpWebhooks::new(config.url_policy).map_err(client_error)?,
        ),
        receipt_delay: config.receipt_delay,
    })
}
