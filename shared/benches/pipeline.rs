//! The initial sync end to end: both sandboxes seeded (half the people and companies
//! on both sides), then the local pipeline backfills them with the CRMs' rate limits
//! on. Prints the time, records per second, the projected time for 100,000 records,
//! and the API calls each CRM served.
//!
//! `cargo bench -p crmsync-shared --bench pipeline` (`PIPELINE_BENCH_PEOPLE`, default
//! 10,000; `PIPELINE_BENCH_WORKERS`, default 4)

use std::sync::Arc;
use std::time::{Duration, Instant};

use crmsync_sandbox::hubspot::{Caller, HubSpotSettings};
use crmsync_sandbox::salesforce::SalesforceSettings;
use crmsync_sandbox::seed::SeedSpec;
use crmsync_sandbox::{Clock, HubSpotSandbox, SalesforceSandbox};
use crmsync_shared::adapters::http::Secret;
use crmsync_shared::adapters::hubspot::{HubSpotAuth, HubSpotClient, HubSpotConfig};
use crmsync_shared::adapters::salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use crmsync_shared::adapters::sqlite::SqliteStore;
use crmsync_shared::domain::config::SyncConfig;
use crmsync_shared::local::{LocalRunner, RunOptions};
use crmsync_shared::pipeline::Pipeline;
use crmsync_shared::pipeline::intake::IntakeSettings;
use crmsync_shared::ports::{Counts, SystemClock};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run() -> Result<(), String> {
    let people = env("PIPELINE_BENCH_PEOPLE", 10_000);
    let workers = env("PIPELINE_BENCH_WORKERS", 4);
    let clock = Clock::running();
    let seed = SeedSpec {
        seed: 11,
        records: people,
        overlap: 0.5,
    };
    let loaded = Instant::now();
    let hs = HubSpotSandbox::spawn(HubSpotSettings::default(), clock.clone(), Some(seed))
        .await
        .map_err(|e| e.to_string())?;
    let sf = SalesforceSandbox::spawn(SalesforceSettings::default(), clock, Some(seed))
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "seeded {people} people in {:.1}s",
        loaded.elapsed().as_secs_f64()
    );
    // One client shared by every worker of this process: it paces itself to the whole
    // portal's limit (`concurrency` is for separate processes sharing one portal).
    let hs_config = HubSpotConfig::new(
        hs.url(),
        HubSpotAuth::PrivateApp(Secret::new("hubspot-integration-token")),
    );
    let hubspot = HubSpotClient::new(hs_config).map_err(|e| e.to_string())?;
    let salesforce = SalesforceClient::new(SalesforceConfig::new(
        sf.url(),
        SalesforceAuth::AccessToken(Secret::new("salesforce-integration-token")),
    ))
    .map_err(|e| e.to_string())?;
    let clock: Arc<dyn crmsync_shared::ports::Clock> = Arc::new(SystemClock);
    let store = Arc::new(SqliteStore::in_memory(clock.clone(), 8).map_err(|e| e.to_string())?);
    let pipeline = Pipeline::new(
        SyncConfig::builtin(),
        Arc::new(hubspot),
        Arc::new(salesforce),
        store.clone(),
        clock.clone(),
        "bench",
    );
    let options = RunOptions {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        poll_interval: None,
        workers,
        batch_size: 100,
    };
    let runner = LocalRunner::start(pipeline, IntakeSettings::default(), store.clone(), options)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut queued = 0;
    loop {
        let report = runner.poll_now().await.map_err(|e| e.to_string())?;
        queued += report.enqueued();
        if report.enqueued() == 0 {
            break;
        }
    }
    while store.queued().await.map_err(|e| e.to_string())? > 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let counts = runner
        .pipeline
        .status
        .counts()
        .await
        .map_err(|e| e.to_string())?;
    let total = counts.iter().fold(Counts::default(), |mut t, (_, _, c)| {
        t.synced += c.synced;
        t.skipped += c.skipped;
        t.failed += c.failed;
        t
    });
    let hs_calls = hs.state.calls(Caller::Integration);
    let sf_calls = sf.state.api_usage();
    runner.stop().await;
    let records = total.synced + total.skipped + total.failed;
    let per_second = records as f64 / took;
    println!(
        "backfill: {records} record pairs ({queued} queued references, echoes included) in {took:.1}s \
         with {workers} workers: {per_second:.0} records/s; 100,000 records in about {:.0} min",
        100_000.0 / per_second / 60.0
    );
    println!(
        "outcomes: {} synced, {} skipped, {} failed; API calls: HubSpot {hs_calls} ({:.1}/s; the \
         portal allows 19/s), Salesforce {sf_calls} ({:.1} per 100 records)",
        total.synced,
        total.skipped,
        total.failed,
        hs_calls as f64 / took,
        sf_calls as f64 * 100.0 / records.max(1) as f64
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("pipeline bench: {e}");
        std::process::exit(1);
    }
}
