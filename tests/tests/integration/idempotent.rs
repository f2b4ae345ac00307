//! `Idempotency-Key` on the API's POSTs, with Stripe's semantics.

use crate::api::{SAMPLE_TOKEN, api, event, user};
use autocrew_api::{ApiState, Route, handle};
use autocrew_tests::TestDb;
use serde_json::{Value, json};

async fn create(
    state: &ApiState,
    token: &str,
    key: Option<&str>,
    name: &str,
) -> anyhow::Result<(u16, Value, bool)> {
    let mut request = event("apigw-create-project.json", &[(SAMPLE_TOKEN, token)])?;
    *request.body_mut() = lambda_http::Body::Text(json!({"name": name}).to_string());
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("idempotency-key", key.parse()?);
    }
    let response = handle(state, Route::CreateProject, request).await;
    let replayed = response.headers().contains_key("idempotent-replayed");
    let body = match response.body() {
        lambda_http::Body::Text(text) => serde_json::from_str(text)?,
        _ => Value::Null,
    };
    Ok((response.status().as_u16(), body, replayed))
}

#[tokio::test]
async fn a_post_with_a_key_runs_once_and_its_answer_is_replayed() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let bo = user(&state, "bo@example.com").await?;

    let (first, created, replayed) = create(&state, &ana, Some("key-1"), "keto").await?;
    assert_eq!((first, replayed), (201, false), "{created}");
    let (again, same, replayed) = create(&state, &ana, Some("key-1"), "keto").await?;
    assert_eq!((again, replayed), (201, true));
    assert_eq!(
        same["id"], created["id"],
        "the same project, not a second one"
    );

    let (changed, body, _) = create(&state, &ana, Some("key-1"), "paleo").await?;
    assert_eq!(changed, 422, "{body}");

    let (theirs, their_project, _) = create(&state, &bo, Some("key-1"), "keto").await?;
    assert_eq!(theirs, 201, "keys are per user");
    assert_ne!(their_project["id"], created["id"]);

    let (_, one, _) = create(&state, &ana, None, "no key").await?;
    let (_, two, _) = create(&state, &ana, None, "no key").await?;
    assert_ne!(
        one["id"], two["id"],
        "without a key, two requests are two projects"
    );

    let (bad, body, _) = create(&state, &ana, Some(&"k".repeat(300)), "keto").await?;
    assert_eq!(
        (bad, body["field"].as_str()),
        (400, Some("Idempotency-Key"))
    );

    let rows = db
        .pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM projects WHERE name = 'keto'", &[])
        .await?;
    assert_eq!(rows.get::<_, i64>(0), 2, "one for ana, one for bo");
    Ok(())
}
