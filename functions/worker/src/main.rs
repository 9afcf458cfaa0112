//! The per-record sync worker: SQS invokes it with a batch of record references; it
//! syncs them as one batch and reports only the messages worth retrying, so SQS
//! redelivers those (and, after too many receives, moves them to the DLQ).

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use crmsync_shared::aws::{Deployment, cold_start};
use crmsync_shared::pipeline::ItemOutcome;
use crmsync_shared::ports::WorkItem;
use lambda_runtime::{Error, LambdaEvent, service_fn};

async fn handle(
    deployment: &Deployment,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let mut failures = Vec::new();
    let mut items = Vec::new();
    let mut ids = Vec::new();
    for message in event.payload.records {
        let id = message.message_id.clone().unwrap_or_default();
        match message
            .body
            .as_deref()
            .map(serde_json::from_str::<WorkItem>)
        {
            Some(Ok(item)) => {
                items.push(item);
                ids.push(id);
            }
            // Never parses, so it goes to the DLQ intact after its receives run out.
            _ => {
                tracing::error!(message = "not a record reference", message_id = %id);
                failures.push(BatchItemFailure {
                    item_identifier: id,
                });
            }
        }
    }
    let outcomes = deployment.pipeline.sync_batch(&items).await;
    for ((id, item), outcome) in ids.into_iter().zip(&items).zip(outcomes) {
        if let ItemOutcome::Retry(reason) = outcome {
            tracing::info!(message = "retrying", record = %item.id, object = %item.object, reason = %reason);
            failures.push(BatchItemFailure {
                item_identifier: id,
            });
        }
    }
    Ok(SqsBatchResponse {
        batch_item_failures: failures,
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deployment = cold_start("worker").await?;
    lambda_runtime::run(service_fn(|event| handle(&deployment, event))).await
}
