//! An SQS event source mapping, as Lambda runs one: receive a batch, invoke the function
//! with a real `SqsEvent`, delete the records it did not report as failed. Failed records
//! stay in the queue and come back after their visibility timeout; past the queue's redrive
//! limit, SQS moves them to the DLQ.

use autocrew_shared::ports::{Queue, QueueError};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

/// One queue feeding one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub queue_url: String,
    /// `arn:aws:sqs:REGION:ACCOUNT:NAME`, as the records carry it.
    pub queue_arn: String,
    /// 1-10, as the template's `BatchSize`.
    pub batch_size: u32,
    /// How long a received batch stays hidden (the queue's visibility timeout).
    pub visibility: Duration,
}

/// The record Lambda would deliver for one received message.
fn record(
    mapping: &Mapping,
    region: &str,
    message: autocrew_shared::ports::QueueMessage,
) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message.message_id);
    record.receipt_handle = Some(message.receipt_handle);
    record.body = Some(message.body);
    record.attributes = HashMap::from([(
        "ApproximateReceiveCount".to_owned(),
        message.receive_count.to_string(),
    )]);
    if let Some(traceparent) = message.traceparent {
        let mut attribute = SqsMessageAttribute::default();
        attribute.data_type = Some("String".into());
        attribute.string_value = Some(traceparent);
        record.message_attributes.insert(
            autocrew_shared::adapters::aws::TRACEPARENT.to_owned(),
            attribute,
        );
    }
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some(mapping.queue_arn.clone());
    record.aws_region = Some(region.to_owned());
    record
}

/// The receipts of a received batch, to delete what the function did not report failed.
#[derive(Debug)]
pub struct Receipts(Vec<(String, String)>);

impl Receipts {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Deletes every record `response` does not name as failed.
    pub async fn settle(
        self,
        queue: &dyn Queue,
        mapping: &Mapping,
        response: SqsBatchResponse,
    ) -> Result<(), QueueError> {
        let failed: HashSet<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        for (id, receipt) in &self.0 {
            if !failed.contains(id) {
                queue.delete(&mapping.queue_url, receipt).await?;
            }
        }
        Ok(())
    }
}

/// Receives one batch, waiting up to `wait` for it: the event to invoke the function with,
/// and the receipts to settle once it answered. `None` when nothing came.
pub async fn receive(
    queue: &dyn Queue,
    mapping: &Mapping,
    region: &str,
    wait: Duration,
) -> Result<Option<(SqsEvent, Receipts)>, QueueError> {
    let messages = queue
        .receive(
            &mapping.queue_url,
            mapping.batch_size,
            wait,
            mapping.visibility,
        )
        .await?;
    if messages.is_empty() {
        return Ok(None);
    }
    let receipts = Receipts(
        messages
            .iter()
            .map(|m| (m.message_id.clone(), m.receipt_handle.clone()))
            .collect(),
    );
    let mut event = SqsEvent::default();
    event.records = messages
        .into_iter()
        .map(|m| record(mapping, region, m))
        .collect();
    Ok(Some((event, receipts)))
}

/// Receives one batch (waiting up to `wait` for it), invokes `function`, deletes what
/// succeeded. Returns how many records were delivered.
pub async fn poll_once<F, Fut>(
    queue: &dyn Queue,
    mapping: &Mapping,
    region: &str,
    wait: Duration,
    function: F,
) -> Result<usize, QueueError>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let Some((event, receipts)) = receive(queue, mapping, region, wait).await? else {
        return Ok(0);
    };
    let delivered = receipts.len();
    receipts
        .settle(queue, mapping, function(event).await)
        .await?;
    Ok(delivered)
}
