//! Each model call's bookkeeping on Postgres, one transaction at each end of the call:
//! the budget reservation with a provider slot (one row per slot, leased with `SKIP
//! LOCKED`), then the settlement with the slot's release and the ledger row.

use super::Pool;
use super::budgets::{hold, refusal, settle_in};
use super::ledger::insert_call;
use crate::domain::records::LlmCall;
use crate::domain::{MicroUsd, RunId, TaskId, UserId};
use crate::ports::{BudgetError, CallBook, Lease, OpenCall, Slots, StoreError};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use std::collections::HashSet;
use std::sync::Mutex;
use uuid::Uuid;

/// `CallBook` on Postgres.
pub struct PgCallBook {
    pool: Pool,
    /// (provider, limit) pairs whose slot rows this process has made sure exist.
    seeded: Mutex<HashSet<(String, u32)>>,
}

impl PgCallBook {
    pub fn new(pool: Pool) -> Self {
        PgCallBook {
            pool,
            seeded: Mutex::new(HashSet::new()),
        }
    }

    /// Makes sure the provider's `limit` slot rows exist, once per process.
    async fn seed(&self, client: &impl GenericClient, slots: &Slots<'_>) -> Result<(), StoreError> {
        let key = (slots.provider.to_owned(), slots.limit);
        if self
            .seeded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        let limit = i32::try_from(slots.limit).unwrap_or(i32::MAX);
        let seed = client
            .prepare_cached(
                "INSERT INTO llm_provider_slots (provider, slot)
                 SELECT $1, g FROM generate_series(0, $2 - 1) AS g ON CONFLICT DO NOTHING",
            )
            .await?;
        client.execute(&seed, &[&slots.provider, &limit]).await?;
        self.seeded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        Ok(())
    }
}

/// Leases a free slot below the limit, if there is one.
async fn lease(
    client: &impl GenericClient,
    slots: &Slots<'_>,
) -> Result<Option<Lease>, StoreError> {
    let limit = i32::try_from(slots.limit).unwrap_or(i32::MAX);
    let holder = Uuid::new_v4();
    // The free slot is picked in a CTE: one with FOR UPDATE is evaluated once. As a
    // subquery in FROM it could be re-run for each row of the join and lease several slots
    // in one statement (seen: five at once, which failed the call and leaked them until
    // their leases ran out).
    let statement = client
        .prepare_cached(
            "WITH free AS (SELECT slot FROM llm_provider_slots
                 WHERE provider = $1 AND slot < $2 AND (holder IS NULL OR leased_until < now())
                 ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED)
             UPDATE llm_provider_slots s SET holder = $3, leased_until = now() + make_interval(secs => $4)
             FROM free WHERE s.provider = $1 AND s.slot = free.slot
             RETURNING s.slot",
        )
        .await?;
    let row = client
        .query_opt(
            &statement,
            &[
                &slots.provider,
                &limit,
                &holder,
                &slots.lease_for.as_secs_f64(),
            ],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?.map(|slot| Lease {
        provider: slots.provider.to_owned(),
        slot,
        holder,
    }))
}

#[async_trait]
impl CallBook for PgCallBook {
    async fn open(
        &self,
        user: UserId,
        holder: (Option<RunId>, Option<TaskId>),
        amount: MicroUsd,
        slots: &Slots<'_>,
    ) -> Result<Option<OpenCall>, BudgetError> {
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        self.seed(&client, slots).await?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let reservation = match hold(&tx, user, holder, amount).await? {
            Ok(reservation) => reservation,
            Err(refused) => {
                // Rolling back gives the user's month its reservation back too.
                tx.rollback().await.map_err(StoreError::from)?;
                return Err(refusal(&client, refused, user, holder.0, amount).await);
            }
        };
        let Some(lease) = lease(&tx, slots).await? else {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(None);
        };
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Some(OpenCall { reservation, lease }))
    }

    async fn close(&self, call: &OpenCall, row: &LlmCall) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        settle_in(&tx, call.reservation.id, row.cost).await?;
        let release = tx
            .prepare_cached(
                "UPDATE llm_provider_slots SET holder = NULL, leased_until = NULL
                 WHERE provider = $1 AND slot = $2 AND holder = $3",
            )
            .await?;
        let lease = &call.lease;
        tx.execute(&release, &[&lease.provider, &lease.slot, &lease.holder])
            .await?;
        insert_call(&tx, row).await?;
        tx.commit().await?;
        Ok(())
    }
}
