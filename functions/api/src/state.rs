//! Everything a route uses, built once per process.

use autocrew_shared::adapters;
use autocrew_shared::adapters::aws::{self, S3BlobStore};
use autocrew_shared::adapters::llm::select::{self, LlmSetup};
use autocrew_shared::adapters::postgres::{
    self, PgAccountStore, PgAnalytics, PgApprovalStore, PgArtifactStore, PgBrowse, PgBudgetStore,
    PgConnections, PgConversations, PgDeployments, PgEventLog, PgIdempotencyStore, PgLedger,
    PgMemoryStore, PgProjectStore, PgRateLimiter, PgRunControl, PgRunStore, PgScheduleStore,
    PgTaskStore, Pool,
};
use autocrew_shared::config::{
    AuthConfig, AwsConfig, ConfigError, Env, MailConfig, ProcessEnv, ServiceUrls, VaultConfig,
    optional, required,
};
use autocrew_shared::crew::AgentProfiles;
use autocrew_shared::ports::{
    AccountStore, AnalyticsStore, ApprovalStore, ArtifactStore, BlobStore, Browse, BudgetStore,
    Conversations, DeploymentStore, EventLog, IdempotencyStore, Ledger, Mailer, MemoryStore,
    ProjectStore, RateLimiter, RunControl, RunStore, ScheduleStore, ScheduleTimers, TaskStore,
    ToolPolicies, UploadStore,
};
use autocrew_shared::services::access::KeyRing;
use autocrew_shared::services::{AgentQueues, ConnectedAccounts, Gateway, Notifier, Relay};
use aws_config::SdkConfig;
use std::sync::Arc;

/// The names and URLs the API needs besides the database and AWS.
#[derive(Clone)]
pub struct ApiSettings {
    pub artifact_bucket: String,
    pub connections_table: String,
    pub websocket_callback_url: String,
    pub state_machine_arn: String,
    /// Where a retried task is sent.
    pub agent_queues: AgentQueues,
    pub auth: AuthConfig,
    pub mail: MailConfig,
    /// Requests a minute per user and per IP (`RATE_LIMIT_PER_USER`, 100;
    /// `RATE_LIMIT_PER_IP`, 1000); the sign-in routes' own limits are fixed.
    pub limits: crate::limits::Limits,
    /// The providers, routing and agent profiles, as the steps read them (`GET /agents`
    /// says which models each agent would use).
    pub llm: LlmSetup,
    /// Where connected accounts' tokens are sealed.
    pub vault: VaultConfig,
    /// The outside services' base URLs (a token is checked with its service).
    pub services: ServiceUrls,
    /// The OAuth apps connections can be made through (GitHub's device flow, X's and
    /// LinkedIn's web flows).
    pub oauth: autocrew_shared::config::OAuthApps,
    /// `PUBLIC_BASE_URL`: the API's public URL, where services send the browser back to
    /// after an OAuth consent (`/oauth/callback`).
    pub public_base_url: Option<String>,
    /// Where the schedules' timers live (EventBridge Scheduler).
    pub timers: autocrew_shared::adapters::aws::TimerSettings,
    /// The AI share of revenue, the grace period, and where Stripe is.
    pub billing: autocrew_shared::config::BillingConfig,
    /// Where webhooks may go.
    pub notices: autocrew_shared::config::NoticeConfig,
    /// `GRAPHQL_INTROSPECTION` (`true` in local mode): `/graphql` answers introspection
    /// queries (`__schema`, `__type`); on AWS the schema is `docs/schema.graphql`.
    pub graphql_introspection: bool,
}

impl ApiSettings {
    /// Reads `ARTIFACT_BUCKET`, `CONNECTIONS_TABLE`, `WEBSOCKET_CALLBACK_URL`,
    /// `STATE_MACHINE_ARN` and the agents' queue URLs.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(ApiSettings {
            timers: autocrew_shared::adapters::aws::TimerSettings::from_env(env)?,
            billing: autocrew_shared::config::BillingConfig::from_env(env)?,
            notices: autocrew_shared::config::NoticeConfig::from_env(env)?,
            artifact_bucket: required(env, "ARTIFACT_BUCKET")?,
            connections_table: required(env, "CONNECTIONS_TABLE")?,
            websocket_callback_url: required(env, "WEBSOCKET_CALLBACK_URL")?,
            state_machine_arn: required(env, "STATE_MACHINE_ARN")?,
            agent_queues: AgentQueues::from_env(env)?,
            auth: AuthConfig::from_env(env)?,
            mail: MailConfig::from_env(env)?,
            limits: {
                let defaults = crate::limits::Limits::default();
                crate::limits::Limits {
                    per_user: per_minute(env, "RATE_LIMIT_PER_USER", defaults.per_user)?,
                    per_ip: per_minute(env, "RATE_LIMIT_PER_IP", defaults.per_ip)?,
                    ..defaults
                }
            },
            llm: select::from_env(env)?,
            vault: VaultConfig::from_env(env)?,
            services: ServiceUrls::from_env(env)?,
            oauth: autocrew_shared::config::OAuthApps::from_env(env)?,
            public_base_url: optional(env, "PUBLIC_BASE_URL"),
            graphql_introspection: autocrew_shared::config::parsed(
                env,
                "GRAPHQL_INTROSPECTION",
                false,
            )?,
        })
    }
}

fn per_minute(env: &dyn Env, name: &'static str, default: u32) -> Result<u32, ConfigError> {
    match optional(env, name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError::Invalid {
                name,
                reason: format!("must be a positive whole number of requests a minute, got {v:?}"),
            }),
    }
}

/// The ports the routes share.
#[derive(Clone)]
pub struct ApiState {
    pub projects: Arc<dyn ProjectStore>,
    pub runs: Arc<dyn RunStore>,
    pub tasks: Arc<dyn TaskStore>,
    pub events: Arc<dyn EventLog>,
    pub artifacts: Arc<dyn ArtifactStore>,
    pub ledger: Arc<dyn Ledger>,
    pub accounts: Arc<dyn AccountStore>,
    pub limiter: Arc<dyn RateLimiter>,
    /// Keeps POST answers per `Idempotency-Key`.
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub limits: crate::limits::Limits,
    /// The lists and details, scoped to their owner.
    pub browse: Arc<dyn Browse>,
    /// Signs and verifies access tokens.
    pub keys: Arc<KeyRing>,
    pub mailer: Arc<dyn Mailer>,
    /// Where emailed links point (`APP_LINK_BASE`); `None` sends the code alone.
    pub app_link_base: Option<String>,
    pub blobs: Arc<dyn BlobStore>,
    pub control: Arc<dyn RunControl>,
    pub approvals: Arc<dyn ApprovalStore>,
    /// The trial credit new users get.
    pub trial_credit: autocrew_shared::domain::MicroUsd,
    pub notifier: Notifier,
    /// Publishes what committed changes send out (events, the start of an execution).
    pub relay: Relay,
    pub conversations: Arc<dyn Conversations>,
    pub uploads: Arc<dyn UploadStore>,
    pub budgets: Arc<dyn BudgetStore>,
    /// Routes calls as the steps would (`GET /agents`); the API makes no model call.
    pub gateway: Gateway,
    pub profiles: Arc<AgentProfiles>,
    /// Where artifacts and uploads are kept.
    pub artifact_bucket: String,
    /// Connected accounts: checked with their service, sealed in the vault.
    pub connected: ConnectedAccounts,
    /// Which tools that act in the world run without asking.
    pub policies: Arc<dyn ToolPolicies>,
    /// The deploys and builds the tools started.
    pub deployments: Arc<dyn DeploymentStore>,
    /// Projects' schedules and their fires.
    pub schedules: Arc<dyn ScheduleStore>,
    /// What the crew remembers.
    pub memory: Arc<dyn MemoryStore>,
    /// The schedules' timers (EventBridge Scheduler).
    pub timers: Arc<dyn ScheduleTimers>,
    /// The projects' app and page events, and their ingest keys.
    pub analytics: Arc<dyn AnalyticsStore>,
    /// The API's public URL (`PUBLIC_BASE_URL`), for OAuth's redirect back.
    pub public_base_url: Option<String>,
    /// Plans, subscriptions, revenue and Stripe.
    pub billing: autocrew_shared::services::Billing,
    /// Devices, push settings, webhooks and their deliveries.
    pub notices: Arc<dyn autocrew_shared::ports::NoticeStore>,
    /// Where webhooks may go (`WEBHOOKS_ALLOW_LOOPBACK`).
    pub webhook_urls: autocrew_shared::domain::notices::UrlPolicy,
    /// The GraphQL dashboard's batched reads.
    pub dashboard: Arc<dyn autocrew_shared::ports::Dashboard>,
    /// Whether `/graphql` answers introspection queries.
    pub graphql_introspection: bool,
}

impl ApiState {
    /// The state `route`'s function needs, from the process environment.
    pub async fn from_env(route: crate::Route) -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv, route).await
    }

    pub async fn from_source(env: &dyn Env, route: crate::Route) -> Result<Self, ConfigError> {
        let pool = postgres::connect(&adapters::database_config(env).await?)?;
        let sdk = aws::sdk_config(&AwsConfig::from_env(env)?).await;
        // Which providers are configured comes from the secret store, as for the steps;
        // only `GET /agents` says and only memory search embeds, so only their functions read the
        // secret when they start.
        let keys = match route {
            crate::Route::ListAgents
            | crate::Route::SearchMemory
            | crate::Route::SimilarProjects => adapters::provider_keys(env).await?,
            _ => Default::default(),
        };
        let env = autocrew_shared::config::Overlay {
            values: keys,
            base: env,
        };
        let mut settings = ApiSettings::from_env(&env)?;
        // Only the billing routes talk to Stripe, so only their functions read its secret.
        if !route.uses_stripe() {
            settings.billing.stripe_secret = None;
        }
        Self::assemble(pool, &sdk, settings).await
    }

    /// Builds the state from a pool and an SDK configuration already made; reads the
    /// signing keys from the secret store.
    pub async fn assemble(
        pool: Pool,
        sdk: &SdkConfig,
        settings: ApiSettings,
    ) -> Result<Self, ConfigError> {
        let keys = Arc::new(adapters::key_ring(sdk, &pool, &settings.auth).await?);
        let mailer = adapters::mailer(&pool, sdk, &settings.mail);
        let events: Arc<dyn EventLog> = Arc::new(PgEventLog::new(pool.clone()));
        let ledger: Arc<dyn Ledger> = Arc::new(PgLedger::new(pool.clone()));
        let notifier = adapters::notifier(
            &pool,
            sdk,
            &settings.connections_table,
            &settings.websocket_callback_url,
        );
        let relay = adapters::relay(
            &pool,
            sdk,
            settings.agent_queues.clone(),
            // The API starts runs; long jobs' watches start from the agents' steps.
            adapters::StateMachines {
                run: Some(settings.state_machine_arn.clone()),
                watch: None,
            },
            notifier.clone(),
        );
        let billing = adapters::billing(&pool, sdk, &settings.billing).await?;
        let conversations = Arc::new(PgConversations::new(pool.clone()));
        let connections = Arc::new(PgConnections::new(pool.clone()));
        Ok(ApiState {
            connected: ConnectedAccounts::new(
                connections.clone(),
                adapters::vault(&settings.vault, sdk)?,
                settings.services.clone(),
                reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .map_err(|e| ConfigError::Invalid {
                        name: "the HTTP client",
                        reason: e.to_string(),
                    })?,
            )
            .with_oauth(
                settings.oauth.clone(),
                Arc::new(aws::SecretsManager::new(sdk)),
            ),
            policies: connections,
            deployments: Arc::new(PgDeployments::new(pool.clone())),
            schedules: Arc::new(PgScheduleStore::new(pool.clone())),
            analytics: Arc::new(PgAnalytics::new(pool.clone())),
            memory: Arc::new(PgMemoryStore::new(pool.clone())),
            timers: Arc::new(aws::EventBridgeTimers::new(sdk, settings.timers.clone())),
            conversations: conversations.clone(),
            uploads: conversations,
            budgets: Arc::new(PgBudgetStore::new(pool.clone())),
            gateway: Gateway::new(
                settings.llm.models.clone(),
                adapters::gateway_stores(&pool),
                settings.llm.settings.clone(),
            ),
            profiles: settings.llm.profiles.clone(),
            artifact_bucket: settings.artifact_bucket.clone(),
            public_base_url: settings.public_base_url.clone(),
            accounts: Arc::new(PgAccountStore::new(pool.clone())),
            limiter: Arc::new(PgRateLimiter::new(pool.clone())),
            idempotency: Arc::new(PgIdempotencyStore::new(pool.clone())),
            limits: settings.limits,
            browse: Arc::new(PgBrowse::new(pool.clone())),
            keys,
            mailer,
            app_link_base: settings.auth.app_link_base.clone(),
            control: Arc::new(PgRunControl::new(pool.clone())),
            approvals: Arc::new(PgApprovalStore::new(pool.clone())),
            projects: Arc::new(PgProjectStore::new(pool.clone())),
            runs: Arc::new(PgRunStore::new(pool.clone())),
            tasks: Arc::new(PgTaskStore::new(pool.clone())),
            events,
            artifacts: Arc::new(PgArtifactStore::new(pool.clone())),
            ledger,
            blobs: Arc::new(S3BlobStore::new(sdk, settings.artifact_bucket)),
            trial_credit: settings.auth.trial_credit,
            billing,
            notices: Arc::new(autocrew_shared::adapters::postgres::PgNotices::new(
                pool.clone(),
            )),
            webhook_urls: settings.notices.url_policy,
            dashboard: Arc::new(autocrew_shared::adapters::postgres::PgDashboard::new(
                pool.clone(),
            )),
            graphql_introspection: settings.graphql_introspection,
            notifier,
            relay,
        })
    }
}
