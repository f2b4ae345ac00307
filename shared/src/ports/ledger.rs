//! The LLM cost ledger.

use super::store::StoreError;
use crate::domain::RunId;
use crate::domain::records::{CostTotals, LlmCall};
use async_trait::async_trait;

/// Every LLM call, priced and attributed, one row each.
#[async_trait]
pub trait Ledger: Send + Sync {
    async fn record(&self, call: &LlmCall) -> Result<(), StoreError>;
    /// Calls, tokens and cost of one run.
    async fn run_totals(&self, run: RunId) -> Result<CostTotals, StoreError>;
}
