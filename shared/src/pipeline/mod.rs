//! The sync pipeline: the orchestration the Lambda functions and the local runner
//! share. It talks to the CRMs and the state only through ports, and decides nothing
//! the domain does not (the merge, the rules, the dedup keys).
//!
//! - [`poll`]: change feeds -> record references on the queue, then the cursor moves.
//! - [`intake`]: webhooks, outbound messages and manual requests -> the queue.
//! - [`Pipeline::sync_batch`]: record references -> both CRMs and the link state.

mod activities;
pub mod backfill;
mod campaigns;
pub mod control;
pub mod dashboard;
mod echo;
mod flow;
mod fresh;
pub mod health;
pub mod import;
pub mod intake;
mod lifecycle;
mod list_feed;
mod lookup_sweep;
mod lookups;
mod marketing_email;
mod matching;
mod pairs;
mod plan;
pub mod poll;
mod pushed;
pub mod sabotage;
mod soql;
pub use lookup_sweep::LOOKUP_SWEEP_INTERVAL_MS;
mod work;
pub mod worker;
mod writes;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub(crate) use pairs::PairRun;

use serde_json::Value;

use crate::domain::Side;
use crate::domain::config::ValidatedConfig;
use crate::domain::merge::OwnerDirectory;
use crate::domain::metadata::{PairMeta, from_hubspot_property, from_salesforce_field};
use crate::ports::{
    BrokenField, ClaimStore, Clock, ControlStore, ErrorClass, HubSpotApi, LinkStore, Outcome,
    RecordRef, SalesforceApi, SfErrorItem, StatusStore, SyncEvent, TelemetryStore, WorkItem,
};

/// Field metadata per `{hubspot object}/{sObject}`, with when it was read.
pub type MetadataCache = HashMap<String, (i64, Arc<PairMeta>)>;
/// History-tracked fields per sObject (`None`: unknown), with when they were read.
type TrackedFields = HashMap<String, (i64, Option<std::collections::BTreeSet<String>>)>;

/// Everything a sync needs, built once per process (per Lambda cold start).
#[derive(Clone)]
pub struct Pipeline {
    pub config: Arc<ValidatedConfig>,
    pub hubspot: Arc<dyn HubSpotApi>,
    pub salesforce: Arc<dyn SalesforceApi>,
    pub links: Arc<dyn LinkStore>,
    pub claims: Arc<dyn ClaimStore>,
    pub status: Arc<dyn StatusStore>,
    /// Pause and broken fields, set by operators and workers while running.
    pub control: Arc<dyn ControlStore>,
    /// Outcomes, API calls and feed lag over time (sync health's charts).
    pub telemetry: Arc<dyn TelemetryStore>,
    pub clock: Arc<dyn Clock>,
    pub owners: Arc<OwnerDirectory>,
    /// Who claims dedup keys (a Lambda request id, a local worker name).
    pub worker: String,
    /// A named point where the process aborts (crash tests; `CRMSYNC_FAILPOINT`).
    pub failpoint: Option<String>,
    /// A guarantee switched off on purpose (tests of the convergence harness only).
    pub sabotage: Option<sabotage::Sabotage>,
    /// A one-shot crash, shared by every clone: the first worker to reach this step
    /// boundary (a failpoint's name) unwinds there, as a killed worker would stop, and
    /// leaves its batch unacknowledged. The in-process harness's stand-in for
    /// `failpoint`, which ends the whole process.
    pub crash_once: Arc<std::sync::Mutex<Option<String>>>,
    /// Both CRMs' field metadata per object pair, read once per process.
    /// Read at (clock ms), per pair and sObject; read again after [`METADATA_TTL_MS`].
    pub metadata: Arc<tokio::sync::Mutex<MetadataCache>>,
    /// Per sObject, the fields the org keeps field history for, with when they were
    /// read ([`Pipeline::history_tracked`]).
    tracked_fields: Arc<tokio::sync::Mutex<TrackedFields>>,
    /// Outcomes recorded by this process (for metrics).
    pub tally: Arc<Tally>,
    /// The enabled object pairs, in dependency order.
    pairs: Arc<Vec<PairRun>>,
    /// Custom object type ids and names, both ways (`2-1001` <-> `p_machines`):
    /// webhooks name a custom object by id, a configuration may name it either way.
    object_aliases: Arc<HashMap<String, String>>,
    /// Mapped fields known gone from a CRM, as of this batch's controls.
    broken: Arc<std::sync::RwLock<Vec<BrokenField>>>,
    /// The controls' generation the cached metadata was read under.
    meta_generation: Arc<std::sync::atomic::AtomicU64>,
    noted: Arc<control::Noted>,
}

/// Records synced, skipped and failed since the process started.
#[derive(Debug, Default)]
pub struct Tally {
    synced: std::sync::atomic::AtomicU64,
    skipped: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

impl Tally {
    fn add(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Synced => &self.synced,
            Outcome::Skipped => &self.skipped,
            Outcome::Failed => &self.failed,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// (synced, skipped, failed) so far.
    pub fn get(&self) -> (u64, u64, u64) {
        let read = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        (read(&self.synced), read(&self.skipped), read(&self.failed))
    }
}

/// How handling one queued item ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Synced, skipped with a reason, or failed for good with the CRM's code: the item
    /// is acknowledged either way (the outcome is on the record's status).
    Done,
    /// Worth another attempt later (rate limits, locks, another worker holding a claim);
    /// the item goes back to the queue.
    Retry(String),
    /// Not worked at all, and worth a look in a moment as it is: what its source saw is
    /// kept (a retry forgets it), so that our own write come back is then recognised
    /// from its link without a read. The item is queued again as new after
    /// [`LATER_MS`], and counts towards no dead letter.
    Later(String),
}

/// How long an item answered [`ItemOutcome::Later`] waits before it is looked at again:
/// about how long a batch takes from its writes to its links.
pub const LATER_MS: i64 = 2_000;

/// How long a claim on a dedup key lasts: as long as the batch holding it stays
/// invisible in the queue (a batch still at work after that is received again anyway).
/// Longer, a crashed worker's claim outlived its batch: the records' other references
/// met the claim on every attempt and went to the dead letters unsynced (history 881 of
/// the convergence harness).
pub const CLAIM_TTL_MS: i64 = worker::VISIBILITY_MS;
/// How long field metadata is trusted: a property deleted in HubSpot reads as blank
/// (HubSpot leaves unknown properties out), so it must be noticed by reading the
/// metadata again.
pub const METADATA_TTL_MS: i64 = 5 * 60_000;
/// How long per-record history is kept.
pub const HISTORY_TTL_MS: i64 = 30 * 86_400_000;
/// How a wait given up at the last attempt continues its message.
const NOT_RETRIED: &str = "; not retried after ";

/// The change on `from` flows to the other side: how sync health names that.
pub fn flow_name(from: Side) -> &'static str {
    match from {
        Side::HubSpot => "to_salesforce",
        Side::Salesforce => "to_hubspot",
    }
}

impl Pipeline {
    /// A pipeline whose state lives in one store (the embedded one, or DynamoDB).
    pub fn new<S>(
        config: ValidatedConfig,
        hubspot: Arc<dyn HubSpotApi>,
        salesforce: Arc<dyn SalesforceApi>,
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        worker: impl Into<String>,
    ) -> Self
    where
        S: LinkStore + ClaimStore + StatusStore + ControlStore + TelemetryStore + 'static,
    {
        let pairs = Arc::new(pairs::build(&config));
        Pipeline {
            pairs,
            object_aliases: Arc::default(),
            config: Arc::new(config),
            hubspot,
            salesforce,
            links: store.clone(),
            claims: store.clone(),
            status: store.clone(),
            control: store.clone(),
            telemetry: store,
            clock,
            owners: Arc::new(OwnerDirectory::default()),
            worker: worker.into(),
            failpoint: None,
            sabotage: None,
            crash_once: Arc::default(),
            metadata: Arc::default(),
            tracked_fields: Arc::default(),
            tally: Arc::default(),
            broken: Arc::default(),
            meta_generation: Arc::default(),
            noted: Arc::default(),
        }
    }

    /// Field metadata of both sides of a pair (types, lengths, picklists, formula and
    /// read-only fields), read from the CRMs once and kept: the merge holds back
    /// values the target would refuse instead of failing the record. When the CRMs
    /// cannot be asked, the merge runs on the types it knows.
    pub(crate) async fn pair_meta(&self, hubspot_object: &str, sobject: &str) -> Arc<PairMeta> {
        let key = format!("{hubspot_object}/{sobject}");
        let now = self.clock.now_ms();
        let mut cache = self.metadata.lock().await;
        if let Some((at, m)) = cache.get(&key)
            && now - at < METADATA_TTL_MS
        {
            return m.clone();
        }
        let mut meta = PairMeta::default();
        match self.hubspot.properties(hubspot_object).await {
            Ok(props) => meta.hubspot = props.iter().filter_map(from_hubspot_property).collect(),
            Err(e) => {
                tracing::warn!(message = "HubSpot properties unavailable", object = hubspot_object, error = %e)
            }
        }
        match self.salesforce.describe(sobject).await {
            Ok(d) => {
                meta.places = crate::domain::geo::PlaceCatalog::from_describe(&d).map(Arc::new);
                meta.salesforce = d
                    .get("fields")
                    .and_then(Value::as_array)
                    .map(|f| f.iter().filter_map(from_salesforce_field).collect())
                    .unwrap_or_default()
            }
            Err(e) => {
                tracing::warn!(message = "Salesforce describe unavailable", object = sobject, error = %e)
            }
        }
        let meta = Arc::new(meta);
        if !meta.hubspot.is_empty() && !meta.salesforce.is_empty() {
            cache.insert(key, (now, meta.clone()));
        }
        meta
    }

    /// The fields of `sobject` the org keeps field history for, from Setup's
    /// `FieldDefinition` rows, read when a merge first needs field times and kept as
    /// long as field metadata; `None` when they cannot be read (the integration user
    /// may lack "View Setup and Configuration"): record times then stand for fields.
    /// A tracked field without a history row has not changed since the record was
    /// created; an untracked one may have changed at any time up to the record's last
    /// modification.
    pub(crate) async fn history_tracked(
        &self,
        sobject: &str,
    ) -> Option<std::collections::BTreeSet<String>> {
        let now = self.clock.now_ms();
        let mut cache = self.tracked_fields.lock().await;
        if let Some((at, fields)) = cache.get(sobject)
            && now - at < METADATA_TTL_MS
        {
            return fields.clone();
        }
        let fields = self.read_history_tracked(sobject).await;
        cache.insert(sobject.to_owned(), (now, fields.clone()));
        fields
    }

    async fn read_history_tracked(
        &self,
        sobject: &str,
    ) -> Option<std::collections::BTreeSet<String>> {
        let soql = format!(
            "SELECT QualifiedApiName FROM FieldDefinition WHERE EntityDefinition.QualifiedApiName = {} AND IsFieldHistoryTracked = true",
            flow::soql_literal(sobject)
        );
        match self.salesforce.query(&soql, false).await {
            Ok(rows) => Some(
                rows.iter()
                    .filter_map(|r| r.get("QualifiedApiName").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect(),
            ),
            Err(e) => {
                tracing::info!(message = "which fields keep Salesforce field history is unknown; record times stand for fields", object = sobject, error = %e);
                None
            }
        }
    }

    /// Pairs HubSpot owners with Salesforce users by email (plus the configured
    /// overrides), for owner fields.
    pub async fn load_owners(&mut self) -> Result<(), String> {
        if !self.config.owners.enabled {
            return Ok(());
        }
        let hubspot: Vec<(String, String)> = self
            .hubspot
            .owners()
            .await
            .map_err(|e| format!("HubSpot owners: {e}"))?
            .into_iter()
            .map(|o| (o.id, o.email))
            .collect();
        let salesforce: Vec<(String, String)> = self
            .salesforce
            .query("SELECT Id, Email FROM User WHERE IsActive = true", false)
            .await
            .map_err(|e| format!("Salesforce users: {e}"))?
            .iter()
            .filter_map(|u| {
                let id = u.get("Id")?.as_str()?.to_owned();
                let email = u.get("Email")?.as_str()?.to_owned();
                Some((id, email))
            })
            .collect();
        self.owners = Arc::new(
            OwnerDirectory::match_by_email(&hubspot, &salesforce, &self.config.owners.overrides)
                .with_defaults(&self.config.owners),
        );
        Ok(())
    }

    /// The enabled pair a queued reference belongs to.
    pub(crate) fn pair_of(&self, item: &WorkItem) -> Option<&PairRun> {
        self.pair_on(item.side, &item.object)
    }

    /// The enabled pair that syncs `object` (a HubSpot object or an sObject) of `side`.
    pub(crate) fn pair_on(&self, side: Side, object: &str) -> Option<&PairRun> {
        self.pairs.iter().find(|p| match side {
            Side::HubSpot => p.spec.hubspot_object == object,
            Side::Salesforce => p.spec.syncs(object),
        })
    }

    /// A HubSpot list's members (contacts), as references queued by hand (`POST /sync`,
    /// `crmsync resync --list`).
    pub async fn list_items(&self, list: &str) -> Result<Vec<WorkItem>, crate::ports::CrmError> {
        Ok(self
            .hubspot
            .list_members(list)
            .await?
            .into_iter()
            .map(|id| WorkItem {
                side: Side::HubSpot,
                object: "contacts".into(),
                id,
                origin: "manual".into(),
                seen: None,
            })
            .collect())
    }

    /// The HubSpot object of an enabled pair.
    pub fn hubspot_object_of(&self, pair: &str) -> Option<String> {
        self.pairs
            .iter()
            .find(|p| p.spec.name == pair)
            .map(|p| p.spec.hubspot_object.clone())
    }

    /// The enabled object pairs, in the order a batch syncs them.
    pub fn pair_names(&self) -> Vec<String> {
        self.pairs.iter().map(|p| p.spec.name.clone()).collect()
    }

    /// Every feed the pipeline reads: `hubspot:{object}` and `salesforce:{sObject}`.
    pub fn feeds(&self) -> Vec<String> {
        let mut feeds: Vec<String> = Vec::new();
        for p in self.pairs.iter() {
            feeds.push(format!("hubspot:{}", p.spec.hubspot_object));
        }
        for p in self.pairs.iter() {
            feeds.extend(p.spec.sobjects.iter().map(|o| format!("salesforce:{o}")));
        }
        feeds
    }

    /// Learns the portal's custom object type ids and names, so that a webhook naming
    /// `2-1001` reaches the pair configured as `p_machines` (and back).
    pub async fn load_object_types(&mut self) -> Result<(), String> {
        if !self.config.custom_objects.iter().any(|c| c.enabled) {
            return Ok(());
        }
        let types = self
            .hubspot
            .custom_object_types()
            .await
            .map_err(|e| format!("HubSpot custom object schemas: {e}"))?;
        let mut aliases = HashMap::new();
        for (id, name) in types {
            aliases.insert(id.clone(), name.clone());
            aliases.insert(name, id);
        }
        self.object_aliases = Arc::new(aliases);
        Ok(())
    }

    /// The object type a pair knows a HubSpot object by (`2-1001` -> `p_machines` when
    /// the pair is configured by name); unknown ones unchanged.
    pub fn hubspot_object_name(&self, object: &str) -> String {
        let known = |o: &str| self.pairs.iter().any(|p| p.spec.hubspot_object == o);
        if known(object) {
            return object.to_owned();
        }
        match self.object_aliases.get(object) {
            Some(alias) if known(alias) => alias.clone(),
            _ => object.to_owned(),
        }
    }

    /// Syncs a batch of queued references: one outcome per reference, in order. A
    /// record-level CRM error stays on its record; only retryable failures come back
    /// as [`ItemOutcome::Retry`].
    pub async fn sync_batch(&self, items: &[WorkItem]) -> Vec<ItemOutcome> {
        match self.load_controls().await {
            Ok(controls) => self.sync_batch_under(items, &controls).await,
            Err(e) => vec![ItemOutcome::Retry(format!("controls unreadable: {e}")); items.len()],
        }
    }

    /// [`Pipeline::sync_batch`] under controls the caller loaded already
    /// ([`Pipeline::load_controls`]: a worker that read them to see whether the sync is
    /// paused need not read them again).
    pub async fn sync_batch_under(
        &self,
        items: &[WorkItem],
        controls: &crate::ports::Controls,
    ) -> Vec<ItemOutcome> {
        if controls.paused.is_some() {
            return vec![ItemOutcome::Retry("sync is paused".into()); items.len()];
        }
        let queued = items.len();
        if tracing::enabled!(tracing::Level::DEBUG) {
            let mut origins: std::collections::BTreeMap<(Side, &str, &str), usize> =
                Default::default();
            for i in items {
                *origins
                    .entry((i.side, i.object.as_str(), i.origin.as_str()))
                    .or_default() += 1;
            }
            tracing::debug!(message = "a batch", references = queued, origins = ?origins);
        }
        // Opportunities and contact roles that changed queue the contacts they can move.
        let lifecycle_on = self.lifecycle_on();
        let is_trigger = |i: &WorkItem| lifecycle_on && lifecycle::is_trigger(i);
        let triggers: Vec<&WorkItem> = items.iter().filter(|i| is_trigger(i)).collect();
        let mut trigger_failed = None;
        let mut all = items.to_vec();
        if !triggers.is_empty() {
            match self.lifecycle_contacts(&triggers).await {
                Ok(contacts) => all.extend(contacts),
                Err(e) => trigger_failed = Some(e),
            }
        }
        let items = all.as_slice();
        let mut outcomes = vec![ItemOutcome::Done; items.len()];
        let now = self.clock.now_ms();
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); self.pairs.len()];
        let mut activities: Vec<usize> = Vec::new();
        for (n, item) in items.iter().enumerate() {
            if self.is_activity(item) || self.is_submission(item) || self.is_email_event(item) {
                activities.push(n);
                continue;
            }
            let run = self.pair_of(item);
            match run.and_then(|r| self.pairs.iter().position(|p| std::ptr::eq(p, r))) {
                Some(k) => groups[k].push(n),
                None if is_trigger(item) => {}
                None => {
                    let from = item.side;
                    let code = Some("pair_not_synced");
                    self.note(item, from, Outcome::Skipped, code, None, now)
                        .await;
                }
            }
        }
        // In dependency order: a lookup then finds its target linked.
        for (run, indexes) in self.pairs.iter().zip(groups) {
            if indexes.is_empty() {
                continue;
            }
            let batch: Vec<WorkItem> = indexes.iter().map(|&n| items[n].clone()).collect();
            let results = self.sync_pair(run, &batch, 0).await;
            for (k, o) in results.into_iter().enumerate() {
                if let Some(&n) = indexes.get(k) {
                    outcomes[n] = o;
                }
            }
        }
        // After the records: an activity (a form submission) finds its contact linked
        // in this batch.
        if !activities.is_empty() {
            self.sync_activities(items, &activities, &mut outcomes)
                .await;
        }
        self.note_usage().await;
        // A trigger is done once the contacts it queued are.
        let retry = trigger_failed.or_else(|| {
            outcomes[queued..].iter().find_map(|o| match o {
                ItemOutcome::Retry(why) | ItemOutcome::Later(why) => Some(why.clone()),
                ItemOutcome::Done => None,
            })
        });
        outcomes.truncate(queued);
        if let Some(why) = retry {
            for (n, item) in items[..queued].iter().enumerate() {
                if is_trigger(item) && outcomes[n] == ItemOutcome::Done {
                    outcomes[n] = ItemOutcome::Retry(why.clone());
                }
            }
        }
        outcomes
    }

    /// Syncs records other records of the batch point at (a deal's company), before
    /// those records' lookups are set. Boxed: their own lookups may recurse.
    pub(crate) fn sync_related(
        &self,
        items: Vec<WorkItem>,
        depth: u8,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            for run in self.pairs.iter() {
                let mine: Vec<WorkItem> = items
                    .iter()
                    .filter(|i| self.pair_of(i).is_some_and(|r| std::ptr::eq(r, run)))
                    .cloned()
                    .collect();
                if !mine.is_empty() {
                    self.sync_pair(run, &mine, depth).await;
                }
            }
        })
    }

    /// Aborts the process at a named point when the failpoint says so (crash tests):
    /// `after_salesforce_write`, `after_crm_write` or `after_link_write` anywhere, or
    /// with `:contacts` in one pair's flow.
    pub(crate) fn failpoint(&self, name: &str) {
        let matches = |f: &str| f == name || name.split(':').next() == Some(f);
        let crash = self
            .crash_once
            .lock()
            .ok()
            .and_then(|mut at| at.take_if(|f| matches(f.as_str())));
        if let Some(at) = crash {
            std::panic::panic_any(format!("crmsync: worker crashed at {at} (harness)"));
        }
        if self.failpoint.as_deref().is_some_and(matches) {
            eprintln!("crmsync: failpoint {name} reached, aborting");
            std::process::abort();
        }
    }

    pub(crate) async fn record(&self, event: SyncEvent) {
        self.record_all(std::slice::from_ref(&event)).await;
    }

    /// [`Pipeline::record`] of a batch's events, in one store call.
    pub(crate) async fn record_all(&self, events: &[SyncEvent]) {
        for e in events {
            self.tally.add(e.outcome);
        }
        if events.is_empty() {
            return;
        }
        if let Err(e) = self.status.record_all(events, HISTORY_TTL_MS).await {
            tracing::warn!(message = "could not record sync outcomes", events = events.len(), error = %e);
        }
    }

    /// An outcome of the record `item` names, whose change came from `from`.
    pub(crate) fn event(
        &self,
        item: &WorkItem,
        from: Side,
        outcome: Outcome,
        at: i64,
    ) -> SyncEvent {
        SyncEvent {
            record: record_ref(item),
            direction: flow_name(from).to_owned(),
            outcome,
            code: None,
            message: None,
            field: None,
            changes: Vec::new(),
            held_back: Vec::new(),
            linked: None,
            at,
        }
    }

    pub(crate) async fn note(
        &self,
        item: &WorkItem,
        from: Side,
        outcome: Outcome,
        code: Option<&str>,
        message: Option<String>,
        now: i64,
    ) {
        if outcome == Outcome::Skipped && self.sabotaged(sabotage::Sabotage::ReasonNotRecorded) {
            return;
        }
        let mut event = self.event(item, from, outcome, now);
        event.code = code.map(str::to_owned);
        event.message = message;
        self.record(event).await;
    }

    /// A reference handed back for a retry, received `receives` times of the queue's
    /// `max_receives`: whether it goes back to the queue (true) or is acknowledged.
    /// On its last receive the queue would move it to the dead letters next, so its
    /// record says so, with the last reason, and nothing is dropped silently (`crmsync
    /// errors` lists it; `crmsync resync --code RETRIES_EXHAUSTED` tries again), unless
    /// the record already says why it waits or fails. A record that synced but waits
    /// for a related record that does not sync (a contact without email) ends there
    /// instead, acknowledged as that skip: it did not fail, and the dead letters would
    /// say it had. The record's next sync replaces either status.
    pub async fn retrying(
        &self,
        item: &WorkItem,
        why: &str,
        receives: u32,
        max_receives: Option<u32>,
    ) -> bool {
        if max_receives.is_none_or(|max| receives < max) {
            return true;
        }
        let attempts = receives;
        let now = self.clock.now_ms();
        let from = item.side;
        let status = self.status.status(&record_ref(item)).await.ok().flatten();
        if why.starts_with(lookups::WAITING_PREFIX) {
            // The record's own status names the related record when the wait was
            // recorded on it; a reference of the pair's other side has only `why`.
            let waiting = status
                .as_ref()
                .filter(|s| s.last.code.as_deref() == Some(lookups::WAITING_FOR_RELATED))
                .and_then(|s| s.last.message.as_deref())
                .map(|m| {
                    // What the wait said before its retries (or a give-up before this one).
                    let m = m.strip_suffix(lookups::RETRIED_UNTIL_SYNCED).unwrap_or(m);
                    m.split_once(NOT_RETRIED).map_or(m, |(before, _)| before)
                })
                .unwrap_or(why);
            let message = format!(
                "{waiting}{NOT_RETRIED}{attempts} attempts: this record's next change \
                 tries again (or `crmsync resync --code {}`)",
                lookups::WAITING_FOR_RELATED
            );
            let code = Some(lookups::WAITING_FOR_RELATED);
            self.note(item, from, Outcome::Skipped, code, Some(message), now)
                .await;
            return false;
        }
        // A record that already says why it fails keeps its more precise reason.
        if status.is_some_and(|s| s.last.outcome != Outcome::Synced) {
            return true;
        }
        let message = format!(
            "not synced after {attempts} attempts, the last because {why}; its change is in the dead letters"
        );
        self.note(
            item,
            from,
            Outcome::Failed,
            Some(health::RETRIES_EXHAUSTED),
            Some(message),
            now,
        )
        .await;
        true
    }

    /// A Salesforce per-record error: retried when Salesforce says it is passing (a
    /// locked row), otherwise recorded on the record with its code and field.
    pub(crate) async fn salesforce_failed(
        &self,
        item: &WorkItem,
        from: Side,
        error: Option<SfErrorItem>,
        now: i64,
    ) -> ItemOutcome {
        let Some(e) = error else {
            let code = Some("UNKNOWN_ERROR");
            self.note(item, from, Outcome::Failed, code, None, now)
                .await;
            return ItemOutcome::Done;
        };
        if e.class == ErrorClass::Retryable {
            return ItemOutcome::Retry(e.code);
        }
        let mut event = self.event(item, from, Outcome::Failed, now);
        event.code = Some(e.code.clone());
        event.message = Some(e.message.clone());
        event.field = e.fields.first().cloned();
        self.record(event).await;
        ItemOutcome::Done
    }

    pub(crate) async fn hubspot_failed(
        &self,
        item: &WorkItem,
        from: Side,
        category: &str,
        message: &str,
        now: i64,
    ) -> ItemOutcome {
        if matches!(category, "RATE_LIMITS" | "LOCKED" | "INTERNAL_ERROR") {
            return ItemOutcome::Retry(category.to_owned());
        }
        // A mapped property deleted since the metadata was read: the retry leaves it
        // out, and health shows the broken mapping instead of a failing record.
        if message.contains("PROPERTY_DOESNT_EXIST") || category == "PROPERTY_DOESNT_EXIST" {
            self.field_refused(message).await;
            return ItemOutcome::Retry(format!("{category}: {message}"));
        }
        let (code, message) = (Some(category), Some(message.to_owned()));
        self.note(item, from, Outcome::Failed, code, message, now)
            .await;
        ItemOutcome::Done
    }
}

pub(crate) fn record_ref(item: &WorkItem) -> RecordRef {
    RecordRef {
        side: item.side.as_str().to_owned(),
        object: item.object.clone(),
        id: item.id.clone(),
    }
}
