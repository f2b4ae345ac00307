//! Starting a run, reading it, cancelling, resuming and retrying: against the runs twin.

use super::field_of;
use crate::ApiError;
use crate::routes::{
    RunLimits, RunReads, cancelled, owned_run, resumed, retried, run_started, run_view,
};
use autocrew_shared::adapters::memory::{
    MemApprovals, MemArtifacts, MemBlobs, MemLedger, MemProjects, MemRuns,
};
use autocrew_shared::domain::messages::Outgoing;
use autocrew_shared::domain::records::{
    Artifact, Attribution, LlmCall, Project, Run, Task, TokenUsage,
};
use autocrew_shared::domain::requests::Resume;
use autocrew_shared::domain::{
    AgentKind, ArtifactId, Complexity, LlmCallOutcome, MicroUsd, Priority, RunStatus, TaskId,
    TaskStatus, UserId,
};
use autocrew_shared::ports::{ArtifactStore, Ledger, ProjectStore, RunStore};
use chrono::Utc;
use std::sync::Arc;

async fn a_project(user: UserId) -> Project {
    MemProjects::default()
        .create_project(user, "Keto", "")
        .await
        .expect("created")
}

async fn a_run(runs: &MemRuns, user: UserId) -> Run {
    let project = a_project(user).await;
    let command = ("Build a keto app", "command");
    run_started(
        runs,
        (user, &project),
        command,
        RunLimits::default(),
        Ok(None),
    )
    .await
    .expect("started")
    .value
}

fn a_task(run: &Run, key: &str, status: TaskStatus, depends_on: Vec<TaskId>) -> Task {
    Task {
        id: TaskId::new(),
        run_id: run.id,
        project_id: run.project_id,
        parent_task_id: None,
        key: key.into(),
        agent: AgentKind::Developer,
        title: key.into(),
        description: String::new(),
        status,
        priority: Priority::Normal,
        complexity: Complexity::Simple,
        budget: MicroUsd::from_dollars(1),
        depends_on,
        attempts: 3,
        max_attempts: 3,
        result: None,
        error_log: None,
        created_at: Utc::now(),
        started_at: None,
        completed_at: None,
    }
}

#[tokio::test]
async fn a_started_run_is_pending_with_its_bounds_and_the_start_of_its_execution() {
    let runs = MemRuns::default();
    let ana = UserId::new();
    let project = a_project(ana).await;
    let limits = RunLimits {
        budget_usd: Some(2.5),
        max_concurrency: Some(2),
        deadline_minutes: Some(30),
    };
    let started = run_started(
        &runs,
        (ana, &project),
        ("  Go  ", "command"),
        limits,
        Ok(None),
    )
    .await
    .expect("started");
    let run = started.value;
    assert_eq!((run.status, run.user_id), (RunStatus::Pending, ana));
    assert_eq!(run.command, "Go");
    assert_eq!(run.budget, MicroUsd(2_500_000));
    assert_eq!(run.max_concurrency, 2);
    let deadline = run.deadline_at.expect("a deadline") - run.created_at;
    assert_eq!(deadline.num_minutes(), 30);
    let [entry] = started.effects.outbox.as_slice() else {
        panic!("one outbox entry: {:?}", started.effects.outbox)
    };
    assert!(
        matches!(&entry.message, Outgoing::StartExecution { run_id, input, .. } if *run_id == run.id && input.run_id == run.id),
        "{entry:?}"
    );
}

#[tokio::test]
async fn a_command_checks_its_fields_before_its_idempotency_key() {
    let runs = MemRuns::default();
    let ana = UserId::new();
    let project = a_project(ana).await;
    let bad_key = || Err(ApiError::bad("Idempotency-Key", "must be visible ASCII"));
    let limits = RunLimits {
        max_concurrency: Some(0),
        ..RunLimits::default()
    };
    let refused = run_started(&runs, (ana, &project), ("Go", "command"), limits, bad_key()).await;
    assert_eq!(field_of(refused.expect_err("refused")), "max_concurrency");
    let default = RunLimits::default();
    let refused = run_started(
        &runs,
        (ana, &project),
        ("Go", "command"),
        default,
        bad_key(),
    )
    .await;
    assert_eq!(field_of(refused.expect_err("refused")), "Idempotency-Key");
}

#[tokio::test]
async fn one_idempotency_key_gives_one_run_and_another_request_under_it_is_refused() {
    let runs = MemRuns::default();
    let ana = UserId::new();
    let project = a_project(ana).await;
    let key = || Ok(Some("k-1".to_owned()));
    let start = |command: &'static str| {
        run_started(
            &runs,
            (ana, &project),
            (command, "command"),
            RunLimits::default(),
            key(),
        )
    };
    let first = start("Go").await.expect("started");
    let again = start("Go").await.expect("replayed");
    assert_eq!(again.value.id, first.value.id);
    assert!(again.effects.is_empty(), "a replay starts nothing");
    let other = start("Go elsewhere").await;
    assert!(
        matches!(other, Err(ApiError::Unprocessable(_))),
        "{other:?}"
    );
    // The key is the caller's: another user's request under it is their own.
    let ben = UserId::new();
    let bens = a_project(ben).await;
    let theirs = run_started(
        &runs,
        (ben, &bens),
        ("Go", "command"),
        RunLimits::default(),
        key(),
    )
    .await
    .expect("started");
    assert_ne!(theirs.value.id, first.value.id);
}

#[tokio::test]
async fn another_users_run_is_not_found_like_a_missing_one() {
    let runs = MemRuns::default();
    let run = a_run(&runs, UserId::new()).await;
    let ben = UserId::new();
    for id in [run.id, autocrew_shared::domain::RunId::new()] {
        let refused = owned_run(&runs, ben, id).await;
        assert!(
            matches!(refused, Err(ApiError::NotFound("run"))),
            "{refused:?}"
        );
        let refused = cancelled(&runs, &runs, ben, id).await;
        assert!(
            matches!(refused, Err(ApiError::NotFound("run"))),
            "{refused:?}"
        );
    }
    assert_eq!(
        runs.run(run.id).await.expect("kept").status,
        RunStatus::Pending
    );
}

#[tokio::test]
async fn a_cancelled_run_stops_its_execution_and_its_open_tasks_and_stays_cancelled() {
    let runs = MemRuns::default();
    let ana = UserId::new();
    let run = a_run(&runs, ana).await;
    runs.with_task(a_task(&run, "done", TaskStatus::Completed, vec![]));
    runs.with_task(a_task(&run, "open", TaskStatus::Running, vec![]));
    let stopped = cancelled(&runs, &runs, ana, run.id)
        .await
        .expect("cancelled");
    assert_eq!(stopped.value.status, RunStatus::Cancelled);
    assert!(
        stopped
            .effects
            .outbox
            .iter()
            .any(|e| matches!(&e.message, Outgoing::StopExecution { name, .. } if *name == run.execution_name))
    );
    let statuses: Vec<TaskStatus> = runs.tasks_of(run.id).iter().map(|t| t.status).collect();
    assert_eq!(statuses, [TaskStatus::Completed, TaskStatus::Cancelled]);
    let again = cancelled(&runs, &runs, ana, run.id).await;
    assert!(matches!(again, Err(ApiError::Conflict(_))), "{again:?}");
}

#[tokio::test]
async fn a_resumed_run_keeps_its_budget_above_what_it_spent_and_starts_a_new_execution() {
    let runs = MemRuns::default();
    let ana = UserId::new();
    let run = a_run(&runs, ana).await;
    let not_yet = resumed(&runs, &run, &Resume::default()).await;
    assert!(
        matches!(not_yet, Err(ApiError::Conflict(_))),
        "a pending run: {not_yet:?}"
    );
    runs.with_status(run.id, RunStatus::Failed, MicroUsd::from_dollars(3));
    let run = runs.run(run.id).await.expect("kept");
    for usd in [0.0, -1.0, f64::NAN, 101.0] {
        let body = Resume {
            budget_usd: Some(usd),
        };
        let refused = resumed(&runs, &run, &body).await;
        assert_eq!(
            field_of(refused.expect_err("refused")),
            "budget_usd",
            "{usd}"
        );
    }
    let below = Resume {
        budget_usd: Some(2.0),
    };
    let refused = resumed(&runs, &run, &below).await;
    assert!(matches!(refused, Err(ApiError::Conflict(_))), "{refused:?}");
    let raised = Resume {
        budget_usd: Some(10.0),
    };
    let going = resumed(&runs, &run, &raised).await.expect("resumed");
    assert_eq!(going.value.budget, MicroUsd::from_dollars(10));
    assert_eq!(going.value.executions, 2);
    assert_eq!(going.value.execution_name, format!("run-{}-2", run.id));
}

#[tokio::test]
async fn only_a_failed_task_of_ones_own_is_retried_with_the_tasks_it_blocked() {
    let runs = MemRuns::default();
    let ana = UserId::new();
    let run = a_run(&runs, ana).await;
    runs.with_status(run.id, RunStatus::Failed, MicroUsd::ZERO);
    let failed = a_task(&run, "app", TaskStatus::Failed, vec![]);
    let blocked = a_task(&run, "launch", TaskStatus::Blocked, vec![failed.id]);
    let done = a_task(&run, "brand", TaskStatus::Completed, vec![]);
    for task in [&failed, &blocked, &done] {
        runs.with_task(task.clone());
    }
    let ben = UserId::new();
    let theirs = retried((&runs, &runs), &runs, ben, failed.id).await;
    assert!(
        matches!(theirs, Err(ApiError::NotFound("task"))),
        "{theirs:?}"
    );
    let completed = retried((&runs, &runs), &runs, ana, done.id).await;
    assert!(
        matches!(completed, Err(ApiError::Conflict(_))),
        "{completed:?}"
    );
    let again = retried((&runs, &runs), &runs, ana, failed.id)
        .await
        .expect("retried");
    assert_eq!(again.value.status, TaskStatus::Ready);
    let by_key = |key: &str| {
        runs.tasks_of(run.id)
            .into_iter()
            .find(|t| t.key == key)
            .map(|t| t.status)
    };
    assert_eq!(by_key("launch"), Some(TaskStatus::Pending));
    assert_eq!(by_key("brand"), Some(TaskStatus::Completed));
    // The run had ended: it goes on in a new execution.
    assert!(
        again
            .effects
            .outbox
            .iter()
            .any(|e| matches!(e.message, Outgoing::StartExecution { .. }))
    );
}

#[tokio::test]
async fn a_run_is_read_with_each_tasks_spend_its_files_links_and_its_approvals() {
    let runs = Arc::new(MemRuns::default());
    let (ledger, artifacts, blobs) = (
        MemLedger::default(),
        MemArtifacts::default(),
        MemBlobs::default(),
    );
    let approvals = MemApprovals::new(runs.clone());
    let ana = UserId::new();
    let run = a_run(&runs, ana).await;
    let spender = a_task(&run, "app", TaskStatus::Completed, vec![]);
    let idle = a_task(&run, "brand", TaskStatus::Pending, vec![]);
    runs.with_task(spender.clone());
    runs.with_task(idle.clone());
    for (task, cents) in [(Some(spender.id), 3), (Some(spender.id), 4), (None, 5)] {
        ledger
            .record(&a_call(&run, task, MicroUsd(cents * 10_000)))
            .await
            .expect("recorded");
    }
    artifacts
        .record(&Artifact {
            id: ArtifactId::new(),
            project_id: run.project_id,
            run_id: Some(run.id),
            task_id: Some(spender.id),
            bucket: "artifacts".into(),
            key: "app/index.tsx".into(),
            content_type: "text/plain".into(),
            size_bytes: 9,
            checksum_sha256: "00".repeat(32),
        })
        .await
        .expect("recorded");
    let reads = || RunReads {
        runs: &*runs,
        tasks: &*runs,
        ledger: &ledger,
        artifacts: &artifacts,
        approvals: &approvals,
        blobs: &blobs,
    };
    let view = run_view(reads(), ana, run.id).await.expect("read");
    assert_eq!(view.run.id, run.id);
    assert_eq!(view.totals.calls, 3);
    assert_eq!(view.totals.cost, MicroUsd(120_000));
    let usage: Vec<Option<MicroUsd>> = view.tasks.iter().map(|t| t.usage.map(|u| u.cost)).collect();
    assert_eq!(usage, [Some(MicroUsd(70_000)), None]);
    let [file] = view.artifacts.as_slice() else {
        panic!("one file: {:?}", view.artifacts)
    };
    assert_eq!(file.key, "app/index.tsx");
    assert!(file.url.contains("app/index.tsx") && file.url.contains("expires_in=3600"));
    assert!(view.approvals.is_empty());
    let theirs = run_view(reads(), UserId::new(), run.id).await;
    assert!(
        matches!(theirs, Err(ApiError::NotFound("run"))),
        "{theirs:?}"
    );
}

fn a_call(run: &Run, task: Option<TaskId>, cost: MicroUsd) -> LlmCall {
    LlmCall {
        attribution: Attribution {
            user_id: run.user_id,
            project_id: run.project_id,
            run_id: Some(run.id),
            task_id: task,
            agent: AgentKind::Developer,
        },
        provider: "anthropic".into(),
        model: "claude-sonnet-4-5".into(),
        outcome: LlmCallOutcome::Ok,
        usage: TokenUsage {
            input: 100,
            output: 50,
            cache_write: 0,
            cache_read: 0,
        },
        cost,
        latency_ms: 900,
        error: None,
        attempt: 1,
        waited_ms: 0,
    }
}
