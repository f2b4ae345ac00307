//! A run, its tasks, its files and its approvals. A run's children are read for all the
//! runs its read produced, a task's for all the tasks of theirs (`loaders.rs`).

use super::loaders::{Siblings, share};
use super::nodes::{Children, LIST_ESTIMATE, ProjectNode, batch, internal, state};
use async_graphql::{Context, Json, Object, Result};
use autocrew_shared::domain::approvals::Approval;
use autocrew_shared::domain::records::{AttemptRecord, CostTotals, Run};
use autocrew_shared::domain::{
    AgentKind, ApprovalId, ApprovalStatus, ArtifactId, Complexity, MicroUsd, Priority, ProjectId,
    RunId, RunStatus, ScheduleId, TaskId, TaskStatus,
};
use autocrew_shared::ports::{ArtifactEntry, TaskDetail};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// How long an artifact's download link works.
const LINK_TTL: Duration = Duration::from_secs(3600);

/// Nodes for `runs`, siblings of one another.
pub(crate) fn runs(loads: &super::loaders::Loads, runs: Vec<Run>) -> Vec<RunNode> {
    let siblings = loads.siblings(runs.iter().map(|r| r.id).collect());
    runs.into_iter()
        .map(|run| RunNode {
            run,
            siblings: siblings.clone(),
        })
        .collect()
}

/// Nodes for `tasks`, siblings of one another.
pub(crate) fn tasks(loads: &super::loaders::Loads, tasks: Vec<TaskDetail>) -> Vec<TaskNode> {
    let siblings = loads.siblings(tasks.iter().map(|t| t.task.id).collect());
    tasks
        .into_iter()
        .map(|detail| TaskNode {
            detail,
            siblings: siblings.clone(),
        })
        .collect()
}

/// A run: one command, its plan's tasks, its files and its money.
pub(crate) struct RunNode {
    pub(super) run: Run,
    pub(super) siblings: Arc<Siblings<RunId>>,
}

#[Object(name = "Run")]
impl RunNode {
    async fn id(&self) -> RunId {
        self.run.id
    }
    async fn project_id(&self) -> ProjectId {
        self.run.project_id
    }
    async fn command(&self) -> &str {
        &self.run.command
    }
    async fn status(&self) -> RunStatus {
        self.run.status
    }
    /// The plan as the orchestrator made it (and revised it).
    async fn plan(&self) -> Option<Json<&serde_json::Value>> {
        self.run.plan.as_ref().map(Json)
    }
    async fn budget(&self) -> MicroUsd {
        self.run.budget
    }
    /// Held for model calls under way.
    async fn reserved(&self) -> MicroUsd {
        self.run.reserved
    }
    async fn spent(&self) -> MicroUsd {
        self.run.spent
    }
    async fn max_concurrency(&self) -> u32 {
        self.run.max_concurrency
    }
    async fn error(&self) -> Option<&str> {
        self.run.error.as_deref()
    }
    async fn deadline_at(&self) -> Option<DateTime<Utc>> {
        self.run.deadline_at
    }
    /// How many executions the run has had (a resume starts another).
    async fn executions(&self) -> u32 {
        self.run.executions
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.run.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.run.started_at
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.run.completed_at
    }
    /// The schedule whose fire started the run.
    async fn schedule_id(&self) -> Option<ScheduleId> {
        self.run.schedule_id
    }

    /// The run's project.
    async fn project(&self, ctx: &Context<'_>) -> Result<Option<ProjectNode>> {
        let field = ("Run.project", String::new());
        let answer = batch(ctx, &self.siblings, field, |loads, ids| async move {
            let of = loads.dashboard.run_projects(loads.user, &ids).await?;
            let mut projects: Vec<ProjectId> = of.values().map(|p| p.id).collect();
            projects.sort();
            projects.dedup();
            Ok(Children {
                siblings: loads.siblings(projects),
                of,
            })
        })
        .await?;
        Ok(answer.of.get(&self.run.id).map(|project| ProjectNode {
            project: project.clone(),
            siblings: answer.siblings.clone(),
        }))
    }

    /// The run's model calls, tokens and cost.
    async fn cost(&self, ctx: &Context<'_>) -> Result<CostTotals> {
        let field = ("Run.cost", String::new());
        let answer = batch(ctx, &self.siblings, field, |loads, ids| async move {
            loads.dashboard.run_costs(loads.user, &ids).await
        })
        .await?;
        Ok(answer.get(&self.run.id).copied().unwrap_or_default())
    }

    /// The plan's tasks, in plan order.
    #[graphql(complexity = "LIST_ESTIMATE * (child_complexity + 1)")]
    async fn tasks(&self, ctx: &Context<'_>) -> Result<Vec<TaskNode>> {
        let field = ("Run.tasks", String::new());
        let answer = batch(ctx, &self.siblings, field, |loads, ids| async move {
            let of = loads.dashboard.run_tasks(loads.user, &ids).await?;
            let all = of.values().flatten().map(|t| t.task.id).collect();
            Ok(Children {
                siblings: loads.siblings(all),
                of,
            })
        })
        .await?;
        Ok(share(&answer.of, &self.run.id)
            .into_iter()
            .map(|detail| TaskNode {
                detail,
                siblings: answer.siblings.clone(),
            })
            .collect())
    }

    /// The run's files, oldest first, each with a download link.
    #[graphql(complexity = "LIST_ESTIMATE * (child_complexity + 1)")]
    async fn artifacts(&self, ctx: &Context<'_>) -> Result<Vec<ArtifactNode>> {
        let field = ("Run.artifacts", String::new());
        let answer = batch(ctx, &self.siblings, field, |loads, ids| async move {
            loads.dashboard.run_artifacts(loads.user, &ids).await
        })
        .await?;
        Ok(share(&answer, &self.run.id)
            .into_iter()
            .map(ArtifactNode)
            .collect())
    }

    /// The actions the run asked a person to approve.
    #[graphql(complexity = "LIST_ESTIMATE * (child_complexity + 1)")]
    async fn approvals(&self, ctx: &Context<'_>) -> Result<Vec<ApprovalNode>> {
        let field = ("Run.approvals", String::new());
        let answer = batch(ctx, &self.siblings, field, |loads, ids| async move {
            loads.dashboard.run_approvals(loads.user, &ids).await
        })
        .await?;
        Ok(share(&answer, &self.run.id)
            .into_iter()
            .map(ApprovalNode)
            .collect())
    }
}

/// A task of a run's plan, with its attempts.
pub(crate) struct TaskNode {
    detail: TaskDetail,
    siblings: Arc<Siblings<TaskId>>,
}

#[Object(name = "Task")]
impl TaskNode {
    async fn id(&self) -> TaskId {
        self.detail.task.id
    }
    async fn run_id(&self) -> RunId {
        self.detail.task.run_id
    }
    /// The task's key in the plan.
    async fn key(&self) -> &str {
        &self.detail.task.key
    }
    async fn agent(&self) -> AgentKind {
        self.detail.task.agent
    }
    async fn title(&self) -> &str {
        &self.detail.task.title
    }
    async fn description(&self) -> &str {
        &self.detail.task.description
    }
    async fn status(&self) -> TaskStatus {
        self.detail.task.status
    }
    async fn priority(&self) -> Priority {
        self.detail.task.priority
    }
    async fn complexity(&self) -> Complexity {
        self.detail.task.complexity
    }
    async fn budget(&self) -> MicroUsd {
        self.detail.task.budget
    }
    /// The tasks this one waits for.
    async fn depends_on(&self) -> &[TaskId] {
        &self.detail.task.depends_on
    }
    #[graphql(complexity = "LIST_ESTIMATE * (child_complexity + 1)")]
    async fn attempts(&self) -> &[AttemptRecord] {
        &self.detail.attempts
    }
    async fn max_attempts(&self) -> u32 {
        self.detail.task.max_attempts
    }
    /// What the agent returned.
    async fn result(&self) -> Option<Json<&serde_json::Value>> {
        self.detail.task.result.as_ref().map(Json)
    }
    async fn error(&self) -> Option<&str> {
        self.detail.task.error_log.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.detail.task.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.detail.task.started_at
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.detail.task.completed_at
    }
    /// The task's model calls, tokens and cost.
    async fn cost(&self, ctx: &Context<'_>) -> Result<CostTotals> {
        let field = ("Task.cost", String::new());
        let answer = batch(ctx, &self.siblings, field, |loads, ids| async move {
            loads.dashboard.task_costs(loads.user, &ids).await
        })
        .await?;
        Ok(answer
            .get(&self.detail.task.id)
            .copied()
            .unwrap_or_default())
    }
}

/// A file a run wrote or the user uploaded.
pub(crate) struct ArtifactNode(pub(super) ArtifactEntry);

#[Object(name = "Artifact")]
impl ArtifactNode {
    async fn id(&self) -> ArtifactId {
        self.0.artifact.id
    }
    async fn project_id(&self) -> ProjectId {
        self.0.artifact.project_id
    }
    async fn run_id(&self) -> Option<RunId> {
        self.0.artifact.run_id
    }
    async fn task_id(&self) -> Option<TaskId> {
        self.0.artifact.task_id
    }
    /// The object's key in the bucket.
    async fn key(&self) -> &str {
        &self.0.artifact.key
    }
    async fn content_type(&self) -> &str {
        &self.0.artifact.content_type
    }
    async fn size_bytes(&self) -> u64 {
        self.0.artifact.size_bytes
    }
    async fn checksum_sha256(&self) -> &str {
        &self.0.artifact.checksum_sha256
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// A download link, valid an hour.
    async fn url(&self, ctx: &Context<'_>) -> Result<String> {
        state(ctx)?
            .blobs
            .presigned_get(&self.0.artifact.key, LINK_TTL)
            .await
            .map_err(internal)
    }
}

/// An action a run asked a person to approve.
pub(crate) struct ApprovalNode(Approval);

#[Object(name = "Approval")]
impl ApprovalNode {
    async fn id(&self) -> ApprovalId {
        self.0.id
    }
    async fn run_id(&self) -> RunId {
        self.0.run_id
    }
    async fn task_id(&self) -> TaskId {
        self.0.task_id
    }
    /// The tool the agent called.
    async fn tool(&self) -> &str {
        &self.0.tool
    }
    /// The exact action, as it will run (`POST /approvals/{id}` decides it).
    async fn payload(&self) -> Json<&autocrew_shared::domain::actions::ApprovedAction> {
        Json(&self.0.payload)
    }
    /// What a decision must quote.
    async fn payload_hash(&self) -> &str {
        &self.0.payload_hash
    }
    async fn status(&self) -> ApprovalStatus {
        self.0.status
    }
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    async fn decided_at(&self) -> Option<DateTime<Utc>> {
        self.0.decided_at
    }
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    async fn executed_at(&self) -> Option<DateTime<Utc>> {
        self.0.executed_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
