//! Reads for the API's lists, each scoped to its owner in the same statement: another
//! user's resources are simply not there.

use super::StoreError;
use crate::domain::paging::{Page, Paged};
use crate::domain::records::{Artifact, AttemptRecord, Project, Run, Task};
use crate::domain::{AgentKind, MicroUsd, ProjectId, RunId, RunStatus, TaskId, UserId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An artifact with the time it was recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ArtifactEntry {
    #[serde(flatten)]
    pub artifact: Artifact,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A task with its attempts: the task's fields, with `attempts` the list of its attempts
/// rather than their count (which is the list's length).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDetail {
    pub task: Task,
    pub attempts: Vec<AttemptRecord>,
}

impl Serialize for TaskDetail {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut fields = match serde_json::to_value(&self.task).map_err(S::Error::custom)? {
            serde_json::Value::Object(fields) => fields,
            _ => return Err(S::Error::custom("a task serialises as an object")),
        };
        let attempts = serde_json::to_value(&self.attempts).map_err(S::Error::custom)?;
        fields.insert("attempts".into(), attempts);
        fields.serialize(serializer)
    }
}

impl utoipa::PartialSchema for TaskDetail {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{ArrayBuilder, Schema};
        let mut schema = <Task as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.description = Some("A task with its attempts.".into());
            object.properties.insert(
                "attempts".into(),
                ArrayBuilder::new()
                    .items(utoipa::openapi::Ref::from_schema_name("AttemptRecord"))
                    .into(),
            );
        }
        schema
    }
}

impl utoipa::ToSchema for TaskDetail {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <Task as utoipa::ToSchema>::schemas(schemas);
        schemas.push((
            "AttemptRecord".into(),
            <AttemptRecord as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// A user's activity over a period. Durations are of runs that succeeded; rates are
/// 0-1 and `null` when there is nothing to divide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct Analytics {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub runs: i64,
    /// Days with runs, oldest first.
    pub runs_per_day: Vec<RunsOnDay>,
    /// Of the runs that ended: the share that succeeded.
    pub success_rate: Option<f64>,
    pub median_duration_secs: Option<f64>,
    pub cost_micro_usd: MicroUsd,
    pub cost_per_task_micro_usd: Option<f64>,
    /// The share of model calls answered from the cache.
    pub cache_hit_rate: Option<f64>,
    /// By agent, in name order.
    pub agents: Vec<AgentActivity>,
    /// Events the projects' apps and landing pages sent (`POST /projects/{id}/analytics/events`).
    pub events: i64,
    /// Distinct visitors over the period.
    pub visitors: i64,
    /// Days with events, oldest first.
    pub traffic_per_day: Vec<crate::domain::analytics::TrafficDay>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct RunsOnDay {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub runs: i64,
    pub succeeded: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct AgentActivity {
    pub agent: AgentKind,
    pub calls: i64,
    pub tasks: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micro_usd: MicroUsd,
    pub cost_per_task_micro_usd: Option<f64>,
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
    ) -> Result<Analytics, StoreError>;
    /// A project's artifacts, newest first; empty when the project is not `user`'s.
    async fn artifacts(
        &self,
        user: UserId,
        project: ProjectId,
        run: Option<RunId>,
        page: Page,
    ) -> Result<Paged<ArtifactEntry>, StoreError>;
}
