//! The LLM call ledger.

use super::Pool;
use super::cached::Cached;
use crate::domain::LlmCallOutcome;
use crate::domain::records::{CostTotals, LlmCall, TokenUsage};
use crate::domain::{MicroUsd, RunId};
use crate::ports::{CostGroup, CostQuery, CostRollup, Ledger, StoreError};
use async_trait::async_trait;
use uuid::Uuid;

/// `Ledger` on Postgres.
#[derive(Clone)]
pub struct PgLedger {
    pool: Pool,
}

impl PgLedger {
    pub fn new(pool: Pool) -> Self {
        PgLedger { pool }
    }
}

fn int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn tokens(row: &tokio_postgres::Row, column: usize) -> Result<u32, StoreError> {
    let value: i64 = row.try_get(column)?;
    Ok(u32::try_from(value).unwrap_or(u32::MAX))
}

/// Writes one ledger row, on `client` (a transaction of the caller's, or not).
pub(super) async fn insert_call(
    client: &impl deadpool_postgres::GenericClient,
    call: &LlmCall,
) -> Result<(), StoreError> {
    let a = &call.attribution;
    client
        .execute(
            &client.prepare_cached("INSERT INTO llm_calls (id, user_id, project_id, run_id, task_id, agent, provider, model, outcome,
                 input_tokens, output_tokens, cache_write_tokens, cache_read_tokens, cost_micro_usd, latency_ms, error, attempt, waited_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)").await.map_err(StoreError::from)?,
            &[
                &Uuid::new_v4(),
                &a.user_id.0,
                &a.project_id.0,
                &a.run_id.map(|r| r.0),
                &a.task_id.map(|t| t.0),
                &a.agent,
                &call.provider,
                &call.model,
                &call.outcome,
                &int(call.usage.input),
                &int(call.usage.output),
                &int(call.usage.cache_write),
                &int(call.usage.cache_read),
                &call.cost.0,
                &int(call.latency_ms),
                &call.error,
                &int(call.attempt.max(1)),
                &int(call.waited_ms),
            ],
        )
        .await?;
    Ok(())
}

#[async_trait]
impl Ledger for PgLedger {
    async fn record(&self, call: &LlmCall) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        insert_call(&client, call).await
    }

    async fn rollup(&self, query: CostQuery) -> Result<Vec<CostRollup>, StoreError> {
        let key = match query.by {
            CostGroup::Run => "coalesce(run_id::text, 'none')",
            CostGroup::Project => "project_id::text",
            CostGroup::Agent => "agent::text",
            CostGroup::User => "user_id::text",
            CostGroup::Model => "provider || '/' || model",
        };
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client.prepare_cached(&format!(
                    "SELECT {key}, count(*),
                            count(*) FILTER (WHERE outcome = '{hit}'),
                            count(*) FILTER (WHERE outcome IN ('{error}', '{refused}')),
                            coalesce(sum(input_tokens), 0)::bigint, coalesce(sum(output_tokens), 0)::bigint,
                            coalesce(sum(cache_write_tokens), 0)::bigint, coalesce(sum(cache_read_tokens), 0)::bigint,
                            coalesce(sum(cost_micro_usd), 0)::bigint
                     FROM llm_calls
                     WHERE user_id = $1 AND created_at >= $2 AND created_at < $3
                       AND ($4::uuid IS NULL OR project_id = $4)
                     GROUP BY 1 ORDER BY 9 DESC, 1",
                    hit = LlmCallOutcome::CacheHit,
                    error = LlmCallOutcome::Error,
                    refused = LlmCallOutcome::Refused,
                )).await.map_err(StoreError::from)?,
                &[&query.user.0, &query.from, &query.to, &query.project.map(|p| p.0)],
            )
            .await?;
        let count = |row: &tokio_postgres::Row, i: usize| -> Result<u64, StoreError> {
            Ok(u64::try_from(row.try_get::<_, i64>(i)?).unwrap_or(0))
        };
        rows.iter()
            .map(|row| {
                Ok(CostRollup {
                    key: row.try_get(0)?,
                    calls: count(row, 1)?,
                    cache_hits: count(row, 2)?,
                    failed: count(row, 3)?,
                    usage: TokenUsage {
                        input: tokens(row, 4)?,
                        output: tokens(row, 5)?,
                        cache_write: tokens(row, 6)?,
                        cache_read: tokens(row, 7)?,
                    },
                    cost: MicroUsd(row.try_get(8)?),
                })
            })
            .collect()
    }

    async fn run_totals(&self, run: RunId) -> Result<CostTotals, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                &format!("SELECT {TOTALS} FROM llm_calls WHERE run_id = $1"),
                &[&run.0],
            )
            .await?;
        totals_from(&row, 0)
    }

    async fn task_totals(
        &self,
        run: RunId,
    ) -> Result<Vec<(crate::domain::TaskId, CostTotals)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT task_id, {TOTALS} FROM llm_calls
                     WHERE run_id = $1 AND task_id IS NOT NULL GROUP BY task_id"
                ),
                &[&run.0],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((crate::domain::TaskId(row.try_get(0)?), totals_from(row, 1)?)))
            .collect()
    }
}

/// The sums `totals_from` reads.
pub(super) const TOTALS: &str =
    "count(*), coalesce(sum(input_tokens), 0)::bigint, coalesce(sum(output_tokens), 0)::bigint,
     coalesce(sum(cache_write_tokens), 0)::bigint, coalesce(sum(cache_read_tokens), 0)::bigint,
     coalesce(sum(cost_micro_usd), 0)::bigint";

/// `TOTALS` read from `row`, starting at column `at`.
pub(super) fn totals_from(row: &tokio_postgres::Row, at: usize) -> Result<CostTotals, StoreError> {
    let calls: i64 = row.try_get(at)?;
    Ok(CostTotals {
        calls: u64::try_from(calls).unwrap_or(0),
        usage: TokenUsage {
            input: tokens(row, at + 1)?,
            output: tokens(row, at + 2)?,
            cache_write: tokens(row, at + 3)?,
            cache_read: tokens(row, at + 4)?,
        },
        cost: MicroUsd(row.try_get(at + 5)?),
    })
}
