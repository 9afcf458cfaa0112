//! The same pipeline as the Lambda functions build it (`Deployment::from_env`): state in
//! DynamoDB and the queue on SQS (moto's server), the CRMs in the sandboxes. A poll
//! queues on SQS, a worker round syncs from SQS, and the link lands in DynamoDB.

use std::collections::HashMap;

use crmsync_sandbox::hubspot::HubSpotSettings;
use crmsync_sandbox::salesforce::SalesforceSettings;
use crmsync_sandbox::{Clock, HubSpotSandbox, SalesforceSandbox};
use crmsync_shared::adapters::dynamodb::DynamoStore;
use crmsync_shared::adapters::sqs::SqsQueue;
use crmsync_shared::aws::Deployment;
use crmsync_shared::pipeline::worker;
use crmsync_shared::ports::LinkStore;
use serde_json::{Value, json};

use crate::state_aws::{aws, unique};

#[tokio::test]
async fn the_lambda_deployment_syncs_through_dynamodb_and_sqs() {
    let aws = aws().await;
    let table = unique("crmsync-pipeline");
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&aws), &table)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let queue = SqsQueue::create(&aws_sdk_sqs::Client::new(&aws), &unique("crmsync-work"), 5)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Running clocks: SQS visibility and DynamoDB TTLs are moto's wall time.
    let clock = Clock::running();
    let hs_settings = HubSpotSettings {
        search_lag_ms: 0,
        ..HubSpotSettings::default()
    };
    let hs = HubSpotSandbox::spawn(hs_settings, clock.clone(), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sf = SalesforceSandbox::spawn(SalesforceSettings::default(), clock, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The tokens live in Secrets Manager (moto's), not in the environment.
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let secret = secrets
        .create_secret()
        .name(unique("crmsync-credentials"))
        .secret_string(
            json!({
                "CRMSYNC_HUBSPOT_TOKEN": "hubspot-integration-token",
                "CRMSYNC_SALESFORCE_TOKEN": "salesforce-integration-token"
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let arn = secret.arn().unwrap_or_default().to_owned();
    let junk = secrets
        .create_secret()
        .name(unique("crmsync-junk"))
        .secret_string("not json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let junk_arn = junk.arn().unwrap_or_default().to_owned();
    let env: HashMap<&str, String> = HashMap::from([
        ("CRMSYNC_TABLE", table.clone()),
        ("CRMSYNC_QUEUE_URL", queue.url().to_owned()),
        ("CRMSYNC_HUBSPOT_URL", hs.url()),
        ("CRMSYNC_SALESFORCE_URL", sf.url()),
        ("CRMSYNC_SECRET_ARN", arn),
    ]);
    let with_junk = |k: &str| {
        if k == "CRMSYNC_SECRET_ARN" {
            Some(junk_arn.clone())
        } else {
            env.get(k).cloned()
        }
    };
    let refused = Deployment::from_env_with(with_junk, "t", &aws).await;
    let refused = refused
        .err()
        .unwrap_or_else(|| panic!("a malformed secret is refused"));
    assert_eq!(refused.variable, "CRMSYNC_SECRET_ARN");
    assert!(
        !refused.message.contains("not json"),
        "secret values never show in errors"
    );
    let missing = Deployment::from_env_with(
        |k| {
            (k != "CRMSYNC_TABLE")
                .then(|| env.get(k).cloned())
                .flatten()
        },
        "t",
        &aws,
    )
    .await;
    assert_eq!(
        missing.err().map(|e| e.variable),
        Some("CRMSYNC_TABLE"),
        "a missing variable is named"
    );
    let d = Deployment::from_env_with(|k| env.get(k).cloned(), "worker-test", &aws)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/_sandbox/hubspot/objects/contacts", hs.url()))
        .json(&json!({"properties": {"email": "lambda@example.org", "lastname": "Lambda"}}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = created["id"].as_str().unwrap_or_default().to_owned();

    let report = d
        .pipeline
        .poll(d.store.as_ref(), d.queue.as_ref())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.enqueued(), 1, "{report:?}");
    let round = worker::run_once(&d.pipeline, d.queue.as_ref(), 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((round.received, round.done), (1, 1));
    let link = d
        .store
        .by_hubspot("contacts", &id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let link = link.unwrap_or_else(|| panic!("no link in DynamoDB"));
    assert_eq!(link.salesforce_object, "Lead");
    let leads: Value = http
        .get(format!("{}/_sandbox/salesforce/objects/Lead", sf.url()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(leads["records"][0]["Id"], json!(link.salesforce_id));
    // The next poll finds our own writes on both sides. The contact is as the link
    // (in DynamoDB) last synced it: not queued. The Lead holds an owner Salesforce gave
    // it, news to the link: read once, and nothing is written.
    let again = d
        .pipeline
        .poll(d.store.as_ref(), d.queue.as_ref())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.enqueued(), 1, "the echoes: {again:?}");
    let round = worker::run_once(&d.pipeline, d.queue.as_ref(), 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((round.received, round.done), (1, 1));
    let after = d
        .store
        .by_hubspot("contacts", &id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        after.map(|l| l.version),
        Some(link.version),
        "the link did not move"
    );
}
