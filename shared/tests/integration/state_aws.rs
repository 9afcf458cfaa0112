//! The DynamoDB and SQS adapters through the same contract suites, against moto's
//! server speaking the real AWS wire protocol. `scripts/test.sh` starts moto and sets
//! `CRMSYNC_MOTO_URL`; without it these tests fail, they do not skip.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, Region};
use crmsync_shared::adapters::dynamodb::DynamoStore;
use crmsync_shared::adapters::sqs::SqsQueue;
use crmsync_shared::contract;
use crmsync_shared::ports::{ClaimStore, CursorStore, LinkStore};

pub async fn aws() -> aws_config::SdkConfig {
    let endpoint = std::env::var("CRMSYNC_MOTO_URL")
        .unwrap_or_else(|_| panic!("CRMSYNC_MOTO_URL is not set: run the tests with scripts/test.sh, which starts moto's server"));
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

async fn dynamo() -> DynamoStore {
    let client = aws_sdk_dynamodb::Client::new(&aws().await);
    let table = unique("crmsync-state");
    DynamoStore::create_table(&client, &table)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    DynamoStore::new(client, table)
}

#[tokio::test]
async fn links_contract_on_dynamodb() {
    contract::links(&dynamo().await).await;
    let s: Arc<dyn LinkStore> = Arc::new(dynamo().await);
    contract::links_race(s).await;
}

#[tokio::test]
async fn cursors_contract_on_dynamodb() {
    contract::cursors(&dynamo().await).await;
    let s: Arc<dyn CursorStore> = Arc::new(dynamo().await);
    contract::cursors_race(s).await;
}

#[tokio::test]
async fn claims_contract_on_dynamodb() {
    contract::claims(&dynamo().await).await;
    let s: Arc<dyn ClaimStore> = Arc::new(dynamo().await);
    contract::claims_race(s).await;
}

#[tokio::test]
async fn queue_contract_on_sqs() {
    let client = aws_sdk_sqs::Client::new(&aws().await);
    let queue = SqsQueue::create(&client, &unique("crmsync-work"), 5)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    contract::queue(&queue, 5).await;
}

#[tokio::test]
async fn statuses_and_dedup_contract_on_dynamodb() {
    contract::statuses(&dynamo().await).await;
    contract::dedup_index(&dynamo().await).await;
    contract::controls(&dynamo().await).await;
    contract::telemetry(&dynamo().await).await;
}
