//! `crmsync run`: the local pipeline as a long-lived process against real CRMs or any
//! server that speaks their APIs. Connections and secrets come from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crmsync_shared::adapters::hubspot::HubSpotClient;
use crmsync_shared::adapters::salesforce::SalesforceClient;
use crmsync_shared::adapters::sqlite::SqliteStore;
use crmsync_shared::domain::config::ValidatedConfig;
use crmsync_shared::local::env::Connections;
use crmsync_shared::local::{DEFAULT_BATCH_SIZE, LocalRunner, RunOptions};
use crmsync_shared::pipeline::Pipeline;
use crmsync_shared::pipeline::poll::{
    POLL_BUDGET_SHARE, default_interval_ms, projected_daily_salesforce_calls,
};
use crmsync_shared::ports::{Clock, SystemClock};

use crate::CliError;

/// Salesforce's smallest daily allowance (Enterprise Edition, before per-license
/// additions), which the default poll interval is sized for.
pub const ASSUMED_DAILY_ALLOWANCE: u64 = 100_000;

pub struct RunArgs {
    pub config: ValidatedConfig,
    pub listen: SocketAddr,
    pub store: PathBuf,
    pub poll_interval: Option<Duration>,
    pub workers: usize,
}

/// Reads `2s`, `500ms`, `1m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 2s, 500ms or 1m, got {text:?}"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1_000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("expected a unit ms, s, m or h in {text:?}")),
    };
    if ms == 0 {
        return Err("the poll interval must be more than zero".into());
    }
    Ok(Duration::from_millis(ms))
}

/// Clients and a pipeline on the embedded store, from the environment.
pub async fn connect(
    config: ValidatedConfig,
    store_path: &PathBuf,
) -> Result<(Pipeline, Arc<SqliteStore>, Connections), CliError> {
    let connections = Connections::from_env(|k| std::env::var(k).ok())
        .map_err(|e| CliError::Setup(e.to_string()))?;
    let hubspot = HubSpotClient::new(connections.hubspot.clone())
        .map_err(|e| CliError::Setup(format!("HubSpot client: {e}")))?;
    let salesforce = SalesforceClient::new(connections.salesforce.clone())
        .map_err(|e| CliError::Setup(format!("Salesforce client: {e}")))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Arc::new(
        SqliteStore::open(store_path, clock.clone(), 8)
            .map_err(|e| CliError::Setup(format!("store {}: {e}", store_path.display())))?,
    );
    let worker = format!("local-{}", std::process::id());
    let mut pipeline = Pipeline::new(
        config,
        Arc::new(hubspot),
        Arc::new(salesforce),
        store.clone(),
        clock,
        worker,
    );
    pipeline.failpoint = std::env::var("CRMSYNC_FAILPOINT").ok();
    if let Err(e) = pipeline.load_owners().await {
        eprintln!("crmsync: owners not matched ({e}); owner fields will not sync");
    }
    if let Err(e) = pipeline.load_object_types().await {
        eprintln!(
            "crmsync: custom object types unknown ({e}); webhooks naming them by id will not match a pair configured by name"
        );
    }
    Ok((pipeline, store, connections))
}

pub async fn run(args: RunArgs) -> Result<(), CliError> {
    let (pipeline, store, connections) = connect(args.config, &args.store).await?;
    let interval = args
        .poll_interval
        .unwrap_or(Duration::from_millis(default_interval_ms(
            ASSUMED_DAILY_ALLOWANCE,
        )));
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    let daily = projected_daily_salesforce_calls(interval_ms);
    println!(
        "polling every {:.1}s: about {daily} Salesforce API calls a day for polling \
         ({:.1}% of a {ASSUMED_DAILY_ALLOWANCE}-call allowance; the default keeps it under {:.0}%), \
         plus about 3 per 100 changed records",
        interval.as_secs_f64(),
        daily as f64 * 100.0 / ASSUMED_DAILY_ALLOWANCE as f64,
        POLL_BUDGET_SHARE * 100.0,
    );
    let options = RunOptions {
        listen: args.listen,
        poll_interval: Some(interval),
        workers: args.workers,
        batch_size: DEFAULT_BATCH_SIZE,
    };
    let runner = LocalRunner::start(pipeline, connections.intake, store, options)
        .await
        .map_err(|e| CliError::Setup(format!("cannot listen on {}: {e}", args.listen)))?;
    println!("listening {}", runner.url());
    shutdown_signal().await;
    println!("stopping: finishing the batches in hand; queued work stays in the store");
    runner.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("2d").is_err());
    }
}
