//! A project's conversation: questions get a pending reply, commands start a run.

use super::field_of;
use crate::ApiError;
use crate::conversations::{Posted, Talk, message_posted, thread_of};
use autocrew_shared::adapters::memory::{MemConversations, MemProjects, MemPublished, MemRuns};
use autocrew_shared::domain::conversation::{Author, MessageStatus};
use autocrew_shared::domain::messages::Outgoing;
use autocrew_shared::domain::paging::Page;
use autocrew_shared::domain::records::{Project, ProjectChanges};
use autocrew_shared::domain::requests::NewMessage;
use autocrew_shared::domain::{RunStatus, UserId};
use autocrew_shared::ports::{Conversations, ProjectStore, RunStore};
use std::sync::Arc;

struct Twins {
    projects: Arc<MemProjects>,
    runs: Arc<MemRuns>,
    conversations: MemConversations,
    published: MemPublished,
}

impl Twins {
    fn new() -> Twins {
        let projects = Arc::new(MemProjects::default());
        let runs = Arc::new(MemRuns::default());
        Twins {
            conversations: MemConversations::new(projects.clone(), runs.clone()),
            projects,
            runs,
            published: MemPublished::default(),
        }
    }

    fn talk(&self) -> Talk<'_> {
        Talk {
            conversations: &self.conversations,
            runs: &*self.runs,
            publisher: &self.published,
        }
    }

    async fn project(&self, email: &str) -> Project {
        let user = self.projects.create_user(email, "Ana").await.expect("user");
        self.projects
            .create_project(user.id, "Keto", "For dieters")
            .await
            .expect("project")
    }
}

fn message(text: &str, as_command: bool) -> NewMessage {
    NewMessage {
        text: text.into(),
        as_command,
        amend_run_id: None,
        budget_usd: None,
        max_concurrency: None,
        deadline_minutes: None,
    }
}

fn no_key() -> Result<Option<String>, ApiError> {
    Ok(None)
}

#[tokio::test]
async fn a_question_gets_a_pending_reply_that_is_sent_to_be_written() {
    let twins = Twins::new();
    let project = twins.project("ana@example.com").await;
    let ana = project.user_id;
    let posted = message_posted(
        &twins.talk(),
        (ana, &project),
        &message(" How is it going? ", false),
        no_key,
    )
    .await
    .expect("posted");
    let Posted::Asked(asked) = posted else {
        panic!("a question is asked: {posted:?}")
    };
    assert_eq!(
        (asked.message.author, asked.message.text.as_str()),
        (Author::User, "How is it going?")
    );
    assert_eq!(
        (asked.reply.status, asked.reply.reply_to),
        (MessageStatus::Pending, Some(asked.message.id))
    );
    let sent: Vec<Outgoing> = twins
        .published
        .published()
        .into_iter()
        .flat_map(|e| e.outbox)
        .map(|e| e.message)
        .collect();
    assert!(
        matches!(&sent[..], [Outgoing::Reply { message }] if message.message_id == asked.reply.id),
        "{sent:?}"
    );
    let pending = twins
        .conversations
        .pending(asked.reply.id, 10)
        .await
        .expect("read")
        .expect("pending");
    assert_eq!(pending.brief.project, "Keto");
    assert_eq!(pending.history.len(), 1, "the question");
    twins
        .conversations
        .answer(asked.reply.id, Ok("Well."))
        .await
        .expect("answered");
    let again = twins
        .conversations
        .answer(asked.reply.id, Ok("Twice"))
        .await
        .expect("answered");
    assert!(again.value.is_none(), "a reply ends once");
    let page = Page {
        after: None,
        limit: 20,
    };
    let thread = thread_of(&twins.conversations, (ana, project.id), page)
        .await
        .expect("thread");
    let texts: Vec<&str> = thread.items.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["Well.", "How is it going?"], "newest first");
    let theirs = thread_of(&twins.conversations, (UserId::new(), project.id), page).await;
    assert!(
        matches!(theirs, Err(ApiError::NotFound("project"))),
        "{theirs:?}"
    );
}

#[tokio::test]
async fn a_question_takes_no_run_bounds_and_a_command_starts_a_run() {
    let twins = Twins::new();
    let project = twins.project("ana@example.com").await;
    let ana = project.user_id;
    let bounded = NewMessage {
        max_concurrency: Some(2),
        ..message("Hi", false)
    };
    let refused = message_posted(&twins.talk(), (ana, &project), &bounded, no_key).await;
    assert_eq!(field_of(refused.expect_err("refused")), "max_concurrency");
    let empty = message_posted(&twins.talk(), (ana, &project), &message("  ", true), no_key).await;
    assert_eq!(field_of(empty.expect_err("refused")), "text");
    let posted = message_posted(
        &twins.talk(),
        (ana, &project),
        &message("Build it", true),
        no_key,
    )
    .await
    .expect("posted");
    let Posted::Command(command) = posted else {
        panic!("a command starts a run: {posted:?}")
    };
    let run = twins
        .runs
        .run(command.message.run_id.expect("its run"))
        .await
        .expect("kept");
    assert_eq!(
        (run.status, run.command.as_str()),
        (RunStatus::Pending, "Build it")
    );
}

#[tokio::test]
async fn an_archived_project_takes_questions_but_no_command() {
    let twins = Twins::new();
    let project = twins.project("ana@example.com").await;
    let ana = project.user_id;
    let archive = ProjectChanges {
        name: None,
        description: None,
        archived: Some(true),
    };
    let project = twins
        .projects
        .update_project(ana, project.id, &archive)
        .await
        .expect("archived");
    let bad_key = || Err(ApiError::bad("Idempotency-Key", "must be visible ASCII"));
    message_posted(
        &twins.talk(),
        (ana, &project),
        &message("Still there?", false),
        bad_key,
    )
    .await
    .expect("a question needs no key");
    let refused = message_posted(
        &twins.talk(),
        (ana, &project),
        &message("Build", true),
        no_key,
    )
    .await;
    assert!(matches!(refused, Err(ApiError::Conflict(_))), "{refused:?}");
}
