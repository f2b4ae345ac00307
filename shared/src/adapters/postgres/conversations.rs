//! `Conversations` and `UploadStore` on Postgres: a project's thread (the `conversations`
//! table) and the uploads granted in it.

use super::Pool;
use super::cached::Cached;
use super::effects::{emit, send};
use crate::domain::conversation::{Author, ChatMessage, MessageStatus, ProjectBrief, RunBrief};
use crate::domain::events::{EventBody, MessagePosted};
use crate::domain::messages::{Outgoing, ReplyMessage};
use crate::domain::paging::{Cursor, Page, Paged};
use crate::domain::{
    ApprovalStatus, MessageId, MicroUsd, ProjectId, RunId, TaskStatus, UploadId, UserId,
};
use crate::ports::{
    Changed, Conversations, Effects, PendingReply, StoreError, Upload, UploadStore,
};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// `Conversations` and `UploadStore` on Postgres.
#[derive(Clone)]
pub struct PgConversations {
    pool: Pool,
}

impl PgConversations {
    pub fn new(pool: Pool) -> Self {
        PgConversations { pool }
    }
}

const COLUMNS: &str =
    "id, project_id, role::text, content, status, reply_to, run_id, error, created_at";

fn message_from(row: &tokio_postgres::Row) -> Result<ChatMessage, StoreError> {
    let role: String = row.try_get(2)?;
    let status: MessageStatus = row.try_get(4)?;
    let bad = |what: &str| StoreError::Backend(format!("conversations: unexpected {what}").into());
    Ok(ChatMessage {
        id: MessageId(row.try_get(0)?),
        project_id: ProjectId(row.try_get(1)?),
        author: match role.as_str() {
            "user" => Author::User,
            "assistant" => Author::Assistant,
            _ => return Err(bad("role")),
        },
        text: row.try_get(3)?,
        status,
        reply_to: row.try_get::<_, Option<Uuid>>(5)?.map(MessageId),
        run_id: row.try_get::<_, Option<Uuid>>(6)?.map(RunId),
        error: row.try_get(7)?,
        created_at: row.try_get(8)?,
    })
}

/// A message about to be written.
struct NewMessage<'a> {
    author: &'a str,
    text: &'a str,
    status: MessageStatus,
    reply_to: Option<MessageId>,
    run: Option<RunId>,
}

/// Inserts one message. `clock_timestamp()`, not `now()`: a question and its reply share a
/// transaction, and the thread orders by time.
async fn insert(
    client: &impl GenericClient,
    user: UserId,
    project: ProjectId,
    new: NewMessage<'_>,
) -> Result<ChatMessage, StoreError> {
    let NewMessage {
        author,
        text,
        status,
        reply_to,
        run,
    } = new;
    let row = client
        .query_one_cached(
            &format!(
                "INSERT INTO conversations (id, user_id, project_id, role, content, status, reply_to, run_id, created_at)
                 VALUES ($1, $2, $3, $4::text::message_role, $5, $6, $7, $8, clock_timestamp()) RETURNING {COLUMNS}"
            ),
            &[
                &MessageId::new().0,
                &user.0,
                &project.0,
                &author,
                &text,
                &status,
                &reply_to.map(|m| m.0),
                &run.map(|r| r.0),
            ],
        )
        .await?;
    message_from(&row)
}

/// Appends `message_posted` for `message`.
async fn posted(
    client: &impl GenericClient,
    effects: &mut Effects,
    message: &ChatMessage,
) -> Result<(), StoreError> {
    emit(
        client,
        effects,
        message.project_id,
        message.run_id,
        EventBody::MessagePosted(MessagePosted {
            message: message.clone(),
        }),
    )
    .await
}

#[async_trait]
impl Conversations for PgConversations {
    async fn ask(
        &self,
        user: UserId,
        project: ProjectId,
        text: &str,
    ) -> Result<Changed<(ChatMessage, ChatMessage)>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let question = insert(
            &tx,
            user,
            project,
            NewMessage {
                author: "user",
                text,
                status: MessageStatus::Done,
                reply_to: None,
                run: None,
            },
        )
        .await?;
        let reply = insert(
            &tx,
            user,
            project,
            NewMessage {
                author: "assistant",
                text: "",
                status: MessageStatus::Pending,
                reply_to: Some(question.id),
                run: None,
            },
        )
        .await?;
        let mut effects = Effects::default();
        posted(&tx, &mut effects, &question).await?;
        let message = ReplyMessage {
            message_id: reply.id,
        };
        send(&tx, &mut effects, None, Outgoing::Reply { message }).await?;
        tx.commit().await?;
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
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let message = insert(
            &tx,
            user,
            project,
            NewMessage {
                author: "user",
                text,
                status: MessageStatus::Done,
                reply_to: None,
                run: Some(run),
            },
        )
        .await?;
        let mut effects = Effects::default();
        posted(&tx, &mut effects, &message).await?;
        tx.commit().await?;
        Ok(Changed {
            value: message,
            effects,
        })
    }

    async fn thread(
        &self,
        user: UserId,
        project: ProjectId,
        page: Page,
    ) -> Result<Option<Paged<ChatMessage>>, StoreError> {
        let client = self.pool.get().await?;
        // The owner check and the page in one statement: the project row comes back even
        // with no message, and not at all when it is not the user's.
        let rows = client
            .query_cached(
                &format!(
                    "SELECT c.* FROM projects p
                     LEFT JOIN LATERAL (
                         SELECT {COLUMNS} FROM conversations
                         WHERE project_id = p.id
                           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
                         ORDER BY created_at DESC, id DESC LIMIT $5) c ON true
                     WHERE p.id = $1 AND p.user_id = $2"
                ),
                &[
                    &project.0,
                    &user.0,
                    &page.after.map(|c| c.created_at),
                    &page.after.map(|c| c.id),
                    &(i64::from(page.limit) + 1),
                ],
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<_, Option<Uuid>>(0)?.is_some() {
                items.push(message_from(row)?);
            }
        }
        Ok(Some(Paged::from_rows(items, page.limit, |m| Cursor {
            created_at: m.created_at,
            id: m.id.0,
        })))
    }

    async fn pending(
        &self,
        reply: MessageId,
        history: u32,
    ) -> Result<Option<PendingReply>, StoreError> {
        let client = self.pool.get().await?;
        let Some(row) = client
            .query_opt_cached(
                &format!(
                    "SELECT {COLUMNS}, user_id FROM conversations
                     WHERE id = $1 AND status = $2 AND role = 'assistant'"
                ),
                &[&reply.0, &MessageStatus::Pending],
            )
            .await?
        else {
            return Ok(None);
        };
        let reply = message_from(&row)?;
        let user_id = UserId(row.try_get(9)?);
        let earlier = client
            .query_cached(
                &format!(
                    "SELECT {COLUMNS} FROM conversations
                     WHERE project_id = $1 AND status = $5 AND (created_at, id) < ($2, $3)
                     ORDER BY created_at DESC, id DESC LIMIT $4"
                ),
                &[
                    &reply.project_id.0,
                    &reply.created_at,
                    &reply.id.0,
                    &i64::from(history),
                    &MessageStatus::Done,
                ],
            )
            .await?;
        let mut history = earlier
            .iter()
            .map(message_from)
            .collect::<Result<Vec<_>, _>>()?;
        history.reverse();
        let brief = brief(&client, reply.project_id).await?;
        Ok(Some(PendingReply {
            reply,
            user_id,
            brief,
            history,
        }))
    }

    async fn answer(
        &self,
        reply: MessageId,
        outcome: Result<&str, &str>,
    ) -> Result<Changed<Option<ChatMessage>>, StoreError> {
        let (text, status, error) = match outcome {
            Ok(text) => (text, MessageStatus::Done, None),
            Err(error) => ("", MessageStatus::Failed, Some(error)),
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt_cached(
                &format!(
                    "UPDATE conversations SET content = $2, status = $3, error = $4
                     WHERE id = $1 AND status = $5 RETURNING {COLUMNS}"
                ),
                &[&reply.0, &text, &status, &error, &MessageStatus::Pending],
            )
            .await?;
        let mut effects = Effects::default();
        let message = match row {
            Some(row) => {
                let message = message_from(&row)?;
                posted(&tx, &mut effects, &message).await?;
                Some(message)
            }
            None => None,
        };
        tx.commit().await?;
        Ok(Changed {
            value: message,
            effects,
        })
    }
}

/// What the orchestrator is told about a project: its latest runs and files, and totals.
async fn brief(
    client: &deadpool_postgres::Client,
    project: ProjectId,
) -> Result<ProjectBrief, StoreError> {
    let row = client
        .query_one_cached(
            "SELECT p.name, p.description,
                    (SELECT count(*) FROM runs r WHERE r.project_id = p.id),
                    (SELECT count(*) FROM artifacts a WHERE a.project_id = p.id),
                    (SELECT coalesce(sum(cost_micro_usd), 0)::bigint FROM llm_calls l WHERE l.project_id = p.id),
                    (SELECT count(*) FROM approvals ap WHERE ap.project_id = p.id AND ap.status = $2)
             FROM projects p WHERE p.id = $1",
            &[&project.0, &ApprovalStatus::Pending],
        )
        .await?;
    let runs = client
        .query_cached(
            "SELECT r.id, r.command, r.status::text, r.created_at,
                    (SELECT coalesce(sum(cost_micro_usd), 0)::bigint FROM llm_calls l WHERE l.run_id = r.id),
                    (SELECT count(*) FROM tasks t WHERE t.run_id = r.id AND t.status = $2),
                    (SELECT count(*) FROM tasks t WHERE t.run_id = r.id)
             FROM runs r WHERE r.project_id = $1 ORDER BY r.created_at DESC, r.id DESC LIMIT 5",
            &[&project.0, &TaskStatus::Completed],
        )
        .await?;
    let artifacts = client
        .query_cached(
            "SELECT key FROM artifacts WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT 10",
            &[&project.0],
        )
        .await?;
    let prefix = format!("projects/{project}/");
    Ok(ProjectBrief {
        project: row.try_get(0)?,
        description: row.try_get(1)?,
        runs_total: row.try_get(2)?,
        artifacts_total: row.try_get(3)?,
        cost_micro_usd: MicroUsd(row.try_get(4)?),
        pending_approvals: row.try_get(5)?,
        runs: runs
            .iter()
            .map(|r| {
                Ok(RunBrief {
                    run_id: RunId(r.try_get(0)?),
                    command: r.try_get(1)?,
                    status: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    cost_micro_usd: r.try_get(4)?,
                    tasks_done: r.try_get(5)?,
                    tasks_total: r.try_get(6)?,
                })
            })
            .collect::<Result<_, StoreError>>()?,
        artifacts: artifacts
            .iter()
            .map(|r| {
                let key: String = r.try_get(0)?;
                Ok(key.strip_prefix(&prefix).unwrap_or(&key).to_owned())
            })
            .collect::<Result<_, StoreError>>()?,
    })
}

#[async_trait]
impl UploadStore for PgConversations {
    async fn grant(&self, u: &Upload) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "INSERT INTO uploads (id, project_id, user_id, key, filename, content_type, size_bytes, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &u.id.0,
                    &u.project_id.0,
                    &u.user_id.0,
                    &u.key,
                    &u.filename,
                    &u.content_type,
                    &i64::try_from(u.size_bytes).unwrap_or(i64::MAX),
                    &u.expires_at,
                    &u.created_at,
                ],
            )
            .await?;
        Ok(())
    }

    async fn upload(&self, user: UserId, id: UploadId) -> Result<Option<Upload>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                "SELECT id, project_id, user_id, key, filename, content_type, size_bytes, expires_at, created_at
                 FROM uploads WHERE id = $1 AND user_id = $2",
                &[&id.0, &user.0],
            )
            .await?;
        row.map(|r| {
            let size: i64 = r.try_get(6)?;
            Ok(Upload {
                id: UploadId(r.try_get(0)?),
                project_id: ProjectId(r.try_get(1)?),
                user_id: UserId(r.try_get(2)?),
                key: r.try_get(3)?,
                filename: r.try_get(4)?,
                content_type: r.try_get(5)?,
                size_bytes: u64::try_from(size).unwrap_or(0),
                expires_at: r.try_get(7)?,
                created_at: r.try_get(8)?,
            })
        })
        .transpose()
    }
}
