//! The model table: every model a call may use, with its price, what it accepts, and where
//! both were checked (`shared/data/models.json`, or an operator's file by
//! `MODEL_TABLE_PATH`). A model missing from it is refused before any call.

use super::MicroUsd;
use super::capabilities::Capabilities;
use super::pricing::{LongContext, ModelPrice, PricingError, WireRates};
use super::records::TokenUsage;
use serde::Deserialize;

/// The table shipped with this build.
pub const MODELS_JSON: &str = include_str!("../../data/models.json");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTable {
    checked: String,
    #[serde(default)]
    #[allow(dead_code)]
    notes: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    unit: Option<String>,
    models: Vec<WireEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEntry {
    provider: String,
    model: String,
    source: String,
    checked: String,
    price: WireRates,
    #[serde(default)]
    long_context: Option<WireLongContext>,
    capabilities: Capabilities,
    #[serde(default)]
    max_in_flight: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireLongContext {
    above_prompt_tokens: u32,
    #[serde(flatten)]
    rates: WireRates,
}

/// One model: who serves it, its price and capabilities, and where they were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub provider: String,
    pub model: String,
    /// The provider page the price and capabilities were checked against.
    pub source: String,
    /// When they were checked (YYYY-MM-DD).
    pub checked: String,
    pub price: ModelPrice,
    pub capabilities: Capabilities,
    /// Calls of this model in flight at once across the deployment, when it has a cap of
    /// its own (else its provider's, `LLM_MAX_CONCURRENCY_<PROVIDER>`): its rate limits
    /// allow about `output tokens a minute ÷ (60 × a stream's tokens a second)` streams.
    pub max_in_flight: Option<u32>,
}

/// Entries by provider and model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelTable {
    /// When the table as a whole was last checked.
    pub checked: String,
    entries: Vec<ModelEntry>,
}

static BUILTIN: std::sync::LazyLock<Result<ModelTable, PricingError>> =
    std::sync::LazyLock::new(|| ModelTable::parse(MODELS_JSON));

impl ModelTable {
    /// The table shipped with this build, parsed once per process.
    pub fn builtin() -> Result<&'static ModelTable, PricingError> {
        BUILTIN.as_ref().map_err(Clone::clone)
    }

    /// Reads and checks a table: every entry priced exactly, with its source and date, and
    /// no model listed twice.
    pub fn parse(json: &str) -> Result<ModelTable, PricingError> {
        let wire: WireTable =
            serde_json::from_str(json).map_err(|e| PricingError::Invalid(e.to_string()))?;
        let mut entries: Vec<ModelEntry> = Vec::with_capacity(wire.models.len());
        for e in wire.models {
            let name = format!("{}/{}", e.provider, e.model);
            let invalid = |what: &str| PricingError::Invalid(format!("{name}: {what}"));
            if e.source.trim().is_empty() || e.checked.trim().is_empty() {
                return Err(invalid(
                    "every entry needs its source and the date it was checked",
                ));
            }
            if entries
                .iter()
                .any(|x| x.provider == e.provider && x.model == e.model)
            {
                return Err(invalid("listed twice"));
            }
            let long = match &e.long_context {
                Some(l) => Some(LongContext {
                    above_prompt_tokens: l.above_prompt_tokens,
                    rates: l.rates.read()?,
                }),
                None => None,
            };
            entries.push(ModelEntry {
                price: ModelPrice {
                    base: e.price.read()?,
                    long,
                },
                provider: e.provider,
                model: e.model,
                source: e.source,
                checked: e.checked,
                capabilities: e.capabilities,
                max_in_flight: e.max_in_flight.filter(|n| *n > 0),
            });
        }
        Ok(ModelTable {
            checked: wire.checked,
            entries,
        })
    }

    /// The entry for `model`: an exact one, else the longest entry the model's name starts
    /// with (providers answer with dated names like `gpt-6-sol-2026-09-22`).
    pub fn entry(&self, provider: &str, model: &str) -> Result<&ModelEntry, PricingError> {
        self.entries
            .iter()
            .filter(|e| {
                e.provider == provider
                    && (model == e.model || model.starts_with(&format!("{}-", e.model)))
            })
            .max_by_key(|e| e.model.len())
            .ok_or_else(|| PricingError::UnknownModel {
                provider: provider.to_owned(),
                model: model.to_owned(),
                as_of: self.checked.clone(),
            })
    }

    pub fn price(&self, provider: &str, model: &str) -> Result<ModelPrice, PricingError> {
        self.entry(provider, model).map(|e| e.price)
    }

    /// The model's own cap on calls in flight, when the table gives one.
    pub fn max_in_flight(&self, provider: &str, model: &str) -> Option<u32> {
        self.entry(provider, model).ok()?.max_in_flight
    }

    pub fn capabilities(&self, provider: &str, model: &str) -> Result<&Capabilities, PricingError> {
        self.entry(provider, model).map(|e| &e.capabilities)
    }

    /// The cost of one call.
    pub fn cost(
        &self,
        provider: &str,
        model: &str,
        usage: TokenUsage,
    ) -> Result<MicroUsd, PricingError> {
        Ok(self.price(provider, model)?.cost(usage))
    }

    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::capabilities::{Reasoning, SamplingParam, StructuredOutput};
    use crate::domain::routing::RoutingPolicy;

    fn table() -> &'static ModelTable {
        ModelTable::builtin().expect("the shipped table parses")
    }

    #[test]
    fn every_routed_model_has_a_price_and_capabilities_with_a_source() {
        let routing = RoutingPolicy::builtin().unwrap();
        for model in routing.tiers.iter().flat_map(|t| &t.chain) {
            let entry = table()
                .entry(&model.provider, &model.model)
                .unwrap_or_else(|e| panic!("routing.json names {model}: {e}"));
            assert!(
                entry.source.starts_with("https://"),
                "{model}: {}",
                entry.source
            );
            assert!(entry.capabilities.max_output_tokens > 0);
        }
    }

    #[test]
    fn no_anthropic_model_accepts_sampling_parameters() {
        for entry in table()
            .entries()
            .iter()
            .filter(|e| e.provider == "anthropic")
        {
            assert!(entry.capabilities.sampling.is_empty(), "{}", entry.model);
        }
    }

    #[test]
    fn openai_reasoning_models_take_no_temperature_and_strict_schemas() {
        for entry in table().entries().iter().filter(|e| e.provider == "openai") {
            let caps = &entry.capabilities;
            if matches!(caps.reasoning, Reasoning::Effort { .. }) {
                assert!(!caps.accepts(SamplingParam::Temperature), "{}", entry.model);
                assert_eq!(
                    caps.structured_output,
                    StructuredOutput::Strict,
                    "{}",
                    entry.model
                );
                assert!(caps.strict_tools, "{}", entry.model);
            }
        }
    }

    #[test]
    fn dated_names_find_their_family_and_unknown_models_are_named() {
        let t = table();
        assert_eq!(
            t.entry("openai", "gpt-6-sol-2026-09-22").unwrap().model,
            "gpt-6-sol"
        );
        let err = t
            .cost("openai", "gpt-9-ultra", TokenUsage::default())
            .unwrap_err();
        assert!(
            matches!(&err, PricingError::UnknownModel { provider, model, .. } if provider == "openai" && model == "gpt-9-ultra")
        );
        assert!(err.to_string().contains("gpt-9-ultra") && err.to_string().contains(&t.checked));
        assert!(
            t.price("anthropic", "gpt-6-sol").is_err(),
            "entries are per provider"
        );
    }

    #[test]
    fn the_offline_provider_is_priced_at_a_stated_zero() {
        let usage = TokenUsage {
            input: 1000,
            output: 1000,
            cache_write: 0,
            cache_read: 0,
        };
        assert_eq!(
            table().cost("offline", "offline-template-1", usage),
            Ok(MicroUsd::ZERO)
        );
    }

    #[test]
    fn an_entry_without_its_source_or_capabilities_is_refused() {
        let row = |extra: &str| {
            format!(
                r#"{{"checked": "2026-12-01", "models": [{{"provider": "p", "model": "m", "checked": "2026-12-01",
                "price": {{"input": "1", "output": "1", "cache_write": "0", "cache_read": "0"}}{extra}}}]}}"#
            )
        };
        let caps = r#", "capabilities": {"context_window": 10, "max_output_tokens": 5}"#;
        assert!(ModelTable::parse(&row(&format!(r#", "source": "https://x"{caps}"#))).is_ok());
        assert!(ModelTable::parse(&row(caps)).is_err(), "no source");
        assert!(
            ModelTable::parse(&row(r#", "source": "https://x""#)).is_err(),
            "no capabilities"
        );
    }
}
