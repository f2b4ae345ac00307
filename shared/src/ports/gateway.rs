//! What the LLM gateway keeps besides the ledger and the budgets: exact-match responses,
//! the per-user semantic cache, and each call's bookkeeping (its reservation and one of the
//! provider's concurrency slots, shared by every process).

use super::budget::{BudgetError, Reservation};
use super::llm::LlmResponse;
use super::store::StoreError;
use crate::domain::records::LlmCall;
use crate::domain::{MicroUsd, RunId, TaskId, UserId};
use async_trait::async_trait;
use std::time::Duration;
use uuid::Uuid;

/// Answers kept by the sha-256 of everything that shaped them.
#[async_trait]
pub trait ResponseCache: Send + Sync {
    /// The unexpired answer for `key`, counting the hit.
    async fn get(&self, key: &str) -> Result<Option<LlmResponse>, StoreError>;
    /// Keeps `response` for `ttl`; a newer answer for the same key replaces the old one.
    async fn put(&self, key: &str, response: &LlmResponse, ttl: Duration)
    -> Result<(), StoreError>;
}

/// A vector with the model that made it; its dimension is `values.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub model: String,
    pub values: Vec<f32>,
}

/// A semantic cache hit.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticHit {
    pub response: LlmResponse,
    pub similarity: f32,
    pub prompt: String,
}

/// Per user: answers to questions close enough in meaning.
#[async_trait]
pub trait SemanticCache: Send + Sync {
    /// The user's threshold, or `None` when they have not opted in.
    async fn threshold(&self, user: UserId) -> Result<Option<f32>, StoreError>;
    /// The closest unexpired answer in `scope` with similarity at or above `threshold`,
    /// among vectors of the same embedding model.
    async fn nearest(
        &self,
        user: UserId,
        scope: &str,
        embedding: &Embedding,
        threshold: f32,
    ) -> Result<Option<SemanticHit>, StoreError>;
    async fn put(
        &self,
        user: UserId,
        scope: &str,
        prompt: &str,
        embedding: &Embedding,
        response: &LlmResponse,
        ttl: Duration,
    ) -> Result<(), StoreError>;
}

/// A leased concurrency slot; give it back with `release`. A holder that dies loses it
/// when the lease runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub provider: String,
    pub slot: i32,
    pub holder: Uuid,
}

/// At most `limit` calls of `provider` in flight across every process; a slot is leased
/// for `lease_for` (a holder that dies loses it then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slots<'a> {
    pub provider: &'a str,
    pub limit: u32,
    pub lease_for: Duration,
}

/// A call under way: its budget reservation and its provider slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCall {
    pub reservation: Reservation,
    pub lease: Lease,
}

/// One model call's bookkeeping, one transaction at each end: before the call, the budget
/// reservation (as `BudgetStore::reserve`) with a provider slot; after it, the settlement
/// at the actual cost, the slot's release and the ledger row.
#[async_trait]
pub trait CallBook: Send + Sync {
    /// Reserves `amount` for a call of `holder` (run, task) and leases a slot, both or
    /// neither. `Ok(None)`: every slot is taken, and nothing is held.
    async fn open(
        &self,
        user: UserId,
        holder: (Option<RunId>, Option<TaskId>),
        amount: MicroUsd,
        slots: &Slots<'_>,
    ) -> Result<Option<OpenCall>, BudgetError>;
    /// Settles the reservation at `row.cost` (see `BudgetStore::settle`), releases the
    /// slot and writes the ledger row.
    async fn close(&self, call: &OpenCall, row: &LlmCall) -> Result<(), StoreError>;
}
