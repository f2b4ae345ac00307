//! Re-planning: when a task fails for good, an agent's `finish` says the plan must change,
//! or the user amends a running plan by message, the orchestrator may replace the part of
//! the graph that has not started. A revision keeps every task that started or ended as
//! it is (completed work is never discarded or re-run); it adds, changes and removes only
//! tasks that have not started, and the failed tasks it answers are marked `replaced`.
//! A run has at most `MAX_REVISIONS`, each within the run's budget.

use super::events::PlannedTaskView;
use super::graph::{PlanError, PlanLimits, PlannedTask, TaskGraph};
use super::records::Task;
use super::{TaskId, TaskStatus};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The most revisions one run gets; past it a failure blocks its dependants as before.
pub const MAX_REVISIONS: u32 = 2;

/// Whether a task counts as not started: a revision may change or remove it.
pub fn not_started(status: TaskStatus) -> bool {
    matches!(status, TaskStatus::Pending | TaskStatus::Ready)
}

/// A checked revision: the run's new graph (the kept tasks first, then the new tail), and
/// what it does to the tasks that had not started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Every task of the run after the revision that is not failed or replaced: the kept
    /// ones (started or ended), then the tail, with dependencies by index.
    pub graph: TaskGraph,
    /// How many of `graph`'s tasks are kept as they are (the first ones).
    pub kept: usize,
    /// Tail tasks that replace a not-started task of the same key: its id.
    pub reused: HashMap<String, TaskId>,
    /// Keys added, changed (same key, another agent, text or dependencies) and removed.
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<(String, TaskId)>,
    /// The failed tasks the revision answers: they become `replaced`.
    pub replaced: Vec<(String, TaskId)>,
}

/// Why a revision was asked for, and by what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevisionRequest {
    pub reason: String,
}

fn as_planned(task: &Task, keys: &HashMap<TaskId, &str>) -> PlannedTask {
    PlannedTask {
        key: task.key.clone(),
        agent: task.agent.as_str().to_owned(),
        title: task.title.clone(),
        description: task.description.clone(),
        depends_on: task
            .depends_on
            .iter()
            .filter_map(|d| keys.get(d).map(|k| (*k).to_owned()))
            .collect(),
        priority: task.priority.as_str().to_owned(),
        complexity: task.complexity.as_str().to_owned(),
        budget_micro_usd: task.budget.0,
    }
}

/// Checks the orchestrator's new tail against the run's tasks: no tail task may reuse the
/// key of a task that started or ended, every dependency must be a kept task (not a failed
/// one) or a tail task, and the whole graph must be acyclic and within `limits`.
pub fn revise(
    tasks: &[Task],
    tail: &[PlannedTask],
    limits: PlanLimits,
) -> Result<Revision, PlanError> {
    let keys: HashMap<TaskId, &str> = tasks.iter().map(|t| (t.id, t.key.as_str())).collect();
    let kept: Vec<&Task> = tasks
        .iter()
        .filter(|t| {
            !not_started(t.status)
                && !matches!(
                    t.status,
                    TaskStatus::Failed | TaskStatus::Replaced | TaskStatus::Blocked
                )
        })
        .collect();
    // A key names one task of the run for good: one that started or ended keeps it.
    let used_keys: HashSet<&str> = tasks
        .iter()
        .filter(|t| !not_started(t.status))
        .map(|t| t.key.as_str())
        .collect();
    for task in tail {
        if used_keys.contains(task.key.as_str()) {
            return Err(PlanError::InvalidField {
                task: task.key.clone(),
                field: "key",
                reason: "that task has started or ended; work done is kept and never re-run, so name new work with a new key".into(),
            });
        }
    }
    let open: HashMap<&str, &Task> = tasks
        .iter()
        .filter(|t| not_started(t.status))
        .map(|t| (t.key.as_str(), t))
        .collect();
    let mut whole: Vec<PlannedTask> = kept.iter().map(|t| as_planned(t, &keys)).collect();
    whole.extend(tail.iter().cloned());
    let graph = TaskGraph::build(&whole, limits)?;
    let mut reused = HashMap::new();
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for task in tail {
        match open.get(task.key.as_str()) {
            Some(old) => {
                reused.insert(task.key.clone(), old.id);
                if as_planned(old, &keys) != *task {
                    changed.push(task.key.clone());
                }
            }
            None => added.push(task.key.clone()),
        }
    }
    let tail_keys: HashSet<&str> = tail.iter().map(|t| t.key.as_str()).collect();
    let mut removed: Vec<(String, TaskId)> = open
        .values()
        .filter(|t| !tail_keys.contains(t.key.as_str()))
        .map(|t| (t.key.clone(), t.id))
        .collect();
    removed.sort();
    let replaced = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Failed)
        .map(|t| (t.key.clone(), t.id))
        .collect();
    Ok(Revision {
        graph,
        kept: kept.len(),
        reused,
        added,
        changed,
        removed,
        replaced,
    })
}

/// What a revision did, as the `plan_revised` event tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanRevised {
    /// 1 for the run's first revision.
    pub round: u32,
    pub reason: String,
    /// The tail's tasks as stored: new ones and changed ones (by key in `added`, `changed`).
    pub tasks: Vec<PlannedTaskView>,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    /// Tasks that had not started and are no longer in the plan.
    pub removed: Vec<String>,
    /// Failed tasks the revision answers (now `replaced`).
    pub replaced: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AgentKind, Complexity, MicroUsd, Priority, ProjectId, RunId};

    fn task(key: &str, status: TaskStatus, deps: &[&Task]) -> Task {
        Task {
            id: TaskId::new(),
            run_id: RunId::new(),
            project_id: ProjectId::new(),
            parent_task_id: None,
            key: key.into(),
            agent: AgentKind::Ops,
            title: format!("Do {key}"),
            description: String::new(),
            status,
            priority: Priority::Normal,
            complexity: Complexity::Simple,
            budget: MicroUsd::ZERO,
            depends_on: deps.iter().map(|d| d.id).collect(),
            attempts: 0,
            max_attempts: 3,
            result: None,
            error_log: None,
            created_at: chrono::Utc::now(),
            started_at: None,
            completed_at: None,
        }
    }

    fn planned(key: &str, deps: &[&str]) -> PlannedTask {
        PlannedTask {
            key: key.into(),
            agent: "ops".into(),
            title: format!("Do {key}"),
            description: String::new(),
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
            priority: "normal".into(),
            complexity: "simple".into(),
            budget_micro_usd: 0,
        }
    }

    fn limits() -> PlanLimits {
        PlanLimits {
            budget: MicroUsd::from_dollars(5),
            ..PlanLimits::default()
        }
    }

    #[test]
    fn a_failed_task_is_replaced_and_only_the_not_started_tail_changes() {
        let done = task("research", TaskStatus::Completed, &[]);
        let failed = task("checklist", TaskStatus::Failed, &[&done]);
        let waiting = task("launch", TaskStatus::Pending, &[&failed]);
        let idle = task("extra", TaskStatus::Ready, &[&done]);
        let tasks = [done, failed, waiting, idle];
        let tail = [
            planned("checklist_v2", &["research"]),
            planned("launch", &["checklist_v2"]),
        ];
        let revision = revise(&tasks, &tail, limits()).expect("a valid revision");
        assert_eq!(revision.kept, 1);
        assert_eq!(revision.added, ["checklist_v2"]);
        assert_eq!(revision.changed, ["launch"]);
        assert_eq!(revision.removed, [("extra".to_owned(), tasks[3].id)]);
        assert_eq!(revision.replaced, [("checklist".to_owned(), tasks[1].id)]);
        assert_eq!(revision.reused.get("launch"), Some(&tasks[2].id));
    }

    #[test]
    fn work_that_started_is_never_redone_and_a_failed_task_is_no_dependency() {
        let done = task("research", TaskStatus::Completed, &[]);
        let running = task("app", TaskStatus::Running, &[]);
        let failed = task("checklist", TaskStatus::Failed, &[]);
        let tasks = [done, running, failed];
        for key in ["research", "app", "checklist"] {
            let again = revise(&tasks, &[planned(key, &[])], limits());
            assert!(
                matches!(again, Err(PlanError::InvalidField { ref task, field: "key", .. }) if task == key),
                "{again:?}"
            );
        }
        let on_failed = revise(&tasks, &[planned("launch", &["checklist"])], limits());
        // (A failed task's key is taken too: its replacement is new work with a new key.)
        assert!(
            matches!(on_failed, Err(PlanError::DanglingDependency { .. })),
            "{on_failed:?}"
        );
        let on_running = revise(&tasks, &[planned("launch", &["app", "research"])], limits());
        assert!(on_running.is_ok(), "{on_running:?}");
    }
}
