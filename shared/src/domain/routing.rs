//! Routing policy, as data: tiers of models from strongest to cheapest, and how far to step
//! down as the budget runs low. The shipped policy is `shared/data/routing.json`.

use super::Complexity;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The policy shipped with this build.
pub const ROUTING_JSON: &str = include_str!("../../data/routing.json");

/// A model of a provider, as the ledger and the price table name them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelRef {
    pub provider: String,
    pub model: String,
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// Which tier an agent's task uses, by its complexity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPolicy {
    pub simple: String,
    pub medium: String,
    pub complex: String,
}

impl ModelPolicy {
    pub fn tier_for(&self, complexity: Complexity) -> &str {
        match complexity {
            Complexity::Simple => &self.simple,
            Complexity::Medium => &self.medium,
            Complexity::Complex => &self.complex,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingTier {
    pub name: String,
    pub chain: Vec<ModelRef>,
}

/// Below this share of the budget left, step down this many tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downgrade {
    pub below_percent_left: u8,
    pub steps: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    #[error("the routing policy is invalid: {0}")]
    Invalid(String),
    #[error("the routing policy has no tier named {0:?}")]
    UnknownTier(String),
}

/// Tiers, strongest first, and the downgrade rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingPolicy {
    pub tiers: Vec<RoutingTier>,
    #[serde(default)]
    pub downgrade: Vec<Downgrade>,
}

/// The chosen chain and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The tier first tried (after any downgrade).
    pub tier: String,
    /// How many tiers the budget stepped down.
    pub downgraded_by: u8,
    /// Models in the order to try them.
    pub chain: Vec<ModelRef>,
}

impl RoutingPolicy {
    /// The shipped policy.
    pub fn builtin() -> Result<Self, RoutingError> {
        Self::parse(ROUTING_JSON)
    }

    /// Reads and checks a policy: at least one tier, unique names, no empty chain.
    pub fn parse(text: &str) -> Result<Self, RoutingError> {
        let policy: RoutingPolicy =
            serde_json::from_str(text).map_err(|e| RoutingError::Invalid(e.to_string()))?;
        if policy.tiers.is_empty() {
            return Err(RoutingError::Invalid("no tiers".into()));
        }
        let mut seen = HashMap::new();
        for tier in &policy.tiers {
            if seen.insert(tier.name.as_str(), ()).is_some() {
                return Err(RoutingError::Invalid(format!(
                    "tier {:?} is named twice",
                    tier.name
                )));
            }
            if tier.chain.is_empty() {
                return Err(RoutingError::Invalid(format!(
                    "tier {:?} has no models",
                    tier.name
                )));
            }
        }
        if let Some(d) = policy.downgrade.iter().find(|d| d.below_percent_left > 100) {
            return Err(RoutingError::Invalid(format!(
                "below_percent_left {} is over 100",
                d.below_percent_left
            )));
        }
        Ok(policy)
    }

    /// Fails naming the tier if `name` is not one of the policy's.
    pub fn check_tier(&self, name: &str) -> Result<(), RoutingError> {
        match self.tiers.iter().any(|t| t.name == name) {
            true => Ok(()),
            false => Err(RoutingError::UnknownTier(name.to_owned())),
        }
    }

    /// The models to try for `tier` with `percent_left` of the budget left: the tier's
    /// chain, stepped down by the strongest matching downgrade rule, followed by every
    /// cheaper tier's chain; models `available` rejects are skipped, and each model
    /// appears once.
    pub fn route(
        &self,
        tier: &str,
        percent_left: u8,
        available: impl Fn(&ModelRef) -> bool,
    ) -> Result<Route, RoutingError> {
        let start = self
            .tiers
            .iter()
            .position(|t| t.name == tier)
            .ok_or_else(|| RoutingError::UnknownTier(tier.to_owned()))?;
        let steps = self
            .downgrade
            .iter()
            .filter(|d| percent_left < d.below_percent_left)
            .map(|d| d.steps)
            .max()
            .unwrap_or(0);
        let first = (start + usize::from(steps)).min(self.tiers.len() - 1);
        let mut chain: Vec<ModelRef> = Vec::new();
        for model in self.tiers[first..].iter().flat_map(|t| &t.chain) {
            if available(model) && !chain.contains(model) {
                chain.push(model.clone());
            }
        }
        Ok(Route {
            tier: self.tiers[first].name.clone(),
            downgraded_by: u8::try_from(first - start).unwrap_or(u8::MAX),
            chain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(provider: &'static str) -> impl Fn(&ModelRef) -> bool {
        move |m| m.provider == provider
    }

    #[test]
    fn the_shipped_policy_parses() {
        let policy = RoutingPolicy::builtin().unwrap();
        let names: Vec<_> = policy.tiers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["strong", "standard", "cheap"]);
    }

    #[test]
    fn a_tier_falls_back_through_cheaper_tiers_with_the_configured_providers() {
        let policy = RoutingPolicy::builtin().unwrap();
        let route = policy.route("strong", 100, only("openai")).unwrap();
        let models: Vec<_> = route.chain.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(models, ["gpt-6-sol", "gpt-6-luna"]);
        assert_eq!((route.tier.as_str(), route.downgraded_by), ("strong", 0));
    }

    #[test]
    fn a_low_budget_steps_down() {
        let policy = RoutingPolicy::builtin().unwrap();
        let all = |_: &ModelRef| true;
        assert_eq!(policy.route("strong", 25, all).unwrap().tier, "strong");
        let low = policy.route("strong", 24, all).unwrap();
        assert_eq!((low.tier.as_str(), low.downgraded_by), ("standard", 1));
        assert_eq!(policy.route("strong", 3, all).unwrap().tier, "cheap");
        // The cheapest tier cannot step further down.
        let floor = policy.route("cheap", 0, all).unwrap();
        assert_eq!((floor.tier.as_str(), floor.downgraded_by), ("cheap", 0));
        // Each model once, even when two tiers list it.
        let haiku = floor
            .chain
            .iter()
            .filter(|m| m.model == "claude-haiku-5-5")
            .count();
        assert_eq!(haiku, 1);
    }

    #[test]
    fn bad_policies_are_refused_by_name() {
        let policy = RoutingPolicy::builtin().unwrap();
        assert_eq!(
            policy.route("turbo", 100, |_| true).unwrap_err(),
            RoutingError::UnknownTier("turbo".into())
        );
        let empty = r#"{"tiers": [{"name": "a", "chain": []}]}"#;
        assert!(
            RoutingPolicy::parse(empty)
                .unwrap_err()
                .to_string()
                .contains("\"a\" has no models")
        );
        assert!(RoutingPolicy::parse(r#"{"tiers": []}"#).is_err());
    }
}
