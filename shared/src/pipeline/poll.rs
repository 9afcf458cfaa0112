//! The safety net under webhooks and outbound messages: read each change feed since its
//! cursor, enqueue record references, then move the cursor.
//!
//! Each feed is read from a little before its cursor (commits lag), and records seen in
//! that overlap with the same modification time are not queued twice. HubSpot's is read
//! from its cursor, and in the same search calls (a second filter group) the window that
//! has grown older than its index's lag since the last poll, once: re-reading the lag's
//! window at every poll read each change five times at a poll a second, on the
//! allowance every other call shares. What lags longer than that is read once more when
//! it has settled: a second cursor per feed trails the clock by the longest lag allowed
//! and reads each window behind it once. Behind a backlog of queued work (an initial
//! sync, an import) only that settled read is made: a reference would wait behind the
//! backlog anyway, and the feeds' windows hold mostly the sync's own writes; likewise
//! Salesforce's feed then reads from its cursor, without the overlap. The cursors move
//! only after the enqueue succeeded: a crash in between queues the same references
//! again (harmless, the sync is idempotent) and never skips any.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::Pipeline;
use crate::domain::Side;
use crate::domain::value::parse_datetime_millis;
use crate::ports::crm::Modified;
use crate::ports::{Cursor, CursorStore, Seen, StoreError, WorkItem, WorkQueue};

/// How long HubSpot's search index may trail writes ("a few moments"): the HubSpot
/// feed reads each window once more when it is this old (the lagged read). A change
/// indexed later than this is read by the settled read instead, a couple of minutes on.
pub const HUBSPOT_OVERLAP_MS: i64 = 4_000;
/// How long after a change the HubSpot feed reads it once more, for the index's rare
/// longer lags.
pub const HUBSPOT_SETTLE_MS: i64 = 2 * 60_000;
/// Salesforce's `SystemModstamp` is set before commit, so a slower transaction can
/// commit a time before a faster one's: each poll re-reads a few seconds...
pub const SALESFORCE_OVERLAP_MS: i64 = 10_000;
/// ...and a minute later the window once more, for long transactions.
pub const SALESFORCE_SETTLE_MS: i64 = 60_000;
/// References waiting beyond which HubSpot's feeds read only their settled windows: a
/// change queued now would wait behind more than the workers take in a few batches, so
/// reading it early gains little, and each change is read once (an initial sync's feeds
/// page through all of its own writes).
pub const BACKLOG: u64 = 2_000;
/// How much settled time a settled read waits for (one read per window this long).
const SETTLE_STEP_MS: i64 = 30_000;
/// How long a (record, modification time) pair is remembered to skip re-reads: past
/// the settled read of its window.
const SEEN_TTL_MS: i64 = 4 * HUBSPOT_SETTLE_MS;
/// References per enqueue call.
const ENQUEUE_CHUNK: usize = 500;

/// How long one poll may spend on backfill chunks (a Lambda invocation has minutes).
const BACKFILL_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);
/// HubSpot pages (of 100) per backfill chunk.
const BACKFILL_HUBSPOT_PAGES: usize = 20;
/// Salesforce ids per backfill chunk (one query page).
const BACKFILL_SALESFORCE_ROWS: usize = 2_000;

/// How long a poll's listings go on: their budget, and past it while the poll's feeds
/// are still being read (the poll waits for those anyway).
#[derive(Clone, Copy)]
pub(crate) struct Budget<'a> {
    started: std::time::Instant,
    feeds_reading: &'a std::sync::atomic::AtomicBool,
}

impl<'a> Budget<'a> {
    pub(crate) fn new(feeds_reading: &'a std::sync::atomic::AtomicBool) -> Self {
        Budget {
            started: std::time::Instant::now(),
            feeds_reading,
        }
    }

    fn left(&self) -> bool {
        self.started.elapsed() < BACKFILL_BUDGET
            || self
                .feeds_reading
                .load(std::sync::atomic::Ordering::Acquire)
    }
}

/// What marks one modification (a record at a modification time) of a feed as queued,
/// or as needing nothing: no poll queues it again.
fn seen_key(feed: &str, id: &str, at: i64) -> String {
    format!("seen:{feed}:{id}:{at}")
}

impl Pipeline {
    /// Marks modifications a push brought (queued, or the link already holding them),
    /// so the poller's read of the same modification does not queue it again. Best
    /// effort: a mark not stored costs a read, never a change.
    pub(crate) async fn mark_seen(&self, marks: &[(String, String, i64)]) {
        let now = self.clock.now_ms();
        let keys: Vec<String> = marks
            .iter()
            .map(|(feed, id, at)| seen_key(feed, id, *at))
            .collect();
        if let Err(e) = self.claims.first_sights(&keys, SEEN_TTL_MS, now).await {
            tracing::warn!(message = "pushed changes not marked seen", error = %e);
        }
    }
}

/// The mark of a HubSpot feed's lagged reads: every change modified before it was read
/// at least [`HUBSPOT_OVERLAP_MS`] after it was made.
fn lagged_key(feed: &str) -> String {
    format!("lagged:{feed}")
}

/// A HubSpot feed's lagged read due now: its mark as stored, and the window from the
/// mark (without one, the lag before the feed's cursor `from`) to the lag ago, when the
/// window is not empty.
async fn lagged_window(
    cursors: &dyn CursorStore,
    feed: &str,
    from: i64,
    now: i64,
) -> Result<(Option<Cursor>, Option<(i64, i64)>), PollError> {
    let mark = cursors.cursor(&lagged_key(feed)).await?;
    let start = mark
        .as_ref()
        .map_or(from - HUBSPOT_OVERLAP_MS, |m| m.at)
        .max(0);
    let until = now - HUBSPOT_OVERLAP_MS;
    Ok((mark, (start < until).then_some((start, until))))
}

/// Moves a feed's lagged mark past the window just read (after its changes were
/// queued).
async fn advance_lagged(
    cursors: &dyn CursorStore,
    feed: &str,
    mark: Option<&Cursor>,
    window: Option<(i64, i64)>,
) -> Result<(), PollError> {
    let Some((_, until)) = window else {
        return Ok(());
    };
    let to = Cursor {
        at: until,
        last_id: String::new(),
    };
    match cursors.advance(&lagged_key(feed), mark, &to).await {
        // Another poller moved it first.
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The cursor of a feed's settled reads.
fn settled_key(feed: &str) -> String {
    format!("settled:{feed}")
}

/// The window a feed's settled read covers now, from its mark to `until`, when at
/// least [`SETTLE_STEP_MS`] of it has settled. A feed without a mark (its first poll,
/// or a store from before settled reads) starts one at `until`.
async fn settled_window(
    cursors: &dyn CursorStore,
    feed: &str,
    until: i64,
) -> Result<Option<(Cursor, i64)>, PollError> {
    let key = settled_key(feed);
    match cursors.cursor(&key).await? {
        Some(mark) if until - mark.at >= SETTLE_STEP_MS => Ok(Some((mark, until))),
        Some(_) => Ok(None),
        None => {
            let start = Cursor {
                at: until,
                last_id: String::new(),
            };
            match cursors.advance(&key, None, &start).await {
                Ok(()) | Err(StoreError::Conflict(_)) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// A finished backfill's cursor.
pub(crate) const BACKFILL_DONE: i64 = i64::MAX;
/// How often linked HubSpot records are checked for deletions webhooks missed.
pub const SWEEP_INTERVAL_MS: i64 = 3_600_000;

/// Salesforce calls one poll costs: every enabled object's changes and deletions come
/// back from one Composite call.
pub const SALESFORCE_CALLS_PER_POLL: u64 = 1;
/// The default interval keeps polling under this share of the daily allowance.
pub const POLL_BUDGET_SHARE: f64 = 0.05;

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("HubSpot: {0}")]
    HubSpot(String),
    #[error("Salesforce: {0}")]
    Salesforce(String),
    #[error("state: {0}")]
    State(#[from] StoreError),
}

/// What one poll read and queued, per feed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PollReport {
    pub feeds: BTreeMap<String, FeedReport>,
    /// The sync is paused: nothing was read.
    pub paused: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FeedReport {
    pub read: usize,
    pub enqueued: usize,
    pub cursor: i64,
}

impl FeedReport {
    /// A feed read for the first time: nothing read, its cursor started at `now`.
    pub(crate) fn started(now: i64) -> Self {
        FeedReport {
            read: 0,
            enqueued: 0,
            cursor: now,
        }
    }

    /// Adds a settled read's figures; the cursor stays the feed's.
    fn absorb(&mut self, settled: FeedReport) {
        self.read += settled.read;
        self.enqueued += settled.enqueued;
    }
}

impl PollReport {
    pub fn enqueued(&self) -> usize {
        self.feeds.values().map(|f| f.enqueued).sum()
    }
}

/// One Salesforce feed read: the object's changes from `since` (to `until`), answered
/// under `reference` in the Composite call.
struct Window<'a> {
    reference: String,
    object: &'a str,
    since: i64,
    until: Option<i64>,
}

/// A feed's cursor; a feed read for the first time has its cursor started at `now`
/// instead (what came before is not replayed) and answers `None`.
pub(crate) async fn cursor_or_start(
    cursors: &dyn CursorStore,
    feed: &str,
    now: i64,
) -> Result<Option<Cursor>, PollError> {
    if let Some(c) = cursors.cursor(feed).await? {
        return Ok(Some(c));
    }
    let start = Cursor {
        at: now,
        last_id: String::new(),
    };
    match cursors.advance(feed, None, &start).await {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Moves a feed's cursor from `from` to `to` when that moves it; another poller having
/// moved it first is fine (what was queued is queued twice at most).
pub(crate) async fn move_cursor(
    cursors: &dyn CursorStore,
    feed: &str,
    from: &Cursor,
    to: &Cursor,
) -> Result<(), PollError> {
    if to == from {
        return Ok(());
    }
    match cursors.advance(feed, Some(from), to).await {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Where a feed's read stopped mid-way (a page token, opaque and in no order), kept
/// under a key of its own so that it never has to move the feed's cursor (a time):
/// that key's cursor counts its saves, so each save moves it forward.
pub(crate) struct PageMark {
    key: String,
    stored: Option<Cursor>,
}

impl PageMark {
    pub(crate) async fn read(cursors: &dyn CursorStore, feed: &str) -> Result<Self, PollError> {
        let key = format!("{feed}|page");
        let stored = cursors.cursor(&key).await?;
        Ok(PageMark { key, stored })
    }

    /// The token saved last; none: the read starts from the beginning.
    pub(crate) fn token(&self) -> Option<&str> {
        self.stored
            .as_ref()
            .map(|c| c.last_id.as_str())
            .filter(|t| !t.is_empty())
    }

    /// Saves `token` (none: the next read starts from the beginning).
    pub(crate) async fn save(
        &self,
        cursors: &dyn CursorStore,
        token: Option<&str>,
    ) -> Result<(), PollError> {
        if self.token() == token {
            return Ok(());
        }
        let to = Cursor {
            at: self.stored.as_ref().map_or(1, |c| c.at + 1),
            last_id: token.unwrap_or_default().to_owned(),
        };
        match &self.stored {
            Some(from) => move_cursor(cursors, &self.key, from, &to).await,
            None => match cursors.advance(&self.key, None, &to).await {
                Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// One poll's read of a feed paged from its newest end (form submissions, email
/// events), which may be cut off at the poll's page cap.
pub(crate) struct PagedRead {
    pub from: Cursor,
    pub mark: PageMark,
    pub changes: Vec<Change>,
    /// Cut off: the page mark's token to go on from at the next poll.
    pub rest: Option<String>,
    /// Read to its end: where the cursor moves (never back).
    pub to: i64,
}

impl Pipeline {
    /// Queues a paged read and says where its feed stands: a read cut off keeps its
    /// place in the page mark and leaves the cursor, so the next poll finishes it; a
    /// read to its end clears the mark and moves the cursor.
    pub(crate) async fn enqueue_paged(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        feed: &str,
        paged: PagedRead,
    ) -> Result<FeedReport, PollError> {
        let read = paged.changes.len();
        let enqueued = self.enqueue_unseen(queue, feed, paged.changes).await?;
        if let Some(token) = &paged.rest {
            paged.mark.save(cursors, Some(token)).await?;
            return Ok(FeedReport {
                read,
                enqueued,
                cursor: paged.from.at,
            });
        }
        paged.mark.save(cursors, None).await?;
        let to = Cursor {
            at: paged.to.max(paged.from.at),
            last_id: String::new(),
        };
        move_cursor(cursors, feed, &paged.from, &to).await?;
        Ok(FeedReport {
            read,
            enqueued,
            cursor: to.at,
        })
    }
}

/// A side feed's read: its report kept, or its CRM's failure logged (a store failure
/// still ends the poll).
fn keep_or_warn(
    report: &mut PollReport,
    feed: String,
    read: Result<FeedReport, PollError>,
) -> Result<(), PollError> {
    match read {
        Ok(r) => {
            report.feeds.insert(feed, r);
            Ok(())
        }
        Err(e @ PollError::State(_)) => Err(e),
        Err(e) => {
            tracing::warn!(message = "a feed could not be read; the others go on", feed = %feed, error = %e);
            Ok(())
        }
    }
}

/// A change read from a feed: the record and when it changed.
pub(crate) struct Change {
    pub item: WorkItem,
    pub at: i64,
}

/// The projected daily Salesforce calls of polling every `interval_ms`.
pub fn projected_daily_salesforce_calls(interval_ms: u64) -> u64 {
    (86_400_000 / interval_ms.max(1)) * SALESFORCE_CALLS_PER_POLL
}

/// The shortest interval that keeps polling within [`POLL_BUDGET_SHARE`] of a daily
/// allowance.
pub fn default_interval_ms(daily_allowance: u64) -> u64 {
    let budget = (daily_allowance as f64 * POLL_BUDGET_SHARE).max(1.0);
    let polls = budget / SALESFORCE_CALLS_PER_POLL as f64;
    ((86_400_000.0 / polls).ceil() as u64).max(1_000)
}

/// The checkpoint of a feed's listing: the initial sync's, or a full reconcile's
/// (`reconcile` > 0, one per reconcile the controls asked for).
fn backfill_key(feed: &str, reconcile: u64) -> String {
    if reconcile == 0 {
        format!("backfill:{feed}")
    } else {
        format!("reconcile{reconcile}|backfill:{feed}")
    }
}

fn soql_datetime(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

impl Pipeline {
    /// Reads every enabled feed once and queues what changed.
    pub async fn poll(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
    ) -> Result<PollReport, PollError> {
        let mut report = PollReport::default();
        let controls = self.controls().await?;
        if controls.paused.is_some() {
            report.paused = true;
            return Ok(report);
        }
        let now = self.clock.now_ms();
        // The feeds and the listings at once: during an initial sync the feeds page
        // through the sync's own writes (tens of thousands, at search's 5 calls a
        // second), and a listing waiting behind them left the workers idle for a minute
        // at a time (the scale bench, 30,000 people).
        let fresh = self.start_feeds(cursors, now).await?;
        let reading = std::sync::atomic::AtomicBool::new(true);
        let feeds = async {
            let feeds = self.read_feeds(cursors, queue, now, &fresh).await;
            reading.store(false, std::sync::atomic::Ordering::Release);
            feeds
        };
        let (feeds, listed) = tokio::join!(
            feeds,
            self.list_feeds(cursors, queue, controls.reconcile, Budget::new(&reading))
        );
        report.feeds = feeds?;
        for (feed, queued) in listed? {
            if let Some(r) = report.feeds.get_mut(&feed) {
                r.enqueued += queued;
                r.read += queued;
            }
        }
        // Inclusion lists, read after the listings: a list is no listing of its own.
        let lists: Vec<(String, String)> = self
            .pairs
            .iter()
            .filter_map(|p| {
                Some((
                    p.spec.inclusion.list()?.to_owned(),
                    p.spec.hubspot_object.clone(),
                ))
            })
            .collect();
        // These feeds fail alone: a deleted list or form, or the Email Events API down,
        // leaves its feed behind (its lag shows in the status) and the poll goes on.
        for (list, object) in &lists {
            let feed = super::list_feed::list_feed(list);
            let r = self.poll_list(cursors, queue, list, object, now).await;
            keep_or_warn(&mut report, feed, r)?;
        }
        for kind in self.email_event_kinds() {
            let feed = super::marketing_email::email_feed(kind);
            let r = self.poll_email_kind(cursors, queue, &feed, kind, now).await;
            keep_or_warn(&mut report, feed, r)?;
        }
        // Forms that name a campaign, or whose submissions become Tasks.
        for form in self.submission_forms() {
            let feed = super::campaigns::form_feed(&form);
            let r = self.poll_form(cursors, queue, &form, now).await;
            keep_or_warn(&mut report, feed, r)?;
        }
        let swept: Vec<(String, String)> = self
            .pairs
            .iter()
            .map(|p| (p.spec.name.clone(), p.spec.hubspot_object.clone()))
            .collect();
        for (pair, object) in &swept {
            self.sweep_hubspot_deletions(cursors, queue, pair, object, now)
                .await?;
        }
        self.sweep_empty_lookups(cursors, queue, now).await?;
        self.note_poll(&report).await;
        self.note_usage().await;
        Ok(report)
    }

    /// What the feeds read: Salesforce objects listed, Salesforce objects read only
    /// from their first poll on, HubSpot objects listed, and HubSpot objects read only
    /// from their first poll on.
    fn feed_objects(&self) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
        let objects: Vec<String> = self
            .pairs
            .iter()
            .flat_map(|p| p.spec.sobjects.iter().cloned())
            .collect();
        // Read only for what their changes trigger (lifecycle stages), or from now on
        // (activities): never listed.
        let mut triggers = self.trigger_feeds();
        triggers.extend(self.activity_salesforce_feeds());
        let hubspot_objects: Vec<String> = self
            .pairs
            .iter()
            .map(|p| p.spec.hubspot_object.clone())
            .collect();
        // Activities sync from the first poll on: their feeds are never listed.
        let activity_objects = self.activity_hubspot_feeds();
        (objects, triggers, hubspot_objects, activity_objects)
    }

    /// Starts the feeds never read yet (and the listings of those that list): their
    /// figures. Before the feeds and the listings run at once, so that a first poll
    /// lists.
    async fn start_feeds(
        &self,
        cursors: &dyn CursorStore,
        now: i64,
    ) -> Result<BTreeMap<String, FeedReport>, PollError> {
        let (objects, triggers, hubspot_objects, activity_objects) = self.feed_objects();
        let hubspot = hubspot_objects
            .iter()
            .map(|o| (format!("hubspot:{o}"), !activity_objects.contains(o)))
            .chain(
                activity_objects
                    .iter()
                    .map(|o| (format!("hubspot:{o}"), false)),
            );
        let salesforce = objects
            .iter()
            .map(|o| (format!("salesforce:{o}"), !triggers.contains(o)))
            .chain(triggers.iter().map(|o| (format!("salesforce:{o}"), false)));
        let mut started = BTreeMap::new();
        for (feed, listed) in hubspot.chain(salesforce) {
            if started.contains_key(&feed) || cursors.cursor(&feed).await?.is_some() {
                continue;
            }
            let r = if listed {
                self.start_backfill(cursors, &feed, now).await?
            } else {
                self.start_feed(cursors, &feed, now).await?
            };
            started.insert(feed, r);
        }
        Ok(started)
    }

    /// Reads every enabled change feed since its cursor (and its settled window when
    /// due), queues what changed and moves the cursors: each feed's figures.
    async fn read_feeds(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        now: i64,
        fresh: &BTreeMap<String, FeedReport>,
    ) -> Result<BTreeMap<String, FeedReport>, PollError> {
        let mut feeds = fresh.clone();
        let (objects, triggers, hubspot_objects, activity_objects) = self.feed_objects();
        // Unknown (the queue did not answer): read as usual.
        let backlog = queue
            .depth()
            .await
            .is_ok_and(|depth| depth.waiting >= BACKLOG);
        for object in hubspot_objects.iter().chain(&activity_objects) {
            let feed = format!("hubspot:{object}");
            if fresh.contains_key(&feed) {
                continue;
            }
            // Started by `start_feeds` before this read: every feed has a cursor.
            let r = match cursors.cursor(&feed).await? {
                None => continue,
                Some(from) => {
                    // The changes from the cursor on, and in the same calls the window
                    // grown older than the index's lag since the last poll, once: each
                    // change is read about twice however often the feed is polled.
                    // (Re-reading the lag's window at every poll read a change five times
                    // at one poll a second: most of an initial sync's feed calls.)
                    let (mark, lagged) = lagged_window(cursors, &feed, from.at, now).await?;
                    let modified = if backlog {
                        // Behind a backlog nothing is read fresh: a reference queued
                        // now would wait behind the backlog for longer than the
                        // settled read's delay, which reads each window once (the
                        // cursor and the lagged mark move on unread). Read at every
                        // poll, the lagged windows cost a search per feed and poll
                        // and read each of an initial sync's own writes twice.
                        None
                    } else {
                        Some(Modified {
                            since: from.at,
                            until: None,
                            also: lagged,
                        })
                    };
                    let changes = match modified {
                        Some(modified) => self.hubspot_changes(object, modified).await?,
                        None => Vec::new(),
                    };
                    let mut r = self
                        .enqueue_and_advance(
                            cursors,
                            queue,
                            &feed,
                            from,
                            now - HUBSPOT_OVERLAP_MS,
                            changes,
                        )
                        .await?;
                    advance_lagged(cursors, &feed, mark.as_ref(), lagged).await?;
                    if let Some((mark, until)) =
                        settled_window(cursors, &feed, now - HUBSPOT_SETTLE_MS).await?
                    {
                        let settled = Modified {
                            since: mark.at,
                            until: Some(until),
                            also: None,
                        };
                        let changes = self.hubspot_changes(object, settled).await?;
                        r.absorb(
                            self.enqueue_settled(cursors, queue, &feed, mark, until, changes)
                                .await?,
                        );
                    }
                    r
                }
            };
            feeds.insert(feed, r);
        }
        // Every object already polled: changes and deletions in one Composite call.
        let mut polled = Vec::new();
        let mut froms = Vec::new();
        for object in objects.iter().chain(&triggers) {
            let feed = format!("salesforce:{object}");
            if fresh.contains_key(&feed) {
                continue;
            }
            if let Some(from) = cursors.cursor(&feed).await? {
                polled.push(object.as_str());
                froms.push(from);
            }
        }
        if !polled.is_empty() {
            // Unlike HubSpot's, from before the cursor at every poll: a record
            // committed late carries an earlier `SystemModstamp` than records already
            // read (its cursor is past it), and waiting for a lagged read would hold it
            // back by the whole overlap. Salesforce's calls are not paced per second,
            // and a query page holds 2,000 rows. Behind a backlog, from the cursor: a
            // late commit's reference would wait behind the backlog for longer than
            // the settled read's delay, which reads the window again (at a poll a
            // second, the overlap read each of an initial sync's own writes a dozen
            // times or more, the sandbox's and the poller's busiest work then).
            let overlap = if backlog { 0 } else { SALESFORCE_OVERLAP_MS };
            let mut windows: Vec<Window> = polled
                .iter()
                .zip(&froms)
                .map(|(object, from)| Window {
                    reference: (*object).to_owned(),
                    object,
                    since: (from.at - overlap).max(0),
                    until: None,
                })
                .collect();
            // The settled windows due ride in the same Composite call.
            let mut settled = Vec::new();
            for object in &polled {
                let feed = format!("salesforce:{object}");
                if let Some((mark, until)) =
                    settled_window(cursors, &feed, now - SALESFORCE_SETTLE_MS).await?
                {
                    windows.push(Window {
                        reference: format!("settled_{object}"),
                        object,
                        since: mark.at,
                        until: Some(until),
                    });
                    settled.push((*object, mark, until));
                }
            }
            let mut answers = self.salesforce_changes(&windows).await?;
            for (object, from) in polled.iter().zip(froms) {
                let feed = format!("salesforce:{object}");
                let changes = answers.remove(*object).unwrap_or_default();
                let floor = now - SALESFORCE_OVERLAP_MS;
                let r = self
                    .enqueue_and_advance(cursors, queue, &feed, from, floor, changes)
                    .await?;
                feeds.insert(feed, r);
            }
            for (object, mark, until) in settled {
                let feed = format!("salesforce:{object}");
                let changes = answers
                    .remove(&format!("settled_{object}"))
                    .unwrap_or_default();
                let more = self
                    .enqueue_settled(cursors, queue, &feed, mark, until, changes)
                    .await?;
                if let Some(r) = feeds.get_mut(&feed) {
                    r.absorb(more);
                }
            }
        }
        Ok(feeds)
    }

    /// Lists the next chunks of every listing under way (the initial sync's, a
    /// reconcile's, an import's) within `budget`: what each feed queued.
    async fn list_feeds(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        reconcile: u64,
        budget: Budget<'_>,
    ) -> Result<BTreeMap<String, usize>, PollError> {
        // The pairs' own feeds are listed (initial sync, reconcile, import); feeds read
        // only from their first poll on (activities, triggers) never are: a reconcile
        // must not copy the past of every activity.
        let mut listed: BTreeMap<String, usize> = BTreeMap::new();
        for feed in self.feeds() {
            let mut queued = self
                .backfill(cursors, queue, &backfill_key(&feed, 0), budget)
                .await?;
            // A full reconcile lists every record again under its own checkpoint.
            if reconcile > 0 {
                let key = backfill_key(&feed, reconcile);
                let start = Cursor {
                    at: 0,
                    last_id: String::new(),
                };
                match cursors.advance(&key, None, &start).await {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                queued += self.backfill(cursors, queue, &key, budget).await?;
            }
            // An import asked for (`/sync`, `crmsync import`) lists under its own
            // checkpoint, as a reconcile does.
            if let Some(sobject) = feed.strip_prefix("salesforce:") {
                queued += self
                    .continue_import(cursors, queue, sobject, budget)
                    .await?;
            }
            listed.insert(feed, queued);
        }
        Ok(listed)
    }

    /// Whether every feed's listing (the initial sync's, and a reconcile's) is done: a
    /// backfill polls until it is.
    pub async fn listing_done(&self, cursors: &dyn CursorStore) -> Result<bool, PollError> {
        let reconcile = self.controls().await?.reconcile;
        for feed in self.feeds() {
            for generation in [0, reconcile] {
                let at = cursors.cursor(&backfill_key(&feed, generation)).await?;
                if at.is_none_or(|c| c.at != BACKFILL_DONE) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The first poll of a feed: the feed starts at now (what changes from here on, the
    /// feed reads), and a backfill cursor starts listing every record that exists.
    async fn start_backfill(
        &self,
        cursors: &dyn CursorStore,
        feed: &str,
        now: i64,
    ) -> Result<FeedReport, PollError> {
        let start = Cursor {
            at: 0,
            last_id: String::new(),
        };
        match cursors.advance(&backfill_key(feed, 0), None, &start).await {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.start_feed(cursors, feed, now).await
    }

    /// A feed's first cursor: now.
    async fn start_feed(
        &self,
        cursors: &dyn CursorStore,
        feed: &str,
        now: i64,
    ) -> Result<FeedReport, PollError> {
        let to = Cursor {
            at: now,
            last_id: String::new(),
        };
        // The settled reads start here too: what changed before is the backfill's (a
        // settled read of it would queue again what the listing queued).
        for key in [feed.to_owned(), settled_key(feed)] {
            match cursors.advance(&key, None, &to).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(FeedReport {
            read: 0,
            enqueued: 0,
            cursor: now,
        })
    }

    /// Lists a feed's records in chunks, each queued and then checkpointed (at `key`),
    /// until the listing ends or this poll's time budget is spent; the next poll (the
    /// next Lambda invocation, after a crash or a timeout) resumes at the checkpoint.
    pub(crate) async fn backfill(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        key: &str,
        budget: Budget<'_>,
    ) -> Result<usize, PollError> {
        let mut queued = 0;
        while budget.left() {
            let Some(at) = cursors.cursor(key).await? else {
                return Ok(queued);
            };
            if at.at == BACKFILL_DONE {
                return Ok(queued);
            }
            let (n, moved) = self.listing_chunk(cursors, queue, key, &at).await?;
            queued += n;
            if !moved {
                // Another poller took this chunk: stop, it carries on.
                return Ok(queued);
            }
        }
        Ok(queued)
    }

    /// Lists the chunk after checkpoint `at` of the listing under `key`, queues it and
    /// moves the checkpoint past it: how many it queued, and whether the checkpoint
    /// moved (false: another poller moved it first; what we queued is queued twice).
    pub(crate) async fn listing_chunk(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        key: &str,
        at: &Cursor,
    ) -> Result<(usize, bool), PollError> {
        let (generation, feed) = key.rsplit_once('|').unwrap_or(("", key));
        let feed = feed.strip_prefix("backfill:").unwrap_or(feed);
        let origin = if generation.starts_with("import") {
            "import"
        } else {
            "backfill"
        };
        // The initial sync's references carry the records as listed, which the worker
        // syncs from instead of reading them again (a reconcile, or an import, reads
        // each record afresh).
        let carry = generation.is_empty();
        let (items, next) = self
            .backfill_chunk(feed, &at.last_id, origin, carry)
            .await?;
        // A record the sync already wrote and linked (its partner's side was listed
        // first and found it) is listed with our own write on it: not queued.
        let items = self.without_echoes(feed, items).await;
        for chunk in items.chunks(ENQUEUE_CHUNK) {
            queue.send(chunk).await?;
        }
        let to = match next {
            Some(last_id) => Cursor {
                at: at.at + 1,
                last_id,
            },
            None => Cursor {
                at: BACKFILL_DONE,
                last_id: String::new(),
            },
        };
        match cursors.advance(key, Some(at), &to).await {
            Ok(()) => Ok((items.len(), true)),
            Err(StoreError::Conflict(_)) => Ok((items.len(), false)),
            Err(e) => Err(e.into()),
        }
    }

    /// The filter a listing of `sobject` applies: records the pair never matches
    /// (converted Leads) are not listed.
    pub(crate) fn listing_filter(&self, sobject: &str) -> Option<&'static str> {
        self.pairs
            .iter()
            .find(|p| p.spec.syncs(sobject))
            .and_then(|r| r.hooks.match_filter(sobject))
    }

    /// One chunk of a listing after `last` (a HubSpot `after` token, a Salesforce id),
    /// and where the next one starts (none: the listing is done). With `carry`, each
    /// reference carries its record as listed, with every property or field its pair
    /// reads.
    pub(crate) async fn backfill_chunk(
        &self,
        feed: &str,
        last: &str,
        origin: &str,
        carry: bool,
    ) -> Result<(Vec<WorkItem>, Option<String>), PollError> {
        let (side, object) = feed.split_once(':').unwrap_or(("", ""));
        let side = Side::from_name(side).ok_or_else(|| {
            PollError::State(StoreError::Corrupt(format!("a feed of no CRM: {feed}")))
        })?;
        let item = |id: String, seen: Option<Seen>| WorkItem {
            side,
            object: object.to_owned(),
            id,
            origin: origin.to_owned(),
            seen,
        };
        let listed = |values: Map<String, Value>, modified: &str, associations| {
            let modified_at = values
                .get(modified)
                .and_then(Value::as_str)
                .and_then(parse_datetime_millis)
                .unwrap_or(0);
            Seen::Values {
                values,
                modified_at,
                whole: true,
                // Taken after the page was read: a link must have synced later still.
                listed_at: Some(self.clock.now_ms()),
                associations,
            }
        };
        if side == Side::HubSpot {
            let run = self.pair_on(Side::HubSpot, object).filter(|_| carry);
            let props = match run {
                Some(run) => self.pair_properties(run),
                None => vec!["hs_object_id".to_owned()],
            };
            let props: Vec<&str> = props.iter().map(String::as_str).collect();
            // The associations the pair's lookups and junctions follow, listed with the
            // records: the sync of a pair linked now reads none.
            let followed = run.map(super::flow::followed_objects).unwrap_or_default();
            let mut items = Vec::new();
            let mut after = (!last.is_empty()).then(|| last.to_owned());
            for _ in 0..BACKFILL_HUBSPOT_PAGES {
                let (records, next) = self
                    .hubspot
                    .list_page(object, &props, &followed, false, after.as_deref())
                    .await
                    .map_err(|e| PollError::HubSpot(e.to_string()))?;
                items.extend(records.into_iter().map(|r| {
                    let seen = run.map(|run| {
                        listed(r.properties, &run.spec.hubspot_modified, r.associations)
                    });
                    item(r.id, seen)
                }));
                match next {
                    Some(n) => after = Some(n),
                    None => return Ok((items, None)),
                }
            }
            return Ok((items, after));
        }
        let mut filter = Vec::new();
        if !last.is_empty() {
            filter.push(format!("Id > '{}'", last.replace('\'', "")));
        }
        if let Some(f) = self.listing_filter(object) {
            filter.push(f.to_owned());
        }
        let filter = if filter.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filter.join(" AND "))
        };
        let carry = carry && self.pair_on(Side::Salesforce, object).is_some();
        let fields = if carry {
            self.feed_fields(object).join(", ")
        } else {
            "Id".to_owned()
        };
        let soql = format!(
            "SELECT {fields} FROM {object}{filter} ORDER BY Id LIMIT {BACKFILL_SALESFORCE_ROWS}"
        );
        let rows = self
            .salesforce
            .query(&soql, false)
            .await
            .map_err(|e| PollError::Salesforce(e.to_string()))?;
        let full = rows.len() == BACKFILL_SALESFORCE_ROWS;
        let items: Vec<WorkItem> = rows
            .into_iter()
            .filter_map(|r| {
                let id = r.get("Id").and_then(Value::as_str)?.to_owned();
                let seen = match r {
                    Value::Object(values) if carry => {
                        Some(listed(values, "SystemModstamp", BTreeMap::new()))
                    }
                    _ => None,
                };
                Some(item(id, seen))
            })
            .collect();
        let next = full.then(|| items.last().map(|i| i.id.clone())).flatten();
        Ok((items, next))
    }

    /// Hourly, linked HubSpot records archived since are queued: their sync finds them
    /// gone and drops the link (a HubSpot deletion never deletes in Salesforce). Webhooks
    /// and 404s at sync time catch most deletions first; this catches the rest.
    async fn sweep_hubspot_deletions(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        pair: &str,
        object: &str,
        now: i64,
    ) -> Result<(), PollError> {
        let key = format!("sweep:hubspot:{object}");
        let last = cursors.cursor(&key).await?;
        if last
            .as_ref()
            .is_some_and(|c| now - c.at < SWEEP_INTERVAL_MS)
        {
            return Ok(());
        }
        let to = Cursor {
            at: now,
            last_id: String::new(),
        };
        match cursors.advance(&key, last.as_ref(), &to).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if last.is_none() {
            // Nothing is linked before the first sweep's time.
            return Ok(());
        }
        let mut after: Option<String> = None;
        let mut gone = Vec::new();
        loop {
            let (records, next) = self
                .hubspot
                .list_page(object, &["hs_object_id"], &[], true, after.as_deref())
                .await
                .map_err(|e| PollError::HubSpot(e.to_string()))?;
            for r in records {
                if self.links.by_hubspot(pair, &r.id).await?.is_some() {
                    gone.push(WorkItem {
                        side: Side::HubSpot,
                        object: object.into(),
                        id: r.id,
                        origin: "sweep".into(),
                        seen: None,
                    });
                }
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        for chunk in gone.chunks(ENQUEUE_CHUNK) {
            queue.send(chunk).await?;
        }
        Ok(())
    }

    async fn hubspot_changes(
        &self,
        object: &str,
        modified: Modified,
    ) -> Result<Vec<Change>, PollError> {
        // A pair's mapped values come with the change, at no extra call.
        let props = self
            .pair_on(Side::HubSpot, object)
            .map(|run| self.pair_properties(run))
            .unwrap_or_default();
        let props: Vec<&str> = props.iter().map(String::as_str).collect();
        let records = self
            .hubspot
            .changed_since(object, modified, &props)
            .await
            .map_err(|e| PollError::HubSpot(e.to_string()))?;
        let mapped = !props.is_empty();
        Ok(records
            .into_iter()
            .map(|r| {
                let at = ["lastmodifieddate", "hs_lastmodifieddate"]
                    .iter()
                    .find_map(|p| r.properties.get(*p).and_then(Value::as_str))
                    .and_then(parse_datetime_millis)
                    .unwrap_or(0);
                Change {
                    at,
                    item: WorkItem {
                        side: Side::HubSpot,
                        object: object.into(),
                        id: r.id,
                        origin: "poll".into(),
                        seen: mapped.then(|| Seen::Values {
                            values: r.properties,
                            modified_at: at,
                            whole: true,
                            listed_at: None,
                            associations: Default::default(),
                        }),
                    },
                }
            })
            .collect())
    }

    /// Each window's changes and deletions, in one Composite call, by reference.
    async fn salesforce_changes(
        &self,
        windows: &[Window<'_>],
    ) -> Result<BTreeMap<String, Vec<Change>>, PollError> {
        let queries: Vec<(String, String)> = windows
            .iter()
            .map(|w| {
                let until = w
                    .until
                    .map(|u| format!(" AND SystemModstamp < {}", soql_datetime(u)))
                    .unwrap_or_default();
                let soql = format!(
                    "SELECT {} FROM {} \
                     WHERE SystemModstamp >= {}{until} ORDER BY SystemModstamp, Id",
                    self.feed_fields(w.object).join(", "),
                    w.object,
                    soql_datetime(w.since)
                );
                (w.reference.clone(), soql)
            })
            .collect();
        let answers = self
            .salesforce
            .composite_queries(&queries, true)
            .await
            .map_err(|e| PollError::Salesforce(e.to_string()))?;
        let mut out = BTreeMap::new();
        for (reference, rows) in answers {
            let Some(window) = windows.iter().find(|w| w.reference == reference) else {
                continue;
            };
            let object = window.object.to_owned();
            let changes =
                rows.iter()
                    .filter_map(|row| {
                        let id = row.get("Id").and_then(Value::as_str)?;
                        let at = row
                            .get("SystemModstamp")
                            .and_then(Value::as_str)
                            .and_then(parse_datetime_millis)
                            .unwrap_or(0);
                        let deleted = row.get("IsDeleted").and_then(Value::as_bool) == Some(true);
                        let mapped = !deleted && self.pair_on(Side::Salesforce, &object).is_some();
                        Some(Change {
                            item: WorkItem {
                                side: Side::Salesforce,
                                object: object.clone(),
                                id: id.to_owned(),
                                origin: if deleted { "poll_deleted" } else { "poll" }.into(),
                                seen: row.as_object().filter(|_| mapped).map(|values| {
                                    Seen::Values {
                                        values: values.clone(),
                                        modified_at: at,
                                        whole: true,
                                        listed_at: None,
                                        associations: Default::default(),
                                    }
                                }),
                            },
                            at,
                        })
                    })
                    .collect();
            out.insert(reference, changes);
        }
        Ok(out)
    }

    /// Queues what a settled read found that no read queued before, then moves the
    /// settled cursor to the window's end.
    async fn enqueue_settled(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        feed: &str,
        mark: Cursor,
        until: i64,
        changes: Vec<Change>,
    ) -> Result<FeedReport, PollError> {
        let read = changes.len();
        let enqueued = self.enqueue_unseen(queue, feed, changes).await?;
        let to = Cursor {
            at: until,
            last_id: String::new(),
        };
        match cursors.advance(&settled_key(feed), Some(&mark), &to).await {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(FeedReport {
            read,
            enqueued,
            cursor: 0,
        })
    }

    /// Queues what a fresh read found that no read queued before, then moves the
    /// cursor to the newest change, or to `settled` (the read's start less the
    /// overlap: anything older was there to be read) when that is later, so a quiet
    /// feed does not read its last changes again and again.
    async fn enqueue_and_advance(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        feed: &str,
        from: Cursor,
        settled: i64,
        changes: Vec<Change>,
    ) -> Result<FeedReport, PollError> {
        let read = changes.len();
        let (mut high, mut last_id) = (from.at, from.last_id.clone());
        for c in &changes {
            if (c.at, c.item.id.as_str()) > (high, last_id.as_str()) {
                high = c.at;
                last_id = c.item.id.clone();
            }
        }
        let enqueued = self.enqueue_unseen(queue, feed, changes).await?;
        let to = if settled > high {
            Cursor {
                at: settled,
                last_id: String::new(),
            }
        } else {
            Cursor { at: high, last_id }
        };
        if from != to {
            match cursors.advance(feed, Some(&from), &to).await {
                // Another poller moved it first: what we queued is queued twice at most.
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(FeedReport {
            read,
            enqueued,
            cursor: to.at,
        })
    }

    /// The fields a Salesforce feed reads of `sobject`: what tells a change, and a
    /// pair's mapped fields, to recognise our own writes without a second read.
    fn feed_fields(&self, sobject: &str) -> Vec<String> {
        let mut fields: Vec<String> = ["Id", "SystemModstamp", "IsDeleted"]
            .map(String::from)
            .to_vec();
        if let Some(run) = self.pair_on(Side::Salesforce, sobject) {
            for f in self.pair_fields(run, sobject) {
                if !fields.iter().any(|x| x.eq_ignore_ascii_case(&f)) {
                    fields.push(f);
                }
            }
        }
        fields
    }

    /// Queues the changes no earlier read of the same (record, modification time)
    /// queued, and that are not our own writes come back; how many.
    pub(crate) async fn enqueue_unseen(
        &self,
        queue: &dyn WorkQueue,
        feed: &str,
        changes: Vec<Change>,
    ) -> Result<usize, PollError> {
        let now = self.clock.now_ms();
        let keys: Vec<String> = changes
            .iter()
            .map(|c| seen_key(feed, &c.item.id, c.at))
            .collect();
        let first = self.claims.first_sights(&keys, SEEN_TTL_MS, now).await?;
        let unseen: Vec<WorkItem> = changes
            .into_iter()
            .zip(first)
            .filter(|(_, first)| *first)
            .map(|(c, _)| c.item)
            .collect();
        let fresh = self.without_echoes(feed, unseen).await;
        for chunk in fresh.chunks(ENQUEUE_CHUNK) {
            queue.send(chunk).await?;
        }
        Ok(fresh.len())
    }

    /// The references of `feed` that are not our own writes come back (what their
    /// source saw of the record is what its link last synced).
    async fn without_echoes(&self, feed: &str, items: Vec<WorkItem>) -> Vec<WorkItem> {
        let echoes = self.are_echoes(&items).await;
        let recognised = echoes.iter().filter(|e| **e).count();
        if recognised > 0 {
            tracing::debug!(
                message = "our own writes recognised in a feed",
                feed,
                recognised
            );
        }
        items
            .into_iter()
            .zip(echoes)
            .filter(|(_, echo)| !echo)
            .map(|(item, _)| item)
            .collect()
    }
}
