//! The work queue on SQS: a standard queue (Lambda's batching window and large batches
//! work only there; safety against duplicates comes from claims and conditional links,
//! not FIFO order) with a dead-letter queue through a redrive policy. Sends go in
//! batches of 10 entries and at most 256 KiB.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};

use crate::ports::{Delivery, QueueDepth, StoreError, WorkItem, WorkQueue};

/// SQS's limits per send call.
const ENTRIES_MAX: usize = 10;
const BYTES_MAX: usize = 256 * 1024;
/// SQS's limit per receive call: `receive` asks for at most this many.
const RECEIVE_MAX: usize = 10;

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    dead_letter_url: Option<String>,
    /// The redrive policy's `maxReceiveCount`, read once.
    max_receives: Arc<tokio::sync::OnceCell<Option<u32>>>,
}

fn unavailable(e: impl std::fmt::Debug) -> StoreError {
    StoreError::Unavailable(format!("{e:?}").chars().take(500).collect())
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>, dead_letter_url: Option<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
            dead_letter_url,
            max_receives: Arc::default(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn dead_letter_url(&self) -> Option<&str> {
        self.dead_letter_url.as_deref()
    }

    /// Creates a queue and its dead-letter queue (after `max_receives` receives) for
    /// local runs and tests; deployed stacks get them from the SAM template.
    pub async fn create(
        client: &Client,
        name: &str,
        max_receives: u32,
    ) -> Result<Self, StoreError> {
        let dlq = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .map_err(unavailable)?;
        let dlq_url = dlq
            .queue_url
            .ok_or_else(|| StoreError::Unavailable("no DLQ url".into()))?;
        let arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(unavailable)?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| StoreError::Unavailable("no DLQ arn".into()))?;
        let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives.to_string()}).to_string();
        let queue = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .map_err(unavailable)?;
        let url = queue
            .queue_url
            .ok_or_else(|| StoreError::Unavailable("no queue url".into()))?;
        Ok(SqsQueue::new(client.clone(), url, Some(dlq_url)))
    }

    /// One receive call: up to 10 messages (SQS's limit per call).
    async fn receive_from(
        &self,
        url: &str,
        max: usize,
        visibility_ms: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let answer = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, RECEIVE_MAX) as i32)
            .visibility_timeout((visibility_ms / 1000) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(unavailable)?;
        answer
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let body = m.body.unwrap_or_default();
                let item: WorkItem =
                    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let receives = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                Ok(Delivery {
                    receipt: m.receipt_handle.unwrap_or_default(),
                    item,
                    receives,
                })
            })
            .collect()
    }
}

/// `maxReceiveCount` of a redrive policy (SQS writes it as a number, some tools as a
/// string).
fn max_receive_count(policy: &str) -> Option<u32> {
    let v: serde_json::Value = serde_json::from_str(policy).ok()?;
    match v.get("maxReceiveCount")? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[async_trait]
impl WorkQueue for SqsQueue {
    async fn max_receives(&self) -> Result<Option<u32>, StoreError> {
        let read = self
            .max_receives
            .get_or_try_init(|| async {
                let attributes = self
                    .client
                    .get_queue_attributes()
                    .queue_url(&self.url)
                    .attribute_names(QueueAttributeName::RedrivePolicy)
                    .send()
                    .await
                    .map_err(unavailable)?
                    .attributes;
                Ok::<_, StoreError>(
                    attributes
                        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy).cloned())
                        .and_then(|p| max_receive_count(&p)),
                )
            })
            .await?;
        Ok(*read)
    }

    async fn send(&self, items: &[WorkItem]) -> Result<(), StoreError> {
        self.send_later(items, 0).await
    }

    async fn send_later(&self, items: &[WorkItem], delay_ms: i64) -> Result<(), StoreError> {
        let delay = (delay_ms.clamp(0, crate::ports::MAX_SEND_DELAY_MS) / 1000) as i32;
        let bodies = items
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut batch: Vec<SendMessageBatchRequestEntry> = Vec::new();
        let mut bytes = 0;
        for (i, body) in bodies.into_iter().enumerate() {
            if batch.len() == ENTRIES_MAX || bytes + body.len() > BYTES_MAX {
                self.flush(std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
            bytes += body.len();
            batch.push(
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .delay_seconds(delay)
                    .build()
                    .map_err(unavailable)?,
            );
        }
        if !batch.is_empty() {
            self.flush(batch).await?;
        }
        Ok(())
    }

    /// Up to `max` messages, ten per call (SQS's limit) until an answer comes back
    /// short: a worker's batch as full as the Lambda event source would make it.
    async fn receive(&self, max: usize, visibility_ms: i64) -> Result<Vec<Delivery>, StoreError> {
        let url = self.url.clone();
        let mut out: Vec<Delivery> = Vec::new();
        loop {
            let want = (max.max(1) - out.len()).min(RECEIVE_MAX);
            let got = self.receive_from(&url, want, visibility_ms).await?;
            let short = got.len() < want;
            out.extend(got);
            // A short answer: the queue gave what it had (and a message received
            // with no visibility timeout must not be received twice into one batch).
            if short || out.len() >= max {
                return Ok(out);
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&delivery.receipt)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn retry(&self, delivery: &Delivery, delay_ms: i64) -> Result<(), StoreError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&delivery.receipt)
            .visibility_timeout((delay_ms / 1000) as i32)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, StoreError> {
        let main = self
            .attributes(
                &self.url,
                &[
                    QueueAttributeName::ApproximateNumberOfMessages,
                    QueueAttributeName::ApproximateNumberOfMessagesDelayed,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ],
            )
            .await?;
        let dead = match &self.dead_letter_url {
            Some(url) => {
                self.attributes(url, &[QueueAttributeName::ApproximateNumberOfMessages])
                    .await?[0]
            }
            None => 0,
        };
        Ok(QueueDepth {
            waiting: main[0] + main[1],
            in_flight: main[2],
            dead,
        })
    }

    async fn dead_letters(&self) -> Result<Vec<WorkItem>, StoreError> {
        let Some(url) = self.dead_letter_url.clone() else {
            return Ok(Vec::new());
        };
        // Visibility 0: a look, not a take (up to 10, one call).
        Ok(self
            .receive_from(&url, RECEIVE_MAX, 0)
            .await?
            .into_iter()
            .map(|d| d.item)
            .collect())
    }
}

impl SqsQueue {
    /// Numeric queue attributes, in the order asked (0 when SQS leaves one out).
    async fn attributes(
        &self,
        url: &str,
        names: &[QueueAttributeName],
    ) -> Result<Vec<u64>, StoreError> {
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(unavailable)?;
        let attributes = answer.attributes.unwrap_or_default();
        Ok(names
            .iter()
            .map(|n| attributes.get(n).and_then(|v| v.parse().ok()).unwrap_or(0))
            .collect())
    }

    async fn flush(&self, entries: Vec<SendMessageBatchRequestEntry>) -> Result<(), StoreError> {
        let answer = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(unavailable)?;
        if !answer.failed.is_empty() {
            return Err(StoreError::Unavailable(format!(
                "{} messages were not queued",
                answer.failed.len()
            )));
        }
        Ok(())
    }
}
