//! A local HTTP server that answers with recorded provider responses, in order, and keeps
//! every request it received so tests can check the outgoing wire format.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One recorded answer.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (to provoke client timeouts).
    pub delay: Duration,
}

impl Recorded {
    /// A 200 with a JSON body read from `tests/recorded/<file>`.
    pub fn ok(file: &str) -> Recorded {
        Recorded::from_file(200, file)
    }

    pub fn from_file(status: u16, file: &str) -> Recorded {
        let path = format!("{}/recorded/{file}", env!("CARGO_MANIFEST_DIR"));
        let body = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| format!("missing recording {path}: {e}"));
        Recorded {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
            delay: Duration::ZERO,
        }
    }

    /// A JSON answer with `status` and `body` as given (for short error bodies).
    pub fn json(status: u16, body: &str) -> Recorded {
        Recorded {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    /// A 200 server-sent event stream read from `tests/recorded/<file>`.
    pub fn sse(file: &str) -> Recorded {
        let mut recorded = Recorded::from_file(200, file);
        recorded.headers = vec![("content-type".into(), "text/event-stream".into())];
        recorded
    }

    /// A 200 event stream with `body` as it is (to send broken streams).
    pub fn sse_body(body: &str) -> Recorded {
        Recorded {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Recorded {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Recorded {
        self.delay = delay;
        self
    }
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The query string, if there was one.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    /// The body as sent, to check numbers byte for byte.
    pub raw: String,
}

/// The running server: its base URL and what it received.
pub struct ReplayServer {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl ReplayServer {
    /// Serves `answers` in order on a free loopback port; past the last, 500.
    pub async fn start(answers: Vec<Recorded>) -> anyhow::Result<ReplayServer> {
        let queue = Arc::new(Mutex::new(VecDeque::from(answers)));
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (queue, log) = (queue.clone(), log.clone());
                async move {
                    let raw = String::from_utf8_lossy(&body).into_owned();
                    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    if let Ok(mut log) = log.lock() {
                        log.push(Received {
                            method: method.to_string(),
                            path: uri.path().to_owned(),
                            query: uri.query().map(str::to_owned),
                            headers,
                            body,
                            raw,
                        });
                    }
                    let answer = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(answer) = answer else {
                        return (StatusCode::INTERNAL_SERVER_ERROR, "no recorded answer left")
                            .into_response();
                    };
                    tokio::time::sleep(answer.delay).await;
                    let mut response: Response = answer.body.into_response();
                    *response.status_mut() = StatusCode::from_u16(answer.status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    for (name, value) in answer.headers {
                        if let (Ok(name), Ok(value)) =
                            (name.parse::<axum::http::HeaderName>(), value.parse())
                        {
                            response.headers_mut().insert(name, value);
                        }
                    }
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ReplayServer { url, received })
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}
