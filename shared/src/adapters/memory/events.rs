//! A project's event log, in memory.

use super::MemProjects;
use crate::domain::events::{Event, EventBody};
use crate::domain::{ProjectId, RunId, UserId};
use crate::ports::{EventLog, ProjectStore, StoreError};
use async_trait::async_trait;
use chrono::Utc;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The `EventLog` twin: per-project sequences with no gaps, owners from `MemProjects`.
/// It adds no spend to a run's events (the twin keeps no ledger).
pub struct MemEvents {
    projects: Arc<MemProjects>,
    logs: Mutex<HashMap<ProjectId, Vec<Event>>>,
}

impl MemEvents {
    pub fn new(projects: Arc<MemProjects>) -> MemEvents {
        MemEvents {
            projects,
            logs: Mutex::default(),
        }
    }

    fn read(&self, project: ProjectId, after: i64, limit: u32) -> Vec<Event> {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.get(&project)
            .map(|log| {
                log.iter()
                    .filter(|e| e.seq > after)
                    .take(limit as usize)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl EventLog for MemEvents {
    async fn append(
        &self,
        project: ProjectId,
        run: Option<RunId>,
        body: EventBody,
    ) -> Result<Event, StoreError> {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let log = logs.entry(project).or_default();
        let event = Event {
            project_id: project,
            run_id: run,
            seq: log.last().map_or(1, |e| e.seq + 1),
            body,
            spend: None,
            created_at: Utc::now(),
        };
        log.push(event.clone());
        Ok(event)
    }

    async fn since(
        &self,
        project: ProjectId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        Ok(self.read(project, after, limit))
    }

    async fn owned_since(
        &self,
        user: UserId,
        project: ProjectId,
        after: i64,
        limit: u32,
    ) -> Result<Option<Vec<Event>>, StoreError> {
        match self.projects.project(project).await {
            Ok(p) if p.user_id == user => Ok(Some(self.read(project, after, limit))),
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
