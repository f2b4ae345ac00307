//! Approval policies: each tool that acts in the world asks first unless the user's policy
//! says auto; the policy is read and changed through the API, per user, and the agent loop
//! follows it. An agent's calls of tools outside its profile are refused.

use crate::api::{SAMPLE_TOKEN, api, call, event, project, user};
use crate::run_control::play_until_ended;
use autocrew_api::Route;
use autocrew_shared::domain::{EventKind, ProjectId, RunId, RunStatus};
use autocrew_tests::TestDb;
use serde_json::Value;

const SAMPLE_PROJECT: &str = "6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21";

fn set(token: &str, tool: &str, body: &str) -> anyhow::Result<lambda_http::Request> {
    let request = event(
        "apigw-set-policy.json",
        &[
            (SAMPLE_TOKEN, token),
            ("/me/policies/publish", &format!("/me/policies/{tool}")),
            ("\"tool\": \"publish\"", &format!("\"tool\": \"{tool}\"")),
        ],
    )?;
    Ok(request.map(|_| lambda_http::Body::Text(body.to_owned())))
}

fn approval_of(policies: &Value, tool: &str) -> Value {
    policies["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["tool"] == tool)
        .map(|p| p["approval"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_set_to_auto_runs_without_asking_for_its_user_only() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, p) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let bo = user(&state, "bo@example.com").await?;
    let list = |token: &str| event("apigw-list-policies.json", &[(SAMPLE_TOKEN, token)]);

    // By default every tool that acts in the world asks.
    let (status, policies) = call(&state, Route::ListPolicies, list(&ana)?).await?;
    assert_eq!(status, 200, "{policies}");
    assert_eq!(approval_of(&policies, "publish"), "ask");
    assert_eq!(approval_of(&policies, "push_code"), "ask");
    let publish = policies["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["tool"] == "publish")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        publish["agents"],
        serde_json::json!(["marketer"]),
        "{publish}"
    );

    let (status, set_to) = call(
        &state,
        Route::SetPolicy,
        set(&ana, "publish", r#"{"approval":"auto"}"#)?,
    )
    .await?;
    assert_eq!(
        (status, set_to["approval"].clone()),
        (200, "auto".into()),
        "{set_to}"
    );
    let (_, policies) = call(&state, Route::ListPolicies, list(&ana)?).await?;
    assert_eq!(approval_of(&policies, "publish"), "auto");
    let (_, theirs) = call(&state, Route::ListPolicies, list(&bo)?).await?;
    assert_eq!(
        approval_of(&theirs, "publish"),
        "ask",
        "Bo's policy is his own"
    );

    // A tool that does not act in the world has no policy; a bad value names its field.
    let (status, _) = call(
        &state,
        Route::SetPolicy,
        set(&ana, "write_file", r#"{"approval":"auto"}"#)?,
    )
    .await?;
    assert_eq!(status, 404);
    let (status, bad) = call(
        &state,
        Route::SetPolicy,
        set(&ana, "publish", r#"{"approval":"sometimes"}"#)?,
    )
    .await?;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.to_string().contains("approval"), "{bad}");

    // Ana's run publishes its landing page without asking.
    let project = project(&state, &ana).await?;
    let (status, accepted) = call(
        &state,
        Route::PostCommand,
        event(
            "apigw-post-command.json",
            &[
                (SAMPLE_TOKEN, ana.as_str()),
                (SAMPLE_PROJECT, project.as_str()),
            ],
        )?,
    )
    .await?;
    assert_eq!(status, 202, "{accepted}");
    let run = RunId::parse("run_id", accepted["run_id"].as_str().unwrap_or_default())?;
    let ended = play_until_ended(&p, run).await?;
    assert_eq!(ended.status, RunStatus::Succeeded);
    let events = state
        .events
        .since(ProjectId::parse("project", &project)?, 0, 1000)
        .await?;
    assert!(
        !events
            .iter()
            .any(|e| e.kind() == EventKind::ApprovalRequested),
        "nothing was asked"
    );
    assert!(
        state.approvals.run_approvals(run).await?.is_empty(),
        "no approval was made"
    );
    let executed: Vec<_> = events
        .iter()
        .filter(|e| e.kind() == EventKind::ActionExecuted)
        .collect();
    assert_eq!(
        executed.len(),
        1,
        "the publish ran once, and the log says so"
    );
    assert_eq!(executed[0].payload()["auto_approved"], true);
    assert_eq!(executed[0].payload()["tool"], "publish");
    Ok(())
}
