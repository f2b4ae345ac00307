//! Round trips through the Postgres stores.

use autocrew_shared::adapters::postgres::{
    PgEventLog, PgIdempotencyStore, PgLedger, PgProjectStore, PgRunStore, PgTaskStore,
};
use autocrew_shared::domain::records::{Attribution, LlmCall, TokenUsage};
use autocrew_shared::domain::{
    AgentKind, EventKind, LlmCallOutcome, MicroUsd, PlanLimits, Priority, ProjectId, RunId,
    RunStatus, TaskGraph, TaskStatus,
};
use autocrew_shared::ports::{
    Claim, EventLog, Failure, IdempotencyStore, Ledger, ProjectStore, RunStore, StoreError,
    TaskReads, TaskStore,
};
use autocrew_tests::{Drive, TestDb, planned, seed, seed_running};
use serde_json::json;

#[tokio::test]
async fn a_user_project_and_run_round_trip() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 3).await?;
    let runs = PgRunStore::new(db.pool.clone());

    let run = runs.run(seeded.run.id).await?;
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(run.execution_name, format!("run-{}", run.id));
    assert_eq!(
        (run.budget, run.max_concurrency),
        (MicroUsd::from_dollars(5), 3)
    );

    runs.set_execution_arn(
        run.id,
        "arn:aws:states:us-east-1:123456789012:execution:m:e",
    )
    .await?;
    let running = runs.set_status(run.id, RunStatus::Running, None).await?;
    assert!(running.started_at.is_some() && running.completed_at.is_none());
    let failed = runs
        .set_status(run.id, RunStatus::Failed, Some("plan rejected"))
        .await?;
    assert_eq!(failed.error.as_deref(), Some("plan rejected"));
    assert!(failed.completed_at.is_some());
    assert_eq!(
        failed.execution_arn.as_deref(),
        Some("arn:aws:states:us-east-1:123456789012:execution:m:e")
    );

    let again = runs.set_status(run.id, RunStatus::Running, None).await;
    assert!(
        matches!(
            again,
            Err(StoreError::RunEnded {
                status: RunStatus::Failed,
                ..
            })
        ),
        "{again:?}"
    );
    let project = PgProjectStore::new(db.pool.clone())
        .project(seeded.project.id)
        .await?;
    assert_eq!(project, seeded.project);
    Ok(())
}

#[tokio::test]
async fn missing_rows_and_duplicate_emails_get_named_errors() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let projects = PgProjectStore::new(db.pool.clone());
    projects.create_user("ana@example.com", "Ana").await?;

    let duplicate = projects.create_user("ana@example.com", "Ana again").await;
    let missing_run = PgRunStore::new(db.pool.clone()).run(RunId::new()).await;
    let missing_project = projects.project(ProjectId::new()).await;

    assert!(
        matches!(duplicate, Err(StoreError::Conflict(ref d)) if d.contains("ana@example.com")),
        "{duplicate:?}"
    );
    assert!(matches!(
        missing_run,
        Err(StoreError::NotFound { what: "run", .. })
    ));
    assert!(matches!(
        missing_project,
        Err(StoreError::NotFound {
            what: "project",
            ..
        })
    ));
    Ok(())
}

#[tokio::test]
async fn a_stored_graph_reads_back_with_its_dependencies_and_ready_roots() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let graph = TaskGraph::build(
        &[
            planned("brand", "designer", &[]),
            planned("app", "developer", &["brand"]),
            planned("copy", "marketer", &["brand"]),
        ],
        PlanLimits::default(),
    )?;
    let tasks = PgTaskStore::new(db.pool.clone());

    let stored = tasks.insert_graph(&seeded.run, &graph).await?;

    assert_eq!(
        stored.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        ["brand", "app", "copy"]
    );
    assert_eq!(stored[0].status, TaskStatus::Ready);
    assert_eq!(stored[1].status, TaskStatus::Pending);
    assert_eq!(stored[1].depends_on, [stored[0].id]);
    assert_eq!(stored[1].agent, AgentKind::Developer);
    assert_eq!(tasks.task(stored[2].id).await?, stored[2]);
    Ok(())
}

#[tokio::test]
async fn dispatch_takes_the_highest_priority_first_within_the_concurrency_limit()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed_running(&db, 2).await?;
    let mut plan = vec![
        planned("a", "ops", &[]),
        planned("b", "sales", &[]),
        planned("c", "designer", &[]),
    ];
    plan[1].priority = Priority::Critical.to_string();
    plan[2].priority = Priority::High.to_string();
    let tasks = PgTaskStore::new(db.pool.clone());
    tasks
        .insert_graph(
            &seeded.run,
            &TaskGraph::build(&plan, PlanLimits::default())?,
        )
        .await?;

    let first = tasks.claim_ready(seeded.run.id).await?;
    let second = tasks.claim_ready(seeded.run.id).await?;

    assert_eq!(
        first.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        ["b", "c"]
    );
    assert!(first.iter().all(|t| t.status == TaskStatus::Queued));
    assert!(
        second.is_empty(),
        "two tasks are in flight and the limit is 2"
    );
    tasks.start(first[0].id).await?;
    let attempt = tasks.task(first[0].id).await?.attempts;
    let completed = tasks
        .complete(
            first[0].id,
            attempt,
            &json!({}),
            autocrew_tests::completed_event(&first[0]),
        )
        .await?;
    let queued: Vec<String> = completed
        .effects
        .events
        .iter()
        .filter(|e| e.kind() == EventKind::TaskQueued)
        .filter_map(|e| e.payload()["key"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        queued,
        ["a"],
        "the completion dispatches what its slot frees"
    );
    assert_eq!(completed.effects.outbox.len(), 1, "one message, for a");
    Ok(())
}

#[tokio::test]
async fn a_duplicate_delivery_does_not_start_a_second_attempt() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed_running(&db, 4).await?;
    let tasks = PgTaskStore::new(db.pool.clone());
    tasks
        .insert_graph(
            &seeded.run,
            &TaskGraph::build(&[planned("a", "ops", &[])], PlanLimits::default())?,
        )
        .await?;
    let claimed = tasks.claim_ready(seeded.run.id).await?;

    let first = tasks.start(claimed[0].id).await?;
    let duplicate = tasks.start(claimed[0].id).await?;

    assert_eq!(first.map(|a| a.attempt_no), Some(1));
    assert_eq!(duplicate, None);
    Ok(())
}

#[tokio::test]
async fn a_failing_task_retries_then_fails_and_blocks_everything_downstream() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let seeded = seed_running(&db, 4).await?;
    let plan = [
        planned("a", "developer", &[]),
        planned("b", "marketer", &["a"]),
        planned("c", "ops", &["b"]),
        planned("side", "sales", &[]),
    ];
    let tasks = PgTaskStore::new(db.pool.clone());
    let stored = tasks
        .insert_graph(
            &seeded.run,
            &TaskGraph::build(&plan, PlanLimits::default())?,
        )
        .await?;
    let a = stored[0].id;
    tasks.claim_ready(seeded.run.id).await?;

    let mut outcomes = Vec::new();
    for _ in 0..3 {
        tasks.start(a).await?.expect("queued");
        outcomes.push(tasks.fail_now(a, "provider returned 500", true).await?);
    }

    assert_eq!(outcomes[0], Failure::Retry { next_attempt: 2 });
    assert_eq!(outcomes[1], Failure::Retry { next_attempt: 3 });
    let Failure::Failed {
        blocked,
        run_settled,
    } = &outcomes[2]
    else {
        panic!("expected failure, got {:?}", outcomes[2])
    };
    assert_eq!(blocked.len(), 2);
    assert!(!run_settled, "side is still open");
    let after = tasks.run_tasks(seeded.run.id).await?;
    let statuses: Vec<_> = after.iter().map(|t| t.status).collect();
    assert_eq!(
        statuses,
        [
            TaskStatus::Failed,
            TaskStatus::Blocked,
            TaskStatus::Blocked,
            TaskStatus::Queued
        ]
    );
    assert_eq!(after[0].attempts, 3);
    let client = db.pool.get().await?;
    let attempt_errors: i64 = client
        .query_one("SELECT count(*) FROM task_attempts WHERE task_id = $1 AND error = 'provider returned 500'", &[&a.0])
        .await?
        .get(0);
    assert_eq!(attempt_errors, 3);

    let side = after[3].id;
    tasks.start(side).await?;
    let last = tasks.complete_now(side, json!({"ok": true})).await?;
    assert!(last.run_settled);
    Ok(())
}

#[tokio::test]
async fn a_non_retryable_error_fails_at_once() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed_running(&db, 4).await?;
    let tasks = PgTaskStore::new(db.pool.clone());
    let stored = tasks
        .insert_graph(
            &seeded.run,
            &TaskGraph::build(&[planned("a", "ops", &[])], PlanLimits::default())?,
        )
        .await?;
    tasks.claim_ready(seeded.run.id).await?;
    tasks.start(stored[0].id).await?;

    let outcome = tasks
        .fail_now(stored[0].id, "budget_exceeded", false)
        .await?;

    assert_eq!(
        outcome,
        Failure::Failed {
            blocked: vec![],
            run_settled: true
        }
    );
    let completing_again = tasks.complete_now(stored[0].id, json!({})).await;
    assert!(matches!(
        completing_again,
        Err(StoreError::WrongTaskStatus {
            actual: TaskStatus::Failed,
            ..
        })
    ));
    Ok(())
}

/// A `run_created` event for `command`.
fn created(command: &str) -> autocrew_shared::domain::events::EventBody {
    autocrew_shared::domain::events::EventBody::RunCreated(
        autocrew_shared::domain::events::RunCreated {
            command: command.to_owned(),
            deadline_at: None,
        },
    )
}

#[tokio::test]
async fn events_get_gapless_sequence_numbers_even_when_appended_concurrently() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let log = PgEventLog::new(db.pool.clone());
    let appends = (0..50).map(|i| {
        let log = log.clone();
        let (project, run) = (seeded.project.id, seeded.run.id);
        tokio::spawn(async move {
            log.append(project, Some(run), created(&format!("command {i}")))
                .await
        })
    });

    let mut seqs: Vec<i64> = Vec::new();
    for joined in futures::future::join_all(appends).await {
        seqs.push(joined??.seq);
    }

    // Creating the run appended `run_created` as 1.
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=51).collect::<Vec<_>>());
    let missed = log.since(seeded.project.id, 46, 100).await?;
    assert_eq!(
        missed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [47, 48, 49, 50, 51]
    );
    assert_eq!(log.since(seeded.project.id, 0, 10).await?.len(), 10);
    Ok(())
}

#[tokio::test]
async fn sequences_are_per_project_and_a_missing_project_is_named() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let one = seed(&db, 4).await?;
    let two = seed(&db, 4).await?;
    let log = PgEventLog::new(db.pool.clone());

    log.append(one.project.id, None, created("one")).await?;
    let first_of_two = log.append(two.project.id, None, created("two")).await?;
    let missing = log.append(ProjectId::new(), None, created("none")).await;

    assert_eq!(first_of_two.seq, 2, "after two's own run_created");
    assert!(matches!(
        missing,
        Err(StoreError::NotFound {
            what: "project",
            ..
        })
    ));
    Ok(())
}

#[tokio::test]
async fn the_ledger_sums_a_runs_calls_to_the_micro_dollar() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let ledger = PgLedger::new(db.pool.clone());
    let attribution = Attribution {
        user_id: seeded.user.id,
        project_id: seeded.project.id,
        run_id: Some(seeded.run.id),
        task_id: None,
        agent: AgentKind::Orchestrator,
    };
    let call = |input, output, cost| LlmCall {
        attempt: 1,
        waited_ms: 0,
        attribution,
        provider: "anthropic".into(),
        model: "claude-sonnet-5-5".into(),
        outcome: LlmCallOutcome::Ok,
        usage: TokenUsage {
            input,
            output,
            cache_write: 10,
            cache_read: 5,
        },
        cost: MicroUsd(cost),
        latency_ms: 900,
        error: None,
    };

    ledger.record(&call(1000, 200, 6_000)).await?;
    ledger.record(&call(500, 100, 3_001)).await?;
    let totals = ledger.run_totals(seeded.run.id).await?;

    assert_eq!(totals.calls, 2);
    assert_eq!(
        totals.usage,
        TokenUsage {
            input: 1500,
            output: 300,
            cache_write: 20,
            cache_read: 10
        }
    );
    assert_eq!(totals.cost, MicroUsd(9_001));
    assert_eq!(ledger.run_totals(RunId::new()).await?.calls, 0);
    Ok(())
}

#[tokio::test]
async fn an_idempotency_key_is_won_once_and_then_replays_its_result() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let store = PgIdempotencyStore::new(db.pool.clone());
    let claims = (0..10).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim("send_email", "task-1/attempt").await })
    });

    let mut won = 0;
    for claim in futures::future::join_all(claims).await {
        match claim?? {
            Claim::New => won += 1,
            Claim::InProgress => {}
            Claim::Done(v) => panic!("nothing completed yet, got {v}"),
        }
    }
    store
        .complete(
            "send_email",
            "task-1/attempt",
            &json!({"message_id": "m-1"}),
        )
        .await?;

    assert_eq!(won, 1);
    assert_eq!(
        store.claim("send_email", "task-1/attempt").await?,
        Claim::Done(json!({"message_id": "m-1"}))
    );
    assert_eq!(
        store.claim("deploy", "task-1/attempt").await?,
        Claim::New,
        "keys are per scope"
    );
    Ok(())
}

#[tokio::test]
async fn an_artifact_write_replayed_under_its_key_is_recorded_once() -> anyhow::Result<()> {
    use autocrew_shared::adapters::postgres::PgArtifactStore;
    use autocrew_shared::domain::ArtifactId;
    use autocrew_shared::domain::records::Artifact;
    use autocrew_shared::ports::ArtifactStore;
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let store = PgArtifactStore::new(db.pool.clone());
    let artifact = Artifact {
        id: ArtifactId::new(),
        project_id: seeded.project.id,
        run_id: Some(seeded.run.id),
        task_id: None,
        bucket: "b".into(),
        key: "projects/p/runs/r/app/index.tsx".into(),
        content_type: "text/javascript".into(),
        size_bytes: 3,
        checksum_sha256: "a".repeat(64),
    };

    let written = autocrew_shared::ports::Written {
        key: "call-1".into(),
        artifact: artifact.clone(),
        stored: autocrew_shared::domain::events::ArtifactStored {
            task_id: None,
            key: "index.tsx".into(),
            object_key: Some(artifact.key.clone()),
            size_bytes: 3,
            checksum_sha256: None,
            content_type: artifact.content_type.clone(),
            uploaded: false,
            filename: None,
        },
    };
    let mut other = written.clone();
    other.key = "call-2".into();
    other.artifact.key = "projects/p/runs/r/app/other.tsx".into();
    other.artifact.id = ArtifactId::new();

    let first = store.record_once(std::slice::from_ref(&written)).await?;
    let replayed = store.record_once(&[written, other]).await?;

    assert_eq!(first.events.len(), 1);
    assert_eq!(
        replayed.events.len(),
        1,
        "the replayed write records nothing; the new one in the same batch is recorded"
    );
    let stored = PgEventLog::new(db.pool.clone())
        .since(seeded.project.id, 0, 100)
        .await?
        .iter()
        .filter(|e| e.kind() == EventKind::ArtifactStored)
        .count();
    assert_eq!(stored, 2);
    Ok(())
}

#[tokio::test]
async fn retention_folds_an_ended_runs_progress_and_prunes_its_details_keeping_its_story()
-> anyhow::Result<()> {
    use autocrew_shared::adapters::postgres::PgRetention;
    use autocrew_shared::domain::retention::RetentionPolicy;
    use autocrew_shared::ports::Retention;
    let db = TestDb::migrated().await?;
    let seeded = seed_running(&db, 4).await?;
    let log = PgEventLog::new(db.pool.clone());
    let (project, run) = (seeded.project.id, Some(seeded.run.id));
    use autocrew_shared::domain::events::{
        EventBody, ProgressStage, TaskProgress, TaskRef, TaskStarted,
    };
    let task = TaskRef {
        task_id: autocrew_shared::domain::TaskId::new(),
        key: "copy".into(),
        agent: autocrew_shared::domain::AgentKind::Marketer,
    };
    let started = EventBody::TaskStarted(TaskStarted {
        task: task.clone(),
        title: "Write the copy".into(),
        attempt: 1,
        invocation: 1,
    });
    log.append(project, run, started).await?;
    // Turns were logged piece by piece before they went live-only; such logs remain.
    let mut chars = 0;
    for delta in ["Hel", "lo, ", "world"] {
        chars += delta.len() as u64;
        let chunk = EventBody::TaskProgress(TaskProgress {
            task: task.clone(),
            step: 1,
            invocation: 1,
            stage: ProgressStage::Streaming {
                delta: Some(delta.into()),
                chars,
                compacted: false,
                whole_turn: false,
            },
        });
        log.append(project, run, chunk).await?;
    }
    let done = autocrew_shared::domain::events::TaskCompleted {
        task: task.clone(),
        summary: "Hello, world".into(),
        files: 0,
        files_checked: 0,
        steps: 1,
        duration_ms: 10,
        invocations: 1,
        task_usage: Default::default(),
        remembered: 0,
    };
    log.append(project, run, EventBody::TaskCompleted(done))
        .await?;
    let client = db.pool.get().await?;
    client
        .execute(
            "UPDATE runs SET status = 'succeeded', completed_at = now() - interval '1 hour' WHERE id = $1",
            &[&seeded.run.id.0],
        )
        .await?;
    let retention = PgRetention::new(db.pool.clone());
    let folding = RetentionPolicy {
        prune_detail_events_after_days: 365,
        ..RetentionPolicy::embedded()
    };

    let folded = retention.apply(&folding).await?;
    let again = retention.apply(&folding).await?;
    let events = log.since(project, 0, 100).await?;
    let pruning = RetentionPolicy {
        prune_detail_events_after_days: 0,
        ..RetentionPolicy::embedded()
    };
    let pruned = retention.apply(&pruning).await?;
    let story: Vec<EventKind> = log
        .since(project, 0, 100)
        .await?
        .iter()
        .map(|e| e.kind())
        .collect();

    assert_eq!(folded.progress_turns_compacted, 1);
    assert_eq!(
        again.progress_turns_compacted, 0,
        "a folded turn is not folded again"
    );
    let progress: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e.kind() == EventKind::TaskProgress)
        .map(|e| e.payload())
        .collect();
    assert_eq!(
        progress.len(),
        3,
        "every chunk keeps its place in the sequence"
    );
    assert_eq!(
        progress[2]["delta"], "Hello, world",
        "the last keeps the turn's whole text"
    );
    assert!(
        progress[..2]
            .iter()
            .all(|p| p["compacted"] == true && p.get("delta").is_none())
    );
    assert_eq!(pruned.detail_events_pruned, 4);
    assert_eq!(
        story,
        [EventKind::RunCreated, EventKind::TaskCompleted],
        "the run's story stays"
    );
    Ok(())
}
