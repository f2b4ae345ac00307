//! The API's lists and details, read from the other twins.

use super::{MemArtifacts, MemLedger, MemProjects, MemRuns};
use crate::domain::paging::{Cursor, Page, Paged};
use crate::domain::records::{LlmCall, Project, Run};
use crate::domain::{
    AgentKind, LlmCallOutcome, MicroUsd, ProjectId, RunId, RunStatus, TaskId, UserId,
};
use crate::ports::{
    AgentActivity, Analytics, ArtifactEntry, Browse, RunsOnDay, StoreError, TaskDetail,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The `Browse` twin over the projects, runs, artifacts and ledger twins. It keeps the
/// port's promises: every read is scoped to its owner (another user's resources are not
/// there), lists are newest first and paged by cursor, and analytics count as the Postgres
/// statement does. The runs twin records no attempts, so a task's attempt list is empty.
pub struct MemBrowse {
    pub projects: Arc<MemProjects>,
    pub runs: Arc<MemRuns>,
    pub artifacts: Arc<MemArtifacts>,
    pub ledger: Arc<MemLedger>,
}

/// Newest first, from after `page.after`, as many as `page.limit`.
fn paged<T>(mut items: Vec<T>, page: Page, cursor_of: impl Fn(&T) -> Cursor + Copy) -> Paged<T> {
    let key = |c: Cursor| (c.created_at, c.id);
    items.sort_by_key(|item| std::cmp::Reverse(key(cursor_of(item))));
    if let Some(after) = page.after {
        items.retain(|item| key(cursor_of(item)) < key(after));
    }
    items.truncate(page.limit as usize + 1);
    Paged::from_rows(items, page.limit, cursor_of)
}

fn run_cursor(run: &Run) -> Cursor {
    Cursor {
        created_at: run.created_at,
        id: run.id.0,
    }
}

/// A share rounded to `places`, as Postgres's `round(numeric, places)`; `None` of nothing.
fn share(part: f64, whole: f64, places: i32) -> Option<f64> {
    let factor = 10f64.powi(places);
    (whole > 0.0).then(|| (part / whole * factor).round() / factor)
}

impl MemBrowse {
    fn owned_run(&self, user: UserId, run: RunId) -> Option<Run> {
        self.runs
            .all()
            .into_iter()
            .find(|r| r.id == run && r.user_id == user)
    }

    fn detail(task: crate::domain::records::Task) -> TaskDetail {
        TaskDetail {
            task,
            attempts: Vec::new(),
        }
    }
}

#[async_trait]
impl Browse for MemBrowse {
    async fn projects(
        &self,
        user: UserId,
        archived: bool,
        page: Page,
    ) -> Result<Paged<Project>, StoreError> {
        let theirs: Vec<Project> = self
            .projects
            .all()
            .into_iter()
            .filter(|p| p.user_id == user && p.archived_at.is_some() == archived)
            .collect();
        Ok(paged(theirs, page, |p| Cursor {
            created_at: p.created_at,
            id: p.id.0,
        }))
    }

    async fn runs(
        &self,
        user: UserId,
        project: Option<ProjectId>,
        status: Option<RunStatus>,
        page: Page,
    ) -> Result<Paged<Run>, StoreError> {
        let theirs: Vec<Run> = self
            .runs
            .all()
            .into_iter()
            .filter(|r| r.user_id == user)
            .filter(|r| project.is_none_or(|p| p == r.project_id))
            .filter(|r| status.is_none_or(|s| s == r.status))
            .collect();
        Ok(paged(theirs, page, run_cursor))
    }

    async fn run_tasks(
        &self,
        user: UserId,
        run: RunId,
    ) -> Result<Option<Vec<TaskDetail>>, StoreError> {
        Ok(self.owned_run(user, run).map(|run| {
            self.runs
                .tasks_of(run.id)
                .into_iter()
                .map(MemBrowse::detail)
                .collect()
        }))
    }

    async fn task(&self, user: UserId, task: TaskId) -> Result<Option<TaskDetail>, StoreError> {
        let found = self
            .runs
            .all()
            .into_iter()
            .filter(|r| r.user_id == user)
            .flat_map(|r| self.runs.tasks_of(r.id))
            .find(|t| t.id == task);
        Ok(found.map(MemBrowse::detail))
    }

    async fn analytics(
        &self,
        user: UserId,
        project: Option<ProjectId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Analytics, StoreError> {
        let inside = |at: DateTime<Utc>| at >= from && at < to;
        let runs: Vec<Run> = self
            .runs
            .all()
            .into_iter()
            .filter(|r| r.user_id == user && project.is_none_or(|p| p == r.project_id))
            .filter(|r| inside(r.created_at))
            .collect();
        let calls: Vec<LlmCall> = self
            .ledger
            .rows()
            .into_iter()
            .filter(|(at, c)| {
                let who = &c.attribution;
                who.user_id == user && project.is_none_or(|p| p == who.project_id) && inside(*at)
            })
            .map(|(_, c)| c)
            .collect();
        let mut days: BTreeMap<String, RunsOnDay> = BTreeMap::new();
        for run in &runs {
            let day = run.created_at.format("%Y-%m-%d").to_string();
            let entry = days.entry(day.clone()).or_insert(RunsOnDay {
                day,
                runs: 0,
                succeeded: 0,
                failed: 0,
            });
            entry.runs += 1;
            entry.succeeded += i64::from(run.status == RunStatus::Succeeded);
            entry.failed += i64::from(run.status == RunStatus::Failed);
        }
        let count = |status: RunStatus| runs.iter().filter(|r| r.status == status).count() as f64;
        let ended =
            count(RunStatus::Succeeded) + count(RunStatus::Failed) + count(RunStatus::Cancelled);
        let mut durations: Vec<f64> = runs
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded)
            .filter_map(|r| Some((r.completed_at? - r.created_at).as_seconds_f64()))
            .collect();
        durations.sort_by(f64::total_cmp);
        let median = match durations.len() {
            0 => None,
            n if n % 2 == 1 => Some(durations[n / 2]),
            n => Some((durations[n / 2 - 1] + durations[n / 2]) / 2.0),
        };
        let cost = calls.iter().fold(MicroUsd::ZERO, |sum, c| sum + c.cost);
        let per_task = |calls: &[&LlmCall]| {
            let tasks: BTreeSet<TaskId> =
                calls.iter().filter_map(|c| c.attribution.task_id).collect();
            let spent: i64 = calls
                .iter()
                .filter(|c| c.attribution.task_id.is_some())
                .map(|c| c.cost.0)
                .sum();
            share(spent as f64, tasks.len() as f64, 2)
        };
        let all: Vec<&LlmCall> = calls.iter().collect();
        let hits = calls
            .iter()
            .filter(|c| c.outcome == LlmCallOutcome::CacheHit)
            .count();
        let mut by_agent: BTreeMap<&'static str, (AgentKind, Vec<&LlmCall>)> = BTreeMap::new();
        for call in &calls {
            let agent = call.attribution.agent;
            by_agent
                .entry(agent.as_str())
                .or_insert((agent, Vec::new()))
                .1
                .push(call);
        }
        let agents = by_agent
            .into_values()
            .map(|(agent, calls)| AgentActivity {
                agent,
                calls: calls.len() as i64,
                tasks: calls
                    .iter()
                    .filter_map(|c| c.attribution.task_id)
                    .collect::<BTreeSet<_>>()
                    .len() as i64,
                input_tokens: calls.iter().map(|c| i64::from(c.usage.input)).sum(),
                output_tokens: calls.iter().map(|c| i64::from(c.usage.output)).sum(),
                cost_micro_usd: calls.iter().fold(MicroUsd::ZERO, |sum, c| sum + c.cost),
                cost_per_task_micro_usd: per_task(&calls),
            })
            .collect();
        Ok(Analytics {
            from,
            to,
            runs: runs.len() as i64,
            runs_per_day: days.into_values().collect(),
            success_rate: share(count(RunStatus::Succeeded), ended, 4),
            median_duration_secs: median.map(|m| (m * 1000.0).round() / 1000.0),
            cost_micro_usd: cost,
            cost_per_task_micro_usd: per_task(&all),
            cache_hit_rate: share(hits as f64, calls.len() as f64, 4),
            agents,
            // The twin keeps no product events (they are Postgres's alone).
            events: 0,
            visitors: 0,
            traffic_per_day: Vec::new(),
        })
    }

    async fn artifacts(
        &self,
        user: UserId,
        project: ProjectId,
        run: Option<RunId>,
        page: Page,
    ) -> Result<Paged<ArtifactEntry>, StoreError> {
        let owned = self
            .projects
            .all()
            .iter()
            .any(|p| p.id == project && p.user_id == user);
        let entries: Vec<ArtifactEntry> = match owned {
            false => Vec::new(),
            true => self
                .artifacts
                .entries()
                .into_iter()
                .filter(|(_, a)| a.project_id == project && run.is_none_or(|r| a.run_id == Some(r)))
                .map(|(created_at, artifact)| ArtifactEntry {
                    artifact,
                    created_at,
                })
                .collect(),
        };
        Ok(paged(entries, page, |e| Cursor {
            created_at: e.created_at,
            id: e.artifact.id.0,
        }))
    }
}
