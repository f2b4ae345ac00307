//! Notices on Postgres (migration 0029): devices, push settings, webhooks, and the pushes
//! and deliveries the event append writes (`effects::APPEND`).

use super::Pool;
use super::cached::Cached;
use crate::domain::notices::{
    Attempt, AttemptResult, Delivery, DeliveryStatus, Device, DueDelivery, DuePush, MAX_DEVICES,
    MAX_WEBHOOKS, PUSH_ATTEMPTS, Platform, PushOutcome, PushSettings, WEBHOOK_ATTEMPTS, Webhook,
    webhook_backoff,
};
use crate::domain::{DeliveryId, DeviceId, EventKind, ProjectId, UserId, WebhookId};
use crate::ports::{NewDevice, NewWebhook, NoticeStore, StoreError};
use async_trait::async_trait;
use std::time::Duration;
use tokio_postgres::Row;
use uuid::Uuid;

/// `NoticeStore` on Postgres.
#[derive(Clone)]
pub struct PgNotices {
    pool: Pool,
}

impl PgNotices {
    pub fn new(pool: Pool) -> Self {
        PgNotices { pool }
    }
}

fn device_from(row: &Row) -> Result<Device, StoreError> {
    let platform: Option<String> = row.try_get("platform")?;
    Ok(Device {
        id: DeviceId(row.try_get("id")?),
        token: row.try_get("token")?,
        platform: platform.as_deref().and_then(Platform::parse),
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn webhook_from(row: &Row) -> Result<Webhook, StoreError> {
    Ok(Webhook {
        id: WebhookId(row.try_get("id")?),
        url: row.try_get("url")?,
        kinds: row.try_get("kinds")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        secret: None,
    })
}

/// A claimed row's event, read again from the log (`None` if retention pruned it).
const EVENT_COLUMNS: &str = "e.run_id, e.seq, e.kind, e.payload, e.created_at";

fn event_of(
    row: &Row,
    project: ProjectId,
) -> Result<Option<crate::domain::events::Event>, StoreError> {
    let seq: Option<i64> = row.try_get("seq")?;
    let Some(seq) = seq else {
        return Ok(None);
    };
    let run: Option<Uuid> = row.try_get("run_id")?;
    super::effects::typed(
        (project, run.map(crate::domain::RunId), seq),
        row.try_get("kind")?,
        row.try_get("payload")?,
        row.try_get("created_at")?,
    )
    .map(Some)
}

/// How long after a push Expo's receipt is given up on (Expo keeps receipts a day).
const RECEIPT_GIVE_UP: &str = "24 hours";

#[async_trait]
impl NoticeStore for PgNotices {
    async fn register_device(
        &self,
        user: UserId,
        device: &NewDevice,
    ) -> Result<(Device, bool), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // The user's row lock makes the count and the insert one decision.
        tx.execute_cached("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user.0])
            .await?;
        let existing = tx
            .query_opt_cached(
                "SELECT user_id FROM devices WHERE token = $1 FOR UPDATE",
                &[&device.token],
            )
            .await?;
        let owned = existing
            .as_ref()
            .map(|row| row.try_get::<_, Uuid>(0))
            .transpose()?
            == Some(user.0);
        if !owned {
            let count: i64 = tx
                .query_one_cached(
                    "SELECT count(*) FROM devices WHERE user_id = $1",
                    &[&user.0],
                )
                .await?
                .try_get(0)?;
            if count >= MAX_DEVICES as i64 {
                return Err(StoreError::Conflict(format!(
                    "you have {MAX_DEVICES} devices registered, the most allowed: remove one first"
                )));
            }
        }
        let platform = device.platform.map(Platform::as_str);
        let row = tx
            .query_one_cached(
                "INSERT INTO devices (id, user_id, token, platform, name) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (token) DO UPDATE
                   SET user_id = EXCLUDED.user_id, platform = EXCLUDED.platform,
                       name = EXCLUDED.name, updated_at = now()
                 RETURNING id, token, platform, name, created_at, (xmax = 0) AS created",
                &[&Uuid::new_v4(), &user.0, &device.token, &platform, &device.name],
            )
            .await?;
        tx.commit().await?;
        Ok((device_from(&row)?, row.try_get("created")?))
    }

    async fn devices(&self, user: UserId) -> Result<Vec<Device>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                "SELECT id, token, platform, name, created_at FROM devices
                 WHERE user_id = $1 ORDER BY created_at, id",
                &[&user.0],
            )
            .await?;
        rows.iter().map(device_from).collect()
    }

    async fn remove_device(&self, user: UserId, device: DeviceId) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                "WITH gone AS (DELETE FROM devices WHERE id = $1 AND user_id = $2 RETURNING token),
                 dropped AS (
                   UPDATE push_messages SET status = 'dropped', error = 'the device was removed'
                   WHERE token IN (SELECT token FROM gone) AND status = 'pending' RETURNING 1)
                 SELECT count(*) FROM gone",
                &[&device.0, &user.0],
            )
            .await?;
        Ok(row.try_get::<_, i64>(0)? == 1)
    }

    async fn push_settings(&self, user: UserId) -> Result<PushSettings, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached("SELECT push_muted FROM users WHERE id = $1", &[&user.0])
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "user",
                id: user.to_string(),
            })?;
        let muted: Vec<EventKind> = row.try_get(0)?;
        Ok(PushSettings::from_muted(&muted))
    }

    async fn set_push_settings(
        &self,
        user: UserId,
        settings: &PushSettings,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "UPDATE users SET push_muted = $2 WHERE id = $1",
                &[&user.0, &settings.muted()],
            )
            .await?;
        Ok(())
    }

    async fn create_webhook(&self, user: UserId, new: &NewWebhook) -> Result<Webhook, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute_cached("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user.0])
            .await?;
        let count: i64 = tx
            .query_one_cached(
                "SELECT count(*) FROM webhooks WHERE user_id = $1",
                &[&user.0],
            )
            .await?
            .try_get(0)?;
        if count >= MAX_WEBHOOKS as i64 {
            return Err(StoreError::Conflict(format!(
                "you have {MAX_WEBHOOKS} webhooks, the most allowed: delete one first"
            )));
        }
        let row = tx
            .query_one_cached(
                "INSERT INTO webhooks (id, user_id, url, kinds, secret, description)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 RETURNING id, url, kinds, description, created_at",
                &[
                    &Uuid::new_v4(),
                    &user.0,
                    &new.url,
                    &new.kinds,
                    &new.secret,
                    &new.description,
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(Webhook {
            secret: Some(new.secret.clone()),
            ..webhook_from(&row)?
        })
    }

    async fn webhooks(&self, user: UserId) -> Result<Vec<Webhook>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                "SELECT id, url, kinds, description, created_at FROM webhooks
                 WHERE user_id = $1 ORDER BY created_at, id",
                &[&user.0],
            )
            .await?;
        rows.iter().map(webhook_from).collect()
    }

    async fn delete_webhook(&self, user: UserId, webhook: WebhookId) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let deleted = client
            .execute_cached(
                "DELETE FROM webhooks WHERE id = $1 AND user_id = $2",
                &[&webhook.0, &user.0],
            )
            .await?;
        Ok(deleted == 1)
    }

    async fn deliveries(
        &self,
        user: UserId,
        webhook: WebhookId,
        limit: u32,
    ) -> Result<Option<Vec<Delivery>>, StoreError> {
        let client = self.pool.get().await?;
        let owned = client
            .query_opt_cached(
                "SELECT 1 FROM webhooks WHERE id = $1 AND user_id = $2",
                &[&webhook.0, &user.0],
            )
            .await?;
        if owned.is_none() {
            return Ok(None);
        }
        let rows = client
            .query_cached(
                "SELECT d.id, d.project_id, d.seq, d.kind, d.status, d.created_at,
                        CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
                        coalesce((SELECT jsonb_agg(jsonb_build_object(
                                    'attempt', a.attempt, 'at', a.at, 'status_code', a.status_code,
                                    'error', a.error, 'duration_ms', a.duration_ms) ORDER BY a.attempt)
                                  FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]') AS attempts
                 FROM webhook_deliveries d WHERE d.webhook_id = $1
                 ORDER BY d.created_at DESC, d.id LIMIT $2",
                &[&webhook.0, &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                let attempts: serde_json::Value = row.try_get("attempts")?;
                Ok(Delivery {
                    id: DeliveryId(row.try_get("id")?),
                    project_id: ProjectId(row.try_get("project_id")?),
                    seq: row.try_get("seq")?,
                    kind: row.try_get("kind")?,
                    status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Failed),
                    created_at: row.try_get("created_at")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    attempts: serde_json::from_value::<Vec<Attempt>>(attempts)
                        .map_err(|e| StoreError::Backend(Box::new(e)))?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map(Some)
    }

    async fn claim_pushes(&self, limit: u32, lease: Duration) -> Result<Vec<DuePush>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "WITH claimed AS (
                       UPDATE push_messages SET lease_until = now() + make_interval(secs => $2)
                       WHERE id IN (SELECT id FROM push_messages
                                    WHERE status = 'pending' AND next_attempt_at <= now()
                                      AND (lease_until IS NULL OR lease_until < now())
                                    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                       RETURNING id, token, attempts, project_id, seq)
                     SELECT c.id, c.token, c.attempts, c.project_id, p.name, {EVENT_COLUMNS}
                     FROM claimed c JOIN projects p ON p.id = c.project_id
                     LEFT JOIN events e ON e.project_id = c.project_id AND e.seq = c.seq"
                ),
                &[&i64::from(limit), &lease.as_secs_f64()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let project = ProjectId(row.try_get("project_id")?);
                Ok(DuePush {
                    id: row.try_get("id")?,
                    token: row.try_get("token")?,
                    attempts: row.try_get("attempts")?,
                    project_name: row.try_get("name")?,
                    event: event_of(row, project)?,
                })
            })
            .collect()
    }

    async fn pushed(&self, push: &DuePush, outcome: &PushOutcome) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        match outcome {
            PushOutcome::Ticket(ticket) => {
                client
                    .execute_cached(
                        "UPDATE push_messages SET status = 'sent', ticket_id = $2, sent_at = now(),
                           attempts = attempts + 1, lease_until = NULL WHERE id = $1",
                        &[&push.id, ticket],
                    )
                    .await?;
            }
            PushOutcome::Delivered => {
                client
                    .execute_cached(
                        "UPDATE push_messages SET status = 'delivered', attempts = attempts + 1,
                           sent_at = now(), checked_at = now(), lease_until = NULL WHERE id = $1",
                        &[&push.id],
                    )
                    .await?;
            }
            PushOutcome::DeviceNotRegistered(message) => {
                drop_device(&client, push.id, message).await?;
            }
            PushOutcome::Refused(message) => {
                client
                    .execute_cached(
                        "UPDATE push_messages SET status = 'failed', error = $2,
                           attempts = attempts + 1, lease_until = NULL WHERE id = $1",
                        &[&push.id, message],
                    )
                    .await?;
            }
            PushOutcome::Later(message) => {
                let attempt = push.attempts + 1;
                let status = if attempt >= PUSH_ATTEMPTS {
                    "failed"
                } else {
                    "pending"
                };
                // A minute, then doubling: 1, 2, 4, 8 minutes.
                let wait = 60.0 * f64::from(1 << (attempt - 1).clamp(0, 6));
                client
                    .execute_cached(
                        "UPDATE push_messages SET status = $2, error = $3, attempts = $4,
                           next_attempt_at = now() + make_interval(secs => $5), lease_until = NULL
                         WHERE id = $1",
                        &[&push.id, &status, message, &attempt, &wait],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn unreceipted(
        &self,
        after: Duration,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                "SELECT id, ticket_id FROM push_messages
                 WHERE status = 'sent' AND sent_at <= now() - make_interval(secs => $1)
                   AND (checked_at IS NULL OR checked_at <= now() - make_interval(secs => $1))
                 ORDER BY sent_at LIMIT $2",
                &[&after.as_secs_f64(), &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    async fn receipted(&self, push: Uuid, outcome: &PushOutcome) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        match outcome {
            PushOutcome::Delivered | PushOutcome::Ticket(_) => {
                client
                    .execute_cached(
                        "UPDATE push_messages SET status = 'delivered', checked_at = now() WHERE id = $1",
                        &[&push],
                    )
                    .await?;
            }
            PushOutcome::DeviceNotRegistered(message) => {
                drop_device(&client, push, message).await?;
            }
            PushOutcome::Refused(message) => {
                client
                    .execute_cached(
                        "UPDATE push_messages SET status = 'failed', error = $2, checked_at = now()
                         WHERE id = $1",
                        &[&push, message],
                    )
                    .await?;
            }
            PushOutcome::Later(_) => {
                client
                    .execute_cached(
                        &format!(
                            "UPDATE push_messages
                             SET checked_at = now(),
                                 status = CASE WHEN sent_at < now() - interval '{RECEIPT_GIVE_UP}'
                                               THEN 'failed' ELSE status END,
                                 error = CASE WHEN sent_at < now() - interval '{RECEIPT_GIVE_UP}'
                                              THEN 'Expo gave no receipt within a day' ELSE error END
                             WHERE id = $1"
                        ),
                        &[&push],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!(
                    "WITH claimed AS (
                       UPDATE webhook_deliveries SET lease_until = now() + make_interval(secs => $2)
                       WHERE id IN (SELECT id FROM webhook_deliveries
                                    WHERE status = 'pending' AND next_attempt_at <= now()
                                      AND (lease_until IS NULL OR lease_until < now())
                                    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                       RETURNING id, webhook_id, attempts, project_id, seq)
                     SELECT c.id, c.webhook_id, c.attempts, c.project_id, w.user_id, w.url, w.secret,
                            {EVENT_COLUMNS}
                     FROM claimed c JOIN webhooks w ON w.id = c.webhook_id
                     LEFT JOIN events e ON e.project_id = c.project_id AND e.seq = c.seq"
                ),
                &[&i64::from(limit), &lease.as_secs_f64()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let project = ProjectId(row.try_get("project_id")?);
                Ok(DueDelivery {
                    id: DeliveryId(row.try_get("id")?),
                    webhook_id: WebhookId(row.try_get("webhook_id")?),
                    user_id: UserId(row.try_get("user_id")?),
                    url: row.try_get("url")?,
                    secret: row.try_get("secret")?,
                    attempts: row.try_get("attempts")?,
                    event: event_of(row, project)?,
                })
            })
            .collect()
    }

    async fn attempted(
        &self,
        delivery: &DueDelivery,
        result: &AttemptResult,
    ) -> Result<(), StoreError> {
        let attempt = delivery.attempts + 1;
        let (status, wait) = if result.delivered() {
            ("delivered", Duration::ZERO)
        } else if attempt >= WEBHOOK_ATTEMPTS || delivery.event.is_none() {
            ("failed", Duration::ZERO)
        } else {
            ("pending", webhook_backoff(attempt))
        };
        let duration_ms = i32::try_from(result.duration.as_millis()).unwrap_or(i32::MAX);
        let code = result.status_code.map(i32::from);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute_cached(
            "INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[&delivery.id.0, &attempt, &code, &result.error, &duration_ms],
        )
        .await?;
        tx.execute_cached(
            "UPDATE webhook_deliveries
             SET status = $2, attempts = $3, lease_until = NULL,
                 next_attempt_at = now() + make_interval(secs => $4),
                 ended_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END
             WHERE id = $1",
            &[&delivery.id.0, &status, &attempt, &wait.as_secs_f64()],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn anything_due(&self, receipt_after: Duration) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                "SELECT EXISTS (SELECT 1 FROM push_messages WHERE status = 'pending' AND next_attempt_at <= now())
                     OR EXISTS (SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now())
                     OR EXISTS (SELECT 1 FROM push_messages WHERE status = 'sent'
                                  AND sent_at <= now() - make_interval(secs => $1)
                                  AND (checked_at IS NULL OR checked_at <= now() - make_interval(secs => $1)))",
                &[&receipt_after.as_secs_f64()],
            )
            .await?;
        Ok(row.try_get(0)?)
    }
}

/// Expo said the push's device is not registered: the push is dropped, the token deleted,
/// and every other push waiting for that token dropped with it. Nothing is sent to it again
/// unless the app registers it anew.
async fn drop_device(client: &impl Cached, push: Uuid, message: &str) -> Result<(), StoreError> {
    client
        .execute_cached(
            "WITH this AS (SELECT token FROM push_messages WHERE id = $1),
             gone AS (DELETE FROM devices WHERE token = (SELECT token FROM this))
             UPDATE push_messages SET status = 'dropped', error = $2, checked_at = now(),
                    lease_until = NULL,
                    attempts = CASE WHEN id = $1 THEN attempts + 1 ELSE attempts END
             WHERE id = $1 OR (token = (SELECT token FROM this) AND status = 'pending')",
            &[&push, &message],
        )
        .await?;
    Ok(())
}
