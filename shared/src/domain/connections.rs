//! Connected accounts: a user's credential for an outside service the agents act through.
//! The credential itself never appears here; only what may be shown about it.

use super::ids::{ConnectionId, UserId};
use super::kinds::{ConnectionStatus, Service};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A user's connection to one service, as the API shows it: who the credential acts as,
/// never the credential.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Connection {
    pub id: ConnectionId,
    #[serde(skip)]
    pub user_id: UserId,
    pub service: Service,
    /// The account the credential acts as at the service (a login, a team, an address).
    pub account: String,
    /// The credential's last four characters, so a person can tell two tokens apart.
    pub hint: String,
    pub status: ConnectionStatus,
    /// Why the service refused the credential, when it did.
    pub status_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the access token lapses (an OAuth grant's; none for a pasted token).
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the tools renew the access token themselves before it lapses (the service
    /// granted a refresh token).
    pub renews: bool,
}

/// The end of a credential a person may see: its last four characters, or nothing for a
/// credential too short to hide the rest.
pub fn hint(credential: &str) -> String {
    let chars: Vec<char> = credential.chars().collect();
    if chars.len() < 16 {
        return String::new();
    }
    chars[chars.len() - 4..].iter().collect()
}

/// The context a sealed credential is bound to: opened under another user or service,
/// the decryption fails (AES-GCM's additional data; KMS's encryption context).
pub fn seal_context(user: UserId, service: Service) -> String {
    format!("autocrew-connection/{user}/{service}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_shows_only_the_last_four_characters_of_a_long_credential() {
        assert_eq!(hint("ghp_0123456789abcdefWXYZ"), "WXYZ");
        assert_eq!(hint("short-token"), "");
    }
}

/// A deploy or build at an outside service, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct Deployment {
    pub id: crate::domain::DeploymentId,
    pub project_id: crate::domain::ProjectId,
    pub run_id: Option<crate::domain::RunId>,
    pub task_id: Option<crate::domain::TaskId>,
    pub service: Service,
    /// `site`, `ios_build` or `android_build`.
    pub kind: String,
    pub status: crate::domain::DeploymentStatus,
    pub url: Option<String>,
    pub inspect_url: Option<String>,
    /// The service's own id (Vercel's `dpl_...`, the EAS build's id).
    pub provider_id: String,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// A long job's: when its watcher gives up and records `timed_out`.
    pub deadline_at: Option<DateTime<Utc>>,
}
