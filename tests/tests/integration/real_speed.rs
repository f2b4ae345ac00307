//! Agent work at a real model's pace (issue 20): a run whose tasks span several
//! invocations, each thing done once; a stream that stalls moves on to the next model; a
//! stream that never ends is cut at `max_tokens` and charged. The compatible server plays
//! the pace (`autocrew_tests::pace`); the runner's agent steps get a timeout of a few
//! seconds so that a short test still crosses invocations.

use autocrew_shared::adapters::llm::{AnthropicClient, Patience, select};
use autocrew_shared::config::Secret;
use autocrew_shared::crew::agents;
use autocrew_shared::domain::records::Attribution;
use autocrew_shared::domain::routing::ModelRef;
use autocrew_shared::domain::{AgentKind, MicroUsd};
use autocrew_shared::ports::llm::{Content, LlmClient, LlmError, LlmRequest, LlmResponse};
use autocrew_shared::services::{Call, Gateway, GatewaySettings};
use autocrew_tests::compatible_server::CompatibleServer;
use autocrew_tests::pace::Pace;
use autocrew_tests::{TestDb, reply, run_on_compatible, seed};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_at_a_real_pace_spans_invocations_and_does_each_thing_once() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let pace = Pace {
        tokens_per_sec: Some(400.0),
        first_token: Duration::from_millis(150),
        file_tokens: Some(300),
        ..Pace::default()
    };
    let server = CompatibleServer::start_paced(0, pace).await?;
    // A turn takes about a second here; an invocation starts a second turn only with room
    // for a whole turn of max_tokens (minutes), so each one makes exactly one.
    let scaled = [
        ("LLM_CACHE_TTL_SECS", "0"),
        ("RUNNER_AGENT_TIMEOUT_SECS", "8"),
    ];
    let report = run_on_compatible(&db, &server, &scaled, Duration::from_secs(300)).await?;
    assert!(report.succeeded, "the run failed: {}", report.run);

    let client = db.pool.get().await?;
    let run_id = uuid::Uuid::parse_str(report.run["run"]["id"].as_str().unwrap_or_default())?;
    let attempts = client
        .query(
            "SELECT t.task_key, a.attempt_no, a.invocations, a.busy_ms, a.status::text
             FROM task_attempts a JOIN tasks t ON t.id = a.task_id WHERE t.run_id = $1",
            &[&run_id],
        )
        .await?;
    let spans: Vec<(String, i32, i32, i64, String)> = attempts
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert!(
        spans
            .iter()
            .any(|(_, _, invocations, _, _)| *invocations >= 3),
        "some task used three or more invocations: {spans:?}"
    );
    // No attempt failed (one parks for the landing page's approval), each one's time recorded.
    assert!(
        spans.iter().all(|(_, _, _, busy, status)| *busy > 0
            && ["succeeded", "parked"].contains(&status.as_str())),
        "{spans:?}"
    );

    // One ledger row per model call, each answered: no turn was asked twice.
    let served = server.usage();
    let rows = client
        .query(
            "SELECT outcome::text, count(*) FROM llm_calls WHERE run_id = $1 AND provider <> 'offline' GROUP BY 1",
            &[&run_id],
        )
        .await?;
    let by_outcome: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        by_outcome,
        HashMap::from([("ok".to_owned(), served.len() as i64)]),
        "every call the server answered has one row, and no other row"
    );

    // Every file written once, every effect done once.
    let events = client
        .query(
            "SELECT kind::text, payload FROM events WHERE run_id = $1",
            &[&run_id],
        )
        .await?;
    let mut written: HashMap<String, u32> = HashMap::new();
    let mut executed: HashMap<String, u32> = HashMap::new();
    for row in &events {
        let (kind, payload): (String, serde_json::Value) = (row.get(0), row.get(1));
        match kind.as_str() {
            "artifact_stored" => {
                *written
                    .entry(payload["object_key"].to_string())
                    .or_default() += 1
            }
            "action_executed" => {
                *executed
                    .entry(format!("{}{}", payload["task_id"], payload["tool"]))
                    .or_default() += 1
            }
            _ => {}
        }
    }
    assert!(
        !written.is_empty() && written.values().all(|n| *n == 1),
        "{written:?}"
    );
    assert!(executed.values().all(|n| *n == 1), "{executed:?}");
    // The developer's files are an ordinary size, and checked.
    let sizes = client
        .query(
            "SELECT max(size_bytes) FROM artifacts WHERE run_id = $1 AND key LIKE '%.ts%'",
            &[&run_id],
        )
        .await?;
    let largest: Option<i64> = sizes[0].get(0);
    assert!(largest.unwrap_or(0) >= 1200, "{largest:?}");
    Ok(())
}

/// A model that answers at once: the fallback after a stalled one.
struct Steady;

#[async_trait::async_trait]
impl LlmClient for Steady {
    fn provider(&self) -> &str {
        "openai"
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let text = "Eat keto, stress less.".to_owned();
        Ok(reply(
            "openai",
            request,
            vec![Content::Text { text }],
            (20, 6),
        ))
    }
}

/// A gateway over the offline setup plus `anthropic`, pinned to its Haiku, with OpenAI's
/// Luna (`Steady`) as the fallback when `fallback`.
fn gateway(db: &TestDb, anthropic: Arc<dyn LlmClient>, fallback: bool) -> Gateway {
    let mut models = select::from_env(&HashMap::new())
        .expect("offline setup")
        .models
        .pinned_to(anthropic, "claude-haiku-5-5");
    if fallback {
        models.providers.insert("openai".into(), Arc::new(Steady));
        models.fallbacks = vec![ModelRef {
            provider: "openai".into(),
            model: "gpt-6-luna".into(),
        }];
    }
    let settings = GatewaySettings {
        retries_per_model: 1,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(20),
        cache_ttl: None,
        ..GatewaySettings::default()
    };
    Gateway::new(
        models,
        autocrew_shared::adapters::gateway_stores(&db.pool),
        settings,
    )
}

fn patient(idle: Duration) -> Patience {
    Patience {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(5),
        idle,
        min_tokens_per_sec: 20,
    }
}

/// A marketer's first turn, as the agent loop asks it, with `max_tokens`.
fn ask(max_tokens: u32) -> LlmRequest {
    let routing = autocrew_shared::domain::routing::RoutingPolicy::builtin().expect("routing");
    let profiles = autocrew_shared::crew::AgentProfiles::builtin(&routing).expect("profiles");
    let context = agents::AgentTaskContext {
        agent: AgentKind::Marketer,
        command: "Build a recipe app for keto dieters".into(),
        product: "Recipe app for keto dieters".into(),
        task_key: "landing_copy".into(),
        title: "Write the landing page copy".into(),
        description: "The landing page's copy.".into(),
        upstream: Vec::new(),
        recalled: Vec::new(),
    };
    let first = vec![agents::first_message(&context)];
    LlmRequest {
        max_tokens,
        ..agents::turn_request(profiles.get(AgentKind::Marketer), first)
    }
}

/// (model, outcome, output tokens, cost, error) of the run's ledger rows, in order.
async fn ledger(
    db: &TestDb,
    run: uuid::Uuid,
) -> anyhow::Result<Vec<(String, String, i32, i64, Option<String>)>> {
    let rows = db
        .pool
        .get()
        .await?
        .query(
            "SELECT model, outcome::text, output_tokens, cost_micro_usd, error FROM llm_calls
             WHERE run_id = $1 ORDER BY created_at, attempt",
            &[&run],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_fails_after_the_idle_timeout_and_the_next_model_answers()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let server = CompatibleServer::start_paced(
        0,
        Pace {
            tokens_per_sec: Some(50.0),
            stall_every: Some(1),
            ..Pace::default()
        },
    )
    .await?;
    let base = server.base_url.trim_end_matches("/v1");
    let key = Secret::new("sk-ant-test".to_owned());
    let anthropic = AnthropicClient::new(base, key, patient(Duration::from_secs(1)))?;
    let gateway = gateway(&db, Arc::new(anthropic), true);
    let sink = |_: &str| {};

    let answer = gateway
        .call(Call {
            on_text: Some(&sink),
            ..call(&seeded, ask(256))
        })
        .await?;

    assert_eq!(answer.response.provider, "openai");
    let rows = ledger(&db, seeded.run.id.0).await?;
    let stalled: Vec<_> = rows.iter().filter(|r| r.0 == "claude-haiku-5-5").collect();
    assert_eq!(
        stalled.len(),
        2,
        "a try and a retry on the stalled model: {rows:?}"
    );
    assert!(
        stalled.iter().all(|r| r.1 == "error"
            && r.4
                .as_deref()
                .is_some_and(|e| e.contains("stalled: no byte for 1 s"))),
        "{rows:?}"
    );
    // Each stall was cut by the idle timeout (the message says so), not by a total one.
    assert_eq!(rows.last().map(|r| r.1.as_str()), Some("ok"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_never_ends_is_cut_at_max_tokens_and_charged_for_what_it_sent()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let server = CompatibleServer::start_paced(
        0,
        Pace {
            endless_model: Some("claude-haiku-5-5".into()),
            ..Pace::default()
        },
    )
    .await?;
    let base = server.base_url.trim_end_matches("/v1");
    let key = Secret::new("sk-ant-test".to_owned());
    let anthropic = AnthropicClient::new(base, key, patient(Duration::from_secs(5)))?;
    let sink = |_: &str| {};

    let request = LlmRequest {
        model: "claude-haiku-5-5".into(),
        ..ask(100)
    };
    let direct = anthropic.stream(&request, &sink).await;
    let gateway = gateway(&db, Arc::new(anthropic), false);
    let through = gateway
        .call(Call {
            on_text: Some(&sink),
            ..call(&seeded, ask(100))
        })
        .await;

    assert!(
        matches!(
            direct,
            Err(LlmError::Overran {
                max_tokens: 100,
                ..
            })
        ),
        "{direct:?}"
    );
    assert!(through.is_err(), "nothing else to answer");
    let rows = ledger(&db, seeded.run.id.0).await?;
    assert_eq!(rows.len(), 2, "a try and a retry: {rows:?}");
    for (_, outcome, output, cost, error) in &rows {
        assert_eq!(outcome, "error");
        assert!(*output >= 100, "what it sent is counted: {output}");
        assert!(*cost > MicroUsd::ZERO.0, "and charged");
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("past max_tokens (100)")),
            "{error:?}"
        );
    }
    Ok(())
}

/// A marketer's call of `request` in the seeded run: nothing streamed, no limit to waits.
fn call<'a>(seeded: &autocrew_tests::Seeded, request: LlmRequest) -> Call<'a> {
    Call {
        attribution: Attribution {
            user_id: seeded.user.id,
            project_id: seeded.project.id,
            run_id: Some(seeded.run.id),
            task_id: None,
            agent: AgentKind::Marketer,
        },
        tier: "standard",
        request,
        on_text: None,
        semantic_scope: None,
        accept: None,
        share_cache: false,
        wait_until: None,
        on_wait: None,
    }
}

/// (model, outcome, waited ms) of the run's ledger rows, in order.
async fn waits(db: &TestDb, run: uuid::Uuid) -> anyhow::Result<Vec<(String, String, i32)>> {
    let rows = db
        .pool
        .get()
        .await?
        .query(
            "SELECT model, outcome::text, waited_ms FROM llm_calls WHERE run_id = $1 ORDER BY created_at, attempt",
            &[&run],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_provider_is_waited_out_as_it_asked_and_the_wait_is_recorded()
-> anyhow::Result<()> {
    use autocrew_tests::replay::{Recorded, ReplayServer};
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let server = ReplayServer::start(vec![
        Recorded::from_file(529, "anthropic-error-529.json").with_header("retry-after", "2"),
        Recorded::ok("anthropic-tool-use.json"),
    ])
    .await?;
    let key = Secret::new("sk-ant-test".to_owned());
    let anthropic = AnthropicClient::new(&server.url, key, patient(Duration::from_secs(5)))?;
    let gateway = gateway(&db, Arc::new(anthropic), false);
    let told = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let tell = {
        let told = told.clone();
        move |why: &str| told.lock().expect("told").push(why.to_owned())
    };

    let answer = gateway
        .call(Call {
            wait_until: Some(std::time::Instant::now() + Duration::from_secs(30)),
            on_wait: Some(&tell),
            ..call(&seeded, ask(256))
        })
        .await?;

    assert_eq!(answer.response.provider, "anthropic");
    let rows = waits(&db, seeded.run.id.0).await?;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].1.as_str(), rows[0].2), ("error", 0));
    assert!(
        rows[1].1 == "ok" && rows[1].2 >= 2000,
        "the 2 s asked for were waited: {rows:?}"
    );
    let told = told.lock().expect("told").clone();
    assert!(
        told.iter()
            .any(|t| t.starts_with("waiting 2 s for anthropic, as it asked")),
        "{told:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_would_pass_the_calls_limit_moves_on_at_once() -> anyhow::Result<()> {
    use autocrew_tests::replay::{Recorded, ReplayServer};
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let server = ReplayServer::start(vec![
        Recorded::from_file(429, "anthropic-error-429.json").with_header("retry-after", "30"),
    ])
    .await?;
    let key = Secret::new("sk-ant-test".to_owned());
    let anthropic = AnthropicClient::new(&server.url, key, patient(Duration::from_secs(5)))?;
    let gateway = gateway(&db, Arc::new(anthropic), true);

    let answer = gateway
        .call(Call {
            // The run's deadline (or the invocation's room) is 5 s away: 30 s cannot be waited.
            wait_until: Some(std::time::Instant::now() + Duration::from_secs(5)),
            ..call(&seeded, ask(256))
        })
        .await?;

    assert_eq!(
        answer.response.provider, "openai",
        "the next model answered"
    );
    // No wait and no second try of the limited model: the chain moved on at once.
    let rows = waits(&db, seeded.run.id.0).await?;
    assert_eq!(
        rows,
        vec![
            ("claude-haiku-5-5".to_owned(), "error".to_owned(), 0),
            ("gpt-6-luna".to_owned(), "ok".to_owned(), 0)
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_providers_cap_a_call_waits_for_a_slot_and_says_so() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    // A slow model: the first call holds the only slot for about two seconds.
    let server = CompatibleServer::start_paced(
        0,
        Pace {
            tokens_per_sec: Some(40.0),
            first_token: Duration::from_millis(500),
            ..Pace::default()
        },
    )
    .await?;
    let base = server.base_url.trim_end_matches("/v1");
    let key = Secret::new("sk-ant-test".to_owned());
    let anthropic = AnthropicClient::new(base, key, patient(Duration::from_secs(5)))?;
    let mut gateway = gateway(&db, Arc::new(anthropic), false);
    let mut settings = gateway.settings().clone();
    settings
        .concurrency_by_provider
        .insert("anthropic".into(), 1);
    gateway = gateway.with_settings(settings);
    let told = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let tell = {
        let told = told.clone();
        move |why: &str| told.lock().expect("told").push(why.to_owned())
    };
    let sink = |_: &str| {};
    let one = || Call {
        on_text: Some(&sink),
        wait_until: Some(std::time::Instant::now() + Duration::from_secs(60)),
        on_wait: Some(&tell),
        ..call(&seeded, ask(256))
    };

    let (first, second) = tokio::join!(gateway.call(one()), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        gateway.call(one()).await
    });

    assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
    let rows = waits(&db, seeded.run.id.0).await?;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == "ok"), "{rows:?}");
    assert!(
        rows.iter().any(|r| r.2 >= 500),
        "the second waited for the slot: {rows:?}"
    );
    let told = told.lock().expect("told").clone();
    assert_eq!(
        told,
        vec!["waiting for anthropic: all 1 of its slots (anthropic) are in use".to_owned()]
    );
    Ok(())
}
