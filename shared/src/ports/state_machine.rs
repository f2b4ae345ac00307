//! Step Functions: runs' lifecycles, and the callbacks of the steps they wait on.

use super::BackendError;
use async_trait::async_trait;

/// Where an execution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

/// Why a state machine call failed.
#[derive(Debug, thiserror::Error)]
pub enum StateMachineError {
    /// The task token is unknown, already answered, or its wait timed out.
    #[error("the task token is no longer valid")]
    InvalidToken(#[source] BackendError),
    #[error("an execution named {name} already exists")]
    ExecutionExists { name: String },
    #[error("step functions failed to {action}")]
    Backend {
        action: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("step functions answered with an unknown status {0:?}")]
    UnknownStatus(String),
}

/// Starts executions and answers the `waitForTaskToken` steps they wait on.
#[async_trait]
pub trait StateMachine: Send + Sync {
    /// Starts an execution under an explicit, unique `name`; returns its ARN.
    async fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<String, StateMachineError>;
    /// The execution's status and, once it succeeded, its output.
    async fn describe(
        &self,
        execution_arn: &str,
    ) -> Result<(ExecutionStatus, Option<serde_json::Value>), StateMachineError>;
    async fn task_success(
        &self,
        token: &str,
        output: &serde_json::Value,
    ) -> Result<(), StateMachineError>;
    /// `error` is the stable name `Retry`/`Catch` match on; `cause` is for people.
    async fn task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), StateMachineError>;
    async fn heartbeat(&self, token: &str) -> Result<(), StateMachineError>;
    /// Stops a running execution; one that already ended (or never started) is left alone.
    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<(), StateMachineError>;
    /// The ARN of the execution named `name` of `state_machine_arn`, as Step Functions forms
    /// it (`...:stateMachine:M` → `...:execution:M:name`).
    fn execution_arn(&self, state_machine_arn: &str, name: &str) -> String {
        format!(
            "{}:{name}",
            state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
        )
    }
}
