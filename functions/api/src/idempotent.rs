//! `Idempotency-Key` on every POST, with Stripe's semantics: the first request with a key
//! runs and its answer is kept for 7 days (the sweep's idempotency retention); the same key
//! with the same request gets that answer again (`Idempotent-Replayed: true`), with another
//! request a 422; while the first is still running, the twin waits up to about 3 s for its
//! answer, then gets a 409. A 5xx is not kept, so a retry
//! runs again. Keys are per user.
//!
//! The sign-in routes are left out on purpose: their answers hold tokens, which are never
//! stored, and a refresh token presented twice must count as a replay.

use crate::error::json_response;
use crate::request::idempotency_key;
use crate::{ApiError, ApiState, Route};
use autocrew_shared::ports::Claim;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::time::Duration;

/// The scope of API keys in the idempotency store.
const SCOPE: &str = "api";

/// A claim older than any request (the functions time out after 30 s) was left by one
/// that died: the next request with the key runs.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Whether POSTs to `route` take an `Idempotency-Key`.
fn applies(route: Route) -> bool {
    !matches!(
        route,
        Route::Signup
            | Route::Login
            | Route::Refresh
            | Route::Logout
            | Route::VerifyEmail
            | Route::ResendVerification
            | Route::RequestPasswordReset
            | Route::ResetPassword
    )
}

/// What identifies "the same request": method, path and body.
fn fingerprint(request: &Request) -> String {
    let body: &[u8] = match request.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    };
    let mut hash = Sha256::new();
    hash.update(request.method().as_str().as_bytes());
    hash.update(b" ");
    hash.update(request.uri().path().as_bytes());
    hash.update(b"\n");
    hash.update(body);
    hex::encode(hash.finalize())
}

/// A kept answer: the request it answered (its fingerprint), and the answer.
#[derive(Serialize, Deserialize)]
struct Kept {
    request_sha256: String,
    status: u16,
    /// `null` for an answer with no body.
    body: Value,
}

fn replay(kept: &Kept) -> Response<Body> {
    let mut response = match &kept.body {
        Value::Null => Response::builder()
            .status(kept.status)
            .body(Body::Empty)
            .unwrap_or_else(|_| Response::new(Body::Empty)),
        body => json_response(kept.status, body),
    };
    if let Ok(value) = "true".parse() {
        response.headers_mut().insert("idempotent-replayed", value);
    }
    response
}

/// Runs `run` once per user and key; see the module documentation.
pub async fn once<F, Fut>(
    state: &ApiState,
    route: Route,
    request: Request,
    user: Option<autocrew_shared::domain::UserId>,
    run: F,
) -> Response<Body>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    if request.method() != lambda_http::http::Method::POST || !applies(route) {
        return run(request).await;
    }
    let key = match idempotency_key(&request) {
        Ok(Some(key)) => key,
        Ok(None) => return run(request).await,
        Err(e) => return e.into_response(),
    };
    // Keys are the caller's: without a valid token the route answers 401 by itself.
    let Some(user) = user else {
        return run(request).await;
    };
    let scoped = format!("{user}:{key}");
    let sha = fingerprint(&request);
    let mut claim = state
        .idempotency
        .claim_or_take_over(SCOPE, &scoped, STALE_AFTER)
        .await;
    // A twin still running usually ends within moments: wait for its answer (up to about
    // 3 s) rather than refuse at once.
    for pause_ms in [50u64, 100, 200, 400, 800, 1500] {
        if !matches!(claim, Ok(Claim::InProgress)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        claim = state
            .idempotency
            .claim_or_take_over(SCOPE, &scoped, STALE_AFTER)
            .await;
    }
    match claim {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Claim::Done(stored)) => match serde_json::from_value::<Kept>(stored) {
            Ok(kept) if kept.request_sha256 == sha => replay(&kept),
            Ok(_) => ApiError::Unprocessable(format!(
                "the Idempotency-Key {key:?} was used with a different request"
            ))
            .into_response(),
            Err(e) => ApiError::Internal(Box::new(e)).into_response(),
        },
        Ok(Claim::InProgress) => ApiError::Conflict(format!(
            "a request with the Idempotency-Key {key:?} is still being processed; retry later"
        ))
        .into_response(),
        Ok(Claim::New) => {
            let response = run(request).await;
            let status = response.status().as_u16();
            let outcome = if status >= 500 {
                state.idempotency.abandon(SCOPE, &scoped).await
            } else {
                let body: Value = match response.body() {
                    Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                let kept = Kept {
                    request_sha256: sha,
                    status,
                    body,
                };
                match serde_json::to_value(&kept) {
                    Ok(stored) => state.idempotency.complete(SCOPE, &scoped, &stored).await,
                    Err(e) => Err(autocrew_shared::ports::StoreError::Backend(Box::new(e))),
                }
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "could not record the idempotent answer; a retry will run again");
            }
            response
        }
    }
}
