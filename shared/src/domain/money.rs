//! Money as integer micro-dollars: exact sums, no floating point in budgets or the ledger.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// An amount in micro-dollars (1 USD = 1,000,000). Never negative in stored data; the
/// arithmetic saturates rather than wrapping.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct MicroUsd(pub i64);

impl MicroUsd {
    /// Nothing.
    pub const ZERO: MicroUsd = MicroUsd(0);

    /// Whole dollars, for configuration and tests.
    pub const fn from_dollars(dollars: i64) -> Self {
        MicroUsd(dollars.saturating_mul(1_000_000))
    }

    /// Dollars as a request gives them (a JSON number), to the nearest micro-dollar; `None`
    /// for a number that is not finite or out of range. The one place a float becomes
    /// money.
    pub fn from_usd(usd: f64) -> Option<Self> {
        let micros = (usd * 1_000_000.0).round();
        (micros.is_finite() && micros.abs() < i64::MAX as f64).then_some(MicroUsd(micros as i64))
    }

    /// Cost of `tokens` at `usd_per_million` (a price as published), rounded up to the next
    /// micro-dollar so a call is never priced at zero when it cost something.
    pub fn for_tokens(tokens: u64, price: MicroUsd) -> Self {
        // price is micro-dollars per million tokens: cost = tokens * price / 1e6, rounded up.
        let product = (tokens as i128) * (price.0 as i128);
        let cost = (product + 999_999) / 1_000_000;
        MicroUsd(cost.clamp(0, i64::MAX as i128) as i64)
    }

    /// The amount left after `spent`, never below zero.
    pub fn remaining_after(self, spent: MicroUsd) -> MicroUsd {
        MicroUsd(self.0.saturating_sub(spent.0).max(0))
    }
}

impl Add for MicroUsd {
    type Output = MicroUsd;
    fn add(self, rhs: MicroUsd) -> MicroUsd {
        MicroUsd(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for MicroUsd {
    fn add_assign(&mut self, rhs: MicroUsd) {
        *self = *self + rhs;
    }
}

impl Sub for MicroUsd {
    type Output = MicroUsd;
    fn sub(self, rhs: MicroUsd) -> MicroUsd {
        MicroUsd(self.0.saturating_sub(rhs.0))
    }
}

impl std::iter::Sum for MicroUsd {
    fn sum<I: Iterator<Item = MicroUsd>>(iter: I) -> MicroUsd {
        iter.fold(MicroUsd::ZERO, Add::add)
    }
}

impl fmt::Display for MicroUsd {
    /// `$1.234567`: dollars with all six decimals, so small LLM costs stay visible.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}${}.{:06}", abs / 1_000_000, abs % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_cost_rounds_up_to_the_next_micro_dollar() {
        // $3 per million tokens, one token: 3 micro-dollars exactly.
        assert_eq!(
            MicroUsd::for_tokens(1, MicroUsd::from_dollars(3)),
            MicroUsd(3)
        );
        // $0.15 per million, one token: 0.15 micro-dollars, billed as 1.
        assert_eq!(MicroUsd::for_tokens(1, MicroUsd(150_000)), MicroUsd(1));
        assert_eq!(MicroUsd::for_tokens(0, MicroUsd(150_000)), MicroUsd::ZERO);
    }

    #[test]
    fn display_shows_six_decimals() {
        assert_eq!(MicroUsd(1_234_567).to_string(), "$1.234567");
        assert_eq!(MicroUsd(42).to_string(), "$0.000042");
    }

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        assert_eq!(MicroUsd(i64::MAX) + MicroUsd(1), MicroUsd(i64::MAX));
        assert_eq!(MicroUsd(5).remaining_after(MicroUsd(9)), MicroUsd::ZERO);
    }
}
