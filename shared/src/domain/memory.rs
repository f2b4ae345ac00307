//! Long-term memory: what agents learned (decisions, facts, the user's preferences, each
//! project's gist), kept per user and recalled by meaning, weighted by recency.
//!
//! A memory belongs to one user, and within the user to one project unless it is
//! user-wide (a preference): a task of project P recalls P's memories and the user's
//! user-wide ones, never another user's. What is recalled reaches the model as data, in
//! the task's context, never as instructions.

use super::{AgentKind, MemoryId, MemoryKind, ProjectId, RunId, TaskId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Two memories at least this similar (cosine) are one: the later wording replaces the
/// earlier and the memory counts one more mention, instead of being stored twice.
pub const DUPLICATE_SIMILARITY: f32 = 0.92;
/// Memories less similar than this to the question are not recalled at all.
pub const RELEVANT_SIMILARITY: f32 = 0.2;
/// A memory's weight halves every this many days since it was last written or confirmed
/// (down to `RECENCY_FLOOR`).
pub const HALF_LIFE_DAYS: f64 = 30.0;
/// The least weight age leaves a memory: an old decision still counts half.
pub const RECENCY_FLOOR: f64 = 0.5;
/// The longest memory, in characters.
pub const CONTENT_MAX: usize = 500;
/// At most this many memories one task writes.
pub const NOTES_MAX: usize = 5;

/// One memory as the API shows it (its vector stays in the database).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Memory {
    pub id: MemoryId,
    pub user_id: UserId,
    /// Its project; none for a user-wide memory (a preference), which every project of the
    /// user recalls.
    pub project_id: Option<ProjectId>,
    pub kind: MemoryKind,
    pub content: String,
    /// The agent that wrote it last.
    pub agent: AgentKind,
    /// The run and task it came from last (none once they are deleted).
    pub run_id: Option<RunId>,
    pub task_id: Option<TaskId>,
    /// The embedding model its vector is from; only vectors of the embedder in use are
    /// searched.
    pub embedding_model: String,
    /// How many times it was written: a near-duplicate is merged into it.
    pub mentions: u32,
    pub created_at: DateTime<Utc>,
    /// When it was last written or merged: its recency.
    pub updated_at: DateTime<Utc>,
}

/// A memory found for a question: its cosine similarity, and its score once weighted by
/// recency (what recall ranks by).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemoryHit {
    #[serde(flatten)]
    pub memory: Memory,
    pub similarity: f32,
    pub score: f32,
}

/// What an agent asks to remember when it finishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryNote {
    pub kind: MemoryKind,
    pub content: String,
    /// For every project of the user (preferences are, unless this says false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_wide: Option<bool>,
}

impl MemoryNote {
    /// Whether it is kept for every project of the user.
    pub fn is_user_wide(&self) -> bool {
        self.user_wide
            .unwrap_or(self.kind == MemoryKind::Preference)
    }
}

/// A project of the user's like another, by their gists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimilarProject {
    pub project_id: ProjectId,
    pub name: String,
    /// Its gist: what it builds, from its last accepted plan.
    pub gist: String,
    pub similarity: f32,
}

/// A memory as the model reads it in its context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecalledNote {
    pub kind: MemoryKind,
    pub content: String,
    /// Cosine similarity to the task, two decimals.
    pub similarity: f32,
    /// The day it was last confirmed.
    pub learned_on: String,
    pub user_wide: bool,
}

impl From<&MemoryHit> for RecalledNote {
    fn from(hit: &MemoryHit) -> Self {
        RecalledNote {
            kind: hit.memory.kind,
            content: hit.memory.content.clone(),
            similarity: (hit.similarity * 100.0).round() / 100.0,
            learned_on: hit.memory.updated_at.format("%Y-%m-%d").to_string(),
            user_wide: hit.memory.project_id.is_none(),
        }
    }
}

/// The weight age leaves a memory last written at `updated`: 1 when fresh, halving every
/// `HALF_LIFE_DAYS`, never under `RECENCY_FLOOR`.
pub fn recency_weight(updated: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    let days = (now - updated).num_seconds().max(0) as f64 / 86_400.0;
    RECENCY_FLOOR + (1.0 - RECENCY_FLOOR) * 0.5f64.powf(days / HALF_LIFE_DAYS)
}

/// A memory's estimated size in the context, in tokens (4 characters a token, plus its
/// fields).
fn tokens_of(memory: &Memory) -> usize {
    memory.content.chars().count().div_ceil(4) + 16
}

/// The memories to recall among `candidates` (the nearest by similarity): the relevant
/// ones, ranked by similarity weighted by recency, at most `limit`, within `token_budget`.
pub fn pick(
    mut candidates: Vec<MemoryHit>,
    now: DateTime<Utc>,
    limit: usize,
    token_budget: usize,
) -> Vec<MemoryHit> {
    candidates.retain(|hit| hit.similarity >= RELEVANT_SIMILARITY);
    for hit in &mut candidates {
        hit.score = (f64::from(hit.similarity) * recency_weight(hit.memory.updated_at, now)) as f32;
    }
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut spent = 0;
    let mut picked = Vec::new();
    for hit in candidates {
        if picked.len() == limit {
            break;
        }
        let tokens = tokens_of(&hit.memory);
        if spent + tokens > token_budget {
            continue;
        }
        spent += tokens;
        picked.push(hit);
    }
    picked
}

/// Checks what an agent asked to remember: at most `NOTES_MAX`, each non-empty and at
/// most `CONTENT_MAX` characters once trimmed; a project gist is the plan's to write.
pub fn checked_notes(notes: &[MemoryNote]) -> Result<Vec<MemoryNote>, String> {
    if notes.len() > NOTES_MAX {
        return Err(format!(
            "at most {NOTES_MAX} memories a task, not {}",
            notes.len()
        ));
    }
    notes
        .iter()
        .enumerate()
        .map(|(n, note)| {
            let content = note.content.trim();
            if content.is_empty() || content.chars().count() > CONTENT_MAX {
                return Err(format!(
                    "memories[{n}].content must be 1 to {CONTENT_MAX} characters"
                ));
            }
            if note.kind == MemoryKind::Project {
                return Err(format!(
                    "memories[{n}].kind: a task writes decisions, facts and preferences"
                ));
            }
            Ok(MemoryNote {
                content: content.to_owned(),
                ..note.clone()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn hit(content: &str, similarity: f32, age_days: i64, now: DateTime<Utc>) -> MemoryHit {
        MemoryHit {
            memory: Memory {
                id: MemoryId::new(),
                user_id: UserId::new(),
                project_id: None,
                kind: MemoryKind::Decision,
                content: content.into(),
                agent: AgentKind::Marketer,
                run_id: None,
                task_id: None,
                embedding_model: "m".into(),
                mentions: 1,
                created_at: now - Duration::days(age_days),
                updated_at: now - Duration::days(age_days),
            },
            similarity,
            score: 0.0,
        }
    }

    #[test]
    fn recency_halves_each_half_life_down_to_the_floor() {
        let now = Utc::now();
        assert!((recency_weight(now, now) - 1.0).abs() < 1e-9);
        let month = recency_weight(now - Duration::days(30), now);
        assert!((month - 0.75).abs() < 1e-6, "{month}");
        let years = recency_weight(now - Duration::days(3650), now);
        assert!((RECENCY_FLOOR..0.51).contains(&years), "{years}");
    }

    #[test]
    fn recall_ranks_by_similarity_weighted_by_recency_and_drops_the_irrelevant() {
        let now = Utc::now();
        let picked = pick(
            vec![
                hit("old but close", 0.9, 365, now),
                hit("fresh and close", 0.8, 0, now),
                hit("unrelated", 0.1, 0, now),
            ],
            now,
            10,
            10_000,
        );
        let order: Vec<_> = picked.iter().map(|h| h.memory.content.as_str()).collect();
        assert_eq!(order, ["fresh and close", "old but close"]);
        assert!(picked[0].score > picked[1].score);
    }

    #[test]
    fn recall_stays_within_its_count_and_token_budget() {
        let now = Utc::now();
        let long = "x".repeat(400);
        let candidates = (0..10).map(|_| hit(&long, 0.9, 0, now)).collect::<Vec<_>>();
        assert_eq!(pick(candidates.clone(), now, 3, 100_000).len(), 3);
        // 100 + 16 tokens each: a budget of 300 holds two.
        assert_eq!(pick(candidates, now, 10, 300).len(), 2);
    }

    #[test]
    fn notes_are_trimmed_bounded_and_preferences_are_user_wide() {
        let note = |kind, content: &str| MemoryNote {
            kind,
            content: content.into(),
            user_wide: None,
        };
        let ok = checked_notes(&[note(MemoryKind::Preference, "  short posts  ")]).unwrap();
        assert_eq!(ok[0].content, "short posts");
        assert!(ok[0].is_user_wide());
        assert!(!note(MemoryKind::Decision, "d").is_user_wide());
        assert!(checked_notes(&[note(MemoryKind::Fact, " ")]).is_err());
        assert!(checked_notes(&[note(MemoryKind::Project, "p")]).is_err());
        let many = vec![note(MemoryKind::Fact, "f"); NOTES_MAX + 1];
        assert!(checked_notes(&many).unwrap_err().contains("at most"));
    }
}
