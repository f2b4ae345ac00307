//! GitHub REST (api.github.com, API version 2026-03-10): its wire types and calls. Code is
//! committed through the Git Data API: blobs, a tree on the branch's tree, a commit on the
//! branch's head, then the ref moved to it (or a new branch and a pull request).

use super::{Failure, Identity, ServiceError, ServiceHttp, classify_with, retry_after};
use crate::config::Secret;
use crate::domain::Service;
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// The REST API version every request asks for (`X-GitHub-Api-Version`).
pub const API_VERSION: &str = "2026-03-10";

fn request(
    client: &ServiceHttp,
    method: Method,
    path: &str,
    token: &Secret<String>,
) -> reqwest::RequestBuilder {
    client
        .request(method, path, token)
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", API_VERSION)
}

/// `GET /user`: the authenticated user (`private-user` / `public-user`; only `login` is read).
#[derive(Deserialize)]
struct User {
    login: String,
}

pub(crate) async fn identify(
    client: &ServiceHttp,
    token: &Secret<String>,
) -> Result<Identity, ServiceError> {
    let user: User = client
        .send(request(client, Method::GET, "/user", token), classify)
        .await?;
    Ok(Identity {
        account: user.login,
    })
}

/// GitHub's `basic-error` (`message`), and its rate limits: a 429, or a 403 whose
/// `x-ratelimit-remaining` is 0 or that carries `retry-after` (the secondary limits), is a
/// rate limit, not a refused credential.
fn classify(service: Service, failure: Failure<'_>) -> ServiceError {
    let limited = failure.status == 429
        || (failure.status == 403
            && (failure.headers.contains_key(reqwest::header::RETRY_AFTER)
                || failure
                    .headers
                    .get("x-ratelimit-remaining")
                    .is_some_and(|v| v.as_bytes() == b"0")));
    if limited {
        let message = message(failure.body);
        let reset = failure
            .headers
            .get("x-ratelimit-reset")
            .and_then(|v| v.to_str().ok()?.parse::<i64>().ok())
            .map(|epoch| {
                std::time::Duration::from_secs(
                    (epoch - chrono::Utc::now().timestamp()).max(1) as u64
                )
            });
        return ServiceError::RateLimited {
            service,
            status: failure.status,
            retry_after: retry_after(failure.headers).or(reset),
            message,
        };
    }
    classify_with(service, failure, |v| {
        let message = v["message"].as_str()?;
        // A 422 lists what was wrong in `errors`.
        let details: Vec<String> = v["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                e["message"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| Some(format!("{} {}", e["field"].as_str()?, e["code"].as_str()?)))
            })
            .collect();
        Some(if details.is_empty() {
            message.to_owned()
        } else {
            format!("{message}: {}", details.join("; "))
        })
    })
}

fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "rate limit exceeded".to_owned())
}

/// A repository (`full-repository`; the fields read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Repository {
    pub name: String,
    pub full_name: String,
    pub default_branch: String,
    pub html_url: String,
    pub owner: Owner,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Owner {
    pub login: String,
}

/// `POST /user/repos`.
#[derive(Serialize)]
struct NewRepository<'a> {
    name: &'a str,
    description: &'a str,
    private: bool,
    /// An initial commit, so the Git Data API (which refuses an empty repository) works.
    auto_init: bool,
}

/// A git reference (`git-ref`).
#[derive(Deserialize)]
struct GitRef {
    object: GitObject,
}

#[derive(Deserialize)]
struct GitObject {
    sha: String,
}

/// A commit (`git-commit`; the fields read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Commit {
    pub sha: String,
    pub message: String,
    pub tree: TreeRef,
    pub html_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TreeRef {
    pub sha: String,
}

/// `short-blob` and `git-tree`: only the new object's sha is read.
#[derive(Deserialize)]
struct Created {
    sha: String,
}

/// One file of a new tree.
#[derive(Serialize)]
struct TreeEntry<'a> {
    path: &'a str,
    /// A regular, non-executable file.
    mode: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    sha: &'a str,
}

/// A pull request (`pull-request-simple`; the fields read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub html_url: String,
}

/// A repository to work in: its owner and name.
#[derive(Debug, Clone, Copy)]
pub struct Repo<'a> {
    pub owner: &'a str,
    pub name: &'a str,
}

impl Repo<'_> {
    fn path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.name)
    }
}

/// `GET /repos/{owner}/{repo}`; `None` when there is none (404).
pub async fn repository(
    client: &ServiceHttp,
    token: &Secret<String>,
    repo: Repo<'_>,
) -> Result<Option<Repository>, ServiceError> {
    let found = client
        .send(
            request(client, Method::GET, &repo.path(""), token),
            classify,
        )
        .await;
    not_found_is_none(found)
}

/// `POST /user/repos`: a new repository of the token's user, with an initial commit.
pub async fn create_repository(
    client: &ServiceHttp,
    token: &Secret<String>,
    (name, description, private): (&str, &str, bool),
) -> Result<Repository, ServiceError> {
    let body = NewRepository {
        name,
        description,
        private,
        auto_init: true,
    };
    client
        .send(
            request(client, Method::POST, "/user/repos", token).json(&body),
            classify,
        )
        .await
}

/// `GET /repos/{owner}/{repo}/git/ref/heads/{branch}`: the branch's head; `None` when the
/// branch does not exist.
pub async fn branch_head(
    client: &ServiceHttp,
    token: &Secret<String>,
    repo: Repo<'_>,
    branch: &str,
) -> Result<Option<String>, ServiceError> {
    let found: Result<GitRef, _> = client
        .send(
            request(
                client,
                Method::GET,
                &repo.path(&format!("/git/ref/heads/{branch}")),
                token,
            ),
            classify,
        )
        .await;
    Ok(not_found_is_none(found)?.map(|r| r.object.sha))
}

/// `GET /repos/{owner}/{repo}/git/commits/{sha}`.
pub async fn commit(
    client: &ServiceHttp,
    token: &Secret<String>,
    repo: Repo<'_>,
    sha: &str,
) -> Result<Commit, ServiceError> {
    client
        .send(
            request(
                client,
                Method::GET,
                &repo.path(&format!("/git/commits/{sha}")),
                token,
            ),
            classify,
        )
        .await
}

/// `POST /repos/{owner}/{repo}/git/blobs`' body.
#[derive(Serialize)]
struct NewBlob {
    content: String,
    encoding: &'static str,
}

/// `POST /repos/{owner}/{repo}/git/trees`' body.
#[derive(Serialize)]
struct NewTree<'a> {
    base_tree: &'a str,
    tree: Vec<TreeEntry<'a>>,
}

/// `POST /repos/{owner}/{repo}/git/commits`' body.
#[derive(Serialize)]
struct NewCommit<'a> {
    message: &'a str,
    tree: &'a str,
    parents: [&'a str; 1],
}

/// `PATCH /repos/{owner}/{repo}/git/refs/...`' body.
#[derive(Serialize)]
struct MoveRef<'a> {
    sha: &'a str,
    force: bool,
}

/// `POST /repos/{owner}/{repo}/git/refs`' body.
#[derive(Serialize)]
struct NewRef<'a> {
    #[serde(rename = "ref")]
    name: String,
    sha: &'a str,
}

/// `POST /repos/{owner}/{repo}/pulls`' body.
#[derive(Serialize)]
struct NewPull<'a> {
    title: &'a str,
    head: &'a str,
    base: &'a str,
    body: &'a str,
}

/// `POST /repos/{owner}/{repo}/git/blobs` with the bytes base64-encoded: the blob's sha.
pub async fn create_blob(
    client: &ServiceHttp,
    token: &Secret<String>,
    repo: Repo<'_>,
    bytes: &[u8],
) -> Result<String, ServiceError> {
    use base64::Engine;
    let body = NewBlob {
        content: base64::engine::general_purpose::STANDARD.encode(bytes),
        encoding: "base64",
    };
    let created: Created = client
        .send(
            request(client, Method::POST, &repo.path("/git/blobs"), token).json(&body),
            classify,
        )
        .await?;
    Ok(created.sha)
}

/// `POST /repos/{owner}/{repo}/git/trees`: `files` (path, blob sha) over `base_tree`.
pub async fn create_tree(
    client: &ServiceHttp,
    token: &Secret<String>,
    repo: Repo<'_>,
    base_tree: &str,
    files: &[(String, String)],
) -> Result<String, ServiceError> {
    let tree: Vec<TreeEntry> = files
        .iter()
        .map(|(path, sha)| TreeEntry {
            path,
            mode: "100644",
            kind: "blob",
            sha,
        })
        .collect();
    let body = NewTree { base_tree, tree };
    let created: Created = client
        .send(
            request(client, Method::POST, &repo.path("/git/trees"), token).json(&body),
            classify,
        )
        .await?;
    Ok(created.sha)
}

/// `POST /repos/{owner}/{repo}/git/commits`: a commit of `tree` on `parent`.
pub async fn create_commit(
    client: &ServiceHttp,
    token: &Secret<String>,
    repo: Repo<'_>,
    (message, tree, parent): (&str, &str, &str),
) -> Result<Commit, ServiceError> {
    let body = NewCommit {
        message,
        tree,
        parents: [parent],
    };
    client
        .send(
            request(client, Method::POST, &repo.path("/git/commits"), token).json(&body),
            classify,
        )
        .await
}

/// `PATCH /repos/{owner}/{repo}/git/refs/heads/{branch}`: moves the branch to `sha`, only
/// forward (a branch that moved meanwhile is a 422).
pub async fn move_branch(
    client: &ServiceHttp,
    token: &Secret<String>,
    repo: Repo<'_>,
    (branch, sha): (&str, &str),
) -> Result<(), ServiceError> {
    let body = MoveRef { sha, force: false };
    let _: serde_json::Value = client
        .send(
            request(
                client,
                Method::PATCH,
                &repo.path(&format!("/git/refs/heads/{branch}")),
                token,
            )
            .json(&body),
            classify,
        )
        .await?;
    Ok(())
}

/// `POST /repos/{owner}/{repo}/git/refs`: a new branch at `sha`.
pub async fn create_branch(
    client: &ServiceHttp,
    token: &Secret<String>,
    repo: Repo<'_>,
    (branch, sha): (&str, &str),
) -> Result<(), ServiceError> {
    let body = NewRef {
        name: format!("refs/heads/{branch}"),
        sha,
    };
    let _: serde_json::Value = client
        .send(
            request(client, Method::POST, &repo.path("/git/refs"), token).json(&body),
            classify,
        )
        .await?;
    Ok(())
}

/// `GET /repos/{owner}/{repo}/pulls?head={owner}:{branch}&state=all`: the pull request
/// from `branch`, if one was opened.
pub async fn pull_from(
    client: &ServiceHttp,
    token: &Secret<String>,
    repo: Repo<'_>,
    branch: &str,
) -> Result<Option<PullRequest>, ServiceError> {
    let head = format!("{}:{branch}", repo.owner);
    let pulls: Vec<PullRequest> = client
        .send(
            // Owners and our branch names are letters, digits, `-`, `_`, `.` and `/`: safe in
            // a query as they are.
            request(
                client,
                Method::GET,
                &repo.path(&format!("/pulls?head={head}&state=all")),
                token,
            ),
            classify,
        )
        .await?;
    Ok(pulls.into_iter().next())
}

/// `POST /repos/{owner}/{repo}/pulls`: a pull request from `head` into `base`.
pub async fn open_pull(
    client: &ServiceHttp,
    token: &Secret<String>,
    repo: Repo<'_>,
    (head, base, title, body): (&str, &str, &str, &str),
) -> Result<PullRequest, ServiceError> {
    let body = NewPull {
        title,
        head,
        base,
        body,
    };
    client
        .send(
            request(client, Method::POST, &repo.path("/pulls"), token).json(&body),
            classify,
        )
        .await
}

/// A 404 read as "there is none".
fn not_found_is_none<T>(result: Result<T, ServiceError>) -> Result<Option<T>, ServiceError> {
    match result {
        Ok(found) => Ok(Some(found)),
        Err(ServiceError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
