//! The relay: publishes what a committed state change sends out. Events are pushed live;
//! outbox entries are sent (to SQS or Step Functions) and deleted once sent. What fails to
//! send stays in the outbox, where the reconciler finds it.

use super::notifier::Notifier;
use crate::config::{ConfigError, Env, optional, required};
use crate::domain::AgentKind;
use crate::domain::messages::{OutboxEntry, Outgoing};
use crate::ports::{
    Effects, OutboxStore, Queue, QueueError, RunStore, StateMachine, StateMachineError, StoreError,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// The queue of each agent (the orchestrator's is the plan queue), and the chat queue
/// where the orchestrator answers conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentQueues {
    agents: HashMap<AgentKind, String>,
    chat: Option<String>,
    notices: Option<String>,
}

impl AgentQueues {
    /// Reads `DEVELOPER_QUEUE_URL`, `MARKETER_QUEUE_URL`, `SALES_QUEUE_URL`,
    /// `DESIGNER_QUEUE_URL`, `OPS_QUEUE_URL` and, if set, `PLAN_QUEUE_URL`,
    /// `CHAT_QUEUE_URL` and `NOTICE_QUEUE_URL`.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let mut queues = HashMap::new();
        for &agent in AgentKind::WORKERS {
            queues.insert(agent, required(env, Self::variable(agent))?);
        }
        if let Some(url) = optional(env, Self::variable(AgentKind::Orchestrator)) {
            queues.insert(AgentKind::Orchestrator, url);
        }
        Ok(AgentQueues {
            agents: queues,
            chat: optional(env, "CHAT_QUEUE_URL"),
            notices: optional(env, "NOTICE_QUEUE_URL"),
        })
    }

    /// The environment variable holding `agent`'s queue URL.
    pub fn variable(agent: AgentKind) -> &'static str {
        match agent {
            AgentKind::Developer => "DEVELOPER_QUEUE_URL",
            AgentKind::Marketer => "MARKETER_QUEUE_URL",
            AgentKind::Sales => "SALES_QUEUE_URL",
            AgentKind::Designer => "DESIGNER_QUEUE_URL",
            AgentKind::Ops => "OPS_QUEUE_URL",
            AgentKind::Orchestrator => "PLAN_QUEUE_URL",
        }
    }

    pub fn new(queues: HashMap<AgentKind, String>) -> Self {
        AgentQueues {
            agents: queues,
            chat: None,
            notices: None,
        }
    }

    pub fn url(&self, agent: AgentKind) -> Option<&str> {
        self.agents.get(&agent).map(String::as_str)
    }

    /// The chat queue's URL, if configured.
    pub fn chat(&self) -> Option<&str> {
        self.chat.as_deref()
    }

    /// The notice queue's URL (the deliver step's), if configured.
    pub fn notices(&self) -> Option<&str> {
        self.notices.as_deref()
    }
}

/// Why one message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    StateMachine(#[from] StateMachineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a message could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("no queue is configured for agent {0}")]
    NoQueue(AgentKind),
    #[error("no chat queue is configured (CHAT_QUEUE_URL)")]
    NoChatQueue,
    #[error("no state machine is configured (STATE_MACHINE_ARN)")]
    NoStateMachine,
    #[error("no job-watch state machine is configured (WATCH_STATE_MACHINE_ARN)")]
    NoWatchStateMachine,
}

/// Sends outbox entries and pushes events.
#[derive(Clone)]
pub struct Relay {
    pub outbox: Arc<dyn OutboxStore>,
    pub queue: Arc<dyn Queue>,
    pub state_machine: Arc<dyn StateMachine>,
    pub runs: Arc<dyn RunStore>,
    pub queues: AgentQueues,
    pub state_machine_arn: Option<String>,
    /// `WATCH_STATE_MACHINE_ARN`: where long jobs' watch executions start.
    pub watch_state_machine_arn: Option<String>,
    pub notifier: Notifier,
}

#[async_trait::async_trait]
impl crate::ports::Publisher for Relay {
    async fn publish(&self, effects: Effects) {
        Relay::publish(self, effects).await;
    }
}

impl Relay {
    /// Sends the entries of a committed change, then pushes its events. Never fails: what
    /// was not sent is still in the outbox for the reconciler. The messages go first: they
    /// move the run on, while a client that misses a push catches up from the log.
    pub async fn publish(&self, effects: Effects) {
        self.deliver(&effects.outbox).await;
        for event in &effects.events {
            self.notifier.push_to_followers(event).await;
        }
    }

    /// Sends `entries` in order and deletes those sent; returns how many were sent.
    pub async fn deliver(&self, entries: &[OutboxEntry]) -> usize {
        let mut sent = Vec::with_capacity(entries.len());
        for entry in entries {
            // Sent in the trace it was written in (the reconciler sends from another).
            let span = match &entry.traceparent {
                Some(traceparent) => {
                    tracing::info_span!("relay", traceparent = traceparent.as_str(), id = entry.id)
                }
                None => tracing::info_span!("relay", id = entry.id),
            };
            match self.send(&entry.message).instrument(span).await {
                Ok(()) => sent.push(entry.id),
                Err(e) => {
                    tracing::warn!(id = entry.id, error = %e, "an outbox message was not sent; the reconciler will");
                    if let Err(e) = self.outbox.failed(entry.id, &e.to_string()).await {
                        tracing::warn!(id = entry.id, error = %e, "could not record the failed send");
                    }
                }
            }
        }
        if let Err(e) = self.outbox.delivered(&sent).await {
            // They will be sent again; every consumer is idempotent.
            tracing::warn!(error = %e, "sent outbox entries could not be deleted");
        }
        sent.len()
    }

    /// Sends what the relay after commit did not: entries older than `age`, at most
    /// `limit`. Returns how many were found and how many sent.
    pub async fn redeliver(&self, age: Duration, limit: u32) -> Result<(usize, usize), StoreError> {
        let due = self.outbox.due(age, limit).await?;
        let sent = self.deliver(&due).await;
        Ok((due.len(), sent))
    }

    /// Sends one message now, outside the outbox: for messages whose loss costs nothing
    /// because their sender sends them again (the sweep's wake-up of the deliver step).
    pub async fn send_now(&self, message: &Outgoing) -> Result<(), RelayError> {
        self.send(message).await
    }

    async fn send(&self, message: &Outgoing) -> Result<(), RelayError> {
        match message {
            Outgoing::Task {
                agent,
                message,
                delay_secs,
            } => {
                let url = self.queues.url(*agent).ok_or(RelayError::NoQueue(*agent))?;
                let body = serde_json::to_string(message)?;
                let delay = Duration::from_secs(u64::from(*delay_secs));
                self.queue.send_delayed(url, &body, delay).await?;
            }
            Outgoing::Replan { message } => {
                let agent = AgentKind::Orchestrator;
                let url = self.queues.url(agent).ok_or(RelayError::NoQueue(agent))?;
                let body = serde_json::to_string(message)?;
                self.queue.send_delayed(url, &body, Duration::ZERO).await?;
            }
            Outgoing::Reply { message } => {
                let url = self.queues.chat().ok_or(RelayError::NoChatQueue)?;
                let body = serde_json::to_string(message)?;
                self.queue.send_delayed(url, &body, Duration::ZERO).await?;
            }
            Outgoing::DeliverNotices => match self.queues.notices() {
                Some(url) => {
                    self.queue.send_delayed(url, "{}", Duration::ZERO).await?;
                }
                // Without the deliver step's queue (a test's partial stack), the notices
                // wait for the sweep, which finds them due.
                None => tracing::debug!("no NOTICE_QUEUE_URL: notices wait for the sweep"),
            },
            Outgoing::TaskSuccess { token, output } => {
                answered(self.state_machine.task_success(token, output).await)?;
            }
            Outgoing::TaskFailure {
                token,
                error,
                cause,
            } => {
                answered(self.state_machine.task_failure(token, error, cause).await)?;
            }
            Outgoing::StartExecution {
                run_id,
                name,
                input,
            } => {
                let machine = self
                    .state_machine_arn
                    .as_deref()
                    .ok_or(RelayError::NoStateMachine)?;
                let input = serde_json::to_value(input)?;
                let arn = match self.state_machine.start(machine, name, &input).await {
                    Ok(arn) => arn,
                    // Started by an earlier send whose deletion was lost.
                    Err(StateMachineError::ExecutionExists { .. }) => {
                        self.state_machine.execution_arn(machine, name)
                    }
                    Err(e) => return Err(e.into()),
                };
                self.runs.set_execution_arn(*run_id, &arn).await?;
            }
            Outgoing::StartWatch { name, input } => {
                let machine = self
                    .watch_state_machine_arn
                    .as_deref()
                    .ok_or(RelayError::NoWatchStateMachine)?;
                let input = serde_json::to_value(input)?;
                match self.state_machine.start(machine, name, &input).await {
                    // Started by an earlier send whose deletion was lost.
                    Ok(_) | Err(StateMachineError::ExecutionExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Outgoing::StopExecution { name, cause } => {
                let machine = self
                    .state_machine_arn
                    .as_deref()
                    .ok_or(RelayError::NoStateMachine)?;
                let arn = self.state_machine.execution_arn(machine, name);
                self.state_machine.stop(&arn, cause).await?;
            }
        }
        Ok(())
    }
}

/// A token answered twice (a message sent twice), or whose wait ended, is not an error.
fn answered(result: Result<(), StateMachineError>) -> Result<(), StateMachineError> {
    match result {
        Ok(()) | Err(StateMachineError::InvalidToken(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
