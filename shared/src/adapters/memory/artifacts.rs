//! The artifacts table, in memory.

use crate::domain::events::{Event, EventBody};
use crate::domain::records::Artifact;
use crate::domain::{ProjectId, RunId};
use crate::ports::{ArtifactStore, Effects, StoreError, Written};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The `ArtifactStore` twin: one record per bucket and key (recording it again updates it),
/// and each write recorded once per its idempotency key, with its `artifact_stored` event
/// the first time only.
#[derive(Default)]
pub struct MemArtifacts {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Oldest first, with when each was recorded.
    artifacts: Vec<(DateTime<Utc>, Artifact)>,
    claimed: HashSet<String>,
    /// The last `artifact_stored` event's number in each project (the twin numbers its
    /// own; the Postgres store appends to the project's log).
    events: HashMap<ProjectId, i64>,
}

impl MemArtifacts {
    /// Every artifact with when it was recorded, oldest first.
    pub(super) fn entries(&self) -> Vec<(DateTime<Utc>, Artifact)> {
        self.lock().artifacts.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn record(&mut self, artifact: &Artifact) {
        let same = |(_, a): &&mut (DateTime<Utc>, Artifact)| {
            a.bucket == artifact.bucket && a.key == artifact.key
        };
        match self.artifacts.iter_mut().find(same) {
            Some((_, found)) => {
                found.size_bytes = artifact.size_bytes;
                found.checksum_sha256 = artifact.checksum_sha256.clone();
            }
            None => self.artifacts.push((Utc::now(), artifact.clone())),
        }
    }
}

#[async_trait]
impl ArtifactStore for MemArtifacts {
    async fn record(&self, artifact: &Artifact) -> Result<(), StoreError> {
        self.lock().record(artifact);
        Ok(())
    }

    async fn record_once(&self, written: &[Written]) -> Result<Effects, StoreError> {
        let mut state = self.lock();
        let mut effects = Effects::default();
        for w in written {
            if state.claimed.insert(w.key.clone()) {
                state.record(&w.artifact);
                let seq = state.events.entry(w.artifact.project_id).or_default();
                *seq += 1;
                effects.events.push(Event {
                    project_id: w.artifact.project_id,
                    run_id: w.artifact.run_id,
                    seq: *seq,
                    body: EventBody::ArtifactStored(w.stored.clone()),
                    spend: None,
                    created_at: Utc::now(),
                });
            }
        }
        Ok(effects)
    }

    async fn run_artifacts(&self, run: RunId) -> Result<Vec<Artifact>, StoreError> {
        Ok(self
            .lock()
            .artifacts
            .iter()
            .filter(|(_, a)| a.run_id == Some(run))
            .map(|(_, a)| a.clone())
            .collect())
    }
}
