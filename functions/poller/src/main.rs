//! The scheduled poller: an EventBridge schedule invokes it; it reads every change
//! feed since its cursor (and a chunk of the initial sync while one runs), queues
//! record references on SQS, then moves the cursors.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use crmsync_shared::aws::{Deployment, cold_start};
use crmsync_shared::metrics;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

async fn handle(
    d: &Deployment,
    _event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, Error> {
    let (hs_before, sf_before) = d.api_calls();
    let report = d.pipeline.poll(d.store.as_ref(), d.queue.as_ref()).await?;
    let now = d.pipeline.clock.now_ms();
    let lag_s = report
        .feeds
        .values()
        .map(|f| (now - f.cursor).max(0) as f64 / 1000.0)
        .fold(0.0, f64::max);
    let (hs_after, sf_after) = d.api_calls();
    tracing::info!(message = "poll done", queued = report.enqueued(), lag_s);
    metrics::emit(
        "poller",
        now,
        &[
            ("RecordsQueued", "Count", report.enqueued() as f64),
            ("FeedLagSeconds", "Seconds", lag_s),
            ("HubSpotCalls", "Count", (hs_after - hs_before) as f64),
            ("SalesforceCalls", "Count", (sf_after - sf_before) as f64),
        ],
    );
    Ok(serde_json::to_value(report)?)
}

/// mimalloc, not glibc's allocator: see the workspace's Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deployment = cold_start("poller").await?;
    lambda_runtime::run(service_fn(|event| handle(&deployment, event))).await
}
