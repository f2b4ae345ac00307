//! `push_code` against a fake GitHub that keeps state: the first run's approved push makes
//! a private repository with the app's files in one commit; a later run opens a pull
//! request; a delivery that dies after moving the branch does not commit twice; a revoked
//! token fails the task naming the connection, with no retry storm.

use crate::api::{SAMPLE_TOKEN, api_with, call, event, project, user};
use crate::pipeline::Pipeline;
use crate::run_control::play_until_ended;
use autocrew_api::{ApiState, Route};
use autocrew_shared::config::ServiceUrls;
use autocrew_shared::domain::{ProjectId, RunId, RunStatus, TaskStatus};
use autocrew_tests::TestDb;
use autocrew_tests::fakes::{self, Fake};
use serde_json::{Value, json};
use std::collections::HashMap;

const SAMPLE_PROJECT: &str = "6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21";
const REPO: (&str, &str) = ("ana-builds", "recipe-app-for-keto-dieters");

struct World {
    fake: Fake,
    state: ApiState,
    p: Pipeline,
    ana: String,
    project: String,
}

/// The API and steps over a fresh database, GitHub being the fake; Ana signed up with
/// GitHub connected, `auto` tools set to run without asking.
async fn world(db: &TestDb, auto: &[&str]) -> anyhow::Result<World> {
    let (fake, url) = fakes::start().await?;
    let urls = ServiceUrls::from_env(&HashMap::from([(
        "GITHUB_API_URL".to_owned(),
        format!("{url}/github"),
    )]))?;
    let for_api = urls.clone();
    let (state, mut p) = api_with(db, |s| s.services = for_api).await?;
    p.ctx.connected = p.ctx.connected.clone().with_urls(urls);
    let ana = user(&state, "ana@example.com").await?;
    fake.accept("github", "ghp_anaToken0123456789abcdefWXYZ", REPO.0);
    let body = r#"{"service":"github","token":"ghp_anaToken0123456789abcdefWXYZ"}"#;
    let request = event("apigw-connect.json", &[(SAMPLE_TOKEN, ana.as_str())])?
        .map(|_| lambda_http::Body::Text(body.to_owned()));
    let (status, connected) = call(&state, Route::Connect, request).await?;
    anyhow::ensure!(status == 201, "connect answered {status}: {connected}");
    for tool in auto {
        let request = event(
            "apigw-set-policy.json",
            &[
                (SAMPLE_TOKEN, ana.as_str()),
                ("/me/policies/publish", &format!("/me/policies/{tool}")),
                ("\"tool\": \"publish\"", &format!("\"tool\": \"{tool}\"")),
            ],
        )?
        .map(|_| lambda_http::Body::Text(r#"{"approval":"auto"}"#.to_owned()));
        let (status, _) = call(&state, Route::SetPolicy, request).await?;
        anyhow::ensure!(status == 200, "policy for {tool}: {status}");
    }
    let project = project(&state, &ana).await?;
    Ok(World {
        fake,
        state,
        p,
        ana,
        project,
    })
}

impl World {
    async fn command(&self) -> anyhow::Result<RunId> {
        let request = event(
            "apigw-post-command.json",
            &[
                (SAMPLE_TOKEN, self.ana.as_str()),
                (SAMPLE_PROJECT, self.project.as_str()),
            ],
        )?;
        let (status, accepted) = call(&self.state, Route::PostCommand, request).await?;
        anyhow::ensure!(status == 202, "{accepted}");
        Ok(RunId::parse(
            "run_id",
            accepted["run_id"].as_str().unwrap_or_default(),
        )?)
    }

    fn repo<T>(&self, f: impl FnOnce(Option<&fakes::github::Repo>) -> T) -> T {
        let state = self.fake.github.lock().unwrap_or_else(|e| e.into_inner());
        f(state.repos.get(&(REPO.0.to_owned(), REPO.1.to_owned())))
    }

    async fn app_task(&self, run: RunId) -> anyhow::Result<autocrew_shared::domain::records::Task> {
        self.p
            .ctx
            .tasks
            .run_tasks(run)
            .await?
            .into_iter()
            .find(|t| t.key == "app_skeleton")
            .ok_or_else(|| anyhow::anyhow!("the offline plan has app_skeleton"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approved_push_makes_one_commit_in_a_new_repository_and_a_later_run_a_pull_request()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = world(&db, &["publish"]).await?;

    // The run parks at the push; the approval shows the exact push.
    let run = w.command().await?;
    let mut approval = Value::Null;
    for _ in 0..400 {
        crate::pipeline::pump(&w.p).await?;
        let asked = w.state.approvals.run_approvals(run).await?;
        if let Some(a) = asked.into_iter().find(|a| a.tool == "push_code") {
            approval = serde_json::to_value(&a)?;
            break;
        }
    }
    let payload = &approval["payload"];
    assert_eq!(
        payload["repository"],
        format!("{}/{}", REPO.0, REPO.1),
        "{approval}"
    );
    assert_eq!(payload["target"], "new_repository");
    let paths: Vec<&str> = payload["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"package.json") && paths.contains(&"app/index.tsx"),
        "{paths:?}"
    );
    assert!(
        w.repo(|r| r.is_none()),
        "nothing is pushed before the approval"
    );

    let id = approval["id"].as_str().unwrap_or_default();
    let mut decide: Value = serde_json::from_str(&std::fs::read_to_string(format!(
        "{}/../events/apigw-decide-approval.json",
        env!("CARGO_MANIFEST_DIR")
    ))?)?;
    decide["body"] =
        json!(json!({"decision": "approve", "payload_hash": approval["payload_hash"]}).to_string());
    decide["pathParameters"]["approval_id"] = json!(id);
    let text = decide.to_string().replace(SAMPLE_TOKEN, &w.ana);
    let (status, decided) = call(
        &w.state,
        Route::DecideApproval,
        lambda_http::request::from_str(&text)?,
    )
    .await?;
    assert_eq!(status, 200, "{decided}");

    let ended = play_until_ended(&w.p, run).await?;
    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let (history, files, private) = w.repo(|r| {
        let r = r.expect("the repository was made");
        (r.history("main"), r.files("main"), r.private)
    });
    assert!(private, "a new repository is private");
    assert_eq!(history.len(), 2, "the initial commit and exactly one push");
    assert!(
        history[0].1.message.contains("Autocrew-Call: "),
        "{}",
        history[0].1.message
    );
    assert!(
        files.contains_key("app/index.tsx") && files.contains_key("package.json"),
        "{:?}",
        files.keys()
    );
    let summary = w
        .app_task(run)
        .await?
        .result
        .map(|r| r["summary"].to_string())
        .unwrap_or_default();
    assert!(
        summary.contains("committed") && summary.contains("/commit/"),
        "{summary}"
    );

    // A later run with pushes on auto: a pull request from its own branch; main unchanged.
    let request = event(
        "apigw-set-policy.json",
        &[
            (SAMPLE_TOKEN, w.ana.as_str()),
            ("/me/policies/publish", "/me/policies/push_code"),
            ("\"tool\": \"publish\"", "\"tool\": \"push_code\""),
        ],
    )?
    .map(|_| lambda_http::Body::Text(r#"{"approval":"auto"}"#.to_owned()));
    call(&w.state, Route::SetPolicy, request).await?;
    let second = w.command().await?;
    let ended = play_until_ended(&w.p, second).await?;
    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let (main, pulls, branches) = w.repo(|r| {
        let r = r.expect("repository");
        (
            r.history("main").len(),
            r.pulls.clone(),
            r.branches.keys().cloned().collect::<Vec<_>>(),
        )
    });
    assert_eq!(main, 2, "main is not pushed to again");
    assert_eq!(pulls.len(), 1, "{branches:?}");
    assert_eq!(pulls[0].base, "main");
    assert!(pulls[0].head.starts_with("autocrew/"), "{}", pulls[0].head);
    let summary = w
        .app_task(second)
        .await?
        .result
        .map(|r| r["summary"].to_string())
        .unwrap_or_default();
    assert!(summary.contains("pull request #1"), "{summary}");
    let _ = ProjectId::parse("project", &w.project)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_dies_after_moving_the_branch_does_not_commit_twice() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let w = world(&db, &["publish", "push_code"]).await?;
    // GitHub moves main, then the answer is lost: as if the worker died before recording.
    w.fake.fail_once_after("github.update_ref");

    let run = w.command().await?;
    let ended = play_until_ended(&w.p, run).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let task = w.app_task(run).await?;
    assert_eq!(
        task.attempts, 2,
        "the first attempt failed on the lost answer and was retried"
    );
    let (history, pulls, branches) = w.repo(|r| {
        let r = r.expect("repository");
        (r.history("main"), r.pulls.len(), r.branches.len())
    });
    assert_eq!(
        history.len(),
        2,
        "exactly one commit beside the initial one"
    );
    assert_eq!(
        (pulls, branches),
        (0, 1),
        "the retry found its push: no branch, no pull request"
    );
    let summary = task
        .result
        .map(|r| r["summary"].to_string())
        .unwrap_or_default();
    assert!(summary.contains("committed"), "{summary}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_fails_the_task_naming_the_connection_without_retrying()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = world(&db, &["publish", "push_code"]).await?;
    w.fake.revoke("ghp_anaToken0123456789abcdefWXYZ");

    let run = w.command().await?;
    let ended = play_until_ended(&w.p, run).await?;

    assert_eq!(ended.status, RunStatus::Failed);
    let task = w.app_task(run).await?;
    assert_eq!(
        (task.status, task.attempts),
        (TaskStatus::Failed, 1),
        "no retry storm"
    );
    let error = task.error_log.unwrap_or_default();
    assert!(
        error.contains("github connection (ana-builds)") && error.contains("Bad credentials"),
        "{error}"
    );
    // The connection says so, and shows no token.
    let list = event(
        "apigw-list-connections.json",
        &[(SAMPLE_TOKEN, w.ana.as_str())],
    )?;
    let (_, listed) = call(&w.state, Route::ListConnections, list).await?;
    assert_eq!(listed["connections"][0]["status"], "invalid", "{listed}");
    assert!(
        listed["connections"][0]["status_reason"]
            .to_string()
            .contains("Bad credentials")
    );
    Ok(())
}
