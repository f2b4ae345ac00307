//! A project's conversation with its orchestrator.

use super::store::{Changed, StoreError};
use crate::domain::conversation::{ChatMessage, ProjectBrief};
use crate::domain::paging::{Page, Paged};
use crate::domain::{MessageId, ProjectId, RunId, UserId};
use async_trait::async_trait;

/// A reply still to write, with what it is written from.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingReply {
    pub reply: ChatMessage,
    pub user_id: UserId,
    pub brief: ProjectBrief,
    /// The thread up to the question, oldest first.
    pub history: Vec<ChatMessage>,
}

#[async_trait]
pub trait Conversations: Send + Sync {
    /// The user's message and its pending reply, with the outbox message that has the reply
    /// written and the `message_posted` event, in one transaction.
    async fn ask(
        &self,
        user: UserId,
        project: ProjectId,
        text: &str,
    ) -> Result<Changed<(ChatMessage, ChatMessage)>, StoreError>;
    /// The user's message that started `run`, with its event.
    async fn record_command(
        &self,
        user: UserId,
        project: ProjectId,
        text: &str,
        run: RunId,
    ) -> Result<Changed<ChatMessage>, StoreError>;
    /// The project's thread, newest first; `None` when the project is not `user`'s.
    async fn thread(
        &self,
        user: UserId,
        project: ProjectId,
        page: Page,
    ) -> Result<Option<Paged<ChatMessage>>, StoreError>;
    /// The reply if it is still pending, with the project's brief and at most `history`
    /// messages before it.
    async fn pending(
        &self,
        reply: MessageId,
        history: u32,
    ) -> Result<Option<PendingReply>, StoreError>;
    /// Ends a pending reply: its text, or why it failed; appends `message_posted`. A reply
    /// already ended stays as it is (`None`).
    async fn answer(
        &self,
        reply: MessageId,
        outcome: Result<&str, &str>,
    ) -> Result<Changed<Option<ChatMessage>>, StoreError>;
}
