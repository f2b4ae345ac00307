//! Connected accounts: each service asked who a token is with its own request (recorded
//! answers, the outgoing request checked), the token sealed by envelope encryption (the
//! local key file, and KMS on the emulator), and the API that never shows it again.

use crate::api::{SAMPLE_TOKEN, api_with, call, event, user};
use autocrew_api::Route;
use autocrew_shared::adapters::aws::KmsKeyKeeper;
use autocrew_shared::adapters::tools::{self, ServiceError};
use autocrew_shared::config::{Secret, ServiceUrls};
use autocrew_shared::domain::Service;
use autocrew_shared::ports::VaultError;
use autocrew_shared::services::Vault;
use autocrew_tests::TestDb;
use autocrew_tests::replay::{Recorded, ReplayServer};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const SAMPLE_CONNECTION: &str = "9b2d4f6a-8c1e-4a3b-b5d7-e9f1a3c5b7d9";
const SAMPLE_GITHUB_TOKEN: &str = "ghp_sampleToken0123456789abcdefWXYZ";

/// Every service's base URL pointing at `url`.
fn urls_at(url: &str) -> ServiceUrls {
    let env: HashMap<String, String> = [
        "GITHUB_API_URL",
        "VERCEL_API_URL",
        "EXPO_API_URL",
        "RESEND_API_URL",
        "X_API_URL",
        "LINKEDIN_API_URL",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), url.to_owned()))
    .collect();
    ServiceUrls::from_env(&env).expect("urls")
}

async fn identify(
    server: &ReplayServer,
    service: Service,
) -> Result<tools::Identity, ServiceError> {
    tools::identify(
        &reqwest::Client::new(),
        &urls_at(&server.url),
        service,
        &Secret::new("tok_0123456789abcdef".to_owned()),
    )
    .await
}

#[tokio::test]
async fn each_service_is_asked_who_the_token_is_with_its_own_request() -> anyhow::Result<()> {
    let cases = [
        (
            Service::Github,
            "github-user.json",
            "GET",
            "/user",
            "ana-builds",
        ),
        (
            Service::Vercel,
            "vercel-user.json",
            "GET",
            "/v2/user",
            "ana-lima",
        ),
        (
            Service::X,
            "x-users-me.json",
            "GET",
            "/2/users/me",
            "@ana_builds",
        ),
        (
            Service::Linkedin,
            "linkedin-userinfo.json",
            "GET",
            "/v2/userinfo",
            "Ana Lima",
        ),
        (
            Service::Resend,
            "resend-domains.json",
            "GET",
            "/domains",
            "ketoapp.example",
        ),
        (
            Service::Expo,
            "expo-me-actor.json",
            "POST",
            "/graphql",
            "ana-lima",
        ),
    ];
    for (service, recording, method, path, account) in cases {
        let server = ReplayServer::start(vec![Recorded::ok(recording)]).await?;

        let identity = identify(&server, service).await?;

        assert_eq!(identity.account, account, "{service}");
        let sent = &server.received()[0];
        assert_eq!(
            (sent.method.as_str(), sent.path.as_str()),
            (method, path),
            "{service}"
        );
        assert_eq!(
            sent.headers["authorization"], "Bearer tok_0123456789abcdef",
            "{service}"
        );
        assert!(
            sent.headers.contains_key("user-agent"),
            "{service}: GitHub refuses requests without one"
        );
        match service {
            Service::Github => {
                assert_eq!(sent.headers["accept"], "application/vnd.github+json");
                assert_eq!(sent.headers["x-github-api-version"], "2026-03-10");
            }
            Service::Expo => {
                assert_eq!(sent.headers["content-type"], "application/json");
                let query = sent.body["query"].as_str().unwrap_or_default();
                assert!(
                    query.contains("meActor") && query.contains("... on UserActor"),
                    "{query}"
                );
                assert!(sent.body["variables"].is_object());
            }
            _ => assert_eq!(sent.raw, "", "{service}: a GET carries no body"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn refusals_are_read_in_each_services_own_error_shape() -> anyhow::Result<()> {
    // GitHub: a bad token is 401 with basic-error's message.
    let server = ReplayServer::start(vec![Recorded::json(
        401,
        r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}"#,
    )])
    .await?;
    let err = identify(&server, Service::Github).await.unwrap_err();
    assert!(
        matches!(&err, ServiceError::Unauthorized { status: 401, message, .. } if message == "Bad credentials"),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("tok_0123456789abcdef"), "{err}");

    // GitHub: a 403 with the rate limit spent is a rate limit, not a refused token.
    let server = ReplayServer::start(vec![Recorded::json(
        403,
        r#"{"message":"API rate limit exceeded for user ID 91827364.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}"#,
    )
    .with_header("x-ratelimit-remaining", "0")
    .with_header("retry-after", "60")])
    .await?;
    let err = identify(&server, Service::Github).await.unwrap_err();
    assert!(
        matches!(&err, ServiceError::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 60),
        "{err}"
    );
    assert!(err.is_retryable());

    // Resend: a key restricted to sending cannot list domains, and still works.
    let server = ReplayServer::start(vec![Recorded::json(
        401,
        r#"{"statusCode":401,"message":"This API key is restricted to only send emails","name":"restricted_api_key"}"#,
    )])
    .await?;
    assert_eq!(
        identify(&server, Service::Resend).await?.account,
        "sending-only API key"
    );

    // Vercel: {"error": {"code", "message"}}.
    let server = ReplayServer::start(vec![Recorded::json(
        403,
        r#"{"error":{"code":"forbidden","message":"Not authorized","invalidToken":true}}"#,
    )])
    .await?;
    let err = identify(&server, Service::Vercel).await.unwrap_err();
    assert!(
        err.to_string().contains("Not authorized (forbidden)"),
        "{err}"
    );

    // X: a problem document.
    let server = ReplayServer::start(vec![Recorded::json(
        401,
        r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#,
    )])
    .await?;
    let err = identify(&server, Service::X).await.unwrap_err();
    assert!(matches!(err, ServiceError::Unauthorized { .. }), "{err}");

    // Expo: GraphQL errors in a 200.
    let server = ReplayServer::start(vec![Recorded::json(
        200,
        r#"{"errors":[{"message":"Your session has expired or is invalid","extensions":{"errorCode":"UNAUTHORIZED_ERROR"}}],"data":null}"#,
    )])
    .await?;
    let err = identify(&server, Service::Expo).await.unwrap_err();
    assert!(matches!(err, ServiceError::Unauthorized { .. }), "{err}");

    // A service that cannot be reached is unavailable, worth a later try.
    let closed = ServiceUrls::from_env(&HashMap::from([(
        "LINKEDIN_API_URL".to_owned(),
        "http://127.0.0.1:9".to_owned(),
    )]))?;
    let err = tools::identify(
        &reqwest::Client::new(),
        &closed,
        Service::Linkedin,
        &Secret::new("x".to_owned()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ServiceError::Unavailable { .. }) && err.is_retryable(),
        "{err}"
    );
    Ok(())
}

/// The connect event as `token`, with `body` replacing its body when given.
fn connect_event(token: &str, body: Option<&str>) -> anyhow::Result<lambda_http::Request> {
    let request = event("apigw-connect.json", &[(SAMPLE_TOKEN, token)])?;
    Ok(match body {
        Some(body) => request.map(|_| lambda_http::Body::Text(body.to_owned())),
        None => request,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_checked_with_its_service_sealed_and_never_shown_again() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let github = ReplayServer::start(vec![
        Recorded::ok("github-user.json"),
        Recorded::json(401, r#"{"message":"Bad credentials"}"#),
        Recorded::ok("github-user.json"),
    ])
    .await?;
    let urls = urls_at(&github.url);
    let (state, _p) = api_with(&db, |s| s.services = urls).await?;
    let ana = user(&state, "ana@example.com").await?;
    let bo = user(&state, "bo@example.com").await?;

    // Connecting: the service is asked, the token sealed, the answer shows no token.
    let (status, connected) = call(&state, Route::Connect, connect_event(&ana, None)?).await?;
    assert_eq!(status, 201, "{connected}");
    assert_eq!(connected["service"], "github");
    assert_eq!(connected["account"], "ana-builds");
    assert_eq!(connected["hint"], "WXYZ");
    assert_eq!(connected["status"], "active");
    assert!(
        !connected.to_string().contains(SAMPLE_GITHUB_TOKEN),
        "{connected}"
    );
    assert_eq!(
        github.received()[0].headers["authorization"],
        format!("Bearer {SAMPLE_GITHUB_TOKEN}")
    );

    // At rest: neither the token nor its data key in the clear; it opens only as Ana's.
    let client = db.pool.get().await?;
    let row = client
        .query_one(
            "SELECT user_id, sealed_secret, wrapped_key, key_id FROM connections WHERE id = $1",
            &[&uuid::Uuid::parse_str(
                connected["id"].as_str().unwrap_or_default(),
            )?],
        )
        .await?;
    let sealed = autocrew_shared::ports::Sealed {
        secret: row.get(1),
        wrapped_key: row.get(2),
        key_id: row.get(3),
    };
    assert!(
        !sealed
            .secret
            .windows(8)
            .any(|w| SAMPLE_GITHUB_TOKEN.as_bytes().windows(8).any(|t| t == w))
    );
    assert!(sealed.key_id.starts_with("file:"), "{}", sealed.key_id);
    let ana_id = autocrew_shared::domain::UserId(row.get(0));
    let context = autocrew_shared::domain::connections::seal_context(ana_id, Service::Github);
    assert_eq!(
        state
            .connected
            .vault()
            .open(&sealed, &context)
            .await?
            .expose(),
        SAMPLE_GITHUB_TOKEN
    );
    let other = autocrew_shared::domain::connections::seal_context(ana_id, Service::Vercel);
    assert!(state.connected.vault().open(&sealed, &other).await.is_err());

    // Listed for Ana, without the token; Bo sees none and cannot remove hers.
    let list = |token: &str| event("apigw-list-connections.json", &[(SAMPLE_TOKEN, token)]);
    let (status, mine) = call(&state, Route::ListConnections, list(&ana)?).await?;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(
        mine["connections"].as_array().map(Vec::len),
        Some(1),
        "{mine}"
    );
    assert!(!mine.to_string().contains(SAMPLE_GITHUB_TOKEN));
    let (_, theirs) = call(&state, Route::ListConnections, list(&bo)?).await?;
    assert_eq!(theirs["connections"], Value::Array(vec![]), "{theirs}");
    let id = connected["id"].as_str().unwrap_or_default().to_owned();
    let remove = |token: &str| {
        event(
            "apigw-disconnect.json",
            &[(SAMPLE_TOKEN, token), (SAMPLE_CONNECTION, id.as_str())],
        )
    };
    let (status, _) = call(&state, Route::Disconnect, remove(&bo)?).await?;
    assert_eq!(status, 404, "another user's connection is not found");

    // A token the service refuses is not kept; the answer says why.
    let (status, refused) = call(
        &state,
        Route::Connect,
        connect_event(
            &ana,
            Some(r#"{"service":"github","token":"ghp_revoked0123456789"}"#),
        )?,
    )
    .await?;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"].to_string().contains("Bad credentials"),
        "{refused}"
    );
    // Bad input names its field, and the service is never asked.
    for (body, field) in [
        (r#"{"service":"myspace","token":"abc"}"#, "service"),
        (r#"{"service":"github","token":"has space"}"#, "token"),
        (r#"{"service":"github","token":""}"#, "token"),
    ] {
        let (status, answer) =
            call(&state, Route::Connect, connect_event(&ana, Some(body))?).await?;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.to_string().contains(field), "{body}: {answer}");
    }
    assert_eq!(github.received().len(), 2);

    // Connecting again replaces the token and keeps the connection.
    let (status, again) = call(&state, Route::Connect, connect_event(&ana, None)?).await?;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["id"], connected["id"]);

    let (status, _) = call(&state, Route::Disconnect, remove(&ana)?).await?;
    assert_eq!(status, 204);
    let (_, mine) = call(&state, Route::ListConnections, list(&ana)?).await?;
    assert_eq!(mine["connections"], Value::Array(vec![]), "{mine}");
    let (status, _) = call(&state, Route::Disconnect, remove(&ana)?).await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn on_aws_the_data_key_comes_from_kms_bound_to_the_tokens_user_and_service()
-> anyhow::Result<()> {
    let sdk = autocrew_tests::sdk().await?;
    let created = aws_sdk_kms::Client::new(&sdk)
        .create_key()
        .description("autocrew test connections key")
        .send()
        .await?;
    let key_id = created
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .unwrap_or_default();
    let vault = Vault::new(Arc::new(KmsKeyKeeper::new(&sdk, &key_id)));
    let token = Secret::new("vercel_0123456789abcdef".to_owned());

    let sealed = vault.seal(&token, "u1/vercel").await?;

    assert!(sealed.key_id.contains(&key_id), "{}", sealed.key_id);
    assert_eq!(
        vault.open(&sealed, "u1/vercel").await?.expose(),
        token.expose()
    );
    let err = vault.open(&sealed, "u2/vercel").await.unwrap_err();
    assert!(matches!(err, VaultError::Tampered), "{err}");
    Ok(())
}

#[tokio::test]
async fn github_connects_by_its_device_flow_with_the_device_code_sealed_while_pending()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (fake, url) = autocrew_tests::fakes::start().await?;
    fake.github
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .device_account = Some("ana-builds".into());
    let urls = ServiceUrls::from_env(&HashMap::from([(
        "GITHUB_API_URL".to_owned(),
        format!("{url}/github"),
    )]))?;
    let oauth = autocrew_shared::config::OAuthApps {
        github_client_id: Some("Ov23liTestClient".into()),
        github_url: format!("{url}/github"),
        ..Default::default()
    };
    let (state, _p) = api_with(&db, |s| {
        s.services = urls;
        s.oauth = oauth;
    })
    .await?;
    let ana = user(&state, "ana@example.com").await?;
    let bo = user(&state, "bo@example.com").await?;
    let start = |token: &str, service: &str| {
        let body = json!({"service": service}).to_string();
        event("apigw-start-device-flow.json", &[(SAMPLE_TOKEN, token)])
            .map(|e| e.map(|_| lambda_http::Body::Text(body)))
    };

    let (status, flow) = call(&state, Route::StartDeviceFlow, start(&ana, "github")?).await?;
    assert_eq!(status, 201, "{flow}");
    assert_eq!(flow["user_code"], "WDJB-MJHT");
    assert_eq!(
        flow["verification_uri"],
        format!("{url}/github/login/device")
    );
    let id = flow["flow_id"].as_str().unwrap_or_default().to_owned();
    // The device code is a credential in waiting: sealed at rest, never in an answer.
    let device_code = fake
        .github
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .device_flows
        .keys()
        .next()
        .cloned()
        .unwrap_or_default();
    assert!(!flow.to_string().contains(&device_code));
    let sealed: Vec<u8> = db
        .pool
        .get()
        .await?
        .query_one("SELECT sealed_secret FROM device_flows", &[])
        .await?
        .get(0);
    assert!(!String::from_utf8_lossy(&sealed).contains(&device_code));

    let poll = |token: &str| {
        event(
            "apigw-poll-device-flow.json",
            &[
                (SAMPLE_TOKEN, token),
                ("3c9a1f52-6d2e-4b8a-9f1c-7e5d4a3b2c10", id.as_str()),
            ],
        )
    };
    let (status, other) = call(&state, Route::PollDeviceFlow, poll(&bo)?).await?;
    assert_eq!(status, 404, "another user's flow is not found: {other}");
    let (status, pending) = call(&state, Route::PollDeviceFlow, poll(&ana)?).await?;
    assert_eq!(
        (status, pending["status"].as_str()),
        (202, Some("pending")),
        "{pending}"
    );
    let (status, connected) = call(&state, Route::PollDeviceFlow, poll(&ana)?).await?;
    assert_eq!(status, 201, "{connected}");
    assert_eq!(
        (connected["service"].as_str(), connected["account"].as_str()),
        (Some("github"), Some("ana-builds"))
    );
    let (status, _) = call(&state, Route::PollDeviceFlow, poll(&ana)?).await?;
    assert_eq!(status, 404, "the flow ended with the connection");
    let left: i64 = db
        .pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM device_flows", &[])
        .await?
        .get(0);
    assert_eq!(left, 0);
    // A service without a device flow says how to connect it instead.
    let (status, refused) = call(&state, Route::StartDeviceFlow, start(&ana, "vercel")?).await?;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused.to_string().contains("connect it with a token"),
        "{refused}"
    );
    Ok(())
}
