//! The command line, declared once: `--help` on every command and shell completions come
//! from these types.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "autocrew",
    version,
    about = "Operate an Autocrew stack: run commands as the mobile app would, steer runs, migrate and check the stack."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account (email and password) and keep its session for the next commands.
    /// A verification code goes to the email (`autocrew mail` shows it in local mode).
    Signup(CredentialArgs),
    /// Log in and keep the session for the next commands; it refreshes by itself.
    Login(CredentialArgs),
    /// End the saved session (its refresh token is revoked) and forget it.
    Logout,
    /// Show the account the saved session acts as.
    Me {
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Show the account's time zone, or set it (an IANA name such as Europe/Paris): the
    /// default of its schedules.
    Timezone {
        zone: Option<String>,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// The plan, the period's revenue received, AI spend and its share of revenue, the
    /// budget left; or subscribe, open the portal, set the overage cap.
    Billing {
        #[command(subcommand)]
        action: Option<BillingAction>,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Verify the account's email with the emailed code.
    Verify {
        /// The code from the verification email.
        code: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Ask for a password reset code by email.
    ForgotPassword {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Choose a new password with the emailed reset code; every session ends, and this one
    /// is kept.
    ResetPassword {
        /// The code from the reset email.
        code: String,
        /// Read the new password from standard input's first line instead of asking.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The local mail outbox (EMAIL_PROVIDER=outbox): the emails the stack would have sent,
    /// newest first. Reads DATABASE_URL.
    Mail {
        /// Only emails to this address.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 5)]
        limit: u32,
    },
    /// The session user's projects, newest first.
    Projects {
        /// The archived ones instead.
        #[arg(long)]
        archived: bool,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// The session user's runs, newest first.
    Runs {
        /// Only this project's.
        #[arg(long)]
        project: Option<String>,
        /// Only runs with this status (pending, planning, running, compiling, succeeded,
        /// failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Talk with a project's orchestrator: it answers from the project's runs, files and
    /// costs, streaming its reply. `--command` sends the message as a command (a run);
    /// `--show` prints the thread.
    Chat {
        /// The project's id (`autocrew projects` lists them).
        project: String,
        /// The message; leave it out with `--show`.
        #[arg(required_unless_present = "show")]
        message: Option<String>,
        /// Start a run with the message as its command instead of asking.
        #[arg(long, conflicts_with = "show")]
        command: bool,
        /// Print the thread (the last `--limit` messages) instead of sending.
        #[arg(long)]
        show: bool,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Connect an outside service the agents act through (github, vercel, expo, resend, x,
    /// linkedin) with its API token, read from standard input's first line (or asked
    /// without echo). The API checks it with the service, then seals it; it is never shown
    /// again. Without a saved session for the API, a new user is signed up and kept.
    Connect {
        /// The service.
        service: String,
        /// Connect by the service's OAuth device flow instead of a token: enter the code
        /// shown at the service's page (GitHub; the API needs GITHUB_OAUTH_CLIENT_ID).
        #[arg(long, conflicts_with = "browser")]
        device: bool,
        /// Connect by the service's OAuth web flow instead of a token: open the link shown,
        /// consent at the service, and the connection is made (X, LinkedIn; the API needs
        /// X_OAUTH_CLIENT_ID or LINKEDIN_OAUTH_CLIENT_ID).
        #[arg(long)]
        browser: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The saved session user's connected accounts (never their tokens).
    Connections {
        #[command(flatten)]
        session: SessionArgs,
    },
    /// A run's artifacts: list them, or download them.
    Artifacts {
        #[command(subcommand)]
        action: ArtifactsAction,
    },
    /// Run a command as the mobile app would and follow it live to its end.
    Run(RunArgs),
    /// Cancel a run: nothing more is dispatched, running tasks stop at their next model turn
    /// or tool call, and the run ends cancelled.
    Cancel {
        /// The run's id, as `autocrew run` printed it.
        run_id: String,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Resume a failed or cancelled run where it stopped and follow it to its end.
    /// Completed tasks are kept; failed, blocked and cancelled ones start again.
    Resume {
        run_id: String,
        /// Raise the run's budget to this many dollars.
        #[arg(long)]
        budget_usd: Option<f64>,
        #[command(flatten)]
        follow: FollowArgs,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Start one failed task again (with the tasks it blocked) and follow the run.
    Retry {
        /// The task's id, as `GET /runs/{id}` lists it.
        task_id: String,
        #[command(flatten)]
        follow: FollowArgs,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Approve a critical action a task waits on (shown by `autocrew run`): the task goes
    /// on and the action runs once, exactly as shown.
    Approve(DecisionArgs),
    /// Reject a critical action a task waits on: the task goes on without it.
    Reject(DecisionArgs),
    /// A project's schedules: its command started by a clock (cron, rate or at, in a time
    /// zone), and what each fire did.
    Schedule {
        #[command(subcommand)]
        action: ScheduleAction,
    },
    /// The dead-letter queues: what waits in them, and sending it back.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Apply migrations/ to DATABASE_URL (running it twice is a no-op).
    Migrate,
    /// Check Postgres, pgvector and every AWS service the stack uses.
    Health,
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ArtifactsAction {
    /// Each artifact of the run with its size (and its link with --urls).
    List {
        run_id: String,
        #[arg(long)]
        urls: bool,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Download every artifact of the run into a folder, keeping their paths.
    Get {
        run_id: String,
        /// The folder (created if missing).
        #[arg(long)]
        to: std::path::PathBuf,
        #[command(flatten)]
        session: SessionArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleAction {
    /// Schedule the project's command. Give one of --cron, --rate or --at, as EventBridge
    /// Scheduler reads them: --cron "0 8 * * ? *" (minutes hours day-of-month month
    /// day-of-week year), --rate "1 hour", --at 2026-12-24T08:00:00.
    Add {
        /// The project's id.
        project: String,
        #[arg(long, group = "when")]
        cron: Option<String>,
        #[arg(long, group = "when")]
        rate: Option<String>,
        #[arg(long, group = "when")]
        at: Option<String>,
        /// The IANA time zone, such as Europe/Paris (default: yours, set with `autocrew timezone`;
        /// UTC until set).
        #[arg(long)]
        timezone: Option<String>,
        /// The command each fire runs.
        #[arg(long)]
        command: String,
        /// Each run's budget in dollars (default 5).
        #[arg(long)]
        budget_usd: Option<f64>,
        /// While the last run is going: skip the fire (default) or queue it.
        #[arg(long)]
        overlap: Option<String>,
        /// Fires missed while nothing fired the schedule: skip them (default) or run once.
        #[arg(long)]
        catch_up: Option<String>,
        /// Make it paused.
        #[arg(long)]
        paused: bool,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// The project's schedules and when each fires next.
    List {
        project: String,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// What each fire of a schedule did: the run it started, or why not.
    Fires {
        schedule_id: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Stop a schedule firing until it is resumed.
    Pause {
        schedule_id: String,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Let a paused schedule fire again, from now.
    Resume {
        schedule_id: String,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Delete a schedule; the runs it started stay.
    Delete {
        schedule_id: String,
        #[command(flatten)]
        session: SessionArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Each DLQ with its message count, and the first messages of those that hold some.
    List {
        /// Only queues whose name starts with this (the stack's prefix).
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Send every message of the DLQs back to their source queues.
    Redrive {
        #[arg(long, default_value = "")]
        prefix: String,
        /// Only this DLQ (its name, as `list` shows it).
        #[arg(long)]
        queue: Option<String>,
    },
}

/// An account's email and password.
#[derive(Debug, Clone, Args)]
pub struct CredentialArgs {
    #[arg(long, env = "AUTOCREW_EMAIL")]
    pub email: String,
    /// Read the password from standard input's first line instead of asking (for scripts;
    /// AUTOCREW_PASSWORD works too).
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Where the API is.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The API's base URL.
    #[arg(
        long,
        env = "AUTOCREW_API_URL",
        default_value = "http://127.0.0.1:8787"
    )]
    pub api: String,
}

/// Who acts: the API and the user's token. `autocrew run` saves both in the session file,
/// so the commands that steer a run act as the user who started it.
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// The API's base URL (default: the session's, else http://127.0.0.1:8787).
    #[arg(long, env = "AUTOCREW_API_URL")]
    pub api: Option<String>,
    /// The bearer token to act with (default: the session's).
    #[arg(long, env = "AUTOCREW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// What `autocrew billing` does besides showing.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BillingAction {
    /// Prints a Stripe Checkout link for PLAN (solo, indie, team, agency).
    Checkout {
        plan: String,
        /// Billed yearly instead of monthly.
        #[arg(long)]
        yearly: bool,
    },
    /// Prints a Stripe Customer Portal link: change plan, cancel, cards, invoices.
    Portal,
    /// Allows AI spend past the included budget up to CAP dollars a period, metered and
    /// invoiced by Stripe; `off` makes the budget a hard stop again.
    Overage { cap: String },
}

/// How a run is followed.
#[derive(Debug, Clone, Args)]
pub struct FollowArgs {
    /// Print only the summary at the end, not each task's progress.
    #[arg(long)]
    pub quiet: bool,
    /// Give up following the run after this many seconds (a run waiting for an approval
    /// goes on waiting: follow it again with `autocrew resume` or read it from the API).
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Approve every critical action as soon as it is requested, as shown (for demos and
    /// scripts; without it, answer with `autocrew approve` or `autocrew reject`).
    #[arg(long)]
    pub auto_approve: bool,
    /// Show each artifact's download link (long presigned URLs) in the summary.
    #[arg(long)]
    pub urls: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// What the crew should do, e.g. "Build a recipe app for keto dieters".
    pub command: String,
    /// Run it in this project of the saved session's user instead of a new one: what the
    /// project's earlier runs taught is recalled (each run prints its project's id).
    #[arg(long, value_name = "PROJECT_ID")]
    pub project: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub follow: FollowArgs,
}

/// A decision on one approval.
#[derive(Debug, Clone, Args)]
pub struct DecisionArgs {
    /// The approval's id, as `autocrew run` printed it.
    pub approval_id: String,
    /// The payload's sha-256 as `autocrew run` printed it: the decision holds only for
    /// that payload (default: the payload this command prints).
    #[arg(long)]
    pub hash: Option<String>,
    /// Why, for the record (the agent is told a rejection's reason).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub session: SessionArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_and_its_flags() {
        let cli =
            Cli::try_parse_from(["autocrew", "run", "Build a recipe app", "--quiet"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.command, "Build a recipe app");
        assert!(args.follow.quiet && !args.follow.auto_approve);
        let cli = Cli::try_parse_from([
            "autocrew",
            "approve",
            "3c1d9e2f-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
            "--hash",
            "ab",
        ])
        .unwrap();
        let Command::Approve(args) = cli.command else {
            panic!("not approve")
        };
        assert_eq!(args.hash.as_deref(), Some("ab"));
    }

    #[test]
    fn an_unknown_command_is_refused_with_the_usage() {
        let error = Cli::try_parse_from(["autocrew", "frobnicate"]).unwrap_err();
        assert!(error.to_string().contains("unrecognized subcommand"));
    }
}
