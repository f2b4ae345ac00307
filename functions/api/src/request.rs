//! Reading requests: JSON bodies, bearer tokens and path parameters, each failure naming
//! what is wrong.

use crate::{ApiError, ApiState};
use autocrew_shared::domain::UserId;
use lambda_http::{Body, Request, RequestExt};
use serde::de::DeserializeOwned;

/// The body as `T`; a malformed body or field is a 400 that names it.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => b"",
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    };
    if bytes.is_empty() {
        return Err(ApiError::bad("body", "a JSON body is required"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        // serde names the field in its message ("missing field `command`", "unknown
        // variant", ...); pass it on.
        let field = if e.is_syntax() || e.is_eof() {
            "body"
        } else {
            "body.field"
        };
        ApiError::bad(field, e.to_string())
    })
}

/// The caller, from `Authorization: Bearer <token>`.
pub async fn caller(state: &ApiState, request: &Request) -> Result<UserId, ApiError> {
    let header = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(ApiError::Unauthorized)?;
    state
        .tokens
        .verify(token.trim())
        .await?
        .ok_or(ApiError::Unauthorized)
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
