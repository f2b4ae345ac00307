//! Chaos rounds: a run is started through the API, the runner is killed with SIGKILL at a
//! chosen moment of it (planning, dispatch, a model turn, a tool call, completion, a push
//! between its commit and its record, the middle of a long streamed turn), a new runner
//! starts, and the run must still end `succeeded` with nothing lost and nothing done twice.
//! The runners' model is the offline one behind the compatible server's wire format, which
//! a round can slow to a real model's pace. What "nothing done twice" means is checked in
//! Postgres, the source of truth (and, for a push, at the fake GitHub):
//! - every task completed, by exactly one succeeded attempt;
//! - every task's model turns answered once each, but one turn an attempt the kill cut
//!   short, asked again once from the last checkpoint (no turn before it is redone);
//! - every artifact was recorded, and announced, once;
//! - the run's spend equals the sum of its ledger rows;
//! - no budget reservation is left held, and the outbox is empty.
//!
//! Recovery time is from the kill until everything the kill interrupted is under way again
//! (planning done, each interrupted attempt started anew or ended), the new runner's start
//! included.

use crate::unique;
use anyhow::{Context, bail, ensure};
use autocrew_cli::approvals::{Verdict, decide};
use autocrew_cli::client::{Client, Stream, sign_up};
use autocrew_cli::run::next_event;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Where a round kills the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// While the orchestrator plans (after `run_created`).
    Planning,
    /// Right after a task is queued.
    Dispatch,
    /// While an agent's model turn runs (after `task_started`).
    ModelTurn,
    /// Right after a tool call stored a file (`artifact_stored`).
    ToolCall,
    /// After the last task completed: compile and notify.
    Completion,
    /// Not the runner: Postgres is restarted (its connections cut) while tasks run.
    PostgresRestart,
    /// Between a push's commit and its record: the fake GitHub moves the branch, then
    /// holds its answer while the runner is killed. Exactly one commit must exist after.
    PushCommit,
    /// In the middle of a long streamed turn: the model writes files of a real size at a
    /// real pace, and the kill comes while one streams. The turn is asked again once,
    /// from the last checkpoint.
    LongTurn,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Planning,
        Phase::Dispatch,
        Phase::ModelTurn,
        Phase::ToolCall,
        Phase::Completion,
        Phase::PostgresRestart,
        Phase::PushCommit,
        Phase::LongTurn,
    ];

    /// The event after which the kill comes, how many of them to let pass first, and how
    /// many milliseconds to wait after the last (to land inside the step that follows).
    fn trigger(self, pick: u32) -> (&'static str, u32, u64) {
        let jitter = u64::from(pick % 20);
        match self {
            // The plan step starts some tens of milliseconds after the command is stored.
            Phase::Planning => ("run_created", 1, 40 + u64::from(pick % 80)),
            Phase::Dispatch => ("task_queued", 1 + pick % 7, jitter),
            Phase::ModelTurn => ("task_started", 1 + pick % 7, jitter),
            Phase::ToolCall => ("artifact_stored", 1 + pick % 10, jitter),
            Phase::Completion => ("task_completed", 7, jitter),
            Phase::PostgresRestart => ("task_started", 1 + pick % 4, jitter),
            // Not an event: the kill comes when the fake GitHub's branch has moved.
            Phase::PushCommit => ("", u32::MAX, 0),
            // Streamed pieces reach the app every 250 ms: a few seconds into a file.
            Phase::LongTurn => ("task_progress", 8 + pick % 8, jitter),
        }
    }
}

/// How to run the rounds.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The runner binary (`autocrew-local`).
    pub runner: PathBuf,
    /// The folder holding `template.yaml`.
    pub root: PathBuf,
    pub port: u16,
    /// The runners' resource prefix in the emulator: their own queues, so nothing else
    /// running on the stack takes their messages.
    pub prefix: String,
    /// Where the runners' output goes.
    pub log: PathBuf,
    /// A shell command that restarts Postgres; without it the Postgres phase kills the
    /// runner instead.
    pub restart_postgres: Option<String>,
    /// Give up on a round's run after this long.
    pub round_timeout: Duration,
    /// The local fakes of the outside services (`GITHUB_API_URL` without `/github`), for
    /// the push round; without them it is a tool-call round.
    pub fakes: Option<String>,
    /// The runners' model: the offline one behind the compatible server (its URL, model
    /// and price table go to every runner), which the long-turn round slows down; `None`,
    /// the offline model in the runner itself.
    pub model: Option<std::sync::Arc<crate::compatible_server::CompatibleServer>>,
}

impl Settings {
    /// The environment every runner gets: its model is the compatible server, if any.
    fn runner_env(&self) -> Vec<(&'static str, String)> {
        let Some(model) = &self.model else {
            return Vec::new();
        };
        vec![
            ("OPENAI_BASE_URL", model.base_url.clone()),
            ("LLM_MODEL", "offline-template-1".to_owned()),
            (
                "MODEL_TABLE_PATH",
                self.root
                    .join("infra/local/compatible-models.json")
                    .display()
                    .to_string(),
            ),
        ]
    }
}

/// The pace of the long-turn round: files of 2,500 tokens at 150 a second (about 17 s a
/// file), so the kill lands inside a streamed turn.
fn long_turns() -> crate::pace::Pace {
    crate::pace::Pace {
        tokens_per_sec: Some(150.0),
        first_token: Duration::from_millis(100),
        file_tokens: Some(2500),
        ..crate::pace::Pace::default()
    }
}

/// One round's outcome.
#[derive(Debug, Clone)]
pub struct Round {
    pub phase: Phase,
    pub run_id: String,
    /// Kill to the run's first new event.
    pub recovery: Duration,
    /// Kill to the run's end.
    pub completion: Duration,
}

/// A runner process, killed with SIGKILL when asked (or dropped).
pub struct Runner {
    child: Child,
}

impl Runner {
    /// Starts a runner and waits until its API answers.
    pub async fn start(settings: &Settings) -> anyhow::Result<Runner> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&settings.log)
            .with_context(|| format!("cannot open {}", settings.log.display()))?;
        let child = Command::new(&settings.runner)
            .arg("--port")
            .arg(settings.port.to_string())
            .arg("--root")
            .arg(&settings.root)
            .arg("--prefix")
            .arg(&settings.prefix)
            .envs(settings.runner_env())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", settings.runner.display()))?;
        let mut runner = Runner { child };
        let url = format!("http://127.0.0.1:{}/health", settings.port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = runner.child.try_wait()? {
                bail!(
                    "the runner exited ({status}); see {}",
                    settings.log.display()
                );
            }
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(runner);
            }
            ensure!(
                Instant::now() < deadline,
                "the runner did not answer in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no flush, as a crash.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// The next event of `run` on `stream` (the HTTP log fills a lost push), waiting at most
/// until `deadline`.
async fn next_of(
    client: &Client,
    project: &str,
    stream: &mut Stream,
    run: &str,
    deadline: Instant,
) -> anyhow::Result<Value> {
    loop {
        // The chaos check reads events as a client sees them on the wire.
        let event = next_event(client, project, stream, deadline)
            .await?
            .context("the live stream closed")?
            .to_value();
        if event["run_id"].as_str() == Some(run) {
            return Ok(event);
        }
    }
}

/// Approves what an `approval_requested` event asks, as shown, as a person would from the
/// app. Postgres may be restarting: the decision is tried again for up to 30 s. An approval
/// already decided (announced again after a resume) is left as it is.
async fn approve_if_asked(client: &Client, event: &Value) -> anyhow::Result<()> {
    if event["kind"] != "approval_requested" {
        return Ok(());
    }
    let p = &event["payload"];
    let id = p["approval_id"].as_str().context("no approval id")?;
    let hash = p["payload_hash"].as_str().context("no payload hash")?;
    let mut tries = 0;
    loop {
        tries += 1;
        match decide(client, id, Verdict::Approve, hash, None).await {
            Ok(_) => return Ok(()),
            Err(e) if e.to_string().contains("409") => return Ok(()),
            Err(e) if tries >= 30 => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// The work of a run that is under way, as its events tell: whether it is still being
/// planned, and each started task's attempt until it ends.
#[derive(Debug, Clone, Default)]
struct InFlight {
    planned: bool,
    /// Task id → the attempt running (absent once the task ended).
    running: std::collections::HashMap<String, i64>,
    /// Task id → its last attempt started.
    attempts: std::collections::HashMap<String, i64>,
    ended: std::collections::HashSet<String>,
}

impl InFlight {
    fn see(&mut self, event: &Value) {
        let task = event["payload"]["task_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match event["kind"].as_str().unwrap_or_default() {
            "run_planned" => self.planned = true,
            "task_started" => {
                let attempt = event["payload"]["attempt"].as_i64().unwrap_or(1);
                self.running.insert(task.clone(), attempt);
                self.attempts.insert(task, attempt);
            }
            "task_completed" | "task_failed" | "task_blocked" => {
                self.running.remove(&task);
                self.ended.insert(task);
            }
            _ => {}
        }
    }

    /// Whether everything `before` had under way (the kill interrupted it) has started
    /// again or ended since: planning, and each running attempt.
    fn resumed_from(&self, before: &InFlight) -> bool {
        let plan = before.planned || self.planned;
        let tasks = before.running.iter().all(|(task, attempt)| {
            self.attempts.get(task).is_some_and(|now| now > attempt)
                || (self.ended.contains(task) && !before.ended.contains(task))
        });
        plan && tasks
    }
}

/// One round against a running `runner`; returns the new runner with the outcome.
pub async fn round(
    settings: &Settings,
    runner: Runner,
    phase: Phase,
    pick: u32,
) -> anyhow::Result<(Runner, Round)> {
    let base = format!("http://127.0.0.1:{}", settings.port);
    let client = sign_up(
        &base,
        &format!("{}@chaos.local", unique("chaos")),
        "chaos password 1",
    )
    .await?;
    let project = client
        .post("/projects", &json!({"name": "Chaos"}), "create a project")
        .await?;
    let project_id = project["id"].as_str().context("no project id")?.to_owned();
    let push = match (phase, &settings.fakes) {
        (Phase::PushCommit, Some(fakes)) => Some(Push::arm(&client, fakes).await?),
        (Phase::PushCommit, None) => bail!("the push round needs the local fakes (GITHUB_API_URL)"),
        _ => None,
    };
    let mut stream = client.follow(&project_id, 0).await?;
    if phase == Phase::LongTurn {
        let model = settings.model.as_ref();
        model
            .context("the long-turn round needs the compatible server")?
            .set_pace(long_turns());
    }
    let accepted = client
        .post(
            &format!("/projects/{project_id}/commands"),
            &json!({"command": format!("Build a recipe app for keto dieters ({})", unique("round"))}),
            "post the command",
        )
        .await?;
    let run = accepted["run_id"].as_str().context("no run id")?.to_owned();
    let (kind, count, delay) = phase.trigger(pick);
    let deadline = Instant::now() + settings.round_timeout;
    let mut seen = 0;
    let mut work = InFlight::default();
    let mut last_seq = 0;
    let mut pushed = std::pin::pin!(branch_moved(push.as_ref()));
    loop {
        let event = tokio::select! {
            event = next_of(&client, &project_id, &mut stream, &run, deadline) => event?,
            moved = &mut pushed => {
                moved?;
                break;
            }
        };
        last_seq = event["seq"].as_i64().unwrap_or(last_seq);
        approve_if_asked(&client, &event).await?;
        work.see(&event);
        if event["kind"] == kind {
            seen += 1;
        }
        if seen >= count {
            break;
        }
        if matches!(event["kind"].as_str(), Some("run_completed" | "run_failed")) {
            bail!("the run ended before the {count}th {kind}");
        }
    }
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let (killed, runner) = match (&settings.restart_postgres, phase) {
        (Some(command), Phase::PostgresRestart) => {
            let killed = Instant::now();
            let status = Command::new("sh").arg("-c").arg(command).status().await?;
            ensure!(status.success(), "restarting Postgres failed: {status}");
            (killed, runner)
        }
        _ => {
            runner.kill().await?;
            let killed = Instant::now();
            // The rest of the run goes at once: the round is about the interrupted turn.
            if let Some(model) = &settings.model {
                model.set_pace(crate::pace::Pace::default());
            }
            (killed, Runner::start(settings).await?)
        }
    };
    drop(stream);
    let mut stream = client.follow(&project_id, last_seq).await?;
    let interrupted = work.clone();
    let mut recovery = None;
    let mut event = next_of(&client, &project_id, &mut stream, &run, deadline).await?;
    loop {
        approve_if_asked(&client, &event).await?;
        work.see(&event);
        if recovery.is_none() && work.resumed_from(&interrupted) {
            recovery = Some(killed.elapsed());
        }
        if matches!(
            event["kind"].as_str(),
            Some("run_completed" | "run_failed" | "run_cancelled")
        ) {
            break;
        }
        event = next_of(&client, &project_id, &mut stream, &run, deadline).await?;
    }
    let recovery = recovery.unwrap_or_else(|| killed.elapsed());
    let completion = killed.elapsed();
    ensure!(
        event["kind"] == "run_completed",
        "run {run} ended {}: {}",
        event["kind"],
        event["payload"]["error"]
    );
    if let Some(push) = &push {
        push.pushed_once().await?;
    }
    Ok((
        runner,
        Round {
            phase,
            run_id: run,
            recovery,
            completion,
        },
    ))
}

/// The push round's view of the fake GitHub: the repositories there before the round's
/// run, so the one it makes is found.
struct Push {
    fakes: String,
    before: Vec<String>,
}

impl Push {
    /// Connects GitHub for the round's user (a token the fake accepts) and has the fake
    /// hold its answer to the next branch update for 30 s.
    async fn arm(client: &Client, fakes: &str) -> anyhow::Result<Push> {
        client
            .post(
                "/me/connections",
                &json!({"service": "github", "token": "chaos-github-token-0123456789"}),
                "connect github",
            )
            .await?;
        let http = reqwest::Client::new();
        let hold = json!({"hold_once_after": "github.update_ref", "seconds": 30});
        http.post(format!("{fakes}/_control"))
            .json(&hold)
            .send()
            .await?
            .error_for_status()?;
        let before = Push::repositories(fakes)
            .await?
            .into_iter()
            .map(|r| r.0)
            .collect();
        Ok(Push {
            fakes: fakes.to_owned(),
            before,
        })
    }

    /// Each repository at the fake: its name, its commits by branch, and its pull requests.
    async fn repositories(fakes: &str) -> anyhow::Result<Vec<(String, Value, usize)>> {
        let state: Value = reqwest::get(format!("{fakes}/_state"))
            .await?
            .json()
            .await?;
        Ok(state["github"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let pulls = r["pull_requests"].as_array().map_or(0, Vec::len);
                (
                    r["repository"].as_str().unwrap_or_default().to_owned(),
                    r["commits_by_branch"].clone(),
                    pulls,
                )
            })
            .collect())
    }

    /// The round's repository, once it exists.
    async fn round_repository(&self) -> anyhow::Result<Option<(String, Value, usize)>> {
        Ok(Push::repositories(&self.fakes)
            .await?
            .into_iter()
            .find(|r| !self.before.contains(&r.0)))
    }

    /// After the run: the app's files in exactly one commit on the default branch over the
    /// repository's first, and no branch or pull request of a second push.
    async fn pushed_once(&self) -> anyhow::Result<()> {
        let (name, branches, pulls) = self
            .round_repository()
            .await?
            .context("the round's run made no repository")?;
        ensure!(
            branches == json!({"main": 2}) && pulls == 0,
            "{name}: expected the first commit and exactly one pushed commit on main, and no pull request; it has {branches} and {pulls} pull request(s)"
        );
        Ok(())
    }
}

/// Resolves once the push round's commit is on the branch (never without a push round).
async fn branch_moved(push: Option<&Push>) -> anyhow::Result<()> {
    let Some(push) = push else {
        return std::future::pending().await;
    };
    loop {
        if let Some((_, branches, _)) = push.round_repository().await?
            && branches["main"].as_u64() >= Some(2)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks, in Postgres at `database_url` (a new connection: a round may have restarted
/// it), that `run` lost nothing and did nothing twice. Waits up to 60 s for the outbox and
/// the reservations to drain (a relay or a release can trail the end).
pub async fn check(database_url: &str, run: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    let checked = check_on(&client, run).await;
    drop(client);
    let _ = connection.await;
    checked
}

async fn check_on(client: &tokio_postgres::Client, run: &str) -> anyhow::Result<()> {
    let run: uuid::Uuid = run.parse()?;
    let row = client
        .query_one(
            "SELECT status::text,
                    (SELECT count(*) FROM tasks WHERE run_id = $1),
                    (SELECT count(*) FROM tasks WHERE run_id = $1 AND status = 'completed'),
                    (SELECT count(*) FROM tasks t WHERE run_id = $1 AND
                        (SELECT count(*) FROM task_attempts a WHERE a.task_id = t.id AND a.status = 'succeeded') <> 1),
                    spent_micro_usd,
                    (SELECT coalesce(sum(cost_micro_usd), 0)::bigint FROM llm_calls WHERE run_id = $1)
             FROM runs WHERE id = $1",
            &[&run],
        )
        .await?;
    let (status, tasks, completed, not_once): (String, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let (spent, ledger): (i64, i64) = (row.get(4), row.get(5));
    ensure!(status == "succeeded", "run {run} is {status}");
    ensure!(
        tasks > 0 && completed == tasks,
        "{completed} of {tasks} tasks completed"
    );
    ensure!(
        not_once == 0,
        "{not_once} task(s) did not complete exactly once"
    );
    ensure!(
        spent == ledger,
        "the run spent {spent} but its ledger sums to {ledger}"
    );
    // Each turn of each task was answered once, but for one turn per attempt the kill cut
    // short (its answer came, its checkpoint did not): that turn is asked again, once, from
    // the last checkpoint. Image calls and memory's embeddings are not turns.
    let redone: Vec<String> = client
        .query(
            "SELECT t.task_key || ': ' || count(c.id) || ' answered calls for ' || (t.result->>'steps') || ' turns'
             FROM tasks t LEFT JOIN llm_calls c ON c.task_id = t.id AND c.outcome = 'ok'
                 AND c.model NOT LIKE '%draw%' AND c.model NOT LIKE '%image%'
                 AND c.model NOT LIKE '%embedding%' AND c.model NOT LIKE 'offline-hash-%'
             WHERE t.run_id = $1 GROUP BY t.id
             HAVING count(c.id) < (t.result->>'steps')::int
                 OR count(c.id) > (t.result->>'steps')::int
                    + (SELECT count(*) FROM task_attempts a WHERE a.task_id = t.id AND a.status = 'failed')",
            &[&run],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(
        redone.is_empty(),
        "model turns were asked again beyond one a killed attempt: {redone:?}"
    );
    let doubled: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT payload->>'object_key' FROM events
             WHERE run_id = $1 AND kind = 'artifact_stored' GROUP BY 1 HAVING count(*) > 1) d",
            &[&run],
        )
        .await?
        .get(0);
    ensure!(
        doubled == 0,
        "{doubled} artifact(s) were announced more than once"
    );
    let unrecorded: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT DISTINCT payload->>'object_key' AS k FROM events
             WHERE run_id = $1 AND kind = 'artifact_stored') e
             WHERE NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.key = e.k)",
            &[&run],
        )
        .await?
        .get(0);
    ensure!(
        unrecorded == 0,
        "{unrecorded} announced artifact(s) have no row"
    );
    // Each approval was decided once, and each approved action ran exactly once.
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM approvals WHERE run_id = $1 AND status <> 'approved'),
                    (SELECT count(*) FROM approvals a WHERE run_id = $1 AND (a.executed_at IS NULL OR
                        (SELECT count(*) FROM events e WHERE e.run_id = $1 AND e.kind = 'action_executed'
                         AND e.payload->>'approval_id' = a.id::text) <> 1)),
                    (SELECT count(*) FROM approvals WHERE run_id = $1)",
            &[&run],
        )
        .await?;
    let (undecided, not_once, approvals): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    ensure!(approvals > 0, "the run asked for no approval");
    ensure!(undecided == 0, "{undecided} approval(s) were not approved");
    ensure!(
        not_once == 0,
        "{not_once} approved action(s) did not run exactly once"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM budget_reservations WHERE run_id = $1 AND status = 'held'),
                        (SELECT count(*) FROM outbox WHERE run_id = $1)",
                &[&run],
            )
            .await?;
        let (held, unsent): (i64, i64) = (row.get(0), row.get(1));
        if held == 0 && unsent == 0 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{held} reservation(s) still held and {unsent} outbox message(s) unsent after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The `p`th percentile (0-100) of `values`, by nearest rank.
pub fn percentile(values: &[Duration], p: u32) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (usize::try_from(p).unwrap_or(100) * sorted.len()).div_ceil(100);
    sorted[rank.clamp(1, sorted.len()) - 1]
}
