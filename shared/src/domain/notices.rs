//! Notices: what reaches a user away from the app's socket. A push notification to each of
//! their devices (Expo) for the few events a person wants in their pocket, and a signed
//! webhook to each URL they registered for the event kinds it asked for. Both are written
//! with the event (migration 0029) and sent by the deliver step.

use super::events::{Event, EventBody};
use super::{DeliveryId, DeviceId, EventKind, ProjectId, UserId, WebhookId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// The event kinds that push to a user's devices (unless muted).
pub const PUSHED_KINDS: [EventKind; 4] = [
    EventKind::RunCompleted,
    EventKind::RunFailed,
    EventKind::ApprovalRequested,
    EventKind::MorningReport,
];

/// Event kinds a webhook may not ask for: streamed output, many a second and never logged.
pub const UNHOOKABLE_KINDS: [EventKind; 2] = [EventKind::TaskProgress, EventKind::ReplyProgress];

/// At most this many devices and webhooks per user.
pub const MAX_DEVICES: usize = 20;
pub const MAX_WEBHOOKS: usize = 10;

/// A webhook delivery is tried this many times, then it failed.
pub const WEBHOOK_ATTEMPTS: i32 = 8;

/// How long after a failed attempt `attempt` (1-based) the next one is made: 30 s, 2 min,
/// 10 min, 30 min, 1 h, 3 h, 6 h; the last of 8 attempts comes about 11 hours after the first.
pub fn webhook_backoff(attempt: i32) -> Duration {
    const WAITS: [u64; 7] = [30, 120, 600, 1800, 3600, 10_800, 21_600];
    let index = usize::try_from(attempt.max(1) - 1).unwrap_or(0);
    Duration::from_secs(WAITS[index.min(WAITS.len() - 1)])
}

/// A push that Expo could not take (a 429, a 5xx, no answer) is tried again this many
/// times, a minute apart and more.
pub const PUSH_ATTEMPTS: i32 = 5;

/// A device registered for push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Device {
    pub id: DeviceId,
    /// The Expo push token, `ExponentPushToken[...]`.
    pub token: String,
    pub platform: Option<Platform>,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A device's platform, as the app says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Ios,
    Android,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
        }
    }

    pub fn parse(text: &str) -> Option<Platform> {
        match text {
            "ios" => Some(Platform::Ios),
            "android" => Some(Platform::Android),
            _ => None,
        }
    }
}

/// Whether `token` is an Expo push token: `ExponentPushToken[…]` or `ExpoPushToken[…]`
/// (what `getExpoPushTokenAsync` gives), the part in brackets made of letters, digits, `-`
/// and `_`.
pub fn is_expo_token(token: &str) -> bool {
    let inner = token
        .strip_prefix("ExponentPushToken[")
        .or_else(|| token.strip_prefix("ExpoPushToken["))
        .and_then(|rest| rest.strip_suffix(']'));
    inner.is_some_and(|inner| {
        (1..=200).contains(&inner.len())
            && inner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Which push kinds a user gets: each of `PUSHED_KINDS`, on unless muted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushSettings {
    pub run_completed: bool,
    pub run_failed: bool,
    pub approval_requested: bool,
    pub morning_report: bool,
}

impl PushSettings {
    /// The settings of a user who muted `muted`.
    pub fn from_muted(muted: &[EventKind]) -> Self {
        let on = |kind| !muted.contains(&kind);
        PushSettings {
            run_completed: on(EventKind::RunCompleted),
            run_failed: on(EventKind::RunFailed),
            approval_requested: on(EventKind::ApprovalRequested),
            morning_report: on(EventKind::MorningReport),
        }
    }

    /// The kinds these settings mute.
    pub fn muted(&self) -> Vec<EventKind> {
        [
            (EventKind::RunCompleted, self.run_completed),
            (EventKind::RunFailed, self.run_failed),
            (EventKind::ApprovalRequested, self.approval_requested),
            (EventKind::MorningReport, self.morning_report),
        ]
        .into_iter()
        .filter(|(_, on)| !on)
        .map(|(kind, _)| kind)
        .collect()
    }
}

/// A push as Expo gets it: what the notification shows, and what the app gets to open the
/// right screen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushContent {
    pub title: String,
    pub body: String,
    pub data: serde_json::Value,
}

/// The push for `event` of project `project_name`, if its kind pushes.
pub fn push_content(event: &Event, project_name: &str) -> Option<PushContent> {
    let project = clip(project_name, 60);
    let (title, body) = match &event.body {
        EventBody::RunCompleted(ended) => (
            format!("{project}: run finished"),
            match (ended.completed_tasks, ended.tasks) {
                (Some(done), Some(all)) => format!("All {done} of {all} tasks are done."),
                _ => "Every task is done.".to_owned(),
            },
        ),
        EventBody::RunFailed(ended) => (
            format!("{project}: run failed"),
            clip(ended.error.as_deref().unwrap_or("The run failed."), 160),
        ),
        EventBody::ApprovalRequested(request) => (
            format!("{project}: approval needed"),
            format!(
                "{} wants to {}. Open to approve or reject.",
                request.task.agent,
                request.tool.replace('_', " ")
            ),
        ),
        EventBody::MorningReport(report) => (
            format!("{project}: morning report"),
            clip(&report.headline, 160),
        ),
        _ => return None,
    };
    let data = serde_json::json!({
        "kind": event.body.kind(),
        "project_id": event.project_id,
        "run_id": event.run_id,
        "seq": event.seq,
        "approval_id": match &event.body {
            EventBody::ApprovalRequested(request) => Some(request.approval_id),
            _ => None,
        },
    });
    Some(PushContent { title, body, data })
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// One push due: its row, the device token, and the event it tells.
#[derive(Debug, Clone, PartialEq)]
pub struct DuePush {
    pub id: uuid::Uuid,
    pub token: String,
    pub attempts: i32,
    pub project_name: String,
    /// The event; `None` when it was pruned before the push was sent.
    pub event: Option<Event>,
}

/// What Expo said about one push, from its ticket or its receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// Taken: a ticket with this id, whose receipt says later whether it reached the device.
    Ticket(String),
    /// Handed to Apple or Google (a receipt's `ok`).
    Delivered,
    /// The device is not registered any more: its token is dropped, never sent to again.
    DeviceNotRegistered(String),
    /// Refused for good (too big, bad credentials): the message and Expo's error name.
    Refused(String),
    /// Expo could not take it now (429, 5xx, no answer): try again later.
    Later(String),
}

/// A user's webhook as the API shows it (the secret only when made or rotated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Webhook {
    pub id: WebhookId,
    pub url: String,
    pub kinds: Vec<EventKind>,
    pub description: String,
    pub created_at: DateTime<Utc>,
    /// `whsec_…`: shown when the webhook is made; sign-checks every delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The status of a webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        match text {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One delivery of one event to one webhook, with every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: DeliveryId,
    pub project_id: ProjectId,
    pub seq: i64,
    pub kind: EventKind,
    pub status: DeliveryStatus,
    pub created_at: DateTime<Utc>,
    /// When the next attempt is made (a pending delivery).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub attempts: Vec<Attempt>,
}

/// One attempt: what the URL answered, or why nothing came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// One webhook delivery due: where it goes, signed how, and the event.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub user_id: UserId,
    pub url: String,
    pub secret: String,
    pub attempts: i32,
    pub event: Option<Event>,
}

/// The body every attempt of a delivery sends: the delivery's id (receivers drop one they
/// already took) and the event as `GET /projects/{id}/events` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookBody<'a> {
    pub delivery_id: DeliveryId,
    pub webhook_id: WebhookId,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub event: &'a Event,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration: Duration,
}

impl AttemptResult {
    /// The URL took it: a 2xx.
    pub fn delivered(&self) -> bool {
        self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// Why a webhook URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("url is not a valid URL: {0}")]
    Invalid(String),
    #[error("url must be https")]
    NotHttps,
    #[error("url must not carry a user name or password")]
    Credentials,
    #[error("url's host {host} is {why}, which webhooks may not reach")]
    Private { host: String, why: &'static str },
    #[error("url's host {0} does not resolve")]
    Unresolved(String),
}

/// Where webhooks may go: on AWS, https to public addresses only (no server-side request
/// into the VPC, the metadata service or loopback); locally, loopback and plain http too
/// when `WEBHOOKS_ALLOW_LOOPBACK` says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UrlPolicy {
    pub allow_loopback: bool,
}

impl UrlPolicy {
    /// The URL's form: parses, https (or http to loopback when allowed), no credentials.
    pub fn check_form(&self, url: &str) -> Result<reqwest::Url, UrlError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| UrlError::Invalid(e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(UrlError::Credentials);
        }
        let host = parsed.host_str().unwrap_or_default().to_owned();
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_loopback && is_loopback_name(&host) => {}
            _ => return Err(UrlError::NotHttps),
        }
        if host.is_empty() {
            return Err(UrlError::Invalid("no host".into()));
        }
        Ok(parsed)
    }

    /// Whether one resolved address may be reached.
    pub fn check_address(&self, host: &str, ip: IpAddr) -> Result<(), UrlError> {
        match forbidden(ip) {
            Some("loopback") if self.allow_loopback => Ok(()),
            Some(why) => Err(UrlError::Private {
                host: host.to_owned(),
                why,
            }),
            None => Ok(()),
        }
    }
}

fn is_loopback_name(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why an address is off limits, if it is.
fn forbidden(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("link-local (the instance metadata service)")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || a == 0 {
                Some("not a unicast address")
            } else if a == 100 && (64..128).contains(&b) {
                Some("carrier-grade NAT space")
            } else if a == 198 && (b == 18 || b == 19) {
                Some("benchmarking space")
            } else if a >= 240 {
                Some("reserved space")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not a unicast address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_expo_push_tokens_are_tokens() {
        for good in [
            "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]",
            "ExpoPushToken[AbC-12_3]",
        ] {
            assert!(is_expo_token(good), "{good}");
        }
        for bad in [
            "",
            "ExponentPushToken[]",
            "ExponentPushToken[abc",
            "FcmToken[abc]",
            "ExponentPushToken[a b]",
            "ExponentPushToken[abc]x",
        ] {
            assert!(!is_expo_token(bad), "{bad}");
        }
    }

    #[test]
    fn webhooks_reach_public_https_only_unless_local_mode_allows_loopback() {
        let aws = UrlPolicy::default();
        let local = UrlPolicy {
            allow_loopback: true,
        };
        assert!(aws.check_form("https://hooks.example.com/autocrew").is_ok());
        assert_eq!(
            aws.check_form("http://hooks.example.com/x"),
            Err(UrlError::NotHttps)
        );
        assert_eq!(
            aws.check_form("http://127.0.0.1:9000/x"),
            Err(UrlError::NotHttps)
        );
        assert!(local.check_form("http://127.0.0.1:9000/x").is_ok());
        assert_eq!(
            local.check_form("http://hooks.example.com/x"),
            Err(UrlError::NotHttps),
            "plain http only to loopback"
        );
        assert_eq!(
            aws.check_form("https://ana:pw@hooks.example.com/"),
            Err(UrlError::Credentials)
        );
        assert!(matches!(
            aws.check_form("not a url"),
            Err(UrlError::Invalid(_))
        ));
        for (ip, allowed_locally) in [
            ("127.0.0.1", true),
            ("::1", true),
            ("10.0.0.7", false),
            ("172.16.3.4", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("fd00::1", false),
            ("fe80::1", false),
            ("::ffff:10.0.0.1", false),
        ] {
            let ip: IpAddr = ip.parse().expect("an address");
            assert!(aws.check_address("h", ip).is_err(), "{ip} on AWS");
            assert_eq!(
                local.check_address("h", ip).is_ok(),
                allowed_locally,
                "{ip} locally"
            );
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            let ip: IpAddr = public.parse().expect("an address");
            assert!(aws.check_address("h", ip).is_ok(), "{ip}");
        }
    }

    #[test]
    fn a_failed_delivery_waits_longer_each_time() {
        let waits: Vec<u64> = (1..WEBHOOK_ATTEMPTS)
            .map(|a| webhook_backoff(a).as_secs())
            .collect();
        assert_eq!(waits, [30, 120, 600, 1800, 3600, 10_800, 21_600]);
    }

    #[test]
    fn push_settings_round_trip_through_the_muted_kinds() {
        let settings = PushSettings {
            run_completed: false,
            run_failed: true,
            approval_requested: true,
            morning_report: false,
        };
        assert_eq!(
            settings.muted(),
            [EventKind::RunCompleted, EventKind::MorningReport]
        );
        assert_eq!(PushSettings::from_muted(&settings.muted()), settings);
    }
}
