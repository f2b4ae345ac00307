//! Billing's configuration: the plans file, the AI share of revenue, the grace period after
//! a failed payment, and where Stripe is.

use super::{ConfigError, Env, ProcessEnv, optional};
use crate::domain::plans::Plans;
use crate::domain::pricing::parse_dollars;
use std::sync::OnceLock;
use std::time::Duration;

static PLANS: OnceLock<Result<Plans, String>> = OnceLock::new();

/// The process's plans: the file `PLANS_PATH` names, else the embedded
/// `shared/data/plans.json`. Read and checked once; every function calls this at start, so
/// a bad file stops it there, naming the problem.
pub fn plans() -> Result<&'static Plans, ConfigError> {
    let loaded = PLANS.get_or_init(|| match optional(&ProcessEnv, "PLANS_PATH") {
        None => Plans::embedded().map_err(|e| e.to_string()),
        Some(path) => std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {path}: {e}"))
            .and_then(|text| Plans::parse(&text).map_err(|e| format!("{path}: {e}"))),
    });
    loaded.as_ref().map_err(|reason| ConfigError::Invalid {
        name: "PLANS_PATH",
        reason: reason.clone(),
    })
}

/// How many tasks a user on `plan` may have in flight. Every function checks `plans()` at
/// start, so the embedded plans stand in here only in a process that never did (a tool).
pub fn tasks_in_flight(plan: &crate::domain::PlanId) -> u32 {
    match plans() {
        Ok(plans) => plans.effective(plan).tasks_in_flight,
        Err(_) => Plans::embedded()
            .map(|plans| plans.effective(plan).tasks_in_flight)
            .unwrap_or(1),
    }
}

/// What billing needs besides the plans.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// The share of an invoice's collected money that becomes AI budget, in parts per
    /// million (`AI_REVENUE_SHARE`, `0.40` by default: the seed's first rule).
    pub ai_share_ppm: u32,
    /// How long a subscriber keeps their plan after a failed payment (`BILLING_GRACE_DAYS`,
    /// 7 by default); then they are on free until a payment succeeds.
    pub grace: Duration,
    /// Stripe's API (`STRIPE_API_URL`; the local stack points it at the fake).
    pub stripe_api_url: String,
    /// The Secrets Manager secret holding `{"api_key", "webhook_secrets": [...]}`
    /// (`STRIPE_SECRET`); without it the billing routes answer 503.
    pub stripe_secret: Option<String>,
    /// Where Checkout and the portal send the user back (`BILLING_RETURN_URL`).
    pub return_url: String,
    /// The publishable key the app's PaymentSheet is set up with (`STRIPE_PUBLISHABLE_KEY`).
    pub publishable_key: Option<String>,
}

impl BillingConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let share = optional(env, "AI_REVENUE_SHARE").unwrap_or_else(|| "0.40".into());
        let ai_share_ppm = parse_dollars(share.trim())
            .ok()
            .and_then(|ppm| u32::try_from(ppm.0).ok())
            .filter(|ppm| *ppm <= 1_000_000)
            .ok_or_else(|| ConfigError::Invalid {
                name: "AI_REVENUE_SHARE",
                reason: format!("must be a share between 0 and 1 like 0.40, got {share:?}"),
            })?;
        let days = optional(env, "BILLING_GRACE_DAYS").unwrap_or_else(|| "7".into());
        let grace = days
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|d| *d <= 60)
            .ok_or_else(|| ConfigError::Invalid {
                name: "BILLING_GRACE_DAYS",
                reason: format!("must be a whole number of days from 0 to 60, got {days:?}"),
            })?;
        Ok(BillingConfig {
            ai_share_ppm,
            grace: Duration::from_secs(days_to_secs(grace)),
            stripe_api_url: optional(env, "STRIPE_API_URL")
                .unwrap_or_else(|| "https://api.stripe.com".into())
                .trim_end_matches('/')
                .to_owned(),
            stripe_secret: optional(env, "STRIPE_SECRET"),
            return_url: optional(env, "BILLING_RETURN_URL")
                .unwrap_or_else(|| "autocrew://billing".into()),
            publishable_key: optional(env, "STRIPE_PUBLISHABLE_KEY"),
        })
    }
}

fn days_to_secs(days: u64) -> u64 {
    days * 24 * 3600
}
