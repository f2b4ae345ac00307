//! Notices' configuration: where Expo's Push API is, when its receipts are read, and where
//! webhooks may go.

use super::{ConfigError, Env, optional, parsed};
use crate::domain::notices::UrlPolicy;
use std::time::Duration;

/// What the deliver step, the sweep and the API need to know about notices.
#[derive(Debug, Clone)]
pub struct NoticeConfig {
    /// `EXPO_PUSH_URL`: Expo's push endpoint (`https://exp.host/--/api/v2/push`), or the
    /// fake's.
    pub expo_push_url: String,
    /// `EXPO_ACCESS_TOKEN`: sent as a bearer token when the Expo project requires one (the
    /// steps also read it from the provider keys' secret).
    pub expo_access_token: Option<String>,
    /// `PUSH_RECEIPT_DELAY_SECONDS` (900): how long after a push its receipt is read; Expo
    /// asks for 15 minutes.
    pub receipt_delay: Duration,
    /// `WEBHOOKS_ALLOW_LOOPBACK` (`true` in local mode only): webhooks may go to loopback,
    /// over plain http.
    pub url_policy: UrlPolicy,
}

impl NoticeConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(NoticeConfig {
            expo_push_url: optional(env, "EXPO_PUSH_URL")
                .unwrap_or_else(|| crate::adapters::expo_push::EXPO_PUSH_URL.to_owned()),
            expo_access_token: optional(env, "EXPO_ACCESS_TOKEN"),
            receipt_delay: Duration::from_secs(parsed(env, "PUSH_RECEIPT_DELAY_SECONDS", 900)?),
            url_policy: UrlPolicy {
                allow_loopback: parsed(env, "WEBHOOKS_ALLOW_LOOPBACK", false)?,
            },
        })
    }
}
