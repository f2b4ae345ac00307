//! The ready-set transaction under concurrent completions: many tasks completing at once
//! never lose a dependant and never release one twice.

use autocrew_shared::adapters::postgres::PgTaskStore;
use autocrew_shared::domain::{MicroUsd, PlanLimits, PlannedTask, TaskGraph, TaskId, TaskStatus};
use autocrew_shared::ports::{Completion, TaskReads, TaskStore};
use autocrew_tests::{Drive, TestDb, planned, seed_running as seed};
use serde_json::json;
use std::collections::{HashMap, HashSet};

const LIMITS: PlanLimits = PlanLimits {
    max_tasks: 500,
    max_dependencies_per_task: 64,
    budget: MicroUsd(5_000_000),
};

/// Claims, starts and completes `ids` all at once, each on its own task.
async fn complete_concurrently(
    tasks: &PgTaskStore,
    ids: Vec<TaskId>,
) -> anyhow::Result<Vec<Completion>> {
    for &id in &ids {
        anyhow::ensure!(tasks.start(id).await?.is_some(), "task {id} was not queued");
    }
    let handles = ids.into_iter().map(|id| {
        let tasks = tasks.clone();
        tokio::spawn(async move { tasks.complete_now(id, json!({"done": true})).await })
    });
    let mut out = Vec::new();
    for joined in futures::future::join_all(handles).await {
        out.push(joined??);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_branches_completing_at_once_release_their_join_exactly_once() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let tasks = PgTaskStore::new(db.pool.clone());
    for round in 0..5 {
        let seeded = seed(&db, 100).await?;
        let roots: Vec<String> = (0..40).map(|i| format!("branch-{i}")).collect();
        let mut plan: Vec<PlannedTask> =
            roots.iter().map(|k| planned(k, "developer", &[])).collect();
        plan.push(planned(
            "join",
            "ops",
            &roots.iter().map(String::as_str).collect::<Vec<_>>(),
        ));
        let stored = tasks
            .insert_graph(&seeded.run, &TaskGraph::build(&plan, LIMITS)?)
            .await?;
        let join = stored.last().map(|t| t.id).expect("join");
        let claimed: Vec<TaskId> = tasks
            .claim_ready(seeded.run.id)
            .await?
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(claimed.len(), 40);

        let completions = complete_concurrently(&tasks, claimed).await?;

        let released: Vec<TaskId> = completions
            .iter()
            .flat_map(|c| c.released.clone())
            .collect();
        assert_eq!(
            released,
            [join],
            "round {round}: the join must be released exactly once"
        );
        assert!(
            completions.iter().all(|c| !c.run_settled),
            "round {round}: the join is still open"
        );
        assert_eq!(
            tasks.task(join).await?.status,
            TaskStatus::Queued,
            "round {round}: the completion that released the join dispatched it"
        );
        let last = complete_concurrently(&tasks, vec![join]).await?;
        assert!(
            last[0].run_settled,
            "round {round}: the run settles when its last task ends"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_layered_graph_completed_wave_by_wave_releases_every_task_once_after_its_dependencies()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 1000).await?;
    // 8 layers of 12 tasks; each task after the first layer depends on 3 of the layer
    // before, so dependants are shared between many completing tasks.
    let (layers, width) = (8, 12);
    let mut plan = Vec::new();
    for layer in 0..layers {
        for i in 0..width {
            let deps: Vec<String> = if layer == 0 {
                vec![]
            } else {
                [0, 5, 7]
                    .iter()
                    .map(|k| format!("l{}-{}", layer - 1, (i + k) % width))
                    .collect()
            };
            plan.push(planned(
                &format!("l{layer}-{i}"),
                "marketer",
                &deps.iter().map(String::as_str).collect::<Vec<_>>(),
            ));
        }
    }
    let tasks = PgTaskStore::new(db.pool.clone());
    let stored = tasks
        .insert_graph(&seeded.run, &TaskGraph::build(&plan, LIMITS)?)
        .await?;
    let deps_of: HashMap<TaskId, Vec<TaskId>> = stored
        .iter()
        .map(|t| (t.id, t.depends_on.clone()))
        .collect();

    let mut completed: HashSet<TaskId> = HashSet::new();
    let mut released_count: HashMap<TaskId, usize> = HashMap::new();
    let mut settled = 0;
    loop {
        // Completions dispatch what they release in their own transaction.
        tasks.claim_ready(seeded.run.id).await?;
        let wave: Vec<TaskId> = tasks
            .run_tasks(seeded.run.id)
            .await?
            .iter()
            .filter(|t| t.status == TaskStatus::Queued)
            .map(|t| t.id)
            .collect();
        if wave.is_empty() {
            break;
        }
        for id in &wave {
            let missing: Vec<_> = deps_of[id]
                .iter()
                .filter(|d| !completed.contains(d))
                .collect();
            assert!(
                missing.is_empty(),
                "task {id} was dispatched before {missing:?} completed"
            );
        }
        for completion in complete_concurrently(&tasks, wave.clone()).await? {
            for id in completion.released {
                *released_count.entry(id).or_default() += 1;
            }
            settled += usize::from(completion.run_settled);
        }
        completed.extend(wave);
    }

    assert_eq!(completed.len(), layers * width, "every task ran");
    assert_eq!(
        released_count.len(),
        (layers - 1) * width,
        "every non-root task was released"
    );
    assert!(
        released_count.values().all(|&n| n == 1),
        "no task was released twice"
    );
    assert_eq!(settled, 1, "exactly one completion saw the run settle");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_dispatchers_never_claim_the_same_task_or_exceed_the_limit() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 7).await?;
    let plan: Vec<PlannedTask> = (0..30)
        .map(|i| planned(&format!("t{i}"), "sales", &[]))
        .collect();
    let tasks = PgTaskStore::new(db.pool.clone());
    tasks
        .insert_graph(&seeded.run, &TaskGraph::build(&plan, LIMITS)?)
        .await?;

    let dispatchers = (0..8).map(|_| {
        let (tasks, run) = (tasks.clone(), seeded.run.id);
        tokio::spawn(async move { tasks.claim_ready(run).await })
    });
    let mut claimed = Vec::new();
    for joined in futures::future::join_all(dispatchers).await {
        claimed.extend(joined??.into_iter().map(|t| t.id));
    }

    let unique: HashSet<_> = claimed.iter().collect();
    assert_eq!(unique.len(), claimed.len(), "a task was claimed twice");
    assert_eq!(claimed.len(), 7, "the run's concurrency limit is 7");
    Ok(())
}

/// A running run of `seeded`'s user with `n` tasks of `priority` and room for 16 at once.
async fn another_run(
    db: &TestDb,
    seeded: &autocrew_tests::Seeded,
    n: usize,
    priority: autocrew_shared::domain::Priority,
) -> anyhow::Result<autocrew_shared::domain::records::Run> {
    use autocrew_shared::adapters::postgres::PgRunStore;
    use autocrew_shared::domain::records::NewRun;
    use autocrew_shared::domain::{MicroUsd, RunStatus};
    use autocrew_shared::ports::RunStore;
    let runs = PgRunStore::new(db.pool.clone());
    let run = runs
        .create_run(NewRun {
            project_id: seeded.project.id,
            user_id: seeded.user.id,
            command: "Another".into(),
            budget: MicroUsd::from_dollars(5),
            max_concurrency: 16,
            deadline: None,
            idempotency: None,
            schedule: None,
        })
        .await?
        .value;
    let run = runs.set_status(run.id, RunStatus::Running, None).await?;
    let plan: Vec<PlannedTask> = (0..n)
        .map(|i| {
            let mut task = planned(&format!("t{i}"), "sales", &[]);
            task.priority = priority.to_string();
            task
        })
        .collect();
    PgTaskStore::new(db.pool.clone())
        .insert_graph(&run, &TaskGraph::build(&plan, LIMITS)?)
        .await?;
    Ok(run)
}

async fn in_flight(db: &TestDb, run: autocrew_shared::domain::RunId) -> anyhow::Result<i64> {
    Ok(db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM tasks WHERE run_id = $1 AND status IN ('queued', 'running')",
            &[&run.0],
        )
        .await?
        .get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_has_at_most_fifty_tasks_in_flight_critical_work_first_and_cannot_starve_another()
-> anyhow::Result<()> {
    use autocrew_shared::domain::Priority;
    let db = TestDb::migrated().await?;
    let ana = seed(&db, 16).await?;
    let ben = seed(&db, 16).await?;
    let mut anas = Vec::new();
    for _ in 0..4 {
        anas.push(another_run(&db, &ana, 20, Priority::Normal).await?);
    }
    let urgent = another_run(&db, &ana, 3, Priority::Critical).await?;
    let bens = another_run(&db, &ben, 3, Priority::Low).await?;
    let tasks = PgTaskStore::new(db.pool.clone());

    // Ana's dispatchers race over her five runs; Ben's runs at the same time.
    let mut racing = Vec::new();
    for run in anas.iter().chain([&urgent, &bens]) {
        let (tasks, id) = (tasks.clone(), run.id);
        racing.push(tokio::spawn(async move { tasks.claim_ready(id).await }));
    }
    for joined in futures::future::join_all(racing).await {
        joined??;
    }

    let mut per_run = Vec::new();
    for run in &anas {
        per_run.push(in_flight(&db, run.id).await?);
    }
    let anas_total = per_run.iter().sum::<i64>() + in_flight(&db, urgent.id).await?;
    assert_eq!(anas_total, 50, "Ana's limit across her runs: {per_run:?}");
    assert!(
        per_run.iter().all(|&n| n <= 16),
        "each run's own limit: {per_run:?}"
    );
    assert_eq!(
        in_flight(&db, urgent.id).await?,
        3,
        "critical work of her newest run first"
    );
    assert_eq!(per_run, [16, 16, 15, 0], "then her older runs first");
    assert_eq!(
        in_flight(&db, bens.id).await?,
        3,
        "Ben is not held back by Ana's load"
    );

    // A slot Ana frees goes to her next task by the same order: her oldest run's.
    let done = tasks.run_tasks(anas[0].id).await?;
    let first = done
        .iter()
        .find(|t| t.status == TaskStatus::Queued)
        .expect("queued");
    tasks.start(first.id).await?;
    tasks.complete_now(first.id, json!({})).await?;
    assert_eq!(
        in_flight(&db, anas[0].id).await?,
        16,
        "the freed slot went to run 1 again"
    );
    assert_eq!(in_flight(&db, anas[3].id).await?, 0);
    Ok(())
}
