//! Connected accounts: a user gives a token for an outside service; the API asks the
//! service who the token acts as (a token it refuses is not kept), seals it in the vault,
//! and shows only the account and the token's last characters from then on.

use crate::error::json_response;
use crate::request::{caller, json_body, path_param};
use crate::{ApiError, ApiState};
use autocrew_shared::adapters::tools::ServiceError;
use autocrew_shared::config::Secret;
use autocrew_shared::domain::connections::Connection;
use autocrew_shared::domain::requests::{DeviceFlowBody, NewConnectionBody};
use autocrew_shared::domain::{ConnectionId, DeviceFlowId, Service, UserId};
use autocrew_shared::ports::ConnectionStore;
use autocrew_shared::services::{AccountError, FlowStep};
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

/// The longest token taken (GitHub's fine-grained tokens are about 93 characters; a JWT-
/// style OAuth token can be a few hundred).
const MAX_TOKEN_CHARS: usize = 4096;

/// The caller's connections.
#[derive(Serialize, utoipa::ToSchema)]
struct Connections {
    connections: Vec<Connection>,
}

/// A device flow the user finishes at the service.
#[derive(Serialize, utoipa::ToSchema)]
struct DeviceFlowStarted {
    flow_id: DeviceFlowId,
    service: Service,
    /// The code the user enters at `verification_uri`.
    user_code: String,
    verification_uri: String,
    /// Seconds between polls.
    interval: u32,
    expires_at: DateTime<Utc>,
}

/// The user has not entered the code yet.
#[derive(Serialize, utoipa::ToSchema)]
struct DeviceFlowPending {
    /// `pending`.
    status: &'static str,
    /// Seconds before the next poll.
    interval: u32,
}

/// `GET /me/connections`: the caller's connections, credentials never included.
pub async fn list_connections(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let connections = state.connected.store().connections(user).await?;
    Ok(json_response(200, &Connections { connections }))
}

/// The service and token a connection request names, checked: a known service, and a
/// token of 1-4096 printable ASCII characters (as the service issued it).
pub(crate) fn token_of(body: &NewConnectionBody) -> Result<(Service, Secret<String>), ApiError> {
    let service = service_of(&body.service)?;
    let token = body.token.trim();
    if token.is_empty() || token.chars().count() > MAX_TOKEN_CHARS {
        return Err(ApiError::bad(
            "token",
            format!("must be 1-{MAX_TOKEN_CHARS} characters"),
        ));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::bad(
            "token",
            "must be printable ASCII without spaces, as the service issued it",
        ));
    }
    Ok((service, Secret::new(token.to_owned())))
}

/// `POST /me/connections`: 201 with the connection, once the service accepted the token;
/// connecting a service again replaces its token.
pub async fn connect(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let body: NewConnectionBody = json_body(request)?;
    let (service, token) = token_of(&body)?;
    let connection = match state.connected.connect(user, service, &token).await {
        Ok(connection) => connection,
        Err(AccountError::Service(e)) => return Err(refused(service, e)),
        Err(AccountError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::Internal(Box::new(e))),
    };
    tracing::info!(%user, %service, connection = %connection.id, "account connected");
    Ok(json_response(201, &connection))
}

pub(crate) fn service_of(text: &str) -> Result<Service, ApiError> {
    text.trim()
        .parse()
        .map_err(|e: autocrew_shared::domain::UnknownVariant| {
            ApiError::bad("service", e.to_string())
        })
}

/// `POST /me/connections/device`: 201 with the code the user enters at the service's
/// verification page, where, until when, and how often to poll.
pub async fn start_device_flow(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let body: DeviceFlowBody = json_body(request)?;
    let service = service_of(&body.service)?;
    let flow = state
        .connected
        .start_device_flow(user, service)
        .await
        .map_err(|e| flow_error(service, e))?;
    Ok(json_response(
        201,
        &DeviceFlowStarted {
            flow_id: DeviceFlowId(flow.id),
            service: flow.service,
            user_code: flow.user_code,
            verification_uri: flow.verification_uri,
            interval: flow.interval_secs,
            expires_at: flow.expires_at,
        },
    ))
}

/// `POST /me/connections/device/{flow_id}`: one poll. 202 while the user has not entered
/// the code (poll again after `interval` seconds); 201 with the connection once they did.
pub async fn poll_device_flow(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "flow_id", DeviceFlowId::parse)?;
    match state.connected.poll_device_flow(user, id.0).await {
        Ok(FlowStep::Pending { interval_secs }) => Ok(json_response(
            202,
            &DeviceFlowPending {
                status: "pending",
                interval: interval_secs,
            },
        )),
        Ok(FlowStep::Connected(connection)) => {
            tracing::info!(%user, service = %connection.service, connection = %connection.id, "account connected by its device flow");
            Ok(json_response(201, &connection))
        }
        Err(e) => Err(flow_error(Service::Github, e)),
    }
}

/// What an OAuth flow's failure means for the caller.
pub(crate) fn flow_error(service: Service, error: AccountError) -> ApiError {
    match error {
        AccountError::Service(e) => refused(service, e),
        AccountError::Store(e) => e.into(),
        e @ (AccountError::NoDeviceFlow { .. } | AccountError::NoWebFlow { .. }) => {
            ApiError::Unprocessable(e.to_string())
        }
        e @ (AccountError::DeviceFlowNotConfigured { .. }
        | AccountError::WebFlowNotConfigured { .. }) => ApiError::Unavailable(e.to_string()),
        AccountError::FlowNotFound => ApiError::NotFound("device flow"),
        e @ AccountError::FlowEnded(_) => ApiError::Conflict(e.to_string()),
        e => ApiError::Internal(Box::new(e)),
    }
}

/// What the service's answer means for the caller: a refused token is the caller's to fix
/// (422); a service that cannot answer now is ours to report (503).
fn refused(service: Service, error: ServiceError) -> ApiError {
    match error {
        ServiceError::Unauthorized { .. } | ServiceError::Refused { .. } => {
            ApiError::Unprocessable(format!("the token was not connected: {error}"))
        }
        ServiceError::RateLimited { .. } | ServiceError::Unavailable { .. } => {
            tracing::warn!(%service, error = %error, "could not check a token with its service");
            ApiError::Unavailable(format!(
                "could not check the token with {service} now; try again later ({error})"
            ))
        }
    }
}

/// `DELETE /me/connections/{connection_id}`: 204; the sealed token is deleted.
pub async fn disconnect(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "connection_id", ConnectionId::parse)?;
    disconnected(state.connected.store(), user, id).await?;
    Ok(Response::builder()
        .status(204)
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty)))
}

/// Forgets `user`'s connection `id` and its credential; someone else's is not found.
pub(crate) async fn disconnected(
    store: &dyn ConnectionStore,
    user: UserId,
    id: ConnectionId,
) -> Result<(), ApiError> {
    match store.disconnect(user, id).await? {
        true => Ok(()),
        false => Err(ApiError::NotFound("connection")),
    }
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::Spec;

    pub fn list_connections() -> Spec {
        Spec::new("The caller's connected accounts: service, account, status; never the token.")
            .reply::<Connections>(200)
    }

    pub fn connect() -> Spec {
        Spec::new("Connects a service with a token it accepts (checked with the service, then sealed); connecting again replaces it.")
            .body::<NewConnectionBody>()
            .reply::<Connection>(201)
    }

    pub fn disconnect() -> Spec {
        Spec::new("Forgets the connection and its token.").empty(204)
    }

    pub fn start_device_flow() -> Spec {
        Spec::new("Starts the service's OAuth device flow (GitHub): the code the user enters at the verification page, where, until when, and how often to poll. 422 for a service without one; 503 where no OAuth app is configured.")
            .body::<DeviceFlowBody>()
            .reply::<DeviceFlowStarted>(201)
    }

    pub fn poll_device_flow() -> Spec {
        Spec::new("One poll of a device flow: 202 while the user has not entered the code (poll again after interval seconds), 201 with the connection once they did, 409 once it expired or was cancelled.")
            .reply::<Connection>(201)
            .reply::<DeviceFlowPending>(202)
    }
}
