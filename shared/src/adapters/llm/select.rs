//! Which models a process can call, from its environment. With no key at all, the offline
//! provider: every run then says it is offline.

use super::{
    AnthropicClient, GeminiClient, OFFLINE_MODEL, OfflineEmbedder, OfflineImages, OfflineLlm,
    OpenAiClient, OpenAiEmbedder, OpenAiImages, Patience,
};
use crate::config::{ConfigError, Env, Secret, optional};
use crate::crew::AgentProfiles;
use crate::domain::models::ModelTable;
use crate::domain::routing::{ModelRef, RoutingPolicy};
use crate::ports::{Embedder, ImageMaker, LlmClient};
use crate::services::gateway::{GatewayModels, GatewaySettings, Providers};
use std::sync::Arc;

/// Everything the gateway is built from, besides its stores, and the agents' profiles.
/// In `models`: every configured provider (`offline` is always there); the primary is the
/// first configured provider with its default model (or `LLM_MODEL`); it is pinned when
/// `LLM_MODEL` (or a compatible server) fixes the model; `LLM_FALLBACK` gives the
/// fallbacks.
#[derive(Clone)]
pub struct LlmSetup {
    pub models: GatewayModels,
    pub profiles: Arc<AgentProfiles>,
    pub settings: GatewaySettings,
}

fn invalid(name: &'static str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.to_string(),
    }
}

/// A data file from `path_var`, or the shipped text.
fn data_file(env: &dyn Env, path_var: &'static str) -> Result<Option<String>, ConfigError> {
    optional(env, path_var)
        .map(|path| {
            std::fs::read_to_string(&path).map_err(|e| invalid(path_var, format!("{path}: {e}")))
        })
        .transpose()
}

/// Reads every provider whose key is set:
/// - `ANTHROPIC_API_KEY` (+ `ANTHROPIC_BASE_URL`): Anthropic, default `claude-sonnet-5-5`;
/// - `OPENAI_BASE_URL` (+ optional `OPENAI_API_KEY`, `OPENAI_COMPATIBLE_NAME`): an
///   OpenAI-compatible server such as Ollama or vLLM; `LLM_MODEL` is then required;
/// - `OPENAI_API_KEY` (+ `OPENAI_API_BASE_URL`, for a proxy or regional endpoint): OpenAI
///   itself, default `gpt-6-sol` (also embeddings, `EMBEDDING_MODEL`, default
///   `text-embedding-3-small`);
/// - `GEMINI_API_KEY` (+ `GEMINI_BASE_URL`): Gemini, default `gemini-2.5-flash`;
/// - and always the offline provider, which is the primary when nothing else is set.
///
/// The first in that order is the primary. Calls are routed by `shared/data/routing.json`
/// (`ROUTING_POLICY_PATH`) over the configured providers; `LLM_MODEL` pins every call to
/// the primary provider with that model instead. `LLM_FALLBACK` (`provider/model,...`)
/// appends models to every chain. `Patience` (`LLM_CONNECT_TIMEOUT_SECS`,
/// `LLM_FIRST_BYTE_TIMEOUT_SECS`, `LLM_IDLE_TIMEOUT_SECS`, `LLM_MIN_TOKENS_PER_SEC`) bounds
/// each call by its progress,
/// `MODEL_TABLE_PATH` replaces the model table (prices and capabilities) and
/// `AGENT_PROFILES_PATH` the agents' profiles. Every model that could be called must have
/// an entry in the table, checked here.
pub fn from_env(env: &dyn Env) -> Result<LlmSetup, ConfigError> {
    let patience = Patience::from_env(env)?;
    let model = optional(env, "LLM_MODEL");
    let secret = |name: &'static str| optional(env, name).map(Secret::new);
    let http = |e: reqwest::Error| invalid("LLM_CONNECT_TIMEOUT_SECS", e);
    let mut providers = Providers::new();
    let mut defaults: Vec<ModelRef> = Vec::new();
    let mut add = |client: Arc<dyn LlmClient>, default_model: &str| {
        defaults.push(ModelRef {
            provider: client.provider().to_owned(),
            model: default_model.to_owned(),
        });
        providers.insert(client.provider().to_owned(), client);
    };
    if let Some(key) = secret("ANTHROPIC_API_KEY") {
        let base = optional(env, "ANTHROPIC_BASE_URL")
            .unwrap_or_else(|| "https://api.anthropic.com".into());
        add(
            Arc::new(AnthropicClient::new(&base, key, patience).map_err(http)?),
            "claude-sonnet-5-5",
        );
    }
    let compatible = optional(env, "OPENAI_BASE_URL");
    let openai_base =
        optional(env, "OPENAI_API_BASE_URL").unwrap_or_else(|| "https://api.openai.com/v1".into());
    if let Some(base) = &compatible {
        let name =
            optional(env, "OPENAI_COMPATIBLE_NAME").unwrap_or_else(|| "openai-compatible".into());
        let Some(model) = &model else {
            return Err(ConfigError::Missing { name: "LLM_MODEL" });
        };
        let client = OpenAiClient::compatible(&name, base, secret("OPENAI_API_KEY"), patience)
            .map_err(http)?;
        add(Arc::new(client), model);
    } else if let Some(key) = secret("OPENAI_API_KEY") {
        add(
            Arc::new(OpenAiClient::openai(&openai_base, key, patience).map_err(http)?),
            "gpt-6-sol",
        );
    }
    if let Some(key) = secret("GEMINI_API_KEY") {
        let base = optional(env, "GEMINI_BASE_URL")
            .unwrap_or_else(|| "https://generativelanguage.googleapis.com".into());
        add(
            Arc::new(GeminiClient::new(&base, key, patience).map_err(http)?),
            "gemini-2.5-flash",
        );
    }
    add(Arc::new(OfflineLlm), OFFLINE_MODEL);
    let mut primary = defaults[0].clone();
    let pinned = model.is_some() || compatible.is_some();
    if let Some(model) = model {
        primary.model = model;
    }
    let table = match data_file(env, "MODEL_TABLE_PATH")? {
        Some(text) => ModelTable::parse(&text).map_err(|e| invalid("MODEL_TABLE_PATH", e))?,
        None => ModelTable::builtin()
            .map_err(|e| invalid("MODEL_TABLE_PATH", e))?
            .clone(),
    };
    let routing = match data_file(env, "ROUTING_POLICY_PATH")? {
        Some(text) => RoutingPolicy::parse(&text),
        None => RoutingPolicy::builtin(),
    }
    .map_err(|e| invalid("ROUTING_POLICY_PATH", e))?;
    let profiles = match data_file(env, "AGENT_PROFILES_PATH")? {
        Some(text) => AgentProfiles::parse(&text, &routing),
        None => AgentProfiles::builtin(&routing),
    }
    .map_err(|e| invalid("AGENT_PROFILES_PATH", e))?;
    let fallbacks = parse_fallbacks(optional(env, "LLM_FALLBACK").as_deref(), &providers)?;
    // Refuse at start-up, not at the first call, a model the table cannot price.
    table
        .price(&primary.provider, &primary.model)
        .map_err(|e| invalid("LLM_MODEL", e))?;
    for model in &fallbacks {
        table
            .price(&model.provider, &model.model)
            .map_err(|e| invalid("LLM_FALLBACK", e))?;
    }
    for model in routing.tiers.iter().flat_map(|t| &t.chain) {
        if providers.contains_key(&model.provider) {
            table
                .price(&model.provider, &model.model)
                .map_err(|e| invalid("ROUTING_POLICY_PATH", e))?;
        }
    }
    let embedder: Arc<dyn Embedder> = match (&compatible, secret("OPENAI_API_KEY")) {
        (None, Some(key)) => {
            let model =
                optional(env, "EMBEDDING_MODEL").unwrap_or_else(|| "text-embedding-3-small".into());
            table
                .price("openai", &model)
                .map_err(|e| invalid("EMBEDDING_MODEL", e))?;
            Arc::new(OpenAiEmbedder::new(&openai_base, key, &model, patience).map_err(http)?)
        }
        _ => Arc::new(OfflineEmbedder),
    };
    // Images (the designer's logo and icon): OpenAI's Images API with an OpenAI key, else
    // the offline drawing; priced from the table like any call.
    let images: Arc<dyn ImageMaker> = match (&compatible, secret("OPENAI_API_KEY")) {
        (None, Some(key)) => {
            // gpt-image-1 was retired on 2026-10-23; its successor is the default.
            let model =
                optional(env, "IMAGE_MODEL").unwrap_or_else(|| "gpt-image-2.6-sunburst".into());
            table
                .price("openai", &model)
                .map_err(|e| invalid("IMAGE_MODEL", e))?;
            Arc::new(OpenAiImages::new(&openai_base, key, &model, patience).map_err(http)?)
        }
        _ => Arc::new(OfflineImages),
    };
    Ok(LlmSetup {
        models: GatewayModels {
            providers,
            primary,
            pinned,
            fallbacks,
            table: Arc::new(table),
            routing: Arc::new(routing),
            embedder,
            images,
        },
        profiles: Arc::new(profiles),
        settings: GatewaySettings::from_env(env, patience)?,
    })
}

/// `anthropic/claude-haiku-5-5,offline/offline-template-1`: each provider configured.
fn parse_fallbacks(
    text: Option<&str>,
    providers: &Providers,
) -> Result<Vec<ModelRef>, ConfigError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (provider, model) = entry.split_once('/').ok_or_else(|| {
                invalid("LLM_FALLBACK", format!("{entry:?} is not provider/model"))
            })?;
            if !providers.contains_key(provider) {
                return Err(invalid(
                    "LLM_FALLBACK",
                    format!("provider {provider:?} is not configured (set its key)"),
                ));
            }
            Ok(ModelRef {
                provider: provider.to_owned(),
                model: model.to_owned(),
            })
        })
        .collect()
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

    fn primary(setup: &LlmSetup) -> (&str, &str) {
        let p = &setup.models.primary;
        (p.provider.as_str(), p.model.as_str())
    }

    #[test]
    fn no_key_means_the_offline_provider() {
        let setup = from_env(&env(&[])).unwrap();
        assert_eq!(
            primary(&setup),
            (super::super::OFFLINE_PROVIDER, OFFLINE_MODEL)
        );
        assert!(!setup.models.pinned);
        assert_eq!(
            setup.models.embedder.model(),
            super::super::OFFLINE_EMBEDDING_MODEL
        );
    }

    #[test]
    fn every_key_adds_its_provider_and_the_first_is_primary() {
        let setup = from_env(&env(&[
            ("ANTHROPIC_API_KEY", "sk-ant"),
            ("GEMINI_API_KEY", "AIza"),
        ]))
        .unwrap();
        assert_eq!(primary(&setup), ("anthropic", "claude-sonnet-5-5"));
        let mut names: Vec<_> = setup.models.providers.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["anthropic", "gemini", "offline"]);
        let pinned = from_env(&env(&[
            ("GEMINI_API_KEY", "AIza"),
            ("LLM_MODEL", "gemini-2.5-pro"),
        ]))
        .unwrap();
        assert_eq!(primary(&pinned), ("gemini", "gemini-2.5-pro"));
        assert!(pinned.models.pinned);
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

    #[test]
    fn fallbacks_must_name_configured_priced_models() {
        let ok = from_env(&env(&[("LLM_FALLBACK", "offline/offline-template-1")])).unwrap();
        assert_eq!(ok.models.fallbacks.len(), 1);
        let unconfigured = from_env(&env(&[("LLM_FALLBACK", "anthropic/claude-haiku-5-5")])).err();
        assert!(
            matches!(unconfigured, Some(ConfigError::Invalid { name: "LLM_FALLBACK", ref reason }) if reason.contains("anthropic")),
            "{unconfigured:?}"
        );
        let malformed = from_env(&env(&[("LLM_FALLBACK", "gpt-6-sol")])).err();
        assert!(matches!(
            malformed,
            Some(ConfigError::Invalid {
                name: "LLM_FALLBACK",
                ..
            })
        ));
    }
}
