//! The billing store: Stripe events applied once, revenue net of refunds making the AI
//! budget, and a failed payment's grace period.

use autocrew_shared::adapters::postgres::{PgBilling, PgBudgetStore, PgProjectStore};
use autocrew_shared::domain::billing::{
    BillingChange, Charge, Invoice, Subscription, SubscriptionItem,
};
use autocrew_shared::domain::{MicroUsd, SubscriptionStatus, UserId};
use autocrew_shared::ports::{
    Applied, BillingStore, BillingTerms, BudgetStore, PaymentError, ProjectStore, ReceivedEvent,
};
use autocrew_tests::TestDb;
use autocrew_tests::funds::plans;
use chrono::{Duration, Utc};

fn terms(grace_days: u64) -> BillingTerms {
    BillingTerms {
        plans: plans(),
        ai_share_ppm: 400_000,
        grace: std::time::Duration::from_secs(grace_days * 24 * 3600),
    }
}

fn event(id: &str, kind: &str) -> ReceivedEvent {
    ReceivedEvent {
        id: id.into(),
        kind: kind.into(),
        created: Utc::now(),
    }
}

/// A monthly indie subscription of `customer` in `status`, its period running now.
fn subscription(customer: &str, status: SubscriptionStatus) -> Subscription {
    let now = Utc::now();
    Subscription {
        id: "sub_1".into(),
        customer: customer.into(),
        status,
        cancel_at_period_end: false,
        items: vec![
            SubscriptionItem {
                id: "si_plan".into(),
                price: "price_autocrew_indie_monthly".into(),
                current_period_start: now - Duration::days(2),
                current_period_end: now + Duration::days(28),
            },
            SubscriptionItem {
                id: "si_overage".into(),
                price: plans().overage.stripe_price.clone(),
                current_period_start: now - Duration::days(2),
                current_period_end: now + Duration::days(28),
            },
        ],
        latest_invoice: Some("in_1".into()),
    }
}

fn paid_invoice(customer: &str, cents: i64) -> Invoice {
    Invoice {
        id: "in_1".into(),
        customer: customer.into(),
        subscription: Some("sub_1".into()),
        status: "paid".into(),
        amount_paid_cents: cents,
        currency: "usd".into(),
        paid_at: Some(Utc::now()),
        lines: vec![(
            Some("price_autocrew_indie_monthly".into()),
            Utc::now() - Duration::days(2),
        )],
    }
}

async fn apply(
    billing: &PgBilling,
    id: &str,
    customer: &str,
    grace_days: u64,
    change: BillingChange,
) -> anyhow::Result<Applied> {
    let fetch = || -> futures::future::BoxFuture<'_, Result<BillingChange, PaymentError>> {
        let change = change.clone();
        Box::pin(async move { Ok(change) })
    };
    Ok(billing
        .apply(
            &event(id, "invoice.paid"),
            customer,
            terms(grace_days),
            &fetch,
        )
        .await?)
}

async fn subscriber(db: &TestDb) -> anyhow::Result<(UserId, PgBilling, String)> {
    let user = PgProjectStore::new(db.pool.clone())
        .create_user("ana@example.com", "Ana")
        .await?
        .id;
    let billing = PgBilling::new(db.pool.clone());
    let customer = billing.keep_customer(user, "cus_ana").await?;
    Ok((user, billing, customer))
}

#[tokio::test]
async fn an_event_is_applied_once_and_a_refund_lowers_the_periods_budget() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (ana, billing, customer) = subscriber(&db).await?;
    let budgets = PgBudgetStore::new(db.pool.clone());
    let paid = BillingChange {
        subscription: Some(subscription(&customer, SubscriptionStatus::Active)),
        invoices: vec![paid_invoice(&customer, 9900)],
        refunds: Vec::new(),
    };
    let refund = |cents| BillingChange {
        invoices: vec![paid_invoice(&customer, 9900)],
        refunds: vec![(
            Charge {
                id: "ch_1".into(),
                customer: Some(customer.clone()),
                amount_refunded_cents: cents,
                payment_intent: Some("pi_1".into()),
            },
            "in_1".into(),
        )],
        ..BillingChange::default()
    };

    let first = apply(&billing, "evt_paid", &customer, 7, paid.clone()).await?;
    let again = apply(&billing, "evt_paid", &customer, 7, paid).await?;
    let paid_budget = budgets.standing(ana).await?;
    apply(&billing, "evt_refund_b", &customer, 7, refund(4900)).await?;
    // An older view of the same charge, applied last, never shrinks what was refunded.
    apply(&billing, "evt_refund_a", &customer, 7, refund(1000)).await?;
    let refunded = budgets.standing(ana).await?;

    assert!(matches!(first, Applied::Done(_)), "{first:?}");
    assert_eq!(again, Applied::Duplicate);
    assert_eq!(
        (paid_budget.paid, paid_budget.included),
        (true, MicroUsd(39_600_000)),
        "40% of $99"
    );
    assert_eq!(refunded.included, MicroUsd(20_000_000), "40% of $50");
    assert_eq!(billing.revenue_cents(ana).await?, 5000);
    let plan = PgProjectStore::new(db.pool.clone()).user(ana).await?.plan;
    assert_eq!(plan.as_str(), "indie");
    Ok(())
}

#[tokio::test]
async fn a_failed_payment_keeps_the_plan_through_its_grace_then_the_user_is_on_free()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (ana, billing, customer) = subscriber(&db).await?;
    let projects = PgProjectStore::new(db.pool.clone());
    let failing = BillingChange {
        subscription: Some(subscription(&customer, SubscriptionStatus::PastDue)),
        ..BillingChange::default()
    };

    apply(&billing, "evt_failed", &customer, 7, failing.clone()).await?;
    let in_grace = projects.user(ana).await?.plan;
    let kept = billing.subscriptions(ana).await?;
    // The grace period ends (an operator with no grace: it ended at once).
    db.pool
        .get()
        .await?
        .execute(
            "UPDATE subscriptions SET grace_until = now() - interval '1 second'",
            &[],
        )
        .await?;
    let after = projects.user(ana).await?.plan;
    let recovered = BillingChange {
        subscription: Some(subscription(&customer, SubscriptionStatus::Active)),
        ..BillingChange::default()
    };
    apply(&billing, "evt_recovered", &customer, 7, recovered).await?;
    let paid_again = billing.subscriptions(ana).await?;

    assert_eq!(in_grace.as_str(), "indie");
    let grace = kept[0].grace_until.expect("a grace period");
    assert!(grace > Utc::now() + Duration::days(6), "{grace}");
    assert_eq!(after.as_str(), "free");
    assert_eq!(projects.user(ana).await?.plan.as_str(), "indie");
    assert_eq!(
        paid_again[0].grace_until, None,
        "a paid subscription has no grace"
    );
    assert_eq!(paid_again[0].overage_item.as_deref(), Some("si_overage"));
    Ok(())
}

#[tokio::test]
async fn an_event_for_a_customer_not_ours_is_recorded_and_ignored() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let billing = PgBilling::new(db.pool.clone());
    let change = BillingChange {
        subscription: Some(subscription("cus_stranger", SubscriptionStatus::Active)),
        ..BillingChange::default()
    };

    let applied = apply(&billing, "evt_stranger", "cus_stranger", 7, change).await?;

    assert_eq!(
        applied,
        Applied::Done("ignored: customer cus_stranger is not one of ours".into())
    );
    assert!(billing.seen("evt_stranger").await?);
    Ok(())
}
