//! The WebSocket API, with API Gateway's semantics: `$connect` registers the connection of
//! a caller with a valid access token, the same JWT the HTTP API takes, as `?token=` (what
//! browsers can send) or `Authorization: Bearer` (anything but 200 refuses it), with the
//! token's expiry; `$disconnect` forgets it; `$default` takes the client's messages
//! (`domain::realtime::ClientMessage`, documented in docs/websocket.md): follow and stop
//! following projects, any number up to 100 on one connection, each subscription replaying
//! the events after the client's last sequence; ping; renew the token. A message that
//! cannot be served gets an error frame and the socket stays open; a socket whose token
//! expired is closed after a `closing` frame.

use autocrew_shared::adapters;
use autocrew_shared::adapters::aws::{self, DynamoConnectionRegistry};
use autocrew_shared::adapters::postgres::{self, PgEventLog, PgProjectStore, Pool};
use autocrew_shared::config::{AuthConfig, AwsConfig, ConfigError, Env, ProcessEnv, required};
use autocrew_shared::domain::ProjectId;
use autocrew_shared::domain::realtime::{ACTIONS, ClientMessage, ErrorCode, ServerMessage};
use autocrew_shared::ports::{
    ConnectionRegistry, EventLog, MAX_SUBSCRIPTIONS, ProjectStore, RegistryError, Session,
};
use autocrew_shared::services::Notifier;
use autocrew_shared::services::access::{KeyRing, now_secs};
use aws_config::SdkConfig;
use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::DateTime;
use std::sync::Arc;
use tracing::Instrument;

/// The WebSocket routes, one Lambda function each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsRoute {
    Connect,
    Disconnect,
    Default,
}

impl WsRoute {
    pub const ALL: [WsRoute; 3] = [WsRoute::Connect, WsRoute::Disconnect, WsRoute::Default];

    /// The route a binary serves (`ws-connect` → `Connect`).
    pub fn from_name(binary: &str) -> Option<WsRoute> {
        WsRoute::ALL.into_iter().find(|r| r.name() == binary)
    }

    /// The function's name, as in `template.yaml` and the binaries.
    pub fn name(self) -> &'static str {
        match self {
            WsRoute::Connect => "ws-connect",
            WsRoute::Disconnect => "ws-disconnect",
            WsRoute::Default => "ws-default",
        }
    }

    /// API Gateway's route key.
    pub fn route_key(self) -> &'static str {
        match self {
            WsRoute::Connect => "$connect",
            WsRoute::Disconnect => "$disconnect",
            WsRoute::Default => "$default",
        }
    }
}

/// The ports the WebSocket routes share.
#[derive(Clone)]
pub struct WsState {
    pub registry: Arc<dyn ConnectionRegistry>,
    pub keys: Arc<KeyRing>,
    pub projects: Arc<dyn ProjectStore>,
    pub events: Arc<dyn EventLog>,
    pub notifier: Notifier,
}

impl WsState {
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv).await
    }

    /// Reads `DATABASE_URL`, the AWS settings, `CONNECTIONS_TABLE`, `WEBSOCKET_CALLBACK_URL`
    /// and `JWT_SIGNING_SECRET`.
    pub async fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        let pool = postgres::connect(&adapters::database_config(env).await?)?;
        let sdk = aws::sdk_config(&AwsConfig::from_env(env)?).await;
        let keys = Arc::new(adapters::key_ring(&sdk, &pool, &AuthConfig::from_env(env)?).await?);
        Ok(Self::assemble(
            pool,
            &sdk,
            keys,
            &required(env, "CONNECTIONS_TABLE")?,
            &required(env, "WEBSOCKET_CALLBACK_URL")?,
        ))
    }

    pub fn assemble(
        pool: Pool,
        sdk: &SdkConfig,
        keys: Arc<KeyRing>,
        connections_table: &str,
        callback_url: &str,
    ) -> Self {
        let registry: Arc<dyn ConnectionRegistry> =
            Arc::new(DynamoConnectionRegistry::new(sdk, connections_table));
        let events: Arc<dyn EventLog> = Arc::new(PgEventLog::new(pool.clone()));
        let notifier = adapters::notifier(&pool, sdk, connections_table, callback_url);
        WsState {
            registry,
            keys,
            projects: Arc::new(PgProjectStore::new(pool)),
            events,
            notifier,
        }
    }
}

fn status(code: i64) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = code;
    response
}

/// Handles one WebSocket event for `route`.
pub async fn handle(
    state: &WsState,
    route: WsRoute,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let span = autocrew_shared::telemetry::invocation_span(route.name(), None);
    serve(state, route, event).instrument(span).await
}

async fn serve(
    state: &WsState,
    route: WsRoute,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let Some(connection) = event.request_context.connection_id.clone() else {
        return status(400);
    };
    let outcome = match route {
        WsRoute::Connect => connect(state, &connection, &event).await,
        WsRoute::Disconnect => state.registry.unregister(&connection).await.map(|()| 200),
        WsRoute::Default => {
            let body = event.body.as_deref().unwrap_or("");
            let served = default(state, &connection, body).await;
            if served.is_err() {
                let sorry = "the server could not serve this message; send it again";
                reply(
                    state,
                    &connection,
                    ServerMessage::error(ErrorCode::Unavailable, sorry),
                )
                .await;
            }
            served
        }
    };
    match outcome {
        Ok(code) => status(code),
        Err(e) => {
            tracing::error!(error = %e, connection, route = route.route_key(), "websocket route failed");
            status(500)
        }
    }
}

async fn connect(
    state: &WsState,
    connection: &str,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<i64, RegistryError> {
    let header = event
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let token = event
        .query_string_parameters
        .first("token")
        .or(header)
        .unwrap_or("")
        .trim();
    let verified = match state.keys.verify_until(token).await {
        Ok(verified) => verified,
        Err(e) => {
            tracing::info!(reason = %e, connection, "a connection was refused");
            return Ok(401);
        }
    };
    let session = Session {
        user: verified.user,
        expires_at: verified.expires_at,
    };
    match state.registry.register(connection, session).await {
        Ok(()) | Err(RegistryError::AlreadyRegistered(_)) => Ok(200),
        Err(e) => Err(e),
    }
}

/// Answers the client on its own connection.
async fn reply(state: &WsState, connection: &str, message: ServerMessage) {
    state
        .notifier
        .push_one(connection, message.to_text().as_bytes())
        .await;
}

/// A client's frame as a message, or the error frame that says what is wrong with it.
fn read_message(body: &str) -> Result<ClientMessage, (ErrorCode, String)> {
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| (ErrorCode::NotJson, format!("the frame is not JSON: {e}")))?;
    let action = value
        .get("action")
        .and_then(|a| a.as_str())
        .map(str::to_owned);
    if !action.as_deref().is_some_and(|a| ACTIONS.contains(&a)) {
        let said = action.map_or("no action".to_owned(), |a| format!("action {a:?}"));
        return Err((
            ErrorCode::UnknownAction,
            format!("{said}: send one of {}", ACTIONS.join(", ")),
        ));
    }
    let message: ClientMessage = serde_json::from_value(value).map_err(|e| {
        (
            ErrorCode::InvalidMessage,
            format!("{}: {e}", action.unwrap_or_default()),
        )
    })?;
    if let ClientMessage::Ping { id: Some(id) } = &message
        && id.chars().count() > 64
    {
        return Err((
            ErrorCode::InvalidMessage,
            "ping: id is longer than 64 characters".to_owned(),
        ));
    }
    Ok(message)
}

async fn default(state: &WsState, connection: &str, body: &str) -> Result<i64, RegistryError> {
    let Some(session) = state.registry.session(connection).await? else {
        // Forgotten (its token expired, or its $disconnect came first): nothing to serve.
        state.notifier.close_expired(connection).await;
        return Ok(200);
    };
    if session.expires_at <= now_secs() {
        state.notifier.close_expired(connection).await;
        return Ok(200);
    }
    let message = match read_message(body) {
        Ok(message) => message,
        Err((code, error)) => {
            reply(state, connection, ServerMessage::error(code, error)).await;
            return Ok(200);
        }
    };
    let answer = match message {
        ClientMessage::Subscribe {
            project_id,
            after_seq,
        } => return subscribe(state, connection, session, project_id, after_seq.max(0)).await,
        ClientMessage::Unsubscribe { project_id } => ServerMessage::Unsubscribed {
            project_id,
            followed: state.registry.unsubscribe(connection, project_id).await?,
        },
        ClientMessage::Ping { id } => ServerMessage::Pong { id },
        ClientMessage::Renew { token } => renew(state, connection, session, &token).await?,
    };
    reply(state, connection, answer).await;
    Ok(200)
}

/// A fresh token of the connection's own user moves its expiry.
async fn renew(
    state: &WsState,
    connection: &str,
    session: Session,
    token: &str,
) -> Result<ServerMessage, RegistryError> {
    let verified = match state.keys.verify_until(token).await {
        Ok(verified) if verified.user == session.user => verified,
        Ok(_) => {
            return Ok(ServerMessage::error(
                ErrorCode::InvalidToken,
                "renew: the token is another user's",
            ));
        }
        Err(e) => {
            return Ok(ServerMessage::error(
                ErrorCode::InvalidToken,
                format!("renew: {e}"),
            ));
        }
    };
    state
        .registry
        .renew(connection, verified.expires_at)
        .await?;
    let expires_at = i64::try_from(verified.expires_at)
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .unwrap_or_default();
    Ok(ServerMessage::Renewed { expires_at })
}

/// Follows `project` (the caller's own, within the limit), then replays its events after
/// `after` and says `subscribed`.
async fn subscribe(
    state: &WsState,
    connection: &str,
    session: Session,
    project: ProjectId,
    after: i64,
) -> Result<i64, RegistryError> {
    let owner = state
        .projects
        .project(project)
        .await
        .ok()
        .map(|p| p.user_id);
    if owner != Some(session.user) {
        let error = format!("project {project} not found");
        reply(
            state,
            connection,
            ServerMessage::error(ErrorCode::NotFound, error),
        )
        .await;
        return Ok(200);
    }
    let followed = state.registry.subscriptions(connection).await?;
    if !followed.contains(&project) && followed.len() >= MAX_SUBSCRIPTIONS {
        let error = format!(
            "this connection follows {MAX_SUBSCRIPTIONS} projects, the most it may: unsubscribe from one first"
        );
        let frame = ServerMessage::error(ErrorCode::TooManySubscriptions, error);
        reply(state, connection, frame).await;
        return Ok(200);
    }
    state.registry.subscribe(connection, project).await?;
    // Subscribed first, then replayed: an event appended in between is pushed live and
    // replayed; clients drop sequence numbers they already have.
    let mut last = after;
    loop {
        let page =
            state
                .events
                .since(project, last, 200)
                .await
                .map_err(|e| RegistryError::Backend {
                    action: "replay events",
                    source: Box::new(e),
                })?;
        for event in &page {
            let message = ServerMessage::Event {
                event: event.clone(),
            };
            reply(state, connection, message).await;
            last = event.seq;
        }
        if page.len() < 200 {
            break;
        }
    }
    reply(
        state,
        connection,
        ServerMessage::Subscribed {
            project_id: project,
            last_seq: last,
        },
    )
    .await;
    Ok(200)
}

/// The Lambda entry point for `route`.
pub async fn run_lambda(route: WsRoute) -> Result<(), lambda_runtime::Error> {
    autocrew_shared::telemetry::init();
    let state = WsState::from_env().await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let state = &state;
            async move { Ok::<_, lambda_runtime::Error>(handle(state, route, event.payload).await) }
        },
    ))
    .await
}

#[cfg(test)]
mod tests;
