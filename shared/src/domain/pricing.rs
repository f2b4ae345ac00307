//! Prices in micro-dollars per million tokens, and the cost of a call. A price is one
//! row of the model table (`shared/data/models.json`, see `models.rs`); a model missing
//! from it is an error naming it, so a call is never priced at a silent zero.

use super::money::MicroUsd;
use super::records::TokenUsage;
use serde::Deserialize;

/// Why a price could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error(
        "no entry for model {model:?} of provider {provider:?} in the model table (checked {as_of})"
    )]
    UnknownModel {
        provider: String,
        model: String,
        as_of: String,
    },
    #[error("the model table is invalid: {0}")]
    Invalid(String),
}

/// Micro-dollars per million tokens of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub input: MicroUsd,
    pub output: MicroUsd,
    pub cache_write: MicroUsd,
    pub cache_read: MicroUsd,
}

/// Dearer rates for a whole request once its prompt passes a size, as several providers
/// bill long prompts (OpenAI above 272K tokens, Claude Haiku 5.5 above 100K).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongContext {
    pub above_prompt_tokens: u32,
    pub rates: Rates,
}

/// One model's prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    pub base: Rates,
    pub long: Option<LongContext>,
}

impl ModelPrice {
    /// The cost of `usage`, each kind of token rounded up to the next micro-dollar. The
    /// prompt (input plus cache reads and writes) decides the band for the whole request.
    pub fn cost(&self, usage: TokenUsage) -> MicroUsd {
        let prompt =
            u64::from(usage.input) + u64::from(usage.cache_read) + u64::from(usage.cache_write);
        let rates = match self.long {
            Some(long) if prompt > u64::from(long.above_prompt_tokens) => long.rates,
            _ => self.base,
        };
        MicroUsd::for_tokens(usage.input.into(), rates.input)
            + MicroUsd::for_tokens(usage.output.into(), rates.output)
            + MicroUsd::for_tokens(usage.cache_write.into(), rates.cache_write)
            + MicroUsd::for_tokens(usage.cache_read.into(), rates.cache_read)
    }
}

/// Rates as written in the table: dollar amounts as strings, read exactly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireRates {
    input: String,
    output: String,
    cache_write: String,
    cache_read: String,
}

impl WireRates {
    pub(crate) fn read(&self) -> Result<Rates, PricingError> {
        Ok(Rates {
            input: parse_dollars(&self.input)?,
            output: parse_dollars(&self.output)?,
            cache_write: parse_dollars(&self.cache_write)?,
            cache_read: parse_dollars(&self.cache_read)?,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(input: i64, output: i64) -> Rates {
        Rates {
            input: MicroUsd(input),
            output: MicroUsd(output),
            cache_write: MicroUsd(input * 5 / 4),
            cache_read: MicroUsd(input / 10),
        }
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
        // $2 in, $10 out, $2.50 cache write, $0.20 cache read per million.
        let price = ModelPrice {
            base: rates(2_000_000, 10_000_000),
            long: None,
        };
        let usage = TokenUsage {
            input: 412,
            output: 188,
            cache_write: 1536,
            cache_read: 10_000,
        };
        // 824 + 1880 + 3840 + 2000 micro-dollars.
        assert_eq!(price.cost(usage), MicroUsd(8_544));
    }

    #[test]
    fn a_prompt_past_the_long_context_line_pays_the_long_rates_for_the_whole_request() {
        let price = ModelPrice {
            base: rates(100_000, 500_000),
            long: Some(LongContext {
                above_prompt_tokens: 100_000,
                rates: rates(500_000, 2_500_000),
            }),
        };
        let at_line = TokenUsage {
            input: 90_000,
            output: 1_000,
            cache_write: 0,
            cache_read: 10_000,
        };
        let past = TokenUsage {
            input: 90_001,
            ..at_line
        };
        assert_eq!(price.cost(at_line), MicroUsd(9_000 + 500 + 100));
        assert_eq!(price.cost(past), MicroUsd(45_001 + 2_500 + 500));
    }
}
