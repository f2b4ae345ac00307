//! The WebSocket routes, called with the payloads in `events/`; pushes go to a local
//! `@connections` server.

use crate::push::management_api;
use autocrew_shared::adapters::postgres::{PgEventLog, PgProjectStore};
use autocrew_shared::domain::events::{EventBody, RunCreated};
use autocrew_shared::ports::{EventLog, ProjectStore};
use autocrew_shared::services::access::{KeyRing, SigningKeys};
use autocrew_tests::{TestDb, create_connections_table, sdk, unique};
use autocrew_ws::{WsRoute, WsState, handle};
use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use serde_json::Value;

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
