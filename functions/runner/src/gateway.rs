//! API Gateway, played locally: the HTTP API (each request becomes the payload v2 event the
//! route's function receives on AWS), the WebSocket API (`$connect`, `$default`,
//! `$disconnect` events, with `$connect` able to refuse), and the `@connections`
//! management API the functions push through.

use autocrew_api::{ApiState, Route};
use autocrew_ws::{WsRoute, WsState};
use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, get, on};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Open sockets, by connection id: what `@connections` writes to.
type Sockets = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>>;

/// What the gateway routes to.
#[derive(Clone)]
pub struct Gateway {
    pub api: ApiState,
    pub ws: WsState,
    sockets: Sockets,
}

impl Gateway {
    pub fn new(api: ApiState, ws: WsState) -> Self {
        Gateway {
            api,
            ws,
            sockets: Arc::default(),
        }
    }
}

fn now_epoch_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The payload v2 event API Gateway would send for this request.
fn http_event(
    method: &Method,
    route_path: &str,
    uri: &Uri,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    body: &Bytes,
) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), json!(v.to_str().ok()?))))
        .collect();
    let query = uri.query().unwrap_or("");
    let query_params: serde_json::Map<String, Value> = url_pairs(query)
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    let route_key = format!("{method} {route_path}");
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": uri.path(),
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "127.0.0.1", "domainPrefix": "local",
            "http": {"method": method.as_str(), "path": uri.path(), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": ""},
            "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": route_key, "stage": "$default",
            "time": chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S %z").to_string(), "timeEpoch": now_epoch_ms()
        },
        "isBase64Encoded": false
    });
    if !query_params.is_empty() {
        event["queryStringParameters"] = Value::Object(query_params);
    }
    if !params.is_empty() {
        event["pathParameters"] = json!(params);
    }
    // As API Gateway does: text as it came, anything else base64 (so bytes that are not
    // UTF-8 reach the function as they were sent).
    match std::str::from_utf8(body) {
        Ok("") => {}
        Ok(text) => event["body"] = json!(text),
        Err(_) => {
            use base64::Engine;
            event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
            event["isBase64Encoded"] = json!(true);
        }
    }
    event
}

/// `a=1&b=two%20words` → decoded pairs; an unreadable query gives none.
fn url_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(query).unwrap_or_default()
}

/// Calls the route's function with the event and turns its answer into an HTTP response.
async fn invoke_http(state: &Gateway, route: Route, event: Value) -> Response {
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("could not build the API Gateway event: {e}"),
            )
                .into_response();
        }
    };
    let handled = autocrew_api::handle(&state.api, route, request);
    let response = crate::invocation(route.name(), handled).await;
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Empty => Vec::new(),
        lambda_http::Body::Text(text) => text.into_bytes(),
        lambda_http::Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    (parts.status, parts.headers, bytes).into_response()
}

/// API Gateway's greedy parameter (`{path+}`) in axum's words (`{*path}`).
fn axum_path(path: &str) -> String {
    path.split('/')
        .map(
            |part| match part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
                Some(name) => format!("{{*{name}}}"),
                None => part.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The HTTP API's routes from the template, as `(method, path, route)`.
pub fn router(gateway: Gateway, http_routes: Vec<(String, String, Route)>) -> Router {
    let mut router = Router::new();
    for (method, path, route) in http_routes {
        let filter = match method.as_str() {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "DELETE" => MethodFilter::DELETE,
            _ => MethodFilter::PATCH,
        };
        let route_path = path.clone();
        router = router.route(
            &axum_path(&path),
            on(
                filter,
                move |State(gw): State<Gateway>,
                      method: Method,
                      uri: Uri,
                      headers: HeaderMap,
                      Path(params): Path<HashMap<String, String>>,
                      body: Bytes| {
                    let route_path = route_path.clone();
                    async move {
                        let event =
                            http_event(&method, &route_path, &uri, &headers, &params, &body);
                        invoke_http(&gw, route, event).await
                    }
                },
            ),
        );
    }
    router
        .route("/health", get(|| async { "ok" }))
        // The runner's own: what this process asked of AWS and how often it invoked each
        // function (not an API Gateway route).
        .route(
            "/metering",
            get(|| async { axum::Json(autocrew_shared::adapters::aws::metering::snapshot()) }),
        )
        .route("/ws", get(websocket))
        .route(
            "/@connections/{id}",
            get(connection_info)
                .post(post_to_connection)
                .delete(delete_connection),
        )
        .route(
            "/%40connections/{id}",
            get(connection_info)
                .post(post_to_connection)
                .delete(delete_connection),
        )
        .with_state(gateway)
}

/// A WebSocket route event, shaped as API Gateway sends it.
fn ws_event(
    route: WsRoute,
    connection: &str,
    query: &HashMap<String, String>,
    body: Option<&str>,
) -> Option<ApiGatewayWebsocketProxyRequest> {
    let event_type = match route {
        WsRoute::Connect => "CONNECT",
        WsRoute::Disconnect => "DISCONNECT",
        WsRoute::Default => "MESSAGE",
    };
    let mut event = json!({
        "headers": {"Host": "127.0.0.1"},
        "requestContext": {
            "routeKey": route.route_key(), "eventType": event_type, "messageDirection": "IN", "stage": "local",
            "connectedAt": now_epoch_ms(), "requestTimeEpoch": now_epoch_ms(), "identity": {"sourceIp": "127.0.0.1"},
            "requestId": uuid::Uuid::new_v4().to_string(), "domainName": "127.0.0.1", "connectionId": connection, "apiId": "local"
        },
        "isBase64Encoded": false
    });
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    serde_json::from_value(event).ok()
}

async fn websocket(
    State(gw): State<Gateway>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let connection = uuid::Uuid::new_v4().simple().to_string();
    let Some(event) = ws_event(WsRoute::Connect, &connection, &query, None) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let connect = autocrew_ws::handle(&gw.ws, WsRoute::Connect, event);
    let answer = crate::invocation(WsRoute::Connect.name(), connect).await;
    if answer.status_code != 200 {
        // API Gateway refuses the handshake with the status $connect returned.
        let status =
            StatusCode::from_u16(answer.status_code as u16).unwrap_or(StatusCode::FORBIDDEN);
        return status.into_response();
    }
    upgrade.on_upgrade(move |socket| serve_socket(gw, connection, socket))
}

async fn serve_socket(gw: Gateway, connection: String, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    if let Ok(mut sockets) = gw.sockets.lock() {
        sockets.insert(connection.clone(), tx);
    }
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        let text = match message {
            Message::Text(text) => text.to_string(),
            Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Message::Close(_) => break,
            _ => continue,
        };
        if let Some(event) = ws_event(WsRoute::Default, &connection, &HashMap::new(), Some(&text)) {
            let default = autocrew_ws::handle(&gw.ws, WsRoute::Default, event);
            crate::invocation(WsRoute::Default.name(), default).await;
        }
    }
    if let Ok(mut sockets) = gw.sockets.lock() {
        sockets.remove(&connection);
    }
    if let Some(event) = ws_event(WsRoute::Disconnect, &connection, &HashMap::new(), None) {
        let disconnect = autocrew_ws::handle(&gw.ws, WsRoute::Disconnect, event);
        crate::invocation(WsRoute::Disconnect.name(), disconnect).await;
    }
    writer.abort();
}

fn sender(gw: &Gateway, id: &str) -> Option<mpsc::UnboundedSender<Message>> {
    gw.sockets.lock().ok()?.get(id).cloned()
}

/// `POST @connections/{id}`: the body goes to the socket as a text frame; 410 if it is gone.
async fn post_to_connection(
    State(gw): State<Gateway>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match sender(&gw, &id) {
        Some(tx)
            if tx
                .send(Message::Text(
                    String::from_utf8_lossy(&body).into_owned().into(),
                ))
                .is_ok() =>
        {
            StatusCode::OK.into_response()
        }
        _ => gone(),
    }
}

async fn connection_info(State(gw): State<Gateway>, Path(id): Path<String>) -> Response {
    match sender(&gw, &id) {
        Some(_) => axum::Json(
            json!({"connectedAt": chrono::Utc::now(), "identity": {"sourceIp": "127.0.0.1"}}),
        )
        .into_response(),
        None => gone(),
    }
}

async fn delete_connection(State(gw): State<Gateway>, Path(id): Path<String>) -> Response {
    match sender(&gw, &id) {
        Some(tx) => {
            // API Gateway closes with 1000 whatever the reason; the `closing` frame the
            // server sent before says why.
            let _ = tx.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                code: 1000,
                reason: "".into(),
            })));
            StatusCode::NO_CONTENT.into_response()
        }
        None => gone(),
    }
}

/// API Gateway's answer for a connection that is not open.
fn gone() -> Response {
    (
        StatusCode::GONE,
        [("x-amzn-ErrorType", "GoneException")],
        axum::Json(json!({"message": "Gone"})),
    )
        .into_response()
}
