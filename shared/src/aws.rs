//! The pipeline as the Lambda functions build it at cold start: state in DynamoDB, the
//! queue on SQS, the CRMs over HTTPS. Everything comes from the environment the SAM
//! template sets; a missing or malformed variable is named in the error.

use std::collections::HashMap;
use std::sync::Arc;

use crate::adapters::dynamodb::{DynamoStore, aws_config};
use crate::adapters::hubspot::HubSpotClient;
use crate::adapters::salesforce::SalesforceClient;
use crate::adapters::sqs::SqsQueue;
use crate::domain::config::{SyncConfig, ValidatedConfig};
use crate::local::env::{Connections, EnvError};
use crate::pipeline::Pipeline;
use crate::pipeline::intake::Intake;
use crate::ports::{Clock, SystemClock};

/// The variables only the Lambda functions read (the CRM ones are shared with
/// `crmsync run`, see [`crate::local::env::VARIABLES`]).
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "CRMSYNC_TABLE",
        "the DynamoDB table of links, cursors, claims and status",
    ),
    ("CRMSYNC_QUEUE_URL", "the SQS queue of record references"),
    (
        "CRMSYNC_DEAD_LETTER_URL",
        "its dead-letter queue (optional, for health)",
    ),
    (
        "CRMSYNC_CONFIG",
        "the sync configuration as TOML text (default: the built-in one)",
    ),
    (
        "CRMSYNC_AWS_ENDPOINT",
        "an endpoint override for local AWS servers (tests only)",
    ),
];

/// What a function needs, built once per cold start.
#[derive(Clone)]
pub struct Deployment {
    pub pipeline: Pipeline,
    /// The clients themselves, for their call counters (metrics).
    pub hubspot: Arc<HubSpotClient>,
    pub salesforce: Arc<SalesforceClient>,
    pub store: Arc<DynamoStore>,
    pub queue: Arc<SqsQueue>,
    pub intake: Intake,
}

/// The `CRMSYNC_*` entries of a secret's JSON object.
async fn read_secret(
    aws: &aws_config::SdkConfig,
    arn: &str,
) -> Result<HashMap<String, String>, EnvError> {
    let fail = |message: String| EnvError {
        variable: "CRMSYNC_SECRET_ARN",
        message,
    };
    let answer = aws_sdk_secretsmanager::Client::new(aws)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            fail(format!(
                "cannot read the secret: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    let text = answer
        .secret_string()
        .ok_or_else(|| fail("the secret has no string value".into()))?;
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|_| fail("expected the secret to be a JSON object of CRMSYNC_* keys".into()))?;
    let mut out = HashMap::new();
    for (k, v) in json {
        match v {
            serde_json::Value::String(s) if k.starts_with("CRMSYNC_") => {
                out.insert(k, s);
            }
            _ => {
                return Err(fail(format!(
                    "key {k}: expected a CRMSYNC_* key with a string value"
                )));
            }
        }
    }
    Ok(out)
}

fn required(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    what: &str,
) -> Result<String, EnvError> {
    get(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| EnvError {
            variable: name,
            message: format!("expected {what}"),
        })
}

/// The configuration from `CRMSYNC_CONFIG`, or the built-in one.
pub fn config_from_env(get: &impl Fn(&str) -> Option<String>) -> Result<ValidatedConfig, EnvError> {
    match get("CRMSYNC_CONFIG").filter(|v| !v.trim().is_empty()) {
        None => Ok(SyncConfig::builtin()),
        Some(text) => SyncConfig::from_toml(&text).map_err(|e| EnvError {
            variable: "CRMSYNC_CONFIG",
            message: e.to_string(),
        }),
    }
}

impl Deployment {
    /// Builds the deployment from the environment; `worker` names this invocation's
    /// claims (the function name and the request id are good choices).
    pub async fn from_env(
        get: impl Fn(&str) -> Option<String>,
        worker: impl Into<String>,
    ) -> Result<Self, EnvError> {
        let aws = aws_config(get("CRMSYNC_AWS_ENDPOINT").as_deref()).await;
        Self::from_env_with(get, worker, &aws).await
    }

    /// As [`Deployment::from_env`], with the AWS configuration given (tests point it
    /// at moto's server).
    pub async fn from_env_with(
        get: impl Fn(&str) -> Option<String>,
        worker: impl Into<String>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, EnvError> {
        // Secrets come from Secrets Manager, read once per cold start; the rest of the
        // settings from the environment the template sets.
        let secrets = match get("CRMSYNC_SECRET_ARN").filter(|v| !v.trim().is_empty()) {
            Some(arn) => read_secret(aws, &arn).await?,
            None => HashMap::new(),
        };
        let get = |k: &str| secrets.get(k).cloned().or_else(|| get(k));
        let config = config_from_env(&get)?;
        let table = required(&get, "CRMSYNC_TABLE", "the DynamoDB table name")?;
        let queue_url = required(&get, "CRMSYNC_QUEUE_URL", "the SQS queue URL")?;
        let connections = Connections::from_env(get)?;
        let hubspot = HubSpotClient::new(connections.hubspot.clone()).map_err(|e| EnvError {
            variable: "CRMSYNC_HUBSPOT_URL",
            message: e.to_string(),
        })?;
        let salesforce =
            SalesforceClient::new(connections.salesforce.clone()).map_err(|e| EnvError {
                variable: "CRMSYNC_SALESFORCE_URL",
                message: e.to_string(),
            })?;
        let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), table));
        let queue = Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(aws),
            queue_url,
            get("CRMSYNC_DEAD_LETTER_URL"),
        ));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (hubspot, salesforce) = (Arc::new(hubspot), Arc::new(salesforce));
        let mut pipeline = Pipeline::new(
            config,
            hubspot.clone(),
            salesforce.clone(),
            store.clone(),
            clock,
            worker,
        );
        if let Err(e) = pipeline.load_owners().await {
            tracing::warn!(message = "owners not matched; owner fields will not sync", error = %e);
        }
        if let Err(e) = pipeline.load_object_types().await {
            tracing::warn!(message = "custom object types unknown; webhooks naming them by id will not match a pair configured by name", error = %e);
        }
        let intake = Intake {
            settings: connections.intake,
            pipeline: pipeline.clone(),
            queue: queue.clone(),
            cursors: store.clone(),
        };
        Ok(Deployment {
            pipeline,
            hubspot,
            salesforce,
            store,
            queue,
            intake,
        })
    }
}

/// JSON logs to stdout, where Lambda sends them to CloudWatch; the level from
/// `CRMSYNC_LOG` (default `info`).
pub fn init_json_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CRMSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .without_time()
        .try_init();
}

/// Builds the deployment at cold start, or explains why not (the function then fails
/// every invocation with that message rather than crash-looping silently).
pub async fn cold_start(function: &str) -> Result<Deployment, String> {
    let started = std::time::Instant::now();
    init_json_logs();
    let worker = format!(
        "{function}-{}",
        std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_default()
    );
    let deployment = Deployment::from_env(|k| std::env::var(k).ok(), worker)
        .await
        .map_err(|e| {
            tracing::error!(message = "cannot start: configuration", error = %e);
            e.to_string()
        })?;
    let init_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(message = "cold start", function, init_ms);
    Ok(deployment)
}

impl Deployment {
    /// API calls made so far by this instance: (HubSpot, Salesforce).
    pub fn api_calls(&self) -> (u64, u64) {
        (
            self.hubspot.calls().total(),
            self.salesforce.calls().total(),
        )
    }
}
