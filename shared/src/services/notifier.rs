//! Emitting an event: append it to the project's log (the durable part), then push it to
//! every connection following the project (best effort: a client that missed a push
//! catches up from the log with its last sequence number). Live-only messages (streamed
//! output) are pushed without being logged.

use crate::domain::events::{Event, EventBody, LiveEvent};
use crate::domain::realtime::{CLOSE_TOKEN_EXPIRED, ServerMessage};
use crate::domain::{ProjectId, RunId};
use crate::ports::{ConnectionRegistry, EventLog, PushError, RealtimePush, StoreError};

use std::sync::Arc;

/// Appends events and pushes them live.
#[derive(Clone)]
pub struct Notifier {
    events: Arc<dyn EventLog>,
    registry: Arc<dyn ConnectionRegistry>,
    push: Arc<dyn RealtimePush>,
}

impl Notifier {
    pub fn new(
        events: Arc<dyn EventLog>,
        registry: Arc<dyn ConnectionRegistry>,
        push: Arc<dyn RealtimePush>,
    ) -> Self {
        Notifier {
            events,
            registry,
            push,
        }
    }

    /// Appends the event (the log adds the run's tokens and cost so far to its payload),
    /// then pushes it. Only the append can fail the call.
    pub async fn emit(
        &self,
        project: ProjectId,
        run: Option<RunId>,
        body: EventBody,
    ) -> Result<Event, StoreError> {
        let event = self.events.append(project, run, body).await?;
        self.push_to_followers(&event).await;
        Ok(event)
    }

    /// Pushes a live-only message to the project's followers, without appending it to the
    /// log: it has no sequence number, and a client that misses it does not ask for it
    /// again. Streamed model output goes this way (the task's result keeps the whole text).
    pub async fn flash(&self, project: ProjectId, run: Option<RunId>, body: EventBody) {
        let frame = ServerMessage::Live {
            event: LiveEvent {
                project_id: project,
                run_id: run,
                body,
                created_at: chrono::Utc::now(),
            },
        };
        self.to_followers(project, &frame).await;
    }

    /// Sends `event` to every connection following its project; forgets connections that
    /// are gone.
    pub async fn push_to_followers(&self, event: &Event) {
        let frame = ServerMessage::Event {
            event: event.clone(),
        };
        self.to_followers(event.project_id, &frame).await;
    }

    /// Sends `frame` to the project's followers. A follower whose token expired gets the
    /// `closing` frame instead, and is closed and forgotten: a socket never outlives the
    /// token it opened with (or renewed to).
    async fn to_followers(&self, project: ProjectId, frame: &ServerMessage) {
        let followers = match self.registry.subscribers(project).await {
            Ok(followers) => followers,
            Err(e) => {
                tracing::warn!(error = %e, project = %project, "could not list followers");
                return;
            }
        };
        if followers.is_empty() {
            return;
        }
        let text = frame.to_text();
        let now = crate::services::access::now_secs();
        for follower in followers {
            if follower.expired(now) {
                self.close_expired(&follower.connection_id).await;
            } else {
                self.push_one(&follower.connection_id, text.as_bytes())
                    .await;
            }
        }
    }

    /// Says why, closes the connection and forgets it: its token expired.
    pub async fn close_expired(&self, connection: &str) {
        let closing = ServerMessage::Closing {
            code: CLOSE_TOKEN_EXPIRED,
            reason: "the access token expired; connect again with a fresh one".into(),
        };
        self.push_one(connection, closing.to_text().as_bytes())
            .await;
        if let Err(e) = self.push.close(connection).await
            && !matches!(e, PushError::Gone(_))
        {
            tracing::warn!(error = %e, connection, "could not close an expired connection");
        }
        if let Err(e) = self.registry.unregister(connection).await {
            tracing::warn!(error = %e, connection, "could not forget an expired connection");
        }
    }

    /// Sends raw bytes to one connection; forgets it if it is gone.
    pub async fn push_one(&self, connection: &str, body: &[u8]) {
        match self.push.post(connection, body).await {
            Ok(()) => {}
            Err(PushError::Gone(_)) => {
                if let Err(e) = self.registry.unregister(connection).await {
                    tracing::warn!(error = %e, connection, "could not forget a gone connection");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, connection, "push failed; the client can catch up from the log")
            }
        }
    }
}
