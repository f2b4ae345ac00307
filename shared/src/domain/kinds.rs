//! Statuses and kinds. Each enum mirrors a Postgres enum of the same name in
//! `migrations/`; `kind_enum!` is the one place where names, serde, parsing and the
//! Postgres conversion are defined, so no status string is written anywhere else.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A name that is not one of an enum's variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of: {expected}")]
pub struct UnknownVariant {
    /// The enum, as named in Postgres ("agent_kind").
    pub kind: &'static str,
    /// The value as given.
    pub value: String,
    /// The accepted names, comma separated.
    pub expected: String,
}

macro_rules! kind_enum {
    ($(#[$doc:meta])* $name:ident, $pg:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order (which is also Postgres's sort order).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The Postgres enum type this mirrors.
            pub const PG_TYPE: &'static str = $pg;

            /// The snake_case name used in JSON and Postgres.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                super::schema::one_of([$($text),+])
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(text: &str) -> Result<Self, UnknownVariant> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant {
                        kind: $pg,
                        value: text.to_owned(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl tokio_postgres::types::ToSql for $name {
            fn to_sql(
                &self,
                _ty: &tokio_postgres::types::Type,
                out: &mut tokio_postgres::types::private::BytesMut,
            ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                out.extend_from_slice(self.as_str().as_bytes());
                Ok(tokio_postgres::types::IsNull::No)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                ty.name() == $pg
            }

            tokio_postgres::types::to_sql_checked!();
        }

        impl<'a> tokio_postgres::types::FromSql<'a> for $name {
            fn from_sql(
                _ty: &tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                Ok(std::str::from_utf8(raw)?.parse::<$name>()?)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                ty.name() == $pg
            }
        }
    };
}

kind_enum!(
    /// Who runs a task. The orchestrator plans; the others execute.
    AgentKind, "agent_kind" {
        Orchestrator => "orchestrator",
        Developer => "developer",
        Marketer => "marketer",
        Sales => "sales",
        Designer => "designer",
        Ops => "ops",
    }
);

impl AgentKind {
    /// The agents a plan may assign tasks to (the orchestrator only plans).
    pub const WORKERS: &'static [AgentKind] = &[
        AgentKind::Developer,
        AgentKind::Marketer,
        AgentKind::Sales,
        AgentKind::Designer,
        AgentKind::Ops,
    ];
}

kind_enum!(
    /// A task's lifecycle: pending → ready → queued → running → completed | failed;
    /// running → awaiting_approval → ready at a critical tool call; running →
    /// awaiting_job → ready while a long job it started runs (an app build); blocked when
    /// a dependency failed; cancelled with its run.
    TaskStatus, "task_status" {
        /// Waits for dependencies.
        Pending => "pending",
        /// Every dependency completed; waits for dispatch.
        Ready => "ready",
        /// Budget reserved and sent to the agent's queue.
        Queued => "queued",
        Running => "running",
        /// Parked at a critical tool call until a person decides (or the approval expires).
        AwaitingApproval => "awaiting_approval",
        /// Parked while a job it started runs at an outside service (an app build).
        AwaitingJob => "awaiting_job",
        Completed => "completed",
        Failed => "failed",
        /// A dependency failed; never run unless the failure is retried.
        Blocked => "blocked",
        Cancelled => "cancelled",
        /// Not started (or failed) when a plan revision took it out of the plan.
        Replaced => "replaced",
    }
);

impl TaskStatus {
    /// A task in one of these states will not change again by itself.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed
                | TaskStatus::Failed
                | TaskStatus::Blocked
                | TaskStatus::Cancelled
                | TaskStatus::Replaced
        )
    }
}

kind_enum!(
    /// Dispatch order: critical first. Declared low to high, as in Postgres.
    Priority, "task_priority" {
        Low => "low",
        Normal => "normal",
        High => "high",
        Critical => "critical",
    }
);

kind_enum!(
    /// How hard a task is, as planned; routing picks the model from it.
    Complexity, "task_complexity" {
        Simple => "simple",
        Medium => "medium",
        Complex => "complex",
    }
);

kind_enum!(
    /// A run's lifecycle, mirrored by its state machine execution.
    RunStatus, "run_status" {
        Pending => "pending",
        Planning => "planning",
        Running => "running",
        Compiling => "compiling",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

impl RunStatus {
    /// A run in one of these states is over.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

kind_enum!(
    /// One try of a task.
    AttemptStatus, "attempt_status" {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
        /// Stopped at a critical tool call; the task waits for a decision.
        Parked => "parked",
    }
);

kind_enum!(
    /// An approval's decision; `expired` once `expires_at` passed undecided.
    ApprovalStatus, "approval_status" {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
        Expired => "expired",
    }
);

kind_enum!(
    /// A Stripe subscription's status, as Stripe names it.
    SubscriptionStatus, "subscription_status" {
        Incomplete => "incomplete",
        IncompleteExpired => "incomplete_expired",
        Trialing => "trialing",
        Active => "active",
        PastDue => "past_due",
        Canceled => "canceled",
        Unpaid => "unpaid",
        Paused => "paused",
    }
);

kind_enum!(
    /// A budget reservation: held while its call runs, then settled at the actual cost.
    ReservationStatus, "reservation_status" {
        Held => "held",
        Settled => "settled",
        Released => "released",
    }
);

kind_enum!(
    /// What became of one LLM call, as written to the ledger.
    LlmCallOutcome, "llm_call_outcome" {
        Ok => "ok",
        Error => "error",
        /// Served from the response cache: costs nothing.
        CacheHit => "cache_hit",
        /// Refused before calling the provider (budget).
        Refused => "refused",
    }
);

kind_enum!(
    /// The type of an entry in a project's event log.
    EventKind, "event_kind" {
        RunCreated => "run_created",
        RunPlanned => "run_planned",
        RunFailed => "run_failed",
        RunCompleted => "run_completed",
        TaskQueued => "task_queued",
        TaskStarted => "task_started",
        TaskProgress => "task_progress",
        TaskCompleted => "task_completed",
        TaskFailed => "task_failed",
        TaskBlocked => "task_blocked",
        ArtifactStored => "artifact_stored",
        ApprovalRequested => "approval_requested",
        ApprovalDecided => "approval_decided",
        RunCancelled => "run_cancelled",
        RunResumed => "run_resumed",
        TaskRetried => "task_retried",
        ActionExecuted => "action_executed",
        /// A message of a project's conversation (the user's, or the orchestrator's reply).
        MessagePosted => "message_posted",
        /// A piece of a reply as the model writes it (pushed live, never stored).
        ReplyProgress => "reply_progress",
        /// A deploy or build at an outside service started or changed status.
        DeploymentUpdated => "deployment_updated",
        /// Memories recalled into a task's or the planner's context.
        MemoryRecalled => "memory_recalled",
        /// The daily loop's report: the night's traffic, the day's posts, what worked.
        MorningReport => "morning_report",
        /// The orchestrator replaced the part of a run's plan that had not started.
        PlanRevised => "plan_revised",
    }
);

kind_enum!(
    /// An outside service a user can connect, and the agents' tools act through.
    Service, "service" {
        /// GitHub REST: repositories, commits, pull requests.
        Github => "github",
        /// Vercel: deployments of the landing page.
        Vercel => "vercel",
        /// Expo Application Services: app builds.
        Expo => "expo",
        /// Resend: email.
        Resend => "resend",
        /// X API v2: posts.
        X => "x",
        /// LinkedIn: posts.
        Linkedin => "linkedin",
    }
);

kind_enum!(
    /// Whether a connection's credential still works.
    ConnectionStatus, "connection_status" {
        Active => "active",
        /// The service refused the credential (revoked, expired, wrong scopes): tools fail
        /// at once naming the connection until the user connects again.
        Invalid => "invalid",
    }
);

kind_enum!(
    /// Where a deploy or build at an outside service stands.
    DeploymentStatus, "deployment_status" {
        Queued => "queued",
        Building => "building",
        /// Done: the site serves, or the build's artifact can be installed.
        Ready => "ready",
        Failed => "failed",
        Canceled => "canceled",
        /// It did not finish within its time limit; it was given up on.
        TimedOut => "timed_out",
    }
);

impl DeploymentStatus {
    /// Whether it has ended (nothing will change it again).
    pub fn is_terminal(self) -> bool {
        !matches!(self, DeploymentStatus::Queued | DeploymentStatus::Building)
    }
}

kind_enum!(
    /// Where a conversation message stands: a reply is `pending` until the model answered.
    MessageStatus, "message_status" {
        Pending => "pending",
        Done => "done",
        Failed => "failed",
    }
);

kind_enum!(
    /// Where an OAuth web flow stands.
    WebFlowStatus, "web_flow_status" {
        /// The user has not come back from the service's consent page.
        Pending => "pending",
        /// The callback is trading the code for tokens.
        Exchanging => "exchanging",
        Connected => "connected",
        Failed => "failed",
    }
);

kind_enum!(
    /// What a one-time email token is for.
    EmailPurpose, "email_token_purpose" {
        VerifyEmail => "verify_email",
        ResetPassword => "reset_password",
    }
);

impl EmailPurpose {
    /// How long its link works.
    pub fn ttl(self) -> std::time::Duration {
        match self {
            EmailPurpose::VerifyEmail => std::time::Duration::from_secs(24 * 3600),
            EmailPurpose::ResetPassword => std::time::Duration::from_secs(3600),
        }
    }
}

kind_enum!(
    /// What a schedule's runs do.
    ScheduleKind, "schedule_kind" {
        /// Run the schedule's command, planned by the orchestrator.
        Command => "command",
        /// The daily marketing loop: a fixed plan with the day's briefing, ending with a
        /// morning report.
        DailyLoop => "daily_loop",
    }
);

kind_enum!(
    /// What a schedule's fire does while the last run it started is still going.
    ScheduleOverlap, "schedule_overlap" {
        /// The fire starts nothing (recorded as skipped).
        Skip => "skip",
        /// The fire waits and starts when that run ends (one waits at most).
        Queue => "queue",
    }
);

kind_enum!(
    /// What a schedule does with the fires it missed while nothing fired it (the runner
    /// was down, or the schedule was paused).
    ScheduleCatchUp, "schedule_catch_up" {
        /// They are skipped: the schedule goes on from now.
        Skip => "skip",
        /// One run starts for all of them, then the schedule goes on from now.
        Once => "once",
    }
);

kind_enum!(
    /// What one fire of a schedule did.
    FireOutcome, "fire_outcome" {
        Started => "started",
        Skipped => "skipped",
        /// Waiting for the schedule's last run to end (overlap `queue`).
        Queued => "queued",
    }
);

kind_enum!(
    /// What a memory holds.
    MemoryKind, "memory_kind" {
        /// Something decided (a name, an audience, a price, a stack).
        Decision => "decision",
        /// Something found out (a competitor, what a post's engagement showed).
        Fact => "fact",
        /// How the user likes things done; user-wide unless said otherwise.
        Preference => "preference",
        /// A project's gist (its product and command), written when a plan is accepted:
        /// what finds a user's similar projects.
        Project => "project",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for kind in AgentKind::ALL {
            assert_eq!(kind.as_str().parse::<AgentKind>(), Ok(*kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
    }

    #[test]
    fn an_unknown_name_lists_the_accepted_ones() {
        let err = "wizard".parse::<AgentKind>().unwrap_err();
        assert_eq!(err.value, "wizard");
        assert!(err.to_string().contains("developer, marketer"), "{err}");
    }

    #[test]
    fn priorities_sort_low_to_critical() {
        assert!(Priority::Critical > Priority::High && Priority::High > Priority::Low);
    }
}
