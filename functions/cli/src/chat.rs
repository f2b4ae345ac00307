//! `autocrew chat PROJECT "message"`: asks the project's orchestrator and prints its reply
//! as it streams over the WebSocket; `--command` sends the message as a command instead (a
//! run, which `autocrew runs` lists).

use crate::args::SessionArgs;
use crate::session;
use anyhow::{Context, bail};
use autocrew_shared::domain::MessageId;
use autocrew_shared::domain::events::EventBody;
use autocrew_shared::domain::realtime::ServerMessage;
use autocrew_shared::domain::requests::NewMessage;
use futures::StreamExt;
use serde_json::Value;
use std::io::Write;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// How long a reply may take before the CLI stops waiting (it is still written).
const WAIT: Duration = Duration::from_secs(120);

pub async fn chat(
    project: &str,
    text: &str,
    as_command: bool,
    args: &SessionArgs,
) -> anyhow::Result<()> {
    let client = session::client(args)?;
    let project = project.trim();
    let path = format!("/projects/{project}/messages");
    if as_command {
        let started = client
            .post(&path, &message(text, true), "send the command")
            .await?;
        println!(
            "run {} started ({}); `autocrew runs --project {project}` lists it",
            started["run_id"].as_str().unwrap_or("?"),
            started["status"].as_str().unwrap_or("pending")
        );
        return Ok(());
    }
    // Only what comes after the question matters: no replay of the project's log.
    let mut socket = client.socket(project, i64::MAX / 2).await?;
    let asked = client
        .post(&path, &message(text, false), "send the message")
        .await?;
    let reply_id = asked["reply"]["id"].clone();
    let mut streamed = false;
    let mut reply: Option<Value> = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while reply.is_none() {
        let Ok(Some(Ok(Message::Text(frame)))) =
            tokio::time::timeout_at(deadline, socket.next()).await
        else {
            break;
        };
        let body = match serde_json::from_str::<ServerMessage>(&frame) {
            Ok(ServerMessage::Event { event }) => event.body,
            Ok(ServerMessage::Live { event }) => event.body,
            _ => continue,
        };
        let is_reply = |id: MessageId| reply_id.as_str() == Some(id.to_string().as_str());
        match body {
            EventBody::ReplyProgress(piece) if is_reply(piece.message_id) => {
                print!("{}", piece.delta);
                std::io::stdout().flush()?;
                streamed = true;
            }
            EventBody::MessagePosted(posted) if is_reply(posted.message.id) => {
                reply = Some(serde_json::to_value(&posted.message)?);
            }
            _ => {}
        }
    }
    // The socket may have missed the end (a reconnect, a slow reply): the thread has it.
    let reply = match reply {
        Some(reply) => reply,
        None => {
            let page = client
                .get(&format!("{path}?limit=20"), "read the thread")
                .await?;
            page["items"]
                .as_array()
                .and_then(|items| items.iter().find(|m| m["id"] == reply_id).cloned())
                .context("the reply is not in the thread")?
        }
    };
    match reply["status"].as_str() {
        Some("done") if streamed => println!(),
        Some("done") => println!("{}", reply["text"].as_str().unwrap_or("")),
        Some("failed") => bail!(
            "the orchestrator could not answer: {}",
            reply["error"].as_str().unwrap_or("no reason given")
        ),
        _ => bail!(
            "no reply within {} s; `autocrew chat {project} --show` reads the thread later",
            WAIT.as_secs()
        ),
    }
    Ok(())
}

/// `autocrew chat PROJECT --show`: the thread, oldest first (the last `limit` messages).
pub async fn show(project: &str, limit: u32, args: &SessionArgs) -> anyhow::Result<()> {
    let client = session::client(args)?;
    let page = client
        .get(
            &format!("/projects/{}/messages?limit={limit}", project.trim()),
            "read the thread",
        )
        .await?;
    let mut messages = page["items"].as_array().cloned().unwrap_or_default();
    messages.reverse();
    if messages.is_empty() {
        println!("no messages yet");
    }
    for m in &messages {
        let who = match m["author"].as_str() {
            Some("user") => "you",
            _ => "orchestrator",
        };
        let text = match m["status"].as_str() {
            Some("pending") => "(writing...)".to_owned(),
            Some("failed") => format!("(failed: {})", m["error"].as_str().unwrap_or("")),
            _ => m["text"].as_str().unwrap_or("").to_owned(),
        };
        let run = m["run_id"]
            .as_str()
            .map(|r| format!("  [started run {r}]"))
            .unwrap_or_default();
        println!("{who}: {text}{run}");
    }
    Ok(())
}

/// A message with the run's bounds left to their defaults.
fn message(text: &str, as_command: bool) -> NewMessage {
    NewMessage {
        text: text.to_owned(),
        as_command,
        amend_run_id: None,
        budget_usd: None,
        max_concurrency: None,
        deadline_minutes: None,
    }
}
