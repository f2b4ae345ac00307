//! An outbox of emails, in memory.

use crate::ports::{Email, MailError, Mailer};
use async_trait::async_trait;
use std::sync::Mutex;

/// The `Mailer` twin: keeps what was sent; `failing()` refuses every send.
#[derive(Default)]
pub struct MemMailer {
    sent: Mutex<Vec<Email>>,
    fails: bool,
}

impl MemMailer {
    /// A mailer whose provider is down.
    pub fn failing() -> MemMailer {
        MemMailer {
            sent: Mutex::default(),
            fails: true,
        }
    }

    /// What was sent, in order.
    pub fn sent(&self) -> Vec<Email> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Mailer for MemMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        if self.fails {
            return Err(MailError::Refused {
                status: 503,
                body: "the mail provider is down".into(),
            });
        }
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(email.clone());
        Ok(())
    }
}
