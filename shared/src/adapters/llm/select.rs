//! Which model client a process uses, from its environment. With no key at all, the offline
//! provider: every run then says it is offline.

use super::{AnthropicClient, GeminiClient, OFFLINE_MODEL, OfflineLlm, OpenAiClient};
use crate::config::{ConfigError, Env, Secret, optional};
use crate::domain::pricing::PriceTable;
use crate::ports::llm::LlmClient;
use std::sync::Arc;
use std::time::Duration;

/// The chosen client, the model it is asked for, and the prices calls are charged at.
#[derive(Clone)]
pub struct LlmSetup {
    pub client: Arc<dyn LlmClient>,
    pub model: String,
    pub prices: Arc<PriceTable>,
}

fn invalid(name: &'static str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.to_string(),
    }
}

/// Reads, in this order of precedence:
/// - `ANTHROPIC_API_KEY` (+ `ANTHROPIC_BASE_URL`): Anthropic, model `claude-sonnet-4-5`;
/// - `OPENAI_BASE_URL` (+ optional `OPENAI_API_KEY`, `OPENAI_COMPATIBLE_NAME`): an
///   OpenAI-compatible server such as Ollama or vLLM; `LLM_MODEL` is then required;
/// - `OPENAI_API_KEY`: OpenAI, model `gpt-4o`;
/// - `GEMINI_API_KEY` (+ `GEMINI_BASE_URL`): Gemini, model `gemini-2.5-flash`;
/// - nothing: the offline provider.
///
/// `LLM_MODEL` overrides the model, `LLM_TIMEOUT_SECS` the timeout (60), and
/// `PRICE_TABLE_PATH` replaces the shipped price table (to price a self-hosted model).
pub fn from_env(env: &dyn Env) -> Result<LlmSetup, ConfigError> {
    let timeout = match optional(env, "LLM_TIMEOUT_SECS") {
        None => Duration::from_secs(60),
        Some(v) => Duration::from_secs(
            v.trim()
                .parse()
                .map_err(|_| invalid("LLM_TIMEOUT_SECS", "must be a whole number of seconds"))?,
        ),
    };
    let model = optional(env, "LLM_MODEL");
    let secret = |name: &'static str| optional(env, name).map(Secret::new);
    let http = |e: reqwest::Error| invalid("LLM_TIMEOUT_SECS", e);
    let (client, default_model): (Arc<dyn LlmClient>, &str) = if let Some(key) =
        secret("ANTHROPIC_API_KEY")
    {
        let base = optional(env, "ANTHROPIC_BASE_URL")
            .unwrap_or_else(|| "https://api.anthropic.com".into());
        (
            Arc::new(AnthropicClient::new(&base, key, timeout).map_err(http)?),
            "claude-sonnet-4-5",
        )
    } else if let Some(base) = optional(env, "OPENAI_BASE_URL") {
        let name =
            optional(env, "OPENAI_COMPATIBLE_NAME").unwrap_or_else(|| "openai-compatible".into());
        let client = OpenAiClient::compatible(&name, &base, secret("OPENAI_API_KEY"), timeout)
            .map_err(http)?;
        if model.is_none() {
            return Err(ConfigError::Missing { name: "LLM_MODEL" });
        }
        (Arc::new(client), "")
    } else if let Some(key) = secret("OPENAI_API_KEY") {
        (
            Arc::new(
                OpenAiClient::openai("https://api.openai.com/v1", key, timeout).map_err(http)?,
            ),
            "gpt-4o",
        )
    } else if let Some(key) = secret("GEMINI_API_KEY") {
        let base = optional(env, "GEMINI_BASE_URL")
            .unwrap_or_else(|| "https://generativelanguage.googleapis.com".into());
        (
            Arc::new(GeminiClient::new(&base, key, timeout).map_err(http)?),
            "gemini-2.5-flash",
        )
    } else {
        (Arc::new(OfflineLlm), OFFLINE_MODEL)
    };
    let prices = match optional(env, "PRICE_TABLE_PATH") {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| invalid("PRICE_TABLE_PATH", format!("{path}: {e}")))?;
            PriceTable::parse(&text).map_err(|e| invalid("PRICE_TABLE_PATH", e))?
        }
        None => PriceTable::builtin()
            .map_err(|e| invalid("PRICE_TABLE_PATH", e))?
            .clone(),
    };
    let model = model.unwrap_or_else(|| default_model.to_owned());
    // Refuse at start-up, not at the first call, a model the table cannot price.
    prices
        .price(client.provider(), &model)
        .map_err(|e| invalid("LLM_MODEL", e))?;
    Ok(LlmSetup {
        client,
        model,
        prices: Arc::new(prices),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_key_means_the_offline_provider() {
        let setup = from_env(&env(&[])).unwrap();
        assert_eq!(
            (setup.client.provider(), setup.model.as_str()),
            ("offline", OFFLINE_MODEL)
        );
    }

    #[test]
    fn a_key_picks_its_provider_and_default_model() {
        let anthropic = from_env(&env(&[("ANTHROPIC_API_KEY", "sk-ant")])).unwrap();
        assert_eq!(
            (anthropic.client.provider(), anthropic.model.as_str()),
            ("anthropic", "claude-sonnet-4-5")
        );
        let gemini = from_env(&env(&[
            ("GEMINI_API_KEY", "AIza"),
            ("LLM_MODEL", "gemini-2.5-pro"),
        ]))
        .unwrap();
        assert_eq!(
            (gemini.client.provider(), gemini.model.as_str()),
            ("gemini", "gemini-2.5-pro")
        );
    }

    #[test]
    fn a_compatible_server_needs_a_model_and_a_price() {
        let missing = from_env(&env(&[("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")])).err();
        assert_eq!(missing, Some(ConfigError::Missing { name: "LLM_MODEL" }));
        let unpriced = from_env(&env(&[
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("LLM_MODEL", "llama3.1:8b"),
        ]))
        .err();
        assert!(
            matches!(unpriced, Some(ConfigError::Invalid { name: "LLM_MODEL", ref reason }) if reason.contains("llama3.1:8b")),
            "{unpriced:?}"
        );
    }
}
