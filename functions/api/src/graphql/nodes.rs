//! The dashboard's graph: the caller, their projects, runs, tasks, artifacts, deployments,
//! approvals, costs and analytics. Lists of many are cursor connections (`first`, `after`,
//! newest first); a node's children are read for all its siblings at once
//! (`loaders.rs`), so each level of a query is one read however many parents it has.

use super::loaders::{LoadError, Loads, Siblings, share};
use super::runs::{ArtifactNode, RunNode, TaskNode, runs, tasks};
use crate::costs::{CostReport, cost_report, period_of};
use crate::{ApiError, ApiState};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ErrorExtensions, ID, Object, Result};
use autocrew_shared::domain::connections::Deployment;
use autocrew_shared::domain::paging::{Cursor, DEFAULT_LIMIT, MAX_LIMIT, Page, Paged};
use autocrew_shared::domain::records::{CostTotals, Project, Run, User};
use autocrew_shared::domain::{ProjectId, RunId, RunStatus, TaskId, UserId};
use autocrew_shared::ports::{Analytics, CostGroup, StoreError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

/// The signed-in caller, whose data every resolver reads.
pub(crate) struct Viewer(pub UserId);

/// A list's size estimate for the complexity limit when it takes no `first`: a plan's
/// tasks, a run's artifacts or approvals, a task's attempts.
pub(super) const LIST_ESTIMATE: usize = 20;

// The handler gives every request its data; a request without it fails, never panics.
fn viewer(ctx: &Context<'_>) -> Result<UserId> {
    Ok(ctx.data::<Viewer>()?.0)
}

pub(super) fn state<'a>(ctx: &Context<'a>) -> Result<&'a ApiState> {
    ctx.data::<ApiState>()
}

fn loads<'a>(ctx: &Context<'a>) -> Result<&'a Loads> {
    ctx.data::<Loads>()
}

/// A bad argument: its name and what is wrong, as `extensions`.
pub(crate) fn bad_input(argument: &str, message: impl Into<String>) -> async_graphql::Error {
    let message = message.into();
    async_graphql::Error::new(format!("{argument}: {message}")).extend_with(|_, e| {
        e.set("code", "BAD_USER_INPUT");
        e.set("argument", argument);
    })
}

/// A failure of ours: the cause goes to the log, the client reads `internal error`.
pub(super) fn internal(cause: impl std::fmt::Debug) -> async_graphql::Error {
    tracing::error!(cause = ?cause, "a GraphQL field failed");
    async_graphql::Error::new("internal error")
        .extend_with(|_, e| e.set("code", "INTERNAL_SERVER_ERROR"))
}

/// The REST error's meaning, in GraphQL's terms.
fn from_api(error: ApiError) -> async_graphql::Error {
    match error {
        ApiError::BadRequest { field, message } => bad_input(&field, message),
        ApiError::NotFound(what) => coded(format!("{what} not found"), "NOT_FOUND"),
        // A valid token whose account was deleted since.
        ApiError::Unauthorized(why) => coded(why, "UNAUTHENTICATED"),
        other @ (ApiError::Conflict(_) | ApiError::Unprocessable(_)) => {
            coded(other.to_string(), "BAD_USER_INPUT")
        }
        ApiError::Unavailable(why) => coded(why, "SERVICE_UNAVAILABLE"),
        ApiError::Internal(cause) => internal(cause),
    }
}

fn coded(message: impl Into<String>, code: &'static str) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(move |_, e| e.set("code", code))
}

/// `field` (with `arguments`) read for every sibling of the asking node at once.
pub(super) async fn batch<'a, K, V, F, Fut>(
    ctx: &Context<'a>,
    siblings: &Siblings<K>,
    field: (&'static str, String),
    read: F,
) -> Result<Arc<V>>
where
    K: Clone,
    V: Send + Sync + 'static,
    F: FnOnce(&'a Loads, Vec<K>) -> Fut,
    Fut: Future<Output = Result<V, StoreError>>,
{
    let loads = loads(ctx)?;
    loads
        .batch(siblings, field, |ids| read(loads, ids))
        .await
        .map_err(|e: LoadError| internal(e))
}

/// A batch's answer for each parent, with the sibling set of all the children in it.
pub(super) struct Children<P, V, C> {
    pub of: HashMap<P, V>,
    pub siblings: Arc<Siblings<C>>,
}

fn projects(loads: &Loads, projects: Vec<Project>) -> Vec<ProjectNode> {
    let siblings = loads.siblings(projects.iter().map(|p| p.id).collect());
    projects
        .into_iter()
        .map(|project| ProjectNode {
            project,
            siblings: siblings.clone(),
        })
        .collect()
}

/// `first` and `after`, checked.
pub(crate) fn page(first: i32, after: Option<&str>) -> Result<Page> {
    if !(1..=MAX_LIMIT as i32).contains(&first) {
        return Err(bad_input("first", format!("must be 1-{MAX_LIMIT}")));
    }
    let after = after
        .map(|text| Cursor::decode(text).map_err(|e| bad_input("after", e)))
        .transpose()?;
    Ok(Page {
        after,
        limit: first as u32,
    })
}

/// An `ID` argument, checked.
fn id_of<T, E>(argument: &str, text: &str, parse: fn(&str, &str) -> Result<T, E>) -> Result<T> {
    parse(argument, text)
        .map_err(|_| bad_input(argument, format!("{text:?} is not an id (a UUID)")))
}

/// A page of nodes as a connection, each edge with its item's cursor.
fn connection<N: async_graphql::OutputType>(
    paged: Paged<N>,
    page: &Page,
    cursors: Vec<Cursor>,
) -> Connection<String, N> {
    let mut connection = Connection::new(page.after.is_some(), paged.next_cursor.is_some());
    connection.edges = paged
        .items
        .into_iter()
        .zip(cursors)
        .map(|(node, cursor)| Edge::new(cursor.encode(), node))
        .collect();
    connection
}

fn project_cursor(project: &Project) -> Cursor {
    Cursor {
        created_at: project.created_at,
        id: project.id.0,
    }
}

/// The complexity of a connection field: its items' fields, once per item asked for.
pub(crate) fn per_item(first: i32, child: usize) -> usize {
    (first.clamp(1, MAX_LIMIT as i32) as usize).saturating_mul(child.saturating_add(1))
}

fn run_cursor(run: &Run) -> Cursor {
    Cursor {
        created_at: run.created_at,
        id: run.id.0,
    }
}

/// The root: the caller, or one of their projects, runs or tasks by id.
pub(crate) struct Query;

#[Object]
impl Query {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> Result<UserNode> {
        let user = crate::auth::me(&*state(ctx)?.projects, viewer(ctx)?)
            .await
            .map_err(from_api)?;
        Ok(UserNode(user.user))
    }

    /// One of the caller's projects; `null` when they have none of this id.
    async fn project(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProjectNode>> {
        let id = id_of("id", id.as_str(), ProjectId::parse)?;
        let loads = loads(ctx)?;
        let found = loads.dashboard.projects(loads.user, &[id]).await;
        let found = found.map_err(internal)?.into_values().collect();
        Ok(projects(loads, found).pop())
    }

    /// One of the caller's runs; `null` when they have none of this id.
    async fn run(&self, ctx: &Context<'_>, id: ID) -> Result<Option<RunNode>> {
        let id = id_of("id", id.as_str(), RunId::parse)?;
        let loads = loads(ctx)?;
        let found = loads.dashboard.runs(loads.user, &[id]).await;
        let found = found.map_err(internal)?.into_values().collect();
        Ok(runs(loads, found).pop())
    }

    /// One of the caller's tasks; `null` when they have none of this id.
    async fn task(&self, ctx: &Context<'_>, id: ID) -> Result<Option<TaskNode>> {
        let id = id_of("id", id.as_str(), TaskId::parse)?;
        let loads = loads(ctx)?;
        let found = loads.dashboard.tasks(loads.user, &[id]).await;
        let found = found.map_err(internal)?.into_values().collect();
        Ok(tasks(loads, found).pop())
    }
}

/// The signed-in user.
pub(crate) struct UserNode(User);

#[Object(name = "User")]
impl UserNode {
    async fn id(&self) -> UserId {
        self.0.id
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn plan(&self) -> &autocrew_shared::domain::PlanId {
        &self.0.plan
    }
    /// The user's IANA time zone: their schedules' default.
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }
    async fn email_verified_at(&self) -> Option<DateTime<Utc>> {
        self.0.email_verified_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The user's projects, newest first: the archived ones, or the others.
    #[graphql(complexity = "per_item(first, child_complexity)")]
    async fn projects(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_LIMIT as i32")] first: i32,
        after: Option<String>,
        #[graphql(default = false)] archived: bool,
    ) -> Result<Connection<String, ProjectNode>> {
        let page = page(first, after.as_deref())?;
        let paged = state(ctx)?
            .browse
            .projects(self.0.id, archived, page)
            .await
            .map_err(internal)?;
        let cursors: Vec<Cursor> = paged.items.iter().map(project_cursor).collect();
        let nodes = projects(loads(ctx)?, paged.items);
        Ok(connection(
            Paged {
                items: nodes,
                next_cursor: paged.next_cursor,
            },
            &page,
            cursors,
        ))
    }

    /// The user's runs across projects, newest first, of one status or all.
    #[graphql(complexity = "per_item(first, child_complexity)")]
    async fn runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_LIMIT as i32")] first: i32,
        after: Option<String>,
        status: Option<RunStatus>,
    ) -> Result<Connection<String, RunNode>> {
        let page = page(first, after.as_deref())?;
        let paged = state(ctx)?
            .browse
            .runs(self.0.id, None, status, page)
            .await
            .map_err(internal)?;
        let cursors = paged.items.iter().map(run_cursor).collect();
        let nodes = runs(loads(ctx)?, paged.items);
        Ok(connection(
            Paged {
                items: nodes,
                next_cursor: paged.next_cursor,
            },
            &page,
            cursors,
        ))
    }

    /// Model spend over a period (`from`, `to`: a date like 2026-11-01 or an RFC 3339
    /// time; this month so far by default), grouped, with the current AI budget.
    async fn costs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "CostGroup::Run")] by: CostGroup,
        from: Option<String>,
        to: Option<String>,
        project_id: Option<ID>,
    ) -> Result<CostReport> {
        let (from, to) = period_of(from.as_deref(), to.as_deref()).map_err(from_api)?;
        let project = project_id
            .map(|id| id_of("projectId", id.as_str(), ProjectId::parse))
            .transpose()?;
        let s = state(ctx)?;
        let ports = (&*s.projects, &*s.ledger, &*s.budgets);
        // Another user's project is an argument that names none of the caller's, as a
        // client error (GraphQL clients and fuzzers read an unknown code on a field as
        // the server's failure).
        cost_report(ports, (self.0.id, project), by, (from, to))
            .await
            .map_err(|e| match e {
                ApiError::NotFound(_) => bad_input("projectId", "you have no project of this id"),
                other => from_api(other),
            })
    }

    /// Activity over a period (as `costs`): runs per day, success rate, durations, cost
    /// per task and per agent, cache hits, traffic.
    #[graphql(complexity = 50)]
    async fn analytics(
        &self,
        ctx: &Context<'_>,
        from: Option<String>,
        to: Option<String>,
        project_id: Option<ID>,
    ) -> Result<Analytics> {
        let project = project_id
            .map(|id| id_of("projectId", id.as_str(), ProjectId::parse))
            .transpose()?;
        analytics(ctx, self.0.id, project, (from, to)).await
    }
}

async fn analytics(
    ctx: &Context<'_>,
    user: UserId,
    project: Option<ProjectId>,
    (from, to): (Option<String>, Option<String>),
) -> Result<Analytics> {
    let (from, to) = period_of(from.as_deref(), to.as_deref()).map_err(from_api)?;
    state(ctx)?
        .browse
        .analytics(user, project, from, to)
        .await
        .map_err(internal)
}

/// A project, and the others its read produced.
pub(crate) struct ProjectNode {
    pub(super) project: Project,
    pub(super) siblings: Arc<Siblings<ProjectId>>,
}

#[Object(name = "Project")]
impl ProjectNode {
    async fn id(&self) -> ProjectId {
        self.project.id
    }
    async fn name(&self) -> &str {
        &self.project.name
    }
    async fn description(&self) -> &str {
        &self.project.description
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.project.created_at
    }
    /// Archived projects take no new commands.
    async fn archived_at(&self) -> Option<DateTime<Utc>> {
        self.project.archived_at
    }

    /// The project's runs, newest first, of one status or all.
    #[graphql(complexity = "per_item(first, child_complexity)")]
    async fn runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_LIMIT as i32")] first: i32,
        after: Option<String>,
        status: Option<RunStatus>,
    ) -> Result<Connection<String, RunNode>> {
        let page = page(first, after.as_deref())?;
        let field = ("Project.runs", format!("{page:?} {status:?}"));
        let answer = batch(ctx, &self.siblings, field, |loads, ids| async move {
            let pages = loads
                .dashboard
                .project_runs(loads.user, &ids, status, page)
                .await?;
            let all = pages.values().flat_map(|p| p.items.iter().map(|r| r.id));
            Ok(Children {
                siblings: loads.siblings(all.collect()),
                of: pages,
            })
        })
        .await?;
        let paged = answer
            .of
            .get(&self.project.id)
            .cloned()
            .unwrap_or_else(empty);
        let cursors = paged.items.iter().map(run_cursor).collect();
        let nodes = paged.map(|run| RunNode {
            run,
            siblings: answer.siblings.clone(),
        });
        Ok(connection(nodes, &page, cursors))
    }

    /// The project's files, newest first, each with a download link.
    #[graphql(complexity = "per_item(first, child_complexity)")]
    async fn artifacts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_LIMIT as i32")] first: i32,
        after: Option<String>,
    ) -> Result<Connection<String, ArtifactNode>> {
        let page = page(first, after.as_deref())?;
        let field = ("Project.artifacts", format!("{page:?}"));
        let answer = batch(ctx, &self.siblings, field, |loads, ids| async move {
            loads
                .dashboard
                .project_artifacts(loads.user, &ids, page)
                .await
        })
        .await?;
        let paged = answer.get(&self.project.id).cloned().unwrap_or_else(empty);
        let cursors = paged
            .items
            .iter()
            .map(|e| Cursor {
                created_at: e.created_at,
                id: e.artifact.id.0,
            })
            .collect();
        Ok(connection(paged.map(ArtifactNode), &page, cursors))
    }

    /// The project's newest deploys and builds.
    #[graphql(complexity = "per_item(first, child_complexity)")]
    async fn deployments(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_LIMIT as i32")] first: i32,
    ) -> Result<Vec<Deployment>> {
        let limit = page(first, None)?.limit;
        let field = ("Project.deployments", limit.to_string());
        let answer = batch(ctx, &self.siblings, field, |loads, ids| async move {
            loads
                .dashboard
                .project_deployments(loads.user, &ids, limit)
                .await
        })
        .await?;
        Ok(share(&answer, &self.project.id))
    }

    /// The project's model calls, tokens and cost, all time.
    async fn cost(&self, ctx: &Context<'_>) -> Result<CostTotals> {
        let field = ("Project.cost", String::new());
        let answer = batch(ctx, &self.siblings, field, |loads, ids| async move {
            loads.dashboard.project_costs(loads.user, &ids).await
        })
        .await?;
        Ok(answer.get(&self.project.id).copied().unwrap_or_default())
    }

    /// The project's activity over a period (a date like 2026-11-01 or an RFC 3339 time;
    /// this month so far by default). One read per project: ask it of a few.
    #[graphql(complexity = 50)]
    async fn analytics(
        &self,
        ctx: &Context<'_>,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Analytics> {
        analytics(ctx, self.project.user_id, Some(self.project.id), (from, to)).await
    }
}

fn empty<T>() -> Paged<T> {
    Paged {
        items: Vec::new(),
        next_cursor: None,
    }
}
