//! The whole API as the mobile app drives it, over HTTP and a real WebSocket through the
//! local runner (every function of `template.yaml` on moto and Postgres), with no step
//! skipped: sign up and log in, create a project, post a command while the socket follows
//! it, approve the publish, list runs and artifacts, chat, read analytics and costs,
//! refresh, log out.

use anyhow::Context;
use autocrew_runner::{Options, start};
use autocrew_shared::config::{Env, ProcessEnv};
use autocrew_tests::{TestDb, unique};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub(crate) struct WithDatabase(pub(crate) String);

impl Env for WithDatabase {
    fn get(&self, name: &str) -> Option<String> {
        match name {
            "DATABASE_URL" => Some(self.0.clone()),
            _ => ProcessEnv.get(name),
        }
    }
}

/// The app's HTTP side: JSON in and out, the bearer token when given.
pub(crate) struct App {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
}

impl App {
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> anyhow::Result<Value> {
        let (status, body) = self
            .send(reqwest::Method::GET, path, Some(token), None, None)
            .await?;
        anyhow::ensure!(status == 200, "GET {path} answered {status}: {body}");
        Ok(body)
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
        expect: u16,
    ) -> anyhow::Result<Value> {
        let key = uuid::Uuid::new_v4().to_string();
        let (status, answer) = self
            .send(reqwest::Method::POST, path, token, Some(body), Some(&key))
            .await?;
        anyhow::ensure!(status == expect, "POST {path} answered {status}: {answer}");
        Ok(answer)
    }
}

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads the socket until a message's event matches `wanted`, keeping every event seen.
pub(crate) async fn wait_for(
    socket: &mut Socket,
    seen: &mut Vec<Value>,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .with_context(|| format!("no {what} on the WebSocket within 120 s"))?
            .context("the WebSocket closed")??;
        let Message::Text(text) = message else {
            continue;
        };
        let message: Value = serde_json::from_str(&text)?;
        let event = message["event"].clone();
        seen.push(event.clone());
        if wanted(&event) {
            return Ok(event);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_app_signs_in_runs_a_command_live_approves_chats_and_signs_out() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let options = Options {
        root: std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
        prefix: unique("app"),
        port: 0,
        concurrency_per_queue: 10,
    };
    let runner = start(options, &WithDatabase(db.url())).await?;
    let app = App {
        http: reqwest::Client::new(),
        base: format!("http://{}", runner.addr),
    };
    let outcome = journey(&app).await;
    runner.stop().await;
    outcome
}

async fn journey(app: &App) -> anyhow::Result<()> {
    // 1. Sign up, then log in as the app does on a new device.
    let credentials = json!({"email": "ana@example.com", "password": "correct horse battery"});
    let signed_up = app
        .post("/auth/signup", None, credentials.clone(), 201)
        .await?;
    assert!(signed_up["access_token"].is_string());
    let session = app.post("/auth/login", None, credentials, 200).await?;
    let token = session["access_token"]
        .as_str()
        .context("access token")?
        .to_owned();
    let refresh = session["refresh_token"]
        .as_str()
        .context("refresh token")?
        .to_owned();
    let me = app.get("/me", &token).await?;
    assert_eq!(me["user"]["email"], "ana@example.com", "{me}");

    // 2. A project.
    let project = app
        .post(
            "/projects",
            Some(&token),
            json!({"name": "Keto recipes"}),
            201,
        )
        .await?;
    let project_id = project["id"].as_str().context("project id")?.to_owned();

    // 3. The socket follows the project; the command starts a run.
    let ws_url = format!("{}/ws?token={token}", app.base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await?;
    let subscribe = json!({"action": "subscribe", "project_id": project_id, "after_seq": 0});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await?;
    let started = app
        .post(
            &format!("/projects/{project_id}/commands"),
            Some(&token),
            json!({"command": "Build a recipe app for keto dieters", "budget_usd": 5}),
            202,
        )
        .await?;
    let run_id = started["run_id"].as_str().context("run id")?.to_owned();

    // 4. The publish waits for a person: read it, approve its exact payload.
    let mut seen = Vec::new();
    let requested = wait_for(&mut socket, &mut seen, "approval_requested", |e| {
        e["kind"] == "approval_requested"
    })
    .await?;
    let approval_id = requested["payload"]["approval_id"]
        .as_str()
        .or_else(|| requested["payload"]["id"].as_str())
        .with_context(|| format!("approval id in {requested}"))?
        .to_owned();
    let approval = app
        .get(&format!("/approvals/{approval_id}"), &token)
        .await?;
    let hash = approval["approval"]["payload_hash"]
        .as_str()
        .context("payload hash")?
        .to_owned();
    app.post(
        &format!("/approvals/{approval_id}"),
        Some(&token),
        json!({"decision": "approve", "payload_hash": hash}),
        200,
    )
    .await?;
    wait_for(&mut socket, &mut seen, "run_completed", |e| {
        e["kind"] == "run_completed" || e["kind"] == "run_failed"
    })
    .await
    .map(|e| assert_eq!(e["kind"], "run_completed", "{e}"))?;
    // Agents' output streamed live, and every logged event arrived: a push may race the
    // replay (arriving early or twice), so the app orders them by `seq`, with no gap.
    assert!(
        seen.iter()
            .any(|e| e["kind"] == "task_progress" && e.get("seq").is_none())
    );
    let mut seqs: Vec<i64> = seen.iter().filter_map(|e| e["seq"].as_i64()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());

    // 5. Runs and artifacts, as the lists show them; an artifact downloads.
    let runs = app.get("/runs?status=succeeded", &token).await?;
    assert_eq!(runs["items"][0]["id"], json!(run_id), "{runs}");
    let project_runs = app
        .get(&format!("/projects/{project_id}/runs"), &token)
        .await?;
    assert_eq!(project_runs["items"].as_array().map(Vec::len), Some(1));
    let tasks = app.get(&format!("/runs/{run_id}/tasks"), &token).await?;
    let tasks = tasks["tasks"]
        .as_array()
        .or(tasks["items"].as_array())
        .cloned()
        .unwrap_or_default();
    assert!(
        tasks.len() >= 6
            && tasks
                .iter()
                .all(|t| !t["attempts"].as_array().is_none_or(Vec::is_empty))
    );
    let artifacts = app
        .get(
            &format!("/projects/{project_id}/artifacts?run_id={run_id}"),
            &token,
        )
        .await?;
    let items = artifacts["items"].as_array().cloned().unwrap_or_default();
    assert!(items.len() >= 6, "{artifacts}");
    let url = items[0]["url"].as_str().context("download link")?;
    let file = app.http.get(url).send().await?;
    assert!(file.status().is_success());
    assert_eq!(
        file.bytes().await?.len() as u64,
        items[0]["size_bytes"].as_u64().unwrap_or(0)
    );

    // 6. Chat: the reply streams over the socket, then lands in the thread.
    let asked = app
        .post(
            &format!("/projects/{project_id}/messages"),
            Some(&token),
            json!({"text": "What did the crew make, and what did it cost?"}),
            202,
        )
        .await?;
    let reply_id = asked["reply"]["id"].clone();
    wait_for(&mut socket, &mut seen, "reply_progress", |e| {
        e["kind"] == "reply_progress" && e["payload"]["message_id"] == reply_id
    })
    .await?;
    let posted = wait_for(&mut socket, &mut seen, "the reply", |e| {
        e["kind"] == "message_posted" && e["payload"]["message"]["id"] == reply_id
    })
    .await?;
    let reply = posted["payload"]["message"]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(reply.contains("has 1 run"), "{reply}");
    let thread = app
        .get(&format!("/projects/{project_id}/messages"), &token)
        .await?;
    assert_eq!(
        thread["items"].as_array().map(Vec::len),
        Some(2),
        "{thread}"
    );

    // 7. Analytics and costs over this month.
    let analytics = app.get("/analytics", &token).await?;
    assert!(
        analytics.to_string().contains("success_rate"),
        "{analytics}"
    );
    let costs = app.get("/costs?by=agent", &token).await?;
    assert!(costs.to_string().contains("orchestrator"), "{costs}");

    // 8. Refresh, then log out: the refreshed session ends, and its token no longer works.
    let refreshed = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
            200,
        )
        .await?;
    let next = refreshed["refresh_token"]
        .as_str()
        .context("rotated token")?
        .to_owned();
    assert_ne!(next, refresh);
    let (status, _) = app
        .send(
            reqwest::Method::POST,
            "/auth/logout",
            None,
            Some(json!({"refresh_token": next})),
            None,
        )
        .await?;
    assert_eq!(status, 204);
    let (status, _) = app
        .send(
            reqwest::Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": next})),
            None,
        )
        .await?;
    assert_eq!(status, 401);
    socket.close(None).await?;
    Ok(())
}
