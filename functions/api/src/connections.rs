//! Connected accounts: a user gives a token for an outside service; the API asks the
//! service who the token acts as (a token it refuses is not kept), seals it in the vault,
//! and shows only the account and the token's last characters from then on.

use crate::error::json_response;
use crate::request::{caller, json_body, path_param};
use crate::{ApiError, ApiState};
use autocrew_shared::adapters::tools::ServiceError;
use autocrew_shared::config::Secret;
use autocrew_shared::domain::{ConnectionId, Service};
use autocrew_shared::services::AccountError;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;

/// The longest token taken (GitHub's fine-grained tokens are about 93 characters; a JWT-
/// style OAuth token can be a few hundred).
const MAX_TOKEN_CHARS: usize = 4096;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewConnectionBody {
    #[schema(schema_with = crate::openapi::service_schema)]
    service: String,
    /// The service's API token (a GitHub personal access token, a Vercel token, an Expo
    /// access token, a Resend API key, an X or LinkedIn OAuth 2.0 user token).
    #[schema(min_length = 1, max_length = 4096)]
    token: String,
}

/// `GET /me/connections`: the caller's connections, credentials never included.
pub async fn list_connections(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let connections = state.connected.store().connections(user).await?;
    Ok(json_response(200, &json!({"connections": connections})))
}

/// `POST /me/connections`: 201 with the connection, once the service accepted the token;
/// connecting a service again replaces its token.
pub async fn connect(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let body: NewConnectionBody = json_body(request)?;
    let service: Service =
        body.service
            .trim()
            .parse()
            .map_err(|e: autocrew_shared::domain::UnknownVariant| {
                ApiError::bad("service", e.to_string())
            })?;
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
    let token = Secret::new(token.to_owned());
    let connection = match state.connected.connect(user, service, &token).await {
        Ok(connection) => connection,
        Err(AccountError::Service(e)) => return Err(refused(service, e)),
        Err(AccountError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::Internal(Box::new(e))),
    };
    tracing::info!(%user, %service, connection = %connection.id, "account connected");
    Ok(json_response(201, &json!(connection)))
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
    if !state.connected.store().disconnect(user, id).await? {
        return Err(ApiError::NotFound("connection"));
    }
    Ok(Response::builder()
        .status(204)
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty)))
}
