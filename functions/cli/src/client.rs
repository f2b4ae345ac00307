//! A client of the Autocrew API, as the mobile app uses it: HTTP for commands and reads,
//! a WebSocket for live events.

use anyhow::{Context, bail};
use autocrew_shared::domain::RunId;
use autocrew_shared::domain::events::{Event, EventBody, LiveEvent, RunSpend};
use autocrew_shared::domain::realtime::{ClientMessage, ServerMessage};
use autocrew_shared::domain::requests::{Login, RefreshBody, SignUp};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use tokio_tungstenite::tungstenite::Message;

/// A session's tokens: the short-lived access token every request carries, and the
/// refresh token that gets the next pair (rotated on each use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
}

impl Tokens {
    fn from_answer(answer: &Value) -> anyhow::Result<Self> {
        Ok(Tokens {
            access_token: answer["access_token"]
                .as_str()
                .context("no access_token in the answer")?
                .to_owned(),
            refresh_token: answer["refresh_token"].as_str().map(str::to_owned),
        })
    }

    /// Seconds until the access token expires, read from its payload (not verified: the
    /// server does that); `None` when it cannot be read.
    fn seconds_left(&self) -> Option<i64> {
        use base64::Engine;
        let payload = self.access_token.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?;
        let claims: Value = serde_json::from_slice(&bytes).ok()?;
        Some(claims["exp"].as_i64()? - chrono::Utc::now().timestamp())
    }
}

/// The body of a POST that takes none: `{}`.
#[derive(Serialize)]
pub struct NoBody {}

/// Keeps tokens a refresh gave (the CLI writes them to its session file).
type SaveTokens = dyn Fn(&Tokens) + Send + Sync;

/// The API at one base URL, as one user. Access tokens are refreshed by the client itself:
/// before a request when less than a minute is left, and once after a 401.
pub struct Client {
    http: reqwest::Client,
    base: String,
    tokens: std::sync::Mutex<Tokens>,
    /// Called with each new pair, so the session file keeps the current refresh token.
    on_refresh: Option<Box<SaveTokens>>,
}

/// Creates a user with `password` and returns a client acting as that user.
pub async fn sign_up(base: &str, email: &str, password: &str) -> anyhow::Result<Client> {
    let body = SignUp {
        email: email.to_owned(),
        password: password.to_owned(),
        display_name: "Autocrew CLI".into(),
    };
    session_from(base, "/auth/signup", &body, "sign up").await
}

/// Logs in and returns a client acting as that user.
pub async fn log_in(base: &str, email: &str, password: &str) -> anyhow::Result<Client> {
    let body = Login {
        email: email.to_owned(),
        password: password.to_owned(),
    };
    session_from(base, "/auth/login", &body, "log in").await
}

async fn session_from(
    base: &str,
    path: &str,
    body: &impl Serialize,
    action: &str,
) -> anyhow::Result<Client> {
    let base = base.trim_end_matches('/');
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .with_context(|| format!("the API at {base} did not answer"))?;
    let answer = answer(response, action).await?;
    Ok(Client {
        http,
        base: base.to_owned(),
        tokens: std::sync::Mutex::new(Tokens::from_answer(&answer)?),
        on_refresh: None,
    })
}

/// The body of a successful answer, or an error that says what the API said.
async fn answer(response: reqwest::Response, action: &str) -> anyhow::Result<Value> {
    let status = response.status();
    if status == reqwest::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
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
    /// A client acting with `tokens` (as the session file keeps them, or `--token`).
    pub fn new(base: &str, tokens: Tokens) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            tokens: std::sync::Mutex::new(tokens),
            on_refresh: None,
        }
    }

    /// Calls `save` with every new pair of tokens.
    pub fn on_refresh(mut self, save: impl Fn(&Tokens) + Send + Sync + 'static) -> Self {
        self.on_refresh = Some(Box::new(save));
        self
    }

    /// The current tokens.
    pub fn tokens(&self) -> Tokens {
        match self.tokens.lock() {
            Ok(tokens) => tokens.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The current access token.
    pub fn token(&self) -> String {
        self.tokens().access_token
    }

    /// The base URL of the API.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Trades the refresh token for a new pair; says so when there is none or it is refused.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let refresh_token = self
            .tokens()
            .refresh_token
            .context("the access token expired and there is no refresh token: log in again with `autocrew login`")?;
        let response = self
            .http
            .post(format!("{}/auth/refresh", self.base))
            .json(&RefreshBody { refresh_token })
            .send()
            .await?;
        let answer = answer(
            response,
            "refresh the session (log in again with `autocrew login`)",
        )
        .await?;
        let tokens = Tokens::from_answer(&answer)?;
        if let Some(save) = &self.on_refresh {
            save(&tokens);
        }
        match self.tokens.lock() {
            Ok(mut held) => *held = tokens,
            Err(poisoned) => *poisoned.into_inner() = tokens,
        }
        Ok(())
    }

    /// Refreshes first when the access token has less than a minute left.
    async fn fresh_token(&self) -> anyhow::Result<String> {
        let tokens = self.tokens();
        if tokens.refresh_token.is_some() && tokens.seconds_left().is_some_and(|left| left < 60) {
            self.refresh().await?;
        }
        Ok(self.token())
    }

    /// Sends `build(token)`; after a 401, refreshes once and sends it again.
    async fn send(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let response = build(&self.fresh_token().await?).send().await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED
            && self.tokens().refresh_token.is_some()
        {
            self.refresh().await?;
            return Ok(build(&self.token()).send().await?);
        }
        Ok(response)
    }

    /// POSTs `body` (one of the API's request types, or `NoBody`).
    pub async fn post(
        &self,
        path: &str,
        body: &(impl Serialize + Sync),
        action: &str,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let response = self
            .send(|token| self.http.post(&url).bearer_auth(token).json(body))
            .await?;
        answer(response, action).await
    }

    /// PATCHes `body` (one of the API's request types).
    pub async fn patch(
        &self,
        path: &str,
        body: &(impl Serialize + Sync),
        action: &str,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let response = self
            .send(|token| self.http.patch(&url).bearer_auth(token).json(body))
            .await?;
        answer(response, action).await
    }

    pub async fn delete(&self, path: &str, action: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let response = self
            .send(|token| self.http.delete(&url).bearer_auth(token))
            .await?;
        answer(response, action).await
    }

    pub async fn get(&self, path: &str, action: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let response = self
            .send(|token| self.http.get(&url).bearer_auth(token))
            .await?;
        answer(response, action).await
    }

    /// Opens the live stream and follows `project` from sequence `after`.
    pub async fn follow(&self, project: &str, after: i64) -> anyhow::Result<Stream> {
        Ok(Stream {
            socket: self.socket(project, after).await?,
            next_seq: after + 1,
            pending: BTreeMap::new(),
        })
    }

    /// The WebSocket, subscribed to `project`'s events after sequence `after` (and its
    /// live messages), as raw messages.
    pub async fn socket(&self, project: &str, after: i64) -> anyhow::Result<Socket> {
        let url = format!(
            "{}/ws?token={}",
            self.base.replacen("http", "ws", 1),
            self.fresh_token().await?
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("the WebSocket API refused the connection")?;
        let subscribe = ClientMessage::Subscribe {
            project_id: autocrew_shared::domain::ProjectId::parse("project", project)?,
            after_seq: after,
        };
        socket
            .send(Message::Text(serde_json::to_string(&subscribe)?.into()))
            .await?;
        Ok(socket)
    }
}

/// A WebSocket connection to the API.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Live events of one project, delivered in sequence order without gaps or repeats; live-only
/// messages (streamed output, which has no sequence number) as they come.
pub struct Stream {
    socket: Socket,
    next_seq: i64,
    /// Events that arrived ahead of a missing one (a live push racing the replay).
    pending: BTreeMap<i64, Event>,
}

/// An event as the stream delivers it: logged (in sequence) or live-only.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Logged(Event),
    Live(LiveEvent),
}

impl Received {
    pub fn run_id(&self) -> Option<RunId> {
        match self {
            Received::Logged(event) => event.run_id,
            Received::Live(event) => event.run_id,
        }
    }

    pub fn body(&self) -> &EventBody {
        match self {
            Received::Logged(event) => &event.body,
            Received::Live(event) => &event.body,
        }
    }

    /// The run's tokens and cost when the event was logged.
    pub fn spend(&self) -> Option<RunSpend> {
        match self {
            Received::Logged(event) => event.spend,
            Received::Live(_) => None,
        }
    }

    /// The log's sequence number (none for a live-only event).
    pub fn seq(&self) -> Option<i64> {
        match self {
            Received::Logged(event) => Some(event.seq),
            Received::Live(_) => None,
        }
    }

    /// The event as it came over the wire.
    pub fn to_value(&self) -> Value {
        match self {
            Received::Logged(event) => serde_json::to_value(event),
            Received::Live(event) => serde_json::to_value(event),
        }
        .unwrap_or(Value::Null)
    }
}

impl Stream {
    /// The next event in order if one is ready without waiting.
    pub fn ready(&mut self) -> Option<Received> {
        let event = self.pending.remove(&self.next_seq)?;
        self.next_seq += 1;
        Some(Received::Logged(event))
    }

    /// The next event in order; `None` when the socket closes.
    pub async fn next(&mut self) -> anyhow::Result<Option<Received>> {
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
            let message: ServerMessage = serde_json::from_str(&text).with_context(|| {
                format!("the server sent a message this CLI cannot read: {text}")
            })?;
            match message {
                ServerMessage::Event { event } => self.offer(event),
                // Live-only (streamed output): shown as it comes, outside the sequence.
                ServerMessage::Live { event } => return Ok(Some(Received::Live(event))),
                ServerMessage::Error { error, .. } => bail!("the server refused: {error}"),
                // The server closes next (the token expired): the caller opens it again.
                ServerMessage::Closing { .. } => return Ok(None),
                ServerMessage::Subscribed { .. }
                | ServerMessage::Unsubscribed { .. }
                | ServerMessage::Pong { .. }
                | ServerMessage::Renewed { .. } => {}
            }
        }
    }

    /// Offers an event fetched another way (the HTTP log) to fill a gap.
    pub fn offer(&mut self, event: Event) {
        if event.seq >= self.next_seq {
            self.pending.insert(event.seq, event);
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

    /// Opens the socket again with a fresh token, following on from the last event
    /// delivered: what a closed socket (an expired token, API Gateway's two-hour limit)
    /// needs. Events waiting ahead of a gap are kept.
    pub async fn reopen(&mut self, client: &Client, project: &str) -> anyhow::Result<()> {
        self.socket = client.socket(project, self.next_seq - 1).await?;
        Ok(())
    }
}
