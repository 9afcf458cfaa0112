//! `crmsync import salesforce:Lead`: a one-time import of one Salesforce object's
//! records into HubSpot, in one process, with a progress bar (records listed and
//! synced, rate, time left) and a summary of what each record became. The listing is
//! checkpointed in the store and the queue lives there too: run the same command again
//! after an interruption and it carries on.

use std::time::{Duration, Instant};

use crmsync_shared::domain::config::ValidatedConfig;
use crmsync_shared::pipeline::import::{ImportError, ImportStart};
use crmsync_shared::pipeline::worker;
use crmsync_shared::ports::WorkQueue;
use indicatif::{ProgressBar, ProgressStyle};

use crate::{CliError, run};

/// How long the import waits on retries alone before leaving them to `crmsync run`.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Setup(e.to_string())
}

pub async fn run(
    config: ValidatedConfig,
    store: std::path::PathBuf,
    target: &str,
) -> Result<(), CliError> {
    let (pipeline, store, _) = run::connect(config, &store).await?;
    let sobject = pipeline.import_target(target).map_err(|e| match e {
        ImportError::Malformed(_) | ImportError::NotSynced(..) => CliError::Usage(e.to_string()),
        other => failed(other),
    })?;
    if pipeline.controls().await.map_err(failed)?.paused.is_some() {
        return Err(CliError::Setup(
            "the sync is paused: `crmsync resume` first".into(),
        ));
    }
    let (start, since) = pipeline
        .start_import(store.as_ref(), &sobject)
        .await
        .map_err(failed)?;
    if start == ImportStart::Resumed {
        println!("resuming the import of salesforce:{sobject} where it stopped");
    }
    let total = pipeline.import_total(&sobject).await.map_err(failed)?;
    // The bar on standard error, drawn only on a terminal; the summary goes to stdout.
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>16} [{bar:28}] {pos:>7}/{len:<7} {per_sec:>10}  {eta} left",
        )
        .map_err(failed)?
        .progress_chars("=> "),
    );
    bar.set_prefix(sobject.clone());
    let started = Instant::now();
    let mut done = 0u64;
    let mut unfinished = 0;
    let mut listing = true;
    let mut last_progress = Instant::now();
    loop {
        if listing {
            let step = pipeline
                .import_chunk(store.as_ref(), store.as_ref(), &sobject)
                .await
                .map_err(failed)?;
            listing = !step.listed_all;
        }
        let round = worker::run_once(&pipeline, store.as_ref(), 100)
            .await
            .map_err(failed)?;
        if round.done > 0 {
            last_progress = Instant::now();
        }
        done += round
            .done_by_object
            .iter()
            .filter(|(o, _)| *o == sobject)
            .map(|(_, n)| *n as u64)
            .sum::<u64>();
        bar.set_length(total.max(done));
        bar.set_position(done);
        if round.paused {
            return Err(CliError::Setup(
                "the sync was paused meanwhile; `crmsync resume`, then run the import again to finish".into(),
            ));
        }
        let left = store.queued().await.map_err(failed)?;
        if !listing && left == 0 {
            break;
        }
        // Only records held elsewhere are left (by a run that stopped mid-batch: they
        // come back to the queue when their minute is up): the import stays under way.
        if !listing && round.received == 0 && last_progress.elapsed() > GIVE_UP_AFTER {
            let depth = store.depth().await.map_err(failed)?;
            if depth.waiting == 0 {
                unfinished = left;
                break;
            }
        }
        if round.received == 0 && !listing {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    bar.finish_and_clear();
    if unfinished == 0 {
        pipeline
            .finish_import(store.as_ref(), &sobject)
            .await
            .map_err(failed)?;
    }
    let summary = pipeline
        .import_summary(&sobject, since)
        .await
        .map_err(failed)?;
    let took = started.elapsed().as_secs_f64().max(0.001);
    println!(
        "imported salesforce:{sobject}: {} records in {took:.1}s",
        summary.records
    );
    println!("  {:>7}  created in HubSpot", summary.created);
    println!(
        "  {:>7}  linked with an existing HubSpot record",
        summary.linked
    );
    println!("  {:>7}  linked before, updated", summary.already_linked);
    for (code, n) in &summary.skipped {
        println!("  {n:>7}  skipped: {code}");
    }
    for (code, n) in &summary.failed {
        println!("  {n:>7}  failed: {code}");
    }
    if summary.waiting > 0 {
        println!("  {:>7}  not synced yet", summary.waiting);
    }
    if unfinished > 0 {
        println!(
            "{unfinished} records are still held by a run that stopped (they return to the queue within a minute): run the import again to finish it, or `crmsync run` on this store"
        );
    }
    Ok(())
}
