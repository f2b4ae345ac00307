//! The step functions called with the SQS payloads in `events/`.

use crate::pipeline::pipeline;
use autocrew_shared::domain::AgentKind;
use autocrew_steps::{Step, handle_batch};
use autocrew_tests::{TestDb, lambda_deadline};

fn sqs_event(file: &str) -> anyhow::Result<aws_lambda_events::event::sqs::SqsEvent> {
    let text = std::fs::read_to_string(format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR")))?;
    Ok(serde_json::from_str(&text)?)
}

#[tokio::test]
async fn an_unreadable_record_and_a_task_that_does_not_exist_are_batch_item_failures()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let p = pipeline(&db, None).await?;

    let unreadable = handle_batch(
        &p.ctx,
        Step::Plan,
        sqs_event("sqs-unreadable.json")?,
        lambda_deadline(),
    )
    .await;
    let unknown_task = handle_batch(
        &p.ctx,
        Step::Agent(AgentKind::Developer),
        sqs_event("sqs-step-developer.json")?,
        lambda_deadline(),
    )
    .await;
    let unknown_run = handle_batch(
        &p.ctx,
        Step::Compile,
        sqs_event("sqs-step-compile.json")?,
        lambda_deadline(),
    )
    .await;

    for response in [unreadable, unknown_task, unknown_run] {
        let ids: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["2e1424d4-f796-459a-8184-9c92662be6da"]);
    }
    Ok(())
}

#[test]
fn every_step_has_a_sample_event_that_parses() -> anyhow::Result<()> {
    for step in [
        "plan",
        "execute",
        "developer",
        "marketer",
        "sales",
        "designer",
        "ops",
        "compile",
        "notify",
        "notify-failed",
        "watch",
    ] {
        let event = sqs_event(&format!("sqs-step-{step}.json"))?;
        assert_eq!(event.records.len(), 1, "{step}");
    }
    Ok(())
}

/// `events/sqs-step-developer.json` for this run and task.
fn developer_event(
    run: &str,
    task: &str,
) -> anyhow::Result<aws_lambda_events::event::sqs::SqsEvent> {
    let text = std::fs::read_to_string(format!(
        "{}/../events/sqs-step-developer.json",
        env!("CARGO_MANIFEST_DIR")
    ))?
    .replace("0b9e5d3c-7a41-4f2e-8c6d-1e2f3a4b5c6d", run)
    .replace("9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", task);
    Ok(serde_json::from_str(&text)?)
}

#[tokio::test]
async fn an_attempt_whose_heartbeat_went_stale_is_failed_and_the_task_runs_again_on_redelivery()
-> anyhow::Result<()> {
    use autocrew_shared::domain::{PlanLimits, TaskGraph, TaskStatus};
    use autocrew_tests::Drive;
    let db = TestDb::migrated().await?;
    let p = pipeline(&db, None).await?;
    let seeded = autocrew_tests::seed_running(&db, 4).await?;
    let graph = TaskGraph::build(
        &[autocrew_tests::planned("app_skeleton", "developer", &[])],
        PlanLimits::default(),
    )?;
    let task = p
        .ctx
        .tasks
        .insert_graph(&seeded.run, &graph)
        .await?
        .remove(0);
    // No real execution waits in this test: answering this token fails quietly.
    p.ctx
        .tasks
        .execute(seeded.run.id, "no-execution-waits-on-this-token")
        .await?;
    p.ctx.tasks.start(task.id).await?;
    let event = || developer_event(&seeded.run.id.to_string(), &task.id.to_string());

    let while_alive = handle_batch(
        &p.ctx,
        Step::Agent(AgentKind::Developer),
        event()?,
        lambda_deadline(),
    )
    .await;
    let client = db.pool.get().await?;
    client
        .execute("UPDATE task_attempts SET heartbeat_at = now() - interval '10 minutes' WHERE task_id = $1", &[&task.id.0])
        .await?;
    let after_death = handle_batch(
        &p.ctx,
        Step::Agent(AgentKind::Developer),
        event()?,
        lambda_deadline(),
    )
    .await;

    assert_eq!(
        while_alive.batch_item_failures.len(),
        1,
        "a message for an attempt that is alive comes back later, in case it dies"
    );
    assert!(
        after_death.batch_item_failures.is_empty(),
        "{:?}",
        after_death.batch_item_failures
    );
    let done = p.ctx.tasks.task(task.id).await?;
    assert_eq!((done.status, done.attempts), (TaskStatus::Completed, 2));
    let first_error: Option<String> = client
        .query_one(
            "SELECT error FROM task_attempts WHERE task_id = $1 AND attempt_no = 1",
            &[&task.id.0],
        )
        .await?
        .get(0);
    assert!(
        first_error
            .unwrap_or_default()
            .contains("stopped sending heartbeats"),
    );
    Ok(())
}
