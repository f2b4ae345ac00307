//! Billing through the API against the fake Stripe: Checkout paid on the fake, its signed
//! webhooks, the plan, period and budget they set; forged and replayed deliveries; 50
//! deliveries shuffled and duplicated; an outage during checkout.

use crate::api::{api_with, call, event, user};
use autocrew_api::{ApiState, Route};
use autocrew_shared::domain::UserId;
use autocrew_tests::fakes::{self, Fake};
use autocrew_tests::{TestDb, sdk, unique};
use serde_json::{Value, json};

const SAMPLE_TOKEN: &str = "sample.access.token";
const WEBHOOK_SECRET: &str = "whsec_test_current";

/// The API with Stripe set up: the fake's URL, and a secret holding its key and two
/// webhook secrets (one being rotated out).
async fn billing_api(db: &TestDb, fake_url: &str) -> anyhow::Result<ApiState> {
    let name = unique("stripe");
    aws_sdk_secretsmanager::Client::new(&sdk().await?)
        .create_secret()
        .name(&name)
        .secret_string(
            json!({"api_key": "sk_test_autocrew", "webhook_secrets": ["whsec_test_old", WEBHOOK_SECRET]})
                .to_string(),
        )
        .send()
        .await?;
    let url = format!("{fake_url}/stripe");
    let (state, _p) = api_with(db, |s| {
        s.billing.stripe_secret = Some(name);
        s.billing.stripe_api_url = url;
    })
    .await?;
    Ok(state)
}

fn with_token(file: &str, token: &str, body: Option<&str>) -> anyhow::Result<lambda_http::Request> {
    let mut request = event(file, &[(SAMPLE_TOKEN, token)])?;
    if let Some(body) = body {
        *request.body_mut() = lambda_http::Body::Text(body.to_owned());
    }
    Ok(request)
}

/// A delivery of `payload` as Stripe sends it, with `signature` as its header.
fn delivery(payload: &str, signature: Option<&str>) -> anyhow::Result<lambda_http::Request> {
    let mut request = event("apigw-stripe-webhook.json", &[])?;
    *request.body_mut() = lambda_http::Body::Text(payload.to_owned());
    let headers = request.headers_mut();
    headers.remove("stripe-signature");
    if let Some(signature) = signature {
        headers.insert("stripe-signature", signature.parse()?);
    }
    Ok(request)
}

async fn deliver(state: &ApiState, payload: &str) -> anyhow::Result<(u16, Value)> {
    let signature = fakes::stripe::webhooks::signature(payload, WEBHOOK_SECRET);
    call(
        state,
        Route::StripeWebhook,
        delivery(payload, Some(&signature))?,
    )
    .await
}

async fn billing_of(state: &ApiState, token: &str) -> anyhow::Result<Value> {
    let (status, body) = call(
        state,
        Route::GetBilling,
        with_token("apigw-get-billing.json", token, None)?,
    )
    .await?;
    anyhow::ensure!(status == 200, "GET /billing answered {status}: {body}");
    Ok(body)
}

/// Ana checks out `plan` and pays on the fake; its events are held, not sent.
async fn subscribed(
    state: &ApiState,
    fake: &Fake,
    token: &str,
    plan: &str,
) -> anyhow::Result<Vec<String>> {
    fake.stripe_hold();
    let body = json!({"plan": plan}).to_string();
    let (status, page) = call(
        state,
        Route::Checkout,
        with_token("apigw-checkout.json", token, Some(&body))?,
    )
    .await?;
    anyhow::ensure!(status == 201, "checkout answered {status}: {page}");
    let url = page["url"].as_str().unwrap_or_default();
    let session = url.rsplit('/').next().unwrap_or_default();
    anyhow::ensure!(page["id"] == session, "{page}");
    fake.stripe_complete_checkout(session)
        .map_err(anyhow::Error::msg)?;
    Ok(fake.stripe_held())
}

#[tokio::test]
async fn a_checkout_paid_on_the_fake_sets_the_plan_period_and_budget_through_signed_webhooks()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (fake, url) = fakes::start().await?;
    let state = billing_api(&db, &url).await?;
    let ana = user(&state, "ana@example.com").await?;
    let before = billing_of(&state, &ana).await?;

    let events = subscribed(&state, &fake, &ana, "indie").await?;
    let mut outcomes = Vec::new();
    for payload in &events {
        outcomes.push(deliver(&state, payload).await?);
    }
    let completed = events
        .iter()
        .find(|e| e.contains("\"checkout.session.completed\""))
        .cloned()
        .unwrap_or_default();
    let replayed = deliver(&state, &completed).await?;
    let after = billing_of(&state, &ana).await?;
    let again = call(
        &state,
        Route::Checkout,
        with_token("apigw-checkout.json", &ana, Some(r#"{"plan": "indie"}"#))?,
    )
    .await?;
    let other = call(
        &state,
        Route::Checkout,
        with_token("apigw-checkout.json", &ana, Some(r#"{"plan": "team"}"#))?,
    )
    .await?;
    let portal = call(
        &state,
        Route::BillingPortal,
        with_token("apigw-billing-portal.json", &ana, None)?,
    )
    .await?;

    assert_eq!(before["plan"], "free");
    assert_eq!(before["revenue_cents"], 0);
    let kinds: Vec<_> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        kinds.contains(&"checkout.session.completed".to_owned()),
        "{kinds:?}"
    );
    assert!(outcomes.iter().all(|(s, _)| *s == 200), "{outcomes:?}");
    assert_eq!(replayed.1["duplicate"], true, "{replayed:?}");
    assert_eq!(after["plan"], "indie");
    assert_eq!(after["subscription"]["status"], "active");
    assert_eq!(after["revenue_cents"], 9900);
    assert_eq!(after["revenue"], "$99.00");
    assert_eq!(after["included_micro_usd"], 39_600_000, "40% of $99");
    assert_eq!(after["ai_budget_micro_usd"], 39_600_000);
    assert_eq!(after["target_share"], 0.4);
    assert_eq!(again.0, 409, "{again:?}");
    assert!(
        again.1["error"]
            .as_str()
            .unwrap_or_default()
            .contains("already on indie")
    );
    assert_eq!(
        other.0, 409,
        "a plan change goes through the portal: {other:?}"
    );
    assert_eq!(portal.0, 201, "{portal:?}");
    assert!(
        portal.1["url"]
            .as_str()
            .unwrap_or_default()
            .contains("/stripe/portal/")
    );
    Ok(())
}

#[tokio::test]
async fn forged_stale_and_unsigned_deliveries_get_400_and_change_nothing() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (fake, url) = fakes::start().await?;
    let state = billing_api(&db, &url).await?;
    let ana = user(&state, "ana@example.com").await?;
    let events = subscribed(&state, &fake, &ana, "solo").await?;
    let paid = events
        .iter()
        .find(|e| e.contains("\"invoice.paid\""))
        .cloned()
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let sign = |secret: &str, at: i64| {
        autocrew_shared::domain::signature::sign(paid.as_bytes(), secret, at)
    };

    let unsigned = call(&state, Route::StripeWebhook, delivery(&paid, None)?).await?;
    let forged = call(
        &state,
        Route::StripeWebhook,
        delivery(&paid, Some(&sign("whsec_attacker", now)))?,
    )
    .await?;
    let stale = call(
        &state,
        Route::StripeWebhook,
        delivery(&paid, Some(&sign(WEBHOOK_SECRET, now - 400)))?,
    )
    .await?;
    let tampered = paid.replace("9900", "990000");
    let resigned = call(
        &state,
        Route::StripeWebhook,
        delivery(&tampered, Some(&sign("whsec_other", now)))?,
    )
    .await?;
    let unchanged = billing_of(&state, &ana).await?;
    let rotated = call(
        &state,
        Route::StripeWebhook,
        delivery(&paid, Some(&sign("whsec_test_old", now)))?,
    )
    .await?;
    let unknown = json!({"id": "evt_unknown", "object": "event", "type": "customer.tax_id.created",
                         "created": now, "data": {"object": {"id": "txi_1"}}})
    .to_string();
    let ignored = deliver(&state, &unknown).await?;
    let bad_plan = call(
        &state,
        Route::Checkout,
        with_token("apigw-checkout.json", &ana, Some(r#"{"plan": "platinum"}"#))?,
    )
    .await?;
    let free = call(
        &state,
        Route::Checkout,
        with_token("apigw-checkout.json", &ana, Some(r#"{"plan": "free"}"#))?,
    )
    .await?;

    for (status, body) in [&unsigned, &forged, &stale, &resigned] {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body["field"], "Stripe-Signature", "{body}");
    }
    assert!(
        stale.1["error"]
            .as_str()
            .unwrap_or_default()
            .contains("300 seconds")
    );
    assert_eq!(unchanged["revenue_cents"], 0, "nothing was applied");
    assert_eq!(
        rotated.0, 200,
        "a secret being rotated out still verifies: {rotated:?}"
    );
    assert_eq!(billing_of(&state, &ana).await?["revenue_cents"], 2900);
    assert_eq!(ignored.0, 200);
    assert_eq!(ignored.1["outcome"], "ignored: customer.tax_id.created");
    assert_eq!(bad_plan.0, 422, "{bad_plan:?}");
    assert!(
        bad_plan.1["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no plan \"platinum\"")
    );
    assert_eq!(free.0, 422, "{free:?}");
    Ok(())
}

/// What billing kept for `user`, to compare.
async fn kept(state: &ApiState, db: &TestDb, user: UserId) -> anyhow::Result<Value> {
    let subs = state.billing.store.subscriptions(user).await?;
    let client = db.pool.get().await?;
    let revenue: Vec<(String, i64)> = client
        .query(
            "SELECT invoice_id, amount_paid_cents FROM revenue_invoices ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let refunds: Vec<(String, i64)> = client
        .query(
            "SELECT charge_id, amount_refunded_cents FROM revenue_refunds ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let standing = autocrew_shared::ports::BudgetStore::standing(&*state.budgets, user).await?;
    Ok(json!({
        "subscriptions": subs.iter().map(|s| json!([s.id, s.plan, s.status, s.current_period_start, s.current_period_end, s.grace_until.is_some()])).collect::<Vec<_>>(),
        "revenue": revenue,
        "refunds": refunds,
        "plan": state.projects.user(user).await?.plan,
        "included": standing.included,
        "period": [standing.starts, standing.ends],
    }))
}

async fn stripe_post(url: &str, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Value> {
    let body = form
        .iter()
        .map(|(k, v)| format!("{}={}", k.replace('[', "%5B").replace(']', "%5D"), v))
        .collect::<Vec<_>>()
        .join("&");
    let answer = reqwest::Client::new()
        .post(format!("{url}/stripe{path}"))
        .bearer_auth("sk_test_autocrew")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    let status = answer.status();
    let body: Value = answer.json().await?;
    anyhow::ensure!(status.is_success(), "{path}: {status} {body}");
    Ok(body)
}

#[tokio::test]
async fn fifty_deliveries_shuffled_and_duplicated_end_where_the_ordered_ones_do()
-> anyhow::Result<()> {
    let (db, shuffled_db) = (TestDb::migrated().await?, TestDb::migrated().await?);
    let (fake, url) = fakes::start().await?;
    let state = billing_api(&db, &url).await?;
    let ana = user(&state, "ana@example.com").await?;
    let ana_id = state.keys.verify(&ana).await?;
    // A subscription's life: paid, renewed, upgraded mid-period, partly refunded, a
    // failed renewal, then a paid one.
    let mut events = subscribed(&state, &fake, &ana, "solo").await?;
    let customer = state
        .billing
        .store
        .customer(ana_id)
        .await?
        .unwrap_or_default();
    let sub = fake
        .stripe
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .events
        .iter()
        .find(|e| e["type"] == "customer.subscription.created")
        .and_then(|e| e["data"]["object"]["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    fake.stripe_renew(&sub, true).map_err(anyhow::Error::msg)?;
    let item = fake
        .stripe
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .object(&sub)
        .unwrap_or_default()["items"]["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    stripe_post(
        &url,
        &format!("/v1/subscriptions/{sub}"),
        &[
            ("items[0][id]", &item),
            ("items[0][price]", "price_autocrew_indie_monthly"),
        ],
    )
    .await?;
    let latest = fake
        .stripe
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .object(&sub)
        .unwrap_or_default()["latest_invoice"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let charge = fake
        .stripe
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .charge_of(&latest)
        .unwrap_or_default();
    stripe_post(
        &url,
        "/v1/refunds",
        &[("charge", &charge), ("amount", "1000")],
    )
    .await?;
    fake.stripe_renew(&sub, false).map_err(anyhow::Error::msg)?;
    fake.stripe_renew(&sub, true).map_err(anyhow::Error::msg)?;
    events.extend(fake.stripe_held());

    // In order, each once.
    for payload in &events {
        let (status, body) = deliver(&state, payload).await?;
        anyhow::ensure!(status == 200, "{status} {body}");
    }
    // Shuffled and duplicated up to 50 deliveries, into another database.
    let shuffled = {
        let (other, _p) = {
            let s = billing_api(&shuffled_db, &url).await?;
            (s, ())
        };
        other
    };
    let ben = user(&shuffled, "ana@example.com").await?;
    let ben_id = shuffled.keys.verify(&ben).await?;
    shuffled
        .billing
        .store
        .keep_customer(ben_id, &customer)
        .await?;
    let mut deliveries: Vec<&String> = events.iter().collect();
    while deliveries.len() < 50 {
        deliveries.push(&events[deliveries.len() % events.len()]);
    }
    let mut seed = 0x5eed_u64;
    for i in (1..deliveries.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        deliveries.swap(i, (seed >> 33) as usize % (i + 1));
    }
    let (mut duplicates, mut repeats) = (0, 0);
    let mut seen = std::collections::BTreeSet::new();
    for payload in &deliveries {
        let (status, body) = deliver(&shuffled, payload).await?;
        anyhow::ensure!(status == 200, "{status} {body}");
        duplicates += usize::from(body["duplicate"] == true);
        // A type billing ignores is not recorded, so its repeat is ignored again.
        let acted = !body["outcome"]
            .as_str()
            .unwrap_or_default()
            .starts_with("ignored: customer.created");
        repeats += usize::from(!seen.insert(payload.as_str()) && acted);
    }

    let ordered = kept(&state, &db, ana_id).await?;
    let mixed = kept(&shuffled, &shuffled_db, ben_id).await?;
    assert!(events.len() >= 10, "{} events", events.len());
    assert_eq!(deliveries.len(), 50);
    assert_eq!(
        duplicates, repeats,
        "each repeat of an event billing acts on changed nothing"
    );
    assert!(repeats >= 50 - events.len() - 5, "{repeats}");
    assert_eq!(ordered, mixed);
    assert_eq!(ordered["plan"], "indie");
    assert_eq!(ordered["refunds"][0][1], 1000);
    Ok(())
}

#[tokio::test]
async fn an_outage_during_checkout_is_a_503_and_the_retry_makes_one_customer() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let (fake, url) = fakes::start().await?;
    let state = billing_api(&db, &url).await?;
    let ana = user(&state, "ana@example.com").await?;
    let ana_id = state.keys.verify(&ana).await?;
    let body = r#"{"plan": "indie", "interval": "year"}"#;

    // Stripe makes the customer, and its answer is lost.
    fake.fail_once_after("stripe.POST/v1/customers");
    let lost = call(
        &state,
        Route::Checkout,
        with_token("apigw-checkout.json", &ana, Some(body))?,
    )
    .await?;
    let kept_after_loss = state.billing.store.customer(ana_id).await?;
    // Stripe is down before doing anything.
    fake.fail_once_after("stripe.down.POST/v1/checkout/sessions");
    let down = call(
        &state,
        Route::Checkout,
        with_token("apigw-checkout.json", &ana, Some(body))?,
    )
    .await?;
    let retried = call(
        &state,
        Route::Checkout,
        with_token("apigw-checkout.json", &ana, Some(body))?,
    )
    .await?;
    let customers = fake
        .stripe
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .events
        .iter()
        .filter(|e| e["type"] == "customer.created")
        .count();

    assert_eq!(lost.0, 503, "{lost:?}");
    assert!(
        lost.1["error"]
            .as_str()
            .unwrap_or_default()
            .contains("send the request again")
    );
    assert_eq!(kept_after_loss, None, "nothing half-made is kept");
    assert_eq!(down.0, 503, "{down:?}");
    assert_eq!(retried.0, 201, "{retried:?}");
    assert_eq!(customers, 1, "the retries found the customer Stripe made");
    assert!(state.billing.store.customer(ana_id).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn the_fake_refuses_what_stripes_request_types_do_not_allow() -> anyhow::Result<()> {
    let (_fake, url) = fakes::start().await?;
    let customer = stripe_post(&url, "/v1/customers", &[("email", "ana@example.com")]).await?;
    let id = customer["id"].as_str().unwrap_or_default();

    let unknown = stripe_post(
        &url,
        "/v1/checkout/sessions",
        &[
            ("mode", "subscription"),
            ("customer", id),
            ("line_items[0][pricee]", "price_autocrew_indie_monthly"),
        ],
    )
    .await;
    let typed = stripe_post(
        &url,
        "/v1/billing/meter_events",
        &[
            ("event_name", "autocrew_ai_spend"),
            ("payload[stripe_customer_id]", id),
            ("payload[value]", "12"),
            ("timestamp", "soon"),
        ],
    )
    .await;
    let metered = stripe_post(
        &url,
        "/v1/checkout/sessions",
        &[
            ("mode", "subscription"),
            ("customer", id),
            ("line_items[0][price]", "price_autocrew_ai_overage"),
            ("line_items[0][quantity]", "1"),
        ],
    )
    .await;

    let message = |r: anyhow::Result<Value>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message(unknown).contains("Received unknown parameter: line_items[0][pricee]"));
    assert!(message(typed).contains("Invalid integer"));
    assert!(message(metered).contains("usage_type is `metered`"));
    Ok(())
}

#[tokio::test]
async fn overage_opted_in_past_the_included_budget_is_metered_to_stripe_to_the_micro_dollar()
-> anyhow::Result<()> {
    use autocrew_shared::domain::MicroUsd;
    let db = TestDb::migrated().await?;
    let (fake, url) = fakes::start().await?;
    let state = billing_api(&db, &url).await?;
    let ana = user(&state, "ana@example.com").await?;
    let ana_id = state.keys.verify(&ana).await?;
    let cap = r#"{"overage_cap_usd": "25"}"#;
    let refused = call(
        &state,
        Route::UpdateMe,
        with_token("apigw-update-me.json", &ana, Some(cap))?,
    )
    .await?;
    for payload in subscribed(&state, &fake, &ana, "solo").await? {
        deliver(&state, &payload).await?;
    }
    let opted = call(
        &state,
        Route::UpdateMe,
        with_token("apigw-update-me.json", &ana, Some(cap))?,
    )
    .await?;
    let too_much = call(
        &state,
        Route::UpdateMe,
        with_token(
            "apigw-update-me.json",
            &ana,
            Some(r#"{"overage_cap_usd": "100000"}"#),
        )?,
    )
    .await?;
    // $11.60 included (40% of $29); the calls spend $15.
    let budgets = state.budgets.clone();
    let spend = |cost: i64| {
        let budgets = budgets.clone();
        async move {
            let held = budgets
                .reserve(ana_id, (None, None), MicroUsd(cost))
                .await?;
            budgets.settle(held.id, MicroUsd(cost)).await?;
            anyhow::Ok(())
        }
    };
    spend(10_000_000).await?;
    spend(3_000_123).await?;
    let customer = state
        .billing
        .store
        .customer(ana_id)
        .await?
        .unwrap_or_default();
    // The first report's answer is lost; it is sent again under its identifier.
    fake.fail_once_after("stripe.POST/v1/billing/meter_events");
    let first = state.billing.report_overage().await;
    let second = state.billing.report_overage().await?;
    spend(1_999_877).await?;
    let third = state.billing.report_overage().await?;
    let fourth = state.billing.report_overage().await?;
    let metered = fake
        .stripe
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .metered(&customer);
    let billing = billing_of(&state, &ana).await?;
    let past_cap = state
        .budgets
        .reserve(ana_id, (None, None), MicroUsd(22_000_000))
        .await;

    assert_eq!(refused.0, 409, "overage needs a paid plan: {refused:?}");
    assert_eq!(opted.0, 200, "{opted:?}");
    assert_eq!(too_much.0, 400, "{too_much:?}");
    assert!(first.is_err(), "the lost answer is an error: {first:?}");
    assert_eq!((second, third, fourth), (1, 1, 0));
    assert_eq!(
        metered,
        15_000_000 - 11_600_000,
        "the meter events sum to the overage"
    );
    assert_eq!(billing["overage_micro_usd"], 3_400_000);
    assert_eq!(billing["overage_cap_micro_usd"], 25_000_000);
    assert_eq!(
        billing["ai_budget_micro_usd"], 36_600_000,
        "$11.60 included + $25 cap"
    );
    assert!(past_cap.is_err(), "the cap holds: {past_cap:?}");
    Ok(())
}

#[tokio::test]
async fn the_apps_payment_sheet_pays_a_subscription_and_an_upgrade_raises_the_budget_when_paid()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (fake, url) = fakes::start().await?;
    let state = billing_api(&db, &url).await?;
    let ana = user(&state, "ana@example.com").await?;
    fake.stripe_hold();

    let body = r#"{"plan": "solo"}"#;
    let (status, sheet) = call(
        &state,
        Route::PaymentSheet,
        with_token("apigw-payment-sheet.json", &ana, Some(body))?,
    )
    .await?;
    let waiting = billing_of(&state, &ana).await?;
    let sub = sheet["subscription_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The app's PaymentSheet confirms the payment with the client secret.
    fake.stripe_confirm(&sub).map_err(anyhow::Error::msg)?;
    for payload in fake.stripe_held() {
        deliver(&state, &payload).await?;
    }
    let solo = billing_of(&state, &ana).await?;
    // An upgrade in the portal: the rest of the period is invoiced and paid at once.
    let item = fake
        .stripe
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .object(&sub)
        .unwrap_or_default()["items"]["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    stripe_post(
        &url,
        &format!("/v1/subscriptions/{sub}"),
        &[
            ("items[0][id]", &item),
            ("items[0][price]", "price_autocrew_team_monthly"),
        ],
    )
    .await?;
    for payload in fake.stripe_held() {
        deliver(&state, &payload).await?;
    }
    let team = billing_of(&state, &ana).await?;

    assert_eq!(status, 201, "{sheet}");
    assert!(
        sheet["customer"]
            .as_str()
            .unwrap_or_default()
            .starts_with("cus_")
    );
    assert!(
        sheet["ephemeral_key"]
            .as_str()
            .unwrap_or_default()
            .starts_with("ek_test")
    );
    assert!(
        sheet["client_secret"]
            .as_str()
            .unwrap_or_default()
            .contains("_secret_")
    );
    assert_eq!(waiting["plan"], "free", "nothing is paid yet");
    assert_eq!(
        (solo["plan"].clone(), solo["revenue_cents"].clone()),
        (json!("solo"), json!(2900))
    );
    assert_eq!(team["plan"], "team");
    let revenue = team["revenue_cents"].as_i64().unwrap_or(0);
    assert!(
        revenue > 2900 + 26_000,
        "the proration of $270 was paid: {revenue}"
    );
    assert_eq!(
        team["included_micro_usd"].as_i64(),
        Some(revenue * 10_000 * 4 / 10)
    );
    Ok(())
}
