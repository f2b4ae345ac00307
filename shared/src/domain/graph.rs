//! The task graph: a plan, as the orchestrator's LLM wrote it, checked and turned into
//! something that can be executed. Building is the only way to get a `TaskGraph`, so a graph
//! in hand is acyclic, bounded, with known agents and no dangling dependencies.

use super::kinds::{AgentKind, Complexity, Priority};
use super::money::MicroUsd;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::HashMap;

/// One task as the plan states it. Agent, priority and complexity are kept as text here so
/// that a wrong value is reported with the task that holds it, not as a JSON error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedTask {
    /// Unique within the plan; dependencies refer to it.
    pub key: String,
    pub agent: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default = "default_priority")]
    pub priority: String,
    #[serde(default = "default_complexity")]
    pub complexity: String,
    #[serde(default)]
    pub budget_micro_usd: i64,
}

fn default_priority() -> String {
    Priority::Normal.as_str().to_owned()
}

fn default_complexity() -> String {
    Complexity::Medium.as_str().to_owned()
}

/// Bounds a plan must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    pub max_tasks: usize,
    pub max_dependencies_per_task: usize,
    /// The sum of the tasks' budgets may not exceed this (the run's budget).
    pub budget: MicroUsd,
}

impl Default for PlanLimits {
    fn default() -> Self {
        PlanLimits {
            max_tasks: 50,
            max_dependencies_per_task: 20,
            budget: MicroUsd::from_dollars(5),
        }
    }
}

/// Why a plan was rejected. Every variant about one task names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the plan has no tasks")]
    Empty,
    #[error("the plan has {tasks} tasks; at most {max} are allowed")]
    TooLarge { tasks: usize, max: usize },
    #[error("task key {key:?} is invalid: use 1-64 characters of a-z, 0-9, '_' or '-'")]
    InvalidKey { key: String },
    #[error("task {key:?} appears more than once")]
    DuplicateKey { key: String },
    #[error(
        "task {task:?} names unknown agent {agent:?}; expected one of: developer, marketer, sales, designer, ops"
    )]
    UnknownAgent { task: String, agent: String },
    #[error("task {task:?} has an invalid {field}: {reason}")]
    InvalidField {
        task: String,
        field: &'static str,
        reason: String,
    },
    #[error("task {task:?} depends on {missing:?}, which is not in the plan")]
    DanglingDependency { task: String, missing: String },
    #[error("task {task:?} depends on itself")]
    SelfDependency { task: String },
    #[error("task {task:?} has {count} dependencies; at most {max} are allowed")]
    TooManyDependencies {
        task: String,
        count: usize,
        max: usize,
    },
    #[error("the plan has a dependency cycle: {}", path.join(" -> "))]
    Cycle { path: Vec<String> },
    #[error("the plan's task budgets add up to {total}, over the run's budget of {limit}")]
    OverBudget { total: MicroUsd, limit: MicroUsd },
}

/// A validated task: the plan's fields in their typed forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphTask {
    pub key: String,
    pub agent: AgentKind,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub complexity: Complexity,
    pub budget: MicroUsd,
    /// Indexes into the graph's tasks.
    pub depends_on: Vec<usize>,
}

/// A checked plan. Invariants: acyclic; every dependency index is in range; keys are unique.
/// Once stored, Postgres schedules it: each task counts its dependencies not yet completed
/// and becomes ready at zero (`adapters/postgres/transitions.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskGraph {
    tasks: Vec<GraphTask>,
}

impl TaskGraph {
    /// Checks a plan against `limits` and builds its graph.
    pub fn build(plan: &[PlannedTask], limits: PlanLimits) -> Result<TaskGraph, PlanError> {
        if plan.is_empty() {
            return Err(PlanError::Empty);
        }
        if plan.len() > limits.max_tasks {
            return Err(PlanError::TooLarge {
                tasks: plan.len(),
                max: limits.max_tasks,
            });
        }
        let mut index = HashMap::with_capacity(plan.len());
        for (i, task) in plan.iter().enumerate() {
            if !valid_key(&task.key) {
                return Err(PlanError::InvalidKey {
                    key: task.key.clone(),
                });
            }
            if index.insert(task.key.as_str(), i).is_some() {
                return Err(PlanError::DuplicateKey {
                    key: task.key.clone(),
                });
            }
        }
        let tasks = plan
            .iter()
            .map(|task| check_task(task, &index, limits))
            .collect::<Result<Vec<_>, _>>()?;
        let total: MicroUsd = tasks.iter().map(|t| t.budget).sum();
        if total > limits.budget {
            return Err(PlanError::OverBudget {
                total,
                limit: limits.budget,
            });
        }
        let mut dependants = vec![Vec::new(); tasks.len()];
        for (i, task) in tasks.iter().enumerate() {
            for &dep in &task.depends_on {
                dependants[dep].push(i);
            }
        }
        check_acyclic(&tasks, &dependants)?;
        Ok(TaskGraph { tasks })
    }

    /// The tasks, in plan order.
    pub fn tasks(&self) -> &[GraphTask] {
        &self.tasks
    }

    /// The tasks that start as soon as the plan is accepted (those with no dependency),
    /// highest priority first, then plan order.
    pub fn ready_at_start(&self) -> Vec<usize> {
        let mut ready: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| self.tasks[i].depends_on.is_empty())
            .collect();
        ready.sort_by_key(|&i| (Reverse(self.tasks[i].priority), i));
        ready
    }
}

fn valid_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn check_task(
    task: &PlannedTask,
    index: &HashMap<&str, usize>,
    limits: PlanLimits,
) -> Result<GraphTask, PlanError> {
    let named = |field: &'static str, reason: String| PlanError::InvalidField {
        task: task.key.clone(),
        field,
        reason,
    };
    let agent = task
        .agent
        .parse::<AgentKind>()
        .ok()
        .filter(|a| AgentKind::WORKERS.contains(a))
        .ok_or_else(|| PlanError::UnknownAgent {
            task: task.key.clone(),
            agent: task.agent.clone(),
        })?;
    let title = task.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(named("title", "must be 1-200 characters".into()));
    }
    if task.description.chars().count() > 4000 {
        return Err(named(
            "description",
            "must be at most 4000 characters".into(),
        ));
    }
    let priority = task
        .priority
        .parse::<Priority>()
        .map_err(|e| named("priority", e.to_string()))?;
    let complexity = task
        .complexity
        .parse::<Complexity>()
        .map_err(|e| named("complexity", e.to_string()))?;
    if task.budget_micro_usd < 0 {
        return Err(named("budget_micro_usd", "must not be negative".into()));
    }
    if task.depends_on.len() > limits.max_dependencies_per_task {
        return Err(PlanError::TooManyDependencies {
            task: task.key.clone(),
            count: task.depends_on.len(),
            max: limits.max_dependencies_per_task,
        });
    }
    let mut depends_on = Vec::with_capacity(task.depends_on.len());
    for dep in &task.depends_on {
        if dep == &task.key {
            return Err(PlanError::SelfDependency {
                task: task.key.clone(),
            });
        }
        let &i = index
            .get(dep.as_str())
            .ok_or_else(|| PlanError::DanglingDependency {
                task: task.key.clone(),
                missing: dep.clone(),
            })?;
        if !depends_on.contains(&i) {
            depends_on.push(i);
        }
    }
    Ok(GraphTask {
        key: task.key.clone(),
        agent,
        title: title.to_owned(),
        description: task.description.clone(),
        priority,
        complexity,
        budget: MicroUsd(task.budget_micro_usd),
        depends_on,
    })
}

/// Kahn's algorithm with a priority heap. If tasks remain, they hold a cycle: report one.
/// A cycle, if the plan has one: tasks are taken off as their dependencies are (Kahn's
/// algorithm); any left over wait on each other.
fn check_acyclic(tasks: &[GraphTask], dependants: &[Vec<usize>]) -> Result<(), PlanError> {
    let mut waiting: Vec<usize> = tasks.iter().map(|t| t.depends_on.len()).collect();
    let mut free: Vec<usize> = (0..tasks.len()).filter(|&i| waiting[i] == 0).collect();
    let mut taken = 0;
    while let Some(i) = free.pop() {
        taken += 1;
        for &d in &dependants[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                free.push(d);
            }
        }
    }
    if taken == tasks.len() {
        return Ok(());
    }
    Err(PlanError::Cycle {
        path: find_cycle(tasks, &waiting),
    })
}

/// Walks dependencies from a task still waiting; every such task has a waiting dependency,
/// so the walk must revisit a task, and the loop from its first visit is a cycle.
fn find_cycle(tasks: &[GraphTask], waiting: &[usize]) -> Vec<String> {
    let Some(start) = (0..tasks.len()).find(|&i| waiting[i] > 0) else {
        return Vec::new();
    };
    let mut visited_at = HashMap::new();
    let mut walk = Vec::new();
    let mut current = start;
    while !visited_at.contains_key(&current) {
        visited_at.insert(current, walk.len());
        walk.push(current);
        match tasks[current]
            .depends_on
            .iter()
            .copied()
            .find(|&d| waiting[d] > 0)
        {
            Some(next) => current = next,
            None => break,
        }
    }
    let from = visited_at.get(&current).copied().unwrap_or(0);
    // The walk follows "depends on" edges; print the cycle in execution order.
    let mut path: Vec<String> = walk[from..]
        .iter()
        .rev()
        .map(|&i| tasks[i].key.clone())
        .collect();
    if let Some(first) = path.first().cloned() {
        path.push(first);
    }
    path
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
