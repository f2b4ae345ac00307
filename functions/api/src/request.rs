//! Reading requests: JSON bodies, bearer tokens and path parameters, each failure naming
//! what is wrong.

use crate::{ApiError, ApiState};
use autocrew_shared::domain::UserId;
use autocrew_shared::services::access::AccessError;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;

/// The largest body a route reads: every route takes small JSON (files go to the bucket by
/// presigned PUT).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// 413 for a body over `MAX_BODY_BYTES`, before anything else is done with the request.
pub(crate) fn too_large(request: &Request) -> Option<Response<Body>> {
    let size = match request.body() {
        Body::Text(text) => text.len(),
        Body::Binary(bytes) => bytes.len(),
        _ => 0,
    };
    (size > MAX_BODY_BYTES).then(|| {
        crate::error::json_response(
            413,
            &crate::error::ErrorBody {
                error: format!("the body is {size} bytes; at most {MAX_BODY_BYTES} are accepted"),
                field: Some("body".to_owned()),
            },
        )
    })
}

/// The body as `T`; a malformed body or field is a 400 that names it.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    optional_json_body(request)?.ok_or_else(|| ApiError::bad("body", "a JSON body is required"))
}

/// The body as `T`, or `None` when there is none.
pub fn optional_json_body<T: DeserializeOwned>(request: &Request) -> Result<Option<T>, ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => b"",
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(not_utf8(bytes, e));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad("body", format!("not valid JSON: {e}")))?;
    refuse_control_characters(&value, "body")?;
    serde_json::from_value(value).map(Some).map_err(|e| {
        // serde names the field in its message ("missing field `command`", "unknown
        // variant", ...); pass it on.
        ApiError::bad("body.field", e.to_string())
    })
}

/// A 400 for a body that is not UTF-8, naming the field whose text holds the bad bytes when
/// the rest is JSON (read with the bad bytes replaced, to find them).
fn not_utf8(bytes: &[u8], e: std::str::Utf8Error) -> ApiError {
    let at = e.valid_up_to();
    let lossy = String::from_utf8_lossy(bytes);
    let field = serde_json::from_str::<serde_json::Value>(&lossy)
        .ok()
        .and_then(|value| replaced_in(&value, "body"))
        .unwrap_or_else(|| "body".into());
    ApiError::bad(
        field.strip_prefix("body.").unwrap_or(&field),
        format!("must be valid UTF-8 (invalid bytes at offset {at})"),
    )
}

/// The path of the first string holding U+FFFD, the replacement of invalid bytes.
fn replaced_in(value: &serde_json::Value, path: &str) -> Option<String> {
    match value {
        serde_json::Value::String(text) if text.contains('\u{FFFD}') => Some(path.to_owned()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| replaced_in(item, &format!("{path}[{i}]"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\u{FFFD}') {
                return Some(path.to_owned());
            }
            replaced_in(item, &format!("{path}.{key}"))
        }),
        _ => None,
    }
}

/// Text must not carry control characters (NUL and the like; tab and line breaks are
/// text): Postgres refuses NUL, and none of them belongs in a name or a command.
fn refuse_control_characters(value: &serde_json::Value, path: &str) -> Result<(), ApiError> {
    let bad = |text: &str| {
        text.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    };
    match value {
        serde_json::Value::String(text) if bad(text) => Err(ApiError::bad(
            path.strip_prefix("body.").unwrap_or(path),
            "must not contain control characters such as NUL",
        )),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| refuse_control_characters(item, &format!("{path}[{i}]"))),
        serde_json::Value::Object(fields) => fields.iter().try_for_each(|(key, item)| {
            if bad(key) {
                return Err(ApiError::bad(
                    path,
                    "field names must not contain control characters",
                ));
            }
            refuse_control_characters(item, &format!("{path}.{key}"))
        }),
        _ => Ok(()),
    }
}

/// The outcome of checking a request's bearer token, kept in its extensions so that the
/// rate limits, the idempotency keys and the route check it once: `None` when the request
/// carries no bearer token.
#[derive(Debug, Clone)]
pub(crate) struct Verified(pub Option<Result<UserId, AccessError>>);

/// The bearer token of `Authorization`, if any.
pub(crate) fn bearer(request: &Request) -> Option<&str> {
    let header = request.headers().get("authorization")?.to_str().ok()?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Checks the bearer token (signature and expiry, no database round trip) and keeps the
/// outcome in the request.
pub(crate) async fn verify(state: &ApiState, request: &mut Request) -> Option<UserId> {
    let outcome = match bearer(request) {
        Some(token) => Some(state.keys.verify(token).await),
        None => None,
    };
    let user = outcome.as_ref().and_then(|o| o.as_ref().ok().copied());
    request.extensions_mut().insert(Verified(outcome));
    user
}

/// The caller, from `Authorization: Bearer <access token>`, as `verify` found it.
pub async fn caller(state: &ApiState, request: &Request) -> Result<UserId, ApiError> {
    let outcome = match request.extensions().get::<Verified>() {
        Some(Verified(outcome)) => outcome.clone(),
        None => match bearer(request) {
            Some(token) => Some(state.keys.verify(token).await),
            None => None,
        },
    };
    match outcome {
        None => Err(ApiError::Unauthorized(
            "send an access token as Authorization: Bearer <token>".into(),
        )),
        Some(Ok(user)) => Ok(user),
        Some(Err(AccessError::Expired)) => Err(ApiError::Unauthorized(
            "the access token has expired; refresh it with POST /auth/refresh".into(),
        )),
        Some(Err(AccessError::Unavailable(reason))) => {
            tracing::error!(reason, "the token's user could not be looked up");
            Err(ApiError::Unavailable(
                "your account could not be looked up; try again".into(),
            ))
        }
        Some(Err(_)) => Err(ApiError::Unauthorized(
            "the access token is not valid".into(),
        )),
    }
}

/// A path parameter, parsed with `parse` (which names the parameter on failure).
pub fn path_param<T>(
    request: &Request,
    name: &'static str,
    parse: impl Fn(&str, &str) -> Result<T, autocrew_shared::domain::ids::InvalidId>,
) -> Result<T, ApiError> {
    let params = request.path_parameters_ref();
    let raw = params
        .and_then(|p| p.first(name))
        .ok_or_else(|| ApiError::bad(name, "missing path parameter"))?;
    parse(name, raw).map_err(|e| ApiError::bad(name, e.to_string()))
}

/// A query parameter's text, if present and not blank.
pub fn query_text(request: &Request, name: &str) -> Option<String> {
    request
        .query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A query parameter as a number, `default` when absent.
pub fn query_number(request: &Request, name: &'static str, default: i64) -> Result<i64, ApiError> {
    match request
        .query_string_parameters_ref()
        .and_then(|q| q.first(name))
    {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|_| ApiError::bad(name, format!("must be a whole number, got {raw:?}"))),
    }
}

/// The `Idempotency-Key` header, if sent: 1-255 visible ASCII characters.
pub fn idempotency_key(request: &Request) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    let visible = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > 255 || !visible {
        return Err(ApiError::bad(
            "Idempotency-Key",
            "must be 1-255 visible ASCII characters, such as a UUID",
        ));
    }
    Ok(Some(key.to_owned()))
}
