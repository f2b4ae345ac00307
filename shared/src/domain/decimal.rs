//! Sampling parameters as decimals that go out on the wire exactly as written.
//!
//! A provider reads `"temperature": 0.2`; an `f32` 0.2 widened to `f64` prints
//! `0.20000000298023224`. Keeping the value as the `f64` nearest to the written decimal
//! makes serde_json print the shortest text that reads back to it, which for any decimal of
//! up to 15 significant digits is the decimal as written.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A finite decimal such as a temperature. Invariant: finite, at most 15 significant
/// digits, so it serialises as written (`0.2` → `0.2`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Decimal(f64);

/// Why a text is not a decimal this type keeps exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a decimal like 0.2 (at most 15 significant digits)")]
pub struct DecimalError(pub String);

impl Decimal {
    /// `"0.2"` → 0.2; refuses what would not print back as written.
    pub fn parse(text: &str) -> Result<Decimal, DecimalError> {
        let bad = || DecimalError(text.to_owned());
        let trimmed = text.trim();
        let digits = trimmed
            .trim_start_matches('-')
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>();
        let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
        let well_formed = trimmed
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
            && trimmed.matches('.').count() <= 1
            && !digits.is_empty();
        if !well_formed || significant > 15 {
            return Err(bad());
        }
        trimmed
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Decimal)
            .ok_or_else(bad)
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rust prints the shortest text that reads back to the same f64.
        write!(f, "{}", self.0)
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A JSON number's text is parsed to the nearest f64, which prints back as written.
        let number = serde_json::Number::deserialize(deserializer)?;
        Decimal::parse(&number.to_string()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_serialise_exactly_as_written() {
        for text in ["0.2", "0.3", "0.7", "1", "0.95", "1.5", "0.05"] {
            let value = Decimal::parse(text).unwrap();
            assert_eq!(
                serde_json::to_string(&value)
                    .unwrap()
                    .trim_end_matches(".0"),
                text
            );
        }
        let read: Decimal = serde_json::from_str("0.3").unwrap();
        assert_eq!(serde_json::json!({ "t": read }).to_string(), r#"{"t":0.3}"#);
        assert_eq!(
            serde_json::to_string(&serde_json::json!({"t": 0.2_f32})).unwrap(),
            r#"{"t":0.20000000298023224}"#,
            "what an f32 would have sent"
        );
    }

    #[test]
    fn text_that_would_not_print_back_is_refused() {
        assert!(Decimal::parse("0.1234567890123456789").is_err());
        assert!(Decimal::parse("1e3").is_err());
        assert!(Decimal::parse("NaN").is_err());
        assert!(Decimal::parse("").is_err());
    }
}
