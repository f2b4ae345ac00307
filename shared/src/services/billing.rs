//! Billing: Stripe's webhooks kept as subscriptions and revenue, customers made once, and
//! overage reported to Stripe's meters. The AI budget itself is computed where it is
//! enforced, in the budget store (migration 0028).

use crate::config::BillingConfig;
use crate::domain::billing::{BillingChange, EventSubject, MeterEvent, subject};
use crate::domain::signature::{self, SignatureError};
use crate::domain::{Plans, UserId};
use crate::ports::{
    Applied, ApplyError, BillingStore, BillingTerms, PaymentError, Payments, ReceivedEvent,
    StoreError,
};
use chrono::{TimeZone, Utc};
use serde::Deserialize;
use std::sync::Arc;

/// The Stripe secret's fields (Secrets Manager, `STRIPE_SECRET`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeKeys {
    pub api_key: String,
    /// The webhook endpoint's signing secrets: one, or two while it is rotated.
    pub webhook_secrets: Vec<String>,
}

/// Billing's parts: where it keeps things, Stripe (when set up), the plans and the terms.
#[derive(Clone)]
pub struct Billing {
    pub store: Arc<dyn BillingStore>,
    /// `None` when the stack has no Stripe secret: the billing routes answer 503.
    pub payments: Option<Arc<dyn Payments>>,
    pub webhook_secrets: Arc<Vec<String>>,
    pub plans: &'static Plans,
    pub config: BillingConfig,
}

/// Why a webhook delivery was not processed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Not signed by Stripe with one of our secrets (400: Stripe stops after its retries).
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Signed, but not an event we can read (400).
    #[error("the event cannot be read: {0}")]
    Unreadable(String),
    /// Stripe or the database failed: a 5xx, so Stripe delivers it again.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("billing is not set up on this stack (no STRIPE_SECRET)")]
    NotSetUp,
}

/// What a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct WebhookOutcome {
    pub event: String,
    /// Processed before: nothing changed.
    pub duplicate: bool,
    /// What changed, or why nothing did.
    pub outcome: String,
}

#[derive(Deserialize)]
struct EventEnvelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: serde_json::Value,
}

impl Billing {
    /// Billing without Stripe (until `payments` is set): its routes answer 503.
    pub fn new(store: Arc<dyn BillingStore>, plans: &'static Plans, config: BillingConfig) -> Self {
        Billing {
            store,
            payments: None,
            webhook_secrets: Arc::new(Vec::new()),
            plans,
            config,
        }
    }

    fn terms(&self) -> BillingTerms {
        BillingTerms {
            plans: self.plans,
            ai_share_ppm: self.config.ai_share_ppm,
            grace: self.config.grace,
        }
    }

    /// Stripe, or 503's reason.
    pub fn payments(&self) -> Result<&Arc<dyn Payments>, WebhookError> {
        self.payments.as_ref().ok_or(WebhookError::NotSetUp)
    }

    /// Verifies and applies one delivery: each event once, by its id, with the state
    /// Stripe shows now (so the order deliveries arrive in never matters).
    pub async fn webhook(
        &self,
        signature: Option<&str>,
        payload: &[u8],
    ) -> Result<WebhookOutcome, WebhookError> {
        let payments = self.payments()?.clone();
        signature::verify(signature, payload, &self.webhook_secrets, Utc::now())?;
        let envelope: EventEnvelope =
            serde_json::from_slice(payload).map_err(|e| WebhookError::Unreadable(e.to_string()))?;
        let outcome = |duplicate, outcome: String| WebhookOutcome {
            event: envelope.id.clone(),
            duplicate,
            outcome,
        };
        let subject =
            subject(&envelope.kind, &envelope.data.object).map_err(WebhookError::Unreadable)?;
        let customer = match &subject {
            EventSubject::Ignored => {
                return Ok(outcome(false, format!("ignored: {}", envelope.kind)));
            }
            EventSubject::Subscription { customer, .. }
            | EventSubject::Invoice { customer, .. }
            | EventSubject::Charge { customer, .. } => customer.clone(),
        };
        if self
            .store
            .seen(&envelope.id)
            .await
            .map_err(ApplyError::from)?
        {
            return Ok(outcome(true, "processed before".into()));
        }
        let event = ReceivedEvent {
            id: envelope.id.clone(),
            kind: envelope.kind.clone(),
            created: Utc
                .timestamp_opt(envelope.created, 0)
                .single()
                .unwrap_or_else(Utc::now),
        };
        let fetch = || -> futures::future::BoxFuture<'_, Result<BillingChange, PaymentError>> {
            Box::pin(current_state(&*payments, &subject))
        };
        match self
            .store
            .apply(&event, &customer, self.terms(), &fetch)
            .await?
        {
            Applied::Done(done) => Ok(outcome(false, done)),
            Applied::Duplicate => Ok(outcome(true, "processed before".into())),
        }
    }

    /// `user`'s Stripe customer, made once: a customer made by a request whose answer was
    /// lost is found again by the same idempotency key.
    pub async fn customer(&self, user: UserId, email: &str) -> Result<String, CustomerError> {
        if let Some(customer) = self.store.customer(user).await? {
            return Ok(customer);
        }
        let payments = self.payments.as_ref().ok_or(CustomerError::NotSetUp)?;
        let made = payments.create_customer(user, email).await?;
        Ok(self.store.keep_customer(user, &made).await?)
    }

    /// Reports each paid period's overage not yet reported as meter events: writes each
    /// report, then sends what is unsent (a report whose answer was lost is sent again
    /// with the same identifier, which Stripe takes once). Returns how many were sent.
    pub async fn report_overage(&self) -> Result<u32, CustomerError> {
        let payments = self.payments.as_ref().ok_or(CustomerError::NotSetUp)?;
        for due in self.store.overage_due().await? {
            self.store.write_report(&due).await?;
        }
        let mut sent = 0;
        for report in self.store.pending_reports(100).await? {
            payments
                .meter_event(&MeterEvent {
                    event_name: self.plans.overage.meter_event_name.clone(),
                    customer: report.customer.clone(),
                    value: report.value,
                    identifier: report.identifier.clone(),
                    timestamp: report.at,
                })
                .await?;
            self.store.mark_sent(&report.identifier).await?;
            sent += 1;
        }
        Ok(sent)
    }
}

/// Why a customer could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    #[error(transparent)]
    Payments(#[from] PaymentError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("billing is not set up on this stack (no STRIPE_SECRET)")]
    NotSetUp,
}

/// What Stripe shows now about an event's subject: a subscription with its latest
/// invoice; an invoice with its subscription; a refunded charge with the invoice it paid.
async fn current_state(
    payments: &dyn Payments,
    subject: &EventSubject,
) -> Result<BillingChange, PaymentError> {
    let mut change = BillingChange::default();
    match subject {
        EventSubject::Ignored => {}
        EventSubject::Subscription { id, .. } => {
            let sub = payments.subscription(id).await?;
            if let Some(invoice) = &sub.latest_invoice {
                change.invoices.push(payments.invoice(invoice).await?);
            }
            change.subscription = Some(sub);
        }
        EventSubject::Invoice { id, .. } => {
            let invoice = payments.invoice(id).await?;
            if let Some(sub) = &invoice.subscription {
                change.subscription = Some(payments.subscription(sub).await?);
            }
            change.invoices.push(invoice);
        }
        EventSubject::Charge { id, .. } => {
            let charge = payments.charge(id).await?;
            let invoice = match &charge.payment_intent {
                Some(intent) => payments.invoice_of_payment(intent).await?,
                None => None,
            };
            if let Some(invoice) = invoice {
                change.invoices.push(payments.invoice(&invoice).await?);
                change.refunds.push((charge, invoice));
            }
        }
    }
    Ok(change)
}
