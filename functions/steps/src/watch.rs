//! The job watcher (`step-watch`): one look at a long job for the job-watch state machine,
//! which waits between looks (a `Wait` state) and asks again until the answer says the
//! job is done. A look records each build's changes on its `deployments` row (the app
//! gets `deployment_updated`), records `timed_out` past the job's deadline, and once every
//! build has ended makes the parked task ready again, to finish with the outcome. A build
//! whose run was cancelled, or which outlived its deadline, is cancelled at its service.

use crate::acting::ActionError;
use crate::callback::retry;
use crate::outputs::Watched;
use crate::{RecordError, StepContext};
use autocrew_shared::domain::connections::Deployment;
use autocrew_shared::domain::messages::as_json;
use autocrew_shared::domain::{DeploymentStatus, Service};
use autocrew_shared::ports::{DeploymentChange, StateMachineError};
use autocrew_shared::services::Opened;
use serde::Deserialize;

/// The poll state's message: the job (its tool call's key), and the token to answer.
#[derive(Debug, Deserialize)]
pub struct WatchMessage {
    pub call_key: String,
    pub task_token: String,
}

#[tracing::instrument(name = "watch", skip_all)]
pub(crate) async fn handle(ctx: &StepContext, message: WatchMessage) -> Result<(), RecordError> {
    let job = ctx
        .deployments
        .job(&message.call_key)
        .await
        .map_err(retry)?;
    let done = look_at(ctx, &job).await?;
    if done {
        let ended = ctx
            .deployments
            .job_ended(&message.call_key)
            .await
            .map_err(retry)?;
        ctx.relay.publish(ended.effects).await;
    }
    match ctx
        .state_machine
        .task_success(&message.task_token, &as_json(&Watched { done }))
        .await
    {
        // Answered by an earlier delivery, or the watch was stopped: nothing to add.
        Ok(()) | Err(StateMachineError::InvalidToken(_)) => Ok(()),
        Err(e) => Err(retry(e)),
    }
}

/// Looks at every build of the job that has not ended; whether all have now. Builds
/// nobody waits for any more (the run was cancelled, or the deadline passed) are cancelled
/// at EAS and recorded so.
async fn look_at(ctx: &StepContext, job: &[Deployment]) -> Result<bool, RecordError> {
    let open: Vec<&Deployment> = job.iter().filter(|d| !d.status.is_terminal()).collect();
    let Some(first) = job.first() else {
        return Ok(true);
    };
    let Some(run) = first.run_id else {
        return Ok(true);
    };
    if open.is_empty() {
        return Ok(true);
    }
    let user = ctx.runs.run(run).await.map_err(retry)?.user_id;
    let waits = task_waits(ctx, first).await?;
    let mut ended = job.len() - open.len();
    for row in open {
        let past = row.deadline_at.filter(|d| *d <= chrono::Utc::now());
        let change = match (waits, past) {
            (false, _) => match stop(ctx, user, row).await? {
                Stopped::NotMadeYet if past.is_none() => continue,
                stopped => stopped.recorded("cancelled: its run was cancelled".into()),
            },
            (true, Some(deadline)) => {
                let timed_out = timed_out(row, deadline);
                let why = timed_out.error.clone().unwrap_or_default();
                match stop(ctx, user, row).await? {
                    Stopped::Ended(change) => change,
                    stopped => DeploymentChange {
                        error: stopped.recorded(why).error,
                        ..timed_out
                    },
                }
            }
            (true, None) => match ctx.connected.open(user, row.service).await {
                Ok(opened) => match look(ctx, &opened, row).await {
                    Ok(change) => change,
                    Err(e) => match given_up(e)? {
                        Some(change) => change,
                        None => continue,
                    },
                },
                Err(e) => match given_up(e.into())? {
                    Some(change) => change,
                    None => continue,
                },
            },
        };
        let changed = ctx
            .deployments
            .update(row.id, &change)
            .await
            .map_err(retry)?;
        ctx.relay.publish(changed.effects).await;
        if changed.value.status.is_terminal() {
            ended += 1;
        }
    }
    Ok(ended == job.len())
}

/// How a service names itself.
fn named(service: Service) -> &'static str {
    match service {
        Service::Vercel => "Vercel",
        _ => "EAS",
    }
}

/// A build nobody waits for any more, after asking its service to cancel it.
enum Stopped {
    /// The service cancelled it (or is stopping its worker).
    Cancelled(Service),
    /// It had ended on its own meanwhile: as it ended.
    Ended(DeploymentChange),
    /// EAS has not made it from its job receipt yet: there is nothing to name.
    NotMadeYet,
    /// The service could not cancel it, for this reason.
    Failed(Service, String),
}

impl Stopped {
    /// The change to record: cancelled (or timed out: `why`), with what EAS did.
    fn recorded(self, why: String) -> DeploymentChange {
        let note = match self {
            Stopped::Ended(change) => return change,
            Stopped::Cancelled(service) => format!("; Autocrew cancelled it at {}", named(service)),
            Stopped::NotMadeYet => String::new(),
            Stopped::Failed(service, reason) => format!(
                "; {} could not cancel it ({reason}): cancel it on {}",
                named(service),
                match service {
                    Service::Vercel => "vercel.com",
                    _ => "expo.dev",
                }
            ),
        };
        DeploymentChange {
            status: Some(DeploymentStatus::Canceled),
            error: Some(format!("{why}{note}")),
            ..Default::default()
        }
    }
}

/// One look at a job's build or deployment, at its service.
async fn look(
    ctx: &StepContext,
    opened: &Opened,
    row: &Deployment,
) -> Result<DeploymentChange, ActionError> {
    match row.service {
        Service::Vercel => crate::deploy::look(ctx, opened, row).await,
        _ => crate::build::look(ctx, opened, row).await,
    }
}

/// Asks the service to cancel the build, so it does not run on (and cost) with nobody
/// waiting.
async fn stop(
    ctx: &StepContext,
    user: autocrew_shared::domain::UserId,
    row: &Deployment,
) -> Result<Stopped, RecordError> {
    let cancelled = match ctx.connected.open(user, row.service).await {
        Ok(opened) => match row.service {
            Service::Vercel => crate::deploy::cancel(ctx, &opened, row).await,
            _ => crate::build::cancel(ctx, &opened, row).await,
        },
        Err(e) => Err(e.into()),
    };
    Ok(match cancelled {
        Ok(None) => Stopped::NotMadeYet,
        Ok(Some(change)) => match change.status {
            Some(status) if status.is_terminal() && status != DeploymentStatus::Canceled => {
                Stopped::Ended(change)
            }
            _ => Stopped::Cancelled(row.service),
        },
        Err(ActionError::Infrastructure(e)) => return Err(e),
        Err(
            ActionError::Fatal(why) | ActionError::Refused(why) | ActionError::Unavailable(why),
        ) => {
            tracing::warn!(build = %row.provider_id, service = %row.service, error = %why, "could not cancel a build");
            Stopped::Failed(row.service, why)
        }
    })
}

/// Whether the job's task still waits for it (a cancelled run's does not).
async fn task_waits(ctx: &StepContext, row: &Deployment) -> Result<bool, RecordError> {
    let Some(task) = row.task_id else {
        return Ok(false);
    };
    let task = ctx.tasks.task(task).await.map_err(retry)?;
    Ok(!task.status.is_terminal())
}

/// A build still going at its deadline.
fn timed_out(row: &Deployment, deadline: chrono::DateTime<chrono::Utc>) -> DeploymentChange {
    // The deadline was set just before the row was written: round to the timeout given.
    let waited = ((deadline - row.created_at).num_milliseconds() as f64 / 1000.0).round();
    DeploymentChange {
        status: Some(DeploymentStatus::TimedOut),
        error: Some(format!(
            "timed out: the {} had not ended {waited} s after it started (it was {}); Autocrew stopped waiting for it",
            row.kind.replace('_', " "),
            row.status
        )),
        ..Default::default()
    }
}

/// A look that failed: an outage is looked at again next time (the deadline bounds it);
/// a refused credential or request ends the build as failed, saying why.
fn given_up(e: ActionError) -> Result<Option<DeploymentChange>, RecordError> {
    match e {
        ActionError::Unavailable(why) => {
            tracing::warn!(error = %why, "the job could not be looked at; next time");
            Ok(None)
        }
        ActionError::Fatal(why) | ActionError::Refused(why) => Ok(Some(DeploymentChange {
            status: Some(DeploymentStatus::Failed),
            error: Some(why),
            ..Default::default()
        })),
        ActionError::Infrastructure(e) => Err(e),
    }
}
