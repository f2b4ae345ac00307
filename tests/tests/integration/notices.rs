//! Notices: push notifications through Expo's Push API (the fake checks each request
//! against the documented format) and signed webhooks to the user's own URL.
//! - End to end on the local runner: a run asks for approval and finishes; both reach the
//!   registered phone, the finish reaches the webhook signed, and the devices Expo says are
//!   gone (at send, or in a receipt read later) are dropped; another user reaches none of it;
//!   a webhook URL into private space is refused.
//! - The delivery rules on the stores: an Expo outage and a failing URL are retried with
//!   backoff, a URL that never answers 2xx fails after its attempts, a muted kind pushes
//!   nothing, a pruned event is not sent.

use crate::app_journey::{App, Socket, wait_for};
use anyhow::Context;
use autocrew_runner::{Options, start};
use autocrew_shared::adapters::expo_push::ExpoPush;
use autocrew_shared::adapters::postgres::{PgEventLog, PgNotices, PgProjectStore};
use autocrew_shared::adapters::webhooks::HttpWebhooks;
use autocrew_shared::config::{Env, ProcessEnv};
use autocrew_shared::domain::events::{EventBody, RunEnded};
use autocrew_shared::domain::notices::{DeliveryStatus, PushSettings, UrlPolicy};
use autocrew_shared::domain::{EventKind, signature};
use autocrew_shared::ports::{EventLog, NewDevice, NewWebhook, NoticeStore, ProjectStore};
use autocrew_shared::services::notices::Deliverer;
use autocrew_tests::fakes::{self, Fake};
use autocrew_tests::{TestDb, repo_root, unique};
use axum::http::{HeaderMap, StatusCode};
use futures::SinkExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const PHONE: &str = "ExponentPushToken[anaPhone0000000000000a]";
const OLD_TABLET: &str = "ExponentPushToken[anaOldTablet000000000b]";
const SOLD_PHONE: &str = "ExponentPushToken[anaSoldPhone000000000c]";

/// A URL of the user's own that records what it gets and answers each post with the next
/// status of its script (200 once the script runs out).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    script: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> anyhow::Result<(Receiver, String)> {
        let receiver = Receiver {
            got: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().rev().copied().collect())),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}/hooks/autocrew", listener.local_addr()?);
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hooks/autocrew",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    if let Ok(mut got) = state.got.lock() {
                        got.push((headers, body));
                    }
                    let status = state.script.lock().ok().and_then(|mut s| s.pop());
                    StatusCode::from_u16(status.unwrap_or(200)).unwrap_or(StatusCode::OK)
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((receiver, url))
    }

    fn got(&self) -> Vec<(HeaderMap, String)> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// The process environment with the database and the fake Expo over it.
struct Overrides(HashMap<&'static str, String>);

impl Env for Overrides {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned().or_else(|| ProcessEnv.get(name))
    }
}

/// Waits until `check` holds, for up to 60 s.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = check() {
            return Ok(found);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_pushes_its_approval_and_its_end_to_the_phone_and_signs_its_end_to_the_webhook()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (fake, url) = fakes::start().await?;
    let (receiver, hook_url) = Receiver::start(&[]).await?;
    let env = Overrides(HashMap::from([
        ("DATABASE_URL", db.url()),
        ("EXPO_PUSH_URL", format!("{url}/expo/push")),
        // Receipts are read at the first delivery round after the send.
        ("PUSH_RECEIPT_DELAY_SECONDS", "0".to_owned()),
    ]));
    let options = Options {
        root: repo_root(),
        prefix: unique("notices"),
        port: 0,
        concurrency_per_queue: 10,
    };
    let runner = start(options, &env).await?;
    let app = App {
        http: reqwest::Client::new(),
        base: format!("http://{}", runner.addr),
    };
    let outcome = journey(&app, &fake, (&receiver, &hook_url)).await;
    runner.stop().await;
    outcome
}

async fn sign_up(app: &App, email: &str) -> anyhow::Result<String> {
    let credentials = json!({"email": email, "password": "correct horse battery"});
    let session = app.post("/auth/signup", None, credentials, 201).await?;
    Ok(session["access_token"]
        .as_str()
        .context("token")?
        .to_owned())
}

async fn journey(
    app: &App,
    fake: &Fake,
    (receiver, hook_url): (&Receiver, &str),
) -> anyhow::Result<()> {
    let ana = sign_up(app, "ana@example.com").await?;
    let ben = sign_up(app, "ben@example.com").await?;
    // Three devices: the phone in her pocket, a tablet uninstalled since (Expo takes the
    // push; its receipt says the device is gone), and a phone she sold (refused at send).
    fake.expo_device_gone(OLD_TABLET, false);
    fake.expo_device_gone(SOLD_PHONE, true);
    let mut phone_id = String::new();
    for (token, name) in [
        (PHONE, "Ana's iPhone"),
        (OLD_TABLET, "Old tablet"),
        (SOLD_PHONE, "Sold phone"),
    ] {
        let device = app
            .post(
                "/me/devices",
                Some(&ana),
                json!({"token": token, "platform": "ios", "name": name}),
                201,
            )
            .await?;
        if token == PHONE {
            phone_id = device["id"].as_str().context("device id")?.to_owned();
        }
    }
    // The same token again is the same device (200), and a token of another form is refused.
    app.post("/me/devices", Some(&ana), json!({"token": PHONE}), 200)
        .await?;
    app.post("/me/devices", Some(&ana), json!({"token": "fcm:abc"}), 400)
        .await?;
    // Webhooks: refused into private space or over plain http to the world; her own
    // (loopback, which local mode allows) gets run ends.
    for refused in [
        "https://10.0.0.7/hook",
        "https://169.254.169.254/latest/meta-data",
        "http://hooks.example.com/x",
        "https://[fd00::1]/x",
        "ftp://hooks.example.com/x",
    ] {
        let body = json!({"url": refused, "kinds": ["run_completed"]});
        let (status, answer) = app
            .send(
                reqwest::Method::POST,
                "/me/webhooks",
                Some(&ana),
                Some(body),
                None,
            )
            .await?;
        assert_eq!(status, 400, "{refused}: {answer}");
        assert_eq!(answer["field"], "url", "{answer}");
    }
    let streaming = json!({"url": hook_url, "kinds": ["task_progress"]});
    app.post("/me/webhooks", Some(&ana), streaming, 400).await?;
    let webhook = app
        .post(
            "/me/webhooks",
            Some(&ana),
            json!({"url": hook_url, "kinds": ["run_completed", "run_failed"], "description": "ops"}),
            201,
        )
        .await?;
    let webhook_id = webhook["id"].as_str().context("webhook id")?.to_owned();
    let secret = webhook["secret"]
        .as_str()
        .context("the secret, shown once")?
        .to_owned();
    let listed = app.get("/me/webhooks", &ana).await?;
    assert!(listed["webhooks"][0].get("secret").is_none(), "{listed}");
    // Ben reaches none of Ana's.
    for (method, path) in [
        (
            reqwest::Method::DELETE,
            format!("/me/webhooks/{webhook_id}"),
        ),
        (
            reqwest::Method::GET,
            format!("/me/webhooks/{webhook_id}/deliveries"),
        ),
        (reqwest::Method::DELETE, format!("/me/devices/{phone_id}")),
    ] {
        let (status, _) = app.send(method, &path, Some(&ben), None, None).await?;
        assert_eq!(status, 404, "Ben: {path}");
    }

    // A run: the publish asks for approval (a push), then the run ends (a push, a webhook).
    let project = app
        .post(
            "/projects",
            Some(&ana),
            json!({"name": "Keto recipes"}),
            201,
        )
        .await?;
    let project_id = project["id"].as_str().context("project id")?.to_owned();
    let mut socket = follow(app, &ana, &project_id).await?;
    app.post(
        &format!("/projects/{project_id}/commands"),
        Some(&ana),
        json!({"command": "Build a recipe app for keto dieters", "budget_usd": 5}),
        202,
    )
    .await?;
    let mut seen = Vec::new();
    let requested = wait_for(&mut socket, &mut seen, "approval_requested", |e| {
        e["kind"] == "approval_requested"
    })
    .await?;
    let approval_id = requested["payload"]["approval_id"]
        .as_str()
        .context("approval id")?
        .to_owned();
    let asked = eventually("the approval's push", || {
        fake.expo_pushes()
            .into_iter()
            .find(|p| p.to == PHONE && p.message["data"]["kind"] == "approval_requested")
    })
    .await?;
    assert_eq!(asked.message["title"], "Keto recipes: approval needed");
    assert_eq!(asked.message["data"]["approval_id"], approval_id.as_str());
    let approval = app.get(&format!("/approvals/{approval_id}"), &ana).await?;
    let hash = approval["approval"]["payload_hash"]
        .as_str()
        .context("hash")?;
    app.post(
        &format!("/approvals/{approval_id}"),
        Some(&ana),
        json!({"decision": "approve", "payload_hash": hash}),
        200,
    )
    .await?;
    let ended = wait_for(&mut socket, &mut seen, "the run's end", |e| {
        e["kind"] == "run_completed" || e["kind"] == "run_failed"
    })
    .await?;
    assert_eq!(ended["kind"], "run_completed", "{ended}");
    let finished = eventually("the run's push", || {
        fake.expo_pushes()
            .into_iter()
            .find(|p| p.to == PHONE && p.message["data"]["kind"] == "run_completed")
    })
    .await?;
    assert_eq!(finished.message["title"], "Keto recipes: run finished");
    assert_eq!(finished.message["data"]["run_id"], ended["run_id"]);

    // The webhook got the run's end once, signed with its secret.
    let (headers, body) = eventually("the webhook delivery", || {
        receiver.got().into_iter().find(|(h, _)| {
            h.get("autocrew-event").and_then(|v| v.to_str().ok()) == Some("run_completed")
        })
    })
    .await?;
    let signed = headers
        .get("autocrew-signature")
        .and_then(|v| v.to_str().ok());
    signature::verify(
        signed,
        body.as_bytes(),
        std::slice::from_ref(&secret),
        chrono::Utc::now(),
    )
    .map_err(|e| anyhow::anyhow!("the delivery's signature: {e}"))?;
    assert!(
        signature::verify(
            signed,
            body.as_bytes(),
            &["whsec_other".to_owned()],
            chrono::Utc::now()
        )
        .is_err()
    );
    let delivered: Value = serde_json::from_str(&body)?;
    assert_eq!(delivered["type"], "run_completed");
    assert_eq!(delivered["event"]["run_id"], ended["run_id"]);
    assert_eq!(delivered["event"]["seq"], ended["seq"]);
    assert_eq!(
        headers
            .get("autocrew-delivery")
            .and_then(|v| v.to_str().ok()),
        delivered["delivery_id"].as_str()
    );
    let deliveries = app
        .get(&format!("/me/webhooks/{webhook_id}/deliveries"), &ana)
        .await?;
    let first = &deliveries["deliveries"][0];
    assert_eq!(first["status"], "delivered", "{deliveries}");
    assert_eq!(first["attempts"][0]["status_code"], 200, "{deliveries}");

    // Expo said two devices are gone: both were dropped, the phone stays.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let devices = loop {
        let devices = app.get("/me/devices", &ana).await?;
        if devices["devices"].as_array().is_some_and(|d| d.len() == 1) {
            break devices;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the gone devices were not dropped: {devices}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(devices["devices"][0]["token"], PHONE);
    assert!(
        fake.expo_receipts_asked().len() >= 2,
        "the taken pushes' receipts were read"
    );
    let sold_sends = fake
        .expo_pushes()
        .iter()
        .filter(|p| p.to == SOLD_PHONE)
        .count();
    assert_eq!(
        sold_sends, 1,
        "refused once at send, then never sent to again"
    );
    Ok(())
}

async fn follow(app: &App, token: &str, project: &str) -> anyhow::Result<Socket> {
    let ws_url = format!("{}/ws?token={token}", app.base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await?;
    let subscribe = json!({"action": "subscribe", "project_id": project, "after_seq": 0});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await?;
    Ok(socket)
}

/// Makes every pending notice due now, as if its backoff had passed.
async fn fast_forward(db: &TestDb) -> anyhow::Result<()> {
    let client = db.pool.get().await?;
    client
        .batch_execute(
            "UPDATE push_messages SET next_attempt_at = now() WHERE status = 'pending';
             UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'pending';",
        )
        .await?;
    Ok(())
}

fn run_completed() -> EventBody {
    EventBody::RunCompleted(RunEnded {
        completed_tasks: Some(3),
        tasks: Some(3),
        ..RunEnded::default()
    })
}

#[tokio::test]
async fn outages_and_failing_urls_are_retried_with_backoff_and_muted_kinds_push_nothing()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (fake, url) = fakes::start().await?;
    // The URL fails twice, then takes it.
    let (receiver, hook_url) = Receiver::start(&[500, 503]).await?;
    let (never, never_url) = Receiver::start(&[500; 20]).await?;
    let store = Arc::new(PgNotices::new(db.pool.clone()));
    let deliverer = Deliverer {
        store: store.clone(),
        push: Arc::new(ExpoPush::new(&format!("{url}/expo/push"), None)?),
        webhooks: Arc::new(HttpWebhooks::new(UrlPolicy {
            allow_loopback: true,
        })?),
        receipt_delay: Duration::from_secs(900),
    };
    let projects = PgProjectStore::new(db.pool.clone());
    let ana = projects.create_user("ana@example.com", "Ana").await?;
    let project = projects.create_project(ana.id, "Keto", "").await?;
    store
        .register_device(
            ana.id,
            &NewDevice {
                token: PHONE.into(),
                platform: None,
                name: None,
            },
        )
        .await?;
    let hook = |url: &str| NewWebhook {
        url: url.to_owned(),
        kinds: vec![EventKind::RunCompleted],
        description: String::new(),
        secret: format!("whsec_{}", uuid::Uuid::new_v4().simple()),
    };
    let webhook = store.create_webhook(ana.id, &hook(&hook_url)).await?;
    let doomed = store.create_webhook(ana.id, &hook(&never_url)).await?;
    let log = PgEventLog::new(db.pool.clone());
    log.append(project.id, None, run_completed()).await?;

    // Round 1: Expo is down, the URL answers 500.
    fake.expo_push_outage(1);
    let first = deliverer.deliver_due(Duration::from_secs(30)).await?;
    assert_eq!(
        (
            first.pushes_sent,
            first.pushes_later,
            first.webhooks_failed_attempts
        ),
        (0, 1, 2),
        "{first:?}"
    );
    // Nothing is due again until its backoff passed.
    let idle = deliverer.deliver_due(Duration::from_secs(30)).await?;
    assert_eq!(idle, Default::default(), "{idle:?}");
    let pending = store
        .deliveries(ana.id, webhook.id, 10)
        .await?
        .context("mine")?;
    let next = pending[0].next_attempt_at.context("a next attempt")?;
    let wait = (next - chrono::Utc::now()).num_seconds();
    assert!(
        (20..=31).contains(&wait),
        "30 s after the first failure, not {wait}"
    );

    // Round 2: the push goes; the URL answers 503. Round 3: the URL takes it.
    fast_forward(&db).await?;
    let second = deliverer.deliver_due(Duration::from_secs(30)).await?;
    assert_eq!(second.pushes_sent, 1, "{second:?}");
    fast_forward(&db).await?;
    let third = deliverer.deliver_due(Duration::from_secs(30)).await?;
    assert_eq!(third.webhooks_delivered, 1, "{third:?}");
    let deliveries = store
        .deliveries(ana.id, webhook.id, 10)
        .await?
        .context("mine")?;
    assert_eq!(deliveries[0].status, DeliveryStatus::Delivered);
    let codes: Vec<Option<i32>> = deliveries[0]
        .attempts
        .iter()
        .map(|a| a.status_code)
        .collect();
    assert_eq!(codes, [Some(500), Some(503), Some(200)]);
    // Every attempt sent the same body under its delivery id, each signed anew.
    let got = receiver.got();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|(_, body)| *body == got[0].1));
    let secret = store_secret(&db, webhook.id.0).await?;
    for (headers, body) in &got {
        let signed = headers
            .get("autocrew-signature")
            .and_then(|v| v.to_str().ok());
        signature::verify(
            signed,
            body.as_bytes(),
            std::slice::from_ref(&secret),
            chrono::Utc::now(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }

    // A URL that never takes it fails after 8 attempts, and is not tried again.
    for _ in 0..8 {
        fast_forward(&db).await?;
        deliverer.deliver_due(Duration::from_secs(30)).await?;
    }
    let failed = store
        .deliveries(ana.id, doomed.id, 10)
        .await?
        .context("mine")?;
    assert_eq!(failed[0].status, DeliveryStatus::Failed);
    assert_eq!(failed[0].attempts.len(), 8);
    assert_eq!(never.got().len(), 8);

    // Muted: the next run's end pushes nothing (the webhook still gets it).
    let settings = PushSettings {
        run_completed: false,
        ..store.push_settings(ana.id).await?
    };
    store.set_push_settings(ana.id, &settings).await?;
    let before = fake.expo_pushes().len();
    log.append(project.id, None, run_completed()).await?;
    fast_forward(&db).await?;
    let muted = deliverer.deliver_due(Duration::from_secs(30)).await?;
    assert_eq!(fake.expo_pushes().len(), before, "{muted:?}");
    assert_eq!(muted.webhooks_delivered, 1, "{muted:?}");

    // An event pruned before its delivery is not sent, and says why.
    store
        .set_push_settings(ana.id, &PushSettings::from_muted(&[]))
        .await?;
    let pruned = log.append(project.id, None, run_completed()).await?;
    let client = db.pool.get().await?;
    client
        .execute(
            "DELETE FROM events WHERE project_id = $1 AND seq = $2",
            &[&project.id.0, &pruned.seq],
        )
        .await?;
    let gone = deliverer.deliver_due(Duration::from_secs(30)).await?;
    assert_eq!((gone.pushes_refused, gone.pushes_sent), (1, 0), "{gone:?}");
    let latest = store
        .deliveries(ana.id, webhook.id, 1)
        .await?
        .context("mine")?;
    assert_eq!(latest[0].status, DeliveryStatus::Failed);
    assert!(
        latest[0].attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("pruned")),
        "{latest:?}"
    );
    Ok(())
}

async fn store_secret(db: &TestDb, webhook: uuid::Uuid) -> anyhow::Result<String> {
    let client = db.pool.get().await?;
    let row = client
        .query_one("SELECT secret FROM webhooks WHERE id = $1", &[&webhook])
        .await?;
    Ok(row.try_get(0)?)
}
