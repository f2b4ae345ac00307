//! Connecting X and LinkedIn by OAuth's web flow, end to end against the fakes'
//! authorization servers: the link the API gives, the consent page's redirect, the public
//! callback trading the code (PKCE for X, the client secret for LinkedIn), the flow's
//! outcome, and X's two-hour tokens renewed by their refresh tokens.

use crate::api::{SAMPLE_TOKEN, api_with, call, event, user};
use autocrew_api::{ApiState, Route, handle};
use autocrew_shared::config::{OAuthApps, ServiceUrls};
use autocrew_shared::domain::Service;
use autocrew_shared::services::AccountError;
use autocrew_tests::fakes::Fake;
use autocrew_tests::{TestDb, sdk, unique};
use serde_json::{Value, json};
use std::collections::HashMap;

const PUBLIC: &str = "https://api.autocrew.test";
const SAMPLE_FLOW: &str = "5d2b8e71-3a4c-4f9e-b6d1-2c7a9e0f4b83";

/// The API with X and LinkedIn at the fakes, `secrets` (service → client secret) in the
/// secret store and the fakes' apps.
async fn setup(db: &TestDb, secrets: &[(&str, &str)]) -> anyhow::Result<(ApiState, Fake, String)> {
    let (fake, url) = autocrew_tests::fakes::start().await?;
    for (service, secret) in secrets {
        fake.oauth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .client_secrets
            .insert((*service).to_owned(), (*secret).to_owned());
    }
    let secrets: HashMap<&str, &str> = secrets.iter().copied().collect();
    let secrets = json!(secrets);
    let name = unique("oauth-clients");
    aws_sdk_secretsmanager::Client::new(&sdk().await?)
        .create_secret()
        .name(&name)
        .secret_string(secrets.to_string())
        .send()
        .await?;
    let urls = ServiceUrls::from_env(&HashMap::from([
        ("X_API_URL".to_owned(), format!("{url}/x")),
        ("LINKEDIN_API_URL".to_owned(), format!("{url}/linkedin")),
    ]))?;
    let oauth = OAuthApps {
        x_client_id: Some("M1M5R3BMVy13QmpScXkzTUt5OE46MTpjaQ".into()),
        x_url: format!("{url}/x"),
        linkedin_client_id: Some("86ltestclient".into()),
        linkedin_url: format!("{url}/linkedin"),
        client_secrets: Some(name),
        ..Default::default()
    };
    let (state, _p) = api_with(db, |s| {
        s.services = urls;
        s.oauth = oauth;
        s.public_base_url = Some(PUBLIC.into());
    })
    .await?;
    Ok((state, fake, url))
}

fn start(token: &str, body: Value) -> anyhow::Result<lambda_http::Request> {
    let body = body.to_string();
    Ok(
        event("apigw-start-web-flow.json", &[(SAMPLE_TOKEN, token)])?
            .map(|_| lambda_http::Body::Text(body)),
    )
}

fn get_flow(token: &str, id: &str) -> anyhow::Result<lambda_http::Request> {
    event(
        "apigw-get-web-flow.json",
        &[(SAMPLE_TOKEN, token), (SAMPLE_FLOW, id)],
    )
}

/// A URL's query as a map.
fn query_of(url: &str) -> anyhow::Result<HashMap<String, String>> {
    Ok(reqwest::Url::parse(url)?
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

/// The browser at the consent page: where the service sends it back, and that URL's query.
async fn consent(authorize_url: &str) -> anyhow::Result<(String, HashMap<String, String>)> {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let answer = browser.get(authorize_url).send().await?;
    anyhow::ensure!(
        answer.status() == 302,
        "the consent page answered {}",
        answer.status()
    );
    let location = answer
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let query = query_of(&location)?;
    Ok((location, query))
}

/// The browser arriving at the callback with `query`: status, Location, page.
async fn callback(
    state: &ApiState,
    query: &HashMap<String, String>,
) -> anyhow::Result<(u16, String, String)> {
    let request = lambda_http::RequestExt::with_query_string_parameters(
        event("apigw-oauth-callback.json", &[])?,
        query.clone(),
    );
    let response = handle(state, Route::OAuthCallback, request).await;
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let page = match response.body() {
        lambda_http::Body::Text(text) => text.clone(),
        _ => String::new(),
    };
    Ok((response.status().as_u16(), location, page))
}

#[tokio::test]
async fn x_connects_by_its_web_flow_with_pkce_and_its_two_hour_token_is_renewed_once()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, fake, url) = setup(&db, &[("x", "x-client-secret")]).await?;
    fake.oauth
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .accounts
        .insert("x".into(), "ana_builds".into());
    let ana = user(&state, "ana@example.com").await?;
    let bo = user(&state, "bo@example.com").await?;

    let (status, flow) = call(
        &state,
        Route::StartWebFlow,
        start(&ana, json!({"service": "x"}))?,
    )
    .await?;
    assert_eq!(status, 201, "{flow}");
    assert_eq!(flow["status"], "pending");
    assert_eq!(flow["redirect_uri"], format!("{PUBLIC}/oauth/callback"));
    let link = flow["authorize_url"].as_str().unwrap_or_default();
    let linked: HashMap<String, String> = query_of(link)?;
    assert!(
        link.starts_with(&format!("{url}/x/i/oauth2/authorize?")),
        "{link}"
    );
    assert_eq!(
        linked["scope"],
        "tweet.read tweet.write users.read offline.access"
    );
    assert_eq!(linked["code_challenge_method"], "S256");
    assert_eq!(linked["redirect_uri"], format!("{PUBLIC}/oauth/callback"));
    let id = flow["flow_id"].as_str().unwrap_or_default().to_owned();
    let (status, _) = call(&state, Route::GetWebFlow, get_flow(&bo, &id)?).await?;
    assert_eq!(status, 404, "another user's flow is not found");

    let (back, query) = consent(link).await?;
    assert!(
        back.starts_with(&format!("{PUBLIC}/oauth/callback?")),
        "{back}"
    );
    assert_eq!(query["state"], linked["state"]);
    let (status, _, page) = callback(&state, &query).await?;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("X connected") && page.contains("as @ana_builds"),
        "{page}"
    );
    assert!(!page.contains(&query["code"]));
    // The state is good once: the same callback again connects nothing.
    let (status, _, page) = callback(&state, &query).await?;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("no longer valid"), "{page}");
    assert_eq!(
        fake.oauth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .exchanges,
        1
    );

    let (status, ended) = call(&state, Route::GetWebFlow, get_flow(&ana, &id)?).await?;
    assert_eq!(
        (status, ended["status"].as_str()),
        (200, Some("connected")),
        "{ended}"
    );
    let connection = &ended["connection"];
    assert_eq!(connection["account"], "@ana_builds");
    assert_eq!(connection["renews"], true);
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(connection["expires_at"].clone())?;
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(115) && left <= chrono::Duration::minutes(120),
        "{left}"
    );
    // Nothing in the database reads as a token or the verifier.
    let client = db.pool.get().await?;
    let row = client
        .query_one(
            "SELECT sealed_secret, refresh_sealed_secret FROM connections",
            &[],
        )
        .await?;
    let (sealed, refresh): (Vec<u8>, Vec<u8>) = (row.get(0), row.get(1));
    assert!(!String::from_utf8_lossy(&sealed).contains("x-oauth-"));
    assert!(!String::from_utf8_lossy(&refresh).contains("x-refresh-"));
    let verifier: Vec<u8> = client
        .query_one("SELECT sealed_secret FROM web_flows", &[])
        .await?
        .get(0);
    assert!(
        verifier.is_empty(),
        "the verifier is wiped once the flow ended"
    );

    // Two hours on: the token lapsed at X; two tools opening it at once renew it once.
    let ana_id = autocrew_shared::domain::UserId(
        client
            .query_one("SELECT user_id FROM connections", &[])
            .await?
            .get(0),
    );
    let lapse = || async {
        client
            .execute(
                "UPDATE connections SET expires_at = now() - interval '1 minute'",
                &[],
            )
            .await?;
        let mut oauth = fake.oauth.lock().unwrap_or_else(|e| e.into_inner());
        for at in oauth.expiry.values_mut() {
            *at = std::time::Instant::now();
        }
        anyhow::Ok(())
    };
    lapse().await?;
    let (one, two) = tokio::join!(
        state.connected.open(ana_id, Service::X),
        state.connected.open(ana_id, Service::X)
    );
    let (one, two) = (one?, two?);
    assert_eq!(one.token.expose(), two.token.expose());
    assert_eq!(
        fake.oauth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refreshes,
        1
    );
    let who = state.connected.identify(Service::X, &one.token).await?;
    assert_eq!(who.account, "@ana_builds", "the renewed token works at X");
    assert!(one.connection.expires_at > Some(chrono::Utc::now() + chrono::Duration::minutes(115)));

    // The user revoked the app at X: the refused refresh marks the connection, naming it.
    lapse().await?;
    fake.oauth
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .revoke_refresh_tokens();
    let Err(refused) = state.connected.open(ana_id, Service::X).await else {
        anyhow::bail!("a revoked refresh token still opened the connection");
    };
    assert!(matches!(refused, AccountError::Refused { .. }), "{refused}");
    assert!(
        refused.to_string().contains("x connection (@ana_builds)"),
        "{refused}"
    );
    let (_, listed) = call(
        &state,
        Route::ListConnections,
        event("apigw-list-connections.json", &[(SAMPLE_TOKEN, &ana)])?,
    )
    .await?;
    assert_eq!(listed["connections"][0]["status"], "invalid", "{listed}");
    Ok(())
}

#[tokio::test]
async fn linkedin_connects_with_its_client_secret_and_the_app_hears_how_it_went()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, fake, _) = setup(&db, &[("linkedin", "li-client-secret")]).await?;
    let ana = user(&state, "ana@example.com").await?;
    let body = json!({"service": "linkedin", "return_to": "autocrew://connections"});

    // Declined at LinkedIn: the browser goes back to the app, which is told.
    fake.oauth
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .decline_next
        .insert("linkedin".into());
    let (status, flow) = call(&state, Route::StartWebFlow, start(&ana, body.clone())?).await?;
    assert_eq!(status, 201, "{flow}");
    let link = flow["authorize_url"].as_str().unwrap_or_default();
    assert!(
        !link.contains("code_challenge"),
        "LinkedIn's web flow has no PKCE: {link}"
    );
    assert!(
        link.contains("scope=openid%20profile%20w_member_social"),
        "{link}"
    );
    let (_, query) = consent(link).await?;
    let (status, location, _) = callback(&state, &query).await?;
    assert_eq!(status, 303);
    let told: HashMap<String, String> = query_of(&location)?;
    assert!(
        location.starts_with("autocrew://connections?"),
        "{location}"
    );
    assert_eq!(told["status"], "failed");
    assert_eq!(told["error"], "the connection was declined at linkedin");
    let id = flow["flow_id"].as_str().unwrap_or_default();
    let (_, ended) = call(&state, Route::GetWebFlow, get_flow(&ana, id)?).await?;
    assert_eq!(ended["status"], "failed", "{ended}");

    // Consented: connected with the secret in the token request.
    let (_, flow) = call(&state, Route::StartWebFlow, start(&ana, body)?).await?;
    let (_, query) = consent(flow["authorize_url"].as_str().unwrap_or_default()).await?;
    let (status, location, _) = callback(&state, &query).await?;
    assert_eq!(status, 303);
    let told: HashMap<String, String> = query_of(&location)?;
    assert_eq!(told["status"], "connected", "{location}");
    let (_, listed) = call(
        &state,
        Route::ListConnections,
        event("apigw-list-connections.json", &[(SAMPLE_TOKEN, &ana)])?,
    )
    .await?;
    let connection = &listed["connections"][0];
    assert_eq!(
        connection["id"].as_str(),
        told.get("connection_id").map(String::as_str)
    );
    assert_eq!(connection["account"], "Autocrew Demo");
    assert_eq!(
        connection["renews"], false,
        "LinkedIn granted no refresh token"
    );
    Ok(())
}

#[tokio::test]
async fn a_web_flow_that_cannot_work_is_refused_before_the_user_consents() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    // No LinkedIn secret in the store.
    let (state, _fake, _) = setup(&db, &[("x", "x-client-secret")]).await?;
    let ana = user(&state, "ana@example.com").await?;
    let cases = [
        (json!({"service": "linkedin"}), 503, "client secret"),
        (json!({"service": "vercel"}), 422, "connect it with a token"),
        (json!({"service": "github"}), 422, "device flow"),
        (
            json!({"service": "x", "return_to": "javascript:alert(1)"}),
            400,
            "return_to",
        ),
        (
            json!({"service": "x", "return_to": "http://evil.example/"}),
            400,
            "https",
        ),
        (json!({"service": "mastodon"}), 400, "service"),
    ];
    for (body, expected, words) in cases {
        let (status, refused) =
            call(&state, Route::StartWebFlow, start(&ana, body.clone())?).await?;
        assert_eq!(status, expected, "{body}: {refused}");
        assert!(refused.to_string().contains(words), "{body}: {refused}");
    }
    // A callback without a state, or with one never given out, connects nothing.
    for query in [
        HashMap::from([("code".to_owned(), "abc".to_owned())]),
        HashMap::from([
            ("state".to_owned(), "forged".to_owned()),
            ("code".to_owned(), "abc".to_owned()),
        ]),
    ] {
        let (status, _, page) = callback(&state, &query).await?;
        assert_eq!(status, 400, "{page}");
        assert!(page.contains("Start connecting again"), "{page}");
    }
    Ok(())
}
