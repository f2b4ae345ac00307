//! The gateway's knobs, from the environment.

use crate::adapters::llm::Patience;
use crate::config::{ConfigError, Env, optional};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    /// Extra tries on the same model after a rate limit, 5xx, timeout or transport error
    /// (`LLM_RETRIES_PER_MODEL`, 2) before the next model of the chain.
    pub retries_per_model: u32,
    /// Backoff for outages: from `backoff_base` doubling up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A `retry-after` longer than this moves on to the next model instead of waiting
    /// (`LLM_MAX_RETRY_AFTER_SECS`, 60); a call never waits past its own `wait_until`.
    pub max_retry_after: Duration,
    /// Exact-match cache lifetime (`LLM_CACHE_TTL_SECS`, 3600; 0 turns the cache off).
    pub cache_ttl: Option<Duration>,
    /// Semantic cache lifetime (`SEMANTIC_CACHE_TTL_SECS`, 7 days).
    pub semantic_ttl: Duration,
    /// Calls in flight per provider across every function (`LLM_MAX_CONCURRENCY`, 32;
    /// `LLM_MAX_CONCURRENCY_<PROVIDER>` for one provider, e.g. `_ANTHROPIC`; a model with
    /// `max_in_flight` in the table has slots of its own).
    pub concurrency: u32,
    pub concurrency_by_provider: HashMap<String, u32>,
    /// How long a call waits for a concurrency slot before moving on
    /// (`LLM_SLOT_WAIT_SECS`, 120); never past its own `wait_until`.
    pub slot_wait: Duration,
    /// How long a model call may take (`adapters::llm::Patience`): a slot stays leased
    /// for the call's ceiling plus 30 s, so a dead holder's slot comes back.
    pub patience: Patience,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            retries_per_model: 2,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            cache_ttl: Some(Duration::from_secs(3600)),
            semantic_ttl: Duration::from_secs(7 * 24 * 3600),
            concurrency: 32,
            concurrency_by_provider: HashMap::new(),
            slot_wait: Duration::from_secs(120),
            patience: Patience::default(),
        }
    }
}

fn number(env: &dyn Env, name: &'static str) -> Result<Option<u64>, ConfigError> {
    optional(env, name)
        .map(|v| {
            v.trim().parse().map_err(|_| ConfigError::Invalid {
                name,
                reason: format!("must be a whole number, got {v:?}"),
            })
        })
        .transpose()
}

impl GatewaySettings {
    /// Reads the variables named on the fields; `patience` sizes the slot leases.
    pub fn from_env(env: &dyn Env, patience: Patience) -> Result<Self, ConfigError> {
        let mut s = GatewaySettings {
            patience,
            ..GatewaySettings::default()
        };
        if let Some(n) = number(env, "LLM_RETRIES_PER_MODEL")? {
            s.retries_per_model = u32::try_from(n.min(10)).unwrap_or(10);
        }
        if let Some(n) = number(env, "LLM_MAX_RETRY_AFTER_SECS")? {
            s.max_retry_after = Duration::from_secs(n);
        }
        if let Some(n) = number(env, "LLM_SLOT_WAIT_SECS")? {
            s.slot_wait = Duration::from_secs(n);
        }
        if let Some(n) = number(env, "LLM_CACHE_TTL_SECS")? {
            s.cache_ttl = (n > 0).then(|| Duration::from_secs(n));
        }
        if let Some(n) = number(env, "SEMANTIC_CACHE_TTL_SECS")? {
            s.semantic_ttl = Duration::from_secs(n);
        }
        let positive = |name: &'static str, n: u64| match u32::try_from(n) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError::Invalid {
                name,
                reason: "must be between 1 and 4294967295".into(),
            }),
        };
        if let Some(n) = number(env, "LLM_MAX_CONCURRENCY")? {
            s.concurrency = positive("LLM_MAX_CONCURRENCY", n)?;
        }
        for (provider, name) in [
            ("anthropic", "LLM_MAX_CONCURRENCY_ANTHROPIC"),
            ("openai", "LLM_MAX_CONCURRENCY_OPENAI"),
            ("gemini", "LLM_MAX_CONCURRENCY_GEMINI"),
            ("openai-compatible", "LLM_MAX_CONCURRENCY_COMPATIBLE"),
        ] {
            if let Some(n) = number(env, name)? {
                s.concurrency_by_provider
                    .insert(provider.into(), positive(name, n)?);
            }
        }
        Ok(s)
    }

    /// How long a call's provider slot stays leased if its holder dies.
    pub fn slot_lease(&self, max_tokens: u32) -> Duration {
        self.patience.ceiling(max_tokens) + Duration::from_secs(30)
    }

    pub fn concurrency_for(&self, provider: &str) -> u32 {
        self.concurrency_by_provider
            .get(provider)
            .copied()
            .unwrap_or(self.concurrency)
    }
}
