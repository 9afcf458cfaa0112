//! The per-record sync worker: SQS invokes it with a batch of record references; it
//! syncs them as one batch and reports only the messages worth retrying, so SQS
//! redelivers those (and, after too many receives, moves them to the DLQ).

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use crmsync_shared::aws::{Deployment, cold_start};
use crmsync_shared::metrics;
use crmsync_shared::pipeline::{ItemOutcome, LATER_MS, worker};
use crmsync_shared::ports::{MAX_SEND_DELAY_MS, WorkItem, WorkQueue};
use lambda_runtime::{Error, LambdaEvent, service_fn};

/// A message SQS should deliver again. (The event types are non-exhaustive: built
/// from their defaults.)
fn failure(message_id: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = message_id;
    f
}

fn answer(failures: Vec<BatchItemFailure>) -> SqsBatchResponse {
    let mut a = SqsBatchResponse::default();
    a.batch_item_failures = failures;
    a
}

async fn handle(d: &Deployment, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let (hs_before, sf_before) = d.api_calls();
    let (synced_before, skipped_before, failed_before) = d.pipeline.tally.get();
    let mut failures = Vec::new();
    let mut items = Vec::new();
    let mut ids = Vec::new();
    let mut receives = Vec::new();
    let mut malformed = 0;
    for message in event.payload.records {
        let id = message.message_id.clone().unwrap_or_default();
        let received = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse::<u32>().ok())
            .unwrap_or(1);
        match message
            .body
            .as_deref()
            .map(serde_json::from_str::<WorkItem>)
        {
            Some(Ok(item)) => {
                items.push(worker::as_received(item, received));
                ids.push(id);
                receives.push(received);
            }
            // Never parses, so it goes to the DLQ intact after its receives run out.
            _ => {
                tracing::error!(message = "not a record reference", message_id = %id);
                failures.push(failure(id));
                malformed += 1;
            }
        }
    }
    // Paused: the batch is parked on the queue as new messages (SQS's longest delay)
    // and these are acknowledged, so a long pause never dead-letters anything.
    let controls = d.pipeline.load_controls().await;
    if let Ok(c) = &controls
        && c.paused.is_some()
    {
        return Ok(match d.queue.send_later(&items, MAX_SEND_DELAY_MS).await {
            Ok(()) => {
                tracing::info!(message = "paused: batch parked", records = items.len());
                answer(failures)
            }
            Err(e) => {
                tracing::warn!(message = "paused, and the batch could not be parked", error = %e);
                failures.extend(ids.into_iter().map(failure));
                answer(failures)
            }
        });
    }
    let outcomes = match &controls {
        Ok(c) => d.pipeline.sync_batch_under(&items, c).await,
        Err(_) => d.pipeline.sync_batch(&items).await,
    };
    let max_receives = worker::dead_letter_threshold(d.queue.as_ref()).await;
    let mut retried = 0;
    // Queued again as new, what they saw kept (their messages are then done).
    let mut later: Vec<(String, WorkItem)> = Vec::new();
    for (((id, item), outcome), received) in ids.into_iter().zip(&items).zip(outcomes).zip(receives)
    {
        // One line per record, with the record as the correlation id across functions.
        let record = format!("{}:{}:{}", item.side.as_str(), item.object, item.id);
        match outcome {
            ItemOutcome::Done => {
                tracing::info!(message = "synced", record = %record, origin = %item.origin)
            }
            ItemOutcome::Later(reason) => {
                tracing::info!(message = "looking again in a moment", record = %record, reason = %reason);
                later.push((id, item.clone()));
            }
            ItemOutcome::Retry(reason) => {
                // On the last receive before the DLQ the record's status says why (or
                // a record only waiting for a related one ends as that skip).
                if d.pipeline
                    .retrying(item, &reason, received, max_receives)
                    .await
                {
                    tracing::info!(message = "retrying", record = %record, reason = %reason);
                    failures.push(failure(id));
                    retried += 1;
                } else {
                    tracing::info!(message = "left waiting", record = %record, reason = %reason);
                }
            }
        }
    }
    if !later.is_empty() {
        let again: Vec<WorkItem> = later.iter().map(|(_, item)| item.clone()).collect();
        if let Err(e) = d.queue.send_later(&again, LATER_MS).await {
            // Redelivered instead (forgetting what it saw costs a read).
            tracing::warn!(message = "records not queued again; redelivering them", error = %e);
            failures.extend(later.iter().map(|(id, _)| failure(id.clone())));
        }
        retried += later.len();
    }
    let (hs_after, sf_after) = d.api_calls();
    let (synced, skipped, failed) = d.pipeline.tally.get();
    metrics::emit(
        "worker",
        d.pipeline.clock.now_ms(),
        &[
            ("RecordsSynced", "Count", (synced - synced_before) as f64),
            ("RecordsSkipped", "Count", (skipped - skipped_before) as f64),
            ("RecordsFailed", "Count", (failed - failed_before) as f64),
            ("RecordsDone", "Count", (items.len() - retried) as f64),
            ("RecordsRetried", "Count", retried as f64),
            ("MalformedMessages", "Count", f64::from(malformed)),
            ("HubSpotCalls", "Count", (hs_after - hs_before) as f64),
            ("SalesforceCalls", "Count", (sf_after - sf_before) as f64),
        ],
    );
    Ok(answer(failures))
}

/// mimalloc, not glibc's allocator: see the workspace's Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deployment = cold_start("worker").await?;
    lambda_runtime::run(service_fn(|event| handle(&deployment, event))).await
}
