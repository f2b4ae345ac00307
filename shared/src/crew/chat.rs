//! The orchestrator in conversation: a reply to the user's message, written from the
//! project's brief (its runs, files and costs) and the thread so far.

use crate::domain::MicroUsd;
use crate::domain::conversation::{Author, ChatMessage, ProjectBrief};
use crate::ports::llm::{Content, LlmRequest, Message, Role};

/// Where the brief starts in the system prompt; the offline provider reads it from there.
pub const BRIEF_MARKER: &str = "\n\nThe project, as JSON:\n";

/// Output tokens of a reply at most.
pub const REPLY_MAX_TOKENS: u32 = 1024;

/// Messages of the thread a reply sees at most (the question included).
pub const HISTORY: u32 = 20;

const SYSTEM: &str = "You are the orchestrator of an AI crew (developer, marketer, sales, \
designer, ops) working on the user's project. Answer the user's message briefly and \
concretely from what the project holds: its runs, their status and cost, and the files the \
crew produced. Say so when the project does not hold the answer. You cannot start work \
from the conversation: when the user asks for work, suggest the command they can send \
(the app sends a message as a command when they choose to).";

/// The request for a reply to the last message of `history` (oldest first); the gateway
/// sets the model. Turns alternate as every provider requires: consecutive messages of one
/// author are joined, and the thread starts with the user.
pub fn reply_request(brief: &ProjectBrief, history: &[ChatMessage]) -> LlmRequest {
    let mut messages: Vec<Message> = Vec::new();
    for message in history {
        let role = match message.author {
            Author::User => Role::User,
            Author::Assistant => Role::Assistant,
        };
        if messages.is_empty() && role == Role::Assistant {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.push(Content::Text {
                text: message.text.clone(),
            }),
            _ => messages.push(Message {
                role,
                content: vec![Content::Text {
                    text: message.text.clone(),
                }],
            }),
        }
    }
    LlmRequest {
        model: String::new(),
        system: format!(
            "{SYSTEM}{BRIEF_MARKER}{}",
            serde_json::to_string(brief).unwrap_or_default()
        ),
        messages,
        max_tokens: REPLY_MAX_TOKENS,
        ..LlmRequest::default()
    }
}

/// The offline provider's reply: what the brief says, in plain words. Labelled, so no one
/// takes it for a model's answer.
pub fn offline_reply(brief: &ProjectBrief, question: &str) -> String {
    let mut lines = vec![format!(
        "[offline model] {} has {} run{} and {} file{}; it has cost {} so far.",
        brief.project,
        brief.runs_total,
        plural(brief.runs_total),
        brief.artifacts_total,
        plural(brief.artifacts_total),
        MicroUsd(brief.cost_micro_usd.0)
    )];
    if let Some(run) = brief.runs.first() {
        lines.push(format!(
            "The latest run, \"{}\", is {} ({} of {} tasks done, {}).",
            run.command,
            run.status,
            run.tasks_done,
            run.tasks_total,
            MicroUsd(run.cost_micro_usd)
        ));
    }
    if !brief.artifacts.is_empty() {
        let shown: Vec<&str> = brief.artifacts.iter().take(3).map(String::as_str).collect();
        lines.push(format!("Latest files: {}.", shown.join(", ")));
    }
    if brief.pending_approvals > 0 {
        lines.push(format!(
            "{} action{} wait{} for your approval.",
            brief.pending_approvals,
            plural(brief.pending_approvals),
            if brief.pending_approvals == 1 {
                "s"
            } else {
                ""
            }
        ));
    }
    lines.push(format!(
        "You asked: \"{}\". To have the crew work on it, send it as a command.",
        question.trim()
    ));
    lines.join(" ")
}

fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The brief in a reply request's system prompt, if it is one.
pub fn brief_of(request: &LlmRequest) -> Option<ProjectBrief> {
    let (_, json) = request.system.rsplit_once(BRIEF_MARKER)?;
    serde_json::from_str(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::conversation::MessageStatus;
    use crate::domain::{MessageId, ProjectId};

    fn message(author: Author, text: &str) -> ChatMessage {
        ChatMessage {
            id: MessageId::new(),
            project_id: ProjectId::new(),
            author,
            text: text.into(),
            status: MessageStatus::Done,
            reply_to: None,
            run_id: None,
            error: None,
            created_at: chrono::Utc::now(),
        }
    }

    fn brief() -> ProjectBrief {
        ProjectBrief {
            project: "Keto".into(),
            description: String::new(),
            runs: vec![],
            runs_total: 0,
            artifacts: vec![],
            artifacts_total: 0,
            cost_micro_usd: MicroUsd(1_500),
            pending_approvals: 1,
        }
    }

    #[test]
    fn turns_alternate_and_start_with_the_user() {
        let history = [
            message(Author::Assistant, "hello"),
            message(Author::User, "a"),
            message(Author::User, "b"),
            message(Author::Assistant, "c"),
            message(Author::User, "d"),
        ];
        let request = reply_request(&brief(), &history);
        let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
        assert_eq!(request.messages[0].content.len(), 2);
        assert_eq!(brief_of(&request), Some(brief()));
    }

    #[test]
    fn the_offline_reply_says_what_the_brief_holds() {
        let text = offline_reply(&brief(), "how much? ");
        assert!(text.starts_with("[offline model] Keto has 0 runs and 0 files"));
        assert!(text.contains("$0.001500"));
        assert!(text.contains("1 action waits for your approval"));
        assert!(text.contains("You asked: \"how much?\""));
    }
}
