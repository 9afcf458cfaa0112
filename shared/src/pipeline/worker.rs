//! The worker loop of the local runner: take a batch off the queue, sync it, then
//! acknowledge what is done and hand back what must be retried. (The SQS Lambda gets
//! its batch from the event instead and answers with a partial batch failure.)

use super::{ItemOutcome, LATER_MS, Pipeline};
use crate::ports::{Delivery, StoreError, WorkItem, WorkQueue};

/// How long a received batch stays hidden from other workers.
pub const VISIBILITY_MS: i64 = 60_000;
/// How long a retried item waits, doubling with each receive up to a limit.
pub const RETRY_BASE_MS: i64 = 1_000;
const RETRY_MAX_MS: i64 = 5 * 60_000;

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    pub received: usize,
    pub done: usize,
    pub retried: usize,
    /// The sync is paused: nothing was taken off the queue.
    pub paused: bool,
    /// Items done per queued object (`contacts`, `Lead`), for progress reports.
    pub done_by_object: Vec<(String, usize)>,
}

/// A reference as a worker should take it on its `receives`-th receive. A retried one
/// was worked before: what its source saw of the record may be synced by now while what
/// failed (a lookup waiting for its target) is not, so it is read again rather than
/// recognised as an echo.
pub fn as_received(mut item: WorkItem, receives: u32) -> WorkItem {
    if receives > 1 {
        item.seen = None;
    }
    item
}

pub fn retry_delay_ms(receives: u32) -> i64 {
    let shift = receives.saturating_sub(1).min(16);
    (RETRY_BASE_MS << shift).min(RETRY_MAX_MS)
}

/// How many receives an item gets before the dead letters; `None` when unknown (the
/// worker then cannot tell a last attempt, and logs why).
pub async fn dead_letter_threshold(queue: &dyn WorkQueue) -> Option<u32> {
    queue.max_receives().await.unwrap_or_else(|e| {
        tracing::warn!(message = "the queue's dead-letter threshold is unknown", error = %e);
        None
    })
}

/// Receives up to `max` items and syncs them as one batch. While the sync is paused
/// nothing is received, so nothing counts towards the dead letters.
pub async fn run_once(
    pipeline: &Pipeline,
    queue: &dyn WorkQueue,
    max: usize,
) -> Result<Round, StoreError> {
    let controls = pipeline.load_controls().await?;
    if controls.paused.is_some() {
        return Ok(Round {
            paused: true,
            ..Round::default()
        });
    }
    let deliveries = queue.receive(max, VISIBILITY_MS).await?;
    if deliveries.is_empty() {
        return Ok(Round::default());
    }
    let items: Vec<_> = deliveries
        .iter()
        .map(|d| as_received(d.item.clone(), d.receives))
        .collect();
    let outcomes = pipeline.sync_batch_under(&items, &controls).await;
    let max_receives = dead_letter_threshold(queue).await;
    let mut round = Round {
        received: deliveries.len(),
        ..Round::default()
    };
    // Acknowledged together once the retries are handed back.
    let mut done = Vec::with_capacity(deliveries.len());
    // Queued again as new, what they saw kept, before their deliveries are acknowledged.
    let mut later: Vec<(&Delivery, String)> = Vec::new();
    for (delivery, outcome) in deliveries.iter().zip(outcomes) {
        match outcome {
            ItemOutcome::Later(why) => later.push((delivery, why)),
            ItemOutcome::Done => {
                done.push(delivery);
                round.done += 1;
                let object = &delivery.item.object;
                match round.done_by_object.iter_mut().find(|(o, _)| o == object) {
                    Some((_, n)) => *n += 1,
                    None => round.done_by_object.push((object.clone(), 1)),
                }
            }
            ItemOutcome::Retry(why) => {
                let again = pipeline
                    .retrying(&delivery.item, &why, delivery.receives, max_receives)
                    .await;
                if again {
                    tracing::info!(message = "retrying a record", record = %delivery.item.id, reason = %why);
                    queue
                        .retry(delivery, retry_delay_ms(delivery.receives))
                        .await?;
                    round.retried += 1;
                } else {
                    done.push(delivery);
                    round.done += 1;
                }
            }
        }
    }
    if !later.is_empty() {
        let items: Vec<WorkItem> = later.iter().map(|(d, _)| d.item.clone()).collect();
        match queue.send_later(&items, LATER_MS).await {
            Ok(()) => {
                for (delivery, why) in &later {
                    tracing::debug!(message = "looking at a record again in a moment", record = %delivery.item.id, reason = %why);
                    done.push(*delivery);
                }
                round.retried += later.len();
            }
            // Not queued again: retried instead (forgetting what it saw costs a read).
            Err(e) => {
                tracing::warn!(message = "records not queued again; retrying them", error = %e);
                for (delivery, _) in &later {
                    queue
                        .retry(delivery, retry_delay_ms(delivery.receives))
                        .await?;
                    round.retried += 1;
                }
            }
        }
    }
    queue.ack_all(&done).await?;
    Ok(round)
}
