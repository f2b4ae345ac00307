//! Migrations and the schema's agreement with the Rust enums.

use autocrew_shared::adapters::postgres::{self, MIGRATIONS};
use autocrew_shared::domain::{
    AgentKind, ApprovalStatus, AttemptStatus, Complexity, ConnectionStatus, DeploymentStatus,
    EmailPurpose, EventKind, FireOutcome, LlmCallOutcome, MemoryKind, MessageStatus, Priority,
    ReservationStatus, RunStatus, ScheduleCatchUp, ScheduleKind, ScheduleOverlap, Service,
    SubscriptionStatus, TaskStatus, WebFlowStatus,
};
use autocrew_tests::TestDb;

#[tokio::test]
async fn applying_the_migrations_twice_is_a_no_op() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let client = db.pool.get().await?;
    let tables_before: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await?
        .get(0);

    let again = postgres::migrate(&db.pool).await?;

    assert!(again.applied.is_empty());
    assert_eq!(again.already_applied, MIGRATIONS.len());
    let tables_after: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(tables_before, tables_after);
    Ok(())
}

#[tokio::test]
async fn concurrent_migrators_apply_each_migration_exactly_once() -> anyhow::Result<()> {
    let db = TestDb::empty().await?;
    let runs = (0..4).map(|_| {
        let pool = db.pool.clone();
        tokio::spawn(async move { postgres::migrate(&pool).await })
    });

    let reports = futures::future::join_all(runs).await;

    let applied: usize = reports
        .into_iter()
        .map(|r| r.expect("task").expect("migrate").applied.len())
        .sum();
    assert_eq!(applied, MIGRATIONS.len());
    Ok(())
}

#[tokio::test]
async fn the_schema_holds_every_table_a_durable_run_needs() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let client = db.pool.get().await?;
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for table in [
        "users",
        "projects",
        "runs",
        "tasks",
        "task_dependencies",
        "task_attempts",
        "conversations",
        "agent_memory",
        "deployments",
        "analytics_events",
        "llm_calls",
        "events",
        "approvals",
        "artifacts",
        "idempotency_keys",
        "user_period_spend",
        "subscriptions",
        "revenue_invoices",
        "revenue_refunds",
        "billing_customers",
        "billing_credits",
        "stripe_events",
        "overage_reports",
        "budget_reservations",
    ] {
        assert!(
            tables.iter().any(|t| t == table),
            "table {table} is missing"
        );
    }
    let hnsw: i64 = client
        .query_one("SELECT count(*) FROM pg_indexes WHERE tablename = 'agent_memory' AND indexdef ILIKE '%USING hnsw%'", &[])
        .await?
        .get(0);
    assert_eq!(hnsw, 1, "agent_memory needs its HNSW index");
    Ok(())
}

/// The Postgres labels of `pg_type`, in declaration order.
async fn labels(client: &deadpool_postgres::Client, pg_type: &str) -> anyhow::Result<Vec<String>> {
    let sql = format!("SELECT unnest(enum_range(NULL::{pg_type}))::text");
    Ok(client
        .query(&sql, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

fn names<T: Copy + std::fmt::Display>(all: &[T]) -> Vec<String> {
    all.iter().map(|v| v.to_string()).collect()
}

#[tokio::test]
async fn every_postgres_enum_mirrors_its_rust_enum_in_order() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let client = db.pool.get().await?;
    let pairs = [
        (AgentKind::PG_TYPE, names(AgentKind::ALL)),
        (TaskStatus::PG_TYPE, names(TaskStatus::ALL)),
        (Priority::PG_TYPE, names(Priority::ALL)),
        (Complexity::PG_TYPE, names(Complexity::ALL)),
        (RunStatus::PG_TYPE, names(RunStatus::ALL)),
        (AttemptStatus::PG_TYPE, names(AttemptStatus::ALL)),
        (ApprovalStatus::PG_TYPE, names(ApprovalStatus::ALL)),
        (SubscriptionStatus::PG_TYPE, names(SubscriptionStatus::ALL)),
        (LlmCallOutcome::PG_TYPE, names(LlmCallOutcome::ALL)),
        (EventKind::PG_TYPE, names(EventKind::ALL)),
        (ReservationStatus::PG_TYPE, names(ReservationStatus::ALL)),
        (Service::PG_TYPE, names(Service::ALL)),
        (ConnectionStatus::PG_TYPE, names(ConnectionStatus::ALL)),
        (DeploymentStatus::PG_TYPE, names(DeploymentStatus::ALL)),
        (MessageStatus::PG_TYPE, names(MessageStatus::ALL)),
        (WebFlowStatus::PG_TYPE, names(WebFlowStatus::ALL)),
        (EmailPurpose::PG_TYPE, names(EmailPurpose::ALL)),
        (ScheduleKind::PG_TYPE, names(ScheduleKind::ALL)),
        (ScheduleOverlap::PG_TYPE, names(ScheduleOverlap::ALL)),
        (ScheduleCatchUp::PG_TYPE, names(ScheduleCatchUp::ALL)),
        (FireOutcome::PG_TYPE, names(FireOutcome::ALL)),
        (MemoryKind::PG_TYPE, names(MemoryKind::ALL)),
    ];
    // Every enum of the schema has its mirror, but `message_role`: a conversation's
    // `Author` is its user/assistant part (system and tool rows are never written).
    let mut mirrored: Vec<&str> = pairs.iter().map(|(pg_type, _)| *pg_type).collect();
    mirrored.push("message_role");
    mirrored.sort_unstable();
    let in_schema: Vec<String> = client
        .query(
            "SELECT t.typname::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE t.typtype = 'e' AND n.nspname = current_schema() ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        in_schema, mirrored,
        "a Postgres enum has no kind_enum! mirror"
    );
    for (pg_type, rust) in pairs {
        assert_eq!(
            labels(&client, pg_type).await?,
            rust,
            "{pg_type} differs from its Rust enum"
        );
    }
    Ok(())
}

#[tokio::test]
async fn agent_memory_finds_the_nearest_vector_and_can_use_the_hnsw_index() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = autocrew_tests::seed(&db, 4).await?;
    let client = db.pool.get().await?;
    let unit = |hot: usize| {
        let mut v = vec![0.0f32; 1536];
        v[hot] = 1.0;
        v[(hot + 1) % 1536] = 0.5;
        pgvector::Vector::from(v)
    };
    for (i, text) in ["likes almonds", "hates sugar", "cooks on sunday"]
        .iter()
        .enumerate()
    {
        client
            .execute(
                "INSERT INTO agent_memory (id, user_id, project_id, agent, content, embedding, embedding_model, embedding_dim, kind)
                 VALUES ($1, $2, $3, 'marketer', $4, $5, 'offline-hash-1536', 1536, 'preference')",
                &[&uuid::Uuid::new_v4(), &seeded.user.id.0, &seeded.project.id.0, text, &unit(i * 100)],
            )
            .await?;
    }
    let nearest: String = client
        .query_one(
            "SELECT content FROM agent_memory WHERE embedding_dim = 1536
             ORDER BY embedding::vector(1536) <=> $1::vector(1536) LIMIT 1",
            &[&unit(100)],
        )
        .await?
        .get(0);
    assert_eq!(nearest, "hates sugar");

    client.batch_execute("SET enable_seqscan = off").await?;
    let plan: Vec<String> = client
        .query(
            "EXPLAIN SELECT content FROM agent_memory WHERE embedding_dim = 1536
             ORDER BY embedding::vector(1536) <=> $1::vector(1536) LIMIT 1",
            &[&unit(100)],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("agent_memory_hnsw_1536")),
        "{plan:#?}"
    );

    let wrong_dim = client
        .execute(
            "INSERT INTO agent_memory (id, user_id, agent, content, embedding, embedding_model, embedding_dim, kind)
             VALUES ($1, $2, 'ops', 'x', $3, 'm', 1536, 'fact')",
            &[&uuid::Uuid::new_v4(), &seeded.user.id.0, &pgvector::Vector::from(vec![1.0f32; 3])],
        )
        .await;
    assert!(
        wrong_dim.is_err(),
        "a vector must match its recorded dimension"
    );
    Ok(())
}
