//! The WebSocket routes, called with the payloads in `events/` (pushes go to a local
//! `@connections` server), and the protocol over a real socket through the local runner:
//! one connection following three projects, ping, errors that leave it open, and a token
//! that expires closing it.

use crate::app_journey::{App, Socket, WithDatabase};
use crate::push::management_api;
use anyhow::Context;
use autocrew_runner::{Options, start};
use autocrew_shared::adapters::postgres::{PgEventLog, PgProjectStore};
use autocrew_shared::domain::events::{EventBody, RunCreated};
use autocrew_shared::ports::{EventLog, ProjectStore};
use autocrew_shared::services::access::{KeyRing, SigningKeys};
use autocrew_tests::{TestDb, create_connections_table, repo_root, sdk, unique};
use autocrew_ws::{WsRoute, WsState, handle};
use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn ws_event(file: &str, swaps: &[(&str, &str)]) -> anyhow::Result<ApiGatewayWebsocketProxyRequest> {
    let mut text =
        std::fs::read_to_string(format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR")))?;
    for (from, to) in swaps {
        text = text.replace(from, to);
    }
    Ok(serde_json::from_str(&text)?)
}

#[tokio::test]
async fn a_client_connects_with_its_token_subscribes_and_gets_every_missed_event()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let sdk = sdk().await?;
    let table = unique("connections");
    create_connections_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await?;
    let (callback_url, seen) = management_api().await?;
    let keys = std::sync::Arc::new(KeyRing::fixed(
        SigningKeys::parse(&SigningKeys::generate("k1")).map_err(anyhow::Error::msg)?,
    ));
    let state = WsState::assemble(db.pool.clone(), &sdk, keys.clone(), &table, &callback_url);
    let user = PgProjectStore::new(db.pool.clone())
        .create_user("ana@example.com", "Ana")
        .await?;
    let token = keys.issue(user.id).access_token;
    let project = PgProjectStore::new(db.pool.clone())
        .create_project(user.id, "Keto", "")
        .await?;
    let log = PgEventLog::new(db.pool.clone());
    for i in 0..3 {
        log.append(project.id, None, created(i)).await?;
    }
    let project_id = project.id.to_string();

    let refused = handle(&state, WsRoute::Connect, ws_event("ws-connect.json", &[])?).await;
    let accepted = handle(
        &state,
        WsRoute::Connect,
        ws_event("ws-connect.json", &[("sample.access.token", &token)])?,
    )
    .await;
    let subscribe = ws_event(
        "ws-default-subscribe.json",
        &[
            ("6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21", &project_id),
            ("\\\"after_seq\\\": 0", "\\\"after_seq\\\": 1"),
        ],
    )?;
    let subscribed = handle(&state, WsRoute::Default, subscribe).await;
    let ping = handle(
        &state,
        WsRoute::Default,
        ws_event("ws-default-ping.json", &[])?,
    )
    .await;
    let live = state.notifier.emit(project.id, None, created(3)).await?;
    let disconnected = handle(
        &state,
        WsRoute::Disconnect,
        ws_event("ws-disconnect.json", &[])?,
    )
    .await;
    state.notifier.emit(project.id, None, created(4)).await?;

    assert_eq!(
        refused.status_code, 401,
        "the sample token is not a real one"
    );
    assert_eq!(
        (
            accepted.status_code,
            subscribed.status_code,
            disconnected.status_code
        ),
        (200, 200, 200)
    );
    let pushed: Vec<Value> = seen
        .lock()
        .expect("log")
        .iter()
        .map(|s| serde_json::from_slice(&s.body).unwrap_or(Value::Null))
        .collect();
    let seqs: Vec<i64> = pushed
        .iter()
        .filter(|m| m["type"] == "event")
        .filter_map(|m| m["event"]["seq"].as_i64())
        .collect();
    assert_eq!(
        seqs,
        [2, 3, live.seq],
        "events after seq 1 are replayed, then pushed live, then nothing after disconnect"
    );
    assert!(
        pushed
            .iter()
            .any(|m| m["type"] == "subscribed" && m["last_seq"] == 3)
    );
    assert_eq!(ping.status_code, 200);
    assert!(
        pushed
            .iter()
            .any(|m| m["type"] == "pong" && m["id"] == "heartbeat-1"),
        "{pushed:?}"
    );
    assert!(seen.lock().expect("log").iter().all(|s| s.path.ends_with("Qv3NnczGoAMCKzQ%3D") || s.path.ends_with("Qv3NnczGoAMCKzQ=")));
    Ok(())
}

/// A `run_created` event, numbered.
fn created(i: u32) -> EventBody {
    EventBody::RunCreated(RunCreated {
        command: format!("command {i}"),
        deadline_at: None,
    })
}

/// Sends one client message.
async fn say(socket: &mut Socket, message: Value) -> anyhow::Result<()> {
    socket
        .send(Message::Text(message.to_string().into()))
        .await?;
    Ok(())
}

/// Reads frames until one matches `wanted`; `None` when the socket closes first (with the
/// close frame's code).
async fn until(
    socket: &mut Socket,
    what: &str,
    mut wanted: impl FnMut(&Value) -> bool,
) -> anyhow::Result<Result<Value, Option<u16>>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .with_context(|| format!("no {what} on the WebSocket within 60 s"))?;
        let text = match message {
            Some(Ok(Message::Text(text))) => text.to_string(),
            Some(Ok(Message::Close(frame))) => return Ok(Err(frame.map(|f| u16::from(f.code)))),
            None => return Ok(Err(None)),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        };
        let frame: Value = serde_json::from_str(&text)?;
        if wanted(&frame) {
            return Ok(Ok(frame));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_socket_follows_three_projects_answers_pings_and_errors_and_closes_when_its_token_expires()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let prefix = unique("wsproto");
    let options = Options {
        root: repo_root(),
        prefix: prefix.clone(),
        port: 0,
        concurrency_per_queue: 10,
    };
    let runner = start(options, &WithDatabase(db.url())).await?;
    let app = App {
        http: reqwest::Client::new(),
        base: format!("http://{}", runner.addr),
    };
    let outcome = protocol(&app, &prefix).await;
    runner.stop().await;
    outcome
}

async fn protocol(app: &App, prefix: &str) -> anyhow::Result<()> {
    let sign_up = |email: &'static str| async move {
        let credentials = json!({"email": email, "password": "correct horse battery"});
        let session = app.post("/auth/signup", None, credentials, 201).await?;
        anyhow::Ok(
            session["access_token"]
                .as_str()
                .context("token")?
                .to_owned(),
        )
    };
    let ana = sign_up("ana@example.com").await?;
    let ben = sign_up("ben@example.com").await?;
    let mut projects = Vec::new();
    for name in ["Keto recipes", "Dog walking", "Tax helper"] {
        let project = app
            .post("/projects", Some(&ana), json!({"name": name}), 201)
            .await?;
        projects.push(project["id"].as_str().context("project id")?.to_owned());
    }
    let ws = app.base.replacen("http", "ws", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws}/ws?token={ana}")).await?;
    for project in &projects {
        say(
            &mut socket,
            json!({"action": "subscribe", "project_id": project}),
        )
        .await?;
        until(&mut socket, "subscribed", |f| {
            f["type"] == "subscribed" && f["project_id"] == *project
        })
        .await?
        .map_err(|code| anyhow::anyhow!("closed ({code:?}) before subscribing"))?;
    }
    for project in &projects {
        let command = json!({"command": "Build a landing page", "budget_usd": 1});
        app.post(
            &format!("/projects/{project}/commands"),
            Some(&ana),
            command,
            202,
        )
        .await?;
    }
    // Every project's plan arrives on the one socket.
    let mut planned = HashSet::new();
    until(&mut socket, "the three plans", |f| {
        if f["type"] == "event" && f["event"]["kind"] == "run_planned" {
            planned.insert(f["event"]["project_id"].as_str().unwrap_or("").to_owned());
        }
        planned.len() == 3
    })
    .await?
    .map_err(|code| anyhow::anyhow!("closed ({code:?}) before the plans"))?;
    assert_eq!(planned, projects.iter().cloned().collect::<HashSet<_>>());

    // Errors leave the socket open; pings are answered with their id.
    for (frame, code) in [
        (json!("not json at all"), "not_json"),
        (json!({"action": "dance"}), "unknown_action"),
        (
            json!({"action": "subscribe", "project_id": 7}),
            "invalid_message",
        ),
    ] {
        let text = frame.as_str().map_or(frame.to_string(), str::to_owned);
        socket.send(Message::Text(text.into())).await?;
        let error = until(&mut socket, "the error", |f| f["type"] == "error").await?;
        assert_eq!(error.map(|e| e["code"].clone()).ok(), Some(json!(code)));
        say(&mut socket, json!({"action": "ping", "id": code})).await?;
        let pong = until(&mut socket, "the pong", |f| f["type"] == "pong").await?;
        assert_eq!(pong.map(|p| p["id"].clone()).ok(), Some(json!(code)));
    }
    // Another user's project is not found; Ben's socket follows nothing of Ana's.
    let (mut bens, _) = tokio_tungstenite::connect_async(format!("{ws}/ws?token={ben}")).await?;
    say(
        &mut bens,
        json!({"action": "subscribe", "project_id": projects[0]}),
    )
    .await?;
    let refused = until(&mut bens, "the refusal", |f| f["type"] != "event").await?;
    assert_eq!(
        refused.map(|f| f["code"].clone()).ok(),
        Some(json!("not_found"))
    );
    say(
        &mut socket,
        json!({"action": "unsubscribe", "project_id": projects[1]}),
    )
    .await?;
    let unsubscribed = until(&mut socket, "unsubscribed", |f| f["type"] == "unsubscribed").await?;
    assert_eq!(
        unsubscribed.map(|f| f["followed"].clone()).ok(),
        Some(json!(true))
    );

    // A token that expires in 3 s: the socket it opened is closed with the documented code.
    let secret = aws_sdk_secretsmanager::Client::new(&sdk().await?)
        .get_secret_value()
        .secret_id(format!("{prefix}-JwtSigningKeys"))
        .send()
        .await?
        .secret_string
        .context("the signing secret")?;
    let keys = SigningKeys::parse(&secret).map_err(anyhow::Error::msg)?;
    let ana_id = autocrew_shared::domain::UserId::parse("sub", &claims_sub(&ana)?)?;
    let now = autocrew_shared::services::access::now_secs();
    let short = keys.issue(ana_id, now - 900 + 3).access_token;
    let (mut brief, _) = tokio_tungstenite::connect_async(format!("{ws}/ws?token={short}")).await?;
    say(
        &mut brief,
        json!({"action": "subscribe", "project_id": projects[0]}),
    )
    .await?;
    until(&mut brief, "subscribed", |f| f["type"] == "subscribed")
        .await?
        .map_err(|code| anyhow::anyhow!("closed ({code:?}) before subscribing"))?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    say(&mut brief, json!({"action": "ping"})).await?;
    let closing = until(&mut brief, "the closing frame", |f| f["type"] == "closing").await?;
    assert_eq!(closing.map(|f| f["code"].clone()).ok(), Some(json!(4401)));
    let closed = until(&mut brief, "the close", |_| false).await?;
    assert_eq!(
        closed.err(),
        Some(Some(1000)),
        "closed as API Gateway closes"
    );
    Ok(())
}

/// The user an access token names (its payload's `sub`), read without verifying.
fn claims_sub(token: &str) -> anyhow::Result<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1).context("a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    let claims: Value = serde_json::from_slice(&bytes)?;
    Ok(claims["sub"].as_str().context("sub")?.to_owned())
}
