//! The gateway's own cost per call: routing, the budget reservation and settlement, the
//! concurrency slot, the cache lookup and the ledger row, on the local Postgres, around a
//! model that answers at once. Run with `make bench` (it starts the stack) or, with the
//! stack up and `.local/stack.env` sourced, `cargo bench -p autocrew-tests --bench gateway`.
//!
//! Prints, for each case, calls, mean, p50, p95 and p99 per call, and the overhead over
//! calling the model directly. All cases run in one process, one after the other, so their
//! ratios are comparable even on a loaded machine.

use async_trait::async_trait;
use autocrew_shared::adapters::llm::select;
use autocrew_shared::domain::records::Attribution;
use autocrew_shared::domain::{AgentKind, MicroUsd};
use autocrew_shared::ports::llm::{Content, LlmClient, LlmError, LlmRequest, LlmResponse, Message};
use autocrew_shared::services::{Call, Gateway, GatewaySettings};
use autocrew_tests::{TestDb, reply, seed};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Answers at once, like a provider with no network.
struct Instant0;

#[async_trait]
impl LlmClient for Instant0 {
    fn provider(&self) -> &str {
        "bench"
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        Ok(reply(
            "bench",
            request,
            vec![Content::Text { text: "ok".into() }],
            (1200, 300),
        ))
    }
}

fn request(i: usize) -> LlmRequest {
    LlmRequest {
        model: "bench-1".into(),
        system: "You are a product marketer in a crew building a product.".into(),
        messages: vec![Message::user(format!(
            "Write landing copy variant {i} for a keto recipe app."
        ))],
        tools: Vec::new(),
        max_tokens: 1024,
        temperature: autocrew_shared::domain::Decimal::parse("0.4").ok(),
        response_schema: None,
        ..LlmRequest::default()
    }
}

struct Stats {
    name: &'static str,
    calls: usize,
    wall: Duration,
    samples: Vec<Duration>,
}

impl Stats {
    fn mean(&self) -> Duration {
        self.samples.iter().sum::<Duration>() / self.samples.len().max(1) as u32
    }

    fn pct(&self, p: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

async fn timed<F, Fut>(name: &'static str, calls: usize, mut one: F) -> anyhow::Result<Stats>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let mut samples = Vec::with_capacity(calls);
    for i in 0..calls {
        let t = Instant::now();
        one(i).await?;
        samples.push(t.elapsed());
    }
    Ok(Stats {
        name,
        calls,
        wall: started.elapsed(),
        samples,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let calls: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    // A budget no run of this bench can exhaust: another $100 paid ($40 of AI).
    autocrew_tests::funds::fund(&db.pool, seeded.user.id, 10000).await?;
    db.pool
        .get()
        .await?
        .execute(
            "UPDATE runs SET budget_micro_usd = $2 WHERE id = $1",
            &[&seeded.run.id.0, &MicroUsd::from_dollars(30).0],
        )
        .await?;
    let mut models = select::from_env(&HashMap::new())?
        .models
        .pinned_to(Arc::new(Instant0), "bench-1");
    models.table = Arc::new(autocrew_tests::model_table(&[(
        "bench", "bench-1", "0.15", "0.60",
    )])?);
    let stores = autocrew_shared::adapters::gateway_stores(&db.pool);
    let uncached = Gateway::new(
        models.clone(),
        stores.clone(),
        GatewaySettings {
            cache_ttl: None,
            ..GatewaySettings::default()
        },
    );
    let cached = Gateway::new(models, stores, GatewaySettings::default());
    let who = Attribution {
        user_id: seeded.user.id,
        project_id: seeded.project.id,
        run_id: Some(seeded.run.id),
        task_id: None,
        agent: AgentKind::Marketer,
    };
    let ask = |request: LlmRequest| Call {
        attribution: who,
        tier: "standard",
        request,
        on_text: None,
        semantic_scope: None,
        accept: None,
        share_cache: false,
        wait_until: None,
        on_wait: None,
    };
    // Warm the pool's connections and Postgres's plans.
    for i in 0..20 {
        uncached.call(ask(request(i))).await?;
    }

    let direct = timed("model called directly", calls * 4, |i| async move {
        Instant0.complete(&request(i)).await?;
        Ok(())
    })
    .await?;
    let routed = timed(
        "gateway, cache off (route, reserve, slot, call, settle, ledger)",
        calls,
        |i| {
            let (gateway, call) = (&uncached, ask(request(1000 + i)));
            async move {
                gateway.call(call).await?;
                Ok(())
            }
        },
    )
    .await?;
    let missed = timed(
        "gateway, cache on, every call a miss (+ lookup and store)",
        calls,
        |i| {
            let (gateway, call) = (&cached, ask(request(10_000 + i)));
            async move {
                gateway.call(call).await?;
                Ok(())
            }
        },
    )
    .await?;
    let hits = timed(
        "gateway, cache on, every call a hit (no reservation, no call)",
        calls,
        |_| {
            let (gateway, call) = (&cached, ask(request(10_000)));
            async move {
                gateway.call(call).await?;
                Ok(())
            }
        },
    )
    .await?;
    // Eight callers at once, as eight Lambda processes on one database would be.
    let started = Instant::now();
    let callers = (0..8).map(|c| {
        let gateway = uncached.clone();
        let ask = &ask;
        async move {
            for i in 0..calls / 8 {
                gateway.call(ask(request(100_000 + c * calls + i))).await?;
            }
            anyhow::Ok(())
        }
    });
    for result in futures::future::join_all(callers).await {
        result?;
    }
    let concurrent_wall = started.elapsed();

    let rows: i64 = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM llm_calls WHERE run_id = $1",
            &[&seeded.run.id.0],
        )
        .await?
        .get(0);
    let base = direct.mean();
    println!("gateway overhead per call ({calls} calls per case, local Postgres, one process)\n");
    println!(
        "{:<66} {:>7} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "case", "calls", "mean", "p50", "p95", "p99", "overhead"
    );
    for s in [&direct, &routed, &missed, &hits] {
        println!(
            "{:<66} {:>7} {:>9} {:>9} {:>9} {:>9} {:>11}",
            s.name,
            s.calls,
            us(s.mean()),
            us(s.pct(0.5)),
            us(s.pct(0.95)),
            us(s.pct(0.99)),
            us(s.mean().saturating_sub(base))
        );
        let _ = s.wall;
    }
    let done = (calls / 8) * 8;
    println!(
        "\n8 concurrent callers, cache off: {done} calls in {:.2} s = {:.0} calls/s ({} per call of wall time)",
        concurrent_wall.as_secs_f64(),
        done as f64 / concurrent_wall.as_secs_f64(),
        us(concurrent_wall / done as u32)
    );
    println!(
        "ratios: cache off / hit = {:.1}x; miss / cache off = {:.2}x; ledger rows written: {rows}",
        routed.mean().as_secs_f64() / hits.mean().as_secs_f64(),
        missed.mean().as_secs_f64() / routed.mean().as_secs_f64()
    );
    Ok(())
}
