//! `build_app` against a fake EAS that keeps builds and moves each one on at every look:
//! the ops task starts the iOS and Android builds from the repository the developer
//! pushed, parks while the job-watch state machine (real Step Functions on moto: Wait,
//! a look by step-watch, Choice) follows them, and finishes with their links. A build
//! that never ends times out and fails its task with the timeout recorded; a build EAS
//! fails fails its task with EAS's error; a job whose watch was lost is timed out by the
//! sweep.

use crate::run_control::play_until_ended;
use crate::tools_github::{World, world_with};
use autocrew_shared::domain::records::Run;
use autocrew_shared::domain::{DeploymentStatus, EventKind, ProjectId, RunStatus, TaskStatus};
use autocrew_shared::ports::{RunControl, StateMachine};
use autocrew_tests::TestDb;
use autocrew_tests::fakes::expo::BuildMode;
use std::time::Duration;

const GITHUB: (&str, &str, &str) = ("github", "ghp_anaToken0123456789abcdefWXYZ", "ana-builds");
const EXPO: (&str, &str, &str) = ("expo", "expo_anaToken0123456789abcdef", "ana-builds");

/// Ana with GitHub and Expo connected, pushing, building and publishing without asking.
async fn builder(db: &TestDb, mode: BuildMode) -> anyhow::Result<World> {
    let w = world_with(db, &[GITHUB, EXPO], &["push_code", "build_app", "publish"]).await?;
    w.fake.expo.lock().unwrap_or_else(|e| e.into_inner()).mode = mode;
    Ok(w)
}

async fn builds(
    w: &World,
) -> anyhow::Result<Vec<autocrew_shared::domain::connections::Deployment>> {
    let mut rows = w
        .state
        .deployments
        .project_deployments(ProjectId::parse("project", &w.project)?)
        .await?;
    rows.retain(|d| d.kind.ends_with("_build"));
    rows.sort_by(|a, b| a.kind.cmp(&b.kind));
    Ok(rows)
}

/// The builds' statuses as the fake EAS holds them.
fn statuses_at_eas(w: &World) -> Vec<&'static str> {
    w.fake
        .expo
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .builds
        .iter()
        .map(|b| b.status)
        .collect()
}

/// Plays the run until its ops task parks on its builds.
async fn until_parked(w: &World, run: autocrew_shared::domain::RunId) -> anyhow::Result<()> {
    for _ in 0..600 {
        crate::pipeline::pump(&w.p).await?;
        // The task exists once the plan is stored.
        let tasks = w.p.ctx.tasks.run_tasks(run).await?;
        if tasks
            .iter()
            .any(|t| t.key == "ops_checklist" && t.status == TaskStatus::AwaitingJob)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the ops task never parked on its builds")
}

async fn run(w: &World) -> anyhow::Result<Run> {
    let run = w.command().await?;
    play_until_ended(&w.p, run).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_is_built_for_both_platforms_while_its_task_waits_without_a_worker()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = builder(&db, BuildMode::Finish).await?;

    let ended = run(&w).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let rows = builds(&w).await?;
    let kinds: Vec<(&str, DeploymentStatus)> =
        rows.iter().map(|d| (d.kind.as_str(), d.status)).collect();
    assert_eq!(
        kinds,
        [
            ("android_build", DeploymentStatus::Ready),
            ("ios_build", DeploymentStatus::Ready)
        ]
    );
    for row in &rows {
        let url = row.url.clone().unwrap_or_default();
        assert_eq!(reqwest::get(&url).await?.status(), 200, "{url}");
        assert!(
            row.inspect_url.as_deref().is_some_and(|u| u.starts_with(
                "https://expo.dev/accounts/ana-builds/projects/recipe-app-for-keto-dieters/builds/"
            )),
            "{row:?}"
        );
        assert!(row.deadline_at.is_some() && row.finished_at.is_some());
    }
    // One build a platform at EAS, from the pushed repository's default branch.
    let fake_builds = w
        .fake
        .expo
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .builds
        .clone();
    assert_eq!(fake_builds.len(), 2, "{fake_builds:?}");
    assert!(
        fake_builds
            .iter()
            .all(|b| b.git_ref == "main" && b.profile == "production")
    );
    // The task parked while the builds ran, and resumed to finish with their links.
    let task = w.task(ended.id, "ops_checklist").await?;
    assert_eq!(task.status, TaskStatus::Completed);
    let summary = w.summary(ended.id, "ops_checklist").await?;
    assert!(
        summary.contains("the ios build finished: http")
            && summary.contains("the android build finished: http"),
        "{summary}"
    );
    let parked: i64 = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM task_attempts WHERE task_id = $1 AND status = 'parked'",
            &[&task.id.0],
        )
        .await?
        .get(0);
    assert_eq!(
        parked, 1,
        "the attempt that started the builds ended parked"
    );
    // The app followed each build through its statuses.
    let events = w
        .state
        .events
        .since(ProjectId::parse("project", &w.project)?, 0, 1000)
        .await?;
    let seen: Vec<String> = events
        .iter()
        .filter(|e| e.kind() == EventKind::DeploymentUpdated && e.payload()["kind"] == "ios_build")
        .map(|e| {
            e.payload()["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        seen.first().map(String::as_str) == Some("queued")
            && seen.contains(&"building".to_owned())
            && seen.last().map(String::as_str) == Some("ready"),
        "{seen:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_that_never_ends_times_out_and_fails_its_task_with_the_timeout_recorded()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut w = builder(&db, BuildMode::Hang).await?;
    w.p.ctx.jobs.build_timeout = Duration::from_secs(4);

    let ended = run(&w).await?;

    assert_eq!(ended.status, RunStatus::Failed);
    let rows = builds(&w).await?;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row.status, DeploymentStatus::TimedOut, "{row:?}");
        assert!(
            row.error
                .as_deref()
                .is_some_and(|e| e.starts_with("timed out: the ")
                    && e.contains("had not ended 4 s after it started (it was ")
                    // Under load the watch may not have looked again before the deadline.
                    && (e.contains("(it was building)") || e.contains("(it was queued)"))
                    && e.ends_with("; Autocrew cancelled it at EAS")),
            "{row:?}"
        );
    }
    let at_eas = statuses_at_eas(&w);
    assert_eq!(
        at_eas,
        ["CANCELED", "CANCELED"],
        "nobody waits for them: stopped at EAS"
    );
    let task = w.task(ended.id, "ops_checklist").await?;
    assert_eq!(task.status, TaskStatus::Failed);
    let error = task.error_log.unwrap_or_default();
    assert!(
        error.contains("timed out at expo: timed out: the"),
        "{error}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_eas_fails_fails_its_task_with_eass_error() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = builder(&db, BuildMode::Error).await?;

    let ended = run(&w).await?;

    assert_eq!(ended.status, RunStatus::Failed);
    let rows = builds(&w).await?;
    assert!(
        rows.iter().all(|d| d.status == DeploymentStatus::Failed),
        "{rows:?}"
    );
    let task = w.task(ended.id, "ops_checklist").await?;
    let error = task.error_log.unwrap_or_default();
    assert!(
        error.contains("failed at expo: Gradle build failed with unknown error")
            && error.contains("(UNKNOWN_GRADLE_ERROR)"),
        "{error}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_watch_stopped_is_timed_out_by_the_sweep_and_its_task_fails()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = builder(&db, BuildMode::Hang).await?;
    let run = w.command().await?;
    until_parked(&w, run).await?;
    // The watch is lost (stopped), and the builds are long past their deadline.
    let call_key: String = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT call_key FROM deployments WHERE call_key IS NOT NULL LIMIT 1",
            &[],
        )
        .await?
        .get(0);
    let machine =
        w.p.ctx
            .relay
            .watch_state_machine_arn
            .clone()
            .unwrap_or_default();
    let execution = w.p.sfn.execution_arn(&machine, &format!("job-{call_key}"));
    w.p.sfn.stop(&execution, "lost").await?;
    db.pool
        .get()
        .await?
        .execute(
            "UPDATE deployments SET deadline_at = now() - interval '11 minutes' WHERE call_key = $1",
            &[&call_key],
        )
        .await?;

    let event = serde_json::from_str(&std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/eventbridge-schedule-sweep.json"
    ))?)?;
    let report = autocrew_sweep::handle(&crate::run_control::sweep(&w.p, &db), event).await?;
    let ended = play_until_ended(&w.p, run).await?;

    assert_eq!(report.abandoned_jobs_ended, 1);
    assert_eq!(ended.status, RunStatus::Failed);
    let rows = builds(&w).await?;
    assert!(
        rows.iter().all(|d| d.status == DeploymentStatus::TimedOut
            && d.error
                .as_deref()
                .is_some_and(|e| e.contains("its watch stopped"))),
        "{rows:?}"
    );
    let task = w.task(run, "ops_checklist").await?;
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(task.error_log.unwrap_or_default().contains("timed out"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_run_cancels_its_builds_at_eas() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = builder(&db, BuildMode::Hang).await?;
    let run = w.command().await?;
    until_parked(&w, run).await?;

    let control = autocrew_shared::adapters::postgres::PgRunControl::new(db.pool.clone());
    let cancelled = control.cancel(run, "cancelled by the user").await?;
    w.p.ctx.relay.publish(cancelled.effects).await;
    // The watch's next look finds nobody waiting.
    let mut rows = builds(&w).await?;
    for _ in 0..400 {
        if rows.iter().all(|d| d.status.is_terminal()) {
            break;
        }
        crate::pipeline::pump(&w.p).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        rows = builds(&w).await?;
    }

    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row.status, DeploymentStatus::Canceled, "{row:?}");
        assert_eq!(
            row.error.as_deref(),
            Some("cancelled: its run was cancelled; Autocrew cancelled it at EAS")
        );
    }
    let at_eas = statuses_at_eas(&w);
    assert_eq!(at_eas, ["CANCELED", "CANCELED"]);
    Ok(())
}
