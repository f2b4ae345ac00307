//! `autocrew dlq list` and `autocrew dlq redrive`: the dead-letter queues, found the way
//! SQS links them (each source queue's `RedrivePolicy` names its DLQ), so the same command
//! works on the local stack and on AWS.

use anyhow::Context;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;

/// A source queue and the DLQ its redrive policy names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetters {
    pub source_url: String,
    pub dlq_url: String,
    pub dlq_name: String,
    /// Messages waiting in the DLQ (SQS's approximate count).
    pub waiting: u64,
}

/// One message in a DLQ, as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    /// How many times it was received before it was set aside.
    pub receive_count: u32,
}

fn name_of(url_or_arn: &str) -> &str {
    url_or_arn.rsplit(['/', ':']).next().unwrap_or(url_or_arn)
}

/// Every queue whose name starts with `prefix` that has a DLQ, with the DLQ's count.
pub async fn find(sqs: &Client, prefix: &str) -> anyhow::Result<Vec<DeadLetters>> {
    let listed = sqs
        .list_queues()
        .queue_name_prefix(prefix)
        .send()
        .await
        .context("SQS did not list its queues")?;
    let mut found = Vec::new();
    for url in listed.queue_urls() {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .with_context(|| format!("SQS did not describe {url}"))?;
        let Some(policy) = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        else {
            continue;
        };
        let policy: serde_json::Value =
            serde_json::from_str(policy).context("a redrive policy is not JSON")?;
        let dlq_name = name_of(policy["deadLetterTargetArn"].as_str().unwrap_or("")).to_owned();
        let dlq_url = sqs
            .get_queue_url()
            .queue_name(&dlq_name)
            .send()
            .await
            .with_context(|| format!("the DLQ {dlq_name} of {url} does not exist"))?
            .queue_url
            .unwrap_or_default();
        let counted = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await?;
        let waiting = counted
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        found.push(DeadLetters {
            source_url: url.clone(),
            dlq_url,
            dlq_name,
            waiting,
        });
    }
    Ok(found)
}

/// Up to `max` messages of a DLQ, left in place (visible again after `peek` seconds).
pub async fn peek(sqs: &Client, dlq_url: &str, max: i32) -> anyhow::Result<Vec<DeadLetter>> {
    let received = sqs
        .receive_message()
        .queue_url(dlq_url)
        .max_number_of_messages(max.clamp(1, 10))
        .visibility_timeout(1)
        .message_system_attribute_names(
            aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
        )
        .send()
        .await
        .context("SQS did not answer")?;
    Ok(received
        .messages()
        .iter()
        .map(|m| DeadLetter {
            message_id: m.message_id().unwrap_or_default().to_owned(),
            body: m.body().unwrap_or_default().to_owned(),
            receive_count: m
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                })
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        })
        .collect())
}

/// Moves every message of `dead` back to its source queue: each is sent to the source
/// first and deleted from the DLQ after, so a crash between the two repeats a message
/// (the steps are idempotent) but never loses one. Returns how many moved.
pub async fn redrive(sqs: &Client, dead: &DeadLetters) -> anyhow::Result<usize> {
    let mut moved = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&dead.dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .wait_time_seconds(1)
            .send()
            .await
            .context("SQS did not answer")?;
        if received.messages().is_empty() {
            return Ok(moved);
        }
        for message in received.messages() {
            sqs.send_message()
                .queue_url(&dead.source_url)
                .message_body(message.body().unwrap_or_default())
                .send()
                .await
                .with_context(|| format!("could not send back to {}", dead.source_url))?;
            sqs.delete_message()
                .queue_url(&dead.dlq_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await?;
            moved += 1;
        }
    }
}
