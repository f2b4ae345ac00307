//! Emitting an event: append it to the project's log (the durable part), then push it to
//! every connection following the project (best effort: a client that missed a push
//! catches up from the log with its last sequence number). Live-only messages (streamed
//! output) are pushed without being logged.

use crate::domain::events::{Event, EventBody, LiveEvent};
use crate::domain::realtime::ServerMessage;
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
        let connections = match self.registry.subscribers(project).await {
            Ok(connections) => connections,
            Err(e) => {
                tracing::warn!(error = %e, project = %project, "could not list followers");
                return;
            }
        };
        if connections.is_empty() {
            return;
        }
        let frame = ServerMessage::Live {
            event: LiveEvent {
                project_id: project,
                run_id: run,
                body,
                created_at: chrono::Utc::now(),
            },
        }
        .to_text();
        for connection in connections {
            self.push_one(&connection, frame.as_bytes()).await;
        }
    }

    /// Sends `event` to every connection following its project; forgets connections that
    /// are gone.
    pub async fn push_to_followers(&self, event: &Event) {
        let connections = match self.registry.subscribers(event.project_id).await {
            Ok(connections) => connections,
            Err(e) => {
                tracing::warn!(error = %e, project = %event.project_id, "could not list followers");
                return;
            }
        };
        let frame = ServerMessage::Event {
            event: event.clone(),
        }
        .to_text();
        for connection in connections {
            self.push_one(&connection, frame.as_bytes()).await;
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
