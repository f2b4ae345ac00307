//! `build_app`: iOS and Android builds of the app on the user's Expo account (EAS Build),
//! from the GitHub repository its EAS project is linked to. A build takes 10 to 20
//! minutes, so the step only starts it: each platform's build becomes a `deployments`
//! row under the call's key, the task parks (`awaiting_job`), and the job-watch state
//! machine looks at the builds (`look`) until they end or the deadline passes.
//!
//! Exactly once: a platform's row is written before its build is asked for, under a
//! placeholder id. A delivery that died between the two finds the row still pending and
//! adopts the build EAS made for it since (same platform, ref and profile), if any,
//! before asking again.

use crate::StepContext;
use crate::acting::{self, ActionError};
use crate::outreach::call;
use autocrew_shared::adapters::tools::expo::{self, AppPlatform, GitHubBuildInput};
use autocrew_shared::crew::tools::{BuildArgs, PlatformName};
use autocrew_shared::domain::actions::{ApprovedAction, BuildApp};
use autocrew_shared::domain::connections::Deployment;
use autocrew_shared::domain::records::{Run, Task};
use autocrew_shared::domain::{DeploymentStatus, Service};
use autocrew_shared::ports::{DeploymentChange, NewDeployment};
use autocrew_shared::services::Opened;
use serde_json::Value;

/// The `eas.json` profile built when the call names none.
const DEFAULT_PROFILE: &str = "production";
/// A platform's row before EAS answered: `PENDING` + the call's key + the platform.
const PENDING: &str = "pending:";

/// The EAS account a connection acts for: the account named in parentheses (a robot's,
/// or an organisation's), else the user's own.
fn owner(account: &str) -> &str {
    match account.rsplit_once(" (") {
        Some((_, inner)) => inner.trim_end_matches(')'),
        None => account,
    }
}

/// The exact builds: the EAS project, its repository, the ref, the profile, the platforms.
pub(crate) async fn prepare(
    ctx: &StepContext,
    run: &Run,
    args: &BuildArgs,
) -> Result<ApprovedAction, ActionError> {
    let slug = args.project.as_str();
    let platforms: Vec<AppPlatform> = args
        .platforms
        .iter()
        .map(|p| match p {
            PlatformName::Ios => AppPlatform::Ios,
            PlatformName::Android => AppPlatform::Android,
        })
        .collect();
    let opened = ctx.connected.open(run.user_id, Service::Expo).await?;
    let full_name = format!("@{}/{slug}", owner(&opened.connection.account));
    let app = call(ctx, &opened, expo::app(&opened.http, &opened.token, &full_name))
        .await?
        .ok_or_else(|| {
            ActionError::Refused(format!(
                "EAS has no project {full_name}: the user creates it (eas init) and links it to the app's GitHub repository on expo.dev (the project's GitHub settings); nothing was built"
            ))
        })?;
    let Some(repository) = app.repository.clone() else {
        return Err(ActionError::Refused(format!(
            "the EAS project {full_name} is not linked to a GitHub repository: the user links it on expo.dev (the project's GitHub settings); nothing was built"
        )));
    };
    let git_ref = match &args.git_ref {
        Some(r) => r.clone(),
        None => app.default_branch.clone().unwrap_or_else(|| "main".into()),
    };
    Ok(ApprovedAction::BuildApp(BuildApp {
        service: Service::Expo,
        account: opened.connection.account.clone(),
        app: app.full_name.clone(),
        app_id: app.id.clone(),
        repository,
        git_ref,
        profile: args
            .profile
            .clone()
            .unwrap_or_else(|| DEFAULT_PROFILE.to_owned()),
        platforms,
    }))
}

/// Starts the approved builds, each recorded as a deployment of the call's job.
pub(crate) async fn execute(
    ctx: &StepContext,
    (run, task): (&Run, &Task),
    build: &BuildApp,
    call_key: &str,
) -> Result<Value, ActionError> {
    let (app_id, app, git_ref, profile) = (
        build.app_id.as_str(),
        build.app.as_str(),
        build.git_ref.as_str(),
        build.profile.as_str(),
    );
    let platforms = &build.platforms;
    let opened = ctx.connected.open(run.user_id, Service::Expo).await?;
    let deadline = chrono::Utc::now()
        + chrono::Duration::from_std(ctx.jobs.build_timeout).unwrap_or(chrono::Duration::hours(1));
    let started = ctx.deployments.job(call_key).await?;
    for platform in platforms {
        let row = match started.iter().find(|d| d.kind == platform.kind()) {
            Some(row) if !row.provider_id.starts_with(PENDING) => continue,
            Some(row) => row.clone(),
            None => {
                let recorded = ctx
                    .deployments
                    .record(&NewDeployment {
                        user: run.user_id,
                        project: run.project_id,
                        run: Some(run.id),
                        task: Some(task.id),
                        service: Service::Expo,
                        kind: platform.kind().into(),
                        status: DeploymentStatus::Queued,
                        url: None,
                        inspect_url: None,
                        provider_id: format!("{PENDING}{call_key}:{}", platform.kind()),
                        error: None,
                        job: Some((call_key.to_owned(), deadline)),
                    })
                    .await?;
                ctx.relay.publish(recorded.effects).await;
                recorded.value
            }
        };
        let adopted =
            made_since(ctx, &opened, (app_id, *platform), (&row, git_ref, profile)).await?;
        let change = match adopted {
            Some(build) => build_change(&build),
            None => {
                let input = GitHubBuildInput {
                    app_id,
                    platform: *platform,
                    git_ref,
                    build_profile: profile,
                };
                let receipt = call(
                    ctx,
                    &opened,
                    expo::create_github_build(&opened.http, &opened.token, &input),
                )
                .await?;
                receipt_change(&receipt)
            }
        };
        let changed = ctx.deployments.update(row.id, &change).await?;
        ctx.relay.publish(changed.effects).await;
    }
    let names: Vec<&str> = platforms
        .iter()
        .map(|p| match p {
            AppPlatform::Ios => "iOS",
            AppPlatform::Android => "Android",
        })
        .collect();
    acting::recorded(&acting::BuildsStarted {
        said: format!(
            "started the {} build{} of {app} at {git_ref} (profile {profile}) on EAS",
            names.join(" and "),
            if names.len() == 1 { "" } else { "s" }
        ),
        app: app.to_string(),
        git_ref: git_ref.to_string(),
        profile: profile.to_string(),
    })
}

/// The build EAS made for a pending row since it was written (a start whose answer was
/// lost), if any.
async fn made_since(
    ctx: &StepContext,
    opened: &Opened,
    (app_id, platform): (&str, AppPlatform),
    (row, git_ref, profile): (&Deployment, &str, &str),
) -> Result<Option<expo::Build>, ActionError> {
    if !row.provider_id.starts_with(PENDING) {
        return Ok(None);
    }
    let recent = call(
        ctx,
        opened,
        expo::recent_builds(&opened.http, &opened.token, (app_id, platform)),
    )
    .await?;
    Ok(recent.into_iter().find(|b| {
        b.created_at >= row.created_at - chrono::Duration::seconds(5)
            && b.git_ref.as_deref() == Some(git_ref)
            && b.build_profile.as_deref() == Some(profile)
    }))
}

/// What a job receipt says of its build: still being made, failed, or made (then the
/// row takes the build's id and the next look follows the build).
fn receipt_change(receipt: &expo::JobReceipt) -> DeploymentChange {
    match (receipt.state.as_str(), &receipt.result_id) {
        ("SUCCESS", Some(build)) => DeploymentChange {
            provider_id: Some(build.clone()),
            ..Default::default()
        },
        ("FAILURE", _) if !receipt.will_retry => DeploymentChange {
            status: Some(DeploymentStatus::Failed),
            provider_id: Some(receipt.id.clone()),
            error: Some(format!(
                "EAS could not start the build: {} ({})",
                receipt
                    .error_message
                    .as_deref()
                    .unwrap_or("no reason given"),
                receipt.error_code.as_deref().unwrap_or("no code")
            )),
            ..Default::default()
        },
        _ => DeploymentChange {
            status: Some(DeploymentStatus::Queued),
            provider_id: Some(receipt.id.clone()),
            ..Default::default()
        },
    }
}

/// EAS's build status as a deployment status.
pub(crate) fn status_of(build_status: &str) -> DeploymentStatus {
    match build_status {
        "FINISHED" => DeploymentStatus::Ready,
        "ERRORED" => DeploymentStatus::Failed,
        "CANCELED" => DeploymentStatus::Canceled,
        "IN_PROGRESS" | "PENDING_CANCEL" => DeploymentStatus::Building,
        _ => DeploymentStatus::Queued,
    }
}

/// Where a build stands: its status, the archive's link once finished, its page at EAS,
/// and EAS's error.
fn build_change(build: &expo::Build) -> DeploymentChange {
    let app = &build.app.full_name;
    let (account, slug) = app
        .trim_start_matches('@')
        .split_once('/')
        .unwrap_or((app, app));
    DeploymentChange {
        status: Some(status_of(&build.status)),
        url: build.artifacts.as_ref().and_then(|a| a.build_url.clone()),
        inspect_url: Some(format!(
            "https://expo.dev/accounts/{account}/projects/{slug}/builds/{}",
            build.id
        )),
        provider_id: Some(build.id.clone()),
        error: build
            .error
            .as_ref()
            .map(|e| format!("{} ({})", e.message, e.error_code)),
    }
}

/// One look at a job's build for the watcher: the change to record, or why it could not
/// look (told as the row's error only when it ends the build: a refused credential).
pub(crate) async fn look(
    ctx: &StepContext,
    opened: &Opened,
    row: &Deployment,
) -> Result<DeploymentChange, ActionError> {
    if row.provider_id.starts_with(PENDING) {
        // Its start never got an answer and its task has not run again yet.
        return Ok(DeploymentChange::default());
    }
    let (http, token) = (&opened.http, &opened.token);
    if row.inspect_url.is_none() {
        // Still the job receipt's id: has EAS made the build yet?
        let receipt = call(
            ctx,
            opened,
            expo::job_receipt(http, token, &row.provider_id),
        )
        .await?;
        let change = receipt_change(&receipt);
        let Some(build) = change.provider_id.clone().filter(|id| *id != receipt.id) else {
            return Ok(change);
        };
        let build = call(ctx, opened, expo::build(http, token, &build)).await?;
        return Ok(build_change(&build));
    }
    let build = call(ctx, opened, expo::build(http, token, &row.provider_id)).await?;
    Ok(build_change(&build))
}

/// Stops a job's build at EAS (`cancelBuild`) when nobody waits for it any more: its run
/// was cancelled, or it outlived its deadline. The build as EAS answers (`CANCELED`, or
/// how it ended if it had), or `None` while EAS has not made it yet (its job receipt is
/// still pending: look again).
pub(crate) async fn cancel(
    ctx: &StepContext,
    opened: &Opened,
    row: &Deployment,
) -> Result<Option<DeploymentChange>, ActionError> {
    let build = match row.inspect_url {
        Some(_) => Some(row.provider_id.clone()),
        None => {
            let change = look(ctx, opened, row).await?;
            if change.status.is_some_and(|s| s.is_terminal()) {
                // The start itself failed: there is nothing to cancel.
                return Ok(Some(change));
            }
            change.inspect_url.and(change.provider_id)
        }
    };
    let Some(build) = build.filter(|id| !id.is_empty() && !id.starts_with(PENDING)) else {
        return Ok(None);
    };
    let answer = call(
        ctx,
        opened,
        expo::cancel_build(&opened.http, &opened.token, &build),
    )
    .await?;
    Ok(Some(build_change(&answer)))
}
