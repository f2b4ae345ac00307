//! Sign-up, log-in, refresh and password reset against the accounts twin: sessions rotate,
//! a replayed refresh token ends its session, and a reset ends every session.

use super::field_of;
use crate::ApiError;
use crate::auth::{
    SignIn, exported, logged_in, logged_out, me, refreshed, resent, reset, reset_requested,
    signed_up, verified,
};
use crate::costs::settings_changed;
use autocrew_shared::adapters::memory::{MemAccounts, MemBlobs, MemMailer, MemProjects};
use autocrew_shared::domain::requests::{
    Login, RefreshBody, ResetConfirm, ResetRequest, Settings, SignUp, TokenBody,
};
use autocrew_shared::ports::{AccountStore, BlobStore, EmailPurpose, ProjectStore};
use autocrew_shared::services::access::{KeyRing, SigningKeys};
use std::sync::Arc;

struct Bench {
    accounts: MemAccounts,
    keys: KeyRing,
    mailer: MemMailer,
}

impl Bench {
    fn new(mailer: MemMailer) -> Bench {
        let keys = SigningKeys::parse(&SigningKeys::generate("k1")).expect("keys");
        Bench {
            accounts: MemAccounts::new(Arc::new(MemProjects::default())),
            keys: KeyRing::fixed(keys),
            mailer,
        }
    }

    fn ports(&self) -> SignIn<'_> {
        SignIn {
            accounts: &self.accounts,
            keys: &self.keys,
            mailer: &self.mailer,
            trial_credit: autocrew_shared::domain::MicroUsd::ZERO,
            app_link_base: Some("autocrew://"),
        }
    }
}

fn sign_up(email: &str, password: &str) -> SignUp {
    SignUp {
        email: email.into(),
        password: password.into(),
        display_name: " Ana ".into(),
    }
}

fn login(email: &str, password: &str) -> Login {
    Login {
        email: email.into(),
        password: password.into(),
    }
}

const PASSWORD: &str = "correct horse battery";

fn refresh_of(value: &impl serde::Serialize) -> RefreshBody {
    let value = serde_json::to_value(value).expect("a session");
    RefreshBody {
        refresh_token: value["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .into(),
    }
}

#[tokio::test]
async fn a_new_account_gets_a_session_and_a_verification_email_with_its_link() {
    let bench = Bench::new(MemMailer::default());
    let answer = signed_up(&bench.ports(), sign_up(" Ana@Example.com ", PASSWORD))
        .await
        .expect("signed up");
    let answer = serde_json::to_value(&answer).expect("json");
    assert_eq!(answer["user"]["email"], "ana@example.com");
    assert_eq!(answer["user"]["display_name"], "Ana");
    assert_eq!(answer["verification_email"], "sent");
    assert_eq!(answer["token_type"], "Bearer");
    let access = answer["access_token"].as_str().expect("a token");
    let user = bench.keys.verify(access).await.expect("our token");
    assert_eq!(answer["user"]["id"], serde_json::json!(user));
    let sent = bench.mailer.sent();
    assert_eq!(sent.len(), 1);
    let code = bench.accounts.emailed(user, EmailPurpose::VerifyEmail);
    assert_eq!(code.len(), 1);
    assert!(
        sent[0]
            .text
            .contains(&format!("autocrew://verify-email?token={}", code[0]))
    );
}

#[tokio::test]
async fn a_mail_provider_that_is_down_does_not_lose_the_account() {
    let bench = Bench::new(MemMailer::failing());
    let answer = signed_up(&bench.ports(), sign_up("ana@example.com", PASSWORD))
        .await
        .expect("signed up");
    let answer = serde_json::to_value(&answer).expect("json");
    assert!(
        answer["verification_email"]
            .as_str()
            .is_some_and(|s| s.starts_with("not sent"))
    );
}

#[tokio::test]
async fn sign_up_refuses_a_taken_email_a_short_password_and_a_long_name() {
    let bench = Bench::new(MemMailer::default());
    signed_up(&bench.ports(), sign_up("ana@example.com", PASSWORD))
        .await
        .expect("signed up");
    let again = signed_up(&bench.ports(), sign_up("ANA@example.com", PASSWORD)).await;
    assert!(matches!(again, Err(ApiError::Conflict(_))));
    let short = signed_up(&bench.ports(), sign_up("bo@example.com", "short")).await;
    assert_eq!(
        field_of(short.map(|_| ()).expect_err("refused")),
        "password"
    );
    let mut long = sign_up("bo@example.com", PASSWORD);
    long.display_name = "n".repeat(101);
    let long = signed_up(&bench.ports(), long).await;
    assert_eq!(
        field_of(long.map(|_| ()).expect_err("refused")),
        "display_name"
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let bench = Bench::new(MemMailer::default());
    signed_up(&bench.ports(), sign_up("ana@example.com", PASSWORD))
        .await
        .expect("signed up");
    let wrong = logged_in(&bench.ports(), login("ana@example.com", "wrong password!"))
        .await
        .map(|_| ())
        .expect_err("refused");
    let unknown = logged_in(&bench.ports(), login("nobody@example.com", PASSWORD))
        .await
        .map(|_| ())
        .expect_err("refused");
    let garbled = logged_in(&bench.ports(), login("not an email", PASSWORD))
        .await
        .map(|_| ())
        .expect_err("refused");
    for refused in [wrong, unknown, garbled] {
        assert!(
            matches!(&refused, ApiError::Unauthorized(why) if why == "the email or the password is wrong"),
            "{refused:?}"
        );
    }
    assert!(
        logged_in(&bench.ports(), login("ANA@example.com", PASSWORD))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_refresh_token_works_once_and_a_replay_ends_the_session() {
    let bench = Bench::new(MemMailer::default());
    let first = signed_up(&bench.ports(), sign_up("ana@example.com", PASSWORD))
        .await
        .expect("signed up");
    let presented = refresh_of(&first);
    let next = refreshed(&bench.ports(), &presented)
        .await
        .expect("rotated");
    let replayed = refreshed(&bench.ports(), &presented).await;
    assert!(
        matches!(&replayed, Err(ApiError::Unauthorized(why)) if why.contains("already used")),
        "{:?}",
        replayed.map(|_| ())
    );
    let after = refreshed(&bench.ports(), &refresh_of(&next)).await;
    assert!(after.is_err(), "the replay revoked the whole session");
    let unknown = refreshed(
        &bench.ports(),
        &RefreshBody {
            refresh_token: "nope".into(),
        },
    )
    .await;
    assert!(matches!(unknown, Err(ApiError::Unauthorized(_))));
}

#[tokio::test]
async fn a_reset_code_works_once_and_ends_every_session() {
    let bench = Bench::new(MemMailer::default());
    let first = signed_up(&bench.ports(), sign_up("ana@example.com", PASSWORD))
        .await
        .expect("signed up");
    let user = serde_json::to_value(&first).expect("json")["user"]["id"]
        .as_str()
        .and_then(|id| autocrew_shared::domain::UserId::parse("user", id).ok())
        .expect("a user id");
    let code = bench
        .accounts
        .issue_email_token(user, EmailPurpose::ResetPassword)
        .await
        .expect("a code");
    let confirm = |token: &str, password: &str| ResetConfirm {
        token: token.into(),
        password: password.into(),
    };
    let weak = reset(&bench.ports(), confirm(&code, "short")).await;
    assert_eq!(field_of(weak.map(|_| ()).expect_err("refused")), "password");
    let new_password = "a new horse battery";
    reset(&bench.ports(), confirm(&code, new_password))
        .await
        .expect("reset");
    let again = reset(&bench.ports(), confirm(&code, new_password)).await;
    assert_eq!(field_of(again.map(|_| ()).expect_err("refused")), "token");
    assert!(
        refreshed(&bench.ports(), &refresh_of(&first))
            .await
            .is_err(),
        "old sessions end"
    );
    assert!(
        logged_in(&bench.ports(), login("ana@example.com", PASSWORD))
            .await
            .is_err()
    );
    assert!(
        logged_in(&bench.ports(), login("ana@example.com", new_password))
            .await
            .is_ok()
    );
}

/// The user a sign-up made.
fn user_of(answer: &impl serde::Serialize) -> autocrew_shared::domain::UserId {
    serde_json::to_value(answer).expect("json")["user"]["id"]
        .as_str()
        .and_then(|id| autocrew_shared::domain::UserId::parse("user", id).ok())
        .expect("a user id")
}

#[tokio::test]
async fn the_emailed_code_verifies_the_email_once() {
    let projects = Arc::new(MemProjects::default());
    let mut bench = Bench::new(MemMailer::default());
    bench.accounts = MemAccounts::new(projects.clone());
    let answer = signed_up(&bench.ports(), sign_up("ana@example.com", PASSWORD))
        .await
        .expect("signed up");
    let user = user_of(&answer);
    let code = bench.accounts.emailed(user, EmailPurpose::VerifyEmail);
    let body = TokenBody {
        token: format!(" {} ", code[0]),
    };
    let answer = verified(&bench.accounts, &*projects, &body)
        .await
        .expect("verified");
    assert!(answer.user.email_verified_at.is_some());
    let again = verified(&bench.accounts, &*projects, &body).await;
    assert_eq!(field_of(again.expect_err("refused")), "token");
    let resend = resent(&bench.ports(), &*projects, user).await;
    assert!(
        matches!(resend, Err(ApiError::Conflict(_))),
        "already verified"
    );
}

#[tokio::test]
async fn a_new_code_is_sent_and_a_provider_down_says_to_try_later() {
    let projects = Arc::new(MemProjects::default());
    let mut bench = Bench::new(MemMailer::default());
    bench.accounts = MemAccounts::new(projects.clone());
    let answer = signed_up(&bench.ports(), sign_up("ana@example.com", PASSWORD))
        .await
        .expect("signed up");
    let user = user_of(&answer);
    let sent = resent(&bench.ports(), &*projects, user)
        .await
        .expect("sent");
    assert_eq!(sent.to, "ana@example.com");
    assert_eq!(bench.mailer.sent().len(), 2);
    bench.mailer = MemMailer::failing();
    let down = resent(&bench.ports(), &*projects, user).await;
    assert!(matches!(down, Err(ApiError::Unavailable(_))));
}

#[tokio::test]
async fn the_semantic_cache_threshold_is_a_similarity_or_null() {
    let projects = MemProjects::default();
    let user = projects
        .create_user("ana@example.com", "Ana")
        .await
        .expect("a user")
        .id;
    let set = |t: Option<f32>| Settings {
        semantic_cache_threshold: Some(t),
        timezone: None,
        ..Default::default()
    };
    let on = settings_changed(&projects, user, &set(Some(0.92)))
        .await
        .expect("opted in");
    assert_eq!(on.user.semantic_cache_threshold, Some(0.92));
    for wrong in [0.4, 1.01, f32::NAN] {
        let refused = settings_changed(&projects, user, &set(Some(wrong))).await;
        assert_eq!(
            field_of(refused.expect_err("refused")),
            "semantic_cache_threshold"
        );
    }
    let off = settings_changed(&projects, user, &set(None))
        .await
        .expect("opted out");
    assert_eq!(off.user.semantic_cache_threshold, None);
}

#[tokio::test]
async fn the_time_zone_is_an_iana_name_and_a_change_leaves_the_rest_alone() {
    let projects = MemProjects::default();
    let user = projects
        .create_user("ana@example.com", "Ana")
        .await
        .expect("a user")
        .id;
    let tz = |name: &str| Settings {
        semantic_cache_threshold: None,
        timezone: Some(name.into()),
        ..Default::default()
    };
    let cache = Settings {
        semantic_cache_threshold: Some(Some(0.9)),
        timezone: None,
        ..Default::default()
    };
    settings_changed(&projects, user, &cache)
        .await
        .expect("opted in");
    let paris = settings_changed(&projects, user, &tz("Europe/Paris"))
        .await
        .expect("set");
    assert_eq!(paris.user.timezone, "Europe/Paris");
    assert_eq!(paris.user.semantic_cache_threshold, Some(0.9), "left alone");
    for wrong in ["Mars/Olympus", "", "UTC+25"] {
        let refused = settings_changed(&projects, user, &tz(wrong)).await;
        assert_eq!(
            field_of(refused.expect_err("refused")),
            "timezone",
            "{wrong:?}"
        );
    }
    let nothing = Settings {
        semantic_cache_threshold: None,
        timezone: None,
        ..Default::default()
    };
    let refused = settings_changed(&projects, user, &nothing).await;
    assert_eq!(field_of(refused.expect_err("refused")), "body");
    // The body's `null` opts out; its absence changes nothing.
    let parsed: Settings = serde_json::from_str(r#"{"semantic_cache_threshold": null}"#).unwrap();
    assert_eq!(parsed.semantic_cache_threshold, Some(None));
    let parsed: Settings = serde_json::from_str(r#"{"timezone": "Asia/Tokyo"}"#).unwrap();
    assert_eq!(parsed.semantic_cache_threshold, None);
}

#[tokio::test]
async fn a_reset_code_goes_only_to_an_account_and_the_answer_never_says_which() {
    let bench = Bench::new(MemMailer::default());
    let answer = signed_up(&bench.ports(), sign_up("ana@example.com", PASSWORD))
        .await
        .expect("signed up");
    let user = user_of(&answer);
    let ask = |email: &str| ResetRequest {
        email: email.into(),
    };
    let unknown = reset_requested(&bench.ports(), &ask("ben@example.com"))
        .await
        .expect("answered");
    let known = reset_requested(&bench.ports(), &ask(" ANA@example.com "))
        .await
        .expect("answered");
    assert_eq!(unknown.status, known.status);
    assert_eq!(
        bench
            .accounts
            .emailed(user, EmailPurpose::ResetPassword)
            .len(),
        1
    );
    assert_eq!(
        bench.mailer.sent().len(),
        2,
        "the verification and the reset"
    );
    let malformed = reset_requested(&bench.ports(), &ask("not an address")).await;
    assert_eq!(field_of(malformed.expect_err("refused")), "email");
}

#[tokio::test]
async fn a_logged_out_session_cannot_be_refreshed_and_an_unknown_token_is_no_error() {
    let bench = Bench::new(MemMailer::default());
    let answer = signed_up(&bench.ports(), sign_up("ana@example.com", PASSWORD))
        .await
        .expect("signed up");
    let token = refresh_of(&answer);
    logged_out(&bench.accounts, &token)
        .await
        .expect("logged out");
    let refused = refreshed(&bench.ports(), &token).await.err();
    assert!(
        matches!(refused, Some(ApiError::Unauthorized(_))),
        "{refused:?}"
    );
    let unknown = RefreshBody {
        refresh_token: "never-issued".into(),
    };
    logged_out(&bench.accounts, &unknown)
        .await
        .expect("no error");
}

#[tokio::test]
async fn an_export_is_stored_for_its_user_and_a_deleted_account_is_gone() {
    let projects = Arc::new(MemProjects::default());
    let accounts = MemAccounts::new(projects.clone());
    let blobs = MemBlobs::default();
    let ana = projects
        .create_user("ana@example.com", "Ana")
        .await
        .expect("created");
    let link = exported(&accounts, &blobs, ana.id).await.expect("exported");
    let [key] = blobs.keys().try_into().expect("one file");
    assert!(key.starts_with(&format!("exports/{}/", ana.id)), "{key}");
    assert!(link.url.contains(&key) && link.expires_in == 3600);
    let document: serde_json::Value =
        serde_json::from_slice(&blobs.get(&key).await.expect("stored")).expect("json");
    assert_eq!(document["user"]["email"], "ana@example.com");
    assert_eq!(
        link.size_bytes,
        blobs.get(&key).await.expect("stored").len() as u64
    );
    assert_eq!(me(&*projects, ana.id).await.expect("read").user.id, ana.id);
    accounts.delete_account(ana.id).await.expect("deleted");
    for gone in [
        me(&*projects, ana.id).await.map(|_| ()),
        exported(&accounts, &blobs, ana.id).await.map(|_| ()),
    ] {
        assert!(matches!(gone, Err(ApiError::Unauthorized(_))), "{gone:?}");
    }
}
