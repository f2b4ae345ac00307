//! The actions a critical tool call asks a person to approve, typed. What the person is
//! shown, what the hash covers and what runs are the same value: the hash is taken over
//! this enum's serialised JSON (`ApprovedAction::hash`), and the step runs it by `match`.

use super::approvals::payload_hash;
use super::kinds::Service;
use serde::{Deserialize, Serialize};

/// One action, tagged by `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ApprovedAction {
    /// Copy a file the task wrote to its public place.
    Publish(Publish),
    /// Commit files to a GitHub repository (a branch, or a pull request).
    PushCode(PushCode),
    /// Send one email through Resend.
    SendEmail(SendEmail),
    /// Post on X as the connected account.
    PostToX(Post),
    /// Post on LinkedIn as the connected member.
    PostToLinkedin(LinkedinPost),
    /// Deploy a folder of files to Vercel.
    DeploySite(DeploySite),
    /// Start EAS builds of the linked repository.
    BuildApp(BuildApp),
}

impl ApprovedAction {
    /// The sha-256 (hex) of the action's canonical JSON (keys sorted, no whitespace): what
    /// a decision must quote. A client computes it from the action it shows.
    pub fn hash(&self) -> String {
        payload_hash(&self.to_value())
    }

    /// The action as JSON, as it is stored and shown.
    pub fn to_value(&self) -> serde_json::Value {
        // Strings, numbers and lists of them only: serialising cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Its `action` tag.
    pub fn name(&self) -> &'static str {
        match self {
            ApprovedAction::Publish(_) => "publish",
            ApprovedAction::PushCode(_) => "push_code",
            ApprovedAction::SendEmail(_) => "send_email",
            ApprovedAction::PostToX(_) => "post_to_x",
            ApprovedAction::PostToLinkedin(_) => "post_to_linkedin",
            ApprovedAction::DeploySite(_) => "deploy_site",
            ApprovedAction::BuildApp(_) => "build_app",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Publish {
    /// The file's path inside the task's folder.
    pub file: String,
    pub from_task: String,
    /// Where the approved bytes are kept.
    pub source: String,
    pub content_sha256: String,
    pub size_bytes: u64,
    pub content_type: String,
    /// Where it will be served.
    pub link: String,
}

/// A file an action takes as approved: its path, where it is kept, its sha-256 and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovedFile {
    pub path: String,
    pub source: String,
    pub sha256: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushCode {
    pub service: Service,
    /// `owner/name`.
    pub repository: String,
    pub owner: String,
    pub name: String,
    /// `main`, or `pull_request`.
    pub target: String,
    pub message: String,
    pub from_task: String,
    pub files: Vec<ApprovedFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SendEmail {
    pub service: Service,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Post {
    pub service: Service,
    pub account: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LinkedinPost {
    pub service: Service,
    pub account: String,
    /// The member's URN the post is made as.
    pub author: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeploySite {
    pub service: Service,
    pub account: String,
    pub project: String,
    pub target: String,
    pub from_task: String,
    pub folder: String,
    pub files: Vec<ApprovedFile>,
    /// Where the pages' analytics beacon posts page views (the ingest route with the
    /// project's public key): each `.html` file gets the beacon before `</body>`. Part of
    /// what is approved, so the person sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beacon: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BuildApp {
    pub service: Service,
    pub account: String,
    /// `@owner/slug`.
    pub app: String,
    pub app_id: String,
    /// The linked GitHub repository, `owner/name`.
    pub repository: String,
    pub git_ref: String,
    /// The `eas.json` build profile.
    pub profile: String,
    pub platforms: Vec<AppPlatform>,
}

/// A platform EAS builds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AppPlatform {
    Ios,
    Android,
}

impl AppPlatform {
    /// The deployment kind of this platform's build.
    pub fn kind(self) -> &'static str {
        match self {
            AppPlatform::Ios => "ios_build",
            AppPlatform::Android => "android_build",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hash_covers_the_serialised_action_as_a_client_recomputes_it() {
        let action = ApprovedAction::PostToX(Post {
            service: Service::X,
            account: "@ana".into(),
            text: "Keto recipes, fast".into(),
        });
        let shown = json!({"text": "Keto recipes, fast", "service": "x", "account": "@ana", "action": "post_to_x"});
        assert_eq!(action.to_value(), shown);
        assert_eq!(action.hash(), payload_hash(&shown));
        assert_eq!(action.name(), "post_to_x");
        let back: ApprovedAction = serde_json::from_value(shown).unwrap();
        assert_eq!(back, action);
    }

    #[test]
    fn an_unknown_action_does_not_parse() {
        let err =
            serde_json::from_value::<ApprovedAction>(json!({"action": "wire_money"})).unwrap_err();
        assert!(err.to_string().contains("wire_money"), "{err}");
    }
}
