//! The test harness: a fresh database per test, unique AWS resource names per test, and
//! SDK clients pointed at the local stack. Run the suite with `make test`, which starts
//! the stack and exports its environment.

pub mod chaos;
pub mod compatible_server;
pub mod fakes;
pub mod funds;
pub mod pace;
pub mod replay;
pub mod statements;
pub mod trace;
pub mod wire_anthropic;
pub mod wire_gemini;

use anyhow::Context;
use autocrew_shared::adapters::{aws, postgres};
use autocrew_shared::config::{AwsConfig, DatabaseConfig, ProcessEnv};
use std::str::FromStr;

/// A test model's answer to `request` as `provider`: `content`, with `input` and `output`
/// tokens; it stops for tool use when the content calls a tool.
pub fn reply(
    provider: &str,
    request: &autocrew_shared::ports::llm::LlmRequest,
    content: Vec<autocrew_shared::ports::llm::Content>,
    (input, output): (u32, u32),
) -> autocrew_shared::ports::llm::LlmResponse {
    use autocrew_shared::ports::llm::{Content, StopReason};
    let calls = content.iter().any(|c| matches!(c, Content::ToolUse { .. }));
    autocrew_shared::ports::llm::LlmResponse {
        provider: provider.to_owned(),
        model: request.model.clone(),
        content,
        stop_reason: if calls {
            StopReason::ToolUse
        } else {
            StopReason::EndTurn
        },
        usage: autocrew_shared::domain::records::TokenUsage {
            input,
            output,
            cache_write: 0,
            cache_read: 0,
        },
    }
}

/// A name no other test uses: `prefix-` and 12 hex digits.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A fresh signing secret in the emulator's Secrets Manager, as the template's
/// `JwtSigningKeys` holds one; returns its name.
pub async fn signing_secret(sdk: &aws_config::SdkConfig) -> anyhow::Result<String> {
    let name = unique("jwt");
    aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(&name)
        .secret_string(autocrew_shared::services::access::SigningKeys::generate(
            "k1",
        ))
        .send()
        .await
        .context("could not create the signing secret in the emulator")?;
    Ok(name)
}

/// The SDK configuration for the local stack, from the environment `make test` exports.
pub async fn sdk() -> anyhow::Result<aws_config::SdkConfig> {
    let config = AwsConfig::from_env(&ProcessEnv)
        .context("the AWS environment is missing: run the suite with `make test`")?;
    anyhow::ensure!(
        config.endpoint_url.is_some(),
        "AWS_ENDPOINT_URL is not set: the tests only run against the local stack"
    );
    Ok(aws::sdk_config(&config).await)
}

/// A database of its own for one test, dropped (with its connections) when the value is.
pub struct TestDb {
    pub pool: postgres::Pool,
    name: String,
    admin: tokio_postgres::Config,
}

impl TestDb {
    /// A fresh database with every migration applied by the project's migrator.
    pub async fn migrated() -> anyhow::Result<TestDb> {
        let db = TestDb::empty().await?;
        postgres::migrate(&db.pool)
            .await
            .context("failed to migrate the test database")?;
        Ok(db)
    }

    /// The database's connection URL (for code that reads `DATABASE_URL`).
    pub fn url(&self) -> String {
        let host = match self.admin.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = self.admin.get_ports().first().copied().unwrap_or(5432);
        let user = self.admin.get_user().unwrap_or("postgres");
        let password = self
            .admin
            .get_password()
            .map(|p| format!(":{}", String::from_utf8_lossy(p)))
            .unwrap_or_default();
        format!("postgres://{user}{password}@{host}:{port}/{}", self.name)
    }

    /// A fresh, empty database.
    pub async fn empty() -> anyhow::Result<TestDb> {
        let admin = DatabaseConfig::from_env(&ProcessEnv)
            .context("DATABASE_URL is missing: run the suite with `make test`")?;
        let admin = tokio_postgres::Config::from_str(admin.url.expose())?;
        let name = unique("t").replace('-', "_");
        let client = admin_client(&admin).await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .context("failed to create the test database")?;
        let mut config = admin.clone();
        config.dbname(&name);
        Ok(TestDb {
            pool: postgres::pool_for(config, 32)?,
            name,
            admin,
        })
    }
}

async fn admin_client(config: &tokio_postgres::Config) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .context("cannot reach DATABASE_URL")?;
    tokio::spawn(connection);
    Ok(client)
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.pool.close();
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop cannot await; a short-lived runtime on its own thread does the clean-up.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(client) = admin_client(&admin).await {
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A user, a project and a pending run in `db`: what most store tests start from.
pub struct Seeded {
    pub user: autocrew_shared::domain::records::User,
    pub project: autocrew_shared::domain::records::Project,
    pub run: autocrew_shared::domain::records::Run,
}

/// Seeds a paying user ($8 of AI budget), a project and a pending run with a $5 budget and
/// `max_concurrency`.
pub async fn seed(db: &TestDb, max_concurrency: u32) -> anyhow::Result<Seeded> {
    use autocrew_shared::adapters::postgres::{PgProjectStore, PgRunStore};
    use autocrew_shared::domain::MicroUsd;
    use autocrew_shared::domain::records::NewRun;
    use autocrew_shared::ports::{ProjectStore, RunStore};
    let projects = PgProjectStore::new(db.pool.clone());
    let user = projects
        .create_user(&format!("{}@example.com", unique("user")), "Test User")
        .await?;
    // A subscriber who paid $20 this period: an AI budget of $8.
    funds::fund(&db.pool, user.id, 2000).await?;
    let project = projects
        .create_project(user.id, "Keto recipes", "A recipe app for keto dieters")
        .await?;
    let run = PgRunStore::new(db.pool.clone())
        .create_run(NewRun {
            project_id: project.id,
            user_id: user.id,
            command: "Build a recipe app for keto dieters".into(),
            budget: MicroUsd::from_dollars(5),
            max_concurrency,
            deadline: None,
            idempotency: None,
            schedule: None,
        })
        .await?
        .value;
    Ok(Seeded { user, project, run })
}

/// `seed`, with the run already planned and `running`, as the store tests need it.
pub async fn seed_running(db: &TestDb, max_concurrency: u32) -> anyhow::Result<Seeded> {
    use autocrew_shared::adapters::postgres::PgRunStore;
    use autocrew_shared::domain::RunStatus;
    use autocrew_shared::ports::RunStore;
    let mut seeded = seed(db, max_concurrency).await?;
    seeded.run = PgRunStore::new(db.pool.clone())
        .set_status(seeded.run.id, RunStatus::Running, None)
        .await?;
    Ok(seeded)
}

/// A plan task for tests: `key` run by `agent` after `deps`.
pub fn planned(key: &str, agent: &str, deps: &[&str]) -> autocrew_shared::domain::PlannedTask {
    autocrew_shared::domain::PlannedTask {
        key: key.into(),
        agent: agent.into(),
        title: format!("Task {key}"),
        description: String::new(),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        priority: "normal".into(),
        complexity: "medium".into(),
        budget_micro_usd: 0,
    }
}

/// The repository's root folder.
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Creates the WebSocket connections table as `template.yaml` declares it.
pub async fn create_connections_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(repo_root().join("template.yaml"))?;
    let template = autocrew_runner::template::Template::parse(&text)?;
    let (_, props) = template
        .of_kind("AWS::DynamoDB::Table")
        .into_iter()
        .find(|(id, _)| id == "ConnectionsTable")
        .ok_or_else(|| anyhow::anyhow!("template.yaml declares no ConnectionsTable"))?;
    autocrew_runner::provision::create_table(client, table, &props)
        .await
        .map_err(|e| anyhow::anyhow!("create {table}: {e}"))
}

/// A model table for self-hosted test models: each `(provider, model, input, output)` at
/// those dollar prices, with what an OpenAI-compatible server accepts (a temperature and a
/// guiding `json_schema`, nothing strict), plus the offline models. What an operator's
/// `MODEL_TABLE_PATH` file holds.
pub fn model_table(
    rows: &[(&str, &str, &str, &str)],
) -> anyhow::Result<autocrew_shared::domain::models::ModelTable> {
    let entry = |provider: &str, model: &str, input: &str, output: &str, caps: &str| {
        format!(
            r#"{{"provider": "{provider}", "model": "{model}", "source": "test", "checked": "2026-12-01",
            "price": {{"input": "{input}", "output": "{output}", "cache_write": "0", "cache_read": "0"}},
            "capabilities": {caps}}}"#
        )
    };
    let compatible = r#"{"context_window": 131072, "max_output_tokens": 8192, "sampling": ["temperature"], "structured_output": "json_schema"}"#;
    let offline = r#"{"context_window": 1000000, "max_output_tokens": 65536, "structured_output": "strict", "strict_tools": true}"#;
    let entries: Vec<String> = rows
        .iter()
        .map(|(p, m, i, o)| entry(p, m, i, o, compatible))
        .chain([entry("offline", "offline-template-1", "0", "0", offline)])
        .collect();
    let table = format!(
        r#"{{"checked": "2026-12-01", "models": [{}]}}"#,
        entries.join(",")
    );
    Ok(autocrew_shared::domain::models::ModelTable::parse(&table)?)
}

/// The shipped capabilities of `provider`/`model`, as the gateway sets them on a request.
pub fn shipped(provider: &str, model: &str) -> autocrew_shared::domain::capabilities::Capabilities {
    autocrew_shared::domain::models::ModelTable::builtin()
        .and_then(|t| t.capabilities(provider, model).cloned())
        .unwrap_or_else(|e| panic!("{provider}/{model} in the shipped table: {e}"))
}

/// Where to cut `text` in two for a streamed answer: the char boundary nearest the middle.
/// `text` in the pieces a stream sends it in: two halves, or, `fine`, pieces of about one
/// token (four characters) as a real model streams them.
pub fn pieces(text: &str, fine: bool) -> Vec<&str> {
    let bounds: Vec<usize> = match fine {
        false => text
            .char_indices()
            .nth(text.chars().count() / 2)
            .map(|(i, _)| vec![i])
            .unwrap_or_default(),
        true => text
            .char_indices()
            .map(|(i, _)| i)
            .skip(4)
            .step_by(4)
            .collect(),
    };
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut start = 0;
    for end in bounds {
        out.push(&text[start..end]);
        start = end;
    }
    out.push(&text[start..]);
    out
}

/// The process environment with some variables set over it, as the runner reads it.
pub struct EnvOver(pub std::collections::HashMap<&'static str, String>);

impl autocrew_shared::config::Env for EnvOver {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .cloned()
            .or_else(|| autocrew_shared::config::ProcessEnv.get(name))
    }
}

/// Shorthands over a task store for tests that drive tasks by hand: each returns the
/// change's value and drops its effects (they stay in the outbox and the event log).
#[async_trait::async_trait]
pub trait Drive {
    /// `dispatch`: the tasks it queued.
    async fn claim_ready(
        &self,
        run: autocrew_shared::domain::RunId,
    ) -> anyhow::Result<Vec<autocrew_shared::domain::records::Task>>;
    /// `start_attempt` for the task's own agent: the attempt, or `None` when the task was
    /// not queued.
    async fn start(
        &self,
        task: autocrew_shared::domain::TaskId,
    ) -> anyhow::Result<Option<autocrew_shared::domain::records::Attempt>>;
    /// `complete` on the task's current attempt.
    async fn complete_now(
        &self,
        task: autocrew_shared::domain::TaskId,
        result: serde_json::Value,
    ) -> Result<autocrew_shared::ports::Completion, autocrew_shared::ports::StoreError>;
    /// `fail_attempt` on the task's current attempt, with no backoff.
    async fn fail_now(
        &self,
        task: autocrew_shared::domain::TaskId,
        error: &str,
        retryable: bool,
    ) -> Result<autocrew_shared::ports::Failure, autocrew_shared::ports::StoreError>;
}

#[async_trait::async_trait]
impl<T: autocrew_shared::ports::TaskStore + ?Sized> Drive for T {
    async fn claim_ready(
        &self,
        run: autocrew_shared::domain::RunId,
    ) -> anyhow::Result<Vec<autocrew_shared::domain::records::Task>> {
        Ok(self.dispatch(run).await?.value)
    }

    async fn start(
        &self,
        task: autocrew_shared::domain::TaskId,
    ) -> anyhow::Result<Option<autocrew_shared::domain::records::Attempt>> {
        let agent = self.task(task).await?.agent;
        Ok(match self.start_attempt(task, agent).await? {
            autocrew_shared::ports::Start::Started(started) => Some(started.value.attempt),
            autocrew_shared::ports::Start::NotQueued(_) => None,
        })
    }

    async fn complete_now(
        &self,
        task: autocrew_shared::domain::TaskId,
        result: serde_json::Value,
    ) -> Result<autocrew_shared::ports::Completion, autocrew_shared::ports::StoreError> {
        let task = self.task(task).await?;
        Ok(self
            .complete(task.id, task.attempts, &result, completed_event(&task))
            .await?
            .value)
    }

    async fn fail_now(
        &self,
        task: autocrew_shared::domain::TaskId,
        error: &str,
        retryable: bool,
    ) -> Result<autocrew_shared::ports::Failure, autocrew_shared::ports::StoreError> {
        let attempt = self.task(task).await?.attempts;
        // No orchestrator answers here: a failure for good blocks its dependants at once,
        // as with no revision left (re-planning is `integration/replan.rs`'s).
        let failure = autocrew_shared::ports::AttemptFailure {
            error: error.to_owned(),
            retryable,
            backoff: std::time::Duration::ZERO,
            replannable: false,
        };
        Ok(self.fail_attempt(task, attempt, &failure).await?.value)
    }
}

/// The local stack's database URL (`DATABASE_URL`, as `.local/stack.env` sets it), for
/// the tools that run against the stack.
pub fn stack_database_url() -> anyhow::Result<String> {
    use anyhow::Context;
    std::env::var("DATABASE_URL").context("DATABASE_URL is not set: source .local/stack.env")
}

/// The stack's database URL and a connection to it (its driver spawned).
pub async fn stack_database() -> anyhow::Result<(String, tokio_postgres::Client)> {
    let url = stack_database_url()?;
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok((url, db))
}

/// Every agent queue variable (`DEVELOPER_QUEUE_URL`, ...) set to `base/<agent>`: for
/// settings that need them where no message is sent.
pub fn agent_queue_variables(base: &str) -> Vec<(String, String)> {
    autocrew_shared::domain::AgentKind::WORKERS
        .iter()
        .map(|&agent| {
            (
                autocrew_shared::services::AgentQueues::variable(agent).to_owned(),
                format!("{base}/{agent}"),
            )
        })
        .collect()
}

/// CPU seconds used so far by a process (and its reaped children), from /proc.
pub fn cpu_of(pid: u32) -> f64 {
    let (user, system) = cpu_split_of(pid);
    user + system
}

/// `cpu_of` split into user and kernel (system) seconds.
pub fn cpu_split_of(pid: u32) -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (0.0, 0.0);
    };
    // Fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse::<f64>().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    // utime, stime, cutime, cstime are fields 14-17 (1-based), 11-14 after the ')'.
    let at = |i: usize| fields.get(i).copied().unwrap_or(0.0) / 100.0;
    (at(11) + at(13), at(12) + at(14))
}

/// The deadline of an agent step's invocation as Lambda gives it (the template's 900 s):
/// for tests that call a step's handler directly.
pub fn lambda_deadline() -> autocrew_steps::Deadline {
    autocrew_steps::Deadline::after(std::time::Duration::from_secs(900))
}

/// Runs "Build a recipe app for keto dieters" as a user would (`autocrew run`, approvals
/// given as shown) on a runner whose model is `server` (the offline model behind the
/// compatible wire format, priced by `infra/local/compatible-models.json`), with `extra`
/// variables over its environment; the runner is stopped before the report comes back.
pub async fn run_on_compatible(
    db: &TestDb,
    server: &compatible_server::CompatibleServer,
    extra: &[(&'static str, &str)],
    timeout: std::time::Duration,
) -> anyhow::Result<autocrew_cli::run::RunReport> {
    let root = repo_root();
    let prices = root.join("infra/local/compatible-models.json");
    let mut variables = std::collections::HashMap::from([
        ("DATABASE_URL", db.url()),
        ("OPENAI_BASE_URL", server.base_url.clone()),
        ("LLM_MODEL", "offline-template-1".to_owned()),
        ("MODEL_TABLE_PATH", prices.display().to_string()),
    ]);
    variables.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let options = autocrew_runner::Options {
        root,
        prefix: unique("compat"),
        port: 0,
        concurrency_per_queue: 10,
    };
    let runner = autocrew_runner::start(options, &EnvOver(variables)).await?;
    let base = format!("http://{}", runner.addr);
    let report = autocrew_cli::run::run(
        &base,
        "Build a recipe app for keto dieters",
        autocrew_cli::run::Following {
            quiet: true,
            timeout,
            auto_approve: true,
            save_session: false,
            show_urls: false,
        },
    )
    .await;
    runner.stop().await;
    report
}

/// The `task_completed` of a task completed by hand (no summary, files or steps).
pub fn completed_event(
    task: &autocrew_shared::domain::records::Task,
) -> autocrew_shared::domain::events::TaskCompleted {
    autocrew_shared::domain::events::TaskCompleted {
        task: autocrew_shared::domain::events::TaskRef::of(task),
        summary: String::new(),
        files: 0,
        files_checked: 0,
        steps: 0,
        duration_ms: 0,
        invocations: 0,
        task_usage: Default::default(),
        remembered: 0,
    }
}

/// The embedding calls memory adds to a run of `tasks` tasks, each a ledger row: the plan's
/// recall and the project's gist, and each task's recall and what it remembered.
pub fn memory_embeddings(tasks: usize) -> u64 {
    2 + 2 * tasks as u64
}
