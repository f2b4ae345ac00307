//! The agent loop's decisions, apart from what carries them out: whether to ask the model
//! for another turn or hand the task on, what an answer asks for, which tool calls are
//! admitted, when bad calls and broken files end the task, and how long a call may wait.
//! Each is a plain function of what the loop knows, so `cargo test --lib` covers them
//! without a database, a queue or a model.

use autocrew_shared::crew::AgentProfile;
use autocrew_shared::crew::code_check::{self, SyntaxError};
use autocrew_shared::crew::tools::{self, ToolCall, WriteFile};
use autocrew_shared::domain::Service;
use autocrew_shared::ports::llm::Content;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, Instant};

/// What the loop does before asking the model for a turn.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BeforeTurn {
    Ask,
    /// Too little of the invocation is left for one more turn: a fresh invocation goes on
    /// at the checkpoint. Every invocation makes at least one turn, so a task moves on.
    HandOff,
    /// The attempt spent its output tokens without finishing: the task fails so.
    OverTokens(String),
}

/// Where the attempt stands before turn `step`.
pub(crate) struct Standing {
    pub step: u32,
    /// Turns this invocation already made.
    pub turns_here: u32,
    /// What is left of the invocation, and what one more turn may need.
    pub remaining: Duration,
    pub reserve: Duration,
    pub output_tokens: u32,
    pub max_task_tokens: u32,
}

pub(crate) fn before_turn(at: &Standing) -> BeforeTurn {
    if at.turns_here > 0 && at.remaining < at.reserve {
        return BeforeTurn::HandOff;
    }
    if at.output_tokens >= at.max_task_tokens {
        return BeforeTurn::OverTokens(format!(
            "token limit: {} output tokens spent in {} model turn(s) without finish (the profile allows {})",
            at.output_tokens,
            at.step.saturating_sub(1),
            at.max_task_tokens
        ));
    }
    BeforeTurn::Ask
}

/// What a model's answer asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Answered {
    /// Tool calls, in order: id, name, arguments.
    Calls(Vec<(String, String, Value)>),
    /// Ending the turn with text is taken as finishing with that summary.
    Finished(String),
    /// Neither text nor a tool call: the task fails.
    Empty,
}

pub(crate) fn read_answer(content: &[Content]) -> Answered {
    let calls: Vec<(String, String, Value)> = content
        .iter()
        .filter_map(|c| match c {
            Content::ToolUse { id, name, input } => Some((id.clone(), name.clone(), input.clone())),
            _ => None,
        })
        .collect();
    if !calls.is_empty() {
        return Answered::Calls(calls);
    }
    let text: String = content
        .iter()
        .filter_map(|c| match c {
            Content::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    match text.trim() {
        "" => Answered::Empty,
        text => Answered::Finished(text.to_owned()),
    }
}

/// Whether any of a turn's calls acts in the world (writes, publishes, sends): before
/// those, a fresh heartbeat proves the work is still this worker's. Reading and finishing
/// need none.
pub(crate) fn acts(calls: &[(String, String, Value)]) -> bool {
    calls
        .iter()
        .any(|(_, name, _)| name != tools::FINISH && name != tools::READ_UPSTREAM)
}

/// A call the agent may make: one of its profile's tools, whose service (if it has one)
/// the user connected, with arguments that hold to the tool's schema. Otherwise the words
/// the model is told.
pub(crate) fn admit(
    profile: &AgentProfile,
    available: &[String],
    name: &str,
    input: &Value,
) -> Result<ToolCall, String> {
    match (profile.may_use(name), available.iter().any(|t| t == name)) {
        (true, true) => ToolCall::parse(name, input),
        (true, false) => Err(format!(
            "{name} needs a connected {} account, and none is connected; go on without it",
            tools::service(name)
                .map(|s| s.as_str())
                .unwrap_or("outside")
        )),
        (false, _) => Err(format!(
            "{name} is not one of this agent's tools; it may call only {}",
            profile.tools.join(", ")
        )),
    }
}

/// The profile's tools the agent can use for a user with these services connected: those
/// acting through an outside service only when it is connected.
pub(crate) fn available_tools(profile_tools: &[String], connected: &[Service]) -> Vec<String> {
    profile_tools
        .iter()
        .filter(|t| tools::service(t).is_none_or(|service| connected.contains(&service)))
        .cloned()
        .collect()
}

/// Bad calls in one invocation's turns: the first gets its errors back as the repair
/// round; the second fails the task.
#[derive(Default)]
pub(crate) struct BadCalls(u32);

impl BadCalls {
    /// The answer the model gets for a refused call, or the task's failure.
    pub fn refuse(&mut self, name: &str, violations: &str) -> Result<String, String> {
        self.0 += 1;
        match self.0 {
            1 => Ok(format!(
                "invalid arguments for {name}: {violations}. Call it again with arguments matching its schema."
            )),
            _ => Err(format!(
                "tool call {name} had invalid arguments after one repair round: {violations}"
            )),
        }
    }
}

/// The files that failed to parse in this task, by path: each had its one repair round;
/// `broken` says whether it is still unfixed.
#[derive(Default, Clone, Serialize, Deserialize)]
pub(crate) struct Repairs(std::collections::BTreeMap<String, Repair>);

#[derive(Clone, Serialize, Deserialize)]
struct Repair {
    error: SyntaxError,
    broken: bool,
}

impl Repairs {
    /// Parses the file `write_file` was asked to write: `Ok(None)` to store it, `Ok(Some)`
    /// with the parser's error as its repair round, or the task's failure when that round
    /// was spent.
    pub fn check(&mut self, file: &WriteFile) -> Result<Option<String>, String> {
        let (path, content) = (file.path.as_str(), file.content.as_str());
        match code_check::check(path, content) {
            Ok(_) => {
                if let Some(repair) = self.0.get_mut(path) {
                    repair.broken = false;
                }
                Ok(None)
            }
            Err(error) if self.0.contains_key(path) => {
                Err(format!("{error} (still, after one repair round)"))
            }
            Err(error) => {
                let told = format!(
                    "not stored: {error}. Fix the file and call write_file again with the whole corrected content."
                );
                self.0.insert(
                    path.to_owned(),
                    Repair {
                        error,
                        broken: true,
                    },
                );
                Ok(Some(told))
            }
        }
    }

    /// The task's failure if a file that failed to parse was never written again.
    pub fn unfixed(&self) -> Result<(), String> {
        match self.0.values().find(|r| r.broken) {
            Some(repair) => Err(format!(
                "{} (the file was never written again after the parser's error)",
                repair.error
            )),
            None => Ok(()),
        }
    }
}

/// What a call may always wait, however short its invocation.
pub(crate) const MIN_WAIT: Duration = Duration::from_secs(5);

/// The latest a turn's model call may wait (for a slot, or as a provider asked): while the
/// invocation still has room for the turn after the wait (at least `MIN_WAIT`, for the
/// turn every invocation makes), and never past the run's deadline.
pub(crate) fn wait_limit(
    (now, utc_now): (Instant, DateTime<Utc>),
    invocation_deadline: Instant,
    reserve: Duration,
    run_deadline: Option<DateTime<Utc>>,
) -> Instant {
    let invocation = invocation_deadline
        .checked_sub(reserve)
        .filter(|at| *at > now + MIN_WAIT)
        .unwrap_or(now + MIN_WAIT);
    let run_left = run_deadline.and_then(|at| (at - utc_now).to_std().ok());
    match run_left {
        Some(left) => invocation.min(now + left),
        None => invocation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autocrew_shared::crew::AgentProfiles;
    use autocrew_shared::domain::AgentKind;
    use serde_json::json;

    fn standing() -> Standing {
        Standing {
            step: 3,
            turns_here: 1,
            remaining: Duration::from_secs(600),
            reserve: Duration::from_secs(120),
            output_tokens: 1000,
            max_task_tokens: 50_000,
        }
    }

    #[test]
    fn a_turn_is_asked_while_the_invocation_has_room_for_it() {
        assert_eq!(before_turn(&standing()), BeforeTurn::Ask);
    }

    #[test]
    fn a_short_invocation_hands_the_task_on_but_only_after_one_turn() {
        let short = Standing {
            remaining: Duration::from_secs(30),
            ..standing()
        };
        assert_eq!(before_turn(&short), BeforeTurn::HandOff);
        let first = Standing {
            turns_here: 0,
            ..short
        };
        assert_eq!(
            before_turn(&first),
            BeforeTurn::Ask,
            "every invocation makes a turn"
        );
    }

    #[test]
    fn an_attempt_that_spent_its_tokens_fails_naming_the_limit() {
        let spent = Standing {
            output_tokens: 50_000,
            ..standing()
        };
        match before_turn(&spent) {
            BeforeTurn::OverTokens(why) => {
                assert!(
                    why.contains("50000 output tokens spent in 2 model turn(s)"),
                    "{why}"
                )
            }
            other => panic!("expected the token limit, got {other:?}"),
        }
    }

    #[test]
    fn an_answer_with_tool_calls_asks_for_them_in_order() {
        let content = vec![
            Content::Text {
                text: "Writing it.".into(),
            },
            Content::ToolUse {
                id: "a".into(),
                name: "write_file".into(),
                input: json!({"path": "a.md"}),
            },
            Content::ToolUse {
                id: "b".into(),
                name: "finish".into(),
                input: json!({"summary": "done"}),
            },
        ];
        match read_answer(&content) {
            Answered::Calls(calls) => {
                let names: Vec<&str> = calls.iter().map(|(_, n, _)| n.as_str()).collect();
                assert_eq!(names, ["write_file", "finish"]);
            }
            other => panic!("expected calls, got {other:?}"),
        }
    }

    #[test]
    fn text_alone_finishes_and_nothing_at_all_fails() {
        let text = vec![Content::Text {
            text: "  All done.\n".into(),
        }];
        assert_eq!(read_answer(&text), Answered::Finished("All done.".into()));
        let blank = vec![Content::Text { text: " ".into() }];
        assert_eq!(read_answer(&blank), Answered::Empty);
        assert_eq!(read_answer(&[]), Answered::Empty);
    }

    #[test]
    fn reading_and_finishing_need_no_fresh_heartbeat_but_writing_does() {
        let call = |name: &str| ("id".to_owned(), name.to_owned(), json!({}));
        assert!(!acts(&[call(tools::FINISH), call(tools::READ_UPSTREAM)]));
        assert!(acts(&[call(tools::READ_UPSTREAM), call("write_file")]));
    }

    fn profile(kind: AgentKind) -> AgentProfile {
        let routing = autocrew_shared::domain::routing::RoutingPolicy::builtin()
            .expect("the shipped routing");
        AgentProfiles::builtin(&routing)
            .expect("the shipped profiles")
            .get(kind)
            .clone()
    }

    #[test]
    fn a_tool_outside_the_profile_is_refused_naming_the_allowed_ones() {
        let designer = profile(AgentKind::Designer);
        let refused = admit(&designer, &designer.tools, "push_code", &json!({}));
        let why = refused.expect_err("refused");
        assert!(
            why.contains("push_code is not one of this agent's tools"),
            "{why}"
        );
        assert!(why.contains(&designer.tools.join(", ")), "{why}");
    }

    #[test]
    fn a_tool_whose_service_is_not_connected_is_refused_naming_the_service() {
        let developer = profile(AgentKind::Developer);
        assert!(developer.may_use("push_code"), "the developer pushes code");
        let available = available_tools(&developer.tools, &[]);
        assert!(!available.iter().any(|t| t == "push_code"));
        let why = admit(&developer, &available, "push_code", &json!({})).expect_err("refused");
        assert!(why.contains("needs a connected github account"), "{why}");
        let connected = available_tools(&developer.tools, &[Service::Github]);
        assert!(connected.iter().any(|t| t == "push_code"));
    }

    #[test]
    fn an_admitted_call_is_typed_once_its_arguments_hold_to_the_schema() {
        let developer = profile(AgentKind::Developer);
        let call = admit(
            &developer,
            &developer.tools,
            "write_file",
            &json!({"path": "src/App.tsx", "content": "export const A = 1;\n"}),
        );
        assert!(matches!(call, Ok(ToolCall::WriteFile(ref f)) if f.path == "src/App.tsx"));
        let bad = admit(
            &developer,
            &developer.tools,
            "write_file",
            &json!({"path": 3}),
        );
        assert!(bad.is_err(), "a path must be text");
    }

    #[test]
    fn the_first_bad_call_is_a_repair_round_and_the_second_fails_the_task() {
        let mut bad = BadCalls::default();
        let told = bad
            .refuse("write_file", "path: 3 is not a string")
            .expect("repair");
        assert!(told.contains("Call it again"), "{told}");
        let failed = bad
            .refuse("write_file", "path: 3 is not a string")
            .expect_err("fails");
        assert!(failed.contains("after one repair round"), "{failed}");
    }

    fn file(path: &str, content: &str) -> WriteFile {
        serde_json::from_value(json!({"path": path, "content": content})).expect("a file")
    }

    #[test]
    fn a_file_that_does_not_parse_gets_one_repair_round() {
        let mut repairs = Repairs::default();
        let broken = file("src/App.tsx", "export const = ;");
        let told = repairs.check(&broken).expect("a repair round");
        assert!(told.is_some_and(|t| t.starts_with("not stored:")));
        assert!(repairs.unfixed().is_err(), "finishing now fails the task");
        let again = repairs.check(&broken);
        assert!(
            again.is_err(),
            "the second failure of the same file fails the task"
        );
    }

    #[test]
    fn a_repaired_file_lets_the_task_finish() {
        let mut repairs = Repairs::default();
        repairs
            .check(&file("src/App.tsx", "export const = ;"))
            .expect("a repair round");
        let fixed = repairs.check(&file("src/App.tsx", "export const A = 1;\n"));
        assert_eq!(fixed, Ok(None), "stored");
        assert_eq!(repairs.unfixed(), Ok(()));
    }

    #[test]
    fn a_call_waits_while_the_invocation_keeps_room_for_its_turn() {
        let now = Instant::now();
        let utc = Utc::now();
        let deadline = now + Duration::from_secs(900);
        let reserve = Duration::from_secs(300);
        let limit = wait_limit((now, utc), deadline, reserve, None);
        assert_eq!(limit, now + Duration::from_secs(600));
    }

    #[test]
    fn a_call_may_always_wait_a_little_but_never_past_the_run_deadline() {
        let now = Instant::now();
        let utc = Utc::now();
        let nearly_over = now + Duration::from_secs(10);
        let limit = wait_limit((now, utc), nearly_over, Duration::from_secs(300), None);
        assert_eq!(limit, now + MIN_WAIT);
        let run_ends = utc + chrono::Duration::seconds(60);
        let roomy = now + Duration::from_secs(3600);
        let limit = wait_limit((now, utc), roomy, Duration::from_secs(60), Some(run_ends));
        assert_eq!(limit, now + Duration::from_secs(60));
    }
}
