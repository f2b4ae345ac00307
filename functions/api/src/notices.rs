//! What reaches the caller away from the app (`domain::notices`): the devices that get push
//! notifications and which kinds push, and the webhooks that get run events, with their
//! deliveries and every attempt.

use crate::error::json_response;
use crate::request::{caller, json_body, path_param, query_number};
use crate::{ApiError, ApiState};
use autocrew_shared::adapters::tools::oauth::random_token;
use autocrew_shared::adapters::webhooks::check_url;
use autocrew_shared::domain::notices::{
    Delivery, Device, Platform, PushSettings, UNHOOKABLE_KINDS, Webhook, is_expo_token,
};
use autocrew_shared::domain::{DeviceId, EventKind, WebhookId};
use autocrew_shared::ports::{NewDevice, NewWebhook, StoreError};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

/// `POST /me/devices`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceBody {
    /// The Expo push token `getExpoPushTokenAsync` gave: `ExponentPushToken[...]`.
    #[schema(max_length = 220)]
    token: String,
    platform: Option<Platform>,
    /// A name the user knows the device by ("Ana's iPhone").
    #[schema(max_length = 100)]
    name: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Devices {
    devices: Vec<Device>,
}

/// `PATCH /me/notifications`: the kinds to turn on or off; those left out stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NotificationsBody {
    run_completed: Option<bool>,
    run_failed: Option<bool>,
    approval_requested: Option<bool>,
    morning_report: Option<bool>,
}

/// `POST /me/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookBody {
    /// An https URL on a public address.
    #[schema(max_length = 2000)]
    url: String,
    /// The event kinds to send (not `task_progress` or `reply_progress`, which stream).
    kinds: Vec<EventKind>,
    #[serde(default)]
    #[schema(max_length = 200)]
    description: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Webhooks {
    webhooks: Vec<Webhook>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Deliveries {
    /// Newest first, each with every attempt.
    deliveries: Vec<Delivery>,
}

fn conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(message) => ApiError::Conflict(message),
        other => other.into(),
    }
}

/// `POST /me/devices`: registers an Expo push token for the caller (201), or the same one
/// again (200: its platform and name updated).
pub async fn register_device(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let body: DeviceBody = json_body(request)?;
    let token = body.token.trim().to_owned();
    if !is_expo_token(&token) {
        return Err(ApiError::bad(
            "token",
            "must be an Expo push token, ExponentPushToken[...] as getExpoPushTokenAsync gives it",
        ));
    }
    let name = body
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(ApiError::bad("name", "must be at most 100 characters"));
    }
    let device = NewDevice {
        token,
        platform: body.platform,
        name,
    };
    let (device, created) = state
        .notices
        .register_device(user, &device)
        .await
        .map_err(conflict)?;
    Ok(json_response(if created { 201 } else { 200 }, &device))
}

/// `GET /me/devices`: the caller's devices.
pub async fn list_devices(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let devices = state.notices.devices(user).await?;
    Ok(json_response(200, &Devices { devices }))
}

/// `DELETE /me/devices/{device_id}`: no more pushes to it.
pub async fn remove_device(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let device = path_param(request, "device_id", DeviceId::parse)?;
    match state.notices.remove_device(user, device).await? {
        true => Ok(no_content()),
        false => Err(ApiError::NotFound("device")),
    }
}

/// `GET /me/notifications`: which kinds push to the caller's devices.
pub async fn get_notifications(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    Ok(json_response(
        200,
        &state.notices.push_settings(user).await?,
    ))
}

/// `PATCH /me/notifications`: turns kinds on or off.
pub async fn update_notifications(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let body: NotificationsBody = json_body(request)?;
    let now = state.notices.push_settings(user).await?;
    let settings = PushSettings {
        run_completed: body.run_completed.unwrap_or(now.run_completed),
        run_failed: body.run_failed.unwrap_or(now.run_failed),
        approval_requested: body.approval_requested.unwrap_or(now.approval_requested),
        morning_report: body.morning_report.unwrap_or(now.morning_report),
    };
    state.notices.set_push_settings(user, &settings).await?;
    Ok(json_response(200, &settings))
}

/// `POST /me/webhooks`: a URL that gets the caller's run events of `kinds`, signed; the
/// answer shows the signing secret, once.
pub async fn create_webhook(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let body: WebhookBody = json_body(request)?;
    let url = body.url.trim().to_owned();
    if url.len() > 2000 {
        return Err(ApiError::bad("url", "must be at most 2000 characters"));
    }
    let mut kinds = body.kinds;
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        return Err(ApiError::bad("kinds", "name at least one event kind"));
    }
    if let Some(kind) = kinds.iter().find(|k| UNHOOKABLE_KINDS.contains(k)) {
        return Err(ApiError::bad(
            "kinds",
            format!("{kind} streams and is never logged: follow it on the WebSocket"),
        ));
    }
    let description = body.description.trim().to_owned();
    if description.chars().count() > 200 {
        return Err(ApiError::bad(
            "description",
            "must be at most 200 characters",
        ));
    }
    check_url(state.webhook_urls, &url)
        .await
        .map_err(|e| ApiError::bad("url", e.to_string().trim_start_matches("url ").to_owned()))?;
    let new = NewWebhook {
        url,
        kinds,
        description,
        secret: format!("whsec_{}", random_token()),
    };
    let webhook = state
        .notices
        .create_webhook(user, &new)
        .await
        .map_err(conflict)?;
    tracing::info!(%user, webhook = %webhook.id, "webhook made");
    Ok(json_response(201, &webhook))
}

/// `GET /me/webhooks`: the caller's webhooks (without their secrets).
pub async fn list_webhooks(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let webhooks = state.notices.webhooks(user).await?;
    Ok(json_response(200, &Webhooks { webhooks }))
}

/// `DELETE /me/webhooks/{webhook_id}`: no more deliveries; those pending are dropped.
pub async fn delete_webhook(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let webhook = path_param(request, "webhook_id", WebhookId::parse)?;
    match state.notices.delete_webhook(user, webhook).await? {
        true => Ok(no_content()),
        false => Err(ApiError::NotFound("webhook")),
    }
}

/// `GET /me/webhooks/{webhook_id}/deliveries?limit=N`: the latest deliveries, newest first,
/// each with every attempt (status code or error, and how long it took).
pub async fn list_deliveries(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let webhook = path_param(request, "webhook_id", WebhookId::parse)?;
    let limit = query_number(request, "limit", 50)?;
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad("limit", "must be between 1 and 200"));
    }
    match state
        .notices
        .deliveries(user, webhook, limit as u32)
        .await?
    {
        Some(deliveries) => Ok(json_response(200, &Deliveries { deliveries })),
        None => Err(ApiError::NotFound("webhook")),
    }
}

fn no_content() -> Response<Body> {
    Response::builder()
        .status(204)
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::{Spec, integer, query};

    pub fn register_device() -> Spec {
        Spec::new("Registers the device's Expo push token for push notifications (a finished or failed run, an approval request, the morning report): 201 when new, 200 when the token was registered already (it moves to the caller). At most 20 devices.")
            .body::<DeviceBody>()
            .reply::<Device>(201)
            .reply::<Device>(200)
    }

    pub fn list_devices() -> Spec {
        Spec::new("The caller's devices registered for push notifications.").reply::<Devices>(200)
    }

    pub fn remove_device() -> Spec {
        Spec::new("Forgets a device: nothing more is pushed to it.").empty(204)
    }

    pub fn get_notifications() -> Spec {
        Spec::new("Which kinds push to the caller's devices: run_completed, run_failed, approval_requested, morning_report (all on until turned off).")
            .reply::<PushSettings>(200)
    }

    pub fn update_notifications() -> Spec {
        Spec::new("Turns push kinds on or off; kinds left out stay as they are.")
            .body::<NotificationsBody>()
            .reply::<PushSettings>(200)
    }

    pub fn create_webhook() -> Spec {
        Spec::new("Registers an https URL for the caller's run events of the given kinds. Each delivery is a POST of {delivery_id, webhook_id, type, event} signed in the Autocrew-Signature header (t=<unix seconds>,v1=<hex HMAC-SHA256 of \"t.body\" under the secret>), retried with backoff up to 8 times over about 11 hours. The answer shows the secret once. URLs on private, loopback or link-local addresses are refused. At most 10 webhooks.")
            .body::<WebhookBody>()
            .reply::<Webhook>(201)
    }

    pub fn list_webhooks() -> Spec {
        Spec::new("The caller's webhooks (their secrets are shown only when made).")
            .reply::<Webhooks>(200)
    }

    pub fn delete_webhook() -> Spec {
        Spec::new("Deletes a webhook and its deliveries.").empty(204)
    }

    pub fn list_deliveries() -> Spec {
        Spec::new("A webhook's latest deliveries, newest first: the event, pending, delivered or failed, when the next attempt is, and every attempt with the status the URL answered or the error.")
            .query([query(
                "limit",
                "How many (1 to 200, default 50).",
                integer(1, Some(200)),
            )])
            .reply::<Deliveries>(200)
    }
}
