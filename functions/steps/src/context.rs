//! Everything a step uses, built once per process.

use autocrew_shared::adapters;
use autocrew_shared::adapters::aws::{self, S3BlobStore, SfnStateMachine, SqsQueue};
use autocrew_shared::adapters::llm::select::{self, LlmSetup};
use autocrew_shared::adapters::postgres::{
    self, PgAnalytics, PgApprovalStore, PgArtifactStore, PgConnections, PgConversations,
    PgDeployments, PgIdempotencyStore, PgLedger, PgMarketing, PgMemoryStore, PgProjectStore,
    PgRateLimiter, PgRunStore, PgScheduleStore, PgTaskStore, Pool,
};
use autocrew_shared::config::{
    AwsConfig, ConfigError, Env, Liveness, ProcessEnv, ServiceUrls, VaultConfig, optional, required,
};
use autocrew_shared::crew::AgentProfiles;
use autocrew_shared::domain::PlanLimits;
use autocrew_shared::ports::{
    AnalyticsStore, ApprovalStore, ArtifactStore, BlobStore, Conversations, DeploymentStore,
    IdempotencyStore, Ledger, MarketingStore, MemoryStore, ProjectStore, Queue, RateLimiter,
    RunStore, ScheduleStore, ScheduleTimers, StateMachine, TaskStore, ToolPolicies, TopicSource,
};
use autocrew_shared::services::notices::Deliverer;
use autocrew_shared::services::{AgentQueues, ConnectedAccounts, Gateway, Notifier, Relay};
use aws_config::SdkConfig;
use std::sync::Arc;
use std::time::Duration;

/// The names and URLs a step needs besides the database and AWS.
#[derive(Clone)]
pub struct StepSettings {
    pub artifact_bucket: String,
    pub connections_table: String,
    pub websocket_callback_url: String,
    pub agent_queues: AgentQueues,
    /// The providers, routing, prices and agent profiles (see `adapters::llm::select`).
    pub llm: LlmSetup,
    /// How often a working step proves it is alive, and how long without a heartbeat
    /// makes it presumed dead (see `Liveness`).
    pub liveness: Liveness,
    /// `STATE_MACHINE_ARN` and `WATCH_STATE_MACHINE_ARN`: where resumed runs' executions
    /// and long jobs' watches start (the relay needs them).
    pub machines: adapters::StateMachines,
    /// How long jobs are followed.
    pub jobs: JobSettings,
    /// `LLM_STREAM`: stream agent output as progress events (default on).
    pub stream: bool,
    /// How critical actions wait for people, and where published files are served.
    pub actions: ActionSettings,
    /// Where connected accounts' tokens are sealed.
    pub vault: VaultConfig,
    /// The outside services' base URLs: the tools reach nothing else.
    pub services: ServiceUrls,
    /// The OAuth apps that renew the tokens their web flows granted (X's lapse in 2 h).
    pub oauth: autocrew_shared::config::OAuthApps,
    /// Where the schedules' timers live (a launched project's daily loop gets one).
    pub timers: aws::TimerSettings,
    /// The daily loop's topics (`TOPICS_PATH`, or the embedded fixture).
    pub topics: Arc<dyn TopicSource>,
    /// Expo's push endpoint, receipts' delay, where webhooks may go.
    pub notices: autocrew_shared::config::NoticeConfig,
}

/// Critical actions: how long an approval waits, and the public base URL of `publish`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSettings {
    /// `APPROVAL_TTL_MINUTES` (default 1440, a day); never past the run's deadline.
    pub approval_ttl: Duration,
    /// `PUBLIC_BASE_URL`: published files are at `{base}/sites/{project_id}/{path}`.
    pub public_base_url: String,
}

impl ActionSettings {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let minutes = positive(env, "APPROVAL_TTL_MINUTES", 24 * 60, "minutes")?;
        Ok(ActionSettings {
            approval_ttl: Duration::from_secs(u64::from(minutes) * 60),
            public_base_url: required(env, "PUBLIC_BASE_URL")?
                .trim_end_matches('/')
                .to_owned(),
        })
    }
}

/// Long jobs (app builds): how often the watcher looks, and how long it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSettings {
    /// `JOB_POLL_SECONDS` (default 30): between two looks at a job.
    pub poll_secs: u32,
    /// `BUILD_TIMEOUT_SECONDS` (default 3600): an app build not ended by then is recorded
    /// `timed_out` and fails its task.
    pub build_timeout: Duration,
}

impl JobSettings {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(JobSettings {
            poll_secs: positive(env, "JOB_POLL_SECONDS", 30, "seconds")?,
            build_timeout: Duration::from_secs(u64::from(positive(
                env,
                "BUILD_TIMEOUT_SECONDS",
                3600,
                "seconds",
            )?)),
        })
    }
}

/// A positive whole number from `name`, or `default` when unset.
fn positive(
    env: &dyn Env,
    name: &'static str,
    default: u32,
    unit: &str,
) -> Result<u32, ConfigError> {
    match optional(env, name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError::Invalid {
                name,
                reason: format!("must be a positive whole number of {unit}, got {v:?}"),
            }),
        },
    }
}

impl StepSettings {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(StepSettings {
            artifact_bucket: required(env, "ARTIFACT_BUCKET")?,
            connections_table: required(env, "CONNECTIONS_TABLE")?,
            websocket_callback_url: required(env, "WEBSOCKET_CALLBACK_URL")?,
            agent_queues: AgentQueues::from_env(env)?,
            llm: select::from_env(env)?,
            stream: !matches!(
                optional(env, "LLM_STREAM").as_deref().map(str::trim),
                Some("0" | "false" | "off")
            ),
            liveness: Liveness::from_env(env)?,
            machines: adapters::StateMachines::from_env(env),
            jobs: JobSettings::from_env(env)?,
            actions: ActionSettings::from_env(env)?,
            vault: VaultConfig::from_env(env)?,
            services: ServiceUrls::from_env(env)?,
            oauth: autocrew_shared::config::OAuthApps::from_env(env)?,
            timers: aws::TimerSettings::from_env(env)?,
            topics: Arc::new(autocrew_shared::adapters::topics::FileTopics::from_env(
                env,
            )?),
            notices: autocrew_shared::config::NoticeConfig::from_env(env)?,
        })
    }
}

/// The ports and services every step shares.
#[derive(Clone)]
pub struct StepContext {
    pub runs: Arc<dyn RunStore>,
    pub tasks: Arc<dyn TaskStore>,
    pub artifacts: Arc<dyn ArtifactStore>,
    pub ledger: Arc<dyn Ledger>,
    pub blobs: Arc<dyn BlobStore>,
    pub bucket: String,
    pub state_machine: Arc<dyn StateMachine>,
    pub queue: Arc<dyn Queue>,
    /// Every model call goes through it: routing, caches, budgets, retries, fallback, ledger.
    pub gateway: Gateway,
    /// Each agent's prompt, tools, model policy and loop bounds.
    pub profiles: Arc<AgentProfiles>,
    /// Stream agent output as progress events (`LLM_STREAM`, on unless `0` or `false`).
    pub stream: bool,
    pub notifier: Notifier,
    /// Publishes what committed changes send out (events, outbox messages).
    pub relay: Relay,
    pub plan_limits: PlanLimits,
    pub liveness: Liveness,
    /// Critical calls park their task here until a person decides.
    pub approvals: Arc<dyn ApprovalStore>,
    /// Side-effecting tool calls claim their idempotency key here first.
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub actions: ActionSettings,
    /// How long jobs are followed.
    pub jobs: JobSettings,
    /// The projects' conversations the orchestrator answers.
    pub conversations: Arc<dyn Conversations>,
    /// The users' connected accounts the tools act through.
    pub connected: ConnectedAccounts,
    /// Which tools that act in the world run without asking.
    pub policies: Arc<dyn ToolPolicies>,
    /// The deploys and builds the tools start.
    pub deployments: Arc<dyn DeploymentStore>,
    /// Each user's calls of each tool that acts in the world, a minute.
    pub limiter: Arc<dyn RateLimiter>,
    /// What agents learned, recalled into later tasks' and plans' context.
    pub memory: Arc<dyn MemoryStore>,
    /// The projects' traffic, and the ingest keys their deployed pages carry.
    pub analytics: Arc<dyn AnalyticsStore>,
    /// Published posts and their engagement, and projects' launch.
    pub marketing: Arc<dyn MarketingStore>,
    /// Projects and users (a daily loop's product name and its user's time zone).
    pub projects: Arc<dyn ProjectStore>,
    /// Schedules (a launched project's daily loop) and their timers.
    pub schedules: Arc<dyn ScheduleStore>,
    pub timers: Arc<dyn ScheduleTimers>,
    pub topics: Arc<dyn TopicSource>,
    /// Sends push notifications and webhook deliveries (the deliver step).
    pub deliverer: Deliverer,
}

impl StepContext {
    /// Reads the process environment.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv).await
    }

    /// Reads `DATABASE_URL`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `ARTIFACT_BUCKET`,
    /// `CONNECTIONS_TABLE`, `WEBSOCKET_CALLBACK_URL`, `PUBLIC_BASE_URL`, `LLM_MODEL` and the
    /// agent queue URLs.
    pub async fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        let pool = postgres::connect(&adapters::database_config(env).await?)?;
        let sdk = aws::sdk_config(&AwsConfig::from_env(env)?).await;
        // The providers' keys come from the secret store, over the environment.
        let env = autocrew_shared::config::Overlay {
            values: adapters::provider_keys(env).await?,
            base: env,
        };
        Self::assemble(pool, &sdk, StepSettings::from_env(&env)?)
    }

    /// Builds the context from a pool and an SDK configuration already made.
    pub fn assemble(
        pool: Pool,
        sdk: &SdkConfig,
        settings: StepSettings,
    ) -> Result<Self, ConfigError> {
        let connections = Arc::new(PgConnections::new(pool.clone()));
        let connected = ConnectedAccounts::new(
            connections.clone(),
            adapters::vault(&settings.vault, sdk)?,
            settings.services.clone(),
            reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| ConfigError::Invalid {
                    name: "the HTTP client",
                    reason: e.to_string(),
                })?,
        )
        .with_oauth(
            settings.oauth.clone(),
            Arc::new(autocrew_shared::adapters::aws::SecretsManager::new(sdk)),
        );
        let ledger: Arc<dyn Ledger> = Arc::new(PgLedger::new(pool.clone()));
        let tasks: Arc<dyn TaskStore> = Arc::new(PgTaskStore::new(pool.clone()));
        let queue: Arc<dyn Queue> = Arc::new(SqsQueue::new(sdk));
        let notifier = adapters::notifier(
            &pool,
            sdk,
            &settings.connections_table,
            &settings.websocket_callback_url,
        );
        let runs: Arc<dyn RunStore> = Arc::new(PgRunStore::new(pool.clone()));
        let state_machine: Arc<dyn StateMachine> = Arc::new(SfnStateMachine::new(sdk));
        let relay = adapters::relay(
            &pool,
            sdk,
            settings.agent_queues.clone(),
            settings.machines.clone(),
            notifier.clone(),
        );
        Ok(StepContext {
            connected,
            policies: connections,
            deployments: Arc::new(PgDeployments::new(pool.clone())),
            limiter: Arc::new(PgRateLimiter::new(pool.clone())),
            runs,
            tasks,
            artifacts: Arc::new(PgArtifactStore::new(pool.clone())),
            gateway: Gateway::new(
                settings.llm.models,
                adapters::gateway_stores(&pool),
                settings.llm.settings,
            ),
            profiles: settings.llm.profiles,
            stream: settings.stream,
            ledger,
            blobs: Arc::new(S3BlobStore::new(sdk, settings.artifact_bucket.clone())),
            bucket: settings.artifact_bucket,
            state_machine,
            queue,
            relay,
            notifier,
            plan_limits: PlanLimits::default(),
            liveness: settings.liveness,
            approvals: Arc::new(PgApprovalStore::new(pool.clone())),
            idempotency: Arc::new(PgIdempotencyStore::new(pool.clone())),
            actions: settings.actions,
            jobs: settings.jobs,
            conversations: Arc::new(PgConversations::new(pool.clone())),
            memory: Arc::new(PgMemoryStore::new(pool.clone())),
            analytics: Arc::new(PgAnalytics::new(pool.clone())),
            marketing: Arc::new(PgMarketing::new(pool.clone())),
            projects: Arc::new(PgProjectStore::new(pool.clone())),
            schedules: Arc::new(PgScheduleStore::new(pool.clone())),
            timers: Arc::new(aws::EventBridgeTimers::new(sdk, settings.timers.clone())),
            topics: settings.topics.clone(),
            deliverer: adapters::deliverer(&pool, &settings.notices)?,
        })
    }

    /// Long-term memory through this context's gateway.
    pub fn memories(&self) -> autocrew_shared::services::Memories<'_> {
        autocrew_shared::services::Memories {
            store: &*self.memory,
            gateway: &self.gateway,
        }
    }

    /// Keeps a failed message hidden for `backoff` before SQS delivers it again.
    pub async fn delay_retry(&self, queue_name: &str, receipt: &str, backoff: Duration) {
        let result = match self.queue.url_of(queue_name).await {
            Ok(url) => self.queue.change_visibility(&url, receipt, backoff).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, queue_name, "could not delay the retry; the queue's visibility timeout applies");
        }
    }
}
