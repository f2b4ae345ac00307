//! Tools whose calls act in the world, and the approvals around the critical ones. Such a
//! call is first prepared into its exact action payload (what a person is shown and what
//! will run); a critical one then parks its task until a person decides. The action runs
//! once per tool call: its idempotency key is claimed first, and a call that already ran
//! gets its stored result back.

use crate::acting::{ActionError, Published, ToolAnswer, past_limit, source_task};
use crate::callback::retry;
use crate::{RecordError, StepContext};
use autocrew_shared::crew::tools::{PublishArgs, ToolCall};
use autocrew_shared::crew::{agents, tools};
use autocrew_shared::domain::actions::{ApprovedAction, Publish};
use autocrew_shared::domain::events::{ActionExecuted, EventBody};
use autocrew_shared::domain::records::{Run, Task};
use autocrew_shared::domain::{Approval, ApprovalId, ApprovalStatus, sha256_hex};
use autocrew_shared::ports::{BlobError, Claim};
use serde_json::Value;

/// The exact action a call of `tool` asks for.
pub(crate) async fn prepare(
    ctx: &StepContext,
    (run, task, upstream): (&Run, &Task, &[Task]),
    call: &ToolCall,
) -> Result<ApprovedAction, ActionError> {
    match call {
        ToolCall::Publish(args) => prepare_publish(ctx, run, task, upstream, args)
            .await?
            .map(ApprovedAction::Publish)
            .map_err(ActionError::Refused),
        ToolCall::PushCode(args) => crate::push::prepare(ctx, (run, task, upstream), args).await,
        ToolCall::SendEmail(args) => crate::outreach::prepare_email(ctx, run, args).await,
        ToolCall::PostToX(args) => crate::outreach::prepare_post(ctx, run, args).await,
        ToolCall::PostToLinkedin(args) => {
            crate::outreach::prepare_linkedin_post(ctx, run, args).await
        }
        ToolCall::DeploySite(args) => {
            crate::deploy::prepare(ctx, (run, task, upstream), args).await
        }
        ToolCall::BuildApp(args) => crate::build::prepare(ctx, run, args).await,
        ToolCall::ReadUpstream(_)
        | ToolCall::WriteFile(_)
        | ToolCall::GenerateImage(_)
        | ToolCall::Finish(_) => Err(ActionError::Refused(
            "this tool does not act in the world".into(),
        )),
    }
}

async fn prepare_publish(
    ctx: &StepContext,
    run: &Run,
    task: &Task,
    upstream: &[Task],
    args: &PublishArgs,
) -> Result<Result<Publish, String>, RecordError> {
    let path = args.path.as_str();
    if !tools::safe_path(path) {
        return Ok(Err(format!(
            "path {path:?} must be relative and stay inside the task's folder"
        )));
    }
    let from = match source_task(task, upstream, args.task_key.as_deref()) {
        Ok(from) => from,
        Err(refused) => return Ok(Err(refused)),
    };
    let source = format!("projects/{}/runs/{}/{from}/{path}", run.project_id, run.id);
    let bytes = match ctx.blobs.get(&source).await {
        Ok(bytes) => bytes,
        Err(BlobError::NotFound { .. }) => {
            return Ok(Err(format!(
                "{from} has no file {path:?}; write it with write_file first"
            )));
        }
        Err(e) => return Err(retry(e)),
    };
    Ok(Ok(Publish {
        file: path.to_owned(),
        from_task: from.to_owned(),
        content_sha256: sha256_hex(&bytes),
        size_bytes: bytes.len() as u64,
        content_type: agents::content_type(path).to_owned(),
        link: format!("{}/{}", ctx.actions.public_base_url, site_key(run, path)),
        source,
    }))
}

/// Where a published file lives, in the bucket and under the public base URL: one stable
/// place per project and path, so publishing again replaces what the link shows.
fn site_key(run: &Run, path: &str) -> String {
    format!("sites/{}/{path}", run.project_id)
}

/// What a decided approval tells the model, when it does not run.
pub(crate) fn refusal(approval: &Approval) -> Option<String> {
    let reason = approval
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    match approval.status {
        ApprovalStatus::Approved => None,
        ApprovalStatus::Rejected => Some(format!(
            "not done: the person rejected this {} action{reason}. Do not ask again; finish without it and say so.",
            approval.tool
        )),
        ApprovalStatus::Expired => Some(format!(
            "not done: nobody approved this {} action before its approval expired at {}. Finish without it and say so.",
            approval.tool,
            approval.expires_at.to_rfc3339()
        )),
        ApprovalStatus::Pending => Some("still waiting for a decision".into()),
    }
}

/// Runs `action` once for the call `call_key`: a call that already ran gets its stored
/// result. With an approval, only its approved action runs, and the execution is recorded
/// on it (`action_executed`).
#[tracing::instrument(name = "action", skip_all)]
pub(crate) async fn execute(
    ctx: &StepContext,
    (run, task): (&Run, &Task),
    (tool, action): (&str, &ApprovedAction),
    (call_key, approval): (&str, Option<ApprovalId>),
) -> Result<ToolAnswer, ActionError> {
    if let Claim::Done(result) = ctx
        .idempotency
        .claim(tools::IDEMPOTENCY_SCOPE, call_key)
        .await
        .map_err(retry)?
    {
        tracing::info!(call_key, "the action ran before; its result is returned");
        return Ok(answer(&result));
    }
    // Counted per user and tool, each minute; a claim that ran before was counted then.
    if let Some(refused) = past_limit(ctx, run, tool).await? {
        return Err(ActionError::Refused(refused));
    }
    // A claim in progress is an earlier delivery that died before recording: each action
    // finds what that delivery did (publishing writes the same bytes to the same place; a
    // push finds its commit by the call's trailer), so running again repeats nothing.
    let result = match action {
        ApprovedAction::Publish(publishing) => match publish(ctx, run, publishing).await? {
            Ok(result) => result,
            Err(refused) => return Ok(Err(refused)),
        },
        ApprovedAction::PushCode(push) => crate::push::execute(ctx, run, push, call_key).await?,
        ApprovedAction::SendEmail(email) => {
            crate::outreach::send_email(ctx, run, email, call_key).await?
        }
        ApprovedAction::PostToX(post) => crate::outreach::post_to_x(ctx, run, post).await?,
        ApprovedAction::PostToLinkedin(post) => {
            crate::outreach::post_to_linkedin(ctx, run, post).await?
        }
        ApprovedAction::DeploySite(site) => {
            crate::deploy::execute(ctx, (run, task), site, call_key).await?
        }
        ApprovedAction::BuildApp(build) => {
            crate::build::execute(ctx, (run, task), build, call_key).await?
        }
    };
    match approval {
        Some(id) => {
            let effects = ctx.approvals.executed(id, &result).await?;
            ctx.relay.publish(effects).await;
        }
        None => {
            ctx.idempotency
                .complete(tools::IDEMPOTENCY_SCOPE, call_key, &result)
                .await
                .map_err(retry)?;
            // Ran without asking (the user's policy): the log still says what was done.
            let event = EventBody::ActionExecuted(ActionExecuted {
                approval_id: None,
                auto_approved: true,
                task_id: task.id,
                tool: tool.to_owned(),
                result: result.clone(),
            });
            ctx.notifier
                .emit(run.project_id, Some(run.id), event)
                .await
                .map_err(retry)?;
        }
    }
    Ok(answer(&result))
}

fn answer(result: &Value) -> ToolAnswer {
    match (result["said"].as_str(), result["link"].as_str()) {
        (Some(said), _) => Ok(said.to_owned()),
        (None, Some(link)) => Ok(format!("published at {link}")),
        _ => Ok(result.to_string()),
    }
}

/// Copies the approved bytes to the file's public place, after checking they are still
/// the bytes that were approved.
async fn publish(
    ctx: &StepContext,
    run: &Run,
    publishing: &Publish,
) -> Result<Result<Value, String>, RecordError> {
    let (source, file, approved) = (
        &publishing.source,
        &publishing.file,
        &publishing.content_sha256,
    );
    let bytes = ctx.blobs.get(source).await.map_err(retry)?;
    let actual = sha256_hex(&bytes);
    if actual != *approved {
        return Ok(Err(format!(
            "not published: {file} changed after it was approved (sha-256 {actual}, approved {approved})"
        )));
    }
    let key = site_key(run, file);
    ctx.blobs
        .put(&key, bytes, agents::content_type(file))
        .await
        .map_err(retry)?;
    let published = Published {
        link: publishing.link.clone(),
        object_key: key,
        content_sha256: actual,
    };
    match serde_json::to_value(published) {
        Ok(result) => Ok(Ok(result)),
        Err(e) => Err(RecordError::Poison(format!(
            "a publication's result could not be recorded: {e}"
        ))),
    }
}
