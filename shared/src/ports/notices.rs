//! Notices (`domain::notices`): the user's devices and webhooks, the pushes and deliveries
//! the event log writes, and the services that carry them.

use super::store::StoreError;
use crate::domain::notices::{
    AttemptResult, Delivery, Device, DueDelivery, DuePush, Platform, PushContent, PushOutcome,
    PushSettings, Webhook,
};
use crate::domain::{DeviceId, EventKind, UserId, WebhookId};
use async_trait::async_trait;
use std::time::Duration;
use uuid::Uuid;

/// A device to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    pub token: String,
    pub platform: Option<Platform>,
    pub name: Option<String>,
}

/// A webhook to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    pub url: String,
    pub kinds: Vec<EventKind>,
    pub description: String,
    pub secret: String,
}

/// Devices, push settings and webhooks, as the API keeps them; pushes and deliveries, as
/// the deliver step takes and records them.
#[async_trait]
pub trait NoticeStore: Send + Sync {
    /// Registers `device` for `user`: new (`true`), or the same token again (its platform
    /// and name updated, moved from whoever had it). Past `MAX_DEVICES` is a `Conflict`.
    async fn register_device(
        &self,
        user: UserId,
        device: &NewDevice,
    ) -> Result<(Device, bool), StoreError>;
    async fn devices(&self, user: UserId) -> Result<Vec<Device>, StoreError>;
    /// Forgets one of `user`'s devices; whether it was theirs.
    async fn remove_device(&self, user: UserId, device: DeviceId) -> Result<bool, StoreError>;
    async fn push_settings(&self, user: UserId) -> Result<PushSettings, StoreError>;
    async fn set_push_settings(
        &self,
        user: UserId,
        settings: &PushSettings,
    ) -> Result<(), StoreError>;

    /// Makes a webhook; past `MAX_WEBHOOKS` is a `Conflict`.
    async fn create_webhook(&self, user: UserId, new: &NewWebhook) -> Result<Webhook, StoreError>;
    async fn webhooks(&self, user: UserId) -> Result<Vec<Webhook>, StoreError>;
    /// Deletes one of `user`'s webhooks and its deliveries; whether it was theirs.
    async fn delete_webhook(&self, user: UserId, webhook: WebhookId) -> Result<bool, StoreError>;
    /// A webhook's latest deliveries with their attempts, newest first; `None` when the
    /// webhook is not `user`'s.
    async fn deliveries(
        &self,
        user: UserId,
        webhook: WebhookId,
        limit: u32,
    ) -> Result<Option<Vec<Delivery>>, StoreError>;

    /// Pushes due, leased to the caller for `lease` (no other worker takes them meanwhile).
    async fn claim_pushes(&self, limit: u32, lease: Duration) -> Result<Vec<DuePush>, StoreError>;
    /// Records what Expo said about a push at send time (`Later` schedules it again, until
    /// its attempts run out). `DeviceNotRegistered` also deletes the device.
    async fn pushed(&self, push: &DuePush, outcome: &PushOutcome) -> Result<(), StoreError>;
    /// Pushes sent at least `after` ago whose receipt was not read: `(id, ticket)`.
    async fn unreceipted(
        &self,
        after: Duration,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>, StoreError>;
    /// Records a push's receipt (`Later`: none yet; given up on after a day).
    async fn receipted(&self, push: Uuid, outcome: &PushOutcome) -> Result<(), StoreError>;

    /// Webhook deliveries due, leased to the caller for `lease`.
    async fn claim_deliveries(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// Records one attempt: delivered, failed for good, or scheduled again.
    async fn attempted(
        &self,
        delivery: &DueDelivery,
        result: &AttemptResult,
    ) -> Result<(), StoreError>;

    /// Whether anything is due: a push or delivery to send, or a receipt older than
    /// `receipt_after` to read.
    async fn anything_due(&self, receipt_after: Duration) -> Result<bool, StoreError>;
}

/// Why a push service call failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PushServiceError {
    /// Worth trying again later: a 429, a 5xx, no answer.
    #[error("the push service is unavailable: {0}")]
    Unavailable(String),
    /// The request was refused (a 4xx): trying again will not help.
    #[error("the push service refused the request: {0}")]
    Refused(String),
}

/// A push service: Expo's Push API.
#[async_trait]
pub trait PushService: Send + Sync {
    /// Sends up to 100 pushes; one outcome per push, in order.
    async fn send(
        &self,
        pushes: &[(String, PushContent)],
    ) -> Result<Vec<PushOutcome>, PushServiceError>;
    /// Reads the receipts of up to 1,000 tickets; a ticket with no receipt yet is `Later`.
    async fn receipts(&self, tickets: &[String]) -> Result<Vec<PushOutcome>, PushServiceError>;
}

/// Posts a signed webhook body to a URL (with the SSRF rules of `UrlPolicy`).
#[async_trait]
pub trait WebhookSender: Send + Sync {
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &[u8]) -> AttemptResult;
}
