use super::*;

fn task(key: &str, agent: &str, deps: &[&str]) -> PlannedTask {
    PlannedTask {
        key: key.into(),
        agent: agent.into(),
        title: format!("Do {key}"),
        description: String::new(),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        priority: "normal".into(),
        complexity: "medium".into(),
        budget_micro_usd: 0,
    }
}

fn with_priority(mut t: PlannedTask, priority: &str) -> PlannedTask {
    t.priority = priority.into();
    t
}

fn build(plan: &[PlannedTask]) -> Result<TaskGraph, PlanError> {
    TaskGraph::build(plan, PlanLimits::default())
}

fn keys(graph: &TaskGraph, indexes: &[usize]) -> Vec<String> {
    indexes
        .iter()
        .map(|&i| graph.tasks()[i].key.clone())
        .collect()
}

/// A diamond with a tail: spec → (code, copy) → launch → report.
fn diamond() -> Vec<PlannedTask> {
    vec![
        task("spec", "developer", &[]),
        task("code", "developer", &["spec"]),
        task("copy", "marketer", &["spec"]),
        task("launch", "ops", &["code", "copy"]),
        task("report", "sales", &["launch"]),
    ]
}

#[test]
fn a_two_task_cycle_is_rejected_naming_both_tasks() {
    let err = build(&[task("a", "developer", &["b"]), task("b", "ops", &["a"])]).unwrap_err();
    let PlanError::Cycle { path } = &err else {
        panic!("expected a cycle, got {err:?}")
    };
    assert_eq!(path.first(), path.last());
    assert!(
        path.contains(&"a".to_string()) && path.contains(&"b".to_string()),
        "{path:?}"
    );
    assert!(err.to_string().contains(" -> "), "{err}");
}

#[test]
fn a_long_cycle_behind_a_valid_prefix_is_found() {
    let plan = [
        task("root", "developer", &[]),
        task("x", "developer", &["root", "z"]),
        task("y", "marketer", &["x"]),
        task("z", "sales", &["y"]),
        task("free", "ops", &["root"]),
    ];
    let PlanError::Cycle { path } = build(&plan).unwrap_err() else {
        panic!("expected a cycle")
    };
    let mut cycle: Vec<_> = path[..path.len() - 1].to_vec();
    cycle.sort();
    assert_eq!(cycle, ["x", "y", "z"]);
}

#[test]
fn a_self_dependency_names_the_task() {
    assert_eq!(
        build(&[task("a", "developer", &["a"])]),
        Err(PlanError::SelfDependency { task: "a".into() })
    );
}

#[test]
fn an_unknown_agent_names_the_task_and_the_agent() {
    let err = build(&[task("a", "developer", &[]), task("b", "wizard", &["a"])]).unwrap_err();
    assert_eq!(
        err,
        PlanError::UnknownAgent {
            task: "b".into(),
            agent: "wizard".into()
        }
    );
    assert!(err.to_string().contains("\"b\"") && err.to_string().contains("wizard"));
}

#[test]
fn the_orchestrator_cannot_be_given_tasks() {
    let err = build(&[task("a", "orchestrator", &[])]).unwrap_err();
    assert!(matches!(err, PlanError::UnknownAgent { .. }));
}

#[test]
fn a_dangling_dependency_names_both_ends() {
    let err = build(&[task("a", "developer", &["ghost"])]).unwrap_err();
    assert_eq!(
        err,
        PlanError::DanglingDependency {
            task: "a".into(),
            missing: "ghost".into()
        }
    );
}

#[test]
fn duplicate_and_invalid_keys_are_rejected() {
    assert_eq!(
        build(&[task("a", "ops", &[]), task("a", "ops", &[])]),
        Err(PlanError::DuplicateKey { key: "a".into() })
    );
    assert_eq!(
        build(&[task("Bad Key", "ops", &[])]),
        Err(PlanError::InvalidKey {
            key: "Bad Key".into()
        })
    );
}

#[test]
fn a_bad_priority_names_the_task_and_field() {
    let err = build(&[with_priority(task("a", "ops", &[]), "urgent")]).unwrap_err();
    let PlanError::InvalidField { task, field, .. } = err else {
        panic!("expected invalid field")
    };
    assert_eq!((task.as_str(), field), ("a", "priority"));
}

#[test]
fn empty_and_oversized_plans_are_rejected() {
    assert_eq!(build(&[]), Err(PlanError::Empty));
    let plan: Vec<_> = (0..51)
        .map(|i| task(&format!("t{i}"), "ops", &[]))
        .collect();
    assert_eq!(
        build(&plan),
        Err(PlanError::TooLarge { tasks: 51, max: 50 })
    );
}

#[test]
fn budgets_over_the_run_budget_are_rejected() {
    let mut a = task("a", "ops", &[]);
    a.budget_micro_usd = 4_000_000;
    let mut b = task("b", "ops", &[]);
    b.budget_micro_usd = 2_000_000;
    let limits = PlanLimits {
        budget: MicroUsd::from_dollars(5),
        ..PlanLimits::default()
    };
    assert_eq!(
        TaskGraph::build(&[a, b], limits),
        Err(PlanError::OverBudget {
            total: MicroUsd(6_000_000),
            limit: MicroUsd::from_dollars(5)
        })
    );
}

#[test]
fn only_the_tasks_without_dependencies_start_with_the_plan() {
    let graph = build(&diamond()).unwrap();
    assert_eq!(keys(&graph, &graph.ready_at_start()), ["spec"]);
}

#[test]
fn the_first_tasks_come_highest_priority_first() {
    let plan = [
        with_priority(task("low", "ops", &[]), "low"),
        with_priority(task("crit", "sales", &[]), "critical"),
        task("normal", "marketer", &[]),
        task("after", "developer", &["crit"]),
    ];
    let graph = build(&plan).unwrap();
    assert_eq!(
        keys(&graph, &graph.ready_at_start()),
        ["crit", "normal", "low"]
    );
}

#[test]
fn a_big_layered_plan_builds_quickly() {
    // 20 layers of 250 tasks, each depending on 3 tasks of the layer before: 5,000 tasks.
    let (layers, width) = (20, 250);
    let mut plan = Vec::new();
    for layer in 0..layers {
        for i in 0..width {
            let deps: Vec<String> = if layer == 0 {
                vec![]
            } else {
                (0..3)
                    .map(|k| format!("l{}-{}", layer - 1, (i + k * 7) % width))
                    .collect()
            };
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            plan.push(task(&format!("l{layer}-{i}"), "developer", &deps));
        }
    }
    let limits = PlanLimits {
        max_tasks: 10_000,
        ..PlanLimits::default()
    };
    let graph = TaskGraph::build(&plan, limits).unwrap();
    assert_eq!(graph.tasks().len(), layers * width);
    assert_eq!(graph.ready_at_start().len(), width);
}

#[test]
fn a_plan_parses_from_the_llm_json_with_defaults() {
    let json = r#"[{"key":"a","agent":"designer","title":"Brand sheet"},
                   {"key":"b","agent":"developer","title":"App","depends_on":["a"],"priority":"high","complexity":"complex"}]"#;
    let plan: Vec<PlannedTask> = serde_json::from_str(json).unwrap();
    let graph = build(&plan).unwrap();
    assert_eq!(graph.tasks()[0].priority, Priority::Normal);
    assert_eq!(graph.tasks()[1].complexity, Complexity::Complex);
    assert_eq!(graph.tasks()[1].depends_on, [0]);
}
