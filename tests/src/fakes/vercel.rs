//! A small Vercel that keeps deployments: `GET /v2/user`, `POST /v13/deployments` with
//! inlined files (a deployment of the same files under the same name is reused, as Vercel
//! does unless `forceNew`), `GET /v13/deployments/{id}` moving QUEUED → BUILDING → READY as
//! it is asked (slowly, past the step's quick looks, when `slow`), `PATCH
//! /v12/deployments/{id}/cancel`, and the sites themselves served under `/sites/{id}/`.

use super::{Fake, error_json};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct FakeDeployment {
    pub id: String,
    pub name: String,
    pub account: String,
    pub files: BTreeMap<String, Vec<u8>>,
    /// How many times it was looked at: it is READY after two.
    pub looks: u32,
    /// Looks until it is READY (2; 8 when the fake builds slowly).
    pub ready_after: u32,
    pub failed: bool,
    pub canceled: bool,
}

#[derive(Default)]
pub struct VercelState {
    pub deployments: Vec<FakeDeployment>,
    /// Sites build slowly: READY after 8 looks, not 2 (past the step's quick looks).
    pub slow: bool,
}

pub fn routes() -> Router<Fake> {
    Router::new()
        .route("/v2/user", get(user))
        .route("/v13/deployments", post(create))
        .route("/v13/deployments/{id}", get(look))
        .route("/v12/deployments/{id}/cancel", axum::routing::patch(cancel))
        .route("/sites/{id}", get(index))
        .route("/sites/{id}/", get(index))
        .route("/sites/{id}/{*path}", get(file))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    error_json(status, json!({"error": {"code": code, "message": message}}))
}

fn account(fake: &Fake, headers: &HeaderMap) -> Result<String, Response> {
    fake.user_of(headers, "vercel").ok_or_else(|| {
        error_json(
            StatusCode::FORBIDDEN,
            json!({"error": {"code": "forbidden", "message": "Not authorized", "invalidToken": true}}),
        )
    })
}

async fn user(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    match account(&fake, &headers) {
        Ok(name) => Json(json!({"user": {"id": "Ahx3kPp0m2VQ", "email": format!("{name}@example.com"), "name": name, "username": name, "avatar": null, "defaultTeamId": null}})).into_response(),
        Err(refused) => refused,
    }
}

fn state_of(d: &FakeDeployment) -> &'static str {
    match (d.failed, d.looks) {
        _ if d.canceled => "CANCELED",
        (true, n) if n >= 1 => "ERROR",
        (_, 0) => "QUEUED",
        (false, n) if n < d.ready_after => "BUILDING",
        _ => "READY",
    }
}

fn deployment_json(fake: &Fake, d: &FakeDeployment) -> Value {
    let state = state_of(d);
    let mut body = json!({
        "id": d.id, "name": d.name,
        // The fake serves the site itself; Vercel's own URL has no scheme.
        "url": format!("{}/vercel/sites/{}", fake.base_url.lock().map(|b| b.clone()).unwrap_or_default(), d.id),
        "readyState": state, "status": state, "target": "production",
        "inspectorUrl": format!("{}/{}/{}", fake.web_base("vercel"), d.name, d.id),
        "alias": [], "createdAt": 1_796_000_000_000u64,
    });
    if state == "ERROR" {
        body["errorCode"] = json!("BUILD_FAILED");
        body["errorMessage"] = json!("Command \"npm run build\" exited with 1");
    }
    body
}

async fn create(State(fake): State<Fake>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let account = match account(&fake, &headers) {
        Ok(account) => account,
        Err(refused) => return refused,
    };
    let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Invalid request: missing required property `name`.",
        );
    };
    let mut files = BTreeMap::new();
    for file in body["files"].as_array().into_iter().flatten() {
        let (Some(path), Some(data)) = (file["file"].as_str(), file["data"].as_str()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Invalid request: `files` should be array of InlinedFile or UploadedFile.",
            );
        };
        let bytes = match file["encoding"].as_str() {
            Some("base64") => match base64::engine::general_purpose::STANDARD.decode(data) {
                Ok(bytes) => bytes,
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "Invalid base64 in files",
                    );
                }
            },
            _ => data.as_bytes().to_vec(),
        };
        files.insert(path.to_owned(), bytes);
    }
    if files.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "missing_files",
            "No files in the deployment.",
        );
    }
    let fail = fake.failing("vercel.build");
    let mut state = fake.vercel.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(similar) = state
        .deployments
        .iter()
        .find(|d| d.name == name && d.account == account && d.files == files && !d.failed)
    {
        return Json(deployment_json(&fake, similar)).into_response();
    }
    let deployment = FakeDeployment {
        id: format!("dpl_{}", &uuid::Uuid::new_v4().simple().to_string()[..24]),
        name: name.to_owned(),
        account,
        files,
        looks: 0,
        ready_after: if state.slow { 8 } else { 2 },
        failed: fail,
        canceled: false,
    };
    let answer = deployment_json(&fake, &deployment);
    state.deployments.push(deployment);
    Json(answer).into_response()
}

async fn look(State(fake): State<Fake>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let account = match account(&fake, &headers) {
        Ok(account) => account,
        Err(refused) => return refused,
    };
    let mut state = fake.vercel.lock().unwrap_or_else(|e| e.into_inner());
    match state
        .deployments
        .iter_mut()
        .find(|d| d.id == id && d.account == account)
    {
        Some(d) => {
            d.looks += 1;
            Json(deployment_json(&fake, d)).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "not_found", "Deployment not found"),
    }
}

/// `PATCH /v12/deployments/{id}/cancel`: a deployment still building is canceled; one that
/// ended is refused, as Vercel does.
async fn cancel(State(fake): State<Fake>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let account = match account(&fake, &headers) {
        Ok(account) => account,
        Err(refused) => return refused,
    };
    let mut state = fake.vercel.lock().unwrap_or_else(|e| e.into_inner());
    let Some(d) = state
        .deployments
        .iter_mut()
        .find(|d| d.id == id && d.account == account)
    else {
        return error(StatusCode::NOT_FOUND, "not_found", "Deployment not found");
    };
    if matches!(state_of(d), "READY" | "ERROR" | "CANCELED") {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "This deployment can no longer be canceled.",
        );
    }
    d.canceled = true;
    Json(deployment_json(&fake, d)).into_response()
}

fn serve(fake: &Fake, id: &str, path: &str) -> Response {
    let state = fake.vercel.lock().unwrap_or_else(|e| e.into_inner());
    let Some(d) = state.deployments.iter().find(|d| d.id == id) else {
        return (
            StatusCode::NOT_FOUND,
            "The deployment could not be found on Vercel.",
        )
            .into_response();
    };
    match d.files.get(path) {
        Some(bytes) if state_of(d) == "READY" => {
            let kind = if path.ends_with(".html") {
                "text/html; charset=utf-8"
            } else {
                "application/octet-stream"
            };
            ([("content-type", kind)], bytes.clone()).into_response()
        }
        Some(_) => (StatusCode::NOT_FOUND, "This deployment is not ready.").into_response(),
        None => (StatusCode::NOT_FOUND, "404: NOT_FOUND").into_response(),
    }
}

async fn index(State(fake): State<Fake>, Path(id): Path<String>) -> Response {
    serve(&fake, &id, "index.html")
}

async fn file(State(fake): State<Fake>, Path((id, path)): Path<(String, String)>) -> Response {
    serve(&fake, &id, &path)
}
