//! Paying for a test user's AI budget the way a subscriber does: a live subscription and a
//! paid invoice, kept through the billing store as a Stripe webhook would keep them.

use autocrew_shared::adapters::postgres::{PgBilling, Pool};
use autocrew_shared::domain::billing::{BillingChange, Invoice, Subscription, SubscriptionItem};
use autocrew_shared::domain::{Plans, SubscriptionStatus, UserId};
use autocrew_shared::ports::{BillingStore, BillingTerms, PaymentError, ReceivedEvent};
use chrono::{Duration, Utc};

/// The plans the tests pay under (the embedded ones).
pub fn plans() -> &'static Plans {
    static PLANS: std::sync::OnceLock<Plans> = std::sync::OnceLock::new();
    PLANS.get_or_init(|| Plans::embedded().expect("the embedded plans check"))
}

/// `user` subscribes to indie for a period running now and pays `cents`: their AI budget
/// for the period becomes 40% of it (`fund(pool, user, 2000)` gives $8).
pub async fn fund(pool: &Pool, user: UserId, cents: i64) -> anyhow::Result<()> {
    let billing = PgBilling::new(pool.clone());
    let customer = billing
        .keep_customer(user, &format!("cus_test_{}", user.0.simple()))
        .await?;
    let now = Utc::now();
    let (start, end) = (now - Duration::days(1), now + Duration::days(29));
    let price = "price_autocrew_indie_monthly".to_owned();
    let subscription = Subscription {
        id: format!("sub_test_{}", user.0.simple()),
        customer: customer.clone(),
        status: SubscriptionStatus::Active,
        cancel_at_period_end: false,
        items: vec![SubscriptionItem {
            id: format!("si_test_{}", user.0.simple()),
            price: price.clone(),
            current_period_start: start,
            current_period_end: end,
        }],
        latest_invoice: None,
    };
    let invoice = Invoice {
        id: format!("in_test_{}", uuid::Uuid::new_v4().simple()),
        customer: customer.clone(),
        subscription: Some(subscription.id.clone()),
        status: "paid".into(),
        amount_paid_cents: cents,
        currency: "usd".into(),
        paid_at: Some(now),
        lines: vec![(Some(price), start)],
    };
    let change = BillingChange {
        subscription: Some(subscription),
        invoices: vec![invoice],
        refunds: Vec::new(),
    };
    let event = ReceivedEvent {
        id: format!("evt_test_{}", uuid::Uuid::new_v4().simple()),
        kind: "invoice.paid".into(),
        created: now,
    };
    let terms = BillingTerms {
        plans: plans(),
        ai_share_ppm: 400_000,
        grace: std::time::Duration::from_secs(7 * 24 * 3600),
    };
    let fetch = || -> futures::future::BoxFuture<'_, Result<BillingChange, PaymentError>> {
        let change = change.clone();
        Box::pin(async move { Ok(change) })
    };
    billing.apply(&event, &customer, terms, &fetch).await?;
    Ok(())
}
