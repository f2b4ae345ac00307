//! The API routes, called with the payloads in `events/` as API Gateway delivers them.

use crate::pipeline::{Pipeline, pipeline};
use autocrew_api::state::ApiSettings;
use autocrew_api::{ApiState, Route, handle};
use autocrew_shared::ports::{ExecutionStatus, StateMachine};
use autocrew_tests::{TestDb, sdk, signing_secret};
use serde_json::Value;
use std::collections::HashSet;

const SAMPLE_PROJECT: &str = "6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21";
const SAMPLE_RUN: &str = "0b9e5d3c-7a41-4f2e-8c6d-1e2f3a4b5c6d";
pub(crate) const SAMPLE_TOKEN: &str = "sample.access.token";

/// An `events/` file with the sample ids and token swapped for real ones.
/// The swaps apply at once: a value put in by one swap is never matched by a
/// later one (on 2 December, "yesterday" is the sample's other date).
pub(crate) fn event(file: &str, swaps: &[(&str, &str)]) -> anyhow::Result<lambda_http::Request> {
    let mut text =
        std::fs::read_to_string(format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR")))?;
    let marker = |i: usize| format!("\u{0}swap{i}\u{0}");
    for (i, (from, _)) in swaps.iter().enumerate() {
        text = text.replace(from, &marker(i));
    }
    for (i, (_, to)) in swaps.iter().enumerate() {
        text = text.replace(&marker(i), to);
    }
    Ok(lambda_http::request::from_str(&text)?)
}

pub(crate) async fn call(
    state: &ApiState,
    route: Route,
    request: lambda_http::Request,
) -> anyhow::Result<(u16, Value)> {
    let response = handle(state, route, request).await;
    let status = response.status().as_u16();
    let json = response
        .headers()
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    let body: Value = match response.body() {
        lambda_http::Body::Text(text) if json => serde_json::from_str(text)?,
        lambda_http::Body::Text(text) => Value::String(text.clone()),
        _ => Value::Null,
    };
    if json {
        conforms(route, status, &body)?;
    }
    Ok((status, body))
}

/// Every JSON answer a test gets is held to the OpenAPI document: the route declares its
/// status, and the body matches that status's schema. So a typed client generated from the
/// document reads what the API really sends.
fn conforms(route: Route, status: u16, body: &Value) -> anyhow::Result<()> {
    let document = autocrew_api::openapi::document();
    let (method, path) = route.endpoint();
    let path = path.replace("+}", "}");
    let mut response =
        &document["paths"][&path][method.to_ascii_lowercase()]["responses"][status.to_string()];
    if let Some(reference) = response["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/responses/");
        response = &document["components"]["responses"][name];
    }
    anyhow::ensure!(
        !response.is_null(),
        "{method} {path} answered {status}, which the document does not declare: {body}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    let root = serde_json::json!({"allOf": [schema], "components": document["components"]});
    let validator = jsonschema::validator_for(&root)?;
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    anyhow::ensure!(
        errors.is_empty(),
        "{method} {path} answered {status} outside its schema: {errors:?}\n{body}"
    );
    Ok(())
}

pub(crate) async fn api(db: &TestDb) -> anyhow::Result<(ApiState, Pipeline)> {
    api_with(db, |_| {}).await
}

/// `api`, with the settings changed by `change` first.
pub(crate) async fn api_with(
    db: &TestDb,
    change: impl FnOnce(&mut ApiSettings),
) -> anyhow::Result<(ApiState, Pipeline)> {
    api_on(db, pipeline(db, None).await?, change).await
}

/// The API over the pipeline `p` (its queues, state machine and models).
pub(crate) async fn api_on(
    db: &TestDb,
    p: Pipeline,
    change: impl FnOnce(&mut ApiSettings),
) -> anyhow::Result<(ApiState, Pipeline)> {
    api_over(db.pool.clone(), p, change).await
}

/// `api_on`, with every statement going through `pool` (a pool to the same database).
pub(crate) async fn api_over(
    pool: autocrew_shared::adapters::postgres::Pool,
    p: Pipeline,
    change: impl FnOnce(&mut ApiSettings),
) -> anyhow::Result<(ApiState, Pipeline)> {
    let sdk = sdk().await?;
    let mut settings =
        ApiSettings {
            auth: autocrew_shared::config::AuthConfig {
                signing_secret: signing_secret(&sdk).await?,
                app_link_base: Some("autocrew://".into()),
                oidc: None,
                trial_credit: autocrew_shared::domain::MicroUsd::ZERO,
            },
            mail: autocrew_shared::config::MailConfig::Outbox,
            limits: Default::default(),
            artifact_bucket: p.ctx.bucket.clone(),
            connections_table: p.connections_table.clone(),
            websocket_callback_url: "http://127.0.0.1:9".into(),
            state_machine_arn: p.state_machine.clone(),
            agent_queues: p.ctx.relay.queues.clone(),
            llm: autocrew_shared::adapters::llm::select::LlmSetup {
                models: p.ctx.gateway.models().clone(),
                profiles: p.ctx.profiles.clone(),
                settings: p.ctx.gateway.settings().clone(),
            },
            // The steps open what the API seals: one key.
            vault: autocrew_shared::config::VaultConfig::File {
                path: p.key_file.clone(),
            },
            services: autocrew_shared::config::ServiceUrls::from_env(
                &std::collections::HashMap::<String, String>::new(),
            )?,
            oauth: Default::default(),
            // No Stripe unless a test sets it up (the billing routes answer 503).
            billing: autocrew_shared::config::BillingConfig::from_env(
                &std::collections::HashMap::<String, String>::new(),
            )?,
            // Webhooks to the tests' own receivers on loopback.
            notices: autocrew_shared::config::NoticeConfig::from_env(
                &std::collections::HashMap::from([(
                    "WEBHOOKS_ALLOW_LOOPBACK".to_owned(),
                    "true".to_owned(),
                )]),
            )?,
            public_base_url: None,
            // The schema is introspected in local mode, as the runner sets it.
            graphql_introspection: true,
            // The schedules' timers in the group the template made in moto.
            timers: autocrew_shared::adapters::aws::TimerSettings {
                group: p
                    .provisioned
                    .names
                    .get("ProjectSchedules")
                    .cloned()
                    .unwrap_or_default(),
                target_arn: "arn:aws:lambda:us-east-1:123456789012:function:schedule-fire".into(),
                role_arn: "arn:aws:iam::123456789012:role/scheduler".into(),
            },
        };
    change(&mut settings);
    Ok((ApiState::assemble(pool, &sdk, settings).await?, p))
}

/// Signs a user up (from `apigw-signup.json`, with `email`) and returns its access token.
pub(crate) async fn user(state: &ApiState, email: &str) -> anyhow::Result<String> {
    let (status, body) = call(
        state,
        Route::Signup,
        event("apigw-signup.json", &[("ana@example.com", email)])?,
    )
    .await?;
    anyhow::ensure!(status == 201, "sign-up answered {status}: {body}");
    Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
}

pub(crate) async fn project(state: &ApiState, token: &str) -> anyhow::Result<String> {
    let (status, body) = call(
        state,
        Route::CreateProject,
        event("apigw-create-project.json", &[(SAMPLE_TOKEN, token)])?,
    )
    .await?;
    anyhow::ensure!(status == 201, "create project answered {status}: {body}");
    Ok(body["id"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn posting_a_command_answers_202_and_starts_the_runs_execution() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, p) = api(&db).await?;
    let token = user(&state, "ana@example.com").await?;
    let project = project(&state, &token).await?;
    let swaps = [
        (SAMPLE_TOKEN, token.as_str()),
        (SAMPLE_PROJECT, project.as_str()),
    ];

    let (status, accepted) = call(
        &state,
        Route::PostCommand,
        event("apigw-post-command.json", &swaps)?,
    )
    .await?;

    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["run_id"].as_str().unwrap_or_default().to_owned();
    let run_swaps = [
        (SAMPLE_TOKEN, token.as_str()),
        (SAMPLE_RUN, run_id.as_str()),
    ];
    let (status, run) = call(
        &state,
        Route::GetRun,
        event("apigw-get-run.json", &run_swaps)?,
    )
    .await?;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["run"]["command"], "Build a recipe app for keto dieters");
    let arn = run["run"]["execution_arn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(arn.ends_with(&format!("run-{run_id}")), "{arn}");
    let (execution, _) = p.sfn.describe(&arn).await?;
    assert_eq!(
        execution,
        ExecutionStatus::Running,
        "the plan step is waiting for its callback"
    );
    let (status, events) = call(
        &state,
        Route::ListEvents,
        event("apigw-list-events.json", &swaps)?,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(events["events"][0]["kind"], "run_created");
    assert_eq!(events["last_seq"], 1);
    Ok(())
}

#[tokio::test]
async fn a_malformed_command_gets_a_400_naming_the_field() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _) = api(&db).await?;
    let token = user(&state, "ben@example.com").await?;
    let project = project(&state, &token).await?;
    let swaps = [
        (SAMPLE_TOKEN, token.as_str()),
        (SAMPLE_PROJECT, project.as_str()),
    ];

    let (status, body) = call(
        &state,
        Route::PostCommand,
        event("apigw-post-command-malformed.json", &swaps)?,
    )
    .await?;
    let (empty_status, empty) = call(
        &state,
        Route::PostCommand,
        event(
            "apigw-post-command.json",
            &[
                swaps[0],
                swaps[1],
                ("Build a recipe app for keto dieters", "   "),
            ],
        )?,
    )
    .await?;

    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("comand"),
        "{body}"
    );
    assert_eq!(empty_status, 400);
    assert_eq!(empty["field"], "command");
    Ok(())
}

#[tokio::test]
async fn requests_without_a_valid_token_or_for_others_projects_are_refused() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let ben = user(&state, "ben@example.com").await?;
    let anas_project = project(&state, &ana).await?;

    let (no_token, _) = call(
        &state,
        Route::CreateProject,
        event("apigw-create-project.json", &[])?,
    )
    .await?;
    let (others, _) = call(
        &state,
        Route::ListEvents,
        event(
            "apigw-list-events.json",
            &[
                (SAMPLE_TOKEN, ben.as_str()),
                (SAMPLE_PROJECT, anas_project.as_str()),
            ],
        )?,
    )
    .await?;
    let (bad_id, body) = call(
        &state,
        Route::ListEvents,
        event(
            "apigw-list-events.json",
            &[(SAMPLE_TOKEN, ana.as_str()), (SAMPLE_PROJECT, "not-a-uuid")],
        )?,
    )
    .await?;
    let (duplicate, _) = call(&state, Route::Signup, event("apigw-signup.json", &[])?).await?;

    assert_eq!(no_token, 401, "the sample token is not a real one");
    assert_eq!(others, 404, "another user's project does not exist for you");
    assert_eq!((bad_id, body["field"].as_str()), (400, Some("project_id")));
    assert_eq!(duplicate, 409, "ana@example.com is taken");
    Ok(())
}

#[tokio::test]
async fn a_run_whose_execution_cannot_start_yet_is_accepted_and_its_start_waits_in_the_outbox()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (mut state, _) = api(&db).await?;
    state.relay.state_machine_arn =
        Some("arn:aws:states:us-east-1:123456789012:stateMachine:does-not-exist".into());
    let token = user(&state, "cy@example.com").await?;
    let project = project(&state, &token).await?;
    let swaps = [
        (SAMPLE_TOKEN, token.as_str()),
        (SAMPLE_PROJECT, project.as_str()),
    ];

    let (status, body) = call(
        &state,
        Route::PostCommand,
        event("apigw-post-command.json", &swaps)?,
    )
    .await?;
    let (_, events) = call(
        &state,
        Route::ListEvents,
        event("apigw-list-events.json", &swaps)?,
    )
    .await?;

    assert_eq!(status, 202, "{body}");
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["run_created"]);
    let client = db.pool.get().await?;
    let row = client
        .query_one(
            "SELECT message->>'kind', attempts, last_error FROM outbox WHERE run_id = $1",
            &[&uuid::Uuid::parse_str(
                body["run_id"].as_str().unwrap_or_default(),
            )?],
        )
        .await?;
    let (kind, attempts, error): (String, i32, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    assert_eq!((kind.as_str(), attempts), ("start_execution", 1));
    assert!(
        error.unwrap_or_default().contains("start an execution"),
        "the failed send is recorded for the reconciler"
    );
    Ok(())
}

#[tokio::test]
async fn steering_requests_that_do_not_fit_get_a_clear_4xx_and_change_nothing() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let (state, _) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let ben = user(&state, "ben@example.com").await?;
    let project = project(&state, &ana).await?;
    let swaps = [
        (SAMPLE_TOKEN, ana.as_str()),
        (SAMPLE_PROJECT, project.as_str()),
    ];
    let (_, accepted) = call(
        &state,
        Route::PostCommand,
        event("apigw-post-command.json", &swaps)?,
    )
    .await?;
    let run = accepted["run_id"].as_str().unwrap_or_default().to_owned();
    let as_ana = [(SAMPLE_TOKEN, ana.as_str()), (SAMPLE_RUN, run.as_str())];
    let as_ben = [(SAMPLE_TOKEN, ben.as_str()), (SAMPLE_RUN, run.as_str())];
    let unknown = uuid::Uuid::new_v4().to_string();

    let (resume_running, resume_body) = call(
        &state,
        Route::ResumeRun,
        event("apigw-resume-run.json", &as_ana)?,
    )
    .await?;
    let (bens_cancel, _) = call(
        &state,
        Route::CancelRun,
        event("apigw-cancel-run.json", &as_ben)?,
    )
    .await?;
    let (unknown_cancel, _) = call(
        &state,
        Route::CancelRun,
        event(
            "apigw-cancel-run.json",
            &[(SAMPLE_TOKEN, ana.as_str()), (SAMPLE_RUN, unknown.as_str())],
        )?,
    )
    .await?;
    let (unknown_retry, _) = call(
        &state,
        Route::RetryTask,
        event(
            "apigw-retry-task.json",
            &[
                (SAMPLE_TOKEN, ana.as_str()),
                ("9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", unknown.as_str()),
            ],
        )?,
    )
    .await?;
    let (cancelled, cancel_body) = call(
        &state,
        Route::CancelRun,
        event("apigw-cancel-run.json", &as_ana)?,
    )
    .await?;
    let (cancel_again, again_body) = call(
        &state,
        Route::CancelRun,
        event("apigw-cancel-run.json", &as_ana)?,
    )
    .await?;

    assert_eq!(resume_running, 409, "{resume_body}");
    assert!(
        resume_body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("only a failed or cancelled run can be resumed")
    );
    assert_eq!(
        bens_cancel, 404,
        "another user's run does not exist for them"
    );
    assert_eq!((unknown_cancel, unknown_retry), (404, 404));
    assert_eq!(cancelled, 200, "{cancel_body}");
    assert_eq!(cancel_body["run"]["status"], "cancelled");
    assert_eq!(cancel_again, 409, "{again_body}");
    assert!(
        again_body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("already cancelled")
    );
    Ok(())
}

#[tokio::test]
async fn text_with_a_nul_byte_is_refused_with_a_400_naming_the_field() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _) = api(&db).await?;
    let token = user(&state, "nul@example.com").await?;
    let project = project(&state, &token).await?;
    let swaps = [
        (SAMPLE_TOKEN, token.as_str()),
        (SAMPLE_PROJECT, project.as_str()),
        ("Build a recipe app", "Build a \\\\u0000 recipe app"),
    ];

    let (status, body) = call(
        &state,
        Route::PostCommand,
        event("apigw-post-command.json", &swaps)?,
    )
    .await?;

    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "command");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("control characters")
    );
    let runs: i64 = db
        .pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM runs", &[])
        .await?
        .get(0);
    assert_eq!(runs, 0, "nothing was stored");
    Ok(())
}

/// `apigw-post-command.json` for `token` and `project`, with an `Idempotency-Key` and
/// `command`.
fn keyed_command(
    token: &str,
    project: &str,
    key: &str,
    command: &str,
) -> anyhow::Result<lambda_http::Request> {
    let text = std::fs::read_to_string(format!(
        "{}/../events/apigw-post-command.json",
        env!("CARGO_MANIFEST_DIR")
    ))?
    .replace(SAMPLE_TOKEN, token)
    .replace(SAMPLE_PROJECT, project);
    let mut event: Value = serde_json::from_str(&text)?;
    event["headers"]["idempotency-key"] = Value::from(key);
    event["body"] = Value::from(serde_json::json!({ "command": command }).to_string());
    Ok(lambda_http::request::from_str(&event.to_string())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_idempotency_key_gives_one_run_and_another_request_under_it_a_422()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _) = api(&db).await?;
    let token = user(&state, "idem@example.com").await?;
    let project = project(&state, &token).await?;
    let key = uuid::Uuid::new_v4().to_string();

    let attempts = (0..10).map(|_| {
        let (state, request) = (
            state.clone(),
            keyed_command(&token, &project, &key, "Build a recipe app"),
        );
        tokio::spawn(async move { call(&state, Route::PostCommand, request?).await })
    });
    let mut answers = Vec::new();
    for joined in futures::future::join_all(attempts).await {
        answers.push(joined??);
    }
    let (other_status, other_body) = call(
        &state,
        Route::PostCommand,
        keyed_command(&token, &project, &key, "Build something else")?,
    )
    .await?;
    let (bad_status, bad_body) = call(
        &state,
        Route::PostCommand,
        keyed_command(&token, &project, "", "Build a recipe app")?,
    )
    .await?;

    assert!(
        answers.iter().all(|(status, _)| *status == 202),
        "{answers:?}"
    );
    let runs: HashSet<&str> = answers
        .iter()
        .filter_map(|(_, body)| body["run_id"].as_str())
        .collect();
    assert_eq!(runs.len(), 1, "one run for one key");
    let stored: i64 = db
        .pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM runs", &[])
        .await?
        .get(0);
    assert_eq!(stored, 1);
    assert_eq!(other_status, 422, "{other_body}");
    assert!(
        other_body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("different request")
    );
    assert_eq!(
        (bad_status, bad_body["field"].as_str()),
        (400, Some("Idempotency-Key"))
    );
    Ok(())
}
