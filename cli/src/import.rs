//! `crmsync import salesforce:Lead`: a one-time import of one Salesforce object's
//! records into HubSpot, in one process, with a progress bar (records listed and
//! synced, rate, time left) and a summary of what each record became. The listing is
//! checkpointed in the store and the queue lives there too: run the same command again
//! after an interruption and it carries on.

use std::time::Instant;

use crmsync_shared::adapters::sqlite::SqliteStore;
use crmsync_shared::domain::config::ValidatedConfig;
use crmsync_shared::pipeline::Pipeline;
use crmsync_shared::pipeline::import::{ImportError, ImportStart};
use crmsync_shared::pipeline::worker::Round;
use indicatif::{ProgressBar, ProgressStyle};

use crate::drain::{Drained, Job, drain, failed};
use crate::{CliError, run};

/// The import's listing: one checkpointed chunk at a time, its bar the object's records
/// synced.
struct Import {
    sobject: String,
    bar: ProgressBar,
    total: u64,
    done: u64,
}

impl Job for Import {
    async fn list(&mut self, pipeline: &Pipeline, store: &SqliteStore) -> Result<bool, CliError> {
        let step = pipeline
            .import_chunk(store, store, &self.sobject)
            .await
            .map_err(failed)?;
        Ok(!step.listed_all)
    }

    fn worked(&mut self, round: &Round) {
        self.done += round
            .done_by_object
            .iter()
            .filter(|(o, _)| *o == self.sobject)
            .map(|(_, n)| *n as u64)
            .sum::<u64>();
        self.bar.set_length(self.total.max(self.done));
        self.bar.set_position(self.done);
    }
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
    let mut job = Import {
        sobject: sobject.clone(),
        bar: bar.clone(),
        total,
        done: 0,
    };
    let drained = drain(&pipeline, store.as_ref(), &mut job, "import").await?;
    bar.finish_and_clear();
    if let Drained::Empty = drained {
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
    if let Drained::Held(held) = drained {
        println!(
            "{held} records are still held by a run that stopped (they return to the queue within a minute): run the import again to finish it, or `crmsync run` on this store"
        );
    }
    Ok(())
}
