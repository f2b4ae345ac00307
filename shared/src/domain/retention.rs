//! What is kept, and for how long: `shared/data/retention.json` (or
//! `RETENTION_POLICY_PATH`). The sweep applies it in bounded batches. What the API shows
//! stays: a run's lifecycle events (created, planned, each task's end, the run's end), each
//! task's last attempt, the task rows with their results and errors, every artifact.

use serde::Deserialize;

/// The embedded policy.
pub const RETENTION_JSON: &str = include_str!("../../data/retention.json");

/// The retention policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// At most this many rows of each kind per sweep, so one sweep stays short.
    pub batch: u32,
    /// Once a run has ended this long, its `task_progress` chunks are folded: the last
    /// chunk of each model turn keeps the turn's whole text, the others keep no text.
    pub compact_progress_after_minutes: u32,
    /// Detail events (`task_queued`, `task_started`, `task_progress`, `artifact_stored`) of
    /// runs ended this long ago are deleted; lifecycle events stay.
    pub prune_detail_events_after_days: u32,
    /// Attempts before a task's last one, finished this long ago, are deleted.
    pub prune_superseded_attempts_after_days: u32,
    /// Cache answers expired this long ago are deleted.
    pub prune_expired_cache_after_hours: u32,
    /// Memories neither written nor confirmed (merged into) for this long are forgotten.
    pub forget_memories_after_days: u32,
    /// Pushes and webhook deliveries that ended (delivered, failed, dropped) this long ago
    /// are deleted, with their attempts.
    pub prune_notices_after_days: u32,
}

impl RetentionPolicy {
    /// The policy in `text` (JSON), checked.
    pub fn parse(text: &str) -> Result<Self, String> {
        let policy: RetentionPolicy =
            serde_json::from_str(text).map_err(|e| format!("retention policy: {e}"))?;
        if policy.batch == 0 {
            return Err("retention policy: batch must be at least 1".into());
        }
        Ok(policy)
    }

    /// The embedded policy.
    pub fn embedded() -> Self {
        // Checked by a test; a broken embedded file fails the build's tests, not a sweep.
        Self::parse(RETENTION_JSON).unwrap_or(RetentionPolicy {
            batch: 1000,
            compact_progress_after_minutes: 10,
            prune_detail_events_after_days: 30,
            prune_superseded_attempts_after_days: 30,
            prune_expired_cache_after_hours: 24,
            forget_memories_after_days: 365,
            prune_notices_after_days: 30,
        })
    }
}

/// What one application of the policy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct RetentionReport {
    pub progress_turns_compacted: u64,
    pub detail_events_pruned: u64,
    pub attempts_pruned: u64,
    pub cache_entries_pruned: u64,
    #[serde(default)]
    pub memories_forgotten: u64,
    #[serde(default)]
    pub notices_pruned: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_policy_parses_and_a_misspelt_field_is_refused() {
        assert_eq!(
            RetentionPolicy::parse(RETENTION_JSON),
            Ok(RetentionPolicy::embedded())
        );
        let misspelt = RETENTION_JSON.replace("\"batch\"", "\"bacth\"");
        assert!(RetentionPolicy::parse(&misspelt).is_err());
    }
}
