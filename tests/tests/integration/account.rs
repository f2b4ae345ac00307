//! The account's own data: an export of everything kept about the user, and erasure of
//! the account with its rows and files.

use crate::api::{SAMPLE_TOKEN, api, call, event, project, user};
use crate::browse::finished_run;
use autocrew_api::Route;
use autocrew_tests::TestDb;
use serde_json::Value;

const SAMPLE_PROJECT: &str = "6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21";
const SAMPLE_RUN: &str = "0b9e5d3c-7a41-4f2e-8c6d-1e2f3a4b5c6d";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_exports_everything_and_deleting_it_erases_rows_and_files() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let (state, p) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let bo = user(&state, "bo@example.com").await?;
    let ana_id = state.keys.verify(&ana).await?;
    let keto = project(&state, &ana).await?;
    let bos = project(&state, &bo).await?;
    let run = finished_run(&state, &p, &ana, &keto).await?;
    let (_, detail) = call(
        &state,
        Route::GetRun,
        event(
            "apigw-get-run.json",
            &[(SAMPLE_TOKEN, ana.as_str()), (SAMPLE_RUN, run.as_str())],
        )?,
    )
    .await?;
    let artifact_url = detail["artifacts"][0]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // The export: one JSON document behind a link.
    let (status, export) = call(
        &state,
        Route::ExportMe,
        event("apigw-export-me.json", &[(SAMPLE_TOKEN, ana.as_str())])?,
    )
    .await?;
    assert_eq!(status, 200, "{export}");
    let url = export["url"].as_str().unwrap_or_default().to_owned();
    let text = reqwest::get(&url).await?.text().await?;
    let document: Value = serde_json::from_str(&text)?;
    assert_eq!(document["user"]["email"], "ana@example.com");
    assert_eq!(document["projects"][0]["id"], keto.as_str());
    assert_eq!(document["runs"][0]["id"], run.as_str());
    for part in [
        "tasks",
        "task_attempts",
        "events",
        "llm_calls",
        "artifacts",
        "approvals",
    ] {
        assert!(
            document[part].as_array().is_some_and(|a| !a.is_empty()),
            "{part} is empty"
        );
    }
    assert!(!text.contains("argon2"), "no password hash in an export");
    assert!(!text.contains("acr_"), "no refresh token in an export");
    assert!(!text.contains(&bos), "nothing of another user's");

    // Erasure.
    let (status, body) = call(
        &state,
        Route::DeleteMe,
        event("apigw-delete-me.json", &[(SAMPLE_TOKEN, ana.as_str())])?,
    )
    .await?;
    assert_eq!(status, 204, "{body}");
    let (status, body) = call(
        &state,
        Route::GetMe,
        event("apigw-get-me.json", &[(SAMPLE_TOKEN, ana.as_str())])?,
    )
    .await?;
    assert_eq!(status, 401, "a token outliving its account: {body}");
    let (status, body) = call(
        &state,
        Route::CreateProject,
        event("apigw-create-project.json", &[(SAMPLE_TOKEN, ana.as_str())])?,
    )
    .await?;
    assert!((400..500).contains(&status), "never a 5xx: {status} {body}");
    assert_eq!(
        reqwest::get(&artifact_url).await?.status(),
        404,
        "artifacts are gone"
    );
    assert_eq!(
        reqwest::get(&url).await?.status(),
        404,
        "the export is gone"
    );
    let client = db.pool.get().await?;
    for table in ["users", "projects", "runs", "llm_calls"] {
        let column = if table == "users" { "id" } else { "user_id" };
        let left: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE {column} = $1"),
                &[&ana_id.0],
            )
            .await?
            .get(0);
        assert_eq!(left, 0, "{table} still holds the account's rows");
    }
    let (status, _) = call(
        &state,
        Route::DeleteMe,
        event("apigw-delete-me.json", &[(SAMPLE_TOKEN, ana.as_str())])?,
    )
    .await?;
    assert_eq!(status, 401, "already gone");

    // Bo is untouched.
    let (status, theirs) = call(
        &state,
        Route::GetProject,
        event(
            "apigw-get-project.json",
            &[(SAMPLE_TOKEN, bo.as_str()), (SAMPLE_PROJECT, bos.as_str())],
        )?,
    )
    .await?;
    assert_eq!((status, theirs["id"].as_str()), (200, Some(bos.as_str())));
    Ok(())
}
