//! Hard budgets: concurrent calls can never reserve or spend past a budget.

use autocrew_shared::adapters::postgres::{
    PgAccountStore, PgBudgetStore, PgProjectStore, PgRunStore,
};
use autocrew_shared::domain::MicroUsd;
use autocrew_shared::ports::{
    AccountStore, BudgetError, BudgetScope, BudgetStore, ProjectStore, RunStore,
};
use autocrew_tests::{TestDb, seed};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_calls_never_overspend_a_small_run_budget() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let client = db.pool.get().await?;
    // $1 for the run; each call reserves 3 cents worst case and really costs 2.
    client
        .execute(
            "UPDATE runs SET budget_micro_usd = 1000000 WHERE id = $1",
            &[&seeded.run.id.0],
        )
        .await?;
    let budgets = Arc::new(PgBudgetStore::new(db.pool.clone()));
    let done = Arc::new(AtomicBool::new(false));
    let highest = Arc::new(AtomicI64::new(0));
    let watcher = {
        let (pool, done, highest, run) = (
            db.pool.clone(),
            done.clone(),
            highest.clone(),
            seeded.run.id,
        );
        tokio::spawn(async move {
            let client = pool.get().await.expect("connection");
            while !done.load(Ordering::Relaxed) {
                let row = client
                    .query_one(
                        "SELECT spent_micro_usd + reserved_micro_usd FROM runs WHERE id = $1",
                        &[&run.0],
                    )
                    .await
                    .expect("read");
                highest.fetch_max(row.get::<_, i64>(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };

    let calls = (0..200).map(|_| {
        let (budgets, user, run) = (budgets.clone(), seeded.user.id, seeded.run.id);
        tokio::spawn(async move {
            match budgets
                .reserve(user, (Some(run), None), MicroUsd(30_000))
                .await
            {
                Ok(reservation) => {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    budgets
                        .settle(reservation.id, MicroUsd(20_000))
                        .await
                        .map(|()| true)
                        .map_err(anyhow::Error::from)
                }
                Err(BudgetError::Exceeded {
                    scope: BudgetScope::Run,
                    ..
                }) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    });
    let mut granted = 0i64;
    for outcome in futures::future::join_all(calls).await {
        granted += i64::from(outcome??);
    }
    done.store(true, Ordering::Relaxed);
    watcher.await?;

    let run = PgRunStore::new(db.pool.clone()).run(seeded.run.id).await?;
    assert!(
        run.spent <= run.budget,
        "spent {} of {}",
        run.spent,
        run.budget
    );
    assert_eq!(
        run.reserved,
        MicroUsd::ZERO,
        "every reservation was settled"
    );
    assert_eq!(
        run.spent,
        MicroUsd(granted * 20_000),
        "spent is exactly the settled calls"
    );
    assert!(
        highest.load(Ordering::Relaxed) <= 1_000_000,
        "spent + reserved peaked at {}",
        highest.load(Ordering::Relaxed)
    );
    assert!(granted > 0 && granted < 200, "{granted} calls granted");
    Ok(())
}

#[tokio::test]
async fn the_periods_ai_budget_is_forty_percent_of_revenue_received_plus_the_trial_credit()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let projects = PgProjectStore::new(db.pool.clone());
    let accounts = PgAccountStore::new(db.pool.clone());
    let free = projects.create_user("free@example.com", "Free").await?;
    let trying = accounts
        .sign_up(
            "trial@example.com",
            "Trial",
            MicroUsd::from_dollars(1),
            "$argon2id$test",
        )
        .await?;
    let paying = projects.create_user("paid@example.com", "Paid").await?;
    autocrew_tests::funds::fund(&db.pool, paying.id, 2000).await?;
    let budgets = PgBudgetStore::new(db.pool.clone());

    let free_offline = budgets.reserve(free.id, (None, None), MicroUsd::ZERO).await;
    let free_paid = budgets.reserve(free.id, (None, None), MicroUsd(1)).await;
    let trial_most = budgets
        .reserve(trying.id, (None, None), MicroUsd(900_000))
        .await?;
    let trial_over = budgets
        .reserve(trying.id, (None, None), MicroUsd(200_000))
        .await;
    let paid_most = budgets
        .reserve(paying.id, (None, None), MicroUsd(7_999_000))
        .await?;
    let paid_over = budgets
        .reserve(paying.id, (None, None), MicroUsd(2_000))
        .await;
    budgets.settle(paid_most.id, MicroUsd(1_000_000)).await?;
    budgets.settle(paid_most.id, MicroUsd(5_000_000)).await?;
    let paid_after = budgets
        .reserve(paying.id, (None, None), MicroUsd(2_000))
        .await;
    budgets.settle(trial_most.id, MicroUsd(900_000)).await?;
    let period = budgets.standing(paying.id).await?;
    let trial = budgets.standing(trying.id).await?;

    let refused = |r: &Result<_, BudgetError>| {
        matches!(
            r,
            Err(BudgetError::Exceeded {
                scope: BudgetScope::UserPeriod,
                ..
            })
        )
    };
    assert!(free_offline.is_ok(), "offline calls cost nothing and pass");
    assert!(refused(&free_paid), "no revenue, no trial: {free_paid:?}");
    assert!(refused(&trial_over), "$1 of trial credit: {trial_over:?}");
    assert!(refused(&paid_over), "40% of $20 is $8: {paid_over:?}");
    assert!(
        paid_after.is_ok(),
        "settling at $1 freed the rest; settling twice changed nothing"
    );
    assert_eq!(
        (period.paid, period.included, period.spent),
        (true, MicroUsd::from_dollars(8), MicroUsd::from_dollars(1))
    );
    assert_eq!(
        (trial.paid, trial.trial_left, trial.spent, trial.left()),
        (
            false,
            MicroUsd::from_dollars(1),
            MicroUsd(900_000),
            MicroUsd(100_000)
        ),
        "the trial credit counts until spent"
    );
    let spent: i64 = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT spent_micro_usd FROM user_period_spend WHERE user_id = $1",
            &[&paying.id.0],
        )
        .await?
        .get(0);
    assert_eq!(spent, 1_000_000);
    Ok(())
}

#[tokio::test]
async fn a_released_reservation_returns_to_both_budgets_and_a_late_settle_still_spends()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let budgets = PgBudgetStore::new(db.pool.clone());
    let slow = budgets
        .reserve(
            seeded.user.id,
            (Some(seeded.run.id), None),
            MicroUsd(30_000),
        )
        .await?;
    let client = db.pool.get().await?;
    client
        .execute(
            "UPDATE budget_reservations SET created_at = now() - interval '1 hour' WHERE id = $1",
            &[&slow.id],
        )
        .await?;
    let fresh = budgets
        .reserve(
            seeded.user.id,
            (Some(seeded.run.id), None),
            MicroUsd(10_000),
        )
        .await?;

    let released = budgets.release_expired(Duration::from_secs(900)).await?;
    let run = PgRunStore::new(db.pool.clone()).run(seeded.run.id).await?;
    budgets.settle(slow.id, MicroUsd(7_000)).await?;
    budgets.settle(slow.id, MicroUsd(7_000)).await?;
    budgets.settle(fresh.id, MicroUsd(2_000)).await?;
    let after = PgRunStore::new(db.pool.clone()).run(seeded.run.id).await?;

    assert_eq!(released, 1, "only the reservation older than any call");
    assert_eq!(run.reserved, MicroUsd(10_000));
    assert_eq!(
        (after.reserved, after.spent),
        (MicroUsd::ZERO, MicroUsd(9_000)),
        "the slow call's actual cost is spent once, and nothing is reserved"
    );
    let month: (i64, i64) = client
        .query_one(
            "SELECT reserved_micro_usd, spent_micro_usd FROM user_period_spend WHERE user_id = $1",
            &[&seeded.user.id.0],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))?;
    assert_eq!(month, (0, 9_000));
    Ok(())
}
