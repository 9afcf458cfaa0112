//! `crmsync backfill`: the initial sync in one process, with a progress bar per object
//! (records listed so far, records synced, rate, time left). The listing is
//! checkpointed in the store and the queue lives there too, so an interrupted backfill
//! picks up where it stopped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crmsync_shared::domain::config::ValidatedConfig;
use crmsync_shared::pipeline::worker;
use crmsync_shared::ports::WorkQueue;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::{CliError, run};

/// How long the backfill waits on retries alone before leaving them to `crmsync run`.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Setup(e.to_string())
}

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
    let mut listing = true;
    let mut last_progress = Instant::now();
    loop {
        if listing {
            // Each poll lists the next chunks of every feed (within its time budget)
            // and queues them; the checkpoint moves after each chunk.
            let report = pipeline
                .poll(store.as_ref(), store.as_ref())
                .await
                .map_err(failed)?;
            for (feed, f) in &report.feeds {
                let object = feed.split_once(':').map_or(feed.as_str(), |(_, o)| o);
                let p = bars.of(object);
                p.listed += f.enqueued as u64;
                p.bar.set_length(p.listed.max(p.done));
            }
            listing = !pipeline
                .listing_done(store.as_ref())
                .await
                .map_err(failed)?;
        }
        let round = worker::run_once(&pipeline, store.as_ref(), 100)
            .await
            .map_err(failed)?;
        if round.done > 0 {
            last_progress = Instant::now();
        }
        for (object, n) in &round.done_by_object {
            let p = bars.of(object);
            p.done += *n as u64;
            p.bar.set_length(p.listed.max(p.done));
            p.bar.set_position(p.done);
        }
        if round.paused {
            return Err(CliError::Setup(
                "the sync was paused meanwhile; `crmsync resume`, then run the backfill again to finish".into(),
            ));
        }
        let left = store.queued().await.map_err(failed)?;
        if !listing && left == 0 {
            break;
        }
        // Only retries left, none of which went through for a while (records waiting
        // for a related record, backing off): they stay queued in the store for
        // `crmsync run`, rather than holding the backfill for minutes.
        if !listing && round.received == 0 && last_progress.elapsed() > GIVE_UP_AFTER {
            let depth = store.depth().await.map_err(failed)?;
            if depth.waiting == 0 {
                println!(
                    "{left} records wait to be retried (see `crmsync errors` and `crmsync status`); `crmsync run` on this store retries them"
                );
                break;
            }
        }
        if round.received == 0 && !listing {
            // Only retries are left, waiting out their delay.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
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
