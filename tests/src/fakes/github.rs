//! A small GitHub that keeps state: users by token, repositories with an initial commit,
//! blobs, trees, commits, branches and pull requests, answering the REST API's wire shapes
//! (`basic-error`, 404 as GitHub words it, 422 with `errors`). It checks what GitHub
//! checks: the bearer token, a `User-Agent`, and the API version header.

use super::{Fake, error_json, form_fields};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One repository's objects and refs.
#[derive(Default, Clone)]
pub struct Repo {
    pub description: String,
    pub private: bool,
    pub default_branch: String,
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// Tree sha → path → blob sha.
    pub trees: BTreeMap<String, BTreeMap<String, String>>,
    pub commits: BTreeMap<String, Commit>,
    /// Branch → commit sha.
    pub branches: BTreeMap<String, String>,
    pub pulls: Vec<Pull>,
}

#[derive(Clone)]
pub struct Commit {
    pub message: String,
    pub tree: String,
    pub parents: Vec<String>,
}

#[derive(Clone)]
pub struct Pull {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
}

#[derive(Default)]
pub struct GithubState {
    /// (owner, name) → repository.
    pub repos: BTreeMap<(String, String), Repo>,
    /// Device flows by device code: how many times each was polled. The user "enters the
    /// code" before the second poll; its token then acts as `device_account`.
    pub device_flows: BTreeMap<String, u32>,
    /// Whom the device flow's tokens act as (the default account when unset).
    pub device_account: Option<String>,
}

impl Repo {
    /// The commits reachable from `branch`, newest first.
    pub fn history(&self, branch: &str) -> Vec<(String, Commit)> {
        let mut out = Vec::new();
        let mut at = self.branches.get(branch).cloned();
        while let Some(sha) = at {
            let Some(commit) = self.commits.get(&sha) else {
                break;
            };
            at = commit.parents.first().cloned();
            out.push((sha, commit.clone()));
        }
        out
    }

    /// The files at `branch`'s head.
    pub fn files(&self, branch: &str) -> BTreeMap<String, Vec<u8>> {
        let Some(tree) = self
            .branches
            .get(branch)
            .and_then(|c| self.commits.get(c))
            .and_then(|c| self.trees.get(&c.tree))
        else {
            return BTreeMap::new();
        };
        tree.iter()
            .filter_map(|(path, blob)| Some((path.clone(), self.blobs.get(blob)?.clone())))
            .collect()
    }
}

fn sha_of(kind: &str, bytes: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(kind.as_bytes());
    digest.update(bytes);
    hex::encode(digest.finalize())[..40].to_owned()
}

pub fn routes() -> Router<Fake> {
    Router::new()
        .route("/user", get(user))
        .route("/user/repos", post(create_repo))
        .route("/repos/{owner}/{repo}", get(get_repo))
        .route(
            "/repos/{owner}/{repo}/git/ref/heads/{*branch}",
            get(get_ref),
        )
        .route(
            "/repos/{owner}/{repo}/git/refs/heads/{*branch}",
            patch(update_ref),
        )
        .route("/repos/{owner}/{repo}/git/refs", post(create_ref))
        .route("/repos/{owner}/{repo}/git/commits/{sha}", get(get_commit))
        .route("/repos/{owner}/{repo}/git/commits", post(create_commit))
        .route("/repos/{owner}/{repo}/git/blobs", post(create_blob))
        .route("/repos/{owner}/{repo}/git/trees", post(create_tree))
        .route(
            "/repos/{owner}/{repo}/pulls",
            get(list_pulls).post(create_pull),
        )
        .route("/login/device/code", post(device_code))
        .route("/login/oauth/access_token", post(device_token))
}

/// `POST /login/device/code`: GitHub's answer, as JSON when asked (`Accept`).
async fn device_code(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    let fields = form_fields(&body);
    let json_asked = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if !json_asked || fields.get("client_id").is_none_or(|id| id.is_empty()) {
        return basic_error(
            StatusCode::BAD_REQUEST,
            "the fake wants a client_id and Accept: application/json",
        );
    }
    let device = uuid::Uuid::new_v4().simple().to_string();
    fake.github
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .device_flows
        .insert(device.clone(), 0);
    let base = fake.base_url.lock().map(|b| b.clone()).unwrap_or_default();
    Json(json!({
        "device_code": device, "user_code": "WDJB-MJHT",
        "verification_uri": format!("{base}/github/login/device"), "expires_in": 900, "interval": 1
    }))
    .into_response()
}

/// `POST /login/oauth/access_token` with the device grant: pending at the first poll,
/// then the token.
async fn device_token(State(fake): State<Fake>, body: String) -> Response {
    let fields = form_fields(&body);
    if fields.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:device_code")
    {
        return Json(json!({"error": "unsupported_grant_type", "error_description": "The grant type is not supported."})).into_response();
    }
    let device = fields.get("device_code").cloned().unwrap_or_default();
    let mut github = fake.github.lock().unwrap_or_else(|e| e.into_inner());
    let account = github.device_account.clone();
    let Some(polls) = github.device_flows.get_mut(&device) else {
        return Json(json!({"error": "incorrect_device_code", "error_description": "The device_code provided is not valid."})).into_response();
    };
    *polls += 1;
    if *polls == 1 {
        return Json(json!({"error": "authorization_pending", "error_description": "The authorization request is still pending."})).into_response();
    }
    github.device_flows.remove(&device);
    drop(github);
    let token = format!("gho_{}", uuid::Uuid::new_v4().simple());
    if let Some(account) = account {
        fake.accept("github", &token, &account);
    }
    Json(json!({"access_token": token, "token_type": "bearer", "scope": "repo"})).into_response()
}

fn basic_error(status: StatusCode, message: &str) -> Response {
    error_json(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.as_u16().to_string()}),
    )
}

fn not_found() -> Response {
    basic_error(StatusCode::NOT_FOUND, "Not Found")
}

/// The token's user, after GitHub's own checks of the request's headers.
fn login(fake: &Fake, headers: &HeaderMap) -> Result<String, Response> {
    if !headers.contains_key("user-agent") {
        return Err(basic_error(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
        ));
    }
    if let Some(version) = headers.get("x-github-api-version")
        && !matches!(version.as_bytes(), b"2022-11-28" | b"2026-03-10")
    {
        return Err(basic_error(StatusCode::BAD_REQUEST, "Invalid API version"));
    }
    fake.user_of(headers, "github")
        .ok_or_else(|| basic_error(StatusCode::UNAUTHORIZED, "Bad credentials"))
}

fn repo_json(fake: &Fake, owner: &str, name: &str, repo: &Repo) -> Value {
    json!({
        "id": 1, "node_id": "R_fake", "name": name, "full_name": format!("{owner}/{name}"),
        "private": repo.private, "owner": {"login": owner, "type": "User"},
        "html_url": format!("{}/{owner}/{name}", fake.web_base("github")),
        "description": repo.description, "default_branch": repo.default_branch,
        "visibility": if repo.private { "private" } else { "public" },
    })
}

async fn user(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    match login(&fake, &headers) {
        Ok(login) => {
            Json(json!({"login": login, "id": 7, "type": "User", "name": login})).into_response()
        }
        Err(refused) => refused,
    }
}

#[derive(Deserialize)]
struct NewRepo {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    auto_init: bool,
}

async fn create_repo(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(body): Json<NewRepo>,
) -> Response {
    let owner = match login(&fake, &headers) {
        Ok(owner) => owner,
        Err(refused) => return refused,
    };
    let mut state = fake.github.lock().unwrap_or_else(|e| e.into_inner());
    let key = (owner.clone(), body.name.clone());
    if state.repos.contains_key(&key) {
        return error_json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "Repository creation failed.", "errors": [{"resource": "Repository", "code": "custom", "field": "name", "message": "name already exists on this account"}], "documentation_url": "https://docs.github.com/rest/repos/repos#create-a-repository-for-the-authenticated-user", "status": "422"}),
        );
    }
    let mut repo = Repo {
        description: body.description.unwrap_or_default(),
        private: body.private,
        default_branch: "main".into(),
        ..Repo::default()
    };
    if body.auto_init {
        let readme = format!("# {}\n", body.name).into_bytes();
        let blob = sha_of("blob", &readme);
        repo.blobs.insert(blob.clone(), readme);
        let tree: BTreeMap<String, String> = [("README.md".to_owned(), blob)].into();
        let tree_sha = sha_of("tree", format!("{tree:?}").as_bytes());
        repo.trees.insert(tree_sha.clone(), tree);
        let commit = Commit {
            message: "Initial commit".into(),
            tree: tree_sha,
            parents: vec![],
        };
        let sha = sha_of(
            "commit",
            format!("{owner}/{}{}", body.name, commit.message).as_bytes(),
        );
        repo.commits.insert(sha.clone(), commit);
        repo.branches.insert("main".into(), sha);
    }
    let answer = repo_json(&fake, &owner, &body.name, &repo);
    state.repos.insert(key, repo);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// Runs `f` on the caller's view of `owner/name`: 404 for a repository that does not exist
/// or that another user owns (private repositories are invisible to others).
fn with_repo(
    fake: &Fake,
    headers: &HeaderMap,
    (owner, name): (&str, &str),
    f: impl FnOnce(&mut Repo) -> Response,
) -> Response {
    let login = match login(fake, headers) {
        Ok(login) => login,
        Err(refused) => return refused,
    };
    let mut state = fake.github.lock().unwrap_or_else(|e| e.into_inner());
    match state.repos.get_mut(&(owner.to_owned(), name.to_owned())) {
        Some(repo) if login == owner => f(repo),
        _ => not_found(),
    }
}

async fn get_repo(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let f2 = fake.clone();
    with_repo(&fake, &headers, (&owner, &name), |repo| {
        Json(repo_json(&f2, &owner, &name, repo)).into_response()
    })
}

fn ref_json(branch: &str, sha: &str) -> Value {
    json!({"ref": format!("refs/heads/{branch}"), "node_id": "REF_fake", "object": {"type": "commit", "sha": sha}})
}

async fn get_ref(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path((owner, name, branch)): Path<(String, String, String)>,
) -> Response {
    with_repo(&fake, &headers, (&owner, &name), |repo| {
        match repo.branches.get(&branch) {
            Some(sha) => Json(ref_json(&branch, sha)).into_response(),
            None => not_found(),
        }
    })
}

#[derive(Deserialize)]
struct RefUpdate {
    sha: String,
    #[serde(default)]
    force: bool,
}

async fn update_ref(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path((owner, name, branch)): Path<(String, String, String)>,
    Json(body): Json<RefUpdate>,
) -> Response {
    let fake2 = fake.clone();
    let answer = with_repo(&fake2, &headers, (&owner, &name), |repo| {
        let Some(current) = repo.branches.get(&branch).cloned() else {
            return basic_error(StatusCode::UNPROCESSABLE_ENTITY, "Reference does not exist");
        };
        let Some(commit) = repo.commits.get(&body.sha) else {
            return basic_error(StatusCode::UNPROCESSABLE_ENTITY, "Object does not exist");
        };
        // Only forward, unless forced: the new commit must descend from the branch's head.
        let forward = body.sha == current || commit.parents.contains(&current);
        if !forward && !body.force {
            return basic_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Update is not a fast forward",
            );
        }
        repo.branches.insert(branch.clone(), body.sha.clone());
        if fake.failing("github.update_ref") {
            return basic_error(StatusCode::BAD_GATEWAY, "Server Error");
        }
        Json(ref_json(&branch, &body.sha)).into_response()
    });
    // The branch moved; the caller hears of it only after the hold (if it lives that long).
    if let Some(hold) = fake2.holding("github.update_ref") {
        tokio::time::sleep(hold).await;
    }
    answer
}

#[derive(Deserialize)]
struct NewRef {
    #[serde(rename = "ref")]
    name: String,
    sha: String,
}

async fn create_ref(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<NewRef>,
) -> Response {
    with_repo(&fake, &headers, (&owner, &name), |repo| {
        let Some(branch) = body.name.strip_prefix("refs/heads/") else {
            return basic_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Reference name must start with 'refs/'",
            );
        };
        if repo.branches.contains_key(branch) {
            return basic_error(StatusCode::UNPROCESSABLE_ENTITY, "Reference already exists");
        }
        if !repo.commits.contains_key(&body.sha) {
            return basic_error(StatusCode::UNPROCESSABLE_ENTITY, "Object does not exist");
        }
        repo.branches.insert(branch.to_owned(), body.sha.clone());
        (StatusCode::CREATED, Json(ref_json(branch, &body.sha))).into_response()
    })
}

fn commit_json(fake: &Fake, (owner, name): (&str, &str), sha: &str, commit: &Commit) -> Value {
    json!({
        "sha": sha, "node_id": "C_fake", "message": commit.message,
        "tree": {"sha": commit.tree},
        "parents": commit.parents.iter().map(|p| json!({"sha": p})).collect::<Vec<_>>(),
        "author": {"name": owner, "email": format!("{owner}@users.noreply.github.com"), "date": "2026-12-01T00:00:00Z"},
        "committer": {"name": owner, "email": format!("{owner}@users.noreply.github.com"), "date": "2026-12-01T00:00:00Z"},
        "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null},
        "html_url": format!("{}/{owner}/{name}/commit/{sha}", fake.web_base("github")),
    })
}

async fn get_commit(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path((owner, name, sha)): Path<(String, String, String)>,
) -> Response {
    let f2 = fake.clone();
    with_repo(&fake, &headers, (&owner, &name), |repo| {
        match repo.commits.get(&sha) {
            Some(commit) => Json(commit_json(&f2, (&owner, &name), &sha, commit)).into_response(),
            None => not_found(),
        }
    })
}

#[derive(Deserialize)]
struct NewCommit {
    message: String,
    tree: String,
    #[serde(default)]
    parents: Vec<String>,
}

async fn create_commit(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<NewCommit>,
) -> Response {
    let f2 = fake.clone();
    with_repo(&fake, &headers, (&owner, &name), |repo| {
        if !repo.trees.contains_key(&body.tree) {
            return basic_error(StatusCode::UNPROCESSABLE_ENTITY, "Tree SHA does not exist");
        }
        if let Some(missing) = body.parents.iter().find(|p| !repo.commits.contains_key(*p)) {
            return basic_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("Parent SHA does not exist or is not a commit object: {missing}"),
            );
        }
        let commit = Commit {
            message: body.message,
            tree: body.tree,
            parents: body.parents,
        };
        // A real commit's sha covers its time too: two commits of the same content differ.
        let stamp = format!(
            "{}{}{:?}{}",
            commit.message,
            commit.tree,
            commit.parents,
            uuid::Uuid::new_v4()
        );
        let sha = sha_of("commit", stamp.as_bytes());
        let answer = commit_json(&f2, (&owner, &name), &sha, &commit);
        repo.commits.insert(sha, commit);
        (StatusCode::CREATED, Json(answer)).into_response()
    })
}

#[derive(Deserialize)]
struct NewBlob {
    content: String,
    #[serde(default)]
    encoding: Option<String>,
}

async fn create_blob(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<NewBlob>,
) -> Response {
    with_repo(&fake, &headers, (&owner, &name), |repo| {
        let bytes = match body.encoding.as_deref() {
            Some("base64") => {
                match base64::engine::general_purpose::STANDARD.decode(body.content.as_bytes()) {
                    Ok(bytes) => bytes,
                    Err(_) => {
                        return basic_error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid request.\n\nContent is not valid Base64.",
                        );
                    }
                }
            }
            Some("utf-8") | None => body.content.into_bytes(),
            Some(other) => {
                return basic_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("encoding {other} is not supported"),
                );
            }
        };
        let sha = sha_of("blob", &bytes);
        repo.blobs.insert(sha.clone(), bytes);
        (StatusCode::CREATED, Json(json!({"sha": sha, "url": ""}))).into_response()
    })
}

#[derive(Deserialize)]
struct NewTree {
    #[serde(default)]
    base_tree: Option<String>,
    tree: Vec<TreeItem>,
}

#[derive(Deserialize)]
struct TreeItem {
    path: String,
    mode: String,
    #[serde(rename = "type")]
    kind: String,
    sha: Option<String>,
}

async fn create_tree(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<NewTree>,
) -> Response {
    with_repo(&fake, &headers, (&owner, &name), |repo| {
        let mut tree = match &body.base_tree {
            Some(base) => match repo.trees.get(base) {
                Some(tree) => tree.clone(),
                None => {
                    return basic_error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "base_tree is not a valid tree oid",
                    );
                }
            },
            None => BTreeMap::new(),
        };
        for item in body.tree {
            if item.mode != "100644" || item.kind != "blob" {
                return basic_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "only mode 100644 blobs are kept by this fake",
                );
            }
            let Some(sha) = item.sha.filter(|s| repo.blobs.contains_key(s)) else {
                return basic_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "tree.sha is not a valid blob",
                );
            };
            tree.insert(item.path, sha);
        }
        let sha = sha_of("tree", format!("{tree:?}").as_bytes());
        repo.trees.insert(sha.clone(), tree);
        (
            StatusCode::CREATED,
            Json(json!({"sha": sha, "truncated": false, "tree": []})),
        )
            .into_response()
    })
}

fn pull_json(fake: &Fake, (owner, name): (&str, &str), pull: &Pull) -> Value {
    json!({
        "number": pull.number, "state": "open", "title": pull.title,
        "html_url": format!("{}/{owner}/{name}/pull/{}", fake.web_base("github"), pull.number),
        "head": {"ref": pull.head, "label": format!("{owner}:{}", pull.head)},
        "base": {"ref": pull.base},
    })
}

async fn list_pulls(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let f2 = fake.clone();
    with_repo(&fake, &headers, (&owner, &name), |repo| {
        let head = query.get("head").cloned();
        let pulls: Vec<Value> = repo
            .pulls
            .iter()
            .filter(|p| {
                head.as_deref()
                    .is_none_or(|h| h == format!("{owner}:{}", p.head))
            })
            .map(|p| pull_json(&f2, (&owner, &name), p))
            .collect();
        Json(Value::Array(pulls)).into_response()
    })
}

#[derive(Deserialize)]
struct NewPull {
    title: String,
    head: String,
    base: String,
    #[serde(default)]
    body: Option<String>,
}

async fn create_pull(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<NewPull>,
) -> Response {
    let f2 = fake.clone();
    with_repo(&fake, &headers, (&owner, &name), |repo| {
        if !repo.branches.contains_key(&body.head) || !repo.branches.contains_key(&body.base) {
            return error_json(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}], "status": "422"}),
            );
        }
        if repo.pulls.iter().any(|p| p.head == body.head) {
            return error_json(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {owner}:{}.", body.head)}], "status": "422"}),
            );
        }
        let _ = body.body;
        let pull = Pull {
            number: repo.pulls.len() as u64 + 1,
            head: body.head,
            base: body.base,
            title: body.title,
        };
        let answer = pull_json(&f2, (&owner, &name), &pull);
        repo.pulls.push(pull);
        (StatusCode::CREATED, Json(answer)).into_response()
    })
}
