//! The fake Stripe's objects and what changes them. Objects are kept as the JSON Stripe
//! answers with; each change queues the events Stripe would send, with the objects as they
//! stand after it.

use super::stripe_error;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A price: its amount in cents (none for the metered overage price) and interval.
#[derive(Clone, Debug)]
struct Price {
    cents: Option<i64>,
    interval: &'static str,
}

#[derive(Default)]
pub struct StripeState {
    prices: BTreeMap<String, Price>,
    /// Every object by id.
    objects: BTreeMap<String, Value>,
    /// payment intent → invoice payment.
    payments: BTreeMap<String, Value>,
    /// Meter events by identifier (a resent identifier is taken once).
    pub meter_events: BTreeMap<String, Value>,
    pub(super) idempotency: BTreeMap<String, (String, Value)>,
    /// Where events go: the URL and its signing secret.
    pub(super) endpoint: Option<(String, String)>,
    /// Events made and not yet sent (payloads), and every event ever made.
    pub(super) outbox: Vec<String>,
    pub events: Vec<Value>,
    /// (send each event twice, send each change's events in reverse order)
    pub(super) chaos: (bool, bool),
    pub(super) hold: bool,
    pub(super) held: Vec<String>,
    next: u64,
    /// Made once per fake: ids stay unique across restarts, as Stripe's are forever (a
    /// second `make demo` keeps the first one's customers in its database).
    minted: String,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn refused(message: &str, param: &str) -> Response {
    stripe_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
        param,
    )
}

fn missing(kind: &str, id: &str, param: &str) -> Response {
    refused(&format!("No such {kind}: '{id}'"), param)
}

impl StripeState {
    fn id(&mut self, prefix: &str) -> String {
        if self.minted.is_empty() {
            self.minted = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        }
        self.next += 1;
        format!("{prefix}_test{}{:08}", self.minted, self.next)
    }

    /// The plans file's prices, once.
    fn priced(&mut self) {
        if !self.prices.is_empty() {
            return;
        }
        let plans = crate::funds::plans();
        for plan in &plans.plans {
            if let Some(prices) = &plan.stripe_prices {
                let cents = |i| plan.price(i).0 / 10_000;
                self.prices.insert(
                    prices.monthly.clone(),
                    Price {
                        cents: Some(cents(autocrew_shared::domain::Interval::Month)),
                        interval: "month",
                    },
                );
                self.prices.insert(
                    prices.yearly.clone(),
                    Price {
                        cents: Some(cents(autocrew_shared::domain::Interval::Year)),
                        interval: "year",
                    },
                );
            }
        }
        self.prices.insert(
            plans.overage.stripe_price.clone(),
            Price {
                cents: None,
                interval: "month",
            },
        );
    }

    /// The object with `id`, as Stripe answers it.
    pub fn object(&self, id: &str) -> Option<Value> {
        self.objects.get(id).cloned()
    }

    pub(super) fn invoice_payments(&self, intent: &str) -> Vec<Value> {
        self.payments.get(intent).cloned().into_iter().collect()
    }

    /// Queues the events of one change, in the order they happen.
    fn emit(&mut self, changes: &[(&str, &str)]) {
        let mut payloads = Vec::new();
        for (kind, id) in changes {
            let Some(object) = self.objects.get(*id).cloned() else {
                continue;
            };
            let event = json!({
                "id": self.id("evt"),
                "object": "event",
                "api_version": autocrew_shared::adapters::stripe::STRIPE_API_VERSION,
                "created": now(),
                "livemode": false,
                "pending_webhooks": 1,
                "type": kind,
                "data": {"object": object},
            });
            payloads.push(event.to_string());
            self.events.push(event);
        }
        if self.chaos.1 {
            payloads.reverse();
        }
        for payload in payloads {
            if self.chaos.0 {
                self.outbox.push(payload.clone());
            }
            self.outbox.push(payload);
        }
    }

    pub(super) fn create_customer(
        &mut self,
        params: &Value,
        _base: &str,
        _headers: &HeaderMap,
    ) -> Result<Value, Response> {
        let id = self.id("cus");
        let customer = json!({
            "id": id, "object": "customer", "created": now(), "livemode": false,
            "email": params["email"], "metadata": params.get("metadata").cloned().unwrap_or(json!({})),
        });
        self.objects.insert(id.clone(), customer.clone());
        self.emit(&[("customer.created", &id)]);
        Ok(customer)
    }

    /// Checks a subscription's line items: known prices, quantity 1 for a licensed price
    /// and none for a metered one.
    fn items(&mut self, items: &Value, param: &str) -> Result<Vec<String>, Response> {
        self.priced();
        let Some(items) = items.as_array().filter(|i| !i.is_empty()) else {
            return Err(refused(&format!("Missing required param: {param}."), param));
        };
        let mut prices = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let price = item["price"].as_str().unwrap_or_default();
            let Some(known) = self.prices.get(price) else {
                return Err(missing("price", price, &format!("{param}[{i}][price]")));
            };
            match (known.cents, item.get("quantity")) {
                (Some(_), Some(q)) if q == "1" => {}
                (Some(_), _) => {
                    return Err(refused(
                        "Quantity is required. Add `quantity` to `line_items`",
                        &format!("{param}[{i}][quantity]"),
                    ));
                }
                (None, None) => {}
                (None, Some(_)) => {
                    return Err(refused(
                        "Quantity should not be specified where usage_type is `metered`. Remove quantity from `line_items`",
                        &format!("{param}[{i}][quantity]"),
                    ));
                }
            }
            prices.push(price.to_owned());
        }
        Ok(prices)
    }

    fn customer_of(&self, params: &Value) -> Result<String, Response> {
        let customer = params["customer"].as_str().unwrap_or_default();
        match self.objects.contains_key(customer) && customer.starts_with("cus_") {
            true => Ok(customer.to_owned()),
            false => Err(missing("customer", customer, "customer")),
        }
    }

    pub(super) fn create_checkout(
        &mut self,
        params: &Value,
        base: &str,
        _headers: &HeaderMap,
    ) -> Result<Value, Response> {
        if params["mode"] != "subscription" {
            return Err(refused("the fake sells subscriptions only", "mode"));
        }
        let customer = self.customer_of(params)?;
        let prices = self.items(&params["line_items"], "line_items")?;
        let id = self.id("cs");
        let session = json!({
            "id": id, "object": "checkout.session", "mode": "subscription", "created": now(),
            "customer": customer, "client_reference_id": params["client_reference_id"],
            "metadata": params.get("metadata").cloned().unwrap_or(json!({})),
            "status": "open", "payment_status": "unpaid", "subscription": null,
            "success_url": params["success_url"], "cancel_url": params["cancel_url"],
            "url": format!("{base}/stripe/pay/{id}"),
            "line_items_prices": prices,
        });
        self.objects.insert(id, session.clone());
        Ok(session)
    }

    pub(super) fn create_portal(
        &mut self,
        params: &Value,
        base: &str,
        _headers: &HeaderMap,
    ) -> Result<Value, Response> {
        let customer = self.customer_of(params)?;
        let id = self.id("bps");
        let session = json!({
            "id": id, "object": "billing_portal.session", "created": now(), "customer": customer,
            "return_url": params["return_url"], "url": format!("{base}/stripe/portal/{id}"),
        });
        self.objects.insert(id, session.clone());
        Ok(session)
    }

    pub(super) fn create_ephemeral_key(
        &mut self,
        params: &Value,
        _base: &str,
        headers: &HeaderMap,
    ) -> Result<Value, Response> {
        // Stripe needs the mobile SDK's API version for an ephemeral key.
        if headers.get("stripe-version").is_none() {
            return Err(refused(
                "Stripe: A Stripe-Version header is required for ephemeral keys",
                "",
            ));
        }
        let customer = self.customer_of(params)?;
        let id = self.id("ephkey");
        let secret = self.id("ek_test");
        Ok(json!({
            "id": id, "object": "ephemeral_key", "created": now(), "expires": now() + 3600,
            "livemode": false, "secret": secret,
            "associated_objects": [{"id": customer, "type": "customer"}],
        }))
    }

    /// A subscription of `customer` to `prices`, its first invoice `paid` or open.
    fn subscribe(&mut self, customer: &str, prices: &[String], paid: bool) -> String {
        let id = self.id("sub");
        let start = now();
        let interval = prices
            .iter()
            .find_map(|p| self.prices.get(p).filter(|p| p.cents.is_some()))
            .map_or("month", |p| p.interval);
        let end = start + if interval == "year" { 365 } else { 30 } * 86_400;
        let items: Vec<Value> = prices
            .iter()
            .map(|price| {
                let item = self.id("si");
                json!({"id": item, "object": "subscription_item", "subscription": id,
                       "price": {"id": price, "object": "price"},
                       "current_period_start": start, "current_period_end": end})
            })
            .collect();
        let status = if paid { "active" } else { "incomplete" };
        self.objects.insert(
            id.clone(),
            json!({"id": id, "object": "subscription", "customer": customer, "status": status,
                   "created": start, "cancel_at_period_end": false, "latest_invoice": null,
                   "items": {"object": "list", "data": items}, "metadata": {}}),
        );
        self.invoice(&id, start, end, None, paid);
        id
    }

    /// An invoice of subscription `sub` for `[start, end)` (of `only` price, or every
    /// licensed one), paid (with its payment intent, charge and invoice payment) or open.
    fn invoice(
        &mut self,
        sub: &str,
        start: i64,
        end: i64,
        only: Option<(&str, i64)>,
        paid: bool,
    ) -> String {
        let id = self.id("in");
        let customer = self.objects[sub]["customer"].clone();
        let prices: Vec<(String, i64)> = match only {
            Some((price, cents)) => vec![(price.to_owned(), cents)],
            None => self.objects[sub]["items"]["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["price"]["id"].as_str())
                .filter_map(|p| Some((p.to_owned(), self.prices.get(p)?.cents?)))
                .collect(),
        };
        let amount: i64 = prices.iter().map(|(_, c)| c).sum();
        let lines: Vec<Value> = prices
            .iter()
            .map(|(price, cents)| {
                json!({"id": format!("il_{id}_{price}"), "object": "line_item", "amount": cents,
                       "currency": "usd", "period": {"start": start, "end": end},
                       "pricing": {"type": "price_details", "price_details": {"price": price, "product": "prod_autocrew"}}})
            })
            .collect();
        let intent = self.id("pi");
        self.objects.insert(
            id.clone(),
            json!({"id": id, "object": "invoice", "customer": customer, "currency": "usd",
                   "status": "open", "amount_due": amount, "amount_paid": 0, "created": now(),
                   "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub}},
                   "status_transitions": {"paid_at": null},
                   "lines": {"object": "list", "data": lines},
                   "confirmation_secret": {"client_secret": format!("{intent}_secret_test"), "type": "payment_intent"},
                   "payment_intent_of_fake": intent}),
        );
        if let Some(s) = self.objects.get_mut(sub) {
            s["latest_invoice"] = json!(id);
        }
        if paid {
            self.pay_invoice(&id);
        }
        id
    }

    /// Pays an open invoice: its charge, its invoice payment, `paid`.
    fn pay_invoice(&mut self, invoice: &str) {
        let Some(inv) = self.objects.get(invoice).cloned() else {
            return;
        };
        let intent = inv["payment_intent_of_fake"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let amount = inv["amount_due"].as_i64().unwrap_or(0);
        let charge = self.id("ch");
        self.objects.insert(
            charge.clone(),
            json!({"id": charge, "object": "charge", "customer": inv["customer"], "amount": amount,
                   "amount_refunded": 0, "refunded": false, "currency": "usd",
                   "payment_intent": intent, "paid": true, "status": "succeeded"}),
        );
        let payment = self.id("inpay");
        self.payments.insert(
            intent.clone(),
            json!({"id": payment, "object": "invoice_payment", "invoice": invoice, "amount_paid": amount,
                   "currency": "usd", "status": "paid", "is_default": true,
                   "payment": {"type": "payment_intent", "payment_intent": intent}}),
        );
        if let Some(inv) = self.objects.get_mut(invoice) {
            inv["status"] = json!("paid");
            inv["amount_paid"] = json!(amount);
            inv["status_transitions"]["paid_at"] = json!(now());
        }
    }

    pub(super) fn complete_checkout(&mut self, session: &str) -> Result<Value, String> {
        let Some(found) = self.objects.get(session).cloned() else {
            return Err(format!("No such checkout session: '{session}'"));
        };
        if found["status"] != "open" {
            return Err(format!("checkout session {session} is {}", found["status"]));
        }
        let customer = found["customer"].as_str().unwrap_or_default().to_owned();
        let prices: Vec<String> = found["line_items_prices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect();
        let sub = self.subscribe(&customer, &prices, true);
        let invoice = self.objects[&sub]["latest_invoice"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(s) = self.objects.get_mut(session) {
            s["status"] = json!("complete");
            s["payment_status"] = json!("paid");
            s["subscription"] = json!(sub);
        }
        self.emit(&[
            ("customer.subscription.created", &sub),
            ("invoice.paid", &invoice),
            ("checkout.session.completed", session),
        ]);
        Ok(self.objects[session].clone())
    }

    pub(super) fn create_subscription(
        &mut self,
        params: &Value,
        _base: &str,
        _headers: &HeaderMap,
    ) -> Result<Value, Response> {
        if params["payment_behavior"] != "default_incomplete" {
            return Err(refused(
                "the fake makes PaymentSheet subscriptions only (payment_behavior=default_incomplete)",
                "payment_behavior",
            ));
        }
        let customer = self.customer_of(params)?;
        let prices = self.items(&params["items"], "items")?;
        let sub = self.subscribe(&customer, &prices, false);
        self.emit(&[("customer.subscription.created", &sub)]);
        let mut answer = self.objects[&sub].clone();
        let expanded = params["expand"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x == "latest_invoice.confirmation_secret"));
        if expanded {
            let invoice = answer["latest_invoice"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            answer["latest_invoice"] = self.objects[&invoice].clone();
        }
        Ok(answer)
    }

    /// The PaymentSheet's payment succeeds: the first invoice is paid, the subscription
    /// active.
    pub(super) fn confirm(&mut self, sub: &str) -> Result<Value, String> {
        let found = self
            .objects
            .get(sub)
            .cloned()
            .ok_or(format!("No such subscription: '{sub}'"))?;
        let invoice = found["latest_invoice"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.pay_invoice(&invoice);
        if let Some(s) = self.objects.get_mut(sub) {
            s["status"] = json!("active");
        }
        self.emit(&[
            ("invoice.paid", &invoice),
            ("customer.subscription.updated", sub),
        ]);
        Ok(self.objects[sub].clone())
    }

    pub(super) fn renew(&mut self, sub: &str, pay: bool) -> Result<Value, String> {
        let found = self
            .objects
            .get(sub)
            .cloned()
            .ok_or(format!("No such subscription: '{sub}'"))?;
        let items = found["items"]["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let old_end = items
            .first()
            .and_then(|i| i["current_period_end"].as_i64())
            .unwrap_or(now());
        let old_start = items
            .first()
            .and_then(|i| i["current_period_start"].as_i64())
            .unwrap_or(now());
        // The clock moves the period to now, so the new one is the current one.
        let start = now().min(old_end).max(old_start + 1);
        let end = start + (old_end - old_start);
        if let Some(s) = self.objects.get_mut(sub) {
            for item in s["items"]["data"].as_array_mut().into_iter().flatten() {
                item["current_period_start"] = json!(start);
                item["current_period_end"] = json!(end);
            }
            s["status"] = json!(if pay { "active" } else { "past_due" });
        }
        let invoice = self.invoice(sub, start, end, None, pay);
        let kind = if pay {
            "invoice.paid"
        } else {
            "invoice.payment_failed"
        };
        self.emit(&[("customer.subscription.updated", sub), (kind, &invoice)]);
        Ok(self.objects[sub].clone())
    }

    pub(super) fn cancel(&mut self, sub: &str) -> Result<Value, String> {
        let s = self
            .objects
            .get_mut(sub)
            .ok_or(format!("No such subscription: '{sub}'"))?;
        s["status"] = json!("canceled");
        s["canceled_at"] = json!(now());
        self.emit(&[("customer.subscription.deleted", sub)]);
        Ok(self.objects[sub].clone())
    }

    /// A plan change, as the portal makes it: the item's price changes now and the rest
    /// of the period is invoiced (prorated) and paid at once.
    pub(super) fn change_plan(&mut self, sub: &str, params: &Value) -> Result<Value, Response> {
        self.priced();
        let Some(found) = self.objects.get(sub).cloned() else {
            return Err(missing("subscription", sub, "id"));
        };
        let Some(change) = params["items"].as_array().and_then(|i| i.first()).cloned() else {
            return Err(refused(
                "the fake changes a subscription's items only",
                "items",
            ));
        };
        let item_id = change["id"].as_str().unwrap_or_default();
        let price = change["price"].as_str().unwrap_or_default().to_owned();
        let Some(new_cents) = self.prices.get(&price).and_then(|p| p.cents) else {
            return Err(missing("price", &price, "items[0][price]"));
        };
        let items = found["items"]["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let Some(item) = items.iter().find(|i| i["id"] == item_id) else {
            return Err(missing("subscription item", item_id, "items[0][id]"));
        };
        let old_price = item["price"]["id"].as_str().unwrap_or_default();
        let old_cents = self
            .prices
            .get(old_price)
            .and_then(|p| p.cents)
            .unwrap_or(0);
        let (start, end) = (
            item["current_period_start"].as_i64().unwrap_or(0),
            item["current_period_end"].as_i64().unwrap_or(0),
        );
        let at = now().clamp(start, end);
        let left = (end - at) as f64 / (end - start).max(1) as f64;
        let prorated = (((new_cents - old_cents) as f64) * left).round() as i64;
        if let Some(s) = self.objects.get_mut(sub) {
            for i in s["items"]["data"].as_array_mut().into_iter().flatten() {
                if i["id"] == item_id {
                    i["price"] = json!({"id": price, "object": "price"});
                }
            }
        }
        let mut changes = vec![("customer.subscription.updated", sub.to_owned())];
        if prorated > 0 {
            let invoice = self.invoice(sub, at, end, Some((&price, prorated)), true);
            changes.push(("invoice.paid", invoice));
        }
        let changes: Vec<(&str, &str)> = changes.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.emit(&changes);
        Ok(self.objects[sub].clone())
    }

    pub(super) fn create_refund(
        &mut self,
        params: &Value,
        _base: &str,
        _headers: &HeaderMap,
    ) -> Result<Value, Response> {
        let charge = params["charge"].as_str().unwrap_or_default().to_owned();
        let Some(found) = self.objects.get(&charge).cloned() else {
            return Err(missing("charge", &charge, "charge"));
        };
        let left =
            found["amount"].as_i64().unwrap_or(0) - found["amount_refunded"].as_i64().unwrap_or(0);
        let amount = match params.get("amount") {
            Some(a) => a.as_str().and_then(|a| a.parse().ok()).unwrap_or(0),
            None => left,
        };
        if amount <= 0 || amount > left {
            return Err(refused(
                &format!(
                    "Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
                ),
                "amount",
            ));
        }
        if let Some(c) = self.objects.get_mut(&charge) {
            let total = c["amount_refunded"].as_i64().unwrap_or(0) + amount;
            c["amount_refunded"] = json!(total);
            c["refunded"] = json!(total == c["amount"].as_i64().unwrap_or(0));
        }
        let id = self.id("re");
        let refund = json!({"id": id, "object": "refund", "amount": amount, "charge": charge,
                            "currency": "usd", "status": "succeeded", "created": now()});
        self.objects.insert(id, refund.clone());
        self.emit(&[("charge.refunded", &charge)]);
        Ok(refund)
    }

    pub(super) fn create_meter_event(
        &mut self,
        params: &Value,
        _base: &str,
        _headers: &HeaderMap,
    ) -> Result<Value, Response> {
        let identifier = params["identifier"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| self.id("mev"));
        let value = params["payload"]["value"].as_str().unwrap_or_default();
        if value.parse::<i64>().is_err() {
            return Err(refused(
                "payload[value] must be a whole number",
                "payload[value]",
            ));
        }
        let customer = params["payload"]["stripe_customer_id"]
            .as_str()
            .unwrap_or_default();
        if !self.objects.contains_key(customer) {
            return Err(missing("customer", customer, "payload[stripe_customer_id]"));
        }
        let event = json!({"object": "billing.meter_event", "event_name": params["event_name"],
                           "identifier": identifier, "payload": params["payload"],
                           "timestamp": params["timestamp"], "created": now(), "livemode": false});
        // Stripe takes an identifier once.
        let kept = self.meter_events.entry(identifier).or_insert(event);
        Ok(kept.clone())
    }

    /// The sum of the meter events of `customer` (each identifier once).
    pub fn metered(&self, customer: &str) -> i64 {
        self.meter_events
            .values()
            .filter(|e| e["payload"]["stripe_customer_id"] == customer)
            .filter_map(|e| e["payload"]["value"].as_str()?.parse::<i64>().ok())
            .sum()
    }

    /// The charge that paid `invoice`.
    pub fn charge_of(&self, invoice: &str) -> Option<String> {
        let intent = self.objects.get(invoice)?["payment_intent_of_fake"]
            .as_str()?
            .to_owned();
        self.objects
            .values()
            .find(|o| o["object"] == "charge" && o["payment_intent"] == intent.as_str())
            .and_then(|c| c["id"].as_str().map(str::to_owned))
    }
}
