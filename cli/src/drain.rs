//! The loop `crmsync backfill` and `crmsync import` share: list while there is more to
//! list, work the store's queue a batch at a time, and stop once the queue is empty, or
//! once only records in flight elsewhere are left (a run that stopped mid-batch: they
//! come back to the queue when their minute is up, for `crmsync run` or another go).

use std::time::{Duration, Instant};

use crmsync_shared::adapters::sqlite::SqliteStore;
use crmsync_shared::pipeline::Pipeline;
use crmsync_shared::pipeline::worker::{self, Round};
use crmsync_shared::ports::WorkQueue;

use crate::CliError;

/// How long the loop waits on records in flight elsewhere before it leaves them.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

/// A command's listing and its progress.
pub(crate) trait Job {
    /// Lists (and queues) the next part: whether anything is left to list.
    async fn list(&mut self, pipeline: &Pipeline, store: &SqliteStore) -> Result<bool, CliError>;
    /// What a worker round did.
    fn worked(&mut self, round: &Round);
}

/// How the loop ended.
pub(crate) enum Drained {
    /// Everything listed was worked.
    Empty,
    /// These many records were left in flight elsewhere.
    Held(u64),
}

pub(crate) fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Setup(e.to_string())
}

/// Lists and works until done; `command` names it in the message a pause ends it with.
pub(crate) async fn drain(
    pipeline: &Pipeline,
    store: &SqliteStore,
    job: &mut impl Job,
    command: &str,
) -> Result<Drained, CliError> {
    let mut listing = true;
    let mut last_progress = Instant::now();
    loop {
        if listing {
            listing = job.list(pipeline, store).await?;
        }
        let round = worker::run_once(pipeline, store, 100)
            .await
            .map_err(failed)?;
        if round.done > 0 {
            last_progress = Instant::now();
        }
        job.worked(&round);
        if round.paused {
            return Err(CliError::Setup(format!(
                "the sync was paused meanwhile; `crmsync resume`, then run the {command} again to finish"
            )));
        }
        let left = store.queued().await.map_err(failed)?;
        if !listing && left == 0 {
            return Ok(Drained::Empty);
        }
        if !listing && round.received == 0 && last_progress.elapsed() > GIVE_UP_AFTER {
            let depth = store.depth().await.map_err(failed)?;
            if depth.waiting == 0 {
                return Ok(Drained::Held(left as u64));
            }
        }
        if round.received == 0 && !listing {
            // Only retries are left, waiting out their delay.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
