//! The scheduled sweep, called with `events/eventbridge-schedule-sweep.json`.

use crate::aws::{callback_machine, create_queue, take_token, wait_for_end};
use autocrew_shared::adapters::aws::{SfnStateMachine, SqsQueue};
use autocrew_shared::adapters::postgres::{PgEventLog, PgIdempotencyStore};
use autocrew_shared::ports::{EventLog, ExecutionStatus, IdempotencyStore, StateMachine};
use autocrew_sweep::{SweepReport, SweepState, handle};
use autocrew_tests::{TestDb, create_connections_table, sdk, seed, unique};
use serde_json::json;
use std::collections::HashMap;

#[tokio::test]
async fn the_sweep_expires_overdue_approvals_fails_their_waiting_step_and_prunes_old_keys()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let seeded = seed(&db, 4).await?;
    let sdk = sdk().await?;
    let (sqs, sfn) = (SqsQueue::new(&sdk), SfnStateMachine::new(&sdk));
    let url = create_queue(&sqs, &unique("approval"), &[]).await?;
    let machine = callback_machine(&sfn, &url).await?;
    let execution = sfn.start(&machine, &unique("run"), &json!({})).await?;
    let (token, _) = take_token(&sqs, &url).await?;
    let client = db.pool.get().await?;
    let insert = "INSERT INTO approvals (id, project_id, run_id, tool, payload, payload_hash, task_token, expires_at)
                  VALUES ($1, $2, $3, 'send_email', '{}', repeat('a', 64), $4, now() + ($5 || ' minutes')::interval)";
    let (overdue, open) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    client
        .execute(
            insert,
            &[
                &overdue,
                &seeded.project.id.0,
                &seeded.run.id.0,
                &token,
                &"-1",
            ],
        )
        .await?;
    client
        .execute(
            insert,
            &[
                &open,
                &seeded.project.id.0,
                &seeded.run.id.0,
                &None::<String>,
                &"30",
            ],
        )
        .await?;
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
            "SELECT id, status::text FROM approvals ORDER BY expires_at",
            &[],
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
        wait_for_end(&sfn, &execution).await?.0,
        ExecutionStatus::Failed,
        "the waiting step was failed"
    );
    let events = PgEventLog::new(db.pool.clone())
        .since(seeded.project.id, 0, 10)
        .await?;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.payload["status"] == "expired")
            .count(),
        1
    );
    Ok(())
}
