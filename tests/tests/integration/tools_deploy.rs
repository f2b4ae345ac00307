//! `deploy_site` against a fake Vercel that keeps deployments and serves them: the landing
//! page is deployed, recorded as a `deployments` row the API lists (its owner only) and
//! announced as `deployment_updated`; a failed build is recorded with Vercel's reason and
//! told to the agent.

use crate::api::{SAMPLE_TOKEN, call, event, user};
use crate::run_control::play_until_ended;
use crate::tools_github::world_with;
use autocrew_api::Route;
use autocrew_shared::domain::{EventKind, ProjectId, RunStatus};
use autocrew_tests::TestDb;

const VERCEL: (&str, &str, &str) = ("vercel", "vercel_anaToken0123456789", "ana-lima");
const SAMPLE_PROJECT: &str = "6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_landing_page_is_deployed_on_vercel_recorded_and_listed_for_its_owner_only()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = world_with(&db, &[VERCEL], &["deploy_site"]).await?;

    let run = w.command().await?;
    let ended = play_until_ended(&w.p, run).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let list = |token: &str| {
        event(
            "apigw-list-deployments.json",
            &[(SAMPLE_TOKEN, token), (SAMPLE_PROJECT, w.project.as_str())],
        )
    };
    let (status, listed) = call(&w.state, Route::ListDeployments, list(&w.ana)?).await?;
    assert_eq!(status, 200, "{listed}");
    let deployment = &listed["deployments"][0];
    assert_eq!(deployment["service"], "vercel", "{listed}");
    assert_eq!(
        (deployment["kind"].as_str(), deployment["status"].as_str()),
        (Some("site"), Some("ready"))
    );
    assert!(
        deployment["provider_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("dpl_"))
    );
    assert!(deployment["finished_at"].is_string());
    let url = deployment["url"].as_str().unwrap_or_default().to_owned();
    let page = reqwest::get(&url).await?;
    assert_eq!(page.status(), 200, "{url}");
    assert!(
        page.text()
            .await?
            .contains("<h1>Recipe app for keto dieters</h1>")
    );
    // The app heard of it.
    let project = ProjectId::parse("project", &w.project)?;
    let events = w.state.events.since(project, 0, 1000).await?;
    assert!(
        events
            .iter()
            .any(|e| e.kind() == EventKind::DeploymentUpdated && e.payload()["status"] == "ready")
    );
    // Someone else's project's deployments are not found.
    let bo = user(&w.state, "bo@example.com").await?;
    let (status, _) = call(&w.state, Route::ListDeployments, list(&bo)?).await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_is_recorded_with_vercels_reason_and_told_to_the_agent() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let w = world_with(&db, &[VERCEL], &["deploy_site"]).await?;
    w.fake.fail_once_after("vercel.build");

    let run = w.command().await?;
    let ended = play_until_ended(&w.p, run).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let rows = w
        .state
        .deployments
        .project_deployments(ProjectId::parse("project", &w.project)?)
        .await?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status.as_str(), "failed");
    assert_eq!(
        rows[0].error.as_deref(),
        Some("Command \"npm run build\" exited with 1 (BUILD_FAILED)")
    );
    let summary = w.summary(run, "landing_copy").await?;
    assert!(
        summary.contains("deploy_site not done: Vercel could not build the site"),
        "{summary}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_still_building_after_the_quick_looks_is_followed_to_ready_while_its_task_waits()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = world_with(&db, &[VERCEL], &["deploy_site"]).await?;
    w.fake.vercel.lock().unwrap_or_else(|e| e.into_inner()).slow = true;

    let run = w.command().await?;
    let ended = play_until_ended(&w.p, run).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let project = ProjectId::parse("project", &w.project)?;
    let rows = w.state.deployments.project_deployments(project).await?;
    let site = rows
        .iter()
        .find(|d| d.kind == "site")
        .ok_or_else(|| anyhow::anyhow!("no site row: {rows:?}"))?;
    assert_eq!(
        site.status,
        autocrew_shared::domain::DeploymentStatus::Ready
    );
    // The step's quick looks saw it building; the watcher's looks saw it through.
    let looks = w
        .fake
        .vercel
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .deployments
        .iter()
        .map(|d| d.looks)
        .max()
        .unwrap_or_default();
    assert!(looks >= 8, "looked at {looks} times");
    let statuses: Vec<String> = w
        .state
        .events
        .since(project, 0, 1000)
        .await?
        .iter()
        .filter(|e| e.kind() == EventKind::DeploymentUpdated)
        .filter_map(|e| e.payload()["status"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("building"),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("ready"),
        "{statuses:?}"
    );
    // The task waited without a worker, and finished with the ready site.
    let attempts: i64 = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM task_attempts WHERE status = 'parked'",
            &[],
        )
        .await?
        .get(0);
    assert!(attempts >= 1, "the deploying task never parked");
    let page = reqwest::get(site.url.as_deref().unwrap_or_default()).await?;
    assert_eq!(page.status(), 200);
    Ok(())
}
