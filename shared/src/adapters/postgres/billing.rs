//! What we keep of billing (migration 0028): customers, subscriptions as Stripe last showed
//! them, the revenue ledger, processed events and overage reports.

use super::Pool;
use super::cached::Cached;
use crate::domain::billing::{BillingChange, Invoice, SubscriptionRecord};
use crate::domain::plans::{Interval, PlanId};
use crate::domain::{MicroUsd, SubscriptionStatus, UserId};
use crate::ports::{
    Applied, ApplyError, BillingStore, BillingTerms, Fetch, OverageDue, PendingReport,
    ReceivedEvent, StoreError,
};
use async_trait::async_trait;
use deadpool_postgres::Transaction;

/// `BillingStore` on Postgres.
#[derive(Clone)]
pub struct PgBilling {
    pool: Pool,
}

impl PgBilling {
    pub fn new(pool: Pool) -> Self {
        PgBilling { pool }
    }
}

const SUBSCRIPTION_COLUMNS: &str =
    "stripe_subscription_id, user_id, plan, billing_interval, status,
    current_period_start, current_period_end, cancel_at_period_end, overage_item, grace_until";

fn subscription_from(row: &tokio_postgres::Row) -> Result<SubscriptionRecord, StoreError> {
    let interval: String = row.try_get(3)?;
    Ok(SubscriptionRecord {
        id: row.try_get(0)?,
        user: UserId(row.try_get(1)?),
        plan: PlanId(row.try_get(2)?),
        interval: Interval::parse(&interval).unwrap_or_default(),
        status: row.try_get(4)?,
        current_period_start: row.try_get(5)?,
        current_period_end: row.try_get(6)?,
        cancel_at_period_end: row.try_get(7)?,
        overage_item: row.try_get(8)?,
        grace_until: row.try_get(9)?,
    })
}

/// Keeps a subscription as Stripe shows it now. A failed payment (`past_due`) starts the
/// grace period the first time it is seen; a paid one (`active`, `trialing`) ends it.
async fn keep_subscription(
    tx: &Transaction<'_>,
    record: &SubscriptionRecord,
    grace: std::time::Duration,
) -> Result<(), StoreError> {
    let grace_secs = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX / 2);
    let failing = record.status == SubscriptionStatus::PastDue;
    let paid = matches!(
        record.status,
        SubscriptionStatus::Active | SubscriptionStatus::Trialing
    );
    tx.execute_cached(
        "INSERT INTO subscriptions (stripe_subscription_id, user_id, plan, billing_interval, status,
             current_period_start, current_period_end, cancel_at_period_end, overage_item,
             payment_failed_at, grace_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                 CASE WHEN $10 THEN now() END,
                 CASE WHEN $10 THEN now() + make_interval(secs => $11) END)
         ON CONFLICT (stripe_subscription_id) DO UPDATE SET
             plan = EXCLUDED.plan, billing_interval = EXCLUDED.billing_interval,
             status = EXCLUDED.status, current_period_start = EXCLUDED.current_period_start,
             current_period_end = EXCLUDED.current_period_end,
             cancel_at_period_end = EXCLUDED.cancel_at_period_end,
             overage_item = EXCLUDED.overage_item,
             payment_failed_at = CASE WHEN $12 THEN NULL WHEN $10
                 THEN coalesce(subscriptions.payment_failed_at, now()) ELSE subscriptions.payment_failed_at END,
             grace_until = CASE WHEN $12 THEN NULL WHEN $10
                 THEN coalesce(subscriptions.grace_until, now() + make_interval(secs => $11)) ELSE subscriptions.grace_until END,
             updated_at = now()",
        &[
            &record.id,
            &record.user.0,
            &record.plan.as_str(),
            &record.interval.as_str(),
            &record.status,
            &record.current_period_start,
            &record.current_period_end,
            &record.cancel_at_period_end,
            &record.overage_item,
            &failing,
            &(grace_secs as f64),
            &paid,
        ],
    )
    .await?;
    Ok(())
}

/// Records what a paid invoice collected (once: a paid amount never changes).
async fn keep_invoice(
    tx: &Transaction<'_>,
    user: UserId,
    invoice: &Invoice,
    terms: BillingTerms,
) -> Result<bool, StoreError> {
    let (Some(paid_at), Some(start)) = (invoice.paid_at, invoice.service_start(terms.plans)) else {
        return Ok(false);
    };
    if invoice.status != "paid" {
        return Ok(false);
    }
    let share = i32::try_from(terms.ai_share_ppm).unwrap_or(0);
    let inserted = tx
        .execute_cached(
            "INSERT INTO revenue_invoices (invoice_id, user_id, stripe_subscription_id, service_start,
                 amount_paid_cents, currency, ai_share_ppm, paid_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (invoice_id) DO NOTHING",
            &[
                &invoice.id,
                &user.0,
                &invoice.subscription,
                &start,
                &invoice.amount_paid_cents.max(0),
                &invoice.currency.to_lowercase(),
                &share,
                &paid_at,
            ],
        )
        .await?;
    Ok(inserted > 0)
}

/// The user's period's revenue, net of refunds, in cents (`$1` the user).
const PERIOD_REVENUE: &str = "
    SELECT coalesce(sum(i.amount_paid_cents - least(i.amount_paid_cents, coalesce(r.refunded, 0))), 0)::bigint
    FROM period_standing($1) sp
    JOIN revenue_invoices i ON i.user_id = $1 AND i.service_start >= sp.p_starts AND i.service_start < sp.p_ends
    LEFT JOIN (SELECT invoice_id, sum(amount_refunded_cents) AS refunded FROM revenue_refunds GROUP BY 1) r
        ON r.invoice_id = i.invoice_id
    WHERE sp.p_paid";

#[async_trait]
impl BillingStore for PgBilling {
    async fn customer(&self, user: UserId) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                "SELECT stripe_customer_id FROM billing_customers WHERE user_id = $1",
                &[&user.0],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn keep_customer(&self, user: UserId, customer: &str) -> Result<String, StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "INSERT INTO billing_customers (user_id, stripe_customer_id) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO NOTHING",
                &[&user.0, &customer],
            )
            .await?;
        let row = client
            .query_one_cached(
                "SELECT stripe_customer_id FROM billing_customers WHERE user_id = $1",
                &[&user.0],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn user_of_customer(&self, customer: &str) -> Result<Option<UserId>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                "SELECT user_id FROM billing_customers WHERE stripe_customer_id = $1",
                &[&customer],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0).map(UserId)).transpose()?)
    }

    async fn subscriptions(&self, user: UserId) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE user_id = $1
                     ORDER BY current_period_start DESC, updated_at DESC"
                ),
                &[&user.0],
            )
            .await?;
        rows.iter().map(subscription_from).collect()
    }

    async fn seen(&self, event: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt_cached("SELECT 1 FROM stripe_events WHERE id = $1", &[&event])
            .await?
            .is_some())
    }

    async fn apply(
        &self,
        event: &ReceivedEvent,
        customer: &str,
        terms: BillingTerms,
        fetch: Fetch<'_>,
    ) -> Result<Applied, ApplyError> {
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        // A second delivery of the id waits here for the first to commit, then finds it.
        let new = tx
            .execute_cached(
                "INSERT INTO stripe_events (id, type, created, outcome) VALUES ($1, $2, $3, '')
                 ON CONFLICT (id) DO NOTHING",
                &[&event.id, &event.kind, &event.created],
            )
            .await
            .map_err(StoreError::from)?;
        if new == 0 {
            return Ok(Applied::Duplicate);
        }
        // One customer's events are applied one at a time, each with the state read under
        // the lock: the last to commit read the latest.
        tx.execute_cached(
            "SELECT pg_advisory_xact_lock(hashtextextended('stripe customer ' || $1, 0))",
            &[&customer],
        )
        .await
        .map_err(StoreError::from)?;
        let user = tx
            .query_opt_cached(
                "SELECT user_id FROM billing_customers WHERE stripe_customer_id = $1",
                &[&customer],
            )
            .await
            .map_err(StoreError::from)?
            .map(|r| r.try_get(0).map(UserId))
            .transpose()
            .map_err(StoreError::from)?;
        let outcome = match user {
            None => format!("ignored: customer {customer} is not one of ours"),
            Some(user) => {
                let change = fetch().await?;
                keep(&tx, user, &change, terms).await?
            }
        };
        tx.execute_cached(
            "UPDATE stripe_events SET outcome = $2 WHERE id = $1",
            &[&event.id, &outcome],
        )
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Applied::Done(outcome))
    }

    async fn revenue_cents(&self, user: UserId) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = client.query_one_cached(PERIOD_REVENUE, &[&user.0]).await?;
        Ok(row.try_get(0)?)
    }

    async fn set_overage_cap(&self, user: UserId, cap: Option<MicroUsd>) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let changed = client
            .execute_cached(
                "UPDATE users SET overage_cap_micro_usd = $2 WHERE id = $1",
                &[&user.0, &cap.map(|c| c.0)],
            )
            .await?;
        match changed {
            0 => Err(StoreError::NotFound {
                what: "user",
                id: user.to_string(),
            }),
            _ => Ok(()),
        }
    }

    async fn overage_cap(&self, user: UserId) -> Result<Option<MicroUsd>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                "SELECT overage_cap_micro_usd FROM users WHERE id = $1",
                &[&user.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "user",
                id: user.to_string(),
            })?;
        Ok(row.try_get::<_, Option<i64>>(0)?.map(MicroUsd))
    }

    async fn overage_due(&self) -> Result<Vec<OverageDue>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                "SELECT sp.user_id, sp.period_start, sp.ends, c.stripe_customer_id,
                        sp.spent_micro_usd - b.included - b.trial_left,
                        coalesce((SELECT max(o.through_micro_usd) FROM overage_reports o
                                  WHERE o.user_id = sp.user_id AND o.period_start = sp.period_start), 0)
                 FROM user_period_spend sp
                 JOIN billing_customers c ON c.user_id = sp.user_id
                 CROSS JOIN LATERAL period_budget(sp.user_id, sp.period_start) b
                 WHERE sp.paid AND sp.ends > now() - interval '1 day'
                   AND sp.spent_micro_usd > b.included + b.trial_left",
                &[],
            )
            .await?;
        let mut due = Vec::new();
        for row in rows {
            let item = OverageDue {
                user: UserId(row.try_get(0)?),
                period_start: row.try_get(1)?,
                period_end: row.try_get(2)?,
                customer: row.try_get(3)?,
                overage: MicroUsd(row.try_get(4)?),
                reported: MicroUsd(row.try_get(5)?),
            };
            if item.overage > item.reported {
                due.push(item);
            }
        }
        Ok(due)
    }

    async fn write_report(&self, due: &OverageDue) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // One writer per user at a time, and the value is what is unreported as of the
        // latest report: two sweeps never report the same overage twice.
        tx.execute_cached(
            "SELECT pg_advisory_xact_lock(hashtextextended('overage ' || $1::uuid::text, 0))",
            &[&due.user.0],
        )
        .await?;
        let identifier = format!(
            "autocrew-overage-{}-{}-{}",
            due.user, due.period_start, due.overage.0
        );
        tx.execute_cached(
            "WITH reported AS (
                 SELECT coalesce(max(through_micro_usd), 0) AS through FROM overage_reports
                 WHERE user_id = $2 AND period_start = $3)
             INSERT INTO overage_reports (identifier, user_id, period_start, stripe_customer_id,
                 value_micro_usd, through_micro_usd)
             SELECT $1, $2, $3, $4, $5 - reported.through, $5 FROM reported WHERE $5 > reported.through
             ON CONFLICT DO NOTHING",
            &[
                &identifier,
                &due.user.0,
                &due.period_start,
                &due.customer,
                &due.overage.0,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_reports(&self, limit: u32) -> Result<Vec<PendingReport>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                "SELECT o.identifier, o.stripe_customer_id, o.value_micro_usd,
                        least(o.created_at, sp.ends - interval '1 second')
                 FROM overage_reports o
                 JOIN user_period_spend sp ON sp.user_id = o.user_id AND sp.period_start = o.period_start
                 WHERE o.sent_at IS NULL ORDER BY o.created_at LIMIT $1",
                &[&i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingReport {
                    identifier: row.try_get(0)?,
                    customer: row.try_get(1)?,
                    value: MicroUsd(row.try_get(2)?),
                    at: row.try_get(3)?,
                })
            })
            .collect()
    }

    async fn mark_sent(&self, identifier: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "UPDATE overage_reports SET sent_at = now() WHERE identifier = $1 AND sent_at IS NULL",
                &[&identifier],
            )
            .await?;
        Ok(())
    }
}

/// Keeps what `change` shows for `user`; says what it did.
async fn keep(
    tx: &Transaction<'_>,
    user: UserId,
    change: &BillingChange,
    terms: BillingTerms,
) -> Result<String, StoreError> {
    let mut done = Vec::new();
    if let Some(sub) = &change.subscription {
        match SubscriptionRecord::of(sub, user, terms.plans) {
            Some(record) => {
                keep_subscription(tx, &record, terms.grace).await?;
                done.push(format!(
                    "subscription {} {} on {}",
                    record.id, record.status, record.plan
                ));
            }
            None => done.push(format!("subscription {} sells no plan", sub.id)),
        }
    }
    for invoice in &change.invoices {
        if keep_invoice(tx, user, invoice, terms).await? {
            done.push(format!(
                "invoice {} collected {} cents",
                invoice.id, invoice.amount_paid_cents
            ));
        }
    }
    for (charge, invoice) in &change.refunds {
        let kept = tx
            .execute_cached(
                "INSERT INTO revenue_refunds (charge_id, invoice_id, amount_refunded_cents)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM revenue_invoices WHERE invoice_id = $2)
                 ON CONFLICT (charge_id) DO UPDATE
                     SET amount_refunded_cents = greatest(revenue_refunds.amount_refunded_cents, EXCLUDED.amount_refunded_cents),
                         updated_at = now()",
                &[&charge.id, invoice, &charge.amount_refunded_cents.max(0)],
            )
            .await?;
        if kept > 0 {
            done.push(format!(
                "charge {} refunded {} cents in all",
                charge.id, charge.amount_refunded_cents
            ));
        }
    }
    Ok(if done.is_empty() {
        "nothing to keep".to_owned()
    } else {
        done.join("; ")
    })
}
