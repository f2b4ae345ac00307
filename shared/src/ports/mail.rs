//! Sending email: Resend on AWS, a table locally (`autocrew mail` shows it).

use super::BackendError;
use async_trait::async_trait;

/// One plain-text email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the mail provider refused the email: {status} {body}")]
    Refused { status: u16, body: String },
    #[error("the mail provider could not be reached")]
    Unreachable(#[source] BackendError),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}
