//! `autocrew run "<command>"`: signs up, creates a project, follows its live stream, posts
//! the command, shows each task's progress as it happens, then prints the finished run.

use crate::approvals::{self, Verdict};
use crate::client::{Client, Received, Stream, sign_up};
use anyhow::{Context, bail};
use autocrew_shared::domain::EventKind;
use autocrew_shared::domain::events::{ApprovalRequested, Event, EventBody, ProgressStage};
use autocrew_shared::domain::requests::{NewCommand, NewProject};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// What a finished run looked like from the client's side.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The user's token: later commands (cancel, resume, retry) act as the same user.
    pub token: String,
    pub run_id: String,
    pub project_id: String,
    pub succeeded: bool,
    /// Every event received on the WebSocket, in the order delivered.
    pub events: Vec<Value>,
    /// `GET /runs/{id}` at the end.
    pub run: Value,
    /// `GET /costs?by=agent&project_id=...` at the end: the project holds only this run.
    pub costs: Value,
    pub wall: Duration,
    /// Show the artifacts' download links in the summary.
    pub show_urls: bool,
    /// The project's daily marketing loop, once it launched: `GET /projects/{id}/schedules`.
    pub daily_loop: Option<Value>,
}

/// One line per task: a progress bar on a terminal, plain lines otherwise.
struct Progress {
    bars: MultiProgress,
    tasks: HashMap<String, ProgressBar>,
    plain: bool,
    /// Each deployment's last status shown: a change of its ids or links alone is not.
    deployments: HashMap<String, String>,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        let plain = !quiet && !std::io::stderr().is_terminal();
        let target = if quiet || plain {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Progress {
            bars: MultiProgress::with_draw_target(target),
            tasks: HashMap::new(),
            deployments: HashMap::new(),
            plain,
        }
    }

    fn say(&self, line: String) {
        if self.plain {
            eprintln!("{line}");
        } else {
            let _ = self.bars.println(line);
        }
    }

    fn task(&mut self, key: &str, agent: &str, status: &str, detail: &str) {
        let style = ProgressStyle::with_template("{spinner} {prefix:<24} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = self.tasks.entry(key.to_owned()).or_insert_with(|| {
            let bar = self.bars.add(ProgressBar::new_spinner());
            bar.set_style(style);
            bar.set_prefix(format!("{key} [{agent}]"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_message(format!("{status} {detail}"));
        if matches!(status, "completed" | "failed" | "blocked" | "cancelled") {
            bar.finish();
        }
        if self.plain {
            eprintln!("  {key:<16} {agent:<10} {status} {detail}");
        }
    }
}

/// How a run is followed.
#[derive(Debug, Clone, Copy)]
pub struct Following {
    /// Print only the summary at the end.
    pub quiet: bool,
    /// Give up after this long.
    pub timeout: Duration,
    /// Approve each critical action as it is requested, as shown.
    pub auto_approve: bool,
    /// Act as the saved session's user (signing up and saving a new one when there is
    /// none for this API); `false` signs up a new user and saves nothing (tests).
    pub save_session: bool,
    /// Show the artifacts' download links in the summary.
    pub show_urls: bool,
}

impl From<&crate::args::FollowArgs> for Following {
    fn from(args: &crate::args::FollowArgs) -> Self {
        Following {
            quiet: args.quiet,
            timeout: Duration::from_secs(args.timeout_secs),
            auto_approve: args.auto_approve,
            save_session: true,
            show_urls: args.urls,
        }
    }
}

/// An artifact's key without the `projects/{id}/runs/{id}/` every one of a run shares.
pub fn short_key(key: &str) -> &str {
    match key.split_once("/runs/") {
        Some((_, rest)) => rest.split_once('/').map(|(_, path)| path).unwrap_or(rest),
        None => key,
    }
}

fn money(micro: i64) -> String {
    format!("${}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

/// A new user with a random password, for runs without an account of their own.
async fn new_user(base: &str) -> anyhow::Result<(Client, String)> {
    let email = format!(
        "cli-{}@autocrew.local",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let password = hex::encode(rand::random::<[u8; 16]>());
    Ok((sign_up(base, &email, &password).await?, email))
}

/// The saved session's client when it is for `base`; otherwise a new user whose session is
/// saved now, not at the end, so that approving or cancelling this run from another
/// terminal acts as its user while it runs.
pub(crate) async fn session_for(base: &str) -> anyhow::Result<Client> {
    match crate::session::saved() {
        Ok(Some(session)) if session.api == base.trim_end_matches('/') => {
            if let Some(email) = &session.email {
                eprintln!("acting as {email} (the saved session)");
            }
            return Ok(crate::session::resume(session));
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: {e:#}; signing up a new user instead"),
    }
    let (client, email) = new_user(base).await?;
    let (client, saved) = crate::session::keep(client, &email);
    match saved {
        Ok(path) => eprintln!(
            "signed up as {email}; session saved to {} (cancel, resume, retry, approve and reject use it; `autocrew login` acts as your own account)",
            path.display()
        ),
        Err(e) => eprintln!("warning: signed up as {email}, but the session was not saved: {e:#}"),
    }
    Ok(client)
}

/// Runs `command` against the API at `base` in a new project and follows it to its end.
pub async fn run(base: &str, command: &str, following: Following) -> anyhow::Result<RunReport> {
    run_in(base, command, None, following).await
}

/// `run`, in the saved session's `project` when one is given.
pub async fn run_in(
    base: &str,
    command: &str,
    project: Option<&str>,
    following: Following,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let client = match following.save_session || project.is_some() {
        true => session_for(base).await?,
        false => new_user(base).await?.0,
    };
    let project_id = match project {
        Some(id) => id.trim().to_owned(),
        None => {
            let name: String = command.chars().take(60).collect();
            let project = client
                .post(
                    "/projects",
                    &NewProject {
                        name,
                        description: String::new(),
                    },
                    "create a project",
                )
                .await?;
            project["id"].as_str().context("no project id")?.to_owned()
        }
    };
    let stream = client.follow(&project_id, 0).await?;
    let accepted = client
        .post(
            &format!("/projects/{project_id}/commands"),
            &NewCommand {
                command: command.to_owned(),
                budget_usd: None,
                max_concurrency: None,
                deadline_minutes: None,
            },
            "post the command",
        )
        .await?;
    let run_id = accepted["run_id"].as_str().context("no run id")?.to_owned();
    let progress = Progress::new(following.quiet);
    progress.say(format!(
        "run {run_id} accepted in project {project_id}: {command}"
    ));
    follow(
        &client,
        (&project_id, &run_id),
        stream,
        progress,
        following,
        started,
    )
    .await
}

/// Follows a run that was just steered (resumed, or one of its tasks retried) to its end,
/// from its last `marker` event (`run_resumed`, `task_retried`) on.
pub async fn follow_steered(
    client: &Client,
    run_id: &str,
    marker: EventKind,
    following: Following,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let run = client
        .get(&format!("/runs/{run_id}"), "read the run")
        .await?;
    let project_id = run["run"]["project_id"]
        .as_str()
        .context("no project id")?
        .to_owned();
    let (mut after, mut from) = (0, None);
    loop {
        let page = client
            .get(
                &format!("/projects/{project_id}/events?after={after}&limit=500"),
                "read the event log",
            )
            .await?;
        let events: Vec<Event> = serde_json::from_value(page["events"].clone())
            .context("the event log sent events this CLI cannot read")?;
        for event in events {
            if event.kind() == marker
                && event.run_id.map(|r| r.to_string()).as_deref() == Some(run_id)
            {
                from = Some(event.seq);
            }
        }
        let last = page["last_seq"].as_i64().unwrap_or(after);
        if last == after {
            break;
        }
        after = last;
    }
    let from = from.with_context(|| format!("run {run_id} has no {marker} event"))?;
    let stream = client.follow(&project_id, from - 1).await?;
    let progress = Progress::new(following.quiet);
    follow(
        client,
        (&project_id, run_id),
        stream,
        progress,
        following,
        started,
    )
    .await
}

/// Follows `run_id` on `stream` until it ends, then reads the run and its costs.
async fn follow(
    client: &Client,
    (project_id, run_id): (&str, &str),
    mut stream: Stream,
    mut progress: Progress,
    following: Following,
    started: Instant,
) -> anyhow::Result<RunReport> {
    let mut events = Vec::new();
    let deadline = Instant::now() + following.timeout;
    let succeeded = loop {
        let Some(event) = next_event(client, project_id, &mut stream, deadline).await? else {
            bail!("the live stream closed before the run ended");
        };
        events.push(event.to_value());
        if event.run_id().map(|r| r.to_string()).as_deref() != Some(run_id) {
            continue;
        }
        if let Some(done) = show(&mut progress, &event) {
            break done;
        }
        if let (true, EventBody::ApprovalRequested(request)) =
            (following.auto_approve, event.body())
        {
            auto_approve(client, &progress, request).await;
        }
    };
    let run = client
        .get(&format!("/runs/{run_id}"), "read the run")
        .await?;
    let costs = client
        .get(
            &format!("/costs?by=agent&project_id={project_id}"),
            "read the costs",
        )
        .await?;
    // A project whose site or post went out has launched: its daily loop is scheduled.
    let daily_loop = match client
        .get(
            &format!("/projects/{project_id}/schedules"),
            "list the schedules",
        )
        .await
    {
        Ok(listed) => listed["schedules"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["kind"] == "daily_loop")
            .cloned(),
        Err(_) => None,
    };
    Ok(RunReport {
        daily_loop,
        token: client.token().to_owned(),
        run_id: run_id.to_owned(),
        project_id: project_id.to_owned(),
        succeeded,
        events,
        run,
        costs,
        wall: started.elapsed(),
        show_urls: following.show_urls,
    })
}

/// The next event: from the socket, or, when a gap stays open for two seconds, from the
/// HTTP log (a push can be lost; the log cannot).
pub async fn next_event(
    client: &Client,
    project: &str,
    stream: &mut Stream,
    deadline: Instant,
) -> anyhow::Result<Option<Received>> {
    loop {
        if Instant::now() > deadline {
            bail!("the run did not end in time");
        }
        match tokio::time::timeout(Duration::from_secs(2), stream.next()).await {
            // The server closed the socket: follow on from the last event on a new one.
            Ok(Ok(None)) => stream.reopen(client, project).await?,
            Ok(result) => return result,
            Err(_) => {
                let after = stream.next_seq() - 1;
                let page = client
                    .get(
                        &format!("/projects/{project}/events?after={after}&limit=500"),
                        "read the event log",
                    )
                    .await?;
                let events: Vec<Event> = serde_json::from_value(page["events"].clone())
                    .context("the event log sent events this CLI cannot read")?;
                if let Some(first) = events.first() {
                    stream.skip_pruned(first.seq);
                }
                for event in events {
                    stream.offer(event);
                }
                if let Some(event) = stream.ready() {
                    return Ok(Some(event));
                }
            }
        }
    }
}

/// Approves a request as shown; a refusal is printed and following goes on (the run waits).
async fn auto_approve(client: &Client, progress: &Progress, request: &ApprovalRequested) {
    let id = request.approval_id.to_string();
    let hash = request.payload_hash.as_str();
    let reason = Some("approved automatically (--auto-approve)");
    match approvals::decide(client, &id, Verdict::Approve, hash, reason).await {
        Ok(_) => progress.say(format!("  approved automatically (--auto-approve): {id}")),
        Err(e) => progress.say(format!("  could not approve {id}: {e:#}")),
    }
}

/// Shows one event; `Some(succeeded)` when the run ended.
fn show(progress: &mut Progress, event: &Received) -> Option<bool> {
    let cost = match event.spend() {
        Some(spend) => format!(
            "tokens {}/{} cost {}",
            spend.tokens.input,
            spend.tokens.output,
            money(spend.cost_micro_usd.0)
        ),
        None => "tokens ?/? cost ?".to_owned(),
    };
    match event.body() {
        EventBody::RunPlanned(plan) => {
            progress.say(format!(
                "plan for {}: {} tasks",
                plan.product,
                plan.tasks.len()
            ));
            for task in &plan.tasks {
                let after = if task.depends_on.is_empty() {
                    String::new()
                } else {
                    format!("after {}", task.depends_on.join(", "))
                };
                progress.task(&task.key, task.agent.as_str(), "pending", &after);
            }
        }
        EventBody::TaskQueued(q) => progress.task(&q.task.key, q.task.agent.as_str(), "queued", ""),
        EventBody::TaskStarted(s) => progress.task(
            &s.task.key,
            s.task.agent.as_str(),
            "running",
            &if s.invocation > 1 {
                format!("attempt {}, invocation {}", s.attempt, s.invocation)
            } else {
                format!("attempt {}", s.attempt)
            },
        ),
        EventBody::TaskProgress(p) => {
            let (status, what) = match &p.stage {
                ProgressStage::Waiting { waiting } => ("waiting", waiting.clone()),
                ProgressStage::Streaming { chars, .. } => {
                    ("running", format!("{chars} chars streamed"))
                }
            };
            let detail = format!("invocation {}, turn {}: {what}", p.invocation, p.step);
            progress.task(&p.task.key, p.task.agent.as_str(), status, &detail)
        }
        EventBody::TaskCompleted(c) => {
            // The task's own calls (the event's spend is the run's so far).
            let usage = c.task_usage;
            progress.task(
                &c.task.key,
                c.task.agent.as_str(),
                "completed",
                &format!(
                    "in {} ms over {} invocation(s), tokens {}/{} cost {}",
                    c.duration_ms,
                    c.invocations.max(1),
                    usage.input,
                    usage.output,
                    money(usage.cost_micro_usd.0)
                ),
            )
        }
        EventBody::TaskFailed(f) => {
            let status = if f.will_retry { "retrying" } else { "failed" };
            let detail = format!("attempt {}: {}", f.attempt, f.error);
            progress.task(&f.task.key, f.task.agent.as_str(), status, &detail)
        }
        EventBody::TaskBlocked(b) => {
            progress.task(&b.key, "", "blocked", &format!("by {}", b.blocked_by))
        }
        EventBody::ApprovalRequested(request) => {
            progress.task(
                &request.task.key,
                request.task.agent.as_str(),
                "waiting",
                &format!("for approval of {}", request.tool),
            );
            for line in approvals::request_lines(request) {
                progress.say(line);
            }
        }
        EventBody::ApprovalDecided(d) => progress.say(format!(
            "approval {} {}{}",
            d.approval_id,
            d.status,
            d.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )),
        EventBody::ActionExecuted(a) => progress.say(format!(
            "{} done{}",
            a.tool,
            a.result["link"]
                .as_str()
                .map(|l| format!(": {l}"))
                .unwrap_or_default()
        )),
        EventBody::DeploymentUpdated(d) => {
            let status = d.status.to_string();
            if progress
                .deployments
                .insert(d.id.to_string(), status.clone())
                != Some(status.clone())
            {
                progress.say(format!(
                    "{} on {}: {status}{}{}",
                    d.kind.replace('_', " "),
                    d.service,
                    d.url
                        .as_deref()
                        .map(|u| format!(" {u}"))
                        .unwrap_or_default(),
                    d.error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ));
            }
        }
        EventBody::RunCompleted(end) => {
            progress.say(format!(
                "run completed: {}/{} tasks, {cost}",
                end.completed_tasks.unwrap_or(0),
                end.tasks.unwrap_or(0)
            ));
            return Some(true);
        }
        EventBody::RunFailed(end) => {
            progress.say(format!(
                "run failed: {}",
                end.error.as_deref().unwrap_or("")
            ));
            return Some(false);
        }
        EventBody::RunCancelled(end) => {
            progress.say(format!(
                "run cancelled: {} ({} open tasks stopped)",
                end.error.as_deref().unwrap_or(""),
                end.cancelled_tasks.unwrap_or(0)
            ));
            return Some(false);
        }
        EventBody::RunResumed(r) => progress.say(format!(
            "run resumed as execution {}: {} tasks start again, budget {}",
            r.execution_name,
            r.reopened_tasks,
            money(r.budget_micro_usd.0)
        )),
        EventBody::TaskRetried(t) => progress.say(format!(
            "task {} retried: {} tasks start again",
            t.task.key, t.reopened_tasks
        )),
        EventBody::PlanRevised(revised) => {
            let list = |keys: &[String]| match keys.is_empty() {
                true => "none".to_owned(),
                false => keys.join(", "),
            };
            progress.say(format!(
                "plan revised (revision {}): {}",
                revised.round, revised.reason
            ));
            progress.say(format!(
                "  added {}; changed {}; removed {}; replaced {}",
                list(&revised.added),
                list(&revised.changed),
                list(&revised.removed),
                list(&revised.replaced)
            ));
        }
        EventBody::MorningReport(report) => {
            progress.say(format!("morning report: {}", report.headline));
            for post in &report.published {
                progress.say(format!("  posted on {}: {}", post.service, post.link));
            }
            if let Some(best) = &report.best_post {
                let likes = best.metrics.and_then(|m| m.likes).unwrap_or(0);
                progress.say(format!(
                    "  best earlier post ({likes} likes): {}",
                    best.link
                ));
            }
        }
        EventBody::MemoryRecalled(r) => {
            let whom = match &r.task {
                Some(task) => format!("{} ({})", task.key, task.agent),
                None => "the plan".to_owned(),
            };
            progress.say(format!(
                "recalled {} memories for {whom}{}",
                r.memories.len(),
                match r.projects.len() {
                    0 => String::new(),
                    n => format!(" and {n} similar project(s)"),
                }
            ));
            for memory in r.memories.iter().take(3) {
                let content: String = memory.content.chars().take(100).collect();
                progress.say(format!(
                    "  {} ({:.2}): {content}",
                    memory.kind, memory.similarity
                ));
            }
            for project in &r.projects {
                progress.say(format!(
                    "  similar project {} ({:.2})",
                    project.name, project.similarity
                ));
            }
        }
        EventBody::RunCreated(_)
        | EventBody::ArtifactStored(_)
        | EventBody::MessagePosted(_)
        | EventBody::ReplyProgress(_) => {}
    }
    None
}

/// The finished run as a person reads it.
pub fn summary(report: &RunReport) -> String {
    let mut out = Vec::new();
    let run = &report.run["run"];
    out.push(format!(
        "\nRun {} {} in {:.1} s",
        report.run_id,
        run["status"].as_str().unwrap_or("?"),
        report.wall.as_secs_f64()
    ));
    out.push(format!(
        "Command: {}",
        run["command"].as_str().unwrap_or("")
    ));
    out.push("\nTasks:".into());
    for task in report.run["tasks"].as_array().into_iter().flatten() {
        let duration = match (task["started_at"].as_str(), task["completed_at"].as_str()) {
            (Some(a), Some(b)) => match (
                a.parse::<chrono::DateTime<chrono::Utc>>(),
                b.parse::<chrono::DateTime<chrono::Utc>>(),
            ) {
                (Ok(a), Ok(b)) => format!("{} ms", (b - a).num_milliseconds()),
                _ => "-".into(),
            },
            _ => "-".into(),
        };
        let usage = &task["usage"];
        let spent = match usage.is_null() {
            true => "no model calls".to_owned(),
            false => format!(
                "tokens {:>5}/{:<5} {}",
                usage["usage"]["input"].as_u64().unwrap_or(0),
                usage["usage"]["output"].as_u64().unwrap_or(0),
                money(usage["cost"].as_i64().unwrap_or(0))
            ),
        };
        out.push(format!(
            "  {:<16} {:<10} {:<10} {:>8}  {}  {}",
            task["key"].as_str().unwrap_or(""),
            task["agent"].as_str().unwrap_or(""),
            task["status"].as_str().unwrap_or(""),
            duration,
            spent,
            task["title"].as_str().unwrap_or("")
        ));
    }
    let artifacts = report.run["artifacts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    out.push(format!(
        "\nArtifacts ({}; `autocrew artifacts get {}` downloads them{}):",
        artifacts.len(),
        report.run_id,
        if report.show_urls {
            ""
        } else {
            ", --urls shows their links"
        }
    ));
    for artifact in &artifacts {
        out.push(format!(
            "  {:<40} {:>7} bytes",
            short_key(artifact["key"].as_str().unwrap_or("")),
            artifact["size_bytes"],
        ));
        if report.show_urls {
            out.push(format!("    {}", artifact["url"].as_str().unwrap_or("")));
        }
    }
    let approvals = report.run["approvals"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !approvals.is_empty() {
        out.push("\nApprovals:".into());
    }
    for approval in &approvals {
        let result = &approval["result"];
        let outcome = match (result["said"].as_str(), result["link"].as_str()) {
            (Some(said), _) => format!("done: {said}"),
            (None, Some(link)) => format!("done: {link}"),
            _ => approval["reason"].as_str().unwrap_or("").to_owned(),
        };
        out.push(format!(
            "  {} {:<9} {}",
            approval["tool"].as_str().unwrap_or("?"),
            approval["status"].as_str().unwrap_or("?"),
            outcome
        ));
    }
    let totals = &report.run["totals"];
    out.push(format!(
        "\nLLM calls: {}  tokens in/out: {}/{}  cost: {}",
        totals["calls"],
        totals["usage"]["input"],
        totals["usage"]["output"],
        money(totals["cost"].as_i64().unwrap_or(0))
    ));
    out.push("Cost by agent (ledger rows, cache hits, failed attempts):".into());
    for group in report.costs["groups"].as_array().into_iter().flatten() {
        out.push(format!(
            "  {:<13} {:>3} calls  {:>2} hits  {:>2} failed  tokens {}/{}  {}",
            group["key"].as_str().unwrap_or(""),
            group["calls"],
            group["cache_hits"],
            group["failed"],
            group["usage"]["input"],
            group["usage"]["output"],
            money(group["cost"].as_i64().unwrap_or(0))
        ));
    }
    let budget = &report.costs["ai_budget"];
    out.push(format!(
        "AI budget this period ({} plan, until {}): {} spent of {}",
        budget["plan"].as_str().unwrap_or("?"),
        budget["period_end"].as_str().unwrap_or("?"),
        money(budget["spent_micro_usd"].as_i64().unwrap_or(0)),
        money(budget["limit_micro_usd"].as_i64().unwrap_or(0))
    ));
    if let Some(daily) = &report.daily_loop {
        out.push(format!(
            "Launched: the daily marketing loop runs {} ({}), next {} (autocrew schedule list {})",
            daily["expression"].as_str().unwrap_or("?"),
            daily["timezone"].as_str().unwrap_or("?"),
            daily["next_fire_at"].as_str().unwrap_or("paused"),
            report.project_id
        ));
    }
    out.join("\n")
}

/// Where the time went, from the events' own timestamps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    /// From `run_created` (the command accepted) to the first `task_started`.
    pub first_task_ms: i64,
    /// Per task, from the moment it could start (its last dependency completed, or the
    /// plan stored for a first task) to its `task_started`: the orchestration's own cost.
    pub overhead_median_ms: i64,
    pub overhead_max_ms: i64,
}

fn at(event: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    event["created_at"].as_str()?.parse().ok()
}

pub fn timings(report: &RunReport) -> Option<Timings> {
    let of_kind = |kind: &'static str| report.events.iter().filter(move |e| e["kind"] == kind);
    let created = of_kind("run_created").find_map(at)?;
    let planned_event = of_kind("run_planned").next()?;
    let planned = at(planned_event)?;
    // A task starts again after a park, a retry or a hand-off: its first start counts.
    let mut started: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for (key, when) in of_kind("task_started")
        .filter_map(|e| Some((e["payload"]["key"].as_str()?.to_owned(), at(e)?)))
    {
        let first = started.entry(key).or_insert(when);
        *first = (*first).min(when);
    }
    let completed: HashMap<String, chrono::DateTime<chrono::Utc>> = of_kind("task_completed")
        .filter_map(|e| Some((e["payload"]["key"].as_str()?.to_owned(), at(e)?)))
        .collect();
    let first_task_ms = (*started.values().min()? - created).num_milliseconds();
    let mut overheads: Vec<i64> = Vec::new();
    for task in planned_event["payload"]["tasks"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = task["key"].as_str().unwrap_or("");
        let ready = task["depends_on"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| completed.get(d.as_str()?).copied())
            .max()
            .unwrap_or(planned);
        if let Some(start) = started.get(key) {
            overheads.push((*start - ready).num_milliseconds());
        }
    }
    overheads.sort_unstable();
    Some(Timings {
        first_task_ms,
        overhead_median_ms: *overheads.get(overheads.len() / 2)?,
        overhead_max_ms: *overheads.last()?,
    })
}

#[cfg(test)]
mod tests {
    use super::{RunReport, timings};
    use serde_json::json;
    use std::time::Duration;

    fn report(events: Vec<serde_json::Value>) -> RunReport {
        RunReport {
            token: String::new(),
            run_id: String::new(),
            project_id: String::new(),
            succeeded: true,
            events,
            run: json!({}),
            costs: json!({}),
            wall: Duration::ZERO,
            show_urls: false,
            daily_loop: None,
        }
    }

    #[test]
    fn a_task_that_started_again_counts_from_its_first_start() {
        let at = |s: u32| format!("2026-12-06T10:00:{s:02}Z");
        let events = vec![
            json!({"kind": "run_created", "created_at": at(0)}),
            json!({"kind": "run_planned", "created_at": at(2),
                   "payload": {"tasks": [{"key": "a", "depends_on": []}]}}),
            json!({"kind": "task_started", "created_at": at(3), "payload": {"key": "a", "invocation": 1}}),
            json!({"kind": "task_started", "created_at": at(40), "payload": {"key": "a", "invocation": 2}}),
            json!({"kind": "task_completed", "created_at": at(50), "payload": {"key": "a"}}),
        ];

        let t = timings(&report(events)).expect("timings");

        assert_eq!((t.first_task_ms, t.overhead_max_ms), (3000, 1000));
    }
}
