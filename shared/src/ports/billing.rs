//! Billing: the payment provider (Stripe) and what we keep of it.

use super::store::StoreError;
use crate::domain::billing::{
    BillingChange, Charge, CheckoutRequest, HostedPage, Invoice, MeterEvent, SheetSubscription,
    Subscription, SubscriptionRecord,
};
use crate::domain::{MicroUsd, UserId};
use async_trait::async_trait;
use futures::future::BoxFuture;

/// Why the payment provider did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// It could not be reached, timed out or failed on its side: the same request may be
    /// sent again (each carries an idempotency key).
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
    /// It refused the request (its message says why).
    #[error("the payment provider refused: {0}")]
    Refused(String),
    /// No such object.
    #[error("the payment provider has no {0}")]
    Missing(String),
}

/// The payment provider's API, as billing uses it. Every call that creates something
/// carries an idempotency key, so a retry never creates it twice.
#[async_trait]
pub trait Payments: Send + Sync {
    /// Creates `user`'s customer (once per user: the key is the user id).
    async fn create_customer(&self, user: UserId, email: &str) -> Result<String, PaymentError>;
    /// A hosted Checkout page for a subscription.
    async fn checkout(&self, request: &CheckoutRequest) -> Result<HostedPage, PaymentError>;
    /// A Customer Portal page (change plan, cancel, payment methods, invoices).
    async fn portal(&self, customer: &str, return_url: &str) -> Result<HostedPage, PaymentError>;
    /// An ephemeral key for the mobile SDK to act as `customer`; returns its secret.
    async fn ephemeral_key(&self, customer: &str) -> Result<String, PaymentError>;
    /// A subscription waiting for its first payment, for the mobile PaymentSheet.
    async fn incomplete_subscription(
        &self,
        request: &CheckoutRequest,
    ) -> Result<SheetSubscription, PaymentError>;
    async fn subscription(&self, id: &str) -> Result<Subscription, PaymentError>;
    async fn invoice(&self, id: &str) -> Result<Invoice, PaymentError>;
    async fn charge(&self, id: &str) -> Result<Charge, PaymentError>;
    /// The invoice a payment intent paid, if any.
    async fn invoice_of_payment(
        &self,
        payment_intent: &str,
    ) -> Result<Option<String>, PaymentError>;
    /// Reports usage to a billing meter; the identifier makes a resend harmless.
    async fn meter_event(&self, event: &MeterEvent) -> Result<(), PaymentError>;
}

/// An event, as the webhook received it.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    pub id: String,
    pub kind: String,
    pub created: chrono::DateTime<chrono::Utc>,
}

/// What applying an event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Processed now; the text says what it changed.
    Done(String),
    /// This event id was processed before: nothing changed.
    Duplicate,
}

/// Reads the provider's current state for an event while its customer is locked.
pub type Fetch<'a> = &'a (dyn Fn() -> BoxFuture<'a, Result<BillingChange, PaymentError>> + Sync);

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Payments(#[from] PaymentError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user's overage to report, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverageDue {
    pub user: UserId,
    pub period_start: chrono::NaiveDate,
    pub period_end: chrono::DateTime<chrono::Utc>,
    pub customer: String,
    /// The period's overage so far.
    pub overage: MicroUsd,
    /// What was reported of it already.
    pub reported: MicroUsd,
}

/// A meter event written and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReport {
    pub identifier: String,
    pub customer: String,
    pub value: MicroUsd,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What we keep of billing: customers, subscriptions, revenue, events, overage reports.
#[async_trait]
pub trait BillingStore: Send + Sync {
    /// `user`'s customer id, if made.
    async fn customer(&self, user: UserId) -> Result<Option<String>, StoreError>;
    /// Keeps `customer` as `user`'s; the first one kept wins and is returned.
    async fn keep_customer(&self, user: UserId, customer: &str) -> Result<String, StoreError>;
    /// The user a customer id belongs to.
    async fn user_of_customer(&self, customer: &str) -> Result<Option<UserId>, StoreError>;
    /// `user`'s subscriptions, the latest period first.
    async fn subscriptions(&self, user: UserId) -> Result<Vec<SubscriptionRecord>, StoreError>;
    /// Whether the event was processed already (a cheap look before fetching anything).
    async fn seen(&self, event: &str) -> Result<bool, StoreError>;
    /// Applies one event once: in one transaction, records the event id (a duplicate
    /// changes nothing), locks `customer`, reads the provider's current state with
    /// `fetch`, and keeps it. Events about one customer are applied one at a time, so the
    /// state kept is the provider's latest whatever the order they arrive in.
    async fn apply(
        &self,
        event: &ReceivedEvent,
        customer: &str,
        terms: BillingTerms,
        fetch: Fetch<'_>,
    ) -> Result<Applied, ApplyError>;
    /// Revenue collected for `user`'s current period (net of refunds), in cents.
    async fn revenue_cents(&self, user: UserId) -> Result<i64, StoreError>;
    /// Sets or clears `user`'s overage cap.
    async fn set_overage_cap(&self, user: UserId, cap: Option<MicroUsd>) -> Result<(), StoreError>;
    async fn overage_cap(&self, user: UserId) -> Result<Option<MicroUsd>, StoreError>;
    /// Paid periods, ended at most a day ago, whose overage is more than was reported.
    async fn overage_due(&self) -> Result<Vec<OverageDue>, StoreError>;
    /// Writes the report of `due`'s unreported overage, once per amount reached.
    async fn write_report(&self, due: &OverageDue) -> Result<(), StoreError>;
    /// Reports written and not yet acknowledged, oldest first.
    async fn pending_reports(&self, limit: u32) -> Result<Vec<PendingReport>, StoreError>;
    async fn mark_sent(&self, identifier: &str) -> Result<(), StoreError>;
}

/// The terms an event is applied under: configuration as it stands when it arrives.
#[derive(Debug, Clone, Copy)]
pub struct BillingTerms {
    /// Which prices sell which plans.
    pub plans: &'static crate::domain::Plans,
    /// The AI budget's share of revenue, in parts per million.
    pub ai_share_ppm: u32,
    /// How long a plan holds after a failed payment.
    pub grace: std::time::Duration,
}
