//! Reads for the API's lists, each scoped to its owner in the same statement: another
//! user's resources are simply not there.

use super::StoreError;
use crate::domain::paging::{Page, Paged};
use crate::domain::records::{Artifact, AttemptRecord, Project, Run, Task};
use crate::domain::{ProjectId, RunId, RunStatus, TaskId, UserId};
use async_trait::async_trait;

/// An artifact with the time it was recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ArtifactEntry {
    #[serde(flatten)]
    pub artifact: Artifact,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A task with its attempts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    pub attempts: Vec<AttemptRecord>,
}

#[async_trait]
pub trait Browse: Send + Sync {
    /// `user`'s projects, newest first: the archived ones, or the others.
    async fn projects(
        &self,
        user: UserId,
        archived: bool,
        page: Page,
    ) -> Result<Paged<Project>, StoreError>;
    /// `user`'s runs, newest first, of one project or all, of one status or all. A project
    /// that is not `user`'s has no runs.
    async fn runs(
        &self,
        user: UserId,
        project: Option<ProjectId>,
        status: Option<RunStatus>,
        page: Page,
    ) -> Result<Paged<Run>, StoreError>;
    /// A run's tasks with their attempts, in plan order; `None` when the run is not `user`'s.
    async fn run_tasks(
        &self,
        user: UserId,
        run: RunId,
    ) -> Result<Option<Vec<TaskDetail>>, StoreError>;
    /// One task with its attempts; `None` when it is not `user`'s.
    async fn task(&self, user: UserId, task: TaskId) -> Result<Option<TaskDetail>, StoreError>;
    /// `user`'s activity over `[from, to)`, of one project or all: runs per day, success
    /// rate, median duration, cost per task and per agent, cache hit rate.
    async fn analytics(
        &self,
        user: UserId,
        project: Option<ProjectId>,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<serde_json::Value, StoreError>;
    /// A project's artifacts, newest first; empty when the project is not `user`'s.
    async fn artifacts(
        &self,
        user: UserId,
        project: ProjectId,
        run: Option<RunId>,
        page: Page,
    ) -> Result<Paged<ArtifactEntry>, StoreError>;
}
