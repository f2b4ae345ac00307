//! `autocrew schedule add|list|fires|pause|resume|delete`: a project's schedules.

use crate::args::{ScheduleAction, SessionArgs};
use crate::session;
use anyhow::{Context, bail};
use autocrew_shared::domain::requests::{NewSchedule, SchedulePatch};
use autocrew_shared::domain::schedule::{Fire, Schedule};
use autocrew_shared::domain::{ScheduleCatchUp, ScheduleOverlap};
use serde_json::Value;

/// The expression `--cron`, `--rate` or `--at` gives, as EventBridge Scheduler reads it.
pub fn expression(
    cron: Option<&str>,
    rate: Option<&str>,
    at: Option<&str>,
) -> anyhow::Result<String> {
    match (cron, rate, at) {
        (Some(cron), None, None) => Ok(format!("cron({})", cron.trim())),
        (None, Some(rate), None) => Ok(format!("rate({})", rate.trim())),
        (None, None, Some(at)) => Ok(format!("at({})", at.trim())),
        _ => bail!("give one of --cron, --rate or --at"),
    }
}

fn typed<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(value).with_context(|| format!("the API's {what} was not readable"))
}

fn line(s: &Schedule) -> String {
    let next = match (s.enabled, s.next_fire_at) {
        (false, _) => "paused".to_owned(),
        (true, Some(at)) => format!("next {}", at.to_rfc3339()),
        (true, None) => "done".to_owned(),
    };
    format!(
        "{}  {} ({})  {next}  {}",
        s.id,
        s.expression,
        s.timezone,
        s.command.chars().take(60).collect::<String>()
    )
}

pub async fn act(action: ScheduleAction) -> anyhow::Result<()> {
    match action {
        ScheduleAction::Add {
            project,
            cron,
            rate,
            at,
            timezone,
            command,
            budget_usd,
            overlap,
            catch_up,
            paused,
            session: args,
        } => {
            let body = NewSchedule {
                expression: expression(cron.as_deref(), rate.as_deref(), at.as_deref())?,
                timezone,
                command,
                budget_usd,
                overlap: overlap.map(|o| o.parse::<ScheduleOverlap>()).transpose()?,
                catch_up: catch_up.map(|c| c.parse::<ScheduleCatchUp>()).transpose()?,
                enabled: paused.then_some(false),
            };
            let client = session::client(&args)?;
            let made = client
                .post(
                    &format!("/projects/{}/schedules", project.trim()),
                    &body,
                    "schedule the command",
                )
                .await?;
            println!("scheduled: {}", line(&typed(made, "schedule")?));
        }
        ScheduleAction::List {
            project,
            session: args,
        } => {
            let client = session::client(&args)?;
            let listed = client
                .get(
                    &format!("/projects/{}/schedules", project.trim()),
                    "list the schedules",
                )
                .await?;
            let schedules: Vec<Schedule> = typed(listed["schedules"].clone(), "schedules")?;
            if schedules.is_empty() {
                println!("no schedules");
            }
            for s in &schedules {
                println!("{}", line(s));
            }
        }
        ScheduleAction::Fires {
            schedule_id,
            limit,
            session: args,
        } => {
            let client = session::client(&args)?;
            let page = client
                .get(
                    &format!("/schedules/{}/fires?limit={limit}", schedule_id.trim()),
                    "list the fires",
                )
                .await?;
            let fires: Vec<Fire> = typed(page["items"].clone(), "fires")?;
            if fires.is_empty() {
                println!("no fires yet");
            }
            for f in &fires {
                let what = match (f.run_id, &f.reason) {
                    (Some(run), _) => format!("run {run}"),
                    (None, Some(reason)) => reason.clone(),
                    (None, None) => String::new(),
                };
                println!("{}  {:<8} {what}", f.scheduled_at.to_rfc3339(), f.outcome);
            }
        }
        ScheduleAction::Pause {
            schedule_id,
            session: args,
        } => enable(&schedule_id, false, &args).await?,
        ScheduleAction::Resume {
            schedule_id,
            session: args,
        } => enable(&schedule_id, true, &args).await?,
        ScheduleAction::Delete {
            schedule_id,
            session: args,
        } => {
            let client = session::client(&args)?;
            client
                .delete(
                    &format!("/schedules/{}", schedule_id.trim()),
                    "delete the schedule",
                )
                .await?;
            println!("deleted {}", schedule_id.trim());
        }
    }
    Ok(())
}

async fn enable(schedule_id: &str, enabled: bool, args: &SessionArgs) -> anyhow::Result<()> {
    let client = session::client(args)?;
    let patch = SchedulePatch {
        enabled: Some(enabled),
        ..SchedulePatch::default()
    };
    let changed = client
        .patch(
            &format!("/schedules/{}", schedule_id.trim()),
            &patch,
            if enabled {
                "resume the schedule"
            } else {
                "pause the schedule"
            },
        )
        .await?;
    println!("{}", line(&typed(changed, "schedule")?));
    Ok(())
}
