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

pub(crate) struct World {
    pub(crate) fake: Fake,
    pub(crate) state: ApiState,
    pub(crate) p: Pipeline,
    pub(crate) ana: String,
    pub(crate) project: String,
}

/// GitHub connected as ana-builds.
const GITHUB: (&str, &str, &str) = ("github", "ghp_anaToken0123456789abcdefWXYZ", REPO.0);

async fn world(db: &TestDb, auto: &[&str]) -> anyhow::Result<World> {
    world_with(db, &[GITHUB], auto).await
}

/// The API and steps over a fresh database, every service being the fakes; Ana signed up
/// with each of `connect` (service, token, account) connected, and the `auto` tools set to
/// run without asking.
pub(crate) async fn world_with(
    db: &TestDb,
    connect: &[(&str, &str, &str)],
    auto: &[&str],
) -> anyhow::Result<World> {
    let (fake, url) = fakes::start().await?;
    let urls = ServiceUrls::from_env(&HashMap::from([
        ("GITHUB_API_URL".to_owned(), format!("{url}/github")),
        ("RESEND_API_URL".to_owned(), format!("{url}/resend")),
        ("X_API_URL".to_owned(), format!("{url}/x")),
        ("VERCEL_API_URL".to_owned(), format!("{url}/vercel")),
        ("EXPO_API_URL".to_owned(), format!("{url}/expo")),
        ("LINKEDIN_API_URL".to_owned(), format!("{url}/linkedin")),
    ]))?;
    let for_api = urls.clone();
    let (state, mut p) = api_with(db, |s| s.services = for_api).await?;
    p.ctx.connected = p.ctx.connected.clone().with_urls(urls);
    // Long jobs are looked at every second (the fake EAS moves a build on at each look).
    p.ctx.jobs.poll_secs = 1;
    let ana = user(&state, "ana@example.com").await?;
    for (service, token, account) in connect {
        fake.accept(service, token, account);
        let body = json!({"service": service, "token": token}).to_string();
        let request = event("apigw-connect.json", &[(SAMPLE_TOKEN, ana.as_str())])?
            .map(|_| lambda_http::Body::Text(body));
        let (status, connected) = call(&state, Route::Connect, request).await?;
        anyhow::ensure!(status == 201, "connect answered {status}: {connected}");
    }
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
    pub(crate) async fn command(&self) -> anyhow::Result<RunId> {
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

    pub(crate) async fn task(
        &self,
        run: RunId,
        key: &str,
    ) -> anyhow::Result<autocrew_shared::domain::records::Task> {
        self.p
            .ctx
            .tasks
            .run_tasks(run)
            .await?
            .into_iter()
            .find(|t| t.key == key)
            .ok_or_else(|| anyhow::anyhow!("the offline plan has {key}"))
    }

    /// The summary task `key` of `run` finished with.
    pub(crate) async fn summary(&self, run: RunId, key: &str) -> anyhow::Result<String> {
        Ok(self
            .task(run, key)
            .await?
            .result
            .map(|r| r["summary"].to_string())
            .unwrap_or_default())
    }

    /// `POST /approvals/{id}` for `approval` with `decision` (approve or reject).
    pub(crate) async fn decide(&self, approval: &Value, decision: &str) -> anyhow::Result<()> {
        let id = approval["id"].as_str().unwrap_or_default();
        let mut decide: Value = serde_json::from_str(&std::fs::read_to_string(format!(
            "{}/../events/apigw-decide-approval.json",
            env!("CARGO_MANIFEST_DIR")
        ))?)?;
        decide["body"] = json!(
            json!({"decision": decision, "payload_hash": approval["payload_hash"], "reason": "not now"})
                .to_string()
        );
        decide["pathParameters"]["approval_id"] = json!(id);
        decide["rawPath"] = json!(format!("/approvals/{id}"));
        let text = decide.to_string().replace(SAMPLE_TOKEN, &self.ana);
        let (status, decided) = call(
            &self.state,
            Route::DecideApproval,
            lambda_http::request::from_str(&text)?,
        )
        .await?;
        anyhow::ensure!(status == 200, "deciding answered {status}: {decided}");
        Ok(())
    }

    /// Plays the queues until the run has asked for every tool of `tools`; their approvals.
    pub(crate) async fn asked(&self, run: RunId, tools: &[&str]) -> anyhow::Result<Vec<Value>> {
        for _ in 0..600 {
            crate::pipeline::pump(&self.p).await?;
            let asked = self.state.approvals.run_approvals(run).await?;
            let found: Vec<Value> = tools
                .iter()
                .filter_map(|tool| asked.iter().find(|a| a.tool == *tool))
                .filter_map(|a| serde_json::to_value(a).ok())
                .collect();
            if found.len() == tools.len() {
                return Ok(found);
            }
        }
        anyhow::bail!("the run did not ask for {tools:?}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approved_push_makes_one_commit_in_a_new_repository_and_a_later_run_a_pull_request()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = world(&db, &["publish"]).await?;

    // The run parks at the push; the approval shows the exact push.
    let run = w.command().await?;
    let approval = w.asked(run, &["push_code"]).await?.remove(0);
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
    w.decide(&approval, "approve").await?;

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
    let summary = w.summary(run, "app_skeleton").await?;
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
    let summary = w.summary(second, "app_skeleton").await?;
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
    let task = w.task(run, "app_skeleton").await?;
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
    let task = w.task(run, "app_skeleton").await?;
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
