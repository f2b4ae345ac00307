//! Delivering notices: every push due goes to Expo in batches, every webhook delivery due
//! is posted signed, and every receipt due is read. Rows are leased while one worker sends
//! them, so two deliver steps woken together never send the same notice twice; a worker
//! that dies leaves its lease to run out and the rows to be sent again (receivers drop a
//! delivery id they already took).

use crate::adapters::expo_push::{RECEIPT_BATCH, SEND_BATCH};
use crate::domain::notices::{
    AttemptResult, DueDelivery, DuePush, PushContent, PushOutcome, WebhookBody, push_content,
};
use crate::domain::signature;
use crate::ports::{NoticeStore, PushService, PushServiceError, StoreError, WebhookSender};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A claimed row is the claimer's this long: longer than any send takes.
const LEASE: Duration = Duration::from_secs(120);

/// Webhooks posted at once.
const WEBHOOK_BATCH: u32 = 20;

/// The header carrying a delivery's signature (`t=…,v1=…`).
pub const SIGNATURE_HEADER: &str = "autocrew-signature";

/// What one round of delivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    pub pushes_sent: u32,
    pub pushes_refused: u32,
    pub pushes_later: u32,
    pub devices_dropped: u32,
    pub receipts_read: u32,
    pub webhooks_delivered: u32,
    pub webhooks_failed_attempts: u32,
}

/// Sends notices.
#[derive(Clone)]
pub struct Deliverer {
    pub store: Arc<dyn NoticeStore>,
    pub push: Arc<dyn PushService>,
    pub webhooks: Arc<dyn WebhookSender>,
    /// How long after a push its receipt is read.
    pub receipt_delay: Duration,
}

impl Deliverer {
    /// Sends what is due, until nothing is or `budget` is spent.
    pub async fn deliver_due(&self, budget: Duration) -> Result<DeliveryReport, StoreError> {
        let started = Instant::now();
        let mut report = DeliveryReport::default();
        loop {
            let pushed = self.push_due(&mut report).await?;
            let posted = self.post_due(&mut report).await?;
            let read = self.read_receipts(&mut report).await?;
            if pushed + posted + read == 0 || started.elapsed() >= budget {
                return Ok(report);
            }
        }
    }

    /// One batch of pushes; how many were claimed.
    async fn push_due(&self, report: &mut DeliveryReport) -> Result<usize, StoreError> {
        let due = self.store.claim_pushes(SEND_BATCH as u32, LEASE).await?;
        let mut sendable: Vec<(&DuePush, (String, PushContent))> = Vec::new();
        for push in &due {
            let content = push
                .event
                .as_ref()
                .and_then(|event| push_content(event, &push.project_name));
            match content {
                Some(content) => sendable.push((push, (push.token.clone(), content))),
                None => {
                    let why = "the event was pruned before it could be pushed".to_owned();
                    self.store.pushed(push, &PushOutcome::Refused(why)).await?;
                    report.pushes_refused += 1;
                }
            }
        }
        if sendable.is_empty() {
            return Ok(due.len());
        }
        let messages: Vec<(String, PushContent)> =
            sendable.iter().map(|(_, m)| m.clone()).collect();
        let outcomes = match self.push.send(&messages).await {
            Ok(outcomes) => outcomes,
            Err(PushServiceError::Unavailable(e)) => vec![PushOutcome::Later(e); messages.len()],
            Err(PushServiceError::Refused(e)) => vec![PushOutcome::Refused(e); messages.len()],
        };
        for ((push, _), outcome) in sendable.iter().zip(&outcomes) {
            self.store.pushed(push, outcome).await?;
            match outcome {
                PushOutcome::Ticket(_) | PushOutcome::Delivered => report.pushes_sent += 1,
                PushOutcome::DeviceNotRegistered(_) => report.devices_dropped += 1,
                PushOutcome::Refused(_) => report.pushes_refused += 1,
                PushOutcome::Later(_) => report.pushes_later += 1,
            }
        }
        Ok(due.len())
    }

    /// One batch of webhook deliveries, posted together; how many were claimed.
    async fn post_due(&self, report: &mut DeliveryReport) -> Result<usize, StoreError> {
        let due = self.store.claim_deliveries(WEBHOOK_BATCH, LEASE).await?;
        let results =
            futures::future::join_all(due.iter().map(|delivery| self.post_one(delivery))).await;
        for (delivery, result) in due.iter().zip(&results) {
            self.store.attempted(delivery, result).await?;
            if result.delivered() {
                report.webhooks_delivered += 1;
            } else {
                report.webhooks_failed_attempts += 1;
                tracing::info!(delivery = %delivery.id, error = ?result.error, "a webhook attempt failed");
            }
        }
        Ok(due.len())
    }

    async fn post_one(&self, delivery: &DueDelivery) -> AttemptResult {
        let Some(event) = &delivery.event else {
            return AttemptResult {
                status_code: None,
                error: Some(
                    "the event was pruned by retention before it could be delivered".into(),
                ),
                duration: Duration::ZERO,
            };
        };
        let body = WebhookBody {
            delivery_id: delivery.id,
            webhook_id: delivery.webhook_id,
            kind: event.body.kind(),
            event,
        };
        // The event serialises as the API lists it: ids, strings, numbers and JSON values.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let signed = signature::sign(&body, &delivery.secret, chrono::Utc::now().timestamp());
        let headers = [
            (SIGNATURE_HEADER, signed),
            ("autocrew-delivery", delivery.id.to_string()),
            ("autocrew-event", event.body.kind().to_string()),
        ];
        self.webhooks.post(&delivery.url, &headers, &body).await
    }

    /// Reads the receipts due; how many.
    async fn read_receipts(&self, report: &mut DeliveryReport) -> Result<usize, StoreError> {
        let due = self
            .store
            .unreceipted(self.receipt_delay, RECEIPT_BATCH as u32)
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let tickets: Vec<String> = due.iter().map(|(_, ticket)| ticket.clone()).collect();
        let outcomes = match self.push.receipts(&tickets).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                // Read again at the next round: nothing is lost by waiting.
                tracing::warn!(error = %e, "push receipts could not be read");
                return Ok(0);
            }
        };
        let mut read = 0;
        for ((push, _), outcome) in due.iter().zip(&outcomes) {
            self.store.receipted(*push, outcome).await?;
            match outcome {
                PushOutcome::DeviceNotRegistered(_) => report.devices_dropped += 1,
                PushOutcome::Later(_) => continue,
                _ => {}
            }
            read += 1;
            report.receipts_read += 1;
        }
        Ok(read)
    }
}
