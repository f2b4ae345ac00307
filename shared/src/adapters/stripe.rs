//! `Payments` on Stripe's REST API: a thin typed client over reqwest (form-encoded
//! requests, JSON answers), pinned to one API version. Stripe's wire types stay here.
//! Every POST that creates something sends an `Idempotency-Key`.

use crate::domain::billing::{
    Charge, CheckoutRequest, HostedPage, Invoice, MeterEvent, SheetSubscription, Subscription,
    SubscriptionItem,
};
use crate::domain::{SubscriptionStatus, UserId};
use crate::ports::{PaymentError, Payments};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The API version every request pins (`Stripe-Version`): the shapes below are its.
pub const STRIPE_API_VERSION: &str = "2026-10-28.endive";

/// Stripe's API with a secret key.
pub struct StripePayments {
    http: reqwest::Client,
    base: String,
    api_key: crate::config::Secret<String>,
}

impl StripePayments {
    /// `base` is `https://api.stripe.com` (or the fake's URL).
    pub fn new(base: &str, api_key: String) -> Result<Self, reqwest::Error> {
        Ok(StripePayments {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .connect_timeout(std::time::Duration::from_secs(3))
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
            api_key: crate::config::Secret::new(api_key),
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, PaymentError> {
        let response = request
            .bearer_auth(self.api_key.expose())
            .header("Stripe-Version", STRIPE_API_VERSION)
            .send()
            .await
            .map_err(|e| PaymentError::Unavailable(format!("{what}: {e}")))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| PaymentError::Unavailable(format!("{what}: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                PaymentError::Unavailable(format!("{what}: an answer we cannot read: {e}"))
            });
        }
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error.message.unwrap_or_default())
            .unwrap_or_default();
        Err(match status.as_u16() {
            404 => PaymentError::Missing(format!("{what}: {message}")),
            429 | 500..=599 => PaymentError::Unavailable(format!("{what}: {status} {message}")),
            _ => PaymentError::Refused(format!("{what}: {status} {message}")),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> Result<T, PaymentError> {
        self.send(self.http.get(format!("{}{path}", self.base)), what)
            .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &Form,
        idempotency_key: &str,
        what: &str,
    ) -> Result<T, PaymentError> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Idempotency-Key", idempotency_key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.encode());
        self.send(request, what).await
    }
}

/// A form body in Stripe's bracket notation (`line_items[0][price]=…`).
#[derive(Default)]
struct Form(Vec<(String, String)>);

impl Form {
    fn add(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.push((key.into(), value.into()));
        self
    }

    fn encode(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{}={}", percent(k), percent(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// `application/x-www-form-urlencoded` escaping.
fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The subscription's line items: the plan's price, quantity 1, and the metered overage
/// price when the plan has one (a metered price takes no quantity).
fn items(form: Form, prefix: &str, request: &CheckoutRequest) -> Form {
    let form = form
        .add(format!("{prefix}[0][price]"), &request.price)
        .add(format!("{prefix}[0][quantity]"), "1");
    match &request.overage_price {
        Some(price) => form.add(format!("{prefix}[1][price]"), price),
        None => form,
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct Page {
    id: String,
    url: Option<String>,
}

#[derive(Deserialize)]
struct EphemeralKey {
    secret: String,
}

#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
}

/// An expandable field: the id, or the object with its id.
#[derive(Deserialize)]
#[serde(untagged)]
enum Ref {
    Id(String),
    Object { id: String },
}

impl Ref {
    fn id(self) -> String {
        match self {
            Ref::Id(id) | Ref::Object { id } => id,
        }
    }
}

#[derive(Deserialize)]
struct WireSubscription {
    id: String,
    customer: Ref,
    status: String,
    #[serde(default)]
    cancel_at_period_end: bool,
    items: List<WireItem>,
    latest_invoice: Option<WireLatestInvoice>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireLatestInvoice {
    Id(String),
    Object {
        id: String,
        confirmation_secret: Option<WireConfirmationSecret>,
    },
}

#[derive(Deserialize)]
struct WireConfirmationSecret {
    client_secret: String,
}

#[derive(Deserialize)]
struct WireItem {
    id: String,
    price: Ref,
    current_period_start: i64,
    current_period_end: i64,
}

#[derive(Deserialize)]
struct WireInvoice {
    id: String,
    customer: Option<Ref>,
    status: Option<String>,
    amount_paid: i64,
    currency: String,
    parent: Option<WireParent>,
    status_transitions: Option<WireTransitions>,
    lines: List<WireLine>,
}

#[derive(Deserialize)]
struct WireParent {
    subscription_details: Option<WireSubscriptionDetails>,
}

#[derive(Deserialize)]
struct WireSubscriptionDetails {
    subscription: Option<Ref>,
}

#[derive(Deserialize)]
struct WireTransitions {
    paid_at: Option<i64>,
}

#[derive(Deserialize)]
struct WireLine {
    period: WirePeriod,
    pricing: Option<WirePricing>,
}

#[derive(Deserialize)]
struct WirePeriod {
    start: i64,
}

#[derive(Deserialize)]
struct WirePricing {
    price_details: Option<WirePriceDetails>,
}

#[derive(Deserialize)]
struct WirePriceDetails {
    price: Ref,
}

#[derive(Deserialize)]
struct WireCharge {
    id: String,
    customer: Option<Ref>,
    amount_refunded: i64,
    payment_intent: Option<Ref>,
}

#[derive(Deserialize)]
struct WireInvoicePayment {
    invoice: Ref,
}

fn time(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).single().unwrap_or_default()
}

fn subscription_from(wire: WireSubscription) -> Result<Subscription, PaymentError> {
    let status: SubscriptionStatus = wire
        .status
        .parse()
        .map_err(|e| PaymentError::Unavailable(format!("subscription {}: {e}", wire.id)))?;
    Ok(Subscription {
        id: wire.id,
        customer: wire.customer.id(),
        status,
        cancel_at_period_end: wire.cancel_at_period_end,
        items: wire
            .items
            .data
            .into_iter()
            .map(|item| SubscriptionItem {
                id: item.id,
                price: item.price.id(),
                current_period_start: time(item.current_period_start),
                current_period_end: time(item.current_period_end),
            })
            .collect(),
        latest_invoice: wire.latest_invoice.map(|i| match i {
            WireLatestInvoice::Id(id) | WireLatestInvoice::Object { id, .. } => id,
        }),
    })
}

#[async_trait]
impl Payments for StripePayments {
    async fn create_customer(&self, user: UserId, email: &str) -> Result<String, PaymentError> {
        let form = Form::default()
            .add("email", email)
            .add("metadata[user_id]", user.to_string());
        let created: Created = self
            .post(
                "/v1/customers",
                &form,
                &format!("autocrew-customer-{user}"),
                "creating the customer",
            )
            .await?;
        Ok(created.id)
    }

    async fn checkout(&self, request: &CheckoutRequest) -> Result<HostedPage, PaymentError> {
        let form = Form::default()
            .add("mode", "subscription")
            .add("customer", &request.customer)
            .add("client_reference_id", request.user.to_string())
            .add("success_url", &request.success_url)
            .add("cancel_url", &request.cancel_url)
            .add("metadata[user_id]", request.user.to_string())
            .add(
                "subscription_data[metadata][user_id]",
                request.user.to_string(),
            );
        let form = items(form, "line_items", request);
        let page: Page = self
            .post(
                "/v1/checkout/sessions",
                &form,
                &request.idempotency_key,
                "creating the Checkout Session",
            )
            .await?;
        Ok(HostedPage {
            id: page.id,
            url: page.url.ok_or_else(|| {
                PaymentError::Unavailable("the Checkout Session has no url".into())
            })?,
        })
    }

    async fn portal(&self, customer: &str, return_url: &str) -> Result<HostedPage, PaymentError> {
        let form = Form::default()
            .add("customer", customer)
            .add("return_url", return_url);
        let page: Page = self
            .post(
                "/v1/billing_portal/sessions",
                &form,
                &format!("autocrew-portal-{}", uuid::Uuid::new_v4()),
                "creating the portal session",
            )
            .await?;
        Ok(HostedPage {
            id: page.id,
            url: page
                .url
                .ok_or_else(|| PaymentError::Unavailable("the portal session has no url".into()))?,
        })
    }

    async fn ephemeral_key(&self, customer: &str) -> Result<String, PaymentError> {
        let form = Form::default().add("customer", customer);
        let key: EphemeralKey = self
            .post(
                "/v1/ephemeral_keys",
                &form,
                &format!("autocrew-ephemeral-{}", uuid::Uuid::new_v4()),
                "creating the ephemeral key",
            )
            .await?;
        Ok(key.secret)
    }

    async fn incomplete_subscription(
        &self,
        request: &CheckoutRequest,
    ) -> Result<SheetSubscription, PaymentError> {
        let form = Form::default()
            .add("customer", &request.customer)
            .add("payment_behavior", "default_incomplete")
            .add(
                "payment_settings[save_default_payment_method]",
                "on_subscription",
            )
            .add("metadata[user_id]", request.user.to_string())
            .add("expand[0]", "latest_invoice.confirmation_secret");
        let form = items(form, "items", request);
        let wire: WireSubscription = self
            .post(
                "/v1/subscriptions",
                &form,
                &request.idempotency_key,
                "creating the subscription",
            )
            .await?;
        let client_secret = match wire.latest_invoice {
            Some(WireLatestInvoice::Object {
                confirmation_secret: Some(secret),
                ..
            }) => secret.client_secret,
            _ => {
                return Err(PaymentError::Unavailable(
                    "the subscription's first invoice has no confirmation secret".into(),
                ));
            }
        };
        Ok(SheetSubscription {
            id: wire.id,
            client_secret,
        })
    }

    async fn subscription(&self, id: &str) -> Result<Subscription, PaymentError> {
        let wire: WireSubscription = self
            .get(
                &format!("/v1/subscriptions/{}", percent(id)),
                "reading the subscription",
            )
            .await?;
        subscription_from(wire)
    }

    async fn invoice(&self, id: &str) -> Result<Invoice, PaymentError> {
        let wire: WireInvoice = self
            .get(
                &format!("/v1/invoices/{}", percent(id)),
                "reading the invoice",
            )
            .await?;
        Ok(Invoice {
            id: wire.id,
            customer: wire.customer.map(Ref::id).unwrap_or_default(),
            subscription: wire
                .parent
                .and_then(|p| p.subscription_details)
                .and_then(|d| d.subscription)
                .map(Ref::id),
            status: wire.status.unwrap_or_default(),
            amount_paid_cents: wire.amount_paid,
            currency: wire.currency,
            paid_at: wire.status_transitions.and_then(|t| t.paid_at).map(time),
            lines: wire
                .lines
                .data
                .into_iter()
                .map(|line| {
                    (
                        line.pricing
                            .and_then(|p| p.price_details)
                            .map(|d| d.price.id()),
                        time(line.period.start),
                    )
                })
                .collect(),
        })
    }

    async fn charge(&self, id: &str) -> Result<Charge, PaymentError> {
        let wire: WireCharge = self
            .get(
                &format!("/v1/charges/{}", percent(id)),
                "reading the charge",
            )
            .await?;
        Ok(Charge {
            id: wire.id,
            customer: wire.customer.map(Ref::id),
            amount_refunded_cents: wire.amount_refunded,
            payment_intent: wire.payment_intent.map(Ref::id),
        })
    }

    async fn invoice_of_payment(
        &self,
        payment_intent: &str,
    ) -> Result<Option<String>, PaymentError> {
        let list: List<WireInvoicePayment> = self
            .get(
                &format!(
                    "/v1/invoice_payments?payment[type]=payment_intent&payment[payment_intent]={}",
                    percent(payment_intent)
                ),
                "finding the invoice a payment paid",
            )
            .await?;
        Ok(list.data.into_iter().next().map(|p| p.invoice.id()))
    }

    async fn meter_event(&self, event: &MeterEvent) -> Result<(), PaymentError> {
        let form = Form::default()
            .add("event_name", &event.event_name)
            .add("payload[stripe_customer_id]", &event.customer)
            .add("payload[value]", event.value.0.to_string())
            .add("identifier", &event.identifier)
            .add("timestamp", event.timestamp.timestamp().to_string());
        let _: serde_json::Value = self
            .post(
                "/v1/billing/meter_events",
                &form,
                &event.identifier,
                "reporting overage",
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_use_brackets_and_escape_what_they_must() {
        let form = Form::default()
            .add("line_items[0][price]", "price_1")
            .add("success_url", "https://app.example/ok?x=1&y=2");
        assert_eq!(
            form.encode(),
            "line_items%5B0%5D%5Bprice%5D=price_1&success_url=https%3A%2F%2Fapp.example%2Fok%3Fx%3D1%26y%3D2"
        );
    }
}
