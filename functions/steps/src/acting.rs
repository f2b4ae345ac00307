//! What every tool that acts in the world shares, whichever service it acts on: the
//! answer it gives the model, why it did not run, the per-minute limit it is counted
//! against, and the files it takes as approved. `actions` dispatches to the tools; the
//! tools (`push`, `deploy`, `build`, `outreach`, `images`) use this.

use crate::callback::retry;
use crate::{RecordError, StepContext};
use autocrew_shared::crew::tools;
use autocrew_shared::domain::actions::ApprovedFile;
use autocrew_shared::domain::records::{Run, Task};
use autocrew_shared::domain::sha256_hex;
use autocrew_shared::ports::Bucket;

/// What a tool call answers the model: its result, or why it did nothing.
pub(crate) type ToolAnswer = Result<String, String>;

/// What an action did, as its approval (or its idempotency claim) stores it and
/// `action_executed` says: where to see it (`link`), what the agent is told (`said`), and
/// the service's own references. Each tool's result serialises to this shape.
pub(crate) fn recorded(result: &impl serde::Serialize) -> Result<serde_json::Value, ActionError> {
    serde_json::to_value(result).map_err(|e| {
        ActionError::Infrastructure(RecordError::Poison(format!(
            "an action's result could not be recorded: {e}"
        )))
    })
}

/// A push: the repository, branch and commit, and the pull request when one was opened.
#[derive(serde::Serialize)]
pub(crate) struct Pushed {
    pub repository: String,
    pub branch: String,
    pub commit: String,
    pub commit_url: String,
    pub files: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    pub link: String,
    pub said: String,
}

/// An email sent through Resend.
#[derive(serde::Serialize)]
pub(crate) struct Emailed {
    pub email_id: String,
    pub to: Vec<String>,
    pub said: String,
}

/// A post on X (`post_id`) or LinkedIn (`post_urn`).
#[derive(serde::Serialize)]
pub(crate) struct Posted {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_urn: Option<String>,
    pub link: String,
    pub said: String,
}

/// A deploy started (or finished) on Vercel.
#[derive(serde::Serialize)]
pub(crate) struct Deployed {
    pub deployment_id: autocrew_shared::domain::DeploymentId,
    pub vercel_id: String,
    pub status: autocrew_shared::domain::DeploymentStatus,
    pub link: String,
    pub said: String,
}

/// App builds started on EAS.
#[derive(serde::Serialize)]
pub(crate) struct BuildsStarted {
    pub said: String,
    pub app: String,
    pub git_ref: String,
    pub profile: String,
}

/// An image made and stored.
#[derive(serde::Serialize)]
pub(crate) struct Imaged {
    pub said: String,
    pub object_key: String,
    pub cost_micro_usd: i64,
}

/// A file published at its stable link.
#[derive(serde::Serialize)]
pub(crate) struct Published {
    pub link: String,
    pub object_key: String,
    pub content_sha256: String,
}

/// Why an action did not run.
pub(crate) enum ActionError {
    /// Told to the model, which may do something else.
    Refused(String),
    /// Fails the task, not retried: a person has to act first (connect an account again).
    Fatal(String),
    /// The outside service failed or is rate-limiting: the attempt fails and the task is
    /// retried with backoff, within its attempts (no storm).
    Unavailable(String),
    Infrastructure(RecordError),
}

impl From<RecordError> for ActionError {
    fn from(e: RecordError) -> Self {
        ActionError::Infrastructure(e)
    }
}

impl From<autocrew_shared::ports::StoreError> for ActionError {
    fn from(e: autocrew_shared::ports::StoreError) -> Self {
        ActionError::Infrastructure(e.into())
    }
}

impl From<autocrew_shared::services::AccountError> for ActionError {
    fn from(e: autocrew_shared::services::AccountError) -> Self {
        use autocrew_shared::services::AccountError;
        match e {
            AccountError::Service(e) if e.is_retryable() => ActionError::Unavailable(e.to_string()),
            // KMS (or the key file) failing is ours, and may pass; a token that does not open
            // with the key held needs a person.
            AccountError::Vault(e @ autocrew_shared::ports::VaultError::Backend(_)) => {
                ActionError::Unavailable(e.to_string())
            }
            AccountError::Store(e) => e.into(),
            other => ActionError::Fatal(other.to_string()),
        }
    }
}

/// Counts a call of `tool` for the run's user this minute; why not, when the user's limit
/// for the tool is reached.
pub(crate) async fn past_limit(
    ctx: &StepContext,
    run: &Run,
    tool: &str,
) -> Result<Option<String>, RecordError> {
    let bucket = Bucket {
        key: format!("tool:{tool}:{}", run.user_id),
        limit: tools::calls_per_minute(tool),
        policy: "tool",
    };
    let standing = ctx.limiter.hit(&[bucket]).await?;
    Ok((!standing.allowed).then(|| {
        format!(
            "not done: the user's limit of {} {tool} calls a minute is reached (it resets in {} s); do not retry it in this task, say so in your summary",
            standing.limit, standing.reset_secs
        )
    }))
}

/// The task whose files an action uses: this one, or one it depends on named by
/// `task_key`; why not, to tell the model.
pub(crate) fn source_task<'a>(
    task: &'a Task,
    upstream: &[Task],
    task_key: Option<&'a str>,
) -> Result<&'a str, String> {
    let from = task_key.unwrap_or(&task.key);
    if from != task.key && !upstream.iter().any(|t| t.key == from) {
        let known: Vec<&str> = upstream.iter().map(|t| t.key.as_str()).collect();
        return Err(format!(
            "task_key {from:?} is neither this task nor one it depends on ({known:?})"
        ));
    }
    Ok(from)
}

/// The files task `from` wrote under `folder` (all of them for ""), each as an action shows
/// it for approval: its path inside the folder, where it is kept, its sha-256 and size.
pub(crate) async fn files_of(
    ctx: &StepContext,
    run: &Run,
    (from, folder): (&str, &str),
) -> Result<Vec<ApprovedFile>, ActionError> {
    let mut prefix = format!("projects/{}/runs/{}/{from}/", run.project_id, run.id);
    if !folder.is_empty() {
        prefix = format!("{prefix}{folder}/");
    }
    Ok(ctx
        .artifacts
        .run_artifacts(run.id)
        .await?
        .into_iter()
        .filter_map(|a| {
            let path = a.key.strip_prefix(&prefix)?.to_owned();
            Some(ApprovedFile {
                path,
                source: a.key,
                sha256: a.checksum_sha256,
                size_bytes: a.size_bytes,
            })
        })
        .collect())
}

/// An approved file's path and bytes (from `files_of`), refused when the bytes are no
/// longer the ones approved.
pub(crate) async fn approved_bytes(
    ctx: &StepContext,
    file: &ApprovedFile,
) -> Result<(String, Vec<u8>), ActionError> {
    let path = &file.path;
    let bytes = ctx.blobs.get(&file.source).await.map_err(retry)?;
    if sha256_hex(&bytes) != file.sha256 {
        return Err(ActionError::Refused(format!(
            "not done: {path} changed after it was approved"
        )));
    }
    Ok((path.to_owned(), bytes))
}
