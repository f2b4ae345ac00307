//! Long-term memory as the crew uses it: what an agent learned is embedded (through the
//! gateway, so priced and in the ledger) and kept; before a task and before planning, the
//! memories nearest the work, weighted by recency, are recalled within a token budget.

use super::gateway::{Gateway, GatewayError};
use crate::domain::memory::{self, MemoryHit, MemoryNote, SimilarProject};
use crate::domain::records::Attribution;
use crate::domain::{MemoryKind, ProjectId};
use crate::ports::gateway::Embedding;
use crate::ports::llm::LlmError;
use crate::ports::{MemorySource, MemoryStore, NewMemory, Remembered};
use chrono::Utc;

/// How much a recall brings: at most `memories`, within `tokens`, and the `projects`
/// most similar other projects (the planner's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecallLimits {
    pub memories: usize,
    pub tokens: usize,
    pub projects: u32,
}

/// A task's recall: eight memories in about 800 tokens.
pub const TASK_RECALL: RecallLimits = RecallLimits {
    memories: 8,
    tokens: 800,
    projects: 0,
};

/// The planner's recall: the same, and three similar projects.
pub const PLAN_RECALL: RecallLimits = RecallLimits {
    memories: 8,
    tokens: 800,
    projects: 3,
};

/// Candidates read from the index for each memory recalled, for recency to reorder.
const CANDIDATES_PER_PICK: usize = 4;

/// What was recalled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recall {
    pub memories: Vec<MemoryHit>,
    pub projects: Vec<SimilarProject>,
}

impl Recall {
    pub fn is_empty(&self) -> bool {
        self.memories.is_empty() && self.projects.is_empty()
    }
}

/// See the module documentation. Made where it is used, from the function's gateway
/// and memory store.
#[derive(Clone, Copy)]
pub struct Memories<'a> {
    pub store: &'a dyn MemoryStore,
    pub gateway: &'a Gateway,
}

impl Memories<'_> {
    /// One vector for `text`.
    async fn embed_one(&self, who: &Attribution, text: &str) -> Result<Embedding, GatewayError> {
        let mut vectors = self.gateway.embed(who, &[text.to_owned()]).await?;
        vectors.pop().ok_or_else(|| {
            GatewayError::Llm(LlmError::Rejected {
                provider: self.gateway.models().embedder.provider().to_owned(),
                model: self.gateway.models().embedder.model().to_owned(),
                message: "no vector".into(),
            })
        })
    }

    fn source(who: &Attribution) -> MemorySource {
        MemorySource {
            user: who.user_id,
            project: who.project_id,
            agent: who.agent,
            run: who.run_id,
            task: who.task_id,
        }
    }

    /// Keeps what the agent of `who` asked to remember (checked by `memory::checked_notes`;
    /// an unusable list is dropped with a warning, the task's work stands).
    pub async fn remember(
        &self,
        who: &Attribution,
        notes: &[MemoryNote],
    ) -> Result<Vec<Remembered>, GatewayError> {
        let notes = match memory::checked_notes(notes) {
            Ok(notes) if notes.is_empty() => return Ok(Vec::new()),
            Ok(notes) => notes,
            Err(e) => {
                tracing::warn!(task = ?who.task_id, error = e, "memories not kept");
                return Ok(Vec::new());
            }
        };
        let texts: Vec<String> = notes.iter().map(|n| n.content.clone()).collect();
        let vectors = self.gateway.embed(who, &texts).await?;
        let memories: Vec<NewMemory> = notes
            .iter()
            .zip(vectors)
            .map(|(note, embedding)| NewMemory {
                kind: note.kind,
                content: note.content.clone(),
                user_wide: note.is_user_wide(),
                embedding,
            })
            .collect();
        Ok(self.store.remember(Self::source(who), &memories).await?)
    }

    /// Keeps `gist` as the project's own memory (replacing its earlier one): what finds it
    /// among the user's similar projects.
    pub async fn remember_gist(
        &self,
        who: &Attribution,
        gist: &str,
    ) -> Result<Remembered, GatewayError> {
        let content: String = gist.trim().chars().take(memory::CONTENT_MAX).collect();
        let memory = NewMemory {
            kind: MemoryKind::Project,
            embedding: self.embed_one(who, &content).await?,
            content,
            user_wide: false,
        };
        let mut kept = self.store.remember(Self::source(who), &[memory]).await?;
        kept.pop().ok_or_else(|| {
            GatewayError::Store(crate::ports::StoreError::Backend("no memory kept".into()))
        })
    }

    /// The memories of `who`'s project and user nearest `query`, weighted by recency,
    /// within `limits` (those `who`'s run wrote left out); and, if asked, the user's most
    /// similar other projects.
    pub async fn recall(
        &self,
        who: &Attribution,
        query: &str,
        limits: RecallLimits,
    ) -> Result<Recall, GatewayError> {
        let embedding = self.embed_one(who, query).await?;
        let wanted = u32::try_from(limits.memories * CANDIDATES_PER_PICK).unwrap_or(u32::MAX);
        let candidates = self
            .store
            .nearest(
                (who.user_id, who.project_id),
                who.run_id,
                &embedding,
                wanted,
            )
            .await?;
        let memories = memory::pick(candidates, Utc::now(), limits.memories, limits.tokens);
        let projects = match limits.projects {
            0 => Vec::new(),
            n => self.similar_to(who, &embedding, n).await?,
        };
        Ok(Recall { memories, projects })
    }

    /// `who`'s project's memories nearest `query` (all of them ranked, none left out for
    /// relevance: the user is searching), or its latest without a query.
    pub async fn search(
        &self,
        who: &Attribution,
        query: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MemoryHit>, GatewayError> {
        let Some(query) = query else {
            let recent = self
                .store
                .recent(who.user_id, who.project_id, limit)
                .await?;
            return Ok(recent
                .into_iter()
                .map(|memory| MemoryHit {
                    memory,
                    similarity: 1.0,
                    score: 1.0,
                })
                .collect());
        };
        let embedding = self.embed_one(who, query).await?;
        let now = Utc::now();
        let mut hits = self
            .store
            .nearest((who.user_id, who.project_id), None, &embedding, limit)
            .await?;
        for hit in &mut hits {
            hit.score = (f64::from(hit.similarity)
                * memory::recency_weight(hit.memory.updated_at, now))
                as f32;
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(hits)
    }

    /// The user's projects most similar to `who`'s: by its gist, or by `describe` (its name
    /// and description) while it has none.
    pub async fn similar_projects(
        &self,
        who: &Attribution,
        describe: &str,
        limit: u32,
    ) -> Result<Vec<SimilarProject>, GatewayError> {
        let model = self.gateway.models().embedder.model().to_owned();
        let embedding = match self.store.gist(who.user_id, who.project_id, &model).await? {
            Some(gist) => gist,
            None => self.embed_one(who, describe).await?,
        };
        self.similar_to(who, &embedding, limit).await
    }

    async fn similar_to(
        &self,
        who: &Attribution,
        embedding: &Embedding,
        limit: u32,
    ) -> Result<Vec<SimilarProject>, GatewayError> {
        let mut projects = self
            .store
            .similar_projects(who.user_id, who.project_id, embedding, limit)
            .await?;
        projects.retain(|p| p.similarity >= memory::RELEVANT_SIMILARITY);
        Ok(projects)
    }
}

/// Who a memory search of the API is charged to: the project, as the orchestrator's.
pub fn api_attribution(user: crate::domain::UserId, project: ProjectId) -> Attribution {
    Attribution {
        user_id: user,
        project_id: project,
        run_id: None,
        task_id: None,
        agent: crate::domain::AgentKind::Orchestrator,
    }
}
