//! Billing: the caller's plan, revenue and AI spend (`GET /billing`); subscribing on the
//! web (Checkout) or in the app (PaymentSheet); the Customer Portal; and Stripe's webhook.

use crate::error::json_response;
use crate::request::{caller, json_body};
use crate::{ApiError, ApiState};
use autocrew_shared::domain::billing::{CheckoutRequest, HostedPage, SubscriptionRecord};
use autocrew_shared::domain::plans::{Interval, Plan, PlanId};
use autocrew_shared::domain::pricing::parse_dollars;
use autocrew_shared::domain::{MicroUsd, SubscriptionStatus, UserId};
use autocrew_shared::ports::{BudgetStore, PaymentError, ProjectStore};
use autocrew_shared::services::Billing;
use autocrew_shared::services::billing::{CustomerError, WebhookError};
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

/// The most a subscriber may allow past their included budget in one period.
pub(crate) const MAX_OVERAGE_CAP: MicroUsd = MicroUsd::from_dollars(10_000);

/// The caller's billing as it stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BillingAnswer {
    pub plan: PlanId,
    pub plan_name: String,
    /// The live subscription, if any.
    pub subscription: Option<SubscriptionRecord>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// What the period's invoices collected, net of refunds.
    pub revenue_cents: i64,
    pub revenue: String,
    pub ai_spend_micro_usd: MicroUsd,
    /// AI spend as a share of the period's revenue (`null` with no revenue).
    pub spend_share_of_revenue: Option<f64>,
    /// The share the included budget is held to (0.40).
    pub target_share: f64,
    /// The period's AI budget and its parts.
    pub ai_budget_micro_usd: MicroUsd,
    pub ai_budget_left_micro_usd: MicroUsd,
    pub included_micro_usd: MicroUsd,
    pub trial_left_micro_usd: MicroUsd,
    /// The overage the caller allows (`null`: none; the budget is a hard stop).
    pub overage_cap_micro_usd: Option<MicroUsd>,
    /// Spend past the included budget and the trial so far, metered to Stripe.
    pub overage_micro_usd: MicroUsd,
    /// Every plan, for choosing one.
    pub plans: Vec<Plan>,
}

/// A plan to subscribe to.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Subscribe {
    /// A plan id from `GET /billing` (`indie`).
    #[schema(min_length = 1, max_length = 40)]
    pub plan: String,
    /// Billed monthly (the default) or yearly.
    #[serde(default)]
    pub interval: Interval,
}

/// What the Stripe React Native SDK's PaymentSheet needs for the subscription's first
/// payment (`initPaymentSheet`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PaymentSheet {
    pub customer: String,
    pub ephemeral_key: String,
    /// The first payment's client secret.
    pub client_secret: String,
    pub subscription_id: String,
    pub publishable_key: Option<String>,
}

fn money_cents(cents: i64) -> String {
    format!("${}.{:02}", cents / 100, cents.rem_euclid(100))
}

fn payments_failed(e: PaymentError) -> ApiError {
    match e {
        PaymentError::Unavailable(detail) => {
            tracing::warn!(error = %detail, "Stripe is unavailable");
            ApiError::Unavailable(
                "the payment provider is unavailable; nothing was charged, send the request again in a minute".into(),
            )
        }
        other => ApiError::Internal(Box::new(other)),
    }
}

fn not_set_up() -> ApiError {
    ApiError::Unavailable("billing is not set up on this stack".into())
}

impl From<CustomerError> for ApiError {
    fn from(e: CustomerError) -> Self {
        match e {
            CustomerError::Payments(e) => payments_failed(e),
            CustomerError::Store(e) => e.into(),
            CustomerError::NotSetUp => not_set_up(),
        }
    }
}

/// `user`'s live subscription: the latest trialing, active or in-grace one.
pub(crate) async fn live(
    billing: &Billing,
    user: UserId,
) -> Result<Option<SubscriptionRecord>, ApiError> {
    let now = Utc::now();
    Ok(billing
        .store
        .subscriptions(user)
        .await?
        .into_iter()
        .find(|s| match s.status {
            SubscriptionStatus::Active | SubscriptionStatus::Trialing => true,
            SubscriptionStatus::PastDue => s.grace_until.is_none_or(|g| g > now),
            _ => false,
        }))
}

/// `GET /billing`
pub async fn get_billing(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let answer = billing_of((&state.billing, &*state.projects, &*state.budgets), user).await?;
    Ok(json_response(200, &answer))
}

pub(crate) async fn billing_of(
    (billing, projects, budgets): (&Billing, &dyn ProjectStore, &dyn BudgetStore),
    user: UserId,
) -> Result<BillingAnswer, ApiError> {
    let plan = projects.user(user).await?.plan;
    let period = budgets.standing(user).await?;
    let revenue_cents = billing.store.revenue_cents(user).await?;
    let share = |spent: MicroUsd| {
        (revenue_cents > 0).then(|| spent.0 as f64 / (revenue_cents as f64 * 10_000.0))
    };
    Ok(BillingAnswer {
        plan_name: billing.plans.effective(&plan).name.clone(),
        plan,
        subscription: live(billing, user).await?,
        period_start: period.starts,
        period_end: period.ends,
        revenue_cents,
        revenue: money_cents(revenue_cents),
        ai_spend_micro_usd: period.spent,
        spend_share_of_revenue: share(period.spent),
        target_share: f64::from(billing.config.ai_share_ppm) / 1_000_000.0,
        ai_budget_micro_usd: period.limit(),
        ai_budget_left_micro_usd: period.left(),
        included_micro_usd: period.included,
        trial_left_micro_usd: period.trial_left,
        overage_cap_micro_usd: billing.store.overage_cap(user).await?,
        overage_micro_usd: period.overage(),
        plans: billing.plans.plans.clone(),
    })
}

/// The subscription `ask` names for `user`, checked: a sold plan they are not on yet.
async fn subscription_asked(
    state: &ApiState,
    user: UserId,
    ask: &Subscribe,
    kind: &str,
) -> Result<CheckoutRequest, ApiError> {
    let billing = &state.billing;
    let plans = billing.plans;
    let Some(plan) = plans.get(&ask.plan) else {
        let known: Vec<_> = plans.plans.iter().map(|p| p.id.as_str()).collect();
        return Err(ApiError::Unprocessable(format!(
            "there is no plan {:?}; the plans are {}",
            ask.plan,
            known.join(", ")
        )));
    };
    let Some(price) = plan.stripe_price(ask.interval) else {
        return Err(ApiError::Unprocessable(format!(
            "{} is not sold: it needs no payment",
            plan.id
        )));
    };
    if let Some(current) = live(billing, user).await? {
        return Err(ApiError::Conflict(match current.plan == plan.id {
            true => format!("you are already on {}", plan.id),
            false => format!(
                "you are on {}; change plans in the Customer Portal (POST /billing/portal)",
                current.plan
            ),
        }));
    }
    billing.payments.as_ref().ok_or_else(not_set_up)?;
    let email = state.projects.user(user).await?.email;
    let customer = billing.customer(user, &email).await?;
    let return_url = &billing.config.return_url;
    let separator = if return_url.contains('?') { '&' } else { '?' };
    Ok(CheckoutRequest {
        user,
        customer,
        price: price.to_owned(),
        overage_price: plan.overage.then(|| plans.overage.stripe_price.clone()),
        success_url: format!(
            "{return_url}{separator}checkout=success&session_id={{CHECKOUT_SESSION_ID}}"
        ),
        cancel_url: format!("{return_url}{separator}checkout=cancelled"),
        // A retry within ten minutes gets the same session or subscription back.
        idempotency_key: format!(
            "autocrew-{kind}-{user}-{price}-{}",
            Utc::now().timestamp() / 600
        ),
    })
}

/// `POST /billing/checkout {"plan", "interval"}`: a Stripe Checkout page for the plan.
pub async fn checkout(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let ask: Subscribe = json_body(request)?;
    let checkout = subscription_asked(state, user, &ask, "checkout").await?;
    let payments = state.billing.payments.as_ref().ok_or_else(not_set_up)?;
    let page = payments
        .checkout(&checkout)
        .await
        .map_err(payments_failed)?;
    Ok(json_response(201, &page))
}

/// `POST /billing/payment-sheet {"plan", "interval"}`: what the app's PaymentSheet needs
/// to pay the first invoice of a subscription that starts once paid.
pub async fn payment_sheet(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let ask: Subscribe = json_body(request)?;
    let asked = subscription_asked(state, user, &ask, "sheet").await?;
    let payments = state.billing.payments.as_ref().ok_or_else(not_set_up)?;
    let subscription = payments
        .incomplete_subscription(&asked)
        .await
        .map_err(payments_failed)?;
    let ephemeral_key = payments
        .ephemeral_key(&asked.customer)
        .await
        .map_err(payments_failed)?;
    Ok(json_response(
        201,
        &PaymentSheet {
            customer: asked.customer,
            ephemeral_key,
            client_secret: subscription.client_secret,
            subscription_id: subscription.id,
            publishable_key: state.billing.config.publishable_key.clone(),
        },
    ))
}

/// `POST /billing/portal`: a Customer Portal page (change plan, cancel, payment methods,
/// invoices).
pub async fn portal(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let payments = state.billing.payments.as_ref().ok_or_else(not_set_up)?;
    let Some(customer) = state.billing.store.customer(user).await? else {
        return Err(ApiError::Conflict(
            "you have no billing account yet; subscribe first (POST /billing/checkout)".into(),
        ));
    };
    let page: HostedPage = payments
        .portal(&customer, &state.billing.config.return_url)
        .await
        .map_err(payments_failed)?;
    Ok(json_response(201, &page))
}

/// `POST /webhooks/stripe`: public; Stripe's signature is the credential.
pub async fn stripe_webhook(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let payload: &[u8] = match request.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    };
    let signature = request
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    match state.billing.webhook(signature, payload).await {
        Ok(outcome) => Ok(json_response(200, &outcome)),
        Err(WebhookError::Signature(e)) => Err(ApiError::bad("Stripe-Signature", e.to_string())),
        Err(WebhookError::Unreadable(e)) => Err(ApiError::bad("body", e)),
        Err(WebhookError::NotSetUp) => Err(not_set_up()),
        Err(WebhookError::Apply(e)) => match e {
            autocrew_shared::ports::ApplyError::Payments(e) => Err(payments_failed(e)),
            autocrew_shared::ports::ApplyError::Store(e) => Err(e.into()),
        },
    }
}

/// The overage cap `text` asks for (`"25"`, `null` to stop), checked: a paid plan that
/// allows overage, at most `MAX_OVERAGE_CAP`.
pub(crate) async fn overage_cap_asked(
    billing: &Billing,
    user: UserId,
    text: Option<&str>,
) -> Result<Option<MicroUsd>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let cap = parse_dollars(text.trim())
        .ok()
        .filter(|c| c.0 > 0 && *c <= MAX_OVERAGE_CAP)
        .ok_or_else(|| {
            ApiError::bad(
                "overage_cap_usd",
                format!("must be dollars above 0 and at most {MAX_OVERAGE_CAP}, like \"25\", or null to turn overage off"),
            )
        })?;
    let allowed = match live(billing, user).await? {
        Some(sub) => billing.plans.effective(&sub.plan).overage && sub.overage_item.is_some(),
        None => false,
    };
    if !allowed {
        return Err(ApiError::Conflict(
            "overage needs a paid plan that allows it; subscribe first (POST /billing/checkout)"
                .into(),
        ));
    }
    Ok(Some(cap))
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::Spec;

    pub fn get_billing() -> Spec {
        Spec::new("The caller's plan, the period's revenue received, AI spend and its share of revenue, the AI budget left and the overage so far, with every plan.")
            .reply::<BillingAnswer>(200)
    }

    pub fn checkout() -> Spec {
        Spec::new("A Stripe Checkout page for subscribing to a plan (one Stripe customer per user). 409 when already subscribed; 422 for a plan that does not exist or is not sold; 503 when Stripe is unavailable (nothing is charged: send it again).")
            .body::<Subscribe>()
            .reply::<HostedPage>(201)
    }

    pub fn payment_sheet() -> Spec {
        Spec::new("What the app's Stripe PaymentSheet needs to pay a new subscription's first invoice: the customer, an ephemeral key and the payment's client secret.")
            .body::<Subscribe>()
            .reply::<PaymentSheet>(201)
    }

    pub fn portal() -> Spec {
        Spec::new("A Stripe Customer Portal page: change plan, cancel, payment methods, invoices.")
            .reply::<HostedPage>(201)
    }

    pub fn stripe_webhook() -> Spec {
        Spec::new("Stripe's events, verified by their Stripe-Signature and applied once each. 400 for a missing, stale or forged signature; 200 for an event applied before or of a type billing ignores.")
            .body::<serde_json::Value>()
            .reply::<autocrew_shared::services::billing::WebhookOutcome>(200)
    }
}
