//! Analytics ingestion from outside: the landing page `deploy_site` publishes carries a
//! beacon, which node runs as a browser would; its page views reach
//! `POST /projects/{id}/analytics/events` with the project's public key, are kept once per
//! event id, and `GET /analytics` counts visitors and events per day. The key only writes
//! its own project, and rotating or revoking it stops it at once.

use crate::api::{SAMPLE_TOKEN, call, event, user};
use crate::run_control::play_until_ended;
use crate::tools_github::world_with;
use autocrew_api::Route;
use autocrew_shared::domain::RunStatus;
use autocrew_tests::TestDb;
use serde_json::{Value, json};

const VERCEL: (&str, &str, &str) = ("vercel", "vercel_anaToken0123456789", "ana-lima");
const SAMPLE_PROJECT: &str = "3f1c2a9e-6b7d-4e2f-8a1b-5c9d0e7f4a21";
const SAMPLE_KEY: &str = "ak_sample-ingest-key-0123456789abcdefghijklmno";

/// Runs the page's beacon in node as three page loads: two by one browser, one by another.
/// Each load's `sendBeacon(url, body)` is printed as a line of JSON.
fn beacon_posts(script: &str) -> anyhow::Result<Vec<(String, String)>> {
    let harness = r#"
const script = process.argv[1];
function browser() {
  const kept = {};
  globalThis.window = { localStorage: { getItem: (k) => kept[k] ?? null, setItem: (k, v) => { kept[k] = String(v); } } };
}
globalThis.location = { pathname: "/" };
globalThis.document = { referrer: "" };
Object.defineProperty(globalThis, "navigator", { configurable: true, value: {
  sendBeacon: (url, body) => { console.log(JSON.stringify({ url, body })); return true; } } });
browser(); eval(script); eval(script);
browser(); eval(script);
"#;
    let output = std::process::Command::new("node")
        .args(["-e", harness, script])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "node: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)?
        .lines()
        .map(|line| {
            let sent: Value = serde_json::from_str(line)?;
            Ok((
                sent["url"].as_str().unwrap_or_default().to_owned(),
                sent["body"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// The ingest request for `project` with `key` (none: no key) and `body`.
fn ingest(project: &str, key: Option<&str>, body: &str) -> anyhow::Result<lambda_http::Request> {
    let without_key = [
        (
            "rawQueryString\": \"key=".to_owned() + SAMPLE_KEY,
            "rawQueryString\": \"".to_owned(),
        ),
        (
            format!("\"key\": \"{SAMPLE_KEY}\""),
            "\"other\": \"\"".to_owned(),
        ),
    ];
    let mut swaps: Vec<(&str, &str)> = vec![(SAMPLE_PROJECT, project)];
    match key {
        Some(key) => swaps.push((SAMPLE_KEY, key)),
        None => swaps.extend(without_key.iter().map(|(a, b)| (a.as_str(), b.as_str()))),
    }
    let body = body.to_owned();
    Ok(event("apigw-ingest-analytics.json", &swaps)?.map(|_| lambda_http::Body::Text(body)))
}

fn key_route(file: &str, token: &str, project: &str) -> anyhow::Result<lambda_http::Request> {
    event(file, &[(SAMPLE_TOKEN, token), (SAMPLE_PROJECT, project)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_landing_pages_beacon_posts_page_views_that_analytics_counts_once_under_a_revocable_key()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = world_with(&db, &[VERCEL], &["deploy_site"]).await?;
    let run = w.command().await?;
    let ended = play_until_ended(&w.p, run).await?;
    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);

    // The deployed page carries the beacon, with this project's key.
    let (status, listed) = call(
        &w.state,
        Route::ListDeployments,
        event(
            "apigw-list-deployments.json",
            &[
                (SAMPLE_TOKEN, w.ana.as_str()),
                ("6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21", w.project.as_str()),
            ],
        )?,
    )
    .await?;
    assert_eq!(status, 200, "{listed}");
    let url = listed["deployments"][0]["url"].as_str().unwrap_or_default();
    let page = reqwest::get(url).await?.text().await?;
    let script = page
        .split(r#"<script data-autocrew="beacon">"#)
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .ok_or_else(|| anyhow::anyhow!("no beacon in the page: {page}"))?;
    let (status, key) = call(
        &w.state,
        Route::GetIngestKey,
        key_route("apigw-get-ingest-key.json", &w.ana, &w.project)?,
    )
    .await?;
    assert_eq!(status, 200, "{key}");
    let key = key["key"].as_str().unwrap_or_default().to_owned();
    let posts = beacon_posts(script)?;
    assert_eq!(posts.len(), 3);
    let (endpoint, _) = &posts[0];
    assert!(
        endpoint.ends_with(&format!(
            "/projects/{}/analytics/events?key={key}",
            w.project
        )),
        "{endpoint}"
    );

    // Each page view is kept once, as the beacon sent it (text/plain JSON, key in the query).
    for (_, body) in &posts {
        let (status, kept) = call(
            &w.state,
            Route::IngestAnalytics,
            ingest(&w.project, Some(&key), body)?,
        )
        .await?;
        assert_eq!(
            (status, kept.clone()),
            (200, json!({"accepted": 1, "duplicates": 0}))
        );
    }
    let (status, again) = call(
        &w.state,
        Route::IngestAnalytics,
        ingest(&w.project, Some(&key), &posts[0].1)?,
    )
    .await?;
    assert_eq!(
        (status, again),
        (200, json!({"accepted": 0, "duplicates": 1}))
    );
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (
        today.to_string(),
        today
            .succ_opt()
            .unwrap_or(today)
            .succ_opt()
            .unwrap_or(today)
            .to_string(),
    );
    let (status, analytics) = call(
        &w.state,
        Route::GetAnalytics,
        event(
            "apigw-get-analytics.json",
            &[
                (SAMPLE_TOKEN, w.ana.as_str()),
                ("2026-11-01", from.as_str()),
                ("2026-12-01", to.as_str()),
            ],
        )?,
    )
    .await?;
    assert_eq!(status, 200, "{analytics}");
    assert_eq!(
        (analytics["events"].clone(), analytics["visitors"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(
        analytics["traffic_per_day"],
        json!([{"day": today.to_string(), "events": 3, "visitors": 2, "page_views": 3}])
    );

    // A wrong event refuses the whole batch, naming it; nothing of it is kept.
    let now = chrono::Utc::now();
    let bad = json!({"events": [
        {"event_id": "ok-1", "name": "signup", "occurred_at": now},
        {"event_id": "late-1", "name": "signup", "occurred_at": now + chrono::Duration::hours(2)}
    ]})
    .to_string();
    let (status, refused) = call(
        &w.state,
        Route::IngestAnalytics,
        ingest(&w.project, Some(&key), &bad)?,
    )
    .await?;
    assert_eq!(
        (status, refused["field"].clone()),
        (400, json!("events[1].occurred_at")),
        "{refused}"
    );
    let (status, unknown) = call(
        &w.state,
        Route::IngestAnalytics,
        ingest(&w.project, Some(&key), r#"{"events": [], "extra": 1}"#)?,
    )
    .await?;
    assert_eq!(status, 400, "{unknown}");

    // No key, another project's key, another user's token: refused.
    let (status, _) = call(
        &w.state,
        Route::IngestAnalytics,
        ingest(&w.project, None, &bad)?,
    )
    .await?;
    assert_eq!(status, 401);
    let bo = user(&w.state, "bo@example.com").await?;
    let bo_project = crate::api::project(&w.state, &bo).await?;
    let (status, other) = call(
        &w.state,
        Route::IngestAnalytics,
        ingest(&bo_project, Some(&key), &posts[0].1)?,
    )
    .await?;
    assert_eq!(status, 401, "{other}");
    let mut as_bo = ingest(&w.project, None, &posts[0].1)?;
    as_bo
        .headers_mut()
        .insert("authorization", format!("Bearer {bo}").parse()?);
    let (status, _) = call(&w.state, Route::IngestAnalytics, as_bo).await?;
    assert_eq!(status, 404);
    let (status, _) = call(
        &w.state,
        Route::GetIngestKey,
        key_route("apigw-get-ingest-key.json", &bo, &w.project)?,
    )
    .await?;
    assert_eq!(status, 404);

    // A new key stops the old one at once; revoking stops the new one.
    let (status, rotated) = call(
        &w.state,
        Route::RotateIngestKey,
        key_route("apigw-rotate-ingest-key.json", &w.ana, &w.project)?,
    )
    .await?;
    assert_eq!(status, 201, "{rotated}");
    let new_key = rotated["key"].as_str().unwrap_or_default().to_owned();
    assert_ne!(new_key, key);
    let fresh = |id: &str| {
        json!({"events": [{"event_id": id, "name": "page_view", "occurred_at": chrono::Utc::now()}]})
            .to_string()
    };
    let (status, old) = call(
        &w.state,
        Route::IngestAnalytics,
        ingest(&w.project, Some(&key), &fresh("after-rotate"))?,
    )
    .await?;
    assert_eq!(status, 401);
    assert!(
        old["error"].as_str().is_some_and(|e| e.contains("revoked")),
        "{old}"
    );
    let (status, _) = call(
        &w.state,
        Route::IngestAnalytics,
        ingest(&w.project, Some(&new_key), &fresh("with-new"))?,
    )
    .await?;
    assert_eq!(status, 200);
    let (status, _) = call(
        &w.state,
        Route::RevokeIngestKey,
        key_route("apigw-revoke-ingest-key.json", &w.ana, &w.project)?,
    )
    .await?;
    assert_eq!(status, 204);
    let (status, _) = call(
        &w.state,
        Route::IngestAnalytics,
        ingest(&w.project, Some(&new_key), &fresh("after-revoke"))?,
    )
    .await?;
    assert_eq!(status, 401);
    let (status, _) = call(
        &w.state,
        Route::GetIngestKey,
        key_route("apigw-get-ingest-key.json", &w.ana, &w.project)?,
    )
    .await?;
    assert_eq!(status, 404);
    // The owner's token still sends events (the app's own, signed in).
    let mut signed = ingest(&w.project, None, &fresh("signed-in"))?;
    signed
        .headers_mut()
        .insert("authorization", format!("Bearer {}", w.ana).parse()?);
    let (status, kept) = call(&w.state, Route::IngestAnalytics, signed).await?;
    assert_eq!(
        (status, kept),
        (200, json!({"accepted": 1, "duplicates": 0}))
    );
    Ok(())
}
