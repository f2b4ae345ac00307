//! `StateMachine` on Step Functions.

use super::boxed;
use crate::ports::{ExecutionStatus, StateMachine, StateMachineError};
use async_trait::async_trait;
use aws_sdk_sfn::types::ExecutionStatus as SfnStatus;

/// `StateMachine` on Step Functions (or moto's, with execution switched on).
#[derive(Clone)]
pub struct SfnStateMachine {
    client: aws_sdk_sfn::Client,
}

impl SfnStateMachine {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SfnStateMachine {
            client: aws_sdk_sfn::Client::from_conf(
                aws_sdk_sfn::config::Builder::from(sdk)
                    .interceptor(super::metering::Metering)
                    .build(),
            ),
        }
    }

    /// The SDK client, for set-up code (creating state machines) that the port does not cover.
    pub fn client(&self) -> &aws_sdk_sfn::Client {
        &self.client
    }
}

fn failed(action: &'static str) -> impl FnOnce(crate::ports::BackendError) -> StateMachineError {
    move |source| StateMachineError::Backend { action, source }
}

fn to_json(value: &serde_json::Value) -> String {
    value.to_string()
}

#[async_trait]
impl StateMachine for SfnStateMachine {
    #[tracing::instrument(name = "sfn.start_execution", skip_all, fields(name = %name))]
    async fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<String, StateMachineError> {
        let out = self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(to_json(input))
            // X-Ray's header: on AWS the execution joins the caller's trace.
            .set_trace_header(crate::telemetry::current().map(|c| c.xray_header()))
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_already_exists())
                {
                    StateMachineError::ExecutionExists {
                        name: name.to_owned(),
                    }
                } else {
                    failed("start an execution")(boxed(e))
                }
            })?;
        Ok(out.execution_arn)
    }

    async fn describe(
        &self,
        execution_arn: &str,
    ) -> Result<(ExecutionStatus, Option<serde_json::Value>), StateMachineError> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| failed("describe an execution")(boxed(e)))?;
        let status = match out.status {
            SfnStatus::Running | SfnStatus::PendingRedrive => ExecutionStatus::Running,
            SfnStatus::Succeeded => ExecutionStatus::Succeeded,
            SfnStatus::Failed => ExecutionStatus::Failed,
            SfnStatus::TimedOut => ExecutionStatus::TimedOut,
            SfnStatus::Aborted => ExecutionStatus::Aborted,
            other => return Err(StateMachineError::UnknownStatus(other.as_str().to_owned())),
        };
        let output = match out.output {
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|e| failed("read an execution's output")(boxed(e)))?,
            ),
            None => None,
        };
        Ok((status, output))
    }

    #[tracing::instrument(name = "sfn.send_task_success", skip_all)]
    async fn task_success(
        &self,
        token: &str,
        output: &serde_json::Value,
    ) -> Result<(), StateMachineError> {
        self.client
            .send_task_success()
            .task_token(token)
            .output(to_json(output))
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s)
                    if s.is_invalid_token()
                        || s.is_task_does_not_exist()
                        || s.is_task_timed_out() =>
                {
                    StateMachineError::InvalidToken(boxed(e))
                }
                _ => failed("send task success")(boxed(e)),
            })?;
        Ok(())
    }

    #[tracing::instrument(name = "sfn.send_task_failure", skip_all)]
    async fn task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), StateMachineError> {
        self.client
            .send_task_failure()
            .task_token(token)
            .error(error)
            .cause(cause)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s)
                    if s.is_invalid_token()
                        || s.is_task_does_not_exist()
                        || s.is_task_timed_out() =>
                {
                    StateMachineError::InvalidToken(boxed(e))
                }
                _ => failed("send task failure")(boxed(e)),
            })?;
        Ok(())
    }

    async fn heartbeat(&self, token: &str) -> Result<(), StateMachineError> {
        self.client
            .send_task_heartbeat()
            .task_token(token)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s)
                    if s.is_invalid_token()
                        || s.is_task_does_not_exist()
                        || s.is_task_timed_out() =>
                {
                    StateMachineError::InvalidToken(boxed(e))
                }
                _ => failed("send a heartbeat")(boxed(e)),
            })?;
        Ok(())
    }

    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<(), StateMachineError> {
        let stopped = self
            .client
            .stop_execution()
            .execution_arn(execution_arn)
            .cause(cause)
            .send()
            .await;
        match stopped {
            Ok(_) => Ok(()),
            // Never started, or already gone: nothing to stop.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_does_not_exist()) =>
            {
                Ok(())
            }
            Err(e) => Err(failed("stop an execution")(boxed(e))),
        }
    }
}
