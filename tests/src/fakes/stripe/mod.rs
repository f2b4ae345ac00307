//! A stateful Stripe: customers, prices (the plans file's), Checkout Sessions,
//! subscriptions, invoices, charges and refunds, invoice payments, portal sessions,
//! ephemeral keys and meter events, as the API version our client pins shows them. Every
//! request is checked against the operation's published request type (`params`), every
//! create honours `Idempotency-Key`, and every change sends signed events to the webhook
//! endpoint (`webhooks`), with retries, and out of order or twice when asked.
//!
//! What a customer does in Stripe's pages is a control: paying a Checkout Session
//! (`POST /stripe/pay/{id}`, the page's button), confirming a PaymentSheet payment, a
//! renewal that is paid or fails, a plan change in the portal, a cancellation.

mod objects;
pub mod params;
pub mod webhooks;

pub use objects::StripeState;

use super::Fake;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// Stripe's error answer.
pub(crate) fn stripe_error(status: StatusCode, kind: &str, message: &str, param: &str) -> Response {
    super::error_json(
        status,
        json!({"error": {"type": kind, "message": message, "param": param}}),
    )
}

pub fn routes() -> Router<Fake> {
    Router::new()
        .route("/v1/customers", post(create_customer))
        .route("/v1/customers/{id}", get(read))
        .route("/v1/checkout/sessions", post(create_checkout))
        .route("/v1/checkout/sessions/{id}", get(read))
        .route("/v1/billing_portal/sessions", post(create_portal))
        .route("/v1/ephemeral_keys", post(create_ephemeral_key))
        .route("/v1/subscriptions", post(create_subscription))
        .route(
            "/v1/subscriptions/{id}",
            get(read).post(update_subscription),
        )
        .route("/v1/invoices/{id}", get(read))
        .route("/v1/charges/{id}", get(read))
        .route("/v1/invoice_payments", get(list_invoice_payments))
        .route("/v1/refunds", post(create_refund))
        .route("/v1/billing/meter_events", post(create_meter_event))
        .route("/pay/{id}", get(pay_page).post(pay))
        .route("/portal/{id}", get(portal_page))
        .route("/_fake/{action}", post(control))
}

/// The API key's check, as Stripe answers a missing or wrong one.
fn authorized(headers: &HeaderMap) -> Result<(), Response> {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match key.starts_with("sk_test_") {
        true => Ok(()),
        false => Err(stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided",
            "",
        )),
    }
}

/// The body read and checked against `operation`'s request type, with the version header
/// checked against the types' API version when sent.
fn checked(operation: &str, headers: &HeaderMap, body: &str) -> Result<Value, Response> {
    authorized(headers)?;
    let types = params::types()
        .map_err(|e| stripe_error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", &e, ""))?;
    if let Some(version) = headers.get("stripe-version").and_then(|v| v.to_str().ok())
        && !types.source.contains(version)
    {
        return Err(stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!(
                "the fake checks API version {}, not {version}",
                types.source
            ),
            "",
        ));
    }
    let fields: Vec<(String, String)> = super::form_fields(body).into_iter().collect();
    let value = params::decode(&fields).map_err(|message| {
        stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &message,
            "",
        )
    })?;
    params::check(operation, &value).map_err(|r| {
        stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &r.message,
            &r.param,
        )
    })?;
    Ok(value)
}

/// Runs a create once per `Idempotency-Key`: a retry with the same parameters gets the
/// first answer; other parameters under the key get Stripe's 400.
fn once(
    fake: &Fake,
    headers: &HeaderMap,
    request: (&str, &str),
    make: impl FnOnce(&mut StripeState) -> Result<Value, Response>,
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (operation, body) = request;
    let fingerprint = format!("{operation}\n{body}");
    let answer = {
        let mut stripe = fake.stripe.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = &key
            && let Some((seen, answer)) = stripe.idempotency.get(key)
        {
            if *seen != fingerprint {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                    "",
                );
            }
            return Json(answer.clone()).into_response();
        }
        let answer = match make(&mut stripe) {
            Ok(answer) => answer,
            Err(refused) => return refused,
        };
        if let Some(key) = key {
            stripe
                .idempotency
                .insert(key, (fingerprint, answer.clone()));
        }
        answer
    };
    let name = operation.replace(' ', "");
    webhooks::flush(fake);
    // The work is done; an outage drops the answer (the caller retries with its key).
    if fake.failing(&format!("stripe.{name}")) {
        return stripe_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "An unknown error occurred",
            "",
        );
    }
    Json(answer).into_response()
}

/// Before any work: a fake outage (`stripe.down.{operation}`), as a 503.
fn down(fake: &Fake, operation: &str) -> Result<(), Response> {
    match fake.failing(&format!("stripe.down.{}", operation.replace(' ', ""))) {
        true => Err(stripe_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "Stripe is temporarily unavailable",
            "",
        )),
        false => Ok(()),
    }
}

macro_rules! create {
    ($name:ident, $operation:literal, $method:ident) => {
        async fn $name(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
            if let Err(refused) = down(&fake, $operation) {
                return refused;
            }
            let params = match checked($operation, &headers, &body) {
                Ok(params) => params,
                Err(refused) => return refused,
            };
            let base = fake.base_url.lock().map(|b| b.clone()).unwrap_or_default();
            once(&fake, &headers, ($operation, &body), |stripe| {
                stripe.$method(&params, &base, &headers)
            })
        }
    };
}

create!(create_customer, "POST /v1/customers", create_customer);
create!(
    create_checkout,
    "POST /v1/checkout/sessions",
    create_checkout
);
create!(
    create_portal,
    "POST /v1/billing_portal/sessions",
    create_portal
);
create!(
    create_ephemeral_key,
    "POST /v1/ephemeral_keys",
    create_ephemeral_key
);
create!(
    create_subscription,
    "POST /v1/subscriptions",
    create_subscription
);
create!(create_refund, "POST /v1/refunds", create_refund);
create!(
    create_meter_event,
    "POST /v1/billing/meter_events",
    create_meter_event
);

async fn update_subscription(
    State(fake): State<Fake>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let operation = "POST /v1/subscriptions/{id}";
    let params = match checked(operation, &headers, &body) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    once(
        &fake,
        &headers,
        (operation, &format!("{id}\n{body}")),
        |stripe| stripe.change_plan(&id, &params),
    )
}

/// `GET` of one object by its id (the prefix says its kind).
async fn read(State(fake): State<Fake>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorized(&headers) {
        return refused;
    }
    let stripe = fake.stripe.lock().unwrap_or_else(|e| e.into_inner());
    match stripe.object(&id) {
        Some(object) => Json(object).into_response(),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such object: '{id}'"),
            "id",
        ),
    }
}

async fn list_invoice_payments(
    State(fake): State<Fake>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let params = match checked("GET /v1/invoice_payments", &headers, &query) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    let stripe = fake.stripe.lock().unwrap_or_else(|e| e.into_inner());
    let intent = params["payment"]["payment_intent"]
        .as_str()
        .unwrap_or_default();
    Json(json!({
        "object": "list",
        "url": "/v1/invoice_payments",
        "has_more": false,
        "data": stripe.invoice_payments(intent),
    }))
    .into_response()
}

/// The Checkout page: what a person would pay, and the button that pays.
async fn pay_page(State(fake): State<Fake>, Path(id): Path<String>) -> Response {
    let stripe = fake.stripe.lock().unwrap_or_else(|e| e.into_inner());
    match stripe.object(&id) {
        Some(session) => Html(format!(
            "<!doctype html><title>Fake Stripe Checkout</title><h1>Subscribe</h1>\
             <p>Customer {}</p><form method=post><button>Pay with 4242 4242 4242 4242</button></form>",
            session["customer"].as_str().unwrap_or("?")
        ))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The Checkout page's button: the customer pays with a test card.
async fn pay(State(fake): State<Fake>, Path(id): Path<String>) -> Response {
    let done = fake.stripe_complete_checkout(&id);
    match done {
        Ok(session) => Json(session).into_response(),
        Err(message) => stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &message,
            "",
        ),
    }
}

async fn portal_page(Path(id): Path<String>) -> Response {
    Html(format!(
        "<!doctype html><title>Fake Stripe Customer Portal</title><p>Portal session {id}</p>"
    ))
    .into_response()
}

/// `POST /stripe/_fake/{action}`: what a customer or Stripe's clock does, for a demo or a
/// test in another process. `endpoint {url, secret}`, `renew {subscription, pay}`,
/// `cancel {subscription}`, `confirm {subscription}`, `chaos {duplicate, reverse}`.
async fn control(
    State(fake): State<Fake>,
    Path(action): Path<String>,
    Query(_q): Query<std::collections::BTreeMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    let done = match action.as_str() {
        "endpoint" => {
            fake.stripe_endpoint(&text("url"), &text("secret"));
            Ok(json!({"endpoint": text("url")}))
        }
        "renew" => fake.stripe_renew(&text("subscription"), body["pay"] != false),
        "cancel" => fake.stripe_cancel(&text("subscription")),
        "confirm" => fake.stripe_confirm(&text("subscription")),
        "chaos" => {
            fake.stripe_chaos(body["duplicate"] == true, body["reverse"] == true);
            Ok(json!({}))
        }
        other => Err(format!("no action {other:?}")),
    };
    match done {
        Ok(value) => Json(value).into_response(),
        Err(message) => stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &message,
            "",
        ),
    }
}

impl Fake {
    /// Events go to `url`, signed with `secret`.
    pub fn stripe_endpoint(&self, url: &str, secret: &str) {
        let mut stripe = self.stripe.lock().unwrap_or_else(|e| e.into_inner());
        stripe.endpoint = Some((url.to_owned(), secret.to_owned()));
    }

    /// Events are sent twice, and each change's events in reverse order.
    pub fn stripe_chaos(&self, duplicate: bool, reverse: bool) {
        let mut stripe = self.stripe.lock().unwrap_or_else(|e| e.into_inner());
        stripe.chaos = (duplicate, reverse);
    }

    /// Events are kept instead of sent, until `stripe_held` takes them.
    pub fn stripe_hold(&self) {
        self.stripe.lock().unwrap_or_else(|e| e.into_inner()).hold = true;
    }

    /// Every event kept while held, in the order they happened (their JSON payloads).
    pub fn stripe_held(&self) -> Vec<String> {
        let mut stripe = self.stripe.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut stripe.held)
    }

    /// The customer pays a Checkout Session.
    pub fn stripe_complete_checkout(&self, session: &str) -> Result<Value, String> {
        let done = self
            .stripe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .complete_checkout(session);
        webhooks::flush(self);
        done
    }

    /// The customer confirms a PaymentSheet subscription's first payment.
    pub fn stripe_confirm(&self, subscription: &str) -> Result<Value, String> {
        let done = self
            .stripe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .confirm(subscription);
        webhooks::flush(self);
        done
    }

    /// The period ends: the next one starts, its invoice paid or its payment failed.
    pub fn stripe_renew(&self, subscription: &str, pay: bool) -> Result<Value, String> {
        let done = self
            .stripe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .renew(subscription, pay);
        webhooks::flush(self);
        done
    }

    /// The customer cancels in the portal, at once.
    pub fn stripe_cancel(&self, subscription: &str) -> Result<Value, String> {
        let done = self
            .stripe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cancel(subscription);
        webhooks::flush(self);
        done
    }
}
