//! Starts the local runner: provisions the template in the emulator, builds every
//! function's state once, serves the gateway and runs the SQS event source mappings.

use crate::gateway::{Gateway, router};
use crate::mapping::{Mapping, receive};
use crate::provision::{Outside, ProvisionError, environment, provision};
use crate::schedule::{parse_rate, scheduled_event};
use crate::template::{Template, TemplateError, Trigger};
use autocrew_api::state::ApiSettings;
use autocrew_api::{ApiState, Route};
use autocrew_shared::adapters::aws::{self, SqsQueue};
use autocrew_shared::adapters::postgres;
use autocrew_shared::config::{AwsConfig, ConfigError, DatabaseConfig, Env};
use autocrew_shared::services::scheduler::Scheduler;
use autocrew_steps::{Deadline, Step, StepContext, StepSettings, handle_batch};
use autocrew_sweep::SweepState;
use autocrew_ws::{WsRoute, WsState};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// The project folder holding `template.yaml`.
    pub root: PathBuf,
    /// Prefix of every resource name in the emulator.
    pub prefix: String,
    /// 0 picks a free port.
    pub port: u16,
    /// Batches of one queue its function handles at once (Lambda scales out up to the
    /// mapping's maximum concurrency); one poller per queue receives them.
    pub concurrency_per_queue: usize,
}

/// Why the runner could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error("function {function} uses binary {binary}, which the runner cannot host")]
    UnknownBinary { function: String, binary: String },
    #[error(
        "function {function} has schedule {expression:?}: the runner fires rate(...) schedules only"
    )]
    Schedule {
        function: String,
        expression: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A started runner; `stop` ends its pollers and server.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Variables from two sources: the function environment resolved from the template, then
/// the process's own (database and AWS endpoint).
struct Layered<'a> {
    resolved: HashMap<String, String>,
    process: &'a dyn Env,
}

impl Env for Layered<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.resolved
            .get(name)
            .cloned()
            .filter(|v| !v.is_empty())
            .or_else(|| self.process.get(name))
    }
}

/// The template's parameters as the local stack sets them.
fn given(process: &dyn Env, root: &std::path::Path) -> Result<[(String, String); 11], StartError> {
    let database = DatabaseConfig::from_env(process)?;
    Ok([
        ("Stage".to_owned(), "local".to_owned()),
        (
            "LogLevel".to_owned(),
            process.get("RUST_LOG").unwrap_or_else(|| "info".into()),
        ),
        ("DatabaseUrl".to_owned(), database.url.expose().clone()),
        // A new user's trial credit, and where Stripe is (the fake's URL locally): the
        // process's own values when set, else the template's defaults.
        (
            "FreeTrialCreditUsd".to_owned(),
            process
                .get("FREE_TRIAL_CREDIT_USD")
                .unwrap_or_else(|| "1".into()),
        ),
        (
            "StripeApiUrl".to_owned(),
            process
                .get("STRIPE_API_URL")
                .unwrap_or_else(|| "https://api.stripe.com".into()),
        ),
        // Expo's Push API (the fake's locally) and when receipts are read; webhooks may go
        // to loopback here (the local receivers are).
        (
            "ExpoPushUrl".to_owned(),
            process
                .get("EXPO_PUSH_URL")
                .unwrap_or_else(|| "https://exp.host/--/api/v2/push".into()),
        ),
        (
            "PushReceiptDelaySeconds".to_owned(),
            process
                .get("PUSH_RECEIPT_DELAY_SECONDS")
                .unwrap_or_else(|| "900".into()),
        ),
        ("WebhooksAllowLoopback".to_owned(), "true".to_owned()),
        // The dashboard's GraphQL schema can be introspected locally.
        ("GraphQlIntrospection".to_owned(), "true".to_owned()),
        // Local mail goes to the outbox table (`autocrew mail` shows it).
        ("EmailProvider".to_owned(), "outbox".to_owned()),
        // Connected accounts' tokens are sealed under a local key file instead of KMS.
        (
            "ConnectionsKeyFile".to_owned(),
            root.join(".local/keys/connections.key")
                .display()
                .to_string(),
        ),
    ])
}

/// The API functions' state as the runner builds it, over the template's resources
/// provisioned under `options.prefix`, without serving: for calling the handler directly,
/// as Lambda does (`api-bench`).
pub async fn api_state(options: &Options, process: &dyn Env) -> Result<ApiState, StartError> {
    let text = std::fs::read_to_string(options.root.join("template.yaml"))?;
    let template = Template::parse(&text)?;
    let aws_config = AwsConfig::from_env(process)?;
    let sdk = aws::sdk_config(&aws_config).await;
    let outside = Outside::new(
        &template,
        &aws_config.region,
        given(process, &options.root)?,
        "http://127.0.0.1:9".into(),
    );
    let done = provision(&template, &sdk, &options.prefix, &options.root, &outside).await?;
    let env = Layered {
        resolved: environment(&template, &done, &outside)?,
        process,
    };
    let pool = postgres::connect(&autocrew_shared::adapters::database_config(&env).await?)?;
    let keys = autocrew_shared::config::Overlay {
        values: autocrew_shared::adapters::provider_keys(&env).await?,
        base: &env,
    };
    Ok(ApiState::assemble(pool, &sdk, ApiSettings::from_env(&keys)?).await?)
}

pub async fn start(options: Options, process: &dyn Env) -> Result<Running, StartError> {
    let text = std::fs::read_to_string(options.root.join("template.yaml"))?;
    let template = Template::parse(&text)?;
    let aws_config = AwsConfig::from_env(process)?;
    let sdk = aws::sdk_config(&aws_config).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
    let addr = listener.local_addr()?;
    let given = given(process, &options.root)?;
    let outside = Outside::new(
        &template,
        &aws_config.region,
        given,
        format!("http://{addr}"),
    );
    let done = provision(&template, &sdk, &options.prefix, &options.root, &outside).await?;
    let env = Layered {
        resolved: environment(&template, &done, &outside)?,
        process,
    };
    store_provider_keys(&sdk, &done, process).await?;
    let pool = postgres::connect(&autocrew_shared::adapters::database_config(&env).await?)?;
    let keys = autocrew_shared::config::Overlay {
        values: autocrew_shared::adapters::provider_keys(&env).await?,
        base: &env,
    };
    let steps = Arc::new(StepContext::assemble(
        pool.clone(),
        &sdk,
        StepSettings::from_env(&keys)?,
    )?);
    let api = ApiState::assemble(pool.clone(), &sdk, ApiSettings::from_env(&keys)?).await?;
    let settings = ApiSettings::from_env(&keys)?;
    let sweep = Arc::new(SweepState::from_source(&env).await?);
    let ws = WsState::assemble(
        pool,
        &sdk,
        api.keys.clone(),
        &settings.connections_table,
        &settings.websocket_callback_url,
    );

    let agent_timeout = agent_timeout(process)?;
    let (shutdown, watch_shutdown) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut http_routes = Vec::new();
    let queue = Arc::new(SqsQueue::new(&sdk));
    for function in template.functions()? {
        let unknown = || StartError::UnknownBinary {
            function: function.logical_id.clone(),
            binary: function.binary.clone(),
        };
        for trigger in &function.triggers {
            match trigger {
                Trigger::Http { method, path } => {
                    http_routes.push((
                        method.clone(),
                        path.clone(),
                        Route::from_name(&function.binary).ok_or_else(unknown)?,
                    ));
                }
                Trigger::WebSocket { .. } => {
                    WsRoute::from_name(&function.binary).ok_or_else(unknown)?;
                }
                Trigger::Sqs {
                    queue: queue_id,
                    batch_size,
                    ..
                } => {
                    let step = Step::from_name(&function.binary).ok_or_else(unknown)?;
                    let (url, arn, _) = done.queues.get(queue_id).cloned().ok_or_else(unknown)?;
                    let visibility = template
                        .queues()?
                        .iter()
                        .find(|q| &q.logical_id == queue_id)
                        .map(|q| q.visibility_timeout)
                        .unwrap_or(30);
                    let mapping = Mapping {
                        queue_url: url,
                        queue_arn: arn,
                        batch_size: *batch_size,
                        visibility: Duration::from_secs(visibility.into()),
                    };
                    let timeout = match (step, agent_timeout) {
                        (Step::Agent(_), Some(scaled)) => scaled,
                        _ => Duration::from_secs(function.timeout_secs),
                    };
                    tasks.push(tokio::spawn(poll_forever(
                        queue.clone(),
                        (mapping, timeout),
                        aws_config.region.clone(),
                        steps.clone(),
                        step,
                        options.concurrency_per_queue,
                        watch_shutdown.clone(),
                    )));
                }
                Trigger::Schedule { expression } => {
                    if function.binary != autocrew_sweep::FUNCTION_NAME {
                        return Err(unknown());
                    }
                    let period = parse_rate(expression).ok_or_else(|| StartError::Schedule {
                        function: function.logical_id.clone(),
                        expression: expression.clone(),
                    })?;
                    let rule = format!("{}-{}", options.prefix, function.logical_id);
                    tasks.push(tokio::spawn(fire_forever(
                        sweep.clone(),
                        rule,
                        aws_config.region.clone(),
                        period,
                        watch_shutdown.clone(),
                    )));
                }
            }
        }
    }
    // The projects' schedules fire here as EventBridge Scheduler fires them on AWS.
    let scheduler = Scheduler {
        schedules: api.schedules.clone(),
        publisher: Arc::new(api.relay.clone()),
    };
    tasks.push(tokio::spawn(schedule_forever(
        scheduler,
        SCHEDULER_TICK,
        watch_shutdown.clone(),
    )));
    let app = router(Gateway::new(api, ws), http_routes);
    let mut stop_server = watch_shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped(&mut stop_server).await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the gateway stopped");
        }
    }));
    Ok(Running {
        addr,
        shutdown,
        tasks,
    })
}

/// One schedule: fires its function at start (as right after a deploy) and then once per
/// period until shutdown. The sweep reconciles the engine, so a runner that starts after
/// a crash repairs what the crash left at once.
async fn fire_forever(
    sweep: Arc<SweepState>,
    rule: String,
    region: String,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let event = scheduled_event(&rule, &region);
                let sweep_once = autocrew_sweep::handle(&sweep, event);
                match crate::invocation(autocrew_sweep::FUNCTION_NAME, sweep_once).await {
                    Ok(report) => tracing::info!(rule, ?report, "scheduled sweep done"),
                    Err(e) => tracing::error!(rule, error = %e, "scheduled sweep failed"),
                }
            }
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// How often the runner looks for schedules that are due: fires land within this of their
/// time, as EventBridge Scheduler's do within the minute.
const SCHEDULER_TICK: Duration = Duration::from_secs(10);

/// Fires the projects' schedules that are due, every `period`, until shutdown.
async fn schedule_forever(
    scheduler: Scheduler,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                match scheduler.tick(chrono::Utc::now(), 100).await {
                    Ok(tick) => {
                        for fired in tick.fired.iter().chain(&tick.started_waiting) {
                            tracing::info!(
                                schedule = %fired.fire.schedule_id,
                                scheduled_at = %fired.fire.scheduled_at,
                                outcome = %fired.fire.outcome,
                                run = ?fired.fire.run_id,
                                "a schedule fired"
                            );
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "firing schedules failed"),
                }
            }
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// The provider keys of this shell go where a deployed stack keeps them, the template's
/// `ProviderKeys` secret (in moto), and the steps read them from there as on AWS.
async fn store_provider_keys(
    sdk: &aws_config::SdkConfig,
    done: &crate::provision::Provisioned,
    process: &dyn Env,
) -> Result<(), StartError> {
    let Some(arn) = done.secrets.get("ProviderKeys") else {
        return Ok(());
    };
    let keys: HashMap<&str, String> = ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"]
        .into_iter()
        .filter_map(|name| Some((name, process.get(name).filter(|v| !v.trim().is_empty())?)))
        .collect();
    let value = serde_json::to_string(&keys).unwrap_or_else(|_| "{}".into());
    aws_sdk_secretsmanager::Client::new(sdk)
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value)
        .send()
        .await
        .map_err(|e| {
            StartError::Provision(crate::provision::ProvisionError::Aws {
                resource: arn.clone(),
                source: Box::new(e),
            })
        })?;
    Ok(())
}

/// How long one receive waits for messages. Short, because a receive still waiting when
/// the runner is killed takes the next message with it, hidden for the queue's whole
/// visibility timeout; one poller per queue keeps the idle receives few.
const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// `RUNNER_AGENT_TIMEOUT_SECS`: the agent steps' Lambda timeout instead of the template's,
/// so that tests and demos on fast models see tasks span several invocations.
fn agent_timeout(process: &dyn Env) -> Result<Option<Duration>, StartError> {
    let Some(value) = autocrew_shared::config::optional(process, "RUNNER_AGENT_TIMEOUT_SECS")
    else {
        return Ok(None);
    };
    match value.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 900.0 => Ok(Some(Duration::from_secs_f64(secs))),
        _ => Err(StartError::Config(ConfigError::Invalid {
            name: "RUNNER_AGENT_TIMEOUT_SECS",
            reason: format!("must be a number of seconds above 0 and at most 900, got {value:?}"),
        })),
    }
}

/// One event source mapping: a single poller receives batches while fewer than
/// `concurrency` are being handled, and each batch is handled on its own task, then
/// settled (its succeeded records deleted). Each invocation gets the function's `timeout`
/// as Lambda gives it: its context's deadline, and a stop when it passes (every record of
/// the batch then comes back after its visibility, as after a Lambda timeout).
async fn poll_forever(
    queue: Arc<SqsQueue>,
    (mapping, timeout): (Mapping, Duration),
    region: String,
    steps: Arc<StepContext>,
    step: Step,
    concurrency: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mapping = Arc::new(mapping);
    // Dropped on shutdown, which aborts the batches still running, as a stopped worker's.
    let mut handling = JoinSet::new();
    loop {
        while handling.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
            _ = stopped(&mut shutdown) => return,
        };
        let received = tokio::select! {
            received = receive(queue.as_ref(), &mapping, &region, RECEIVE_WAIT) => received,
            _ = stopped(&mut shutdown) => return,
        };
        let (event, receipts) = match received {
            Ok(Some(batch)) => batch,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, step = %step.name(), "polling failed; retrying in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (queue, mapping, steps) = (queue.clone(), mapping.clone(), steps.clone());
        handling.spawn(async move {
            let ids: Vec<String> = event
                .records
                .iter()
                .filter_map(|r| r.message_id.clone())
                .collect();
            let work = handle_batch(&steps, step, event, Deadline::after(timeout));
            let bounded = async {
                match tokio::time::timeout(timeout, work).await {
                    Ok(response) => response,
                    Err(_) => {
                        tracing::error!(step = %step.name(), ?timeout, "the invocation passed its timeout and was stopped, as Lambda stops it");
                        timed_out(ids)
                    }
                }
            };
            let response = crate::invocation(&step.name(), bounded).await;
            if let Err(e) = receipts.settle(queue.as_ref(), &mapping, response).await {
                tracing::warn!(error = %e, step = %step.name(), "could not delete handled messages; they come back after their visibility timeout");
            }
            drop(slot);
        });
    }
}

/// A stopped invocation's answer: every record failed.
fn timed_out(ids: Vec<String>) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    let mut response = aws_lambda_events::event::sqs::SqsBatchResponse::default();
    response.batch_item_failures = ids
        .into_iter()
        .map(|id| {
            let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// Resolves once shutdown is signalled (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send: drop it before returning.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}
