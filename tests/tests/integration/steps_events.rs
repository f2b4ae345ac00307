//! The step functions called with the SQS payloads in `events/`.

use crate::pipeline::pipeline;
use autocrew_shared::domain::AgentKind;
use autocrew_steps::{Step, handle_batch};
use autocrew_tests::TestDb;

fn sqs_event(file: &str) -> anyhow::Result<aws_lambda_events::event::sqs::SqsEvent> {
    let text = std::fs::read_to_string(format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR")))?;
    Ok(serde_json::from_str(&text)?)
}

#[tokio::test]
async fn an_unreadable_record_and_a_task_that_does_not_exist_are_batch_item_failures()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let p = pipeline(&db, None).await?;

    let unreadable = handle_batch(&p.ctx, Step::Plan, sqs_event("sqs-unreadable.json")?).await;
    let unknown_task = handle_batch(
        &p.ctx,
        Step::Agent(AgentKind::Developer),
        sqs_event("sqs-step-developer.json")?,
    )
    .await;
    let unknown_run =
        handle_batch(&p.ctx, Step::Compile, sqs_event("sqs-step-compile.json")?).await;

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
    ] {
        let event = sqs_event(&format!("sqs-step-{step}.json"))?;
        assert_eq!(event.records.len(), 1, "{step}");
    }
    Ok(())
}
