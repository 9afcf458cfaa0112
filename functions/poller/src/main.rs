//! The scheduled poller: an EventBridge schedule invokes it; it reads every change
//! feed since its cursor, queues record references on SQS, then moves the cursors.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use crmsync_shared::aws::{Deployment, cold_start};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

async fn handle(
    deployment: &Deployment,
    _event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, Error> {
    let d = deployment;
    let report = d.pipeline.poll(d.store.as_ref(), d.queue.as_ref()).await?;
    tracing::info!(message = "poll done", queued = report.enqueued());
    Ok(serde_json::to_value(report)?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deployment = cold_start("poller").await?;
    lambda_runtime::run(service_fn(|event| handle(&deployment, event))).await
}
