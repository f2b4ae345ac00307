//! The agent steps. Each is its own Lambda function fed by its own SQS queue; they share
//! this library. A step handles each record of a batch on its own and reports the records
//! that failed, so only those are retried (and, past the redrive limit, land in the DLQ).

mod acting;
mod actions;
mod agent;
mod agent_loop;
mod build;
mod callback;
pub mod context;
mod daily;
mod deploy;
mod finish;
mod heartbeat;
mod images;
mod outputs;
mod outreach;
mod plan;
mod progress;
mod push;
mod reply;
mod revise;
mod turn_rules;
mod watch;

pub use autocrew_shared::config::Liveness;
use autocrew_shared::domain::AgentKind;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
pub use context::{StepContext, StepSettings};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Which step a function runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The orchestrator turns the run's command into a checked plan.
    Plan,
    /// Keeps the execute token and releases the first ready tasks.
    Execute,
    /// One agent runs one task.
    Agent(AgentKind),
    /// Writes the run's summary artifact.
    Compile,
    /// Ends the run (succeeded or failed) and tells the clients.
    Notify,
    /// The orchestrator answers a conversation message.
    Reply,
    /// One look at a long job (an app build) for its job-watch execution.
    Watch,
    /// Sends the push notifications and webhook deliveries due.
    Deliver,
}

impl Step {
    /// Every step.
    pub fn all() -> Vec<Step> {
        let mut steps = vec![
            Step::Plan,
            Step::Execute,
            Step::Compile,
            Step::Notify,
            Step::Reply,
            Step::Watch,
            Step::Deliver,
        ];
        steps.extend(AgentKind::WORKERS.iter().map(|&a| Step::Agent(a)));
        steps
    }

    /// The step a binary runs (`step-plan` → `Plan`).
    pub fn from_name(binary: &str) -> Option<Step> {
        Step::all().into_iter().find(|s| s.name() == binary)
    }

    /// The function's name, as in `template.yaml` and the binaries.
    pub fn name(self) -> String {
        match self {
            Step::Plan => "step-plan".into(),
            Step::Execute => "step-execute".into(),
            Step::Agent(agent) => format!("step-{agent}"),
            Step::Compile => "step-compile".into(),
            Step::Notify => "step-notify".into(),
            Step::Reply => "step-reply".into(),
            Step::Watch => "step-watch".into(),
            Step::Deliver => "step-deliver".into(),
        }
    }
}

/// What handling one record can end in.
#[derive(Debug)]
pub enum RecordError {
    /// Try again after `backoff` (the message becomes visible again then).
    Retry { error: String, backoff: Duration },
    /// The message cannot be handled (unreadable): let SQS retry it and, past the redrive
    /// limit, move it to the DLQ where it can be inspected.
    Poison(String),
}

/// When the invocation must have answered: Lambda stops it then. An agent step hands its
/// task on to a fresh invocation before a model turn that might not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// `timeout` from now (the local runner, from the function's `Timeout`; tests).
    pub fn after(timeout: Duration) -> Self {
        Deadline(Instant::now() + timeout)
    }

    /// From the Lambda context's deadline, in milliseconds since the Unix epoch.
    pub fn from_epoch_millis(millis: u64) -> Self {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(millis);
        let left = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        Deadline::after(left)
    }

    /// Time left before the invocation is stopped.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// Handles a batch, each record in its own span, within the invocation's `deadline`;
/// returns the records to retry.
pub async fn handle_batch(
    ctx: &StepContext,
    step: Step,
    event: SqsEvent,
    deadline: Deadline,
) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span =
            autocrew_shared::telemetry::invocation_span(&step.name(), trace_of(ctx, &record).await);
        let record_span = tracing::info_span!(parent: &span, "record", message_id = %id);
        if let Err(e) = handle_record(ctx, step, &record, deadline)
            .instrument(record_span)
            .instrument(span)
            .await
        {
            match &e {
                RecordError::Retry { error, backoff } => {
                    tracing::warn!(message_id = %id, error, ?backoff, "record will be retried");
                    if let (Some(queue), Some(receipt)) =
                        (queue_name(&record), record.receipt_handle.as_deref())
                    {
                        ctx.delay_retry(&queue, receipt, *backoff).await;
                    }
                }
                RecordError::Poison(error) => {
                    tracing::error!(message_id = %id, error, "unreadable record")
                }
            }
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failures.push(failure);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

async fn handle_record(
    ctx: &StepContext,
    step: Step,
    record: &SqsMessage,
    deadline: Deadline,
) -> Result<(), RecordError> {
    let body = record
        .body
        .as_deref()
        .ok_or_else(|| RecordError::Poison("the message has no body".into()))?;
    match step {
        Step::Plan => plan::handle(ctx, parse(body)?, record.receipt_handle.as_deref()).await,
        Step::Execute => callback::execute(ctx, parse(body)?).await,
        Step::Agent(agent) => {
            let message = parse(body)?;
            agent::handle(
                ctx,
                agent,
                message,
                (record.receipt_handle.as_deref(), deadline),
            )
            .await
        }
        Step::Compile => finish::compile(ctx, parse(body)?).await,
        Step::Notify => finish::notify(ctx, parse(body)?).await,
        Step::Reply => reply::handle(ctx, parse(body)?, delivery(record)).await,
        Step::Watch => watch::handle(ctx, parse(body)?).await,
        // The body says nothing: each message means "deliver what is due".
        Step::Deliver => deliver(ctx, deadline).await,
    }
}

/// Sends the notices due within the invocation's time, keeping 10 s to answer.
async fn deliver(ctx: &StepContext, deadline: Deadline) -> Result<(), RecordError> {
    let budget = deadline.remaining().saturating_sub(Duration::from_secs(10));
    let report = ctx
        .deliverer
        .deliver_due(budget)
        .await
        .map_err(|e| RecordError::Retry {
            error: e.to_string(),
            backoff: Duration::from_secs(10),
        })?;
    tracing::info!(?report, "notices delivered");
    Ok(())
}

/// The trace a record continues: its `traceparent` attribute (what our relay and every
/// SQS send of ours set), else its run's (the state machine's messages carry no attribute
/// of ours).
async fn trace_of(
    ctx: &StepContext,
    record: &SqsMessage,
) -> Option<autocrew_shared::telemetry::TraceContext> {
    use autocrew_shared::telemetry::TraceContext;
    let attribute = record
        .message_attributes
        .get(autocrew_shared::adapters::aws::TRACEPARENT)
        .and_then(|a| a.string_value.as_deref())
        .and_then(TraceContext::parse_traceparent);
    if attribute.is_some() {
        return attribute;
    }
    #[derive(serde::Deserialize)]
    struct OfRun {
        run_id: autocrew_shared::domain::RunId,
    }
    let run = serde_json::from_str::<OfRun>(record.body.as_deref()?)
        .ok()?
        .run_id;
    let traceparent = ctx.runs.traceparent(run).await.ok()??;
    TraceContext::parse_traceparent(&traceparent)
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, RecordError> {
    serde_json::from_str(body).map_err(|e| {
        RecordError::Poison(format!("the message body is not a valid step message: {e}"))
    })
}

/// The queue name of a record, from its event source ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`).
fn queue_name(record: &SqsMessage) -> Option<String> {
    record
        .event_source_arn
        .as_deref()?
        .rsplit(':')
        .next()
        .map(str::to_owned)
}

/// The Lambda entry point for `step`: tracing, configuration, clients, then the runtime.
pub async fn run_lambda(step: Step) -> Result<(), lambda_runtime::Error> {
    autocrew_shared::telemetry::init();
    let ctx = StepContext::from_env().await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let ctx = &ctx;
            let deadline = Deadline::from_epoch_millis(event.context.deadline);
            async move {
                Ok::<_, lambda_runtime::Error>(
                    handle_batch(ctx, step, event.payload, deadline).await,
                )
            }
        },
    ))
    .await
}

/// Which delivery of its message this record is (1 for the first), as SQS counts it.
fn delivery(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}
