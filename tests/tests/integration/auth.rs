//! Sign-in, as the app uses it through the API routes (payloads from `events/`): sign-up
//! with the verification email, login, refresh rotation and reuse, logout, password reset,
//! and every kind of bad token or credential.

use crate::api::{SAMPLE_TOKEN, api, call, event};
use autocrew_api::{ApiState, Route};
use autocrew_shared::adapters::postgres::PgMailOutbox;
use autocrew_shared::services::access::{AUDIENCE, ISSUER, SigningKeys};
use autocrew_tests::TestDb;
use base64::Engine;
use serde_json::{Value, json};

const REFRESH: &str = "acr_sample_refresh_token";
const EMAIL_TOKEN: &str = "ace_sample_email_token";

/// A route's event with its JSON body replaced by `body`.
fn with_body(file: &str, body: &Value) -> anyhow::Result<lambda_http::Request> {
    let template: Value = serde_json::from_str(&std::fs::read_to_string(format!(
        "{}/../events/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))?)?;
    let mut template = template;
    template["body"] = Value::String(body.to_string());
    Ok(lambda_http::request::from_str(&template.to_string())?)
}

async fn signup(state: &ApiState, email: &str, password: &str) -> anyhow::Result<(u16, Value)> {
    call(
        state,
        Route::Signup,
        with_body(
            "apigw-signup.json",
            &json!({"email": email, "password": password, "display_name": "Ana"}),
        )?,
    )
    .await
}

async fn login(state: &ApiState, email: &str, password: &str) -> anyhow::Result<(u16, Value)> {
    call(
        state,
        Route::Login,
        with_body(
            "apigw-login.json",
            &json!({"email": email, "password": password}),
        )?,
    )
    .await
}

async fn refresh(state: &ApiState, token: &str) -> anyhow::Result<(u16, Value)> {
    call(
        state,
        Route::Refresh,
        event("apigw-refresh.json", &[(REFRESH, token)])?,
    )
    .await
}

async fn me(state: &ApiState, access: &str) -> anyhow::Result<(u16, Value)> {
    call(
        state,
        Route::GetMe,
        event("apigw-get-me.json", &[(SAMPLE_TOKEN, access)])?,
    )
    .await
}

/// The code in the newest email to `to` with `subject`.
async fn emailed_code(db: &TestDb, to: &str, subject: &str) -> anyhow::Result<String> {
    let sent = PgMailOutbox::new(db.pool.clone())
        .list(Some(to), 10)
        .await?;
    let mail = sent
        .iter()
        .find(|m| m.email.subject == subject)
        .ok_or_else(|| anyhow::anyhow!("no {subject:?} email to {to}: {sent:?}"))?;
    mail.email
        .text
        .split_whitespace()
        .find(|w| w.starts_with("ace_"))
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no code in {:?}", mail.email.text))
}

fn text(body: &Value, key: &str) -> String {
    body[key].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn sign_up_verify_the_email_log_in_and_read_the_account() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;

    let (status, body) = signup(&state, " Ana@Example.com ", "correct horse battery").await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email"], "ana@example.com");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["verification_email"], "sent");
    assert!(text(&body, "refresh_token").starts_with("acr_"));
    assert!(body["user"]["email_verified_at"].is_null());
    assert!(body["user"].get("password_hash").is_none(), "never shown");

    let (status, account) = me(&state, &text(&body, "access_token")).await?;
    assert_eq!(
        (status, account["user"]["id"].clone()),
        (200, body["user"]["id"].clone())
    );

    let code = emailed_code(&db, "ana@example.com", "Verify your Autocrew email").await?;
    let mail = PgMailOutbox::new(db.pool.clone())
        .list(Some("ana@example.com"), 1)
        .await?;
    assert!(
        mail[0]
            .email
            .text
            .contains(&format!("autocrew://verify-email?token={code}")),
        "the link carries the code: {}",
        mail[0].email.text
    );
    let verify = |code: String| {
        let state = state.clone();
        async move {
            call(
                &state,
                Route::VerifyEmail,
                event("apigw-verify-email.json", &[(EMAIL_TOKEN, code.as_str())])?,
            )
            .await
        }
    };
    let (status, verified) = verify(code.clone()).await?;
    assert_eq!(status, 200, "{verified}");
    assert!(verified["user"]["email_verified_at"].is_string());
    let (again, body) = verify(code).await?;
    assert_eq!(
        (again, body["field"].as_str()),
        (400, Some("token")),
        "a code works once"
    );

    let (status, logged_in) = login(&state, "ANA@example.com", "correct horse battery").await?;
    assert_eq!(status, 200, "{logged_in}");
    assert_eq!(logged_in["user"]["email"], "ana@example.com");
    assert_ne!(
        text(&logged_in, "refresh_token"),
        text(&body, "refresh_token")
    );
    let (status, _) = me(&state, &text(&logged_in, "access_token")).await?;
    assert_eq!(status, 200);

    let (taken, body) = signup(&state, "ana@example.com", "another long password").await?;
    assert_eq!(taken, 409, "{body}");
    Ok(())
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    signup(&state, "bo@example.com", "correct horse battery").await?;

    let wrong = login(&state, "bo@example.com", "incorrect horse battery").await?;
    let unknown = login(&state, "nobody@example.com", "correct horse battery").await?;
    let malformed = login(&state, "not an email", "correct horse battery").await?;
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong, unknown, "the same status and body");
    assert_eq!(wrong, malformed);
    Ok(())
}

#[tokio::test]
async fn a_refresh_token_rotates_and_a_replayed_one_revokes_the_whole_session() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let (_, first) = signup(&state, "cy@example.com", "correct horse battery").await?;
    let r1 = text(&first, "refresh_token");

    let (status, second) = refresh(&state, &r1).await?;
    assert_eq!(status, 200, "{second}");
    let r2 = text(&second, "refresh_token");
    assert_ne!(r1, r2);
    assert_eq!(me(&state, &text(&second, "access_token")).await?.0, 200);

    // r1 again: someone replayed it. The session (r2 too) ends.
    let (replayed, body) = refresh(&state, &r1).await?;
    assert_eq!(replayed, 401, "{body}");
    assert!(text(&body, "error").contains("already used"), "{body}");
    assert_eq!(refresh(&state, &r2).await?.0, 401, "the family is revoked");

    // Another sign-in is another session, untouched.
    let (_, other) = login(&state, "cy@example.com", "correct horse battery").await?;
    assert_eq!(
        refresh(&state, &text(&other, "refresh_token")).await?.0,
        200
    );

    // Logout ends a session; unknown tokens are fine to log out.
    let (_, third) = login(&state, "cy@example.com", "correct horse battery").await?;
    let r3 = text(&third, "refresh_token");
    let (status, _) = call(
        &state,
        Route::Logout,
        event("apigw-logout.json", &[(REFRESH, r3.as_str())])?,
    )
    .await?;
    assert_eq!(status, 204);
    assert_eq!(refresh(&state, &r3).await?.0, 401);
    let (status, _) = call(&state, Route::Logout, event("apigw-logout.json", &[])?).await?;
    assert_eq!(status, 204);
    assert_eq!(refresh(&state, "acr_unknown").await?.0, 401);
    Ok(())
}

#[tokio::test]
async fn a_password_reset_by_email_ends_every_session() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let (_, first) = signup(&state, "di@example.com", "correct horse battery").await?;
    let old_refresh = text(&first, "refresh_token");
    let ask = |email: &'static str| {
        let state = state.clone();
        async move {
            call(
                &state,
                Route::RequestPasswordReset,
                with_body(
                    "apigw-request-password-reset.json",
                    &json!({"email": email}),
                )?,
            )
            .await
        }
    };
    let (known, body) = ask("di@example.com").await?;
    let (unknown, unknown_body) = ask("nobody@example.com").await?;
    assert_eq!((known, unknown), (202, 202));
    assert_eq!(body, unknown_body, "never tells whether an account exists");
    assert!(
        PgMailOutbox::new(db.pool.clone())
            .list(Some("nobody@example.com"), 1)
            .await?
            .is_empty()
    );

    let code = emailed_code(&db, "di@example.com", "Reset your Autocrew password").await?;
    let confirm = |code: String, password: &'static str| {
        let state = state.clone();
        async move {
            call(
                &state,
                Route::ResetPassword,
                with_body(
                    "apigw-reset-password.json",
                    &json!({"token": code, "password": password}),
                )?,
            )
            .await
        }
    };
    let (short, body) = confirm(code.clone(), "short").await?;
    assert_eq!((short, body["field"].as_str()), (400, Some("password")));
    let (status, session) = confirm(code.clone(), "a brand new passphrase").await?;
    assert_eq!(status, 200, "{session}");
    assert_eq!(me(&state, &text(&session, "access_token")).await?.0, 200);
    assert_eq!(
        refresh(&state, &old_refresh).await?.0,
        401,
        "old sessions end"
    );
    assert_eq!(
        confirm(code, "another new passphrase").await?.0,
        400,
        "a code works once"
    );
    assert_eq!(
        login(&state, "di@example.com", "correct horse battery")
            .await?
            .0,
        401
    );
    assert_eq!(
        login(&state, "di@example.com", "a brand new passphrase")
            .await?
            .0,
        200
    );
    Ok(())
}

#[tokio::test]
async fn forged_expired_and_malformed_tokens_get_401_never_a_5xx() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let (_, body) = signup(&state, "ed@example.com", "correct horse battery").await?;
    let good = text(&body, "access_token");
    let user = body["user"]["id"].as_str().unwrap_or_default().to_owned();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = good.split('.').collect();
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| {
        b64.encode(
            json!({"sub": user, "iss": ISSUER, "aud": AUDIENCE, "iat": now - 1000, "exp": exp})
                .to_string(),
        )
    };
    let none_header = b64.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
    let hs512_header = b64.encode(r#"{"alg":"HS512","typ":"JWT","kid":"k1"}"#);
    let other_keys =
        SigningKeys::parse(&SigningKeys::generate("k1")).map_err(anyhow::Error::msg)?;
    let cases = [
        ("alg none", format!("{none_header}.{}.", claims(now + 600))),
        (
            "alg none, signature kept",
            format!("{none_header}.{}.{}", claims(now + 600), parts[2]),
        ),
        (
            "another algorithm",
            format!("{hs512_header}.{}.{}", parts[1], parts[2]),
        ),
        (
            "a changed payload",
            format!("{}.{}.{}", parts[0], claims(now + 3600), parts[2]),
        ),
        (
            "another key",
            other_keys
                .issue(autocrew_shared::domain::UserId::new(), now as u64)
                .access_token,
        ),
        ("expired", {
            let user = autocrew_shared::domain::UserId::parse("sub", &user)?;
            state.keys.issue_at(user, (now - 3600) as u64).access_token
        }),
        ("malformed", "not.a.jwt".to_owned()),
        ("empty", String::new()),
        ("huge", "a".repeat(20_000)),
    ];
    for (what, token) in cases {
        let (status, body) = me(&state, &token).await?;
        assert_eq!(status, 401, "{what}: {body}");
        if what == "expired" {
            assert!(text(&body, "error").contains("expired"), "{body}");
        }
    }
    let (status, _) = call(&state, Route::GetMe, {
        let mut request = event("apigw-get-me.json", &[])?;
        request.headers_mut().remove("authorization");
        request
    })
    .await?;
    assert_eq!(status, 401, "no header");
    Ok(())
}

#[tokio::test]
async fn sign_up_refuses_bad_fields_with_a_400_naming_them() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let cases = [
        (
            json!({"email": "no-at-sign", "password": "correct horse battery"}),
            "email",
        ),
        (json!({"email": "a@b.co", "password": "short"}), "password"),
        (
            json!({"email": "a@b.co", "password": "x".repeat(300)}),
            "password",
        ),
        (
            json!({"email": "a@b.co", "password": "correct horse\u{0}battery"}),
            "password",
        ),
        (
            json!({"email": "a@b.co", "password": "correct horse battery", "admin": true}),
            "body.field",
        ),
        (json!({"email": "a@b.co"}), "body.field"),
    ];
    for (body, field) in cases {
        let (status, answer) = call(
            &state,
            Route::Signup,
            with_body("apigw-signup.json", &body)?,
        )
        .await?;
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some(field)),
            "{body}: {answer}"
        );
    }
    Ok(())
}
