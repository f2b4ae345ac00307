//! Spend by group with the monthly budget, and analytics: against the ledger and browse
//! twins.

use crate::ApiError;
use crate::costs::cost_report;
use crate::routes::{RunLimits, run_started};
use autocrew_shared::adapters::memory::{
    MemArtifacts, MemBrowse, MemBudgets, MemLedger, MemProjects, MemRuns,
};
use autocrew_shared::domain::records::{Attribution, LlmCall, Project, Run, TokenUsage};
use autocrew_shared::domain::{AgentKind, LlmCallOutcome, MicroUsd, RunStatus, TaskId, UserId};
use autocrew_shared::ports::{Browse, BudgetStore, CostGroup, Ledger, ProjectStore};
use chrono::{Duration, Utc};
use std::sync::Arc;

fn call(
    run: &Run,
    task: Option<TaskId>,
    agent: AgentKind,
    outcome: LlmCallOutcome,
    cost: i64,
) -> LlmCall {
    LlmCall {
        attribution: Attribution {
            user_id: run.user_id,
            project_id: run.project_id,
            run_id: Some(run.id),
            task_id: task,
            agent,
        },
        provider: "openai".into(),
        model: "gpt-5-mini".into(),
        outcome,
        usage: TokenUsage {
            input: 10,
            output: 5,
            cache_write: 0,
            cache_read: 0,
        },
        cost: MicroUsd(cost),
        latency_ms: 100,
        error: None,
        attempt: 1,
        waited_ms: 0,
    }
}

async fn a_run(runs: &MemRuns, project: &Project) -> Run {
    let command = ("Go", "command");
    run_started(
        runs,
        (project.user_id, project),
        command,
        RunLimits::default(),
        Ok(None),
    )
    .await
    .expect("started")
    .value
}

#[tokio::test]
async fn spend_is_grouped_costliest_first_with_the_months_budget_and_only_ones_own() {
    let projects = MemProjects::default();
    let (runs, ledger) = (MemRuns::default(), MemLedger::default());
    let ana = projects
        .create_user("ana@example.com", "Ana")
        .await
        .expect("user")
        .id;
    let keto = projects
        .create_project(ana, "Keto", "")
        .await
        .expect("project");
    let vegan = projects
        .create_project(ana, "Vegan", "")
        .await
        .expect("project");
    let (first, second) = (a_run(&runs, &keto).await, a_run(&runs, &vegan).await);
    for (run, cost) in [(&first, 100), (&first, 50), (&second, 400)] {
        let row = call(run, None, AgentKind::Developer, LlmCallOutcome::Ok, cost);
        ledger.record(&row).await.expect("recorded");
    }
    let now = Utc::now();
    let period = (now - Duration::days(1), now + Duration::seconds(1));
    let budgets = MemBudgets::default();
    budgets.grant(ana, MicroUsd(8_000_000));
    for cost in [100, 50, 400] {
        let held = budgets
            .reserve(ana, (None, None), MicroUsd(cost))
            .await
            .expect("held");
        budgets
            .settle(held.id, MicroUsd(cost))
            .await
            .expect("settled");
    }
    let ports = (
        &projects as &dyn ProjectStore,
        &ledger as &dyn Ledger,
        &budgets as &dyn BudgetStore,
    );
    let report = cost_report(ports, (ana, None), CostGroup::Run, period)
        .await
        .expect("report");
    let groups: Vec<(String, u64, MicroUsd)> = report
        .groups
        .iter()
        .map(|g| (g.key.clone(), g.calls, g.cost))
        .collect();
    assert_eq!(
        groups,
        [
            (second.id.to_string(), 1, MicroUsd(400)),
            (first.id.to_string(), 2, MicroUsd(150))
        ]
    );
    assert_eq!(
        (report.total.calls, report.total.cost_micro_usd),
        (3, MicroUsd(550))
    );
    let budget = &report.ai_budget;
    assert_eq!(budget.spent_micro_usd, MicroUsd(550));
    assert_eq!(budget.limit_micro_usd, MicroUsd(8_000_000));
    assert_eq!(
        budget.left_micro_usd,
        budget.limit_micro_usd.remaining_after(MicroUsd(550))
    );
    let one = cost_report(ports, (ana, Some(keto.id)), CostGroup::Project, period)
        .await
        .expect("report");
    assert_eq!(one.total.cost_micro_usd, MicroUsd(150));
    let ben = projects
        .create_user("ben@example.com", "Ben")
        .await
        .expect("user")
        .id;
    let theirs = cost_report(ports, (ben, Some(keto.id)), CostGroup::Run, period).await;
    assert!(
        matches!(theirs, Err(ApiError::NotFound("project"))),
        "{theirs:?}"
    );
    let bens = cost_report(ports, (ben, None), CostGroup::Run, period)
        .await
        .expect("report");
    assert!(bens.groups.is_empty() && bens.total.calls == 0);
}

#[tokio::test]
async fn analytics_count_runs_by_day_success_cost_per_task_and_cache_hits() {
    let projects = Arc::new(MemProjects::default());
    let runs = Arc::new(MemRuns::default());
    let ledger = Arc::new(MemLedger::default());
    let browse = MemBrowse {
        projects: projects.clone(),
        runs: runs.clone(),
        artifacts: Arc::new(MemArtifacts::default()),
        ledger: ledger.clone(),
    };
    let ana = projects
        .create_user("ana@example.com", "Ana")
        .await
        .expect("user")
        .id;
    let keto = projects
        .create_project(ana, "Keto", "")
        .await
        .expect("project");
    let mut made = Vec::new();
    for status in [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Running] {
        let run = a_run(&runs, &keto).await;
        runs.with_status(run.id, status, MicroUsd::ZERO);
        made.push(run);
    }
    let (one, two) = (TaskId::new(), TaskId::new());
    for row in [
        call(
            &made[0],
            Some(one),
            AgentKind::Developer,
            LlmCallOutcome::Ok,
            300,
        ),
        call(
            &made[0],
            Some(one),
            AgentKind::Developer,
            LlmCallOutcome::CacheHit,
            0,
        ),
        call(
            &made[1],
            Some(two),
            AgentKind::Marketer,
            LlmCallOutcome::Ok,
            100,
        ),
        call(
            &made[1],
            None,
            AgentKind::Orchestrator,
            LlmCallOutcome::Error,
            0,
        ),
    ] {
        ledger.record(&row).await.expect("recorded");
    }
    let now = Utc::now();
    let seen = browse
        .analytics(
            ana,
            None,
            now - Duration::days(1),
            now + Duration::seconds(1),
        )
        .await
        .expect("analytics");
    assert_eq!(seen.runs, 3);
    let today: i64 = seen.runs_per_day.iter().map(|d| d.runs).sum();
    assert_eq!(today, 3);
    assert_eq!(seen.success_rate, Some(0.5), "one of the two that ended");
    assert_eq!(seen.cost_micro_usd, MicroUsd(400));
    assert_eq!(seen.cost_per_task_micro_usd, Some(200.0));
    assert_eq!(seen.cache_hit_rate, Some(0.25));
    let agents: Vec<(AgentKind, i64, i64)> = seen
        .agents
        .iter()
        .map(|a| (a.agent, a.calls, a.tasks))
        .collect();
    assert_eq!(
        agents,
        [
            (AgentKind::Developer, 2, 1),
            (AgentKind::Marketer, 1, 1),
            (AgentKind::Orchestrator, 1, 0)
        ]
    );
    let bens = browse
        .analytics(UserId::new(), None, now - Duration::days(1), now)
        .await
        .expect("analytics");
    assert_eq!(
        (bens.runs, bens.success_rate, bens.cache_hit_rate),
        (0, None, None)
    );
}
