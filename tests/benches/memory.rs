//! Memory recall at scale: one user's 100,000 memories among 1,000,000 rows of 1536-dimension
//! vectors, searched as a task's recall searches them (`PgMemoryStore::nearest`: past 5,000
//! memories in scope, the HNSW index with pgvector's iterative scan, filtered to the user
//! and project) next to an exact scan of the same rows. Run with `make bench-memory` (it starts the
//! stack); it needs about 18 GB of free disk for its own database, dropped at the end.
//!
//! Prints the load and index build times, then p50 and p95 latency of each search and the
//! HNSW search's recall@10 against the exact one, over the same queries in one run.
//! `MEMORY_ROWS`, `MEMORY_USER_ROWS` and `MEMORY_QUERIES` change the sizes (defaults
//! 1,000,000, 100,000 and 200).
//!
//! The vectors are synthetic but shaped like embeddings: unit vectors around 2,000 topics
//! (cosine about 0.7 to their topic), and each query is a fresh point near one of the
//! user's topics, so the nearest ten are a real neighbourhood, not noise.

use autocrew_shared::adapters::postgres::PgMemoryStore;
use autocrew_shared::domain::{AgentKind, MemoryKind, ProjectId, UserId};
use autocrew_shared::ports::MemoryStore;
use autocrew_shared::ports::gateway::Embedding;
use autocrew_tests::TestDb;
use std::time::{Duration, Instant};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use uuid::Uuid;

const DIM: usize = 1536;
const TOPICS: usize = 2000;
const MODEL: &str = "bench-embedding-1536";
/// The other rows belong to this many other users.
const OTHER_USERS: usize = 90;

fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: fast even unoptimised, and the same data on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// A point near `topic`: cosine about 0.7 to it.
fn near(rng: &mut Rng, topic: &[f32]) -> Vec<f32> {
    // Uniform noise of this size has about the topic's own norm.
    let scale = (3.0 / DIM as f32).sqrt();
    normalised(topic.iter().map(|t| t + rng.unit() * scale).collect())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows = number("MEMORY_ROWS", 1_000_000);
    let user_rows = number("MEMORY_USER_ROWS", 100_000).min(rows);
    let queries = number("MEMORY_QUERIES", 200);
    let db = TestDb::migrated().await?;
    let client = db.pool.get().await?;

    // The users and projects: the user measured, and the others the rows belong to.
    let mut owners = Vec::new();
    for n in 0..=OTHER_USERS {
        let user = Uuid::new_v4();
        let project = Uuid::new_v4();
        client
            .execute(
                "INSERT INTO users (id, email, display_name) VALUES ($1, $2, 'Bench')",
                &[&user, &format!("bench{n}@example.com")],
            )
            .await?;
        client
            .execute(
                "INSERT INTO projects (id, user_id, name) VALUES ($1, $2, $3)",
                &[&project, &user, &format!("Bench project {n}")],
            )
            .await?;
        owners.push((user, project));
    }
    let (user, project) = owners[0];

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let topics: Vec<Vec<f32>> = (0..TOPICS)
        .map(|_| normalised((0..DIM).map(|_| rng.unit()).collect()))
        .collect();
    // The user writes about a tenth of the topics, as one person's projects would.
    let user_topics: Vec<usize> = (0..TOPICS / 10).map(|_| rng.below(TOPICS)).collect();

    // Loaded without the index, which is then built once: how a restore or a first
    // migration over existing rows goes, and much faster than 1,000,000 HNSW inserts. Then
    // vacuumed, as autovacuum would: the count that chooses the path reads the index only.
    client
        .batch_execute("DROP INDEX agent_memory_hnsw_1536")
        .await?;
    let types = client
        .prepare(
            "INSERT INTO agent_memory (id, user_id, project_id, agent, content, embedding,
                 embedding_model, embedding_dim, kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await?
        .params()
        .to_vec();
    let started = Instant::now();
    let sink = client
        .copy_in(
            "COPY agent_memory (id, user_id, project_id, agent, content, embedding,
                 embedding_model, embedding_dim, kind) FROM STDIN BINARY",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures::pin_mut!(writer);
    for n in 0..rows {
        let (owner, topic) = if n < user_rows {
            (owners[0], user_topics[rng.below(user_topics.len())])
        } else {
            (owners[1 + n % OTHER_USERS], rng.below(TOPICS))
        };
        // A tenth of the user's memories are user-wide preferences.
        let project = (n % 10 != 0 || n >= user_rows).then_some(owner.1);
        let vector = pgvector::Vector::from(near(&mut rng, &topics[topic]));
        let content = format!("memory {n} on topic {topic}");
        writer
            .as_mut()
            .write(&[
                &Uuid::new_v4(),
                &owner.0,
                &project,
                &AgentKind::Marketer,
                &content,
                &vector,
                &MODEL,
                &(DIM as i32),
                &MemoryKind::Fact,
            ])
            .await?;
        if (n + 1) % 100_000 == 0 {
            eprintln!(
                "  loaded {} rows ({:.0} s)",
                n + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    writer.as_mut().finish().await?;
    let loaded = started.elapsed();
    let started = Instant::now();
    client
        .batch_execute(
            "SET maintenance_work_mem = '10GB'; SET max_parallel_maintenance_workers = 1;
             CREATE INDEX agent_memory_hnsw_1536 ON agent_memory
                 USING hnsw ((embedding::vector(1536)) vector_cosine_ops) WHERE embedding_dim = 1536",
        )
        .await?;
    // A statement of its own: VACUUM runs outside any transaction.
    client.batch_execute("VACUUM ANALYZE agent_memory").await?;
    let built = started.elapsed();
    let size: String = client
        .query_one(
            "SELECT pg_size_pretty(pg_total_relation_size('agent_memory'))",
            &[],
        )
        .await?
        .get(0);
    println!(
        "memory bench: {rows} rows ({user_rows} of one user) of {DIM} dimensions loaded in {:.0} s, HNSW index built in {:.0} s; table and indexes {size}",
        loaded.as_secs_f64(),
        built.as_secs_f64()
    );

    let store = PgMemoryStore::new(db.pool.clone());
    let owner = (UserId(user), ProjectId(project));
    let exact_sql = "SELECT id FROM agent_memory
         WHERE user_id = $1 AND (project_id = $2 OR project_id IS NULL)
           AND embedding_model = $3 AND embedding_dim = 1536
         ORDER BY embedding <=> $4 LIMIT 10";
    let (mut indexed, mut exact) = (Vec::new(), Vec::new());
    let mut found = 0usize;
    for _ in 0..queries {
        let topic = user_topics[rng.below(user_topics.len())];
        let values = near(&mut rng, &topics[topic]);
        let embedding = Embedding {
            model: MODEL.into(),
            values: values.clone(),
        };
        let started = Instant::now();
        let hits = store.nearest(owner, None, &embedding, 10).await?;
        indexed.push(started.elapsed());
        let started = Instant::now();
        let truth: Vec<Uuid> = client
            .query(
                exact_sql,
                &[&user, &project, &MODEL, &pgvector::Vector::from(values)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        exact.push(started.elapsed());
        found += hits
            .iter()
            .filter(|h| truth.contains(&h.memory.id.0))
            .count();
    }
    indexed.sort();
    exact.sort();
    // The plan of the index path as the store runs it (the same settings and shape), so the
    // figures say which plan they measured.
    let probe = pgvector::Vector::from(near(&mut rng, &topics[user_topics[0]]));
    let mut session = db.pool.get().await?;
    let tx = session.transaction().await?;
    tx.batch_execute(
        "SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = 100;
         SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off",
    )
    .await?;
    let index_plan: Vec<String> = tx
        .query(
            "EXPLAIN (ANALYZE) SELECT id FROM agent_memory
             WHERE user_id = $1 AND (project_id = $2 OR project_id IS NULL)
               AND embedding_model = $3 AND embedding_dim = 1536
             ORDER BY embedding::vector(1536) <=> $4 LIMIT 10",
            &[&user, &project, &MODEL, &probe],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|l| l.contains("Scan") || l.contains("Execution") || l.contains("Sort"))
        .map(|l| l.chars().take(160).collect())
        .collect();
    tx.rollback().await?;
    println!("the index path's plan:\n  {}", index_plan.join("\n  "));
    let plan: Vec<String> = client
        .query(
            &format!("EXPLAIN {exact_sql}"),
            &[
                &user,
                &project,
                &MODEL,
                &pgvector::Vector::from(vec![0.1f32; DIM]),
            ],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    println!(
        "{queries} queries of the user's memories (the nearest 10 each):\n  HNSW (iterative scan, as recall runs): p50 {}, p95 {}\n  exact scan:                            p50 {}, p95 {}  ({})\n  recall@10 of HNSW against exact: {:.3}; p50 ratio exact/HNSW {:.1}x",
        ms(percentile(&indexed, 0.5)),
        ms(percentile(&indexed, 0.95)),
        ms(percentile(&exact, 0.5)),
        ms(percentile(&exact, 0.95)),
        plan.first().map(|l| l.trim()).unwrap_or(""),
        found as f64 / (queries * 10) as f64,
        percentile(&exact, 0.5).as_secs_f64() / percentile(&indexed, 0.5).as_secs_f64()
    );
    Ok(())
}
