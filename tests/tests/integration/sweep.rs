//! The scheduled sweep, called with `events/eventbridge-schedule-sweep.json`.

use autocrew_shared::adapters::postgres::{PgEventLog, PgIdempotencyStore, PgTaskStore};
use autocrew_shared::domain::{PlanLimits, TaskGraph, TaskStatus};
use autocrew_shared::ports::{EventLog, IdempotencyStore, TaskReads, TaskStore};
use autocrew_sweep::{SweepReport, SweepState, handle};
use autocrew_tests::{TestDb, create_connections_table, planned, sdk, seed, unique};
use serde_json::json;
use std::collections::HashMap;

#[tokio::test]
async fn the_sweep_expires_overdue_approvals_readies_their_parked_tasks_and_prunes_old_keys()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let sdk = sdk().await?;
    let tasks = PgTaskStore::new(db.pool.clone());
    let plan = [
        planned("late", "marketer", &[]),
        planned("early", "marketer", &[]),
    ];
    let stored = tasks
        .insert_graph(
            &seeded.run,
            &TaskGraph::build(&plan, PlanLimits::default())?,
        )
        .await?;
    let client = db.pool.get().await?;
    client
        .execute(
            "UPDATE tasks SET status = 'awaiting_approval' WHERE run_id = $1",
            &[&seeded.run.id.0],
        )
        .await?;
    let insert = r#"INSERT INTO approvals (id, project_id, run_id, task_id, tool, payload, payload_hash, call_key, expires_at)
                  VALUES ($1, $2, $3, $4, 'publish',
                          '{"action": "publish", "file": "index.html", "from_task": "landing",
                            "source": "projects/p/runs/r/landing/index.html", "content_sha256": "aa",
                            "size_bytes": 2, "content_type": "text/html", "link": "https://x/index.html"}',
                          repeat('a', 64), repeat('b', 64),
                          now() + ($5 || ' minutes')::interval)"#;
    let (overdue, open) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    for (id, task, minutes) in [(overdue, &stored[0], "-1"), (open, &stored[1], "30")] {
        client
            .execute(
                insert,
                &[
                    &id,
                    &seeded.project.id.0,
                    &seeded.run.id.0,
                    &task.id.0,
                    &minutes,
                ],
            )
            .await?;
    }
    let keys = PgIdempotencyStore::new(db.pool.clone());
    for key in ["old", "recent"] {
        keys.claim("send_email", key).await?;
        keys.complete("send_email", key, &json!({})).await?;
    }
    client
        .execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '8 days' WHERE key = 'old'",
            &[],
        )
        .await?;
    let table = unique("connections");
    create_connections_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await?;
    let env: HashMap<String, String> = [
        ("DATABASE_URL".into(), db.url()),
        ("AWS_REGION".into(), "us-east-1".into()),
        (
            "AWS_ENDPOINT_URL".into(),
            std::env::var("AWS_ENDPOINT_URL")?,
        ),
        ("CONNECTIONS_TABLE".into(), table),
        ("WEBSOCKET_CALLBACK_URL".into(), "http://127.0.0.1:9".into()),
        (
            "STATE_MACHINE_ARN".into(),
            "arn:aws:states:us-east-1:123456789012:stateMachine:unused".into(),
        ),
    ]
    .into_iter()
    .chain(autocrew_tests::agent_queue_variables(
        "http://127.0.0.1:9/queue",
    ))
    .collect();
    let state = SweepState::from_source(&env).await?;
    let event = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/eventbridge-schedule-sweep.json"
    ))?;

    let first = handle(&state, serde_json::from_str(&event)?).await?;
    let second = handle(&state, serde_json::from_str(&event)?).await?;

    assert_eq!(
        first,
        SweepReport {
            approvals_expired: 1,
            idempotency_keys_pruned: 1,
            ..SweepReport::default()
        }
    );
    assert_eq!(
        second,
        SweepReport::default(),
        "a second sweep finds nothing left to do"
    );
    let statuses: Vec<(uuid::Uuid, String)> = client
        .query(
            "SELECT id, status::text FROM approvals WHERE run_id = $1 ORDER BY expires_at",
            &[&seeded.run.id.0],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        statuses,
        [
            (overdue, "expired".to_owned()),
            (open, "pending".to_owned())
        ]
    );
    assert_eq!(
        tasks.task(stored[0].id).await?.status,
        TaskStatus::Ready,
        "the expired approval's task goes on (told it was not approved)"
    );
    assert_eq!(
        tasks.task(stored[1].id).await?.status,
        TaskStatus::AwaitingApproval
    );
    let events = PgEventLog::new(db.pool.clone())
        .since(seeded.project.id, 0, 100)
        .await?;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.payload()["status"] == "expired")
            .count(),
        1
    );
    Ok(())
}
