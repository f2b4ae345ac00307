//! The WebSocket API, with API Gateway's semantics: `$connect` registers the connection of
//! a caller with a valid access token, the same JWT the HTTP API takes, as `?token=` (what
//! browsers can send) or `Authorization: Bearer` (anything but 200 refuses it), `$disconnect` forgets it, and
//! `$default` takes the client's messages. The one message today is
//! `{"action": "subscribe", "project_id": "...", "after_seq": N}`: it follows the project
//! and replays every event after `N`, so a client that reconnects misses nothing.

use autocrew_shared::adapters;
use autocrew_shared::adapters::aws::{self, DynamoConnectionRegistry};
use autocrew_shared::adapters::postgres::{self, PgEventLog, PgProjectStore, Pool};
use autocrew_shared::config::{AuthConfig, AwsConfig, ConfigError, Env, ProcessEnv, required};
use autocrew_shared::domain::realtime::{ClientMessage, ServerMessage};
use autocrew_shared::ports::{ConnectionRegistry, EventLog, ProjectStore, RegistryError};
use autocrew_shared::services::Notifier;
use autocrew_shared::services::access::KeyRing;
use aws_config::SdkConfig;
use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use std::sync::Arc;

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
    let Some(connection) = event.request_context.connection_id.clone() else {
        return status(400);
    };
    let outcome = match route {
        WsRoute::Connect => connect(state, &connection, &event).await,
        WsRoute::Disconnect => state.registry.unregister(&connection).await.map(|()| 200),
        WsRoute::Default => default(state, &connection, event.body.as_deref().unwrap_or("")).await,
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
    let user = match state.keys.verify(token).await {
        Ok(user) => user,
        Err(e) => {
            tracing::info!(reason = %e, connection, "a connection was refused");
            return Ok(401);
        }
    };
    match state.registry.register(connection, user).await {
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

async fn default(state: &WsState, connection: &str, body: &str) -> Result<i64, RegistryError> {
    let (project, after) = match serde_json::from_str::<ClientMessage>(body) {
        Ok(ClientMessage::Subscribe {
            project_id,
            after_seq,
        }) => (project_id, after_seq.max(0)),
        Err(e) => {
            reply(
                state,
                connection,
                ServerMessage::Error {
                    error: format!("unreadable message: {e}"),
                },
            )
            .await;
            return Ok(200);
        }
    };
    let owner = state
        .projects
        .project(project)
        .await
        .ok()
        .map(|p| p.user_id);
    if owner.is_none() || owner != state.registry.user_of(connection).await? {
        reply(
            state,
            connection,
            ServerMessage::Error {
                error: format!("project {project} not found"),
            },
        )
        .await;
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
