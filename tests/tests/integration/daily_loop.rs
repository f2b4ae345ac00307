//! The daily marketing loop end to end on the local runner, as the app sees it over HTTP
//! and the WebSocket, with X and LinkedIn played by the stateful fakes: the first run posts
//! the launch, which gives the project its daily schedule (08:00 in the user's time zone);
//! the runner fires it; the marketer learns from the launch posts' engagement (fetched from
//! X's and LinkedIn's metrics endpoints), posts on the day's topics (the X post waits for
//! approval), and the morning report arrives over the WebSocket.

use crate::app_journey::{App, wait_for};
use anyhow::Context;
use autocrew_runner::{Options, start};
use autocrew_shared::config::{Env, ProcessEnv};
use autocrew_tests::fakes::{self, Fake};
use autocrew_tests::{TestDb, unique};
use chrono::Utc;
use futures::SinkExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use tokio_tungstenite::tungstenite::Message;

const X: (&str, &str, &str) = ("x", "x-ana-token-0123456789abcdef", "ana_builds");
const LINKEDIN: (&str, &str, &str) = ("linkedin", "AQVanaLinkedinToken0123456789", "Ana Lima");

/// The process environment with the database and the fake services' URLs over it.
struct Overrides(HashMap<&'static str, String>);

impl Env for Overrides {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned().or_else(|| ProcessEnv.get(name))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_launched_project_gets_its_daily_loop_which_posts_with_approval_and_reports_over_the_websocket()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (fake, url) = fakes::start().await?;
    for (service, token, account) in [X, LINKEDIN] {
        fake.accept(service, token, account);
    }
    let env = Overrides(HashMap::from([
        ("DATABASE_URL", db.url()),
        ("X_API_URL", format!("{url}/x")),
        ("LINKEDIN_API_URL", format!("{url}/linkedin")),
    ]));
    let options = Options {
        root: std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
        prefix: unique("daily"),
        port: 0,
        concurrency_per_queue: 10,
    };
    let runner = start(options, &env).await?;
    let app = App {
        http: reqwest::Client::new(),
        base: format!("http://{}", runner.addr),
    };
    let outcome = daily_loop(&app, &fake).await;
    runner.stop().await;
    outcome
}

async fn put(app: &App, path: &str, token: &str, body: Value) -> anyhow::Result<Value> {
    let (status, answer) = app
        .send(reqwest::Method::PUT, path, Some(token), Some(body), None)
        .await?;
    anyhow::ensure!(status == 200, "PUT {path} answered {status}: {answer}");
    Ok(answer)
}

async fn patch(app: &App, path: &str, token: &str, body: Value) -> anyhow::Result<Value> {
    let (status, answer) = app
        .send(reqwest::Method::PATCH, path, Some(token), Some(body), None)
        .await?;
    anyhow::ensure!(status == 200, "PATCH {path} answered {status}: {answer}");
    Ok(answer)
}

async fn daily_loop(app: &App, fake: &Fake) -> anyhow::Result<()> {
    // Ana, in Paris, connects X and LinkedIn and lets the launch go out without asking.
    let credentials = json!({"email": "ana@example.com", "password": "correct horse battery"});
    let session = app.post("/auth/signup", None, credentials, 201).await?;
    let token = session["access_token"]
        .as_str()
        .context("token")?
        .to_owned();
    patch(app, "/me", &token, json!({"timezone": "Europe/Paris"})).await?;
    for (service, service_token, _) in [X, LINKEDIN] {
        app.post(
            "/me/connections",
            Some(&token),
            json!({"service": service, "token": service_token}),
            201,
        )
        .await?;
    }
    for tool in ["publish", "post_to_x", "post_to_linkedin"] {
        put(
            app,
            &format!("/me/policies/{tool}"),
            &token,
            json!({"approval": "auto"}),
        )
        .await?;
    }
    let project = app
        .post(
            "/projects",
            Some(&token),
            json!({"name": "Keto recipes"}),
            201,
        )
        .await?;
    let project_id = project["id"].as_str().context("project id")?.to_owned();
    let ws_url = format!("{}/ws?token={token}", app.base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await?;
    let subscribe = json!({"action": "subscribe", "project_id": project_id, "after_seq": 0});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await?;

    // 1. The launch: the first run posts on X and LinkedIn.
    app.post(
        &format!("/projects/{project_id}/commands"),
        Some(&token),
        json!({"command": "Build a recipe app for keto dieters", "budget_usd": 5}),
        202,
    )
    .await?;
    let mut seen = Vec::new();
    let ended = wait_for(&mut socket, &mut seen, "the launch run's end", |e| {
        e["kind"] == "run_completed" || e["kind"] == "run_failed"
    })
    .await?;
    assert_eq!(ended["kind"], "run_completed", "{ended}");
    let launch_posts: Vec<String> = {
        let x = fake.x.lock().unwrap_or_else(|e| e.into_inner());
        let linkedin = fake.linkedin.lock().unwrap_or_else(|e| e.into_inner());
        x.posts
            .iter()
            .map(|p| p.text.clone())
            .chain(linkedin.posts.iter().map(|p| p.text.clone()))
            .collect()
    };
    assert_eq!(launch_posts.len(), 2, "{launch_posts:?}");

    // 2. The launch gave the project its daily loop: 08:00 in Paris.
    let listed = app
        .get(&format!("/projects/{project_id}/schedules"), &token)
        .await?;
    let schedules = listed["schedules"].as_array().cloned().unwrap_or_default();
    assert_eq!(schedules.len(), 1, "{listed}");
    let schedule = &schedules[0];
    assert_eq!(
        (
            schedule["kind"].as_str(),
            schedule["expression"].as_str(),
            schedule["timezone"].as_str()
        ),
        (
            Some("daily_loop"),
            Some("cron(0 8 * * ? *)"),
            Some("Europe/Paris")
        ),
        "{schedule}"
    );
    let next: chrono::DateTime<Utc> = serde_json::from_value(schedule["next_fire_at"].clone())?;
    let paris = next.with_timezone(&chrono_tz::Europe::Paris);
    assert_eq!(paris.format("%H:%M").to_string(), "08:00");
    let schedule_id = schedule["id"].as_str().context("schedule id")?.to_owned();

    // 3. This morning X asks first; the clock is moved so the runner fires it now.
    put(
        app,
        "/me/policies/post_to_x",
        &token,
        json!({"approval": "ask"}),
    )
    .await?;
    let soon = (Utc::now() + chrono::Duration::seconds(3))
        .with_timezone(&chrono_tz::Europe::Paris)
        .format("at(%Y-%m-%dT%H:%M:%S)")
        .to_string();
    patch(
        app,
        &format!("/schedules/{schedule_id}"),
        &token,
        json!({"expression": soon}),
    )
    .await?;

    // 4. The day's X post waits for Ana: she approves its exact payload.
    let requested = wait_for(&mut socket, &mut seen, "the daily post's approval", |e| {
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
    assert_eq!(approval["approval"]["tool"], "post_to_x", "{approval}");
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

    // 5. The morning report arrives over the WebSocket.
    let report = wait_for(&mut socket, &mut seen, "the morning report", |e| {
        e["kind"] == "morning_report"
    })
    .await?;
    let report = &report["payload"];
    let published = report["published"].as_array().cloned().unwrap_or_default();
    let services: Vec<&str> = published
        .iter()
        .filter_map(|p| p["service"].as_str())
        .collect();
    assert_eq!(services.len(), 2, "{report}");
    assert!(
        services.contains(&"x") && services.contains(&"linkedin"),
        "{report}"
    );
    assert!(
        report["headline"]
            .as_str()
            .is_some_and(|h| h.ends_with("2 posts published")),
        "{report}"
    );
    // The launch posts' engagement was fetched from the services' metrics endpoints.
    let best = &report["best_post"];
    assert!(
        launch_posts.iter().any(|t| best["text"] == json!(t)),
        "{report}"
    );
    let likes = best["metrics"]["likes"].as_i64().unwrap_or(0);
    assert!(likes > 0, "{report}");
    // What the review learned, with the numbers, is its summary and a memory.
    assert!(
        report["topics"].as_array().is_some_and(|t| !t.is_empty()),
        "{report}"
    );
    let memory = app
        .get(&format!("/projects/{project_id}/memory"), &token)
        .await?;
    assert!(
        memory["memories"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["kind"] == "fact"
                && m["content"]
                    .as_str()
                    .is_some_and(|c| c.contains(&format!("drew {likes} likes")))),
        "{memory}"
    );
    let run_id = report["run_id"].as_str().context("run id")?.to_owned();
    let ended = wait_for(&mut socket, &mut seen, "the daily run's end", |e| {
        e["kind"] == "run_completed" || e["kind"] == "run_failed"
    })
    .await?;
    assert_eq!(ended["kind"], "run_completed", "{ended}");

    // 6. The report is a file of the run, and the fire says which run it started.
    let artifacts = app
        .get(
            &format!("/projects/{project_id}/artifacts?run_id={run_id}"),
            &token,
        )
        .await?;
    assert!(
        artifacts["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["key"]
                .as_str()
                .is_some_and(|k| k.ends_with("/morning_report.json"))),
        "{artifacts}"
    );
    let fires = app
        .get(&format!("/schedules/{schedule_id}/fires"), &token)
        .await?;
    assert_eq!(fires["items"][0]["run_id"], json!(run_id), "{fires}");
    assert_eq!(fires["items"][0]["outcome"], "started", "{fires}");
    Ok(())
}
