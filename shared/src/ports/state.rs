//! The state crmsync keeps between runs: which records are linked (and the values
//! they last agreed on), how far each change feed has been read, who is creating what
//! right now, and which events were already seen. At-least-once delivery and racing
//! workers are normal: every write that could race is conditional.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::merge::LastSynced;
use crate::domain::{Millis, Side};

/// A state store failure the pipeline branches on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: someone else linked, advanced or updated first.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The store could not be reached or answered an error worth retrying.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// Stored data that does not read back.
    #[error("state store holds unreadable data: {0}")]
    Corrupt(String),
}

/// One linked pair: a HubSpot record and the Salesforce record that is the same thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// The object pair (`contacts`, `companies`, a custom pair's name).
    pub pair: String,
    pub hubspot_id: String,
    /// `Lead`, `Contact`, `Account`...
    pub salesforce_object: String,
    pub salesforce_id: String,
    pub last_synced: LastSynced,
    pub synced_at: Millis,
    /// When the HubSpot record the syncs since took was last read whole (our clock,
    /// no later than the read): a listing that read the record before this holds
    /// nothing the link has not seen. A sync that took the record from the link and a
    /// webhook (`pipeline::pushed`) read nothing and leaves it as it was. `None`: never
    /// read whole since the link was stored (or stored before this was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot_read_at: Option<Millis>,
    /// Bumped by every update; an update naming an older version is refused.
    pub version: u64,
}

/// Links, looked up from either side, created once, updated optimistically.
#[async_trait]
pub trait LinkStore: Send + Sync {
    async fn by_hubspot(&self, pair: &str, hubspot_id: &str) -> Result<Option<Link>, StoreError>;
    async fn by_salesforce(
        &self,
        salesforce_object: &str,
        salesforce_id: &str,
    ) -> Result<Option<Link>, StoreError>;
    /// The links of many HubSpot records of `pair` at once (a worker's batch), in the
    /// order asked: `None` for a record without one.
    async fn by_hubspot_ids(
        &self,
        pair: &str,
        hubspot_ids: &[String],
    ) -> Result<Vec<Option<Link>>, StoreError> {
        let mut links = Vec::with_capacity(hubspot_ids.len());
        for id in hubspot_ids {
            links.push(self.by_hubspot(pair, id).await?);
        }
        Ok(links)
    }
    /// The links of many Salesforce records of `salesforce_object` at once, in the order
    /// asked.
    async fn by_salesforce_ids(
        &self,
        salesforce_object: &str,
        salesforce_ids: &[String],
    ) -> Result<Vec<Option<Link>>, StoreError> {
        let mut links = Vec::with_capacity(salesforce_ids.len());
        for id in salesforce_ids {
            links.push(self.by_salesforce(salesforce_object, id).await?);
        }
        Ok(links)
    }
    /// Creates a link (at version 1) only if neither side is linked yet.
    async fn create(&self, link: &Link) -> Result<Link, StoreError>;
    /// Stores new last-synced values if `link.version` is still the stored one;
    /// returns the link at its new version.
    async fn update(&self, link: &Link) -> Result<Link, StoreError>;
    /// [`LinkStore::create`] of a batch's new pairs, each answered on its own, in
    /// order (a pair already linked is refused, the others are created). By default a
    /// few at a time; a store that can creates them in one round trip.
    async fn create_all(&self, links: &[Link]) -> Vec<Result<Link, StoreError>> {
        a_few_at_a_time(links.iter().map(|l| self.create(l)).collect()).await
    }
    /// [`LinkStore::update`] of a batch's links (each named once), each answered on
    /// its own, in order.
    async fn update_all(&self, links: &[Link]) -> Vec<Result<Link, StoreError>> {
        a_few_at_a_time(links.iter().map(|l| self.update(l)).collect()).await
    }
    /// Points a link at another record (lead conversion, merges), under the same
    /// version check; the old ids stop resolving to it.
    async fn relink(
        &self,
        link: &Link,
        hubspot_id: &str,
        salesforce_object: &str,
        salesforce_id: &str,
    ) -> Result<Link, StoreError>;
    async fn remove(&self, link: &Link) -> Result<(), StoreError>;
}

/// How many calls of a default `*_all` method are in flight at once: a batch's
/// writes one round trip at a time spent seconds where a remote store answers many
/// at once.
const AT_ONCE: usize = 16;

/// `calls`, [`AT_ONCE`] at a time, answered in order.
async fn a_few_at_a_time<R, Fut: std::future::Future<Output = R>>(calls: Vec<Fut>) -> Vec<R> {
    use futures::StreamExt;
    futures::stream::iter(calls)
        .buffered(AT_ONCE)
        .collect()
        .await
}

/// How far a change feed (`hubspot:contacts`, `salesforce:Lead`) has been read: a
/// time and the last id at that time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    pub at: Millis,
    pub last_id: String,
}

#[async_trait]
pub trait CursorStore: Send + Sync {
    async fn cursor(&self, feed: &str) -> Result<Option<Cursor>, StoreError>;
    /// Moves a feed's cursor from `from` (what the caller read; `None`: unset) to `to`.
    /// Refused with a conflict when the stored cursor is no longer `from` or `to` would
    /// not move it forward: two pollers cannot both move it, nor move it back.
    async fn advance(
        &self,
        feed: &str,
        from: Option<&Cursor>,
        to: &Cursor,
    ) -> Result<(), StoreError>;
}

/// Short-lived exclusive claims (before creating a record on the other side) and
/// remembered event keys (to skip redelivered events cheaply).
#[async_trait]
pub trait ClaimStore: Send + Sync {
    /// Takes `key` for `owner` until `now + ttl_ms`; `false` when someone else holds it
    /// or released it at or after `now` (the time the caller's reads began). The same owner
    /// may take it again (a retry).
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        ttl_ms: i64,
        now: Millis,
    ) -> Result<bool, StoreError>;
    /// Ends `owner`'s claim at `now`. The key stays taken for claims made under the
    /// same or an earlier `now` (batches that began by the release): their reads may predate
    /// what the holder made or linked, so they must read again (a company created by
    /// one worker, missed by another's earlier read, was otherwise created twice).
    /// [`RELEASED_FOR_ALL`] frees the key for every later claim.
    async fn release(&self, key: &str, owner: &str, now: Millis) -> Result<(), StoreError>;
    /// [`ClaimStore::claim`] of many keys for one owner (a webhook delivery's events),
    /// in order. By default one at a time; a store that can takes them in one round
    /// trip.
    async fn claim_all(
        &self,
        keys: &[String],
        owner: &str,
        ttl_ms: i64,
        now: Millis,
    ) -> Result<Vec<bool>, StoreError> {
        let mut taken = Vec::with_capacity(keys.len());
        for key in keys {
            taken.push(self.claim(key, owner, ttl_ms, now).await?);
        }
        Ok(taken)
    }
    /// [`ClaimStore::release`] of many keys of one owner (a batch's records).
    async fn release_all(
        &self,
        keys: &[String],
        owner: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        for key in keys {
            self.release(key, owner, now).await?;
        }
        Ok(())
    }
    /// Records an event key; `true` the first time it is seen within `ttl_ms`.
    async fn first_sight(
        &self,
        event_key: &str,
        ttl_ms: i64,
        now: Millis,
    ) -> Result<bool, StoreError>;
    /// [`ClaimStore::first_sight`] for many keys (a feed's page), in order; a key
    /// named twice is seen first once. By default a few at a time; a store that can
    /// records them in one round trip.
    async fn first_sights(
        &self,
        event_keys: &[String],
        ttl_ms: i64,
        now: Millis,
    ) -> Result<Vec<bool>, StoreError> {
        // A key's repeats are not asked: at once, either of them could win.
        let mut named = std::collections::HashSet::new();
        let first: Vec<bool> = event_keys.iter().map(|k| named.insert(k)).collect();
        let mut asked: Vec<&String> = Vec::new();
        for (key, is_first) in event_keys.iter().zip(&first) {
            if *is_first {
                asked.push(key);
            }
        }
        let mut answers: Vec<bool> = Vec::with_capacity(asked.len());
        for chunk in asked.chunks(16) {
            let mut calls = Vec::with_capacity(chunk.len());
            for key in chunk {
                calls.push(self.first_sight(key, ttl_ms, now));
            }
            for answer in futures::future::join_all(calls).await {
                answers.push(answer?);
            }
        }
        let mut answers = answers.into_iter();
        let seen = first
            .into_iter()
            .map(|is_first| is_first && answers.next().unwrap_or(false))
            .collect();
        Ok(seen)
    }
}

/// The `now` of a release that frees a key for any claim (an intake that failed to
/// queue a webhook's event lets its redelivery take it, however soon).
pub const RELEASED_FOR_ALL: Millis = 0;

/// One unit of queued work: a record to sync, by reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    /// The CRM the record is in (queued as `hubspot` or `salesforce`).
    pub side: Side,
    pub object: String,
    pub id: String,
    /// Why it was queued (`poll`, `webhook`, `outbound`, `manual`, `retry`).
    pub origin: String,
    /// What the change's source said of the record, where it said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<Seen>,
}

/// What a change's source said of its record (a push's event, a feed's read), queued
/// with the reference: our own write come back is then recognised from the record's
/// link, at the intake, the poller or the worker, without reading the record
/// (`pipeline/echo.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Seen {
    /// A HubSpot record was created.
    Created,
    /// One HubSpot property was set to this value (text, as webhooks give it), at
    /// `at` (the event's `occurredAt`, ms) where the event says when.
    Property {
        name: String,
        value: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<Millis>,
    },
    /// The record's values as read (a feed's read, an outbound message's fields), and
    /// its last modification.
    Values {
        values: serde_json::Map<String, serde_json::Value>,
        modified_at: Millis,
        /// Every property or field the pair reads (a listing's page, a feed's search):
        /// the worker may sync from these values instead of reading the record again.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        whole: bool,
        /// When the initial sync's listing read the record (the engine's clock). A
        /// listing is no change: a link synced since holds all it saw (the sync read
        /// the record later, and a change since comes through the feeds), so the
        /// record has nothing to sync whatever these values say.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        listed_at: Option<Millis>,
        /// A HubSpot listing's record: its associations by object type, as listed (the
        /// types the pair's lookups and junctions follow; `HsRecord::associations`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        associations: BTreeMap<String, Vec<String>>,
    },
    /// A HubSpot association of the record with `to_id`, a record of `to` (`companies`),
    /// was made, or `removed`.
    Association {
        to: String,
        to_id: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        removed: bool,
    },
    /// Several changes one reference serves (a queue that coalesces references): an
    /// echo only if every one of them is.
    All { claims: Vec<Seen> },
}

impl Seen {
    /// The most claims one reference carries; past it, the worker reads the record.
    pub const MAX_CLAIMS: usize = 64;

    /// What a reference serving both changes may say: every claim of both, or nothing
    /// when either says nothing (that change must be read).
    pub fn merge(a: Option<Seen>, b: Option<Seen>) -> Option<Seen> {
        let mut claims = Vec::new();
        for s in [a?, b?] {
            match s {
                Seen::All { claims: more } => claims.extend(more),
                one => claims.push(one),
            }
        }
        let mut unique: Vec<Seen> = Vec::with_capacity(claims.len());
        for c in claims {
            if !unique.contains(&c) {
                unique.push(c);
            }
        }
        match unique.len() {
            1 => unique.pop(),
            n if n <= Seen::MAX_CLAIMS => Some(Seen::All { claims: unique }),
            _ => None,
        }
    }
}

/// A received item and what acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub receipt: String,
    pub item: WorkItem,
    /// How many times it has been received, this time included.
    pub receives: u32,
}

/// Batches of record references between the poller/intake and the workers.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    async fn send(&self, items: &[WorkItem]) -> Result<(), StoreError>;
    /// Up to `max` items, each hidden from other receivers for `visibility_ms`.
    async fn receive(&self, max: usize, visibility_ms: i64) -> Result<Vec<Delivery>, StoreError>;
    async fn ack(&self, delivery: &Delivery) -> Result<(), StoreError>;
    /// Acknowledges a worker's done items at once (one after another by default).
    async fn ack_all(&self, deliveries: &[&Delivery]) -> Result<(), StoreError> {
        for d in deliveries {
            self.ack(d).await?;
        }
        Ok(())
    }
    /// Returns an item to the queue after `delay_ms`.
    async fn retry(&self, delivery: &Delivery, delay_ms: i64) -> Result<(), StoreError>;
    /// Items that failed too many times, with their bodies intact.
    async fn dead_letters(&self) -> Result<Vec<WorkItem>, StoreError>;
    /// Queues items that become visible after `delay_ms` (at most 15 minutes: SQS's
    /// limit), each counted as never received: a paused worker parks its batch so.
    async fn send_later(&self, items: &[WorkItem], delay_ms: i64) -> Result<(), StoreError>;
    /// How much work waits (approximate on SQS).
    async fn depth(&self) -> Result<QueueDepth, StoreError>;
    /// How many receives an item gets before it goes to the dead letters (`None`:
    /// never), so the last attempt can say on the record's status why it gave up.
    async fn max_receives(&self) -> Result<Option<u32>, StoreError>;
}

/// The longest delay [`WorkQueue::send_later`] takes.
pub const MAX_SEND_DELAY_MS: i64 = 15 * 60_000;

/// Items waiting, in hand, and dead-lettered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Visible now or delayed.
    pub waiting: u64,
    /// Received and not yet acknowledged.
    pub in_flight: u64,
    pub dead: u64,
}

/// How one sync of one record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Synced,
    Skipped,
    Failed,
}

impl Outcome {
    /// The outcome a stored name (`synced`, `skipped`, `failed`) names.
    pub fn from_name(name: &str) -> Option<Outcome> {
        [Outcome::Synced, Outcome::Skipped, Outcome::Failed]
            .into_iter()
            .find(|o| o.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Synced => "synced",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

/// A record on one side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordRef {
    /// `hubspot` or `salesforce`.
    pub side: String,
    pub object: String,
    pub id: String,
}

/// One field that moved: name, old and new value (as sent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
}

/// What happened when a record was synced, to remember and to report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncEvent {
    pub record: RecordRef,
    /// `to_salesforce` or `to_hubspot`.
    pub direction: String,
    pub outcome: Outcome,
    /// The reason or the CRM's error code (`no_email`, `REQUIRED_FIELD_MISSING`...).
    pub code: Option<String>,
    pub message: Option<String>,
    pub field: Option<String>,
    pub changes: Vec<FieldChange>,
    /// Values the sync did not write because the target would refuse or cut them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_back: Vec<HeldBack>,
    /// What a sync that linked the pair did: created the record on a side, or linked
    /// two that existed. None for a pair linked before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked: Option<Linking>,
    pub at: Millis,
}

/// How a pair came to be linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Linking {
    CreatedInHubSpot,
    CreatedInSalesforce,
    /// Both records existed: matched (email, domain, the id one names) and linked.
    Matched,
}

impl Linking {
    pub fn describe(self) -> &'static str {
        match self {
            Linking::CreatedInHubSpot => "created in HubSpot",
            Linking::CreatedInSalesforce => "created in Salesforce",
            Linking::Matched => "linked with an existing record",
        }
    }
}

/// One value held back: the field, the reason code (`would_truncate`,
/// `not_in_picklist`...) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldBack {
    pub field: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A record's sync status: its last outcome and how often it was tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordStatus {
    pub last: SyncEvent,
    /// Consecutive attempts that ended like `last` (reset by a success).
    pub attempts: u32,
    pub first_seen: Millis,
}

impl RecordStatus {
    /// The status after `event`, given the one before: attempts count repeats of the
    /// same failure or skip and restart after anything else.
    pub fn after(previous: Option<RecordStatus>, event: &SyncEvent) -> RecordStatus {
        match previous {
            Some(p)
                if p.last.outcome == event.outcome
                    && event.outcome != Outcome::Synced
                    && p.last.code == event.code =>
            {
                RecordStatus {
                    last: event.clone(),
                    attempts: p.attempts + 1,
                    first_seen: p.first_seen,
                }
            }
            Some(p) => RecordStatus {
                last: event.clone(),
                attempts: 1,
                first_seen: p.first_seen,
            },
            None => RecordStatus {
                last: event.clone(),
                attempts: 1,
                first_seen: event.at,
            },
        }
    }
}

/// Records synced, skipped and failed, per object and direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub synced: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// Per-record status, history (kept for a TTL) and the counters of sync health.
#[async_trait]
pub trait StatusStore: Send + Sync {
    /// Records an event: the record's status, its history, and the counters.
    async fn record(
        &self,
        event: &SyncEvent,
        history_ttl_ms: i64,
    ) -> Result<RecordStatus, StoreError>;
    /// [`StatusStore::record`] of a batch's events. A record's events are recorded
    /// in the order given; by default a few records at a time, and a store that can
    /// records them all in one round trip.
    async fn record_all(
        &self,
        events: &[SyncEvent],
        history_ttl_ms: i64,
    ) -> Result<(), StoreError> {
        // A record's events one after another (each counts on the status before it).
        let mut by_record: Vec<Vec<&SyncEvent>> = Vec::new();
        let mut index: std::collections::HashMap<&RecordRef, usize> = Default::default();
        for e in events {
            let n = *index.entry(&e.record).or_insert_with(|| {
                by_record.push(Vec::new());
                by_record.len() - 1
            });
            by_record[n].push(e);
        }
        let calls = by_record
            .into_iter()
            .map(|mine| async move {
                for e in mine {
                    self.record(e, history_ttl_ms).await?;
                }
                Ok::<(), StoreError>(())
            })
            .collect();
        let recorded = a_few_at_a_time(calls).await;
        recorded.into_iter().collect()
    }
    async fn status(&self, record: &RecordRef) -> Result<Option<RecordStatus>, StoreError>;
    /// The record's events, oldest first, within their TTL.
    async fn history(&self, record: &RecordRef, now: Millis) -> Result<Vec<SyncEvent>, StoreError>;
    /// Records whose last outcome is `outcome` (and code, when given): "retry everything
    /// that failed with REQUIRED_FIELD_MISSING" is one call.
    async fn by_outcome(
        &self,
        outcome: Outcome,
        code: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RecordStatus>, StoreError>;
    /// Records per (object, direction), by their last outcome.
    async fn counts(&self) -> Result<Vec<(String, String, Counts)>, StoreError>;
    /// Records per last outcome and code (`failed` `REQUIRED_FIELD_MISSING`, `skipped`
    /// `no_email`, `synced` `would_truncate`...), records without a code aside.
    async fn codes(&self) -> Result<Vec<(Outcome, String, u64)>, StoreError>;
}

/// Normalized dedup keys (email, company domain) -> record ids, per side: Salesforce
/// cannot match a normalized domain by query, so the pipeline keeps this index.
#[async_trait]
pub trait DedupIndex: Send + Sync {
    async fn put(
        &self,
        side: &str,
        kind: &str,
        key: &str,
        record_id: &str,
    ) -> Result<(), StoreError>;
    async fn lookup(&self, side: &str, kind: &str, key: &str) -> Result<Vec<String>, StoreError>;
    async fn remove(
        &self,
        side: &str,
        kind: &str,
        key: &str,
        record_id: &str,
    ) -> Result<(), StoreError>;
}
