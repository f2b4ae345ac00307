//! Tokens of an external OpenID Connect issuer (as Cognito, Auth0 or Clerk sign them),
//! accepted by JWKS when `OIDC_ISSUER` is set: a local issuer publishes an ES256 key, and
//! its tokens reach the API as one of our users; every token that breaks `iss`, `aud`,
//! `exp`, the signature or the algorithm is a 401.

use crate::api::{SAMPLE_TOKEN, call, event};
use autocrew_api::Route;
use autocrew_shared::services::oidc::OidcConfig;
use autocrew_tests::TestDb;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An issuer: its key pair, and how many times its keys were fetched.
struct Issuer {
    url: String,
    key: EncodingKey,
    fetches: Arc<AtomicUsize>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A P-256 key: the signing key, and its public JWK named `kid`.
fn key_pair(kid: &str) -> anyhow::Result<(EncodingKey, Value)> {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|_| anyhow::anyhow!("key generation"))?;
    let pkcs8 = pair.to_pkcs8v1().map_err(|_| anyhow::anyhow!("pkcs8"))?;
    // The public key is the uncompressed point: 0x04, then x and y.
    let point = pair.public_key().as_ref().to_vec();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": b64(&point[1..33]), "y": b64(&point[33..65])
    });
    Ok((EncodingKey::from_ec_der(pkcs8.as_ref()), jwk))
}

/// Serves `/.well-known/jwks.json` with `jwk` on a free loopback port.
async fn issuer() -> anyhow::Result<Issuer> {
    let (key, jwk) = key_pair("ext-1")?;
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let counted = counted.clone();
            let jwk = jwk.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"keys": [jwk]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Issuer { url, key, fetches })
}

fn now() -> u64 {
    autocrew_shared::services::access::now_secs()
}

fn token(key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap_or_default()
}

async fn me(state: &autocrew_api::ApiState, token: &str) -> anyhow::Result<(u16, Value)> {
    call(
        state,
        Route::GetMe,
        event("apigw-get-me.json", &[(SAMPLE_TOKEN, token)])?,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_issuers_tokens_are_checked_by_jwks_and_name_one_user() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let issuer = issuer().await?;
    let config = OidcConfig {
        issuer: issuer.url.clone(),
        audience: "autocrew-app".into(),
        jwks_url: format!("{}/.well-known/jwks.json", issuer.url),
    };
    let (state, _p) =
        crate::api::api_with(&db, |settings| settings.auth.oidc = Some(config)).await?;
    let claims = |sub: &str, extra: Value| {
        let mut claims = json!({
            "iss": issuer.url, "aud": "autocrew-app", "sub": sub,
            "iat": now(), "exp": now() + 600,
            "email": "kim@example.com", "email_verified": true
        });
        if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            claims.extend(extra.clone());
        }
        claims
    };

    // A valid token names a user, made on first sight with the verified address.
    let good = token(&issuer.key, "ext-1", &claims("user_2abc", json!({})));
    let (status, body) = me(&state, &good).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["email"], "kim@example.com");
    let id = body["user"]["id"].clone();
    // The same subject again is the same user, with no second fetch of the keys.
    let again = token(
        &issuer.key,
        "ext-1",
        &claims("user_2abc", json!({"email": "other@example.com"})),
    );
    let (status, body) = me(&state, &again).await?;
    assert_eq!((status, &body["user"]["id"]), (200, &id));
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);

    // An address someone else's account has does not open that account.
    let (status, _) = call(
        &state,
        Route::Signup,
        event(
            "apigw-signup.json",
            &[("ana@example.com", "lee@example.com")],
        )?,
    )
    .await?;
    assert_eq!(status, 201);
    let lee = token(
        &issuer.key,
        "ext-1",
        &claims("user_lee", json!({"email": "lee@example.com"})),
    );
    let (status, body) = me(&state, &lee).await?;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["user"]["email"], "lee@example.com");

    // Every broken token is a 401.
    let (other_key, _) = key_pair("ext-1")?;
    let refused = [
        (
            "another audience",
            token(
                &issuer.key,
                "ext-1",
                &claims("s", json!({"aud": "someone-else"})),
            ),
        ),
        (
            "another issuer",
            token(
                &issuer.key,
                "ext-1",
                &claims("s", json!({"iss": "https://evil.example.com"})),
            ),
        ),
        (
            "expired",
            token(
                &issuer.key,
                "ext-1",
                &claims("s", json!({"iat": now() - 7200, "exp": now() - 3600})),
            ),
        ),
        (
            "another key under the same kid",
            token(&other_key, "ext-1", &claims("s", json!({}))),
        ),
        (
            "an unknown kid",
            token(&issuer.key, "ext-9", &claims("s", json!({}))),
        ),
        ("alg none", {
            let body = b64(claims("s", json!({})).to_string().as_bytes());
            format!("{}.{body}.", b64(br#"{"alg":"none","kid":"ext-1"}"#))
        }),
    ];
    for (what, token) in refused {
        let (status, body) = me(&state, &token).await?;
        assert_eq!(status, 401, "{what}: {body}");
    }
    // An unknown kid refetches the keys at most every 30 s: the first fetch was just now.
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);
    Ok(())
}
