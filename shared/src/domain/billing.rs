//! Billing's domain: the payment provider's objects as billing reads them, what an event
//! changes, and the webhook signature check. The Stripe wire format stays in its adapter.

use super::plans::{Interval, PlanId, Plans};
use super::{MicroUsd, SubscriptionStatus, UserId};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A subscription as the provider shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
    pub status: SubscriptionStatus,
    pub cancel_at_period_end: bool,
    /// Each item's price, with its current period (prices are per item since 2025).
    pub items: Vec<SubscriptionItem>,
    pub latest_invoice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionItem {
    pub id: String,
    pub price: String,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
}

/// An invoice as the provider shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: String,
    pub customer: String,
    pub subscription: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: String,
    pub amount_paid_cents: i64,
    pub currency: String,
    pub paid_at: Option<DateTime<Utc>>,
    /// Each line's price (when it has one) and the start of the period it bills.
    pub lines: Vec<(Option<String>, DateTime<Utc>)>,
}

impl Invoice {
    /// The start of the service period the invoice pays for: its plan line's period (a
    /// renewal's new period, an upgrade's proration), else its first line's.
    pub fn service_start(&self, plans: &Plans) -> Option<DateTime<Utc>> {
        self.lines
            .iter()
            .find(|(price, _)| price.as_deref().and_then(|p| plans.by_price(p)).is_some())
            .or_else(|| self.lines.first())
            .map(|(_, start)| *start)
    }
}

/// A charge as the provider shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub id: String,
    pub customer: Option<String>,
    pub amount_refunded_cents: i64,
    pub payment_intent: Option<String>,
}

/// A subscription as we keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SubscriptionRecord {
    pub id: String,
    pub user: UserId,
    pub plan: PlanId,
    pub interval: Interval,
    pub status: SubscriptionStatus,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    pub cancel_at_period_end: bool,
    /// The metered item overage is reported on, when the subscription has one.
    pub overage_item: Option<String>,
    /// Until when a failed payment leaves the plan in place.
    pub grace_until: Option<DateTime<Utc>>,
}

impl SubscriptionRecord {
    /// The record of `sub` for `user`: its plan from its plan item's price. `None` when no
    /// item sells a plan (a subscription to something else).
    pub fn of(sub: &Subscription, user: UserId, plans: &Plans) -> Option<SubscriptionRecord> {
        let (item, plan, interval) = sub.items.iter().find_map(|item| {
            plans
                .by_price(&item.price)
                .map(|(plan, interval)| (item, plan.id.clone(), interval))
        })?;
        Some(SubscriptionRecord {
            id: sub.id.clone(),
            user,
            plan,
            interval,
            status: sub.status,
            current_period_start: item.current_period_start,
            current_period_end: item.current_period_end,
            cancel_at_period_end: sub.cancel_at_period_end,
            overage_item: sub
                .items
                .iter()
                .find(|i| i.price == plans.overage.stripe_price)
                .map(|i| i.id.clone()),
            grace_until: None,
        })
    }
}

/// What the provider's current state says to keep, for one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillingChange {
    /// The subscription as it stands (none for an event about something else).
    pub subscription: Option<Subscription>,
    /// Invoices as they stand (kept when paid).
    pub invoices: Vec<Invoice>,
    /// Charges with their refunds, and the invoice each paid.
    pub refunds: Vec<(Charge, String)>,
}

/// What a Checkout or PaymentSheet subscription is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    pub user: UserId,
    pub customer: String,
    /// The plan's licensed price, quantity 1.
    pub price: String,
    /// The metered overage price, when the plan allows overage.
    pub overage_price: Option<String>,
    pub success_url: String,
    pub cancel_url: String,
    /// Makes a retried request create nothing new.
    pub idempotency_key: String,
}

/// A page the provider hosts (Checkout, the portal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HostedPage {
    pub id: String,
    pub url: String,
}

/// A subscription waiting for its first payment, as the PaymentSheet needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetSubscription {
    pub id: String,
    /// The first payment's client secret (its PaymentIntent's).
    pub client_secret: String,
}

/// Usage reported to a billing meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterEvent {
    pub event_name: String,
    pub customer: String,
    pub value: MicroUsd,
    /// Unique per report, so the provider takes a resend once.
    pub identifier: String,
    pub timestamp: DateTime<Utc>,
}

/// What an event is about, read from its object: which customer, and what to re-fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSubject {
    /// A subscription, to re-fetch with its latest invoice.
    Subscription { customer: String, id: String },
    /// An invoice, to re-fetch with its subscription.
    Invoice { customer: String, id: String },
    /// A refunded charge: the charge and the invoice it paid.
    Charge { customer: String, id: String },
    /// A type billing does not act on.
    Ignored,
}

/// What `kind`'s `object` is about. A known type whose object lacks what it needs is
/// refused, naming the field (the provider retries; a fixed handler then processes it).
pub fn subject(kind: &str, object: &serde_json::Value) -> Result<EventSubject, String> {
    let text = |field: &str| -> Result<String, String> {
        match object.get(field) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(serde_json::Value::Object(o)) => o
                .get("id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| format!("data.object.{field} has no id")),
            _ => Err(format!("data.object.{field} is missing")),
        }
    };
    Ok(match kind {
        "checkout.session.completed" => match object.get("mode").and_then(|m| m.as_str()) {
            Some("subscription") => EventSubject::Subscription {
                customer: text("customer")?,
                id: text("subscription")?,
            },
            _ => EventSubject::Ignored,
        },
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => EventSubject::Subscription {
            customer: text("customer")?,
            id: text("id")?,
        },
        "invoice.paid" | "invoice.payment_failed" => EventSubject::Invoice {
            customer: text("customer")?,
            id: text("id")?,
        },
        "charge.refunded" => EventSubject::Charge {
            customer: text("customer")?,
            id: text("id")?,
        },
        _ => EventSubject::Ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_subject_is_read_from_its_object() {
        let object = serde_json::json!({"id": "in_1", "customer": "cus_1"});
        assert_eq!(
            subject("invoice.paid", &object),
            Ok(EventSubject::Invoice {
                customer: "cus_1".into(),
                id: "in_1".into()
            })
        );
        assert_eq!(
            subject("customer.created", &object),
            Ok(EventSubject::Ignored)
        );
        let err = subject(
            "customer.subscription.updated",
            &serde_json::json!({"id": "sub_1"}),
        );
        assert_eq!(err, Err("data.object.customer is missing".into()));
    }
}
