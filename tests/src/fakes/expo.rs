//! A fake of Expo's GraphQL API (`/expo/graphql`), as far as the tools use it: `meActor`,
//! an EAS project by full name, GitHub builds started as background jobs, a build by id,
//! a project's latest builds, and cancelling a build. A project exists when the fake
//! GitHub holds a repository of its slug: as if the user had linked it once on expo.dev.
//! Each look at a build moves it one status on (NEW → IN_QUEUE → IN_PROGRESS →
//! FINISHED), unless `mode` says it errors or never ends. A build of a ref without an
//! `app.json` errors as EAS's would.

use super::{Fake, error_json};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// How the fake's builds end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BuildMode {
    #[default]
    Finish,
    /// Gradle (or Xcode) fails in the build phase.
    Error,
    /// Stays in progress forever (a build that times out).
    Hang,
}

#[derive(Debug, Clone)]
pub struct Build {
    pub id: String,
    pub app: String,
    pub platform: String,
    pub git_ref: String,
    pub profile: String,
    pub status: &'static str,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Why it will error, when it will.
    pub failure: Option<(String, String)>,
}

#[derive(Default)]
pub struct ExpoState {
    pub mode: BuildMode,
    /// App id → full name and linked repository (owner, name).
    pub apps: std::collections::BTreeMap<String, (String, (String, String))>,
    /// Receipt id → build id; a receipt succeeds at its first look.
    pub receipts: std::collections::BTreeMap<String, (String, bool)>,
    pub builds: Vec<Build>,
}

pub fn routes() -> Router<Fake> {
    Router::new()
        .route("/graphql", post(graphql))
        .route("/artifacts/{file}", get(artifact))
}

fn graphql_error(message: &str, code: &str) -> Response {
    axum::Json(
        json!({"data": null, "errors": [{"message": message, "extensions": {"errorCode": code}}]}),
    )
    .into_response()
}

async fn graphql(
    State(fake): State<Fake>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let Some(username) = fake.user_of(&headers, "expo") else {
        return graphql_error(
            "Your session has expired or is invalid",
            "UNAUTHORIZED_ERROR",
        );
    };
    let query = body["query"].as_str().unwrap_or_default();
    let variables = &body["variables"];
    let data = if query.contains("meActor") {
        json!({"meActor": {"__typename": "User", "id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "username": username, "accounts": [{"id": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e", "name": username}]}})
    } else if query.contains("AppByFullName") {
        match app_by_full_name(&fake, &username, variables["fullName"].as_str()) {
            Some(app) => json!({"app": {"byFullName": app}}),
            None => {
                return graphql_error(
                    &format!(
                        "Experience with name '{}' does not exist.",
                        variables["fullName"].as_str().unwrap_or_default()
                    ),
                    "EXPERIENCE_NOT_FOUND",
                );
            }
        }
    } else if query.contains("CreateGitHubBuild") {
        match create_build(&fake, &variables["buildInput"]) {
            Ok(receipt) => json!({"githubApp": {"createGitHubBuild": receipt}}),
            Err(message) => return graphql_error(&message, "BAD_USER_INPUT"),
        }
    } else if query.contains("BackgroundJobReceiptById") {
        match receipt(&fake, variables["id"].as_str().unwrap_or_default()) {
            Some(receipt) => json!({"backgroundJobReceipt": {"byId": receipt}}),
            None => return graphql_error("Background job receipt not found", "ENTITY_NOT_FOUND"),
        }
    } else if query.contains("BuildsByIdQuery") {
        match look_at_build(&fake, variables["buildId"].as_str().unwrap_or_default()) {
            Some(build) => json!({"builds": {"byId": build}}),
            None => return graphql_error("Build not found", "ENTITY_NOT_FOUND"),
        }
    } else if query.contains("CancelBuildMutation") {
        match cancel_build(&fake, variables["buildId"].as_str().unwrap_or_default()) {
            Some(build) => json!({"build": {"cancelBuild": build}}),
            None => return graphql_error("Build not found", "ENTITY_NOT_FOUND"),
        }
    } else if query.contains("AppBuilds") {
        let builds = recent(
            &fake,
            variables["appId"].as_str().unwrap_or_default(),
            variables["platform"].as_str(),
        );
        json!({"app": {"byId": {"builds": builds}}})
    } else {
        return error_json(
            StatusCode::BAD_REQUEST,
            json!({"errors": [{"message": "this fake does not know that operation"}]}),
        );
    };
    axum::Json(json!({ "data": data })).into_response()
}

/// The project `@username/slug`, linked to the fake GitHub's repository named `slug`.
fn app_by_full_name(fake: &Fake, username: &str, full_name: Option<&str>) -> Option<Value> {
    let (account, slug) = full_name?.strip_prefix('@')?.split_once('/')?;
    if account != username {
        return None;
    }
    let github = fake.github.lock().ok()?;
    let ((owner, name), repo) = github.repos.iter().find(|((_, name), _)| name == slug)?;
    let mut expo = fake.expo.lock().ok()?;
    let full_name = format!("@{account}/{slug}");
    let id = match expo.apps.iter().find(|(_, (n, _))| *n == full_name) {
        Some((id, _)) => id.clone(),
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            expo.apps.insert(
                id.clone(),
                (full_name.clone(), (owner.clone(), name.clone())),
            );
            id
        }
    };
    Some(json!({
        "id": id, "fullName": full_name,
        "githubRepository": {"metadata": {"githubRepoOwnerName": owner, "githubRepoName": name, "defaultBranch": repo.default_branch}}
    }))
}

fn create_build(fake: &Fake, input: &Value) -> Result<Value, String> {
    let app_id = input["appId"].as_str().unwrap_or_default();
    let platform = input["platform"].as_str().unwrap_or_default();
    let git_ref = input["gitRef"].as_str().unwrap_or_default();
    let profile = input["buildProfile"].as_str().unwrap_or_default();
    if !matches!(platform, "IOS" | "ANDROID") || git_ref.is_empty() || profile.is_empty() {
        return Err(
            "GitHubBuildInput needs platform IOS or ANDROID, gitRef and buildProfile".into(),
        );
    }
    let (app, (owner, name)) = {
        let expo = fake.expo.lock().map_err(|e| e.to_string())?;
        expo.apps
            .get(app_id)
            .cloned()
            .ok_or_else(|| format!("App {app_id} not found"))?
    };
    let files = fake
        .github
        .lock()
        .map_err(|e| e.to_string())?
        .repos
        .get(&(owner, name))
        .map(|r| r.files(git_ref))
        .unwrap_or_default();
    let profiles: Value = files
        .get("eas.json")
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or_default();
    let mut expo = fake.expo.lock().map_err(|e| e.to_string())?;
    let failure = match (files.contains_key("app.json"), &profiles["build"][profile], expo.mode) {
        (false, _, _) => Some((
            "EAS_BUILD_PROJECT_NOT_FOUND".to_owned(),
            format!("No Expo project found at {git_ref}: the repository has no app.json there."),
        )),
        (true, Value::Null, _) => Some((
            "EAS_CONFIG_NOT_FOUND".to_owned(),
            format!("Missing build profile in eas.json: {profile}"),
        )),
        (true, _, BuildMode::Error) => Some((
            "UNKNOWN_GRADLE_ERROR".to_owned(),
            "Gradle build failed with unknown error. See logs for the \"Run gradlew\" phase for more information.".to_owned(),
        )),
        _ => None,
    };
    let build = Build {
        id: uuid::Uuid::new_v4().to_string(),
        app,
        platform: platform.to_owned(),
        git_ref: git_ref.to_owned(),
        profile: profile.to_owned(),
        status: "NEW",
        created_at: chrono::Utc::now(),
        failure,
    };
    let receipt = uuid::Uuid::new_v4().to_string();
    expo.receipts
        .insert(receipt.clone(), (build.id.clone(), false));
    expo.builds.push(build);
    Ok(
        json!({"id": receipt, "state": "QUEUED", "resultId": null, "errorCode": null, "errorMessage": null, "willRetry": false}),
    )
}

/// A receipt succeeds at its first look, naming its build.
fn receipt(fake: &Fake, id: &str) -> Option<Value> {
    let mut expo = fake.expo.lock().ok()?;
    let (build, looked) = expo.receipts.get_mut(id)?;
    let answer = match *looked {
        false => {
            json!({"id": id, "state": "IN_PROGRESS", "resultId": null, "errorCode": null, "errorMessage": null, "willRetry": false})
        }
        true => {
            json!({"id": id, "state": "SUCCESS", "resultId": build, "errorCode": null, "errorMessage": null, "willRetry": false})
        }
    };
    *looked = true;
    Some(answer)
}

fn look_at_build(fake: &Fake, id: &str) -> Option<Value> {
    let base = fake.base_url.lock().map(|b| b.clone()).unwrap_or_default();
    let mut expo = fake.expo.lock().ok()?;
    let mode = expo.mode;
    let build = expo.builds.iter_mut().find(|b| b.id == id)?;
    build.status = match (build.status, &build.failure, mode) {
        ("NEW", _, _) => "IN_QUEUE",
        ("IN_QUEUE", _, _) => "IN_PROGRESS",
        ("IN_PROGRESS", _, BuildMode::Hang) => "IN_PROGRESS",
        ("IN_PROGRESS", Some(_), _) => "ERRORED",
        ("IN_PROGRESS", None, _) => "FINISHED",
        (ended, _, _) => ended,
    };
    Some(build_json(build, &base))
}

/// Cancels a build that has not ended; an ended one is answered as it is, as EAS does.
fn cancel_build(fake: &Fake, id: &str) -> Option<Value> {
    let base = fake.base_url.lock().map(|b| b.clone()).unwrap_or_default();
    let mut expo = fake.expo.lock().ok()?;
    let build = expo.builds.iter_mut().find(|b| b.id == id)?;
    if matches!(build.status, "NEW" | "IN_QUEUE" | "IN_PROGRESS") {
        build.status = "CANCELED";
    }
    Some(build_json(build, &base))
}

fn build_json(build: &Build, base: &str) -> Value {
    let extension = if build.platform == "IOS" {
        "ipa"
    } else {
        "aab"
    };
    let artifacts = (build.status == "FINISHED")
        .then(|| json!({"buildUrl": format!("{base}/expo/artifacts/{}.{extension}", build.id)}));
    let error = match (&build.failure, build.status) {
        (Some((code, message)), "ERRORED") => json!({"errorCode": code, "message": message}),
        _ => Value::Null,
    };
    json!({
        "id": build.id, "app": {"fullName": build.app}, "status": build.status,
        "platform": build.platform, "gitRef": build.git_ref, "buildProfile": build.profile,
        "createdAt": build.created_at.to_rfc3339(), "artifacts": artifacts, "error": error
    })
}

fn recent(fake: &Fake, app_id: &str, platform: Option<&str>) -> Vec<Value> {
    let base = fake.base_url.lock().map(|b| b.clone()).unwrap_or_default();
    let Ok(expo) = fake.expo.lock() else {
        return Vec::new();
    };
    let Some((app, _)) = expo.apps.get(app_id) else {
        return Vec::new();
    };
    expo.builds
        .iter()
        .rev()
        .filter(|b| b.app == *app && platform.is_none_or(|p| b.platform == p))
        .take(10)
        .map(|b| build_json(b, &base))
        .collect()
}

/// A finished build's archive: a few bytes standing for the `.ipa` or `.aab`.
async fn artifact(State(fake): State<Fake>, Path(file): Path<String>) -> Response {
    let id = file.split('.').next().unwrap_or_default();
    let finished = fake
        .expo
        .lock()
        .map(|e| {
            e.builds
                .iter()
                .any(|b| b.id == id && b.status == "FINISHED")
        })
        .unwrap_or(false);
    match finished {
        true => (
            [("content-type", "application/octet-stream")],
            format!("fake EAS build archive {file}\n"),
        )
            .into_response(),
        false => (StatusCode::NOT_FOUND, "no such build archive").into_response(),
    }
}
