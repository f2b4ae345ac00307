//! `deploy_site`: a folder of a task's files deployed as a static site on the user's
//! Vercel account, recorded as a `deployments` row whose changes the app follows.
//! Vercel reuses a previous deployment of the same files unless asked to force a new one,
//! so a retried call after a lost answer gets the same deployment, recorded once. One still
//! building after the step's quick looks is a long job: the task parks and the job watcher
//! follows it (`look`) to its end.

use crate::StepContext;
use crate::acting::{self, ActionError};
use crate::outreach::call;
use autocrew_shared::adapters::tools::vercel::{self, InlinedFile, VercelDeployment};
use autocrew_shared::crew::tools::DeployArgs;
use autocrew_shared::domain::actions::{ApprovedAction, DeploySite};
use autocrew_shared::domain::analytics;
use autocrew_shared::domain::connections::Deployment;
use autocrew_shared::domain::records::{Run, Task};
use autocrew_shared::domain::{DeploymentStatus, Service};
use autocrew_shared::ports::{DeploymentChange, NewDeployment};
use autocrew_shared::services::Opened;
use serde_json::Value;
use std::time::Duration;

/// A static deployment is usually ready within seconds: it is asked after at most this
/// long, a few times; one still building is followed by the job watcher.
const QUICK_LOOKS: [Duration; 3] = [
    Duration::from_millis(300),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Vercel's `readyState` as a deployment status.
pub(crate) fn status_of(ready_state: &str) -> DeploymentStatus {
    match ready_state {
        "READY" => DeploymentStatus::Ready,
        "ERROR" => DeploymentStatus::Failed,
        "CANCELED" => DeploymentStatus::Canceled,
        "BUILDING" | "INITIALIZING" => DeploymentStatus::Building,
        _ => DeploymentStatus::Queued,
    }
}

/// The exact deployment: the Vercel project, and every file with its hash.
pub(crate) async fn prepare(
    ctx: &StepContext,
    (run, task, upstream): (&Run, &Task, &[Task]),
    args: &DeployArgs,
) -> Result<ApprovedAction, ActionError> {
    let folder = args.folder.trim_end_matches('/');
    let from = acting::source_task(task, upstream, args.task_key.as_deref())
        .map_err(ActionError::Refused)?;
    let files = acting::files_of(ctx, run, (from, folder)).await?;
    if !files.iter().any(|f| f.path == "index.html") {
        return Err(ActionError::Refused(format!(
            "{from} wrote no {folder}/index.html; a site needs one"
        )));
    }
    let opened = ctx.connected.open(run.user_id, Service::Vercel).await?;
    let key = ctx.analytics.key_for(run.project_id).await?;
    let beacon = format!(
        "{}/projects/{}/analytics/events?key={}",
        ctx.actions.public_base_url.trim_end_matches('/'),
        run.project_id,
        key.key
    );
    let project = match &args.project {
        Some(name) => name.clone(),
        None => format!("autocrew-{}", &run.project_id.to_string()[..8]),
    };
    Ok(ApprovedAction::DeploySite(DeploySite {
        service: Service::Vercel,
        account: opened.connection.account.clone(),
        project,
        target: "production".into(),
        from_task: from.to_owned(),
        folder: folder.to_owned(),
        files,
        beacon: Some(beacon),
    }))
}

/// Deploys the approved files and records the deployment (under the call's key, with the
/// long jobs' deadline, so the watcher can follow one still building).
pub(crate) async fn execute(
    ctx: &StepContext,
    (run, task): (&Run, &Task),
    site: &DeploySite,
    call_key: &str,
) -> Result<Value, ActionError> {
    let project = site.project.as_str();
    let mut files = Vec::new();
    for file in &site.files {
        let (path, bytes) = acting::approved_bytes(ctx, file).await?;
        files.push(match String::from_utf8(bytes) {
            Ok(text) => InlinedFile {
                data: match &site.beacon {
                    Some(endpoint) if path.ends_with(".html") => {
                        analytics::with_beacon(&text, endpoint)
                    }
                    _ => text,
                },
                file: path.clone(),
                encoding: "utf-8",
            },
            Err(e) => {
                use base64::Engine;
                let data = base64::engine::general_purpose::STANDARD.encode(e.into_bytes());
                InlinedFile {
                    file: path.clone(),
                    data,
                    encoding: "base64",
                }
            }
        });
    }
    let opened = ctx.connected.open(run.user_id, Service::Vercel).await?;
    let (http, token) = (&opened.http, &opened.token);
    let mut deployment: VercelDeployment = call(
        ctx,
        &opened,
        vercel::create_deployment(http, token, project, &files),
    )
    .await?;
    for wait in QUICK_LOOKS {
        if status_of(&deployment.ready_state).is_terminal() {
            break;
        }
        tokio::time::sleep(wait).await;
        deployment = call(
            ctx,
            &opened,
            vercel::deployment(http, token, &deployment.id),
        )
        .await?;
    }
    let DeploymentChange { status, error, .. } = change_of(&deployment);
    let status = status.unwrap_or(DeploymentStatus::Queued);
    let deadline = chrono::Utc::now()
        + chrono::Duration::from_std(ctx.jobs.build_timeout).unwrap_or(chrono::Duration::hours(1));
    let recorded = ctx
        .deployments
        .record(&NewDeployment {
            user: run.user_id,
            project: run.project_id,
            run: Some(run.id),
            task: Some(task.id),
            service: Service::Vercel,
            kind: "site".into(),
            status,
            url: Some(deployment.site_url()),
            inspect_url: deployment.inspector_url.clone(),
            provider_id: deployment.id.clone(),
            error: error.clone(),
            job: Some((call_key.to_owned(), deadline)),
        })
        .await?;
    ctx.relay.publish(recorded.effects).await;
    let url = deployment.site_url();
    if status == DeploymentStatus::Failed {
        return Err(ActionError::Refused(format!(
            "Vercel could not build the site: {}",
            error.unwrap_or_else(|| "no reason given".into())
        )));
    }
    let said = match status {
        DeploymentStatus::Ready => format!("deployed on Vercel: {url}"),
        other => format!("deploying on Vercel: {url} ({other})"),
    };
    acting::recorded(&acting::Deployed {
        deployment_id: recorded.value.id,
        vercel_id: deployment.id.clone(),
        status,
        link: url,
        said,
    })
}

/// Where a deployment stands as Vercel answers: its status, link, page and error.
fn change_of(deployment: &VercelDeployment) -> DeploymentChange {
    DeploymentChange {
        status: Some(status_of(&deployment.ready_state)),
        url: Some(deployment.site_url()),
        inspect_url: deployment.inspector_url.clone(),
        provider_id: None,
        error: deployment
            .error_message
            .clone()
            .map(|message| match &deployment.error_code {
                Some(code) => format!("{message} ({code})"),
                None => message,
            }),
    }
}

/// One look at a deployment still building, for the job watcher.
pub(crate) async fn look(
    ctx: &StepContext,
    opened: &Opened,
    row: &Deployment,
) -> Result<DeploymentChange, ActionError> {
    let (http, token) = (&opened.http, &opened.token);
    let deployment = call(
        ctx,
        opened,
        vercel::deployment(http, token, &row.provider_id),
    )
    .await?;
    Ok(change_of(&deployment))
}

/// Stops a deployment nobody waits for any more (`PATCH .../cancel`): Vercel's answer, or
/// how it stands if it ended meanwhile (Vercel refuses to cancel one that ended).
pub(crate) async fn cancel(
    ctx: &StepContext,
    opened: &Opened,
    row: &Deployment,
) -> Result<Option<DeploymentChange>, ActionError> {
    let (http, token) = (&opened.http, &opened.token);
    match call(
        ctx,
        opened,
        vercel::cancel_deployment(http, token, &row.provider_id),
    )
    .await
    {
        Ok(deployment) => Ok(Some(change_of(&deployment))),
        Err(ActionError::Refused(_)) => look(ctx, opened, row).await.map(Some),
        Err(e) => Err(e),
    }
}
