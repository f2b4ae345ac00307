//! Long-term memory's store: vectors by user and project, searched by cosine similarity.

use super::gateway::Embedding;
use super::store::StoreError;
use crate::domain::memory::{Memory, MemoryHit, SimilarProject};
use crate::domain::{AgentKind, MemoryId, MemoryKind, ProjectId, RunId, TaskId, UserId};
use async_trait::async_trait;

/// Where memories come from: the agent, and the run and task it worked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySource {
    pub user: UserId,
    pub project: ProjectId,
    pub agent: AgentKind,
    pub run: Option<RunId>,
    pub task: Option<TaskId>,
}

/// One memory to keep, with its vector.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMemory {
    pub kind: MemoryKind,
    pub content: String,
    /// Kept for every project of the user (the project column stays empty).
    pub user_wide: bool,
    pub embedding: Embedding,
}

/// What keeping a memory did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    pub id: MemoryId,
    /// It was a near-duplicate of this memory, which took its wording instead.
    pub merged: bool,
}

#[async_trait]
pub trait MemoryStore: Send + Sync {
    /// Keeps `memories` from `source`, each merged into the nearest memory of the same
    /// user, scope (the project, or user-wide), kind and embedding model when at least
    /// `DUPLICATE_SIMILARITY` similar. A project gist replaces the project's earlier one.
    async fn remember(
        &self,
        source: MemorySource,
        memories: &[NewMemory],
    ) -> Result<Vec<Remembered>, StoreError>;
    /// The `limit` memories nearest `embedding` among `project`'s (its gist too) and
    /// `user`'s user-wide ones, but those last written by run `besides` (a run's own work
    /// reaches its tasks as upstream results), with their similarity; their score is left
    /// for recall.
    async fn nearest(
        &self,
        (user, project): (UserId, ProjectId),
        besides: Option<RunId>,
        embedding: &Embedding,
        limit: u32,
    ) -> Result<Vec<MemoryHit>, StoreError>;
    /// `project`'s and `user`'s user-wide memories, most recently written first.
    async fn recent(
        &self,
        user: UserId,
        project: ProjectId,
        limit: u32,
    ) -> Result<Vec<Memory>, StoreError>;
    /// The vector of `project`'s gist, if it has one.
    async fn gist(
        &self,
        user: UserId,
        project: ProjectId,
        model: &str,
    ) -> Result<Option<Embedding>, StoreError>;
    /// `user`'s other projects whose gists are nearest `embedding`, most similar first.
    async fn similar_projects(
        &self,
        user: UserId,
        besides: ProjectId,
        embedding: &Embedding,
        limit: u32,
    ) -> Result<Vec<SimilarProject>, StoreError>;
    /// Forgets `user`'s memory `id`; another user's is `NotFound`.
    async fn forget(&self, user: UserId, id: MemoryId) -> Result<(), StoreError>;
}
