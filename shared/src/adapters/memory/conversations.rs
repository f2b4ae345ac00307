//! Projects' conversations, in memory.

use super::{MemProjects, MemRuns};
use crate::domain::conversation::{Author, ChatMessage, MessageStatus, ProjectBrief, RunBrief};
use crate::domain::messages::{OutboxEntry, Outgoing, ReplyMessage};
use crate::domain::paging::{Cursor, Page, Paged};
use crate::domain::{MessageId, MicroUsd, ProjectId, RunId, TaskStatus, UserId};
use crate::ports::{Changed, Conversations, Effects, PendingReply, ProjectStore, StoreError};
use async_trait::async_trait;
use chrono::Utc;
use std::sync::{Arc, Mutex};

/// The `Conversations` twin over the projects and runs twins. It keeps the port's
/// promises: a question gets a pending reply and the message that has it written, a thread
/// is its owner's alone (newest first, paged), a reply ends once. The brief lists the
/// project's runs from the runs twin; the twin records no files or approvals, so it lists
/// none.
pub struct MemConversations {
    projects: Arc<MemProjects>,
    runs: Arc<MemRuns>,
    /// Oldest first, with the user each belongs to.
    messages: Mutex<Vec<(UserId, ChatMessage)>>,
}

impl MemConversations {
    pub fn new(projects: Arc<MemProjects>, runs: Arc<MemRuns>) -> MemConversations {
        MemConversations {
            projects,
            runs,
            messages: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(UserId, ChatMessage)>> {
        self.messages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn add(
        &self,
        user: UserId,
        project: ProjectId,
        new: (Author, &str, MessageStatus),
    ) -> ChatMessage {
        let (author, text, status) = new;
        let message = ChatMessage {
            id: MessageId::new(),
            project_id: project,
            author,
            text: text.to_owned(),
            status,
            reply_to: None,
            run_id: None,
            error: None,
            created_at: Utc::now(),
        };
        self.lock().push((user, message.clone()));
        message
    }

    fn set(&self, message: &ChatMessage) {
        for (_, kept) in self.lock().iter_mut() {
            if kept.id == message.id {
                *kept = message.clone();
            }
        }
    }

    fn brief(&self, user: UserId, project: ProjectId) -> ProjectBrief {
        let known = self.projects.all().into_iter().find(|p| p.id == project);
        let mut runs: Vec<RunBrief> = self
            .runs
            .all()
            .into_iter()
            .filter(|r| r.project_id == project && r.user_id == user)
            .map(|r| {
                let tasks = self.runs.tasks_of(r.id);
                RunBrief {
                    run_id: r.id,
                    command: r.command,
                    status: r.status.as_str().to_owned(),
                    cost_micro_usd: r.spent.0,
                    tasks_done: tasks
                        .iter()
                        .filter(|t| t.status == TaskStatus::Completed)
                        .count() as i64,
                    tasks_total: tasks.len() as i64,
                    created_at: r.created_at,
                }
            })
            .collect();
        runs.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        let cost = runs.iter().map(|r| MicroUsd(r.cost_micro_usd)).sum();
        ProjectBrief {
            project: known.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
            description: known.map(|p| p.description).unwrap_or_default(),
            runs_total: runs.len() as i64,
            runs,
            artifacts: Vec::new(),
            artifacts_total: 0,
            cost_micro_usd: cost,
            pending_approvals: 0,
        }
    }

    async fn owned(&self, user: UserId, project: ProjectId) -> Result<bool, StoreError> {
        match self.projects.project(project).await {
            Ok(found) => Ok(found.user_id == user),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Conversations for MemConversations {
    async fn ask(
        &self,
        user: UserId,
        project: ProjectId,
        text: &str,
    ) -> Result<Changed<(ChatMessage, ChatMessage)>, StoreError> {
        let question = self.add(user, project, (Author::User, text, MessageStatus::Done));
        let mut reply = self.add(
            user,
            project,
            (Author::Assistant, "", MessageStatus::Pending),
        );
        reply.reply_to = Some(question.id);
        self.set(&reply);
        let mut effects = Effects::default();
        effects.outbox.push(OutboxEntry::new(
            0,
            Outgoing::Reply {
                message: ReplyMessage {
                    message_id: reply.id,
                },
            },
        ));
        Ok(Changed {
            value: (question, reply),
            effects,
        })
    }

    async fn record_command(
        &self,
        user: UserId,
        project: ProjectId,
        text: &str,
        run: RunId,
    ) -> Result<Changed<ChatMessage>, StoreError> {
        let mut message = self.add(user, project, (Author::User, text, MessageStatus::Done));
        message.run_id = Some(run);
        self.set(&message);
        Ok(Changed {
            value: message,
            effects: Effects::default(),
        })
    }

    async fn thread(
        &self,
        user: UserId,
        project: ProjectId,
        page: Page,
    ) -> Result<Option<Paged<ChatMessage>>, StoreError> {
        if !self.owned(user, project).await? {
            return Ok(None);
        }
        let key = |m: &ChatMessage| (m.created_at, m.id.0);
        let mut thread: Vec<ChatMessage> = self
            .lock()
            .iter()
            .filter(|(_, m)| m.project_id == project)
            .map(|(_, m)| m.clone())
            .collect();
        thread.sort_by_key(|m| std::cmp::Reverse(key(m)));
        if let Some(after) = page.after {
            thread.retain(|m| key(m) < (after.created_at, after.id));
        }
        thread.truncate(page.limit as usize + 1);
        Ok(Some(Paged::from_rows(thread, page.limit, |m| Cursor {
            created_at: m.created_at,
            id: m.id.0,
        })))
    }

    async fn pending(
        &self,
        reply: MessageId,
        history: u32,
    ) -> Result<Option<PendingReply>, StoreError> {
        let messages = self.lock().clone();
        let Some((user, reply)) = messages
            .iter()
            .find(|(_, m)| m.id == reply && m.status == MessageStatus::Pending)
            .cloned()
        else {
            return Ok(None);
        };
        let mut earlier: Vec<ChatMessage> = messages
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| m.project_id == reply.project_id && m.created_at <= reply.created_at)
            .filter(|m| m.id != reply.id)
            .collect();
        let skip = earlier.len().saturating_sub(history as usize);
        earlier.drain(..skip);
        Ok(Some(PendingReply {
            brief: self.brief(user, reply.project_id),
            reply,
            user_id: user,
            history: earlier,
        }))
    }

    async fn answer(
        &self,
        reply: MessageId,
        outcome: Result<&str, &str>,
    ) -> Result<Changed<Option<ChatMessage>>, StoreError> {
        let found = self
            .lock()
            .iter()
            .find(|(_, m)| m.id == reply && m.status == MessageStatus::Pending)
            .map(|(_, m)| m.clone());
        let Some(mut message) = found else {
            return Ok(Changed {
                value: None,
                effects: Effects::default(),
            });
        };
        match outcome {
            Ok(text) => {
                message.text = text.to_owned();
                message.status = MessageStatus::Done;
            }
            Err(error) => {
                message.status = MessageStatus::Failed;
                message.error = Some(error.to_owned());
            }
        }
        self.set(&message);
        Ok(Changed {
            value: Some(message),
            effects: Effects::default(),
        })
    }
}
