//! The artifacts table, in memory.

use crate::domain::RunId;
use crate::domain::records::Artifact;
use crate::ports::{ArtifactStore, Effects, StoreError, Written};
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::Mutex;

/// The `ArtifactStore` twin: one record per bucket and key (recording it again updates it),
/// and each write recorded once per its idempotency key.
#[derive(Default)]
pub struct MemArtifacts {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Oldest first.
    artifacts: Vec<Artifact>,
    claimed: HashSet<String>,
}

impl MemArtifacts {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn record(&mut self, artifact: &Artifact) {
        let same = |a: &&mut Artifact| a.bucket == artifact.bucket && a.key == artifact.key;
        match self.artifacts.iter_mut().find(same) {
            Some(found) => {
                found.size_bytes = artifact.size_bytes;
                found.checksum_sha256 = artifact.checksum_sha256.clone();
            }
            None => self.artifacts.push(artifact.clone()),
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
        for w in written {
            if state.claimed.insert(w.key.clone()) {
                state.record(&w.artifact);
            }
        }
        Ok(Effects::default())
    }

    async fn run_artifacts(&self, run: RunId) -> Result<Vec<Artifact>, StoreError> {
        Ok(self
            .lock()
            .artifacts
            .iter()
            .filter(|a| a.run_id == Some(run))
            .cloned()
            .collect())
    }
}
