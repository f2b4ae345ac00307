//! Prices, from the dated table in `shared/data/prices.json`, and the cost of a call in
//! integer micro-dollars. A model missing from the table is an error naming it: a call is
//! never priced at a silent zero.

use super::money::MicroUsd;
use super::records::TokenUsage;
use serde::Deserialize;

/// The table shipped with this build.
pub const PRICES_JSON: &str = include_str!("../../data/prices.json");

/// Why a price could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error(
        "no price for model {model:?} of provider {provider:?} in the price table (as of {as_of})"
    )]
    UnknownModel {
        provider: String,
        model: String,
        as_of: String,
    },
    #[error("the price table is invalid: {0}")]
    Invalid(String),
}

/// One model's prices, in micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    pub input: MicroUsd,
    pub output: MicroUsd,
    pub cache_write: MicroUsd,
    pub cache_read: MicroUsd,
}

impl ModelPrice {
    /// The cost of `usage`, each kind of token rounded up to the next micro-dollar.
    pub fn cost(&self, usage: TokenUsage) -> MicroUsd {
        MicroUsd::for_tokens(usage.input.into(), self.input)
            + MicroUsd::for_tokens(usage.output.into(), self.output)
            + MicroUsd::for_tokens(usage.cache_write.into(), self.cache_write)
            + MicroUsd::for_tokens(usage.cache_read.into(), self.cache_read)
    }
}

#[derive(Deserialize)]
struct WireTable {
    as_of: String,
    models: Vec<WireRow>,
}

#[derive(Deserialize)]
struct WireRow {
    provider: String,
    model: String,
    input: String,
    output: String,
    cache_write: String,
    cache_read: String,
}

/// Prices by provider and model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    pub as_of: String,
    rows: Vec<(String, String, ModelPrice)>,
}

/// `"2.50"` dollars as micro-dollars, exactly (no floating point).
pub fn parse_dollars(text: &str) -> Result<MicroUsd, PricingError> {
    let invalid = || PricingError::Invalid(format!("{text:?} is not a dollar amount like 2.50"));
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if whole.is_empty()
        || fraction.len() > 6
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let whole: i64 = whole.parse().map_err(|_| invalid())?;
    let fraction: i64 = format!("{fraction:0<6}").parse().map_err(|_| invalid())?;
    whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(fraction))
        .map(MicroUsd)
        .ok_or_else(invalid)
}

static BUILTIN: std::sync::LazyLock<Result<PriceTable, PricingError>> =
    std::sync::LazyLock::new(|| PriceTable::parse(PRICES_JSON));

impl PriceTable {
    /// The table shipped with this build, parsed once per process.
    pub fn builtin() -> Result<&'static PriceTable, PricingError> {
        BUILTIN.as_ref().map_err(Clone::clone)
    }

    pub fn parse(json: &str) -> Result<PriceTable, PricingError> {
        let wire: WireTable =
            serde_json::from_str(json).map_err(|e| PricingError::Invalid(e.to_string()))?;
        let rows = wire
            .models
            .into_iter()
            .map(|r| {
                let price = ModelPrice {
                    input: parse_dollars(&r.input)?,
                    output: parse_dollars(&r.output)?,
                    cache_write: parse_dollars(&r.cache_write)?,
                    cache_read: parse_dollars(&r.cache_read)?,
                };
                Ok((r.provider, r.model, price))
            })
            .collect::<Result<_, PricingError>>()?;
        Ok(PriceTable {
            as_of: wire.as_of,
            rows,
        })
    }

    /// The price of `model`: an exact entry, else the longest entry the model's name starts
    /// with (providers answer with dated names like `gpt-4o-2024-08-06`).
    pub fn price(&self, provider: &str, model: &str) -> Result<ModelPrice, PricingError> {
        self.rows
            .iter()
            .filter(|(p, m, _)| {
                p == provider && (model == m || model.starts_with(&format!("{m}-")))
            })
            .max_by_key(|(_, m, _)| m.len())
            .map(|(_, _, price)| *price)
            .ok_or_else(|| PricingError::UnknownModel {
                provider: provider.to_owned(),
                model: model.to_owned(),
                as_of: self.as_of.clone(),
            })
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> &'static PriceTable {
        PriceTable::builtin().expect("the shipped table parses")
    }

    #[test]
    fn dollar_amounts_parse_exactly() {
        assert_eq!(parse_dollars("2.50"), Ok(MicroUsd(2_500_000)));
        assert_eq!(parse_dollars("0.075"), Ok(MicroUsd(75_000)));
        assert_eq!(parse_dollars("0.125"), Ok(MicroUsd(125_000)));
        assert_eq!(parse_dollars("10"), Ok(MicroUsd(10_000_000)));
        assert!(parse_dollars("1.2345678").is_err());
        assert!(parse_dollars("-1").is_err());
        assert!(parse_dollars("1e3").is_err());
    }

    #[test]
    fn a_call_costs_each_kind_of_token_at_its_own_rate() {
        // Sonnet 4.5: $3 in, $15 out, $3.75 cache write, $0.30 cache read per million.
        let usage = TokenUsage {
            input: 412,
            output: 188,
            cache_write: 1536,
            cache_read: 10_000,
        };
        let cost = table()
            .cost("anthropic", "claude-sonnet-4-5-20250929", usage)
            .unwrap();
        // 1236 + 2820 + 5760 + 3000 micro-dollars.
        assert_eq!(cost, MicroUsd(12_816));
    }

    #[test]
    fn dated_model_names_find_their_family_and_the_longest_match_wins() {
        let t = table();
        assert_eq!(
            t.price("openai", "gpt-4o-2024-08-06").unwrap().input,
            MicroUsd(2_500_000)
        );
        assert_eq!(
            t.price("openai", "gpt-4o-mini-2024-07-18").unwrap().input,
            MicroUsd(150_000)
        );
        assert_eq!(
            t.price("gemini", "gemini-2.5-flash-lite").unwrap().output,
            MicroUsd(400_000)
        );
    }

    #[test]
    fn an_unknown_model_is_an_error_naming_provider_and_model_never_a_zero() {
        let err = table()
            .cost("openai", "gpt-9-ultra", TokenUsage::default())
            .unwrap_err();
        assert!(
            matches!(&err, PricingError::UnknownModel { provider, model, .. } if provider == "openai" && model == "gpt-9-ultra")
        );
        assert!(err.to_string().contains("gpt-9-ultra") && err.to_string().contains("2026-11-25"));
        assert!(
            table().price("anthropic", "gpt-4o").is_err(),
            "prices are per provider"
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
}
