//! `crmsync backfill`: the initial sync in one process, with a progress bar per object
//! (records listed so far, records synced, rate, time left). The listing is
//! checkpointed in the store and the queue lives there too, so an interrupted backfill
//! picks up where it stopped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use crmsync_shared::adapters::sqlite::SqliteStore;
use crmsync_shared::domain::config::ValidatedConfig;
use crmsync_shared::pipeline::Pipeline;
use crmsync_shared::pipeline::worker::Round;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::drain::{Drained, Job, drain, failed};
use crate::{CliError, run};

/// One object's bar and its totals.
struct Progress {
    bar: ProgressBar,
    listed: u64,
    done: u64,
}

/// The bars of every object seen so far.
struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
    objects: BTreeMap<String, Progress>,
}

/// The initial sync's listing: each poll lists the next chunks of every feed (within
/// its time budget) and queues them; the checkpoint moves after each chunk.
impl Job for Bars {
    async fn list(&mut self, pipeline: &Pipeline, store: &SqliteStore) -> Result<bool, CliError> {
        let report = pipeline.poll(store, store).await.map_err(failed)?;
        for (feed, f) in &report.feeds {
            let object = feed.split_once(':').map_or(feed.as_str(), |(_, o)| o);
            let p = self.of(object);
            p.listed += f.enqueued as u64;
            p.bar.set_length(p.listed.max(p.done));
        }
        Ok(!pipeline.listing_done(store).await.map_err(failed)?)
    }

    fn worked(&mut self, round: &Round) {
        for (object, n) in &round.done_by_object {
            let p = self.of(object);
            p.done += *n as u64;
            p.bar.set_length(p.listed.max(p.done));
            p.bar.set_position(p.done);
        }
    }
}

impl Bars {
    fn of(&mut self, object: &str) -> &mut Progress {
        self.objects.entry(object.to_owned()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(0));
            bar.set_style(self.style.clone());
            bar.set_prefix(object.to_owned());
            Progress {
                bar,
                listed: 0,
                done: 0,
            }
        })
    }
}

pub async fn run(config: ValidatedConfig, store: PathBuf, dry_run: bool) -> Result<(), CliError> {
    let (pipeline, store, _) = run::connect(config, &store).await?;
    if dry_run {
        let plan = pipeline.plan_backfill().await.map_err(CliError::Setup)?;
        println!("dry run: nothing was written");
        for (pair, actions) in &plan.pairs {
            println!("{pair}:");
            for (what, n) in actions {
                println!("  {n:>7}  {what}");
            }
        }
        return Ok(());
    }
    if pipeline.controls().await.map_err(failed)?.paused.is_some() {
        return Err(CliError::Setup(
            "the sync is paused: `crmsync resume` first".into(),
        ));
    }
    let started = Instant::now();
    // Bars on standard error, drawn only on a terminal; the summary goes to stdout.
    let style = ProgressStyle::with_template(
        "{prefix:>24} [{bar:28}] {pos:>7}/{len:<7} {per_sec:>10}  {eta} left",
    )
    .map_err(failed)?
    .progress_chars("=> ");
    let mut bars = Bars {
        multi: MultiProgress::new(),
        style,
        objects: BTreeMap::new(),
    };
    if let Drained::Held(left) = drain(&pipeline, store.as_ref(), &mut bars, "backfill").await? {
        println!(
            "{left} records wait to be retried (see `crmsync errors` and `crmsync status`); `crmsync run` on this store retries them"
        );
    }
    for p in bars.objects.values() {
        p.bar.finish();
    }
    let _ = bars.multi.clear();
    let took = started.elapsed().as_secs_f64().max(0.001);
    for (object, p) in &bars.objects {
        println!(
            "{object}: {} records listed, {} done in {took:.1}s ({:.0}/s)",
            p.listed,
            p.done,
            p.done as f64 / took
        );
    }
    let counts = pipeline.status.counts().await.map_err(failed)?;
    for (object, direction, c) in counts {
        println!(
            "{object} {direction}: synced {}, skipped {}, failed {}",
            c.synced, c.skipped, c.failed
        );
    }
    Ok(())
}
