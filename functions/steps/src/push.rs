//! `push_code`: a task's files committed to the user's GitHub repository in one commit.
//! The first push creates the repository (private, with an initial commit) and commits to
//! its default branch; a repository that exists gets a branch and a pull request instead.
//!
//! Exactly once: the commit message ends with the call's key as a trailer
//! (`Autocrew-Call:`). A delivery that died after committing and before recording finds
//! that commit at the branch's head and goes on from there, so a retry never commits twice.

use crate::StepContext;
use crate::acting::{self, ActionError, Pushed, recorded};
use autocrew_shared::adapters::tools::ServiceError;
use autocrew_shared::adapters::tools::github::{self, Repo};
use autocrew_shared::crew::tools::PushArgs;
use autocrew_shared::domain::Service;
use autocrew_shared::domain::actions::{ApprovedAction, PushCode};
use autocrew_shared::domain::records::{Run, Task};
use autocrew_shared::services::Opened;
use serde_json::Value;

/// The trailer naming the call a commit was made for.
const TRAILER: &str = "Autocrew-Call";

/// Where the push goes, decided when it is prepared (and shown for approval).
const NEW_REPOSITORY: &str = "new_repository";
const PULL_REQUEST: &str = "pull_request";

/// The exact push: the repository, where the commit goes, and every file with its hash.
pub(crate) async fn prepare(
    ctx: &StepContext,
    (run, task, upstream): (&Run, &Task, &[Task]),
    args: &PushArgs,
) -> Result<ApprovedAction, ActionError> {
    let name = args.repository.as_str();
    let message = args.message.trim();
    let from = acting::source_task(task, upstream, args.task_key.as_deref())
        .map_err(ActionError::Refused)?;
    let files = acting::files_of(ctx, run, (from, "")).await?;
    if files.is_empty() {
        return Err(ActionError::Refused(format!(
            "{from} has no files to push; write them with write_file first"
        )));
    }
    let opened = ctx.connected.open(run.user_id, Service::Github).await?;
    let owner = opened.connection.account.clone();
    let repo = Repo {
        owner: &owner,
        name,
    };
    let exists = gh(
        ctx,
        &opened,
        github::repository(&opened.http, &opened.token, repo),
    )
    .await?;
    let target = match exists {
        Some(_) => PULL_REQUEST,
        None => NEW_REPOSITORY,
    };
    Ok(ApprovedAction::PushCode(PushCode {
        service: Service::Github,
        repository: format!("{owner}/{name}"),
        owner,
        name: name.to_owned(),
        target: target.to_owned(),
        message: message.to_owned(),
        from_task: from.to_owned(),
        files,
    }))
}

/// Makes the push `payload` describes, once.
pub(crate) async fn execute(
    ctx: &StepContext,
    run: &Run,
    push: &PushCode,
    call_key: &str,
) -> Result<Value, ActionError> {
    let (owner, name, target, message, files) = (
        push.owner.as_str(),
        push.name.as_str(),
        push.target.as_str(),
        push.message.as_str(),
        &push.files,
    );
    let opened = ctx.connected.open(run.user_id, Service::Github).await?;
    if opened.connection.account != owner {
        return Err(ActionError::Fatal(format!(
            "the approved push is to {owner}/{name}, but the connected GitHub account is now {}; nothing was pushed",
            opened.connection.account
        )));
    }
    let repo = Repo { owner, name };
    let (http, token) = (&opened.http, &opened.token);
    let repository = match gh(ctx, &opened, github::repository(http, token, repo)).await? {
        Some(found) => found,
        None => {
            gh(
                ctx,
                &opened,
                github::create_repository(http, token, (name, "Made by Autocrew", true)),
            )
            .await?
        }
    };
    let base = repository.default_branch.clone();
    let trailer = format!("{TRAILER}: {call_key}");
    let full_message = format!("{message}\n\n{trailer}");
    let base_head = gh(ctx, &opened, github::branch_head(http, token, repo, &base))
        .await?
        .ok_or_else(|| ActionError::Refused(format!("{owner}/{name} has no branch {base}")))?;
    // An earlier delivery may have pushed already: straight to the default branch (the
    // repository was new then, though it exists now), or to this call's branch.
    let pushed_to_base = gh(ctx, &opened, github::commit(http, token, repo, &base_head))
        .await?
        .message
        .contains(&trailer);
    let target = if pushed_to_base {
        NEW_REPOSITORY
    } else {
        target
    };
    let branch = match target {
        PULL_REQUEST => format!("autocrew/{}", &call_key[..12.min(call_key.len())]),
        _ => base.clone(),
    };
    let start = match target {
        PULL_REQUEST => {
            gh(
                ctx,
                &opened,
                github::branch_head(http, token, repo, &branch),
            )
            .await?
        }
        _ => Some(base_head.clone()),
    };
    let mut commit = None;
    if let Some(head) = &start {
        let at_head = gh(ctx, &opened, github::commit(http, token, repo, head)).await?;
        if at_head.message.contains(&trailer) {
            tracing::info!(call_key, sha = %at_head.sha, "the push was made before; going on from it");
            commit = Some(at_head);
        }
    }
    let commit = match commit {
        Some(done) => done,
        None => {
            let parent = start.clone().unwrap_or_else(|| base_head.clone());
            let parent_commit =
                gh(ctx, &opened, github::commit(http, token, repo, &parent)).await?;
            let mut entries = Vec::with_capacity(files.len());
            for file in files {
                let (path, bytes) = acting::approved_bytes(ctx, file).await?;
                let blob = gh(ctx, &opened, github::create_blob(http, token, repo, &bytes)).await?;
                entries.push((path, blob));
            }
            let tree = gh(
                ctx,
                &opened,
                github::create_tree(http, token, repo, &parent_commit.tree.sha, &entries),
            )
            .await?;
            let made = gh(
                ctx,
                &opened,
                github::create_commit(http, token, repo, (&full_message, &tree, &parent)),
            )
            .await?;
            match &start {
                Some(_) => {
                    gh(
                        ctx,
                        &opened,
                        github::move_branch(http, token, repo, (&branch, &made.sha)),
                    )
                    .await?
                }
                None => {
                    gh(
                        ctx,
                        &opened,
                        github::create_branch(http, token, repo, (&branch, &made.sha)),
                    )
                    .await?
                }
            }
            made
        }
    };
    let mut result = Pushed {
        repository: repository.html_url.clone(),
        branch: branch.clone(),
        commit: commit.sha.clone(),
        commit_url: commit.html_url.clone(),
        files: files.len(),
        pull_request: None,
        link: commit.html_url.clone(),
        said: String::new(),
    };
    if target == PULL_REQUEST {
        let pull = match gh(ctx, &opened, github::pull_from(http, token, repo, &branch)).await? {
            Some(open) => open,
            None => {
                let title = message.lines().next().unwrap_or(message);
                let body = format!(
                    "Opened by Autocrew for run {} ({} files).\n\n{trailer}",
                    run.id,
                    files.len()
                );
                gh(
                    ctx,
                    &opened,
                    github::open_pull(http, token, repo, (&branch, &base, title, &body)),
                )
                .await?
            }
        };
        result.said = format!(
            "opened pull request #{} into {base}: {} ({} files)",
            pull.number,
            pull.html_url,
            files.len()
        );
        result.link = pull.html_url.clone();
        result.pull_request = Some(pull.html_url);
    } else {
        result.said = format!(
            "committed {} files to {}/{branch}: {}",
            files.len(),
            repository.full_name,
            commit.html_url
        );
    }
    recorded(&result)
}

/// Awaits a GitHub call; its refusal becomes what it means for the task.
async fn gh<T>(
    ctx: &StepContext,
    opened: &Opened,
    call: impl std::future::Future<Output = Result<T, ServiceError>>,
) -> Result<T, ActionError> {
    crate::outreach::call(ctx, opened, call).await
}
