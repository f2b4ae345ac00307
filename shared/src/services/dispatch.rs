//! Dispatch: Postgres decides which tasks are ready (one transaction, within the run's
//! concurrency limit, highest priority first); SQS delivers each to its agent's queue.

use super::messages::TaskMessage;
use super::notifier::Notifier;
use crate::config::{ConfigError, Env, required};
use crate::domain::records::Task;
use crate::domain::{AgentKind, EventKind, RunId};
use crate::ports::{Queue, QueueError, StoreError, TaskStore};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// The queue of each worker agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentQueues(HashMap<AgentKind, String>);

impl AgentQueues {
    /// Reads `DEVELOPER_QUEUE_URL`, `MARKETER_QUEUE_URL`, `SALES_QUEUE_URL`,
    /// `DESIGNER_QUEUE_URL` and `OPS_QUEUE_URL`.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let mut queues = HashMap::new();
        for &agent in AgentKind::WORKERS {
            queues.insert(agent, required(env, Self::variable(agent))?);
        }
        Ok(AgentQueues(queues))
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
        AgentQueues(queues)
    }

    pub fn url(&self, agent: AgentKind) -> Option<&str> {
        self.0.get(&agent).map(String::as_str)
    }
}

/// Why dispatching stopped. Tasks already sent stay sent; the failing one is ready again.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("no queue is configured for agent {0}")]
    NoQueue(AgentKind),
}

/// Releases ready tasks to their agents.
#[derive(Clone)]
pub struct Dispatcher {
    tasks: Arc<dyn TaskStore>,
    queue: Arc<dyn Queue>,
    queues: AgentQueues,
    notifier: Notifier,
}

impl Dispatcher {
    pub fn new(
        tasks: Arc<dyn TaskStore>,
        queue: Arc<dyn Queue>,
        queues: AgentQueues,
        notifier: Notifier,
    ) -> Self {
        Dispatcher {
            tasks,
            queue,
            queues,
            notifier,
        }
    }

    /// Claims what the run can start now and sends each task to its agent's queue. Each
    /// task's `task_queued` event is appended before its message is sent, so the log never
    /// shows a task started before it was queued. A task whose send fails goes back to
    /// `ready` (the next dispatch of the run sends it again), as do the tasks after it.
    pub async fn dispatch(&self, run: RunId) -> Result<Vec<Task>, DispatchError> {
        let claimed = self.tasks.claim_ready(run).await?;
        let mut sent = Vec::with_capacity(claimed.len());
        let mut pending = claimed.into_iter();
        while let Some(task) = pending.next() {
            let payload = json!({
                "task_id": task.id, "key": task.key, "agent": task.agent,
                "title": task.title, "priority": task.priority
            });
            let outcome = match self
                .notifier
                .emit(task.project_id, Some(run), EventKind::TaskQueued, payload)
                .await
            {
                Ok(_) => self.send(&task).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = outcome {
                self.tasks.unclaim(task.id).await?;
                for rest in pending {
                    self.tasks.unclaim(rest.id).await?;
                }
                return Err(e);
            }
            sent.push(task);
        }
        Ok(sent)
    }

    async fn send(&self, task: &Task) -> Result<(), DispatchError> {
        let url = self
            .queues
            .url(task.agent)
            .ok_or(DispatchError::NoQueue(task.agent))?;
        let body = json!(TaskMessage {
            run_id: task.run_id,
            task_id: task.id
        })
        .to_string();
        self.queue.send(url, &body).await?;
        Ok(())
    }
}
