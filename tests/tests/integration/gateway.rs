//! The LLM gateway on Postgres: retries after `retry-after`, backoff then fallback along
//! the chain, the exact and semantic caches, per-provider concurrency slots and routing by
//! the budget left. Providers are real adapters against the replay server, or test models.

use async_trait::async_trait;
use autocrew_shared::adapters::llm::{OpenAiClient, select};
use autocrew_shared::domain::records::{Attribution, TokenUsage};
use autocrew_shared::domain::routing::ModelRef;
use autocrew_shared::domain::{AgentKind, Complexity};
use autocrew_shared::ports::llm::{Content, LlmClient, LlmError, LlmRequest, LlmResponse, Message};
use autocrew_shared::services::{Call, Gateway, GatewayModels, GatewaySettings, Source};
use autocrew_tests::replay::{Recorded, ReplayServer};
use autocrew_tests::{Seeded, TestDb, reply, seed};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Fast retries, so tests do not sleep through production backoffs.
fn quick() -> GatewaySettings {
    GatewaySettings {
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        ..GatewaySettings::default()
    }
}

/// The offline setup's models with `extra` providers, `primary` pinned when given.
fn models(extra: Vec<Arc<dyn LlmClient>>, pinned: Option<(&str, &str)>) -> GatewayModels {
    let mut models = select::from_env(&HashMap::new())
        .expect("offline setup")
        .models;
    for client in extra {
        models
            .providers
            .insert(client.provider().to_owned(), client);
    }
    if let Some((provider, model)) = pinned {
        models.primary = ModelRef {
            provider: provider.into(),
            model: model.into(),
        };
        models.pinned = true;
    }
    models
}

fn gateway(db: &TestDb, models: GatewayModels, settings: GatewaySettings) -> Gateway {
    Gateway::new(
        models,
        autocrew_shared::adapters::gateway_stores(&db.pool),
        settings,
    )
}

fn who(seeded: &Seeded) -> Attribution {
    Attribution {
        user_id: seeded.user.id,
        project_id: seeded.project.id,
        run_id: Some(seeded.run.id),
        task_id: None,
        agent: AgentKind::Marketer,
    }
}

fn ask(text: &str) -> LlmRequest {
    LlmRequest {
        model: String::new(),
        system: "You are a product marketer.".into(),
        messages: vec![Message::user(text)],
        tools: Vec::new(),
        max_tokens: 256,
        temperature: autocrew_shared::domain::Decimal::parse("0.4").ok(),
        response_schema: None,
        ..LlmRequest::default()
    }
}

fn call<'a>(seeded: &Seeded, tier: &'a str, text: &str) -> Call<'a> {
    Call {
        attribution: who(seeded),
        tier,
        request: ask(text),
        on_text: None,
        semantic_scope: None,
        accept: None,
        share_cache: false,
        wait_until: None,
        on_wait: None,
    }
}

/// (provider, model, outcome, cost, attempt) of every ledger row of the run, in order.
async fn ledger(
    db: &TestDb,
    seeded: &Seeded,
) -> anyhow::Result<Vec<(String, String, String, i64, i32)>> {
    let rows = db
        .pool
        .get()
        .await?
        .query(
            "SELECT provider, model, outcome::text, cost_micro_usd, attempt FROM llm_calls
             WHERE run_id = $1 ORDER BY created_at, attempt",
            &[&seeded.run.id.0],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect())
}

fn compatible(server: &ReplayServer, name: &str) -> anyhow::Result<Arc<dyn LlmClient>> {
    Ok(Arc::new(OpenAiClient::compatible(
        name,
        &format!("{}/v1", server.url),
        None,
        Duration::from_secs(5),
    )?))
}

/// Priced at $0.15/$0.60 per million, under the names the tests give their servers.
fn prices_for(models: &mut GatewayModels, names: &[&str]) -> anyhow::Result<()> {
    let rows: Vec<_> = names
        .iter()
        .map(|n| (*n, "llama3.1:8b", "0.15", "0.60"))
        .collect();
    models.table = Arc::new(autocrew_tests::model_table(&rows)?);
    Ok(())
}

/// A gateway pinned to `local/llama3.1:8b` on a replay server answering `answers`.
async fn on_local_server(
    db: &TestDb,
    answers: Vec<Recorded>,
) -> anyhow::Result<(ReplayServer, Gateway)> {
    let server = ReplayServer::start(answers).await?;
    let mut models = models(
        vec![compatible(&server, "local")?],
        Some(("local", "llama3.1:8b")),
    );
    prices_for(&mut models, &["local"])?;
    Ok((server, gateway(db, models, quick())))
}

#[tokio::test]
async fn a_rate_limit_waits_the_providers_retry_after_then_the_same_model_answers()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let (_server, gateway) = on_local_server(
        &db,
        vec![
            Recorded::from_file(429, "openai-error-429.json").with_header("retry-after", "1"),
            Recorded::ok("openai-chat-text.json"),
        ],
    )
    .await?;

    let started = Instant::now();
    let answer = gateway
        .call(call(&seeded, "standard", "Write the landing copy."))
        .await?;

    assert_eq!(answer.source, Source::Provider);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited the 1 s the provider asked"
    );
    let rows = ledger(&db, &seeded).await?;
    let outcomes: Vec<_> = rows.iter().map(|r| (r.2.as_str(), r.4)).collect();
    assert_eq!(
        outcomes,
        [("error", 1), ("ok", 2)],
        "every attempt is on the ledger"
    );
    assert!(
        rows[1].3 > 0 && rows[0].3 == 0,
        "only the answer is paid for"
    );
    Ok(())
}

#[tokio::test]
async fn a_provider_that_keeps_failing_is_retried_with_backoff_then_the_next_in_the_chain_answers()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    // No recorded answers: every request gets a 500.
    let broken = ReplayServer::start(Vec::new()).await?;
    let healthy = ReplayServer::start(vec![Recorded::ok("openai-chat-text.json")]).await?;
    let mut models = models(
        vec![
            compatible(&broken, "broken")?,
            compatible(&healthy, "healthy")?,
        ],
        Some(("broken", "llama3.1:8b")),
    );
    models.fallbacks = vec![ModelRef {
        provider: "healthy".into(),
        model: "llama3.1:8b".into(),
    }];
    prices_for(&mut models, &["broken", "healthy"])?;
    let gateway = gateway(&db, models, quick());

    let answer = gateway
        .call(call(&seeded, "standard", "Write the landing copy."))
        .await?;

    assert_eq!(answer.response.provider, "healthy");
    assert_eq!(broken.received().len(), 3, "one try and two retries");
    let rows: Vec<_> = ledger(&db, &seeded)
        .await?
        .into_iter()
        .map(|r| (r.0, r.2, r.4))
        .collect();
    assert_eq!(
        rows,
        [
            ("broken".into(), "error".into(), 1),
            ("broken".into(), "error".into(), 2),
            ("broken".into(), "error".into(), 3),
            ("healthy".into(), "ok".into(), 4)
        ]
    );
    Ok(())
}

#[tokio::test]
async fn an_identical_call_is_answered_from_the_cache_for_nothing_and_recorded_as_a_hit()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let answers = vec![Recorded::ok("openai-chat-text.json"); 2];
    let (server, gateway) = on_local_server(&db, answers).await?;

    let first = gateway
        .call(call(&seeded, "standard", "Write the landing copy."))
        .await?;
    let second = gateway
        .call(call(&seeded, "standard", "Write the landing copy."))
        .await?;
    let other = gateway
        .call(call(&seeded, "standard", "Write the pricing page."))
        .await?;

    assert_eq!(
        (first.source, second.source, other.source),
        (Source::Provider, Source::ExactCache, Source::Provider)
    );
    assert_eq!(second.response.content, first.response.content);
    assert_eq!(second.response.usage, TokenUsage::default());
    assert_eq!(
        server.received().len(),
        2,
        "the hit never reached the provider"
    );
    let rows = ledger(&db, &seeded).await?;
    assert_eq!((rows[1].2.as_str(), rows[1].3), ("cache_hit", 0));
    let run = autocrew_shared::ports::RunStore::run(
        &autocrew_shared::adapters::postgres::PgRunStore::new(db.pool.clone()),
        seeded.run.id,
    )
    .await?;
    assert_eq!(run.spent.0, rows[0].3 + rows[2].3, "the hit cost nothing");
    Ok(())
}

/// Answers after a pause, counting how many calls are in flight at once.
struct Slow {
    in_flight: AtomicU32,
    most: AtomicU32,
}

#[async_trait]
impl LlmClient for Slow {
    fn provider(&self) -> &str {
        "slow"
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(reply(
            "slow",
            request,
            vec![Content::Text { text: "ok".into() }],
            (1, 1),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_calls_than_the_providers_limit_are_in_flight_across_gateways() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let slow = Arc::new(Slow {
        in_flight: AtomicU32::new(0),
        most: AtomicU32::new(0),
    });
    let mut models = models(vec![slow.clone()], Some(("slow", "llama3.1:8b")));
    prices_for(&mut models, &["slow"])?;
    let settings = GatewaySettings {
        concurrency: 2,
        cache_ttl: None,
        ..quick()
    };
    // Two gateways over one database stand for two Lambda processes.
    let gateways = [
        gateway(&db, models.clone(), settings.clone()),
        gateway(&db, models, settings),
    ];

    let calls = (0..8).map(|i| {
        let gateway = gateways[i % 2].clone();
        let seeded = &seeded;
        async move {
            gateway
                .call(call(seeded, "standard", &format!("question {i}")))
                .await
        }
    });
    let answers = futures::future::join_all(calls).await;

    assert!(answers.iter().all(|a| a.is_ok()), "{answers:?}");
    assert_eq!(slow.most.load(Ordering::SeqCst), 2);
    Ok(())
}

/// Answers with its own provider name as the text.
struct Named(&'static str);

#[async_trait]
impl LlmClient for Named {
    fn provider(&self) -> &str {
        self.0
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let text = format!("{}:{}", self.0, request.model);
        Ok(reply(
            self.0,
            request,
            vec![Content::Text { text }],
            (100, 100),
        ))
    }
}

#[tokio::test]
async fn routing_follows_the_policy_and_steps_down_as_the_run_budget_runs_low() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let models = models(
        vec![Arc::new(Named("anthropic")), Arc::new(Named("openai"))],
        None,
    );
    let gateway = gateway(&db, models, quick());
    let profiles =
        autocrew_shared::crew::AgentProfiles::builtin(gateway.models().routing.as_ref())?;
    let developer = profiles
        .get(AgentKind::Developer)
        .model_policy
        .tier_for(Complexity::Complex)
        .to_owned();
    let ops = profiles
        .get(AgentKind::Ops)
        .model_policy
        .tier_for(Complexity::Simple)
        .to_owned();

    let strong = gateway
        .call(call(&seeded, &developer, "Build the app"))
        .await?;
    let cheap = gateway
        .call(call(&seeded, &ops, "Write the checklist"))
        .await?;
    // 80% of the $5 run budget spent: below 25% left, one tier down.
    db.pool
        .get()
        .await?
        .execute(
            "UPDATE runs SET spent_micro_usd = 4000000 WHERE id = $1",
            &[&seeded.run.id.0],
        )
        .await?;
    let low = gateway
        .call(call(&seeded, &developer, "Build the settings screen"))
        .await?;

    assert_eq!(strong.response.text(), "anthropic:claude-sonnet-5-5");
    assert_eq!(cheap.response.text(), "openai:gpt-6-luna");
    assert_eq!(
        (low.route.tier.as_str(), low.route.downgraded_by),
        ("standard", 1)
    );
    assert_eq!(low.response.text(), "anthropic:claude-haiku-5-5");
    Ok(())
}

#[tokio::test]
async fn the_semantic_cache_answers_a_close_question_only_for_a_user_who_opted_in()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let models = models(
        vec![Arc::new(Named("openai"))],
        Some(("openai", "gpt-6-luna")),
    );
    let gateway = gateway(&db, models, quick());
    let ask = |text: &str| Call {
        semantic_scope: Some("plan"),
        ..call(&seeded, "standard", text)
    };

    // Not opted in: nothing is embedded or kept.
    gateway.call(ask("Build a meal planner for vegans")).await?;
    let again = gateway
        .call(ask("build a meal planner for vegans!"))
        .await?;
    assert_eq!(again.source, Source::Provider);

    db.pool
        .get()
        .await?
        .execute(
            "UPDATE users SET semantic_cache_threshold = 0.9 WHERE id = $1",
            &[&seeded.user.id.0],
        )
        .await?;
    let first = gateway
        .call(ask("Build a recipe app for keto dieters"))
        .await?;
    let close = gateway
        .call(ask("build a recipe app for keto dieters!"))
        .await?;
    let far = gateway
        .call(ask("Build a CRM for dentists in Berlin"))
        .await?;

    assert_eq!(
        (first.source, close.source, far.source),
        (Source::Provider, Source::SemanticCache, Source::Provider)
    );
    assert_eq!(close.response.text(), first.response.text());
    let client = db.pool.get().await?;
    let stored = client
        .query_one("SELECT embedding_model, embedding_dim, vector_dims(embedding) FROM llm_semantic_cache LIMIT 1", &[])
        .await?;
    let (model, dim, dims): (String, i32, i32) = (stored.get(0), stored.get(1), stored.get(2));
    assert_eq!(
        (model.as_str(), dim, dims),
        ("offline-hash-1536", 1536, 1536)
    );
    let hit: String = client
        .query_one(
            "SELECT error FROM llm_calls WHERE outcome = 'cache_hit' AND run_id = $1",
            &[&seeded.run.id.0],
        )
        .await?
        .get(0);
    assert!(hit.starts_with("semantic cache: similarity"), "{hit}");
    Ok(())
}

#[tokio::test]
async fn a_model_the_budget_cannot_cover_is_refused_and_a_cheaper_one_of_the_chain_answers()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let models = models(vec![Arc::new(Named("openai"))], None);
    let gateway = gateway(&db, models, quick());
    // A $0.001 run: gpt-6-sol's worst case (256 output tokens at $10 per million, plus the
    // prompt) is over it, gpt-6-luna's ($0.50 per million) is not.
    db.pool
        .get()
        .await?
        .execute(
            "UPDATE runs SET budget_micro_usd = 1000 WHERE id = $1",
            &[&seeded.run.id.0],
        )
        .await?;

    let answer = gateway
        .call(call(&seeded, "strong", "Build the app"))
        .await?;

    assert_eq!(answer.response.text(), "openai:gpt-6-luna");
    let rows: Vec<_> = ledger(&db, &seeded)
        .await?
        .into_iter()
        .map(|r| (r.1, r.2))
        .collect();
    assert_eq!(
        rows,
        [
            ("gpt-6-sol".into(), "refused".into()),
            ("gpt-6-luna".into(), "ok".into())
        ]
    );
    let refusal: String = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT error FROM llm_calls WHERE outcome = 'refused' AND run_id = $1",
            &[&seeded.run.id.0],
        )
        .await?
        .get(0);
    assert!(refusal.contains("budget_exceeded"), "{refusal}");
    Ok(())
}

#[tokio::test]
async fn the_exact_cache_answers_only_the_user_who_asked_unless_a_call_may_share()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let ana = seed(&db, 4).await?;
    let ben = seed(&db, 4).await?;
    let answers = vec![Recorded::ok("openai-chat-text.json"); 4];
    let (server, gateway) = on_local_server(&db, answers).await?;
    let shared = |seeded: &Seeded| Call {
        share_cache: true,
        wait_until: None,
        on_wait: None,
        ..call(seeded, "standard", "Summarise the style guide.")
    };

    let anas = gateway
        .call(call(&ana, "standard", "Write the landing copy."))
        .await?;
    let bens = gateway
        .call(call(&ben, "standard", "Write the landing copy."))
        .await?;
    let anas_again = gateway
        .call(call(&ana, "standard", "Write the landing copy."))
        .await?;
    let shared_by_ana = gateway.call(shared(&ana)).await?;
    let shared_by_ben = gateway.call(shared(&ben)).await?;

    assert_eq!(
        (anas.source, bens.source, anas_again.source),
        (Source::Provider, Source::Provider, Source::ExactCache),
        "Ben's identical prompt is not answered from Ana's"
    );
    assert_eq!(
        (shared_by_ana.source, shared_by_ben.source),
        (Source::Provider, Source::ExactCache),
        "a call that may share is answered across users"
    );
    assert_eq!(server.received().len(), 3);
    Ok(())
}

#[tokio::test]
async fn an_image_is_priced_reserved_against_the_budget_and_written_to_the_ledger()
-> anyhow::Result<()> {
    use autocrew_shared::adapters::llm::{OfflineImages, OpenAiImages};
    use autocrew_shared::ports::{ImageMaker, ImageRequest};
    use base64::Engine;
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let request = ImageRequest {
        prompt: "A flat logo for a keto recipe app, green and cream".into(),
        size: "1024x1024".into(),
        quality: "medium".into(),
        transparent: true,
    };
    let (png, _) = OfflineImages.generate(&request).await?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    // The Images API's answer for a GPT Image model: base64 only, and the tokens charged.
    let server = ReplayServer::start(vec![Recorded::json(
        200,
        &format!(
            r#"{{"created": 1795640000, "background": "transparent", "output_format": "png", "quality": "medium", "size": "1024x1024", "data": [{{"b64_json": "{b64}"}}], "usage": {{"input_tokens": 30, "input_tokens_details": {{"image_tokens": 0, "text_tokens": 30}}, "output_tokens": 1056, "total_tokens": 1086}}}}"#
        ),
    )])
    .await?;
    let mut models = models(Vec::new(), None);
    models.images = Arc::new(OpenAiImages::new(
        &server.url,
        autocrew_shared::config::Secret::new("sk-recorded".to_owned()),
        "gpt-image-2.6-sunburst",
        Duration::from_secs(5),
    )?);
    let gateway = gateway(&db, models, quick());

    let image = gateway
        .image(who(&seeded), &request)
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    assert_eq!(image.png, png);
    // 30 prompt tokens at $5 and 1056 image tokens at $30 per million.
    assert_eq!(image.cost.0, 30 * 5 + 1056 * 30);
    assert_eq!(
        ledger(&db, &seeded).await?,
        [(
            "openai".into(),
            "gpt-image-2.6-sunburst".into(),
            "ok".into(),
            31_830,
            1
        )]
    );
    let sent = &server.received()[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/images/generations")
    );
    assert_eq!(sent.headers["authorization"], "Bearer sk-recorded");
    // GPT Image models answer base64 only: no response_format is sent.
    assert_eq!(
        sent.body,
        serde_json::json!({
            "model": "gpt-image-2.6-sunburst", "prompt": request.prompt, "n": 1,
            "size": "1024x1024", "quality": "medium", "background": "transparent",
            "output_format": "png"
        })
    );

    // A run whose budget cannot cover the image's worst case is refused before the call.
    db.pool
        .get()
        .await?
        .execute(
            "UPDATE runs SET budget_micro_usd = 40000 WHERE id = $1",
            &[&seeded.run.id.0],
        )
        .await?;
    let refused = gateway.image(who(&seeded), &request).await?.unwrap_err();
    assert!(refused.to_string().contains("budget_exceeded"), "{refused}");
    assert_eq!(
        server.received().len(),
        1,
        "the refused image was never asked for"
    );
    Ok(())
}
