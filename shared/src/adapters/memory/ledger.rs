//! The LLM cost ledger, in memory.

use crate::domain::records::{CostTotals, LlmCall, TokenUsage};
use crate::domain::{LlmCallOutcome, MicroUsd, RunId, TaskId};
use crate::ports::{CostGroup, CostQuery, CostRollup, Ledger, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The `Ledger` twin: every row kept with the time it was recorded, summed as the Postgres
/// ledger sums them (every row counts as a call; cost and tokens add up).
#[derive(Default)]
pub struct MemLedger {
    rows: Mutex<Vec<(DateTime<Utc>, LlmCall)>>,
}

impl MemLedger {
    /// Every row with the time it was recorded.
    pub(super) fn rows(&self) -> Vec<(DateTime<Utc>, LlmCall)> {
        self.rows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

fn add(totals: &mut CostTotals, call: &LlmCall) {
    totals.calls += 1;
    totals.usage = sum(totals.usage, call.usage);
    totals.cost += call.cost;
}

fn sum(a: TokenUsage, b: TokenUsage) -> TokenUsage {
    TokenUsage {
        input: a.input.saturating_add(b.input),
        output: a.output.saturating_add(b.output),
        cache_write: a.cache_write.saturating_add(b.cache_write),
        cache_read: a.cache_read.saturating_add(b.cache_read),
    }
}

#[async_trait]
impl Ledger for MemLedger {
    async fn record(&self, call: &LlmCall) -> Result<(), StoreError> {
        self.rows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((Utc::now(), call.clone()));
        Ok(())
    }

    async fn run_totals(&self, run: RunId) -> Result<CostTotals, StoreError> {
        let mut totals = CostTotals::default();
        for (_, call) in self.rows() {
            if call.attribution.run_id == Some(run) {
                add(&mut totals, &call);
            }
        }
        Ok(totals)
    }

    async fn task_totals(&self, run: RunId) -> Result<Vec<(TaskId, CostTotals)>, StoreError> {
        let mut by_task: BTreeMap<String, (TaskId, CostTotals)> = BTreeMap::new();
        for (_, call) in self.rows() {
            if call.attribution.run_id != Some(run) {
                continue;
            }
            if let Some(task) = call.attribution.task_id {
                let entry = by_task
                    .entry(task.to_string())
                    .or_insert((task, CostTotals::default()));
                add(&mut entry.1, &call);
            }
        }
        Ok(by_task.into_values().collect())
    }

    async fn rollup(&self, query: CostQuery) -> Result<Vec<CostRollup>, StoreError> {
        let mut groups: BTreeMap<String, CostRollup> = BTreeMap::new();
        for (at, call) in self.rows() {
            let who = &call.attribution;
            let inside = who.user_id == query.user
                && query.project.is_none_or(|p| p == who.project_id)
                && at >= query.from
                && at < query.to;
            if !inside {
                continue;
            }
            let key = match query.by {
                CostGroup::Run => match who.run_id {
                    Some(run) => run.to_string(),
                    None => continue,
                },
                CostGroup::Project => who.project_id.to_string(),
                CostGroup::Agent => who.agent.as_str().to_owned(),
                CostGroup::User => who.user_id.to_string(),
                CostGroup::Model => format!("{}/{}", call.provider, call.model),
            };
            let group = groups.entry(key.clone()).or_insert(CostRollup {
                key,
                calls: 0,
                cache_hits: 0,
                failed: 0,
                usage: TokenUsage::default(),
                cost: MicroUsd::ZERO,
            });
            group.calls += 1;
            group.cache_hits += u64::from(call.outcome == LlmCallOutcome::CacheHit);
            group.failed += u64::from(matches!(
                call.outcome,
                LlmCallOutcome::Error | LlmCallOutcome::Refused
            ));
            group.usage = sum(group.usage, call.usage);
            group.cost += call.cost;
        }
        let mut rollups: Vec<CostRollup> = groups.into_values().collect();
        // Costliest first, then by key, as the Postgres ledger orders them.
        rollups.sort_by(|a, b| b.cost.cmp(&a.cost).then_with(|| a.key.cmp(&b.key)));
        Ok(rollups)
    }
}
