//! Two users trying each other's resources: every signed-in route of the HTTP API whose
//! path names a resource (driven by the route table in `template.yaml`, with each route's
//! sample request from `events/`) is called by user B with user A's ids. Each answers 404
//! or 403, and A's resources are unchanged afterwards.

use crate::api::{SAMPLE_TOKEN, api, call, event, user};
use crate::browse::finished_run;
use autocrew_api::{Route, handle};
use autocrew_runner::template::{Template, Trigger};
use autocrew_tests::TestDb;
use serde_json::Value;
use std::collections::HashMap;

const SAMPLE_PROJECT: &str = "6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21";
const SAMPLE_RUN: &str = "0b9e5d3c-7a41-4f2e-8c6d-1e2f3a4b5c6d";

/// The path parameters of `/runs/{run_id}/tasks`: `["run_id"]`.
fn parameters(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_end_matches('+').to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_b_gets_404_or_403_on_every_route_that_names_user_as_resources() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let (state, p) = api(&db).await?;
    let a = user(&state, "ana@example.com").await?;
    let b = user(&state, "bo@example.com").await?;

    // A's resources: a project with a finished run, its tasks and its approval.
    let project = crate::api::project(&state, &a).await?;
    let run = finished_run(&state, &p, &a, &project).await?;

    let (_, detail) = call(
        &state,
        Route::GetRun,
        event(
            "apigw-get-run.json",
            &[(SAMPLE_TOKEN, a.as_str()), (SAMPLE_RUN, run.as_str())],
        )?,
    )
    .await?;
    let (status, granted) = call(
        &state,
        Route::CreateUpload,
        event(
            "apigw-create-upload.json",
            &[
                (SAMPLE_TOKEN, a.as_str()),
                (SAMPLE_PROJECT, project.as_str()),
            ],
        )?,
    )
    .await?;
    assert_eq!(status, 201, "{granted}");
    // A's schedule on the project.
    let (status, schedule) = call(
        &state,
        Route::CreateSchedule,
        event(
            "apigw-create-schedule.json",
            &[
                (SAMPLE_TOKEN, a.as_str()),
                (SAMPLE_PROJECT, project.as_str()),
            ],
        )?,
    )
    .await?;
    assert_eq!(status, 201, "{schedule}");
    // A's connected GitHub account (stored as connecting does, without asking GitHub).
    let a_id = state
        .accounts
        .credentials("ana@example.com")
        .await?
        .map(|(user, _)| user.id)
        .ok_or_else(|| anyhow::anyhow!("Ana has an account"))?;
    let token = autocrew_shared::config::Secret::new("ghp_ana0123456789abcdef".to_owned());
    let sealed = state
        .connected
        .vault()
        .seal(
            &token,
            &autocrew_shared::domain::connections::seal_context(
                a_id,
                autocrew_shared::domain::Service::Github,
            ),
        )
        .await?;
    let connection = state
        .connected
        .store()
        .connect(autocrew_shared::ports::NewConnection {
            user: a_id,
            service: autocrew_shared::domain::Service::Github,
            account: "ana-builds".into(),
            hint: "cdef".into(),
            sealed,
            renewal: Default::default(),
        })
        .await?;
    // A's GitHub device flow, waiting for A to enter the code (stored as starting does).
    let flow = autocrew_shared::ports::DeviceFlow {
        id: uuid::Uuid::new_v4(),
        user: a_id,
        service: autocrew_shared::domain::Service::Github,
        sealed: state
            .connected
            .vault()
            .seal(
                &autocrew_shared::config::Secret::new(
                    "3584d83530557fdd1f46af8289938c8ef79f9dc5".into(),
                ),
                "ana's flow",
            )
            .await?,
        user_code: "WDJB-MJHT".into(),
        verification_uri: "https://github.com/login/device".into(),
        interval_secs: 5,
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(15),
    };
    state.connected.store().start_flow(&flow).await?;
    // A's X web flow under the same id (`{flow_id}` in both routes), A at X's consent page.
    let web_flow = autocrew_shared::ports::WebFlow {
        id: flow.id,
        user: a_id,
        service: autocrew_shared::domain::Service::X,
        state_hash: vec![7; 32],
        sealed: flow.sealed.clone(),
        redirect_uri: "https://api.autocrew.test/oauth/callback".into(),
        return_to: None,
        status: autocrew_shared::ports::WebFlowStatus::Pending,
        reason: None,
        connection: None,
        expires_at: flow.expires_at,
    };
    state.connected.store().start_web_flow(&web_flow).await?;
    // A memory A's run left.
    let (status, memories) = call(
        &state,
        Route::SearchMemory,
        event(
            "apigw-search-memory.json",
            &[
                (SAMPLE_TOKEN, a.as_str()),
                ("3f1c2a9e-6b7d-4e2f-8a1b-5c9d0e7f4a21", project.as_str()),
            ],
        )?,
    )
    .await?;
    assert_eq!(status, 200, "{memories}");
    // A's phone and A's webhook (to a loopback URL, which the tests' API allows).
    let (status, device) = call(
        &state,
        Route::RegisterDevice,
        event("apigw-register-device.json", &[(SAMPLE_TOKEN, a.as_str())])?,
    )
    .await?;
    assert_eq!(status, 201, "{device}");
    let (status, webhook) = call(
        &state,
        Route::CreateWebhook,
        event(
            "apigw-create-webhook.json",
            &[
                (SAMPLE_TOKEN, a.as_str()),
                (
                    "https://hooks.example.com/autocrew",
                    "http://127.0.0.1:9/hook",
                ),
            ],
        )?,
    )
    .await?;
    assert_eq!(status, 201, "{webhook}");
    let ids: HashMap<&str, String> = HashMap::from([
        (
            "device_id",
            device["id"].as_str().unwrap_or_default().to_owned(),
        ),
        (
            "webhook_id",
            webhook["id"].as_str().unwrap_or_default().to_owned(),
        ),
        (
            "memory_id",
            memories["memories"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
        (
            "schedule_id",
            schedule["id"].as_str().unwrap_or_default().to_owned(),
        ),
        ("connection_id", connection.id.to_string()),
        ("flow_id", flow.id.to_string()),
        (
            "upload_id",
            granted["upload"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
        ("project_id", project.clone()),
        ("run_id", run.clone()),
        (
            "task_id",
            detail["tasks"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
        (
            "approval_id",
            detail["approvals"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
        ("path", "landing/index.html".to_owned()),
    ]);
    assert!(ids.values().all(|v| !v.is_empty()), "{ids:?}");

    let text = std::fs::read_to_string(format!("{}/../template.yaml", env!("CARGO_MANIFEST_DIR")))?;
    let mut checked = Vec::new();
    for function in Template::parse(&text)?.functions()? {
        let Some(route) = Route::from_name(&function.binary) else {
            continue;
        };
        for trigger in &function.triggers {
            let Trigger::Http { method, path } = trigger else {
                continue;
            };
            let names = parameters(path);
            // `{tool}` names a tool, not a resource: each user sets their own policy for it.
            if names.is_empty() || !route.signed_in() || names.iter().any(|n| n == "tool") {
                continue;
            }
            // The route's own sample request, aimed at A's resources, as B.
            let file = format!(
                "{}/../events/apigw-{}.json",
                env!("CARGO_MANIFEST_DIR"),
                function.binary.trim_start_matches("api-")
            );
            let mut sample: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
            let mut raw = path.clone();
            for name in &names {
                let value = ids
                    .get(name.as_str())
                    .ok_or_else(|| anyhow::anyhow!("{path}: no id for {{{name}}}"))?;
                sample["pathParameters"][name] = Value::from(value.as_str());
                raw = raw
                    .replace(&format!("{{{name}}}"), value)
                    .replace(&format!("{{{name}+}}"), value);
            }
            sample["rawPath"] = Value::from(raw.as_str());
            sample["requestContext"]["http"]["path"] = Value::from(raw.as_str());
            sample["headers"]["authorization"] = Value::from(format!("Bearer {b}"));
            let request = lambda_http::request::from_str(&sample.to_string())?;
            let response = handle(&state, route, request).await;
            let status = response.status().as_u16();
            assert!(
                status == 404 || status == 403,
                "{method} {raw} as another user answered {status}: {:?}",
                response.body()
            );
            checked.push(format!("{method} {path}"));
        }
    }
    assert!(checked.len() >= 12, "only {checked:?}");

    // Nothing of A's changed.
    assert_eq!(state.notices.devices(a_id).await?.len(), 1);
    assert_eq!(state.notices.webhooks(a_id).await?.len(), 1);
    let (status, run_after) = call(
        &state,
        Route::GetRun,
        event(
            "apigw-get-run.json",
            &[(SAMPLE_TOKEN, a.as_str()), (SAMPLE_RUN, run.as_str())],
        )?,
    )
    .await?;
    assert_eq!(
        (status, run_after["run"]["status"].as_str()),
        (200, Some("succeeded"))
    );
    let (status, project_after) = call(
        &state,
        Route::GetProject,
        event(
            "apigw-get-project.json",
            &[
                (SAMPLE_TOKEN, a.as_str()),
                (SAMPLE_PROJECT, project.as_str()),
            ],
        )?,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(
        state.connected.store().connections(a_id).await?.len(),
        1,
        "A's connection is still there"
    );
    assert!(project_after["archived_at"].is_null());
    assert!(
        state.connected.store().flow(a_id, flow.id).await?.is_some(),
        "A's device flow is still there"
    );
    assert_eq!(
        state
            .connected
            .store()
            .web_flow(a_id, flow.id)
            .await?
            .map(|f| (f.status, f.connection)),
        Some((web_flow.status, None)),
        "A's web flow is as it was"
    );
    assert_eq!(run_after["approvals"], detail["approvals"]);
    Ok(())
}
