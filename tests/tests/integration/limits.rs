//! Rate limits through the API routes: counters shared by every caller, atomic under
//! concurrency, 429 with `Retry-After` and the `RateLimit` fields.

use crate::api::{SAMPLE_TOKEN, api, event, user};
use autocrew_api::{Route, handle};
use autocrew_tests::TestDb;
use chrono::Timelike;
use futures::future::join_all;
use serde_json::json;

/// Waits out the last seconds of a minute, so a burst is counted in one window.
async fn fresh_minute() {
    let second = chrono::Utc::now().second();
    if second >= 50 {
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(61 - second))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_200_concurrent_requests_exactly_the_users_limit_passes() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let token = user(&state, "ana@example.com").await?;
    fresh_minute().await;

    let requests = (0..200).map(|_| {
        let state = state.clone();
        let request = event("apigw-get-me.json", &[(SAMPLE_TOKEN, token.as_str())]);
        async move { anyhow::Ok(handle(&state, Route::GetMe, request?).await) }
    });
    let responses = join_all(requests)
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;

    let passed = responses.iter().filter(|r| r.status() == 200).count();
    let refused: Vec<_> = responses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(
        (passed, refused.len()),
        (100, 100),
        "the user's limit is 100 a minute"
    );
    for response in &refused {
        let retry: u32 = response.headers()["retry-after"].to_str()?.parse()?;
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"user\";q=100;w=60"
        );
        assert!(
            response.headers()["ratelimit"]
                .to_str()?
                .starts_with("\"user\";r=0;t=")
        );
    }
    let remaining: Vec<String> = responses
        .iter()
        .filter(|r| r.status() == 200)
        .map(|r| {
            r.headers()["ratelimit"]
                .to_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        remaining.iter().any(|r| r.starts_with("\"user\";r=99;")),
        "{remaining:?}"
    );
    assert!(
        remaining.iter().any(|r| r.starts_with("\"user\";r=0;")),
        "{remaining:?}"
    );

    // Another user is not limited by the first one's burst.
    let other = user(&state, "bo@example.com").await?;
    let response = handle(
        &state,
        Route::GetMe,
        event("apigw-get-me.json", &[(SAMPLE_TOKEN, other.as_str())])?,
    )
    .await;
    assert_eq!(response.status(), 200);
    Ok(())
}

#[tokio::test]
async fn sign_up_has_its_own_tighter_limit_per_address() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    fresh_minute().await;
    let mut statuses = Vec::new();
    for i in 0..11 {
        let mut request = event("apigw-signup.json", &[])?;
        *request.body_mut() = lambda_http::Body::Text(
            json!({"email": format!("u{i}@example.com"), "password": "correct horse battery"})
                .to_string(),
        );
        let response = handle(&state, Route::Signup, request).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert_eq!(
                response.headers()["ratelimit-policy"],
                "\"signup\";q=10;w=60"
            );
        }
    }
    assert_eq!(statuses[..10], [201; 10], "{statuses:?}");
    assert_eq!(statuses[10], 429, "{statuses:?}");
    Ok(())
}

#[tokio::test]
async fn one_address_is_limited_across_users() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (mut state, _p) = api(&db).await?;
    let a = user(&state, "cy@example.com").await?;
    let b = user(&state, "di@example.com").await?;
    state.limits.per_ip = 6;
    fresh_minute().await;
    let mut statuses = Vec::new();
    for token in [&a, &b, &a, &b, &a, &b, &a, &b] {
        // From an address of their own (the sign-ups came from the sample's).
        let request = event(
            "apigw-get-me.json",
            &[
                (SAMPLE_TOKEN, token.as_str()),
                ("203.0.113.7", "198.51.100.9"),
            ],
        )?;
        statuses.push(
            handle(&state, Route::GetMe, request)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);
    Ok(())
}
