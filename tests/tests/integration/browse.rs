//! The lists and details the app browses, through the API routes: paging by cursor,
//! filters, archive and delete, tasks with attempts, artifacts with links, and another
//! user's resources answering 404 or absent from the lists.

use crate::api::{SAMPLE_TOKEN, api, call, event, project, user};
use crate::pipeline::{Pipeline, pump};
use autocrew_api::{ApiState, Route};
use autocrew_shared::domain::{ApprovalStatus, Decision, RunId, UserId};
use autocrew_tests::TestDb;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SAMPLE_PROJECT: &str = "6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21";
const SAMPLE_RUN: &str = "0b9e5d3c-7a41-4f2e-8c6d-1e2f3a4b5c6d";
const SAMPLE_TASK: &str = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";

/// `file` as `token`, with the sample ids swapped and the query string replaced.
fn request(
    file: &str,
    token: &str,
    ids: &[(&str, &str)],
    query: &[(&str, &str)],
) -> anyhow::Result<lambda_http::Request> {
    use lambda_http::RequestExt;
    let mut swaps = vec![(SAMPLE_TOKEN, token)];
    swaps.extend_from_slice(ids);
    let request = event(file, &swaps)?;
    let query: std::collections::HashMap<String, String> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Ok(request.with_query_string_parameters(query))
}

async fn new_project(state: &ApiState, token: &str, name: &str) -> anyhow::Result<String> {
    let id = project(state, token).await?;
    let (status, _) = call(
        state,
        Route::UpdateProject,
        request(
            "apigw-update-project.json",
            token,
            &[(SAMPLE_PROJECT, &id)],
            &[],
        )?
        .map(|_| lambda_http::Body::Text(json!({"name": name}).to_string())),
    )
    .await?;
    anyhow::ensure!(status == 200, "rename answered {status}");
    Ok(id)
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn projects_page_by_cursor_archive_and_stay_private() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let bo = user(&state, "bo@example.com").await?;
    for name in ["one", "two", "three"] {
        new_project(&state, &ana, name).await?;
    }
    let bos = new_project(&state, &bo, "bo's").await?;

    let (status, first) = call(
        &state,
        Route::ListProjects,
        request("apigw-list-projects.json", &ana, &[], &[("limit", "2")])?,
    )
    .await?;
    assert_eq!(status, 200, "{first}");
    assert_eq!(names(&first), ["three", "two"], "newest first");
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    let (_, second) = call(
        &state,
        Route::ListProjects,
        request(
            "apigw-list-projects.json",
            &ana,
            &[],
            &[("limit", "2"), ("cursor", &cursor)],
        )?,
    )
    .await?;
    assert_eq!(names(&second), ["one"]);
    assert!(second["next_cursor"].is_null());
    let (_, theirs) = call(
        &state,
        Route::ListProjects,
        request("apigw-list-projects.json", &bo, &[], &[])?,
    )
    .await?;
    assert_eq!(names(&theirs), ["bo's"]);

    // Archive "two": it leaves the default list, appears with archived=true, takes no commands.
    let two = first["items"][1]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let archive = |id: String, archived: bool, token: String| {
        let state = state.clone();
        async move {
            call(
                &state,
                Route::UpdateProject,
                request(
                    "apigw-update-project.json",
                    &token,
                    &[(SAMPLE_PROJECT, &id)],
                    &[],
                )?
                .map(|_| lambda_http::Body::Text(json!({"archived": archived}).to_string())),
            )
            .await
        }
    };
    let (status, archived) = archive(two.clone(), true, ana.clone()).await?;
    assert_eq!(status, 200, "{archived}");
    assert!(archived["archived_at"].is_string());
    let (_, active) = call(
        &state,
        Route::ListProjects,
        request("apigw-list-projects.json", &ana, &[], &[])?,
    )
    .await?;
    assert_eq!(names(&active), ["three", "one"]);
    let (_, shelved) = call(
        &state,
        Route::ListProjects,
        request(
            "apigw-list-projects.json",
            &ana,
            &[],
            &[("archived", "true")],
        )?,
    )
    .await?;
    assert_eq!(names(&shelved), ["two"]);
    let (refused, body) = call(
        &state,
        Route::PostCommand,
        event(
            "apigw-post-command.json",
            &[(SAMPLE_TOKEN, ana.as_str()), (SAMPLE_PROJECT, two.as_str())],
        )?,
    )
    .await?;
    assert_eq!(refused, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("archived")
    );

    // Someone else's project: 404 to read, change, delete or list.
    for route in [
        Route::GetProject,
        Route::DeleteProject,
        Route::ListProjectRuns,
        Route::ListArtifacts,
    ] {
        let file = match route {
            Route::GetProject => "apigw-get-project.json",
            Route::DeleteProject => "apigw-delete-project.json",
            Route::ListProjectRuns => "apigw-list-project-runs.json",
            _ => "apigw-list-artifacts.json",
        };
        let (status, body) = call(
            &state,
            route,
            request(file, &ana, &[(SAMPLE_PROJECT, &bos)], &[])?,
        )
        .await?;
        assert_eq!(status, 404, "{route:?}: {body}");
    }
    assert_eq!(archive(bos.clone(), true, ana.clone()).await?.0, 404);
    let (status, body) = call(
        &state,
        Route::GetProject,
        request(
            "apigw-get-project.json",
            &bo,
            &[(SAMPLE_PROJECT, &bos)],
            &[],
        )?,
    )
    .await?;
    assert_eq!((status, body["name"].as_str()), (200, Some("bo's")));

    // Bad paging and filters say which parameter is wrong.
    for (query, field) in [
        (("limit", "0"), "limit"),
        (("limit", "101"), "limit"),
        (("cursor", "garbage"), "cursor"),
        (("archived", "maybe"), "archived"),
    ] {
        let (status, body) = call(
            &state,
            Route::ListProjects,
            request("apigw-list-projects.json", &ana, &[], &[query])?,
        )
        .await?;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{query:?}"
        );
    }
    let (status, body) = call(
        &state,
        Route::ListRuns,
        request("apigw-list-runs.json", &ana, &[], &[("status", "sleeping")])?,
    )
    .await?;
    assert_eq!((status, body["field"].as_str()), (400, Some("status")));
    Ok(())
}

/// Posts the sample command to `project` as `token` and plays the pipeline until its run
/// ends; returns the run's id.
pub(crate) async fn finished_run(
    state: &ApiState,
    p: &Pipeline,
    token: &str,
    project: &str,
) -> anyhow::Result<String> {
    let (status, accepted) = call(
        state,
        Route::PostCommand,
        event(
            "apigw-post-command.json",
            &[(SAMPLE_TOKEN, token), (SAMPLE_PROJECT, project)],
        )?,
    )
    .await?;
    anyhow::ensure!(status == 202, "the command answered {status}: {accepted}");
    let run = accepted["run_id"].as_str().unwrap_or_default().to_owned();
    finish(
        p,
        RunId::parse("run", &run)?,
        state.keys.verify(token).await?,
    )
    .await?;
    Ok(run)
}

/// Plays the pipeline until `run` ends, approving what it asks, as `user`.
pub(crate) async fn finish(p: &Pipeline, run: RunId, user: UserId) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut delivered = pump(p).await?;
        for approval in p.ctx.approvals.run_approvals(run).await? {
            if approval.status == ApprovalStatus::Pending {
                let decided = p
                    .ctx
                    .approvals
                    .decide(
                        approval.id,
                        user,
                        Decision::Approve,
                        &approval.payload_hash,
                        None,
                    )
                    .await?;
                p.ctx.relay.publish(decided.effects).await;
                delivered += 1;
            }
        }
        let status = p.ctx.runs.run(run).await?.status;
        if status.is_terminal() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the run was still {status} after 90 s"
        );
        if delivered == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_tasks_and_artifacts_list_with_filters_and_links() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, p) = api(&db).await?;
    let ana = user(&state, "cy@example.com").await?;
    let bo = user(&state, "di@example.com").await?;
    let keto = new_project(&state, &ana, "keto").await?;
    let run = finished_run(&state, &p, &ana, &keto).await?;

    let (_, all) = call(
        &state,
        Route::ListRuns,
        request("apigw-list-runs.json", &ana, &[], &[])?,
    )
    .await?;
    assert_eq!(all["items"][0]["id"], run.as_str(), "{all}");
    let (_, succeeded) = call(
        &state,
        Route::ListRuns,
        request(
            "apigw-list-runs.json",
            &ana,
            &[],
            &[("status", "succeeded")],
        )?,
    )
    .await?;
    assert_eq!(succeeded["items"].as_array().map(Vec::len), Some(1));
    let (_, failed) = call(
        &state,
        Route::ListRuns,
        request("apigw-list-runs.json", &ana, &[], &[("status", "failed")])?,
    )
    .await?;
    assert_eq!(failed["items"].as_array().map(Vec::len), Some(0));
    let (_, in_project) = call(
        &state,
        Route::ListProjectRuns,
        request(
            "apigw-list-project-runs.json",
            &ana,
            &[(SAMPLE_PROJECT, &keto)],
            &[],
        )?,
    )
    .await?;
    assert_eq!(in_project["items"][0]["id"], run.as_str());
    let (_, theirs) = call(
        &state,
        Route::ListRuns,
        request("apigw-list-runs.json", &bo, &[], &[])?,
    )
    .await?;
    assert_eq!(
        theirs["items"].as_array().map(Vec::len),
        Some(0),
        "bo has no runs"
    );

    let (status, tasks) = call(
        &state,
        Route::ListRunTasks,
        request(
            "apigw-list-run-tasks.json",
            &ana,
            &[(SAMPLE_RUN, &run)],
            &[],
        )?,
    )
    .await?;
    assert_eq!(status, 200, "{tasks}");
    let items = tasks["items"].as_array().cloned().unwrap_or_default();
    assert!(items.len() >= 6, "{tasks}");
    for task in &items {
        assert_eq!(task["status"], "completed", "{task}");
        assert!(task["result"].is_object(), "{task}");
        let attempts = task["attempts"].as_array().cloned().unwrap_or_default();
        assert!(!attempts.is_empty(), "{task}");
        assert!(
            attempts.iter().any(|a| a["status"] == "succeeded"),
            "{task}"
        );
    }
    let task_id = items[0]["id"].as_str().unwrap_or_default().to_owned();
    let (status, one) = call(
        &state,
        Route::GetTask,
        request("apigw-get-task.json", &ana, &[(SAMPLE_TASK, &task_id)], &[])?,
    )
    .await?;
    assert_eq!((status, one["id"].as_str()), (200, Some(task_id.as_str())));
    assert_eq!(
        call(
            &state,
            Route::GetTask,
            request("apigw-get-task.json", &bo, &[(SAMPLE_TASK, &task_id)], &[])?
        )
        .await?
        .0,
        404
    );
    assert_eq!(
        call(
            &state,
            Route::ListRunTasks,
            request("apigw-list-run-tasks.json", &bo, &[(SAMPLE_RUN, &run)], &[])?
        )
        .await?
        .0,
        404
    );

    let (status, artifacts) = call(
        &state,
        Route::ListArtifacts,
        request(
            "apigw-list-artifacts.json",
            &ana,
            &[(SAMPLE_PROJECT, &keto)],
            &[("limit", "3")],
        )?,
    )
    .await?;
    assert_eq!(status, 200, "{artifacts}");
    assert_eq!(artifacts["items"].as_array().map(Vec::len), Some(3));
    assert!(artifacts["next_cursor"].is_string());
    let url = artifacts["items"][0]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let download = reqwest::get(&url).await?;
    assert_eq!(download.status(), 200, "the link downloads the file");
    let (_, of_run) = call(
        &state,
        Route::ListArtifacts,
        request(
            "apigw-list-artifacts.json",
            &ana,
            &[(SAMPLE_PROJECT, &keto)],
            &[("run_id", &run), ("limit", "100")],
        )?,
    )
    .await?;
    assert!(of_run["items"].as_array().map(Vec::len).unwrap_or(0) >= 3);

    // Analytics over a period around now: the one run, its agents' costs.
    let day = |offset: i64| {
        (chrono::Utc::now() + chrono::Duration::days(offset))
            .format("%Y-%m-%d")
            .to_string()
    };
    let (from, to) = (day(-1), day(1));
    let (status, analytics) = call(
        &state,
        Route::GetAnalytics,
        request(
            "apigw-get-analytics.json",
            &ana,
            &[],
            &[("from", &from), ("to", &to)],
        )?,
    )
    .await?;
    assert_eq!(status, 200, "{analytics}");
    assert_eq!(analytics["runs"], 1, "{analytics}");
    assert_eq!(analytics["runs_per_day"][0]["succeeded"], 1, "{analytics}");
    assert_eq!(analytics["success_rate"].as_f64(), Some(1.0), "{analytics}");
    assert!(
        analytics["median_duration_secs"]
            .as_f64()
            .is_some_and(|s| s > 0.0),
        "{analytics}"
    );
    assert_eq!(
        analytics["cache_hit_rate"].as_f64(),
        Some(0.0),
        "{analytics}"
    );
    assert!(
        analytics["agents"].as_array().is_some_and(|a| a.len() >= 4),
        "{analytics}"
    );
    let (_, theirs) = call(
        &state,
        Route::GetAnalytics,
        request(
            "apigw-get-analytics.json",
            &bo,
            &[],
            &[("from", &from), ("to", &to)],
        )?,
    )
    .await?;
    assert_eq!(theirs["runs"], 0, "bo's analytics hold none of ana's runs");
    let (status, body) = call(
        &state,
        Route::GetAnalytics,
        request(
            "apigw-get-analytics.json",
            &ana,
            &[],
            &[("from", &to), ("to", &from)],
        )?,
    )
    .await?;
    assert_eq!((status, body["field"].as_str()), (400, Some("to")));

    // Deleting the project removes its runs and its files.
    let (status, _) = call(
        &state,
        Route::DeleteProject,
        request(
            "apigw-delete-project.json",
            &ana,
            &[(SAMPLE_PROJECT, &keto)],
            &[],
        )?,
    )
    .await?;
    assert_eq!(status, 204);
    assert_eq!(
        call(
            &state,
            Route::GetProject,
            request(
                "apigw-get-project.json",
                &ana,
                &[(SAMPLE_PROJECT, &keto)],
                &[]
            )?
        )
        .await?
        .0,
        404
    );
    let (_, after) = call(
        &state,
        Route::ListRuns,
        request("apigw-list-runs.json", &ana, &[], &[])?,
    )
    .await?;
    assert_eq!(after["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(reqwest::get(&url).await?.status(), 404, "the file is gone");
    Ok(())
}
