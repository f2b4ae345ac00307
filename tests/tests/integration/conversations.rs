//! The routes a mobile app's chat, file picker and crew screen use: a project's
//! conversation answered by the orchestrator through the gateway (priced), a message sent
//! as a command, uploads by presigned PUT checked before they become artifacts, the agents
//! with the models they would use, and bodies refused for their size or encoding.

use crate::api::{SAMPLE_TOKEN, api, call, event, project, user};
use crate::pipeline::pump;
use autocrew_api::{Route, handle};
use autocrew_tests::TestDb;
use serde_json::{Value, json};

const SAMPLE_PROJECT: &str = "6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21";
const SAMPLE_UPLOAD: &str = "3c5d7e9f-1a2b-4c3d-8e4f-5a6b7c8d9e0f";

/// `file` as `token` on `project`, with `body` as its JSON body when given.
fn on_project(
    file: &str,
    token: &str,
    project: &str,
    body: Option<Value>,
) -> anyhow::Result<lambda_http::Request> {
    let request = event(file, &[(SAMPLE_TOKEN, token), (SAMPLE_PROJECT, project)])?;
    Ok(match body {
        Some(body) => request.map(|_| lambda_http::Body::Text(body.to_string())),
        None => request,
    })
}

/// The API over a fresh database, with Ana signed up and owning a project.
async fn ana_with_project(
    db: &TestDb,
) -> anyhow::Result<(
    autocrew_api::ApiState,
    crate::pipeline::Pipeline,
    String,
    String,
)> {
    let (state, p) = api(db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let project = project(&state, &ana).await?;
    Ok((state, p, ana, project))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_answered_from_the_projects_context_and_priced() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, p, ana, project) = ana_with_project(&db).await?;
    let bo = user(&state, "bo@example.com").await?;

    let (status, posted) = call(
        &state,
        Route::PostMessage,
        on_project("apigw-post-message.json", &ana, &project, None)?,
    )
    .await?;
    assert_eq!(status, 202, "{posted}");
    assert_eq!(posted["reply"]["status"], "pending");
    assert_eq!(posted["message"]["author"], "user");

    // step-reply answers from the chat queue.
    let mut handled = 0;
    for _ in 0..20 {
        handled += pump(&p).await?;
        if handled > 0 {
            break;
        }
    }
    assert!(handled > 0, "no reply message was delivered");

    let (status, thread) = call(
        &state,
        Route::ListMessages,
        on_project("apigw-list-messages.json", &ana, &project, None)?,
    )
    .await?;
    assert_eq!(status, 200, "{thread}");
    let items = thread["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{thread}");
    // Newest first: the reply, then the question it answers.
    assert_eq!(items[0]["author"], "assistant");
    assert_eq!(items[0]["status"], "done", "{}", items[0]);
    assert_eq!(items[0]["reply_to"], items[1]["id"]);
    let text = items[0]["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("[offline model] Keto recipes has 0 runs"),
        "{text}"
    );
    assert!(text.contains("How far along is the landing page"), "{text}");

    // The reply's model call is in the ledger, as the orchestrator's, outside any run.
    let rows = db
        .pool
        .get()
        .await?
        .query(
            "SELECT agent::text, run_id FROM llm_calls WHERE project_id = $1::text::uuid",
            &[&project],
        )
        .await?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "orchestrator");
    assert!(rows[0].get::<_, Option<uuid::Uuid>>(1).is_none());

    // Another user sees no thread and cannot post to it.
    for (route, file) in [
        (Route::ListMessages, "apigw-list-messages.json"),
        (Route::PostMessage, "apigw-post-message.json"),
    ] {
        let (status, body) = call(&state, route, on_project(file, &bo, &project, None)?).await?;
        assert_eq!(status, 404, "{route:?}: {body}");
    }

    // A run's limits only go with a command.
    let (status, body) = call(
        &state,
        Route::PostMessage,
        on_project(
            "apigw-post-message.json",
            &ana,
            &project,
            Some(json!({"text": "hi", "budget_usd": 2})),
        )?,
    )
    .await?;
    assert_eq!((status, body["field"].as_str()), (400, Some("budget_usd")));

    // As a command, the message starts a run and says so in the thread.
    let (status, started) = call(
        &state,
        Route::PostMessage,
        on_project(
            "apigw-post-message.json",
            &ana,
            &project,
            Some(json!({"text": "Build a recipe app for keto dieters", "as_command": true, "budget_usd": 2})),
        )?,
    )
    .await?;
    assert_eq!(status, 202, "{started}");
    let run_id = started["run_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(started["message"]["run_id"], json!(run_id));
    let budget: i64 = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT budget_micro_usd FROM runs WHERE id = $1::text::uuid",
            &[&run_id],
        )
        .await?
        .get(0);
    assert_eq!(budget, 2_000_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_checked_before_it_becomes_an_artifact() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p, ana, project) = ana_with_project(&db).await?;
    let http = reqwest::Client::new();
    let grant = |body: Value| on_project("apigw-create-upload.json", &ana, &project, Some(body));
    let complete = |id: &str| {
        event(
            "apigw-complete-upload.json",
            &[(SAMPLE_TOKEN, ana.as_str()), (SAMPLE_UPLOAD, id)],
        )
    };

    // Refused grants name the field.
    for (body, field) in [
        (
            json!({"filename": "a.exe", "content_type": "application/x-msdownload", "size_bytes": 10}),
            "content_type",
        ),
        (
            json!({"filename": "big.pdf", "content_type": "application/pdf", "size_bytes": 26_214_401}),
            "size_bytes",
        ),
        (
            json!({"filename": "../etc/passwd", "content_type": "text/plain", "size_bytes": 10}),
            "filename",
        ),
        (
            json!({"filename": "a.txt", "content_type": "text/plain", "size_bytes": 10, "public": true}),
            "body.field",
        ),
    ] {
        let (status, answer) = call(&state, Route::CreateUpload, grant(body)?).await?;
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some(field)),
            "{answer}"
        );
    }

    let pdf = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_vec();
    let (status, granted) = call(
        &state,
        Route::CreateUpload,
        grant(json!({"filename": "brand guide.pdf", "content_type": "application/pdf", "size_bytes": pdf.len()}))?,
    )
    .await?;
    assert_eq!(status, 201, "{granted}");
    let id = granted["upload"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        granted["upload"]["key"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/brand_guide.pdf")
    );

    // Completing before the PUT is a conflict, not an artifact.
    let (status, _) = call(&state, Route::CompleteUpload, complete(&id)?).await?;
    assert_eq!(status, 409);

    // Bytes that are not a PDF are refused and deleted.
    let url = granted["url"].as_str().unwrap_or_default();
    let put = |bytes: Vec<u8>| {
        http.put(url)
            .header("content-type", "application/pdf")
            .body(bytes)
            .send()
    };
    let fake = vec![b'x'; pdf.len()];
    assert!(put(fake).await?.status().is_success());
    let (status, refused) = call(&state, Route::CompleteUpload, complete(&id)?).await?;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not application/pdf")
    );
    let (status, _) = call(&state, Route::CompleteUpload, complete(&id)?).await?;
    assert_eq!(status, 409, "the refused file was deleted");

    // The real file becomes an artifact, once.
    assert!(put(pdf.clone()).await?.status().is_success());
    let (status, artifact) = call(&state, Route::CompleteUpload, complete(&id)?).await?;
    assert_eq!(status, 201, "{artifact}");
    assert_eq!(artifact["size_bytes"], pdf.len());
    let downloaded = http
        .get(artifact["url"].as_str().unwrap_or_default())
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(downloaded.as_ref(), pdf.as_slice());
    let (status, _) = call(&state, Route::CompleteUpload, complete(&id)?).await?;
    assert_eq!(status, 200, "completing again changes nothing");
    let (status, listed) = call(
        &state,
        Route::ListArtifacts,
        on_project("apigw-list-artifacts.json", &ana, &project, None)?,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_say_which_models_they_would_use() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let (status, body) = call(
        &state,
        Route::ListAgents,
        event("apigw-list-agents.json", &[(SAMPLE_TOKEN, ana.as_str())])?,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let agents = body["agents"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = agents.iter().filter_map(|a| a["agent"].as_str()).collect();
    assert_eq!(
        names,
        [
            "orchestrator",
            "developer",
            "marketer",
            "sales",
            "designer",
            "ops"
        ]
    );
    // No provider key in the tests: every chain ends at the offline model.
    for agent in &agents {
        for complexity in ["simple", "medium", "complex"] {
            let chain = agent["models"][complexity]["chain"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(!chain.is_empty(), "{agent}");
            assert!(chain.iter().any(|m| m["provider"] == "offline"), "{agent}");
        }
    }
    let developer = &agents[1];
    assert!(developer["tools"].as_array().is_some_and(|t| !t.is_empty()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_undecodable_bodies_are_refused_with_the_field() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p, ana, project) = ana_with_project(&db).await?;

    let big = json!({"text": "x".repeat(70 * 1024)});
    let (status, body) = call(
        &state,
        Route::PostMessage,
        on_project("apigw-post-message.json", &ana, &project, Some(big))?,
    )
    .await?;
    assert_eq!(status, 413, "{body}");

    let mut bytes = br#"{"text": "caf"#.to_vec();
    bytes.extend_from_slice(&[0xC3, 0x28]);
    bytes.extend_from_slice(br#""}"#);
    let request = on_project("apigw-post-message.json", &ana, &project, None)?
        .map(|_| lambda_http::Body::Binary(bytes.clone()));
    let response = handle(&state, Route::PostMessage, request).await;
    let status = response.status().as_u16();
    let answer: Value = match response.body() {
        lambda_http::Body::Text(text) => serde_json::from_str(text)?,
        _ => Value::Null,
    };
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("text")),
        "{answer}"
    );

    let (status, answer) = call(
        &state,
        Route::PostMessage,
        on_project(
            "apigw-post-message.json",
            &ana,
            &project,
            Some(json!({"text": "a\u{0}b"})),
        )?,
    )
    .await?;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("text")),
        "{answer}"
    );
    Ok(())
}
