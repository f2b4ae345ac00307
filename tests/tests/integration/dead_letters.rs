//! A poison message reaches its dead-letter queue through the real event source mapping
//! and redrive policy, `autocrew dlq` lists it, and a redrive sends it back.

use crate::aws::{create_queue, queue_arn};
use autocrew_cli::dlq;
use autocrew_runner::mapping::{Mapping, poll_once};
use autocrew_shared::adapters::aws::SqsQueue;
use autocrew_shared::ports::Queue;
use autocrew_steps::{Step, handle_batch};
use autocrew_tests::{TestDb, sdk, unique};
use aws_sdk_sqs::types::QueueAttributeName;
use std::time::Duration;

#[tokio::test]
async fn a_poison_message_lands_in_the_dlq_is_listed_and_is_redriven() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let p = crate::pipeline::pipeline(&db, None).await?;
    let sqs = SqsQueue::new(&sdk().await?);
    let prefix = unique("dlq");
    let dlq_url = create_queue(&sqs, &format!("{prefix}-plan-dlq"), &[]).await?;
    let dlq_arn = queue_arn(&sqs, &dlq_url).await?;
    let policy =
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}).to_string();
    let source_url = create_queue(
        &sqs,
        &format!("{prefix}-plan"),
        &[(QueueAttributeName::RedrivePolicy, policy)],
    )
    .await?;
    let mapping = Mapping {
        queue_arn: queue_arn(&sqs, &source_url).await?,
        queue_url: source_url.clone(),
        batch_size: 1,
        // The message comes back at once after each failure.
        visibility: Duration::ZERO,
    };
    sqs.send(&source_url, "not a step message").await?;

    // The plan step refuses it each time; past two receives SQS sets it aside.
    for _ in 0..4 {
        poll_once(
            &sqs,
            &mapping,
            "us-east-1",
            Duration::from_secs(1),
            |event| handle_batch(&p.ctx, Step::Plan, event, autocrew_tests::lambda_deadline()),
        )
        .await?;
    }
    let found = dlq::find(sqs.client(), &prefix).await?;
    let listed = dlq::peek(sqs.client(), &dlq_url, 10).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let moved = dlq::redrive(sqs.client(), &found[0]).await?;
    let back = sqs
        .receive(
            &source_url,
            10,
            Duration::from_secs(1),
            Duration::from_secs(30),
        )
        .await?;

    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].dlq_name.as_str(), found[0].waiting),
        (format!("{prefix}-plan-dlq").as_str(), 1)
    );
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].body, "not a step message");
    assert_eq!(moved, 1);
    assert_eq!(back.len(), 1, "the message is back in its source queue");
    assert_eq!(back[0].body, "not a step message");
    assert!(dlq::find(sqs.client(), &prefix).await?[0].waiting == 0);
    Ok(())
}
