//! A client of the Autocrew API, as the mobile app uses it: HTTP for commands and reads,
//! a WebSocket for live events.

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tokio_tungstenite::tungstenite::Message;

/// The API at one base URL, as one user.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Creates a user and returns a client acting as that user.
pub async fn sign_up(base: &str, email: &str) -> anyhow::Result<Client> {
    let http = reqwest::Client::new();
    let body = json!({"email": email, "display_name": "Autocrew CLI"});
    let response = http
        .post(format!("{base}/users"))
        .json(&body)
        .send()
        .await
        .context("the API did not answer")?;
    let created = answer(response, "create a user").await?;
    let token = created["token"]
        .as_str()
        .context("no token in the answer")?
        .to_owned();
    Ok(Client {
        http,
        base: base.trim_end_matches('/').to_owned(),
        token,
    })
}

/// The body of a successful answer, or an error that says what the API said.
async fn answer(response: reqwest::Response, action: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "could not {action}: {status} {}",
            body["error"].as_str().unwrap_or("")
        );
    }
    Ok(body)
}

impl Client {
    /// A client acting with `token` (as `autocrew run` saved it, or `--token`).
    pub fn new(base: &str, token: &str) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// The bearer token this client acts with.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The base URL of the API.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn post(&self, path: &str, body: Value, action: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        answer(response, action).await
    }

    pub async fn get(&self, path: &str, action: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        answer(response, action).await
    }

    /// Opens the live stream and follows `project` from sequence `after`.
    pub async fn follow(&self, project: &str, after: i64) -> anyhow::Result<Stream> {
        let url = format!(
            "{}/ws?token={}",
            self.base.replacen("http", "ws", 1),
            self.token
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("the WebSocket API refused the connection")?;
        let subscribe =
            json!({"action": "subscribe", "project_id": project, "after_seq": after}).to_string();
        socket.send(Message::Text(subscribe.into())).await?;
        Ok(Stream {
            socket,
            next_seq: after + 1,
            pending: BTreeMap::new(),
        })
    }
}

/// Live events of one project, delivered in sequence order without gaps or repeats; live-only
/// messages (streamed output, which has no sequence number) as they come.
pub struct Stream {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_seq: i64,
    /// Events that arrived ahead of a missing one (a live push racing the replay).
    pending: BTreeMap<i64, Value>,
}

impl Stream {
    /// The next event in order if one is ready without waiting.
    pub fn ready(&mut self) -> Option<Value> {
        let event = self.pending.remove(&self.next_seq)?;
        self.next_seq += 1;
        Some(event)
    }

    /// The next event in order; `None` when the socket closes.
    pub async fn next(&mut self) -> anyhow::Result<Option<Value>> {
        loop {
            if let Some(event) = self.ready() {
                return Ok(Some(event));
            }
            let Some(message) = self.socket.next().await else {
                return Ok(None);
            };
            let text = match message? {
                Message::Text(text) => text.to_string(),
                Message::Close(_) => return Ok(None),
                _ => continue,
            };
            let message: Value = serde_json::from_str(&text)
                .context("the server sent something that is not JSON")?;
            match message["type"].as_str() {
                Some("event") => {
                    let seq = message["event"]["seq"].as_i64().unwrap_or(0);
                    if seq >= self.next_seq {
                        self.pending.insert(seq, message["event"].clone());
                    }
                }
                // Live-only (streamed output): shown as it comes, outside the sequence.
                Some("live") => return Ok(Some(message["event"].clone())),
                Some("error") => bail!(
                    "the server refused: {}",
                    message["error"].as_str().unwrap_or("")
                ),
                _ => {}
            }
        }
    }

    /// Offers an event fetched another way (the HTTP log) to fill a gap.
    pub fn offer(&mut self, event: Value) {
        let seq = event["seq"].as_i64().unwrap_or(0);
        if seq >= self.next_seq {
            self.pending.insert(seq, event);
        }
    }

    /// Accepts that the events before the first one waiting were pruned (retention): the
    /// log, asked from the expected sequence on, answered from a later one.
    pub fn skip_pruned(&mut self, first_in_log: i64) {
        if first_in_log > self.next_seq {
            self.next_seq = first_in_log;
        }
    }

    /// The sequence number the stream expects next.
    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }
}
