//! The local mail outbox: in local mode email is written here instead of being sent, and
//! `autocrew mail` reads it.

use super::Pool;
use super::cached::Cached;
use crate::ports::{Email, MailError, Mailer, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// `Mailer` into the `mail_outbox` table.
#[derive(Clone)]
pub struct PgMailOutbox {
    pool: Pool,
}

/// One email in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    pub id: i64,
    pub email: Email,
    pub created_at: DateTime<Utc>,
}

impl PgMailOutbox {
    pub fn new(pool: Pool) -> Self {
        PgMailOutbox { pool }
    }

    /// The newest `limit` emails, to `to` when given, newest first.
    pub async fn list(&self, to: Option<&str>, limit: u32) -> Result<Vec<SentMail>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                "SELECT id, to_address, subject, body, created_at FROM mail_outbox
                 WHERE $1::text IS NULL OR to_address = $1 ORDER BY id DESC LIMIT $2",
                &[&to, &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SentMail {
                    id: row.try_get(0)?,
                    email: Email {
                        to: row.try_get(1)?,
                        subject: row.try_get(2)?,
                        text: row.try_get(3)?,
                    },
                    created_at: row.try_get(4)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl Mailer for PgMailOutbox {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| MailError::Unreachable(Box::new(e)))?;
        client
            .execute_cached(
                "INSERT INTO mail_outbox (to_address, subject, body) VALUES ($1, $2, $3)",
                &[&email.to, &email.subject, &email.text],
            )
            .await
            .map_err(|e| MailError::Unreachable(Box::new(e)))?;
        Ok(())
    }
}
