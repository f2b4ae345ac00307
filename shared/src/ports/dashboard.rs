//! The reads the GraphQL dashboard batches: each answers for many parents (projects,
//! runs, tasks) in one statement, scoped to the owner in that statement, so a query's
//! statements grow with its depth, never with the number of rows it shows.

use super::{ArtifactEntry, StoreError, TaskDetail};
use crate::domain::approvals::Approval;
use crate::domain::connections::Deployment;
use crate::domain::paging::{Page, Paged};
use crate::domain::records::{CostTotals, Project, Run};
use crate::domain::{ProjectId, RunId, RunStatus, TaskId, UserId};
use async_trait::async_trait;
use std::collections::HashMap;

/// Parents missing from an answer's map are another user's or have nothing: the caller
/// gives them an empty list (or zero totals).
#[async_trait]
pub trait Dashboard: Send + Sync {
    /// `user`'s projects among `ids`.
    async fn projects(
        &self,
        user: UserId,
        ids: &[ProjectId],
    ) -> Result<HashMap<ProjectId, Project>, StoreError>;
    /// `user`'s runs among `ids`.
    async fn runs(&self, user: UserId, ids: &[RunId]) -> Result<HashMap<RunId, Run>, StoreError>;
    /// `user`'s tasks among `ids`, with their attempts.
    async fn tasks(
        &self,
        user: UserId,
        ids: &[TaskId],
    ) -> Result<HashMap<TaskId, TaskDetail>, StoreError>;
    /// The project of each of `user`'s runs among `runs`.
    async fn run_projects(
        &self,
        user: UserId,
        runs: &[RunId],
    ) -> Result<HashMap<RunId, Project>, StoreError>;
    /// The same page of each project's runs, newest first, of one status or all.
    async fn project_runs(
        &self,
        user: UserId,
        projects: &[ProjectId],
        status: Option<RunStatus>,
        page: Page,
    ) -> Result<HashMap<ProjectId, Paged<Run>>, StoreError>;
    /// The same page of each project's artifacts, newest first.
    async fn project_artifacts(
        &self,
        user: UserId,
        projects: &[ProjectId],
        page: Page,
    ) -> Result<HashMap<ProjectId, Paged<ArtifactEntry>>, StoreError>;
    /// Each project's newest `limit` deploys and builds.
    async fn project_deployments(
        &self,
        user: UserId,
        projects: &[ProjectId],
        limit: u32,
    ) -> Result<HashMap<ProjectId, Vec<Deployment>>, StoreError>;
    /// Each project's model calls, tokens and cost, all time.
    async fn project_costs(
        &self,
        user: UserId,
        projects: &[ProjectId],
    ) -> Result<HashMap<ProjectId, CostTotals>, StoreError>;
    /// Each run's model calls, tokens and cost.
    async fn run_costs(
        &self,
        user: UserId,
        runs: &[RunId],
    ) -> Result<HashMap<RunId, CostTotals>, StoreError>;
    /// Each run's tasks in plan order, with their attempts.
    async fn run_tasks(
        &self,
        user: UserId,
        runs: &[RunId],
    ) -> Result<HashMap<RunId, Vec<TaskDetail>>, StoreError>;
    /// Each task's model calls, tokens and cost.
    async fn task_costs(
        &self,
        user: UserId,
        tasks: &[TaskId],
    ) -> Result<HashMap<TaskId, CostTotals>, StoreError>;
    /// Each run's artifacts, oldest first.
    async fn run_artifacts(
        &self,
        user: UserId,
        runs: &[RunId],
    ) -> Result<HashMap<RunId, Vec<ArtifactEntry>>, StoreError>;
    /// Each run's approvals, oldest first.
    async fn run_approvals(
        &self,
        user: UserId,
        runs: &[RunId],
    ) -> Result<HashMap<RunId, Vec<Approval>>, StoreError>;
}
