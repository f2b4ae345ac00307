//! `Queue` on SQS.

use super::boxed;
use crate::ports::{Queue, QueueError, QueueMessage};
use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};

/// The message attribute carrying the sender's trace (W3C `traceparent`).
pub const TRACEPARENT: &str = "traceparent";
use std::time::Duration;

/// `Queue` on SQS (or moto's SQS).
#[derive(Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
}

impl SqsQueue {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SqsQueue {
            client: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(sdk)
                    .interceptor(super::metering::Metering)
                    .build(),
            ),
        }
    }

    /// The SDK client, for set-up code (creating queues) that the port does not cover.
    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn failed(
    queue: &str,
    action: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> QueueError {
    let queue = queue.to_owned();
    move |source| QueueError::Backend {
        queue,
        action,
        source,
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn url_of(&self, name: &str) -> Result<String, QueueError> {
        let out = self
            .client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| failed(name, "look up its URL")(boxed(e)))?;
        out.queue_url.ok_or(QueueError::Malformed {
            queue: name.to_owned(),
            field: "QueueUrl",
        })
    }

    async fn send(&self, queue_url: &str, body: &str) -> Result<String, QueueError> {
        self.send_delayed(queue_url, body, Duration::ZERO).await
    }

    #[tracing::instrument(name = "sqs.send", skip_all)]
    async fn send_delayed(
        &self,
        queue_url: &str,
        body: &str,
        delay: Duration,
    ) -> Result<String, QueueError> {
        // SQS takes whole seconds, at most 900.
        let delay = i32::try_from(delay.as_secs().min(900)).unwrap_or(900);
        let mut request = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .delay_seconds(delay);
        // The message goes on in the sender's trace; its consumer continues it.
        if let Some(trace) = crate::telemetry::current() {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(trace.traceparent())
                .build()
                .map_err(|e| failed(queue_url, "send a message")(boxed(e)))?;
            request = request.message_attributes(TRACEPARENT, attribute);
        }
        let out = request
            .send()
            .await
            .map_err(|e| failed(queue_url, "send a message")(boxed(e)))?;
        out.message_id.ok_or(QueueError::Malformed {
            queue: queue_url.to_owned(),
            field: "MessageId",
        })
    }

    async fn receive(
        &self,
        queue_url: &str,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(secs(wait).min(20))
            .visibility_timeout(secs(visibility))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names(TRACEPARENT)
            .send()
            .await
            .map_err(|e| failed(queue_url, "receive messages")(boxed(e)))?;
        let malformed = |field| QueueError::Malformed {
            queue: queue_url.to_owned(),
            field,
        };
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let traceparent = m
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get(TRACEPARENT))
                    .and_then(|v| v.string_value.clone());
                Ok(QueueMessage {
                    traceparent,
                    message_id: m.message_id.ok_or_else(|| malformed("MessageId"))?,
                    receipt_handle: m.receipt_handle.ok_or_else(|| malformed("ReceiptHandle"))?,
                    body: m.body.unwrap_or_default(),
                    receive_count,
                })
            })
            .collect()
    }

    async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| failed(queue_url, "delete a message")(boxed(e)))?;
        Ok(())
    }

    async fn change_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs(visibility))
            .send()
            .await
            .map_err(|e| failed(queue_url, "change a message's visibility")(boxed(e)))?;
        Ok(())
    }
}
