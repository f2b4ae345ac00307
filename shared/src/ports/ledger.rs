//! The LLM cost ledger.

use super::store::StoreError;
use crate::domain::records::{CostTotals, LlmCall, TokenUsage};
use crate::domain::{MicroUsd, ProjectId, RunId, UserId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What cost rollups are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
pub enum CostGroup {
    Run,
    Project,
    Agent,
    User,
    /// `provider/model`.
    Model,
}

impl std::str::FromStr for CostGroup {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "run" => CostGroup::Run,
            "project" => CostGroup::Project,
            "agent" => CostGroup::Agent,
            "user" => CostGroup::User,
            "model" => CostGroup::Model,
            other => {
                return Err(format!(
                    "{other:?} is not one of run, project, agent, user, model"
                ));
            }
        })
    }
}

/// One group's calls, tokens and cost over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct CostRollup {
    /// The run, project or user id, the agent kind, or `provider/model`.
    pub key: String,
    /// Ledger rows: answers, cache hits, errors and refusals.
    pub calls: u64,
    pub cache_hits: u64,
    /// Errors and refusals.
    pub failed: u64,
    pub usage: TokenUsage,
    pub cost: MicroUsd,
}

/// Which ledger rows a rollup reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostQuery {
    pub user: UserId,
    pub project: Option<ProjectId>,
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    pub by: CostGroup,
}

/// Every LLM call, priced and attributed, one row each.
#[async_trait]
pub trait Ledger: Send + Sync {
    async fn record(&self, call: &LlmCall) -> Result<(), StoreError>;
    /// Calls, tokens and cost of one run.
    async fn run_totals(&self, run: RunId) -> Result<CostTotals, StoreError>;
    /// The same totals for each task of the run that made calls.
    async fn task_totals(
        &self,
        run: RunId,
    ) -> Result<Vec<(crate::domain::TaskId, CostTotals)>, StoreError>;
    /// The user's calls over a period, grouped, costliest first.
    async fn rollup(&self, query: CostQuery) -> Result<Vec<CostRollup>, StoreError>;
}
