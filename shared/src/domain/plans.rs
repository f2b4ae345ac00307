//! The plans a user can be on, as data: `shared/data/plans.json`, or an operator's file
//! (`PLANS_PATH`, read by `config::plans`). A plan names its Stripe prices, how its AI budget
//! is made, how many tasks may run at once, and its features. Which plan a user is on
//! follows their Stripe subscription (`services::billing`); everyone else is on `free`.

use super::money::MicroUsd;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The embedded plans.
pub const PLANS_JSON: &str = include_str!("../../data/plans.json");

/// A plan's id (`free`, `indie`), as `plans.json` names it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, example = "indie")]
pub struct PlanId(pub String);

impl PlanId {
    /// The plan everyone without a live subscription is on.
    pub const FREE: &'static str = "free";

    /// The free plan's id.
    pub fn free() -> Self {
        PlanId(Self::FREE.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_free(&self) -> bool {
        self.0 == Self::FREE
    }
}

impl From<&str> for PlanId {
    fn from(id: &str) -> Self {
        PlanId(id.to_owned())
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How often a subscription is charged.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    #[default]
    Month,
    Year,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }

    /// `month` or `year`.
    pub fn parse(text: &str) -> Option<Interval> {
        match text {
            "month" => Some(Interval::Month),
            "year" => Some(Interval::Year),
            _ => None,
        }
    }
}

/// Where a period's included AI budget comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncludedAiBudget {
    /// A share (`AI_REVENUE_SHARE`) of the money the period's invoices collected, net of
    /// refunds: AI cost stays under that share of revenue by construction.
    RevenueShare,
    /// Nothing beyond the one-time trial credit.
    None,
}

/// A plan's Stripe prices: licensed, quantity 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StripePrices {
    pub monthly: String,
    pub yearly: String,
}

/// One plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub id: PlanId,
    pub name: String,
    /// List prices in dollars (`"99"`), as Stripe charges them.
    pub monthly_usd: String,
    pub yearly_usd: String,
    /// `null` for a plan nobody pays for.
    pub stripe_prices: Option<StripePrices>,
    pub included_ai_budget: IncludedAiBudget,
    /// Whether a subscriber may opt in to AI spend past the included budget.
    pub overage: bool,
    /// How many agent tasks of one user may be queued or running at once.
    pub tasks_in_flight: u32,
    pub features: Vec<String>,
}

impl Plan {
    /// The list price for one `interval`.
    pub fn price(&self, interval: Interval) -> MicroUsd {
        let text = match interval {
            Interval::Month => &self.monthly_usd,
            Interval::Year => &self.yearly_usd,
        };
        dollars(text).unwrap_or(MicroUsd::ZERO)
    }

    /// The Stripe price for `interval`, if the plan is sold.
    pub fn stripe_price(&self, interval: Interval) -> Option<&str> {
        self.stripe_prices.as_ref().map(|p| match interval {
            Interval::Month => p.monthly.as_str(),
            Interval::Year => p.yearly.as_str(),
        })
    }
}

/// What AI spend past the included budget is metered as, and priced at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OveragePricing {
    /// The Stripe Billing Meter's `event_name`; each event's `value` is micro-dollars.
    pub meter_event_name: String,
    /// The metered price every paid subscription carries besides its plan's price.
    pub stripe_price: String,
    /// Dollars invoiced per dollar of AI spend past the budget.
    pub usd_per_ai_usd: String,
}

/// Every plan, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plans {
    #[serde(default)]
    pub notes: Vec<String>,
    pub currency: String,
    pub overage: OveragePricing,
    pub plans: Vec<Plan>,
}

/// Why a plans file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plans: {0}")]
pub struct PlansError(pub String);

impl Plans {
    /// The plans in `text` (JSON), checked: unique ids, a `free` plan nobody pays for,
    /// paid plans with Stripe prices and a positive price, prices named once, dollars that
    /// parse, at least one task in flight.
    pub fn parse(text: &str) -> Result<Plans, PlansError> {
        let plans: Plans = serde_json::from_str(text).map_err(|e| PlansError(e.to_string()))?;
        if plans.currency != "usd" {
            return Err(PlansError(format!(
                "currency must be usd (budgets are kept in US dollars), got {:?}",
                plans.currency
            )));
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut prices = std::collections::BTreeSet::from([plans.overage.stripe_price.as_str()]);
        dollars(&plans.overage.usd_per_ai_usd)
            .filter(|p| p.0 > 0)
            .ok_or_else(|| PlansError("overage.usd_per_ai_usd must be a positive amount".into()))?;
        for plan in &plans.plans {
            let id = plan.id.as_str();
            if !ids.insert(id) {
                return Err(PlansError(format!("plan {id:?} is named twice")));
            }
            for (field, text) in [
                ("monthly_usd", &plan.monthly_usd),
                ("yearly_usd", &plan.yearly_usd),
            ] {
                if dollars(text).is_none() {
                    return Err(PlansError(format!(
                        "plan {id:?}: {field} must be dollars like \"99\" or \"9.50\", got {text:?}"
                    )));
                }
            }
            if plan.tasks_in_flight == 0 {
                return Err(PlansError(format!(
                    "plan {id:?}: tasks_in_flight must be at least 1"
                )));
            }
            match (&plan.stripe_prices, plan.id.is_free()) {
                (Some(_), true) => {
                    return Err(PlansError("plan \"free\" cannot have Stripe prices".into()));
                }
                (None, false) => {
                    return Err(PlansError(format!("plan {id:?} needs stripe_prices")));
                }
                (Some(p), false) => {
                    if plan.price(Interval::Month).0 <= 0 || plan.price(Interval::Year).0 <= 0 {
                        return Err(PlansError(format!(
                            "plan {id:?}: a paid plan's prices must be above zero"
                        )));
                    }
                    for price in [p.monthly.as_str(), p.yearly.as_str()] {
                        if !prices.insert(price) {
                            return Err(PlansError(format!(
                                "Stripe price {price:?} is named twice"
                            )));
                        }
                    }
                }
                (None, true) => {}
            }
        }
        if !ids.contains(PlanId::FREE) {
            return Err(PlansError("there must be a plan \"free\"".into()));
        }
        Ok(plans)
    }

    /// The embedded plans.
    pub fn embedded() -> Result<Plans, PlansError> {
        Self::parse(PLANS_JSON)
    }

    /// The plan named `id`.
    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id.as_str() == id)
    }

    /// The plan named `id`, or `free` for a plan the operator has since removed (so a
    /// user is never left without limits).
    pub fn effective(&self, id: &PlanId) -> &Plan {
        self.get(id.as_str())
            .or_else(|| self.get(PlanId::FREE))
            .unwrap_or(&self.plans[0])
    }

    /// The plan and interval a Stripe price sells.
    pub fn by_price(&self, price: &str) -> Option<(&Plan, Interval)> {
        self.plans.iter().find_map(|plan| {
            let prices = plan.stripe_prices.as_ref()?;
            if prices.monthly == price {
                Some((plan, Interval::Month))
            } else if prices.yearly == price {
                Some((plan, Interval::Year))
            } else {
                None
            }
        })
    }

    /// Each plan's id and tasks in flight, as a query takes them (two arrays).
    pub fn tasks_in_flight(&self) -> (Vec<String>, Vec<i64>) {
        self.plans
            .iter()
            .map(|p| (p.id.0.clone(), i64::from(p.tasks_in_flight)))
            .unzip()
    }
}

/// Dollars as text (`"99"`, `"2.50"`), exactly; `None` for anything else.
fn dollars(text: &str) -> Option<MicroUsd> {
    super::pricing::parse_dollars(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_plans_check_and_sell_each_price_once() {
        let plans = Plans::embedded().unwrap();
        let ids: Vec<_> = plans.plans.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["free", "solo", "indie", "team", "agency"]);
        let (indie, interval) = plans.by_price("price_autocrew_indie_yearly").unwrap();
        assert_eq!((indie.id.as_str(), interval), ("indie", Interval::Year));
        assert_eq!(indie.price(Interval::Month), MicroUsd::from_dollars(99));
        assert!(plans.by_price(&plans.overage.stripe_price).is_none());
        assert_eq!(plans.effective(&PlanId::from("gone")).id.as_str(), "free");
    }

    #[test]
    fn a_plans_file_that_would_mislead_is_refused_naming_why() {
        let broken = PLANS_JSON.replace("\"monthly_usd\": \"29\"", "\"monthly_usd\": \"29,00\"");
        let err = Plans::parse(&broken).unwrap_err();
        assert!(
            err.0.contains("solo") && err.0.contains("monthly_usd"),
            "{err}"
        );
        let twice = PLANS_JSON.replace("price_autocrew_solo_yearly", "price_autocrew_solo_monthly");
        assert!(Plans::parse(&twice).unwrap_err().0.contains("named twice"));
        let no_free = PLANS_JSON.replace("\"id\": \"free\"", "\"id\": \"gratis\"");
        assert!(
            Plans::parse(&no_free)
                .unwrap_err()
                .0
                .contains("needs stripe_prices")
        );
    }
}
