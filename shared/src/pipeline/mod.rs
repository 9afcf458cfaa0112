//! The sync pipeline: the orchestration the Lambda functions and the local runner
//! share. It talks to the CRMs and the state only through ports, and decides nothing
//! the domain does not (the merge, the rules, the dedup keys).
//!
//! - [`poll`]: change feeds -> record references on the queue, then the cursor moves.
//! - [`intake`]: webhooks, outbound messages and manual requests -> the queue.
//! - [`Pipeline::sync_batch`]: record references -> both CRMs and the link state.

mod associations;
pub mod backfill;
pub mod companies;
pub mod contacts;
pub mod health;
pub mod intake;
pub mod poll;
mod work;
pub mod worker;
mod writes;

use std::collections::HashMap;
use std::sync::Arc;

pub(crate) use work::{Record, Work, hubspot_snapshot, merge_same_pairs};

use serde_json::Value;

use crate::adapters::hubspot::HsRecord;
use crate::adapters::salesforce::SfErrorItem;
use crate::domain::Side;
use crate::domain::config::ValidatedConfig;
use crate::domain::merge::{OwnerDirectory, Snapshot};
use crate::domain::metadata::{PairMeta, from_hubspot_property, from_salesforce_field};
use crate::ports::{
    ClaimStore, Clock, FieldChange, HubSpotApi, LinkStore, Outcome, RecordRef, SalesforceApi,
    StatusStore, SyncEvent, WorkItem,
};

/// Everything a sync needs, built once per process (per Lambda cold start).
#[derive(Clone)]
pub struct Pipeline {
    pub config: Arc<ValidatedConfig>,
    pub hubspot: Arc<dyn HubSpotApi>,
    pub salesforce: Arc<dyn SalesforceApi>,
    pub links: Arc<dyn LinkStore>,
    pub claims: Arc<dyn ClaimStore>,
    pub status: Arc<dyn StatusStore>,
    pub clock: Arc<dyn Clock>,
    pub owners: Arc<OwnerDirectory>,
    /// Who claims dedup keys (a Lambda request id, a local worker name).
    pub worker: String,
    /// A named point where the process aborts (crash tests; `CRMSYNC_FAILPOINT`).
    pub failpoint: Option<String>,
    /// Both CRMs' field metadata per object pair, read once per process.
    pub metadata: Arc<tokio::sync::Mutex<HashMap<String, Arc<PairMeta>>>>,
    /// Outcomes recorded by this process (for metrics).
    pub tally: Arc<Tally>,
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
}

/// How long a claim on a dedup key lasts: longer than one batch takes.
pub const CLAIM_TTL_MS: i64 = 5 * 60 * 1000;
/// How long per-record history is kept.
pub const HISTORY_TTL_MS: i64 = 30 * 86_400_000;

/// The object pair a queued reference belongs to.
pub fn pair_of(item: &WorkItem) -> Option<&'static str> {
    match (item.side.as_str(), item.object.as_str()) {
        ("hubspot", "contacts") | ("salesforce", "Lead" | "Contact") => Some(contacts::PAIR),
        ("hubspot", "companies") | ("salesforce", "Account") => Some(companies::PAIR),
        _ => None,
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
        S: LinkStore + ClaimStore + StatusStore + 'static,
    {
        Pipeline {
            config: Arc::new(config),
            hubspot,
            salesforce,
            links: store.clone(),
            claims: store.clone(),
            status: store,
            clock,
            owners: Arc::new(OwnerDirectory::default()),
            worker: worker.into(),
            failpoint: None,
            metadata: Arc::default(),
            tally: Arc::default(),
        }
    }

    /// Field metadata of both sides of a pair (types, lengths, picklists, formula and
    /// read-only fields), read from the CRMs once and kept: the merge holds back
    /// values the target would refuse instead of failing the record. When the CRMs
    /// cannot be asked, the merge runs on the types it knows.
    pub(crate) async fn pair_meta(&self, hubspot_object: &str, sobject: &str) -> Arc<PairMeta> {
        let key = format!("{hubspot_object}/{sobject}");
        let mut cache = self.metadata.lock().await;
        if let Some(m) = cache.get(&key) {
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
            cache.insert(key, meta.clone());
        }
        meta
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
        self.owners = Arc::new(OwnerDirectory::match_by_email(
            &hubspot,
            &salesforce,
            &self.config.owners.overrides,
        ));
        Ok(())
    }

    /// Syncs a batch of queued references: one outcome per reference, in order. A
    /// record-level CRM error stays on its record; only retryable failures come back
    /// as [`ItemOutcome::Retry`].
    pub async fn sync_batch(&self, items: &[WorkItem]) -> Vec<ItemOutcome> {
        let mut outcomes = vec![ItemOutcome::Done; items.len()];
        if self.config.paused {
            return vec![ItemOutcome::Retry("sync is paused".into()); items.len()];
        }
        // Companies first: a contact's company association then finds its link.
        let mut groups: Vec<(&str, Vec<usize>)> =
            vec![(companies::PAIR, Vec::new()), (contacts::PAIR, Vec::new())];
        for (n, item) in items.iter().enumerate() {
            let enabled = match pair_of(item) {
                Some(contacts::PAIR) => self.config.contacts.enabled.then_some(contacts::PAIR),
                Some(companies::PAIR) => self.config.companies.enabled.then_some(companies::PAIR),
                _ => None,
            };
            match enabled.and_then(|pair| groups.iter_mut().find(|(p, _)| *p == pair)) {
                Some((_, indexes)) => indexes.push(n),
                None => {
                    let direction = direction_from(item);
                    let now = self.clock.now_ms();
                    self.note(
                        item,
                        direction,
                        Outcome::Skipped,
                        Some("pair_not_synced"),
                        None,
                        now,
                    )
                    .await;
                }
            }
        }
        for (pair, indexes) in groups {
            if indexes.is_empty() {
                continue;
            }
            let batch: Vec<WorkItem> = indexes.iter().map(|&n| items[n].clone()).collect();
            let results = if pair == contacts::PAIR {
                self.sync_contacts(&batch).await
            } else {
                self.sync_companies(&batch).await
            };
            for (k, o) in results.into_iter().enumerate() {
                if let Some(&n) = indexes.get(k) {
                    outcomes[n] = o;
                }
            }
        }
        outcomes
    }

    /// The HubSpot records the queue names, one work per record. An id merged into
    /// another resolves to the survivor; a record gone from HubSpot loses its link
    /// (nothing is deleted in Salesforce) and is skipped with that reason.
    pub(crate) async fn hubspot_works(
        &self,
        pair: &str,
        items: &[WorkItem],
        records: &[HsRecord],
        now: i64,
    ) -> Result<Vec<Work>, String> {
        let mut works: Vec<Work> = Vec::new();
        for (n, item) in items
            .iter()
            .enumerate()
            .filter(|(_, i)| i.side == "hubspot")
        {
            let found = records.iter().find(|r| {
                r.id == item.id
                    || r.properties
                        .get("hs_merged_object_ids")
                        .and_then(Value::as_str)
                        .is_some_and(|m| m.split(';').any(|x| x == item.id))
            });
            let Some(r) = found else {
                self.hubspot_deleted(pair, &item.id).await?;
                let code = Some("deleted_in_hubspot");
                self.note(item, "to_salesforce", Outcome::Skipped, code, None, now)
                    .await;
                continue;
            };
            match works
                .iter_mut()
                .find(|w| w.hubspot.as_ref().is_some_and(|h| h.id == r.id))
            {
                Some(w) => w.items.push(n),
                None => works.push(Work {
                    hubspot: Some(r.clone()),
                    items: vec![n],
                    origin: Some(Side::HubSpot),
                    ..Work::default()
                }),
            }
        }
        Ok(works)
    }

    /// The HubSpot records of pairs whose merge turns on when each field changed (both
    /// sides changed it, or a first sync of a `two_way` field): HubSpot's property
    /// history tells, so those, and only those, are read again with it. Reading history
    /// for every record would halve the records per call (50, not 100).
    pub(crate) async fn refine_with_history(
        &self,
        pair: &str,
        works: &mut [Work],
        properties: &[String],
        rules_for: impl Fn(&Work) -> Option<Arc<PairMeta>>,
        salesforce_snapshot: impl Fn(&Record) -> Snapshot,
    ) -> Result<(), String> {
        use crate::domain::merge::{MergeRules, Reason, merge_fields};
        let mut ids = Vec::new();
        for w in works.iter() {
            let (Some(h), Some(s)) = (&w.hubspot, &w.salesforce) else {
                continue;
            };
            if !h.history.is_empty() {
                continue;
            }
            let Some(meta) = rules_for(w) else { continue };
            let Ok(rules) = MergeRules::new(&self.config, pair, &s.object, &meta, &self.owners)
            else {
                continue;
            };
            let last = w.link.as_ref().map(|l| &l.last_synced);
            let plan = merge_fields(&rules, &hubspot_snapshot(h), &salesforce_snapshot(s), last);
            let timed = plan.fields.iter().any(|f| {
                matches!(
                    f.reason,
                    Reason::ConflictMostRecent
                        | Reason::ConflictPreferred
                        | Reason::FirstSyncMostRecent
                )
            });
            if timed {
                ids.push(h.id.clone());
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = properties.iter().map(String::as_str).collect();
        let history: Vec<&str> = self
            .config
            .pair(pair)
            .map(|p| p.fields().iter().map(|f| f.hubspot.as_str()).collect())
            .unwrap_or_default();
        let fresh = self
            .hubspot
            .batch_read(pair, &ids, &refs, &history, None)
            .await
            .map_err(|e| e.to_string())?;
        for w in works.iter_mut() {
            let Some(h) = &w.hubspot else { continue };
            if let Some(r) = fresh.iter().find(|r| r.id == h.id) {
                w.hubspot = Some(r.clone());
            }
        }
        Ok(())
    }

    /// A HubSpot record that is gone: its link is dropped (nothing is deleted in
    /// Salesforce), so the Salesforce record can pair again.
    pub(crate) async fn hubspot_deleted(&self, pair: &str, hubspot_id: &str) -> Result<(), String> {
        if let Some(link) = self
            .links
            .by_hubspot(pair, hubspot_id)
            .await
            .map_err(|e| e.to_string())?
        {
            self.links.remove(&link).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Aborts the process at a named point when the failpoint says so (crash tests):
    /// `after_crm_write` anywhere, `after_crm_write:contacts` in one pair's flow.
    pub(crate) fn failpoint(&self, name: &str) {
        let hit = self
            .failpoint
            .as_deref()
            .is_some_and(|f| f == name || name.split(':').next() == Some(f));
        if hit {
            eprintln!("crmsync: failpoint {name} reached, aborting");
            std::process::abort();
        }
    }

    pub(crate) async fn record(&self, event: SyncEvent) {
        self.tally.add(event.outcome);
        if let Err(e) = self.status.record(&event, HISTORY_TTL_MS).await {
            tracing::warn!(message = "could not record a sync outcome", error = %e);
        }
    }

    pub(crate) async fn note(
        &self,
        item: &WorkItem,
        direction: &str,
        outcome: Outcome,
        code: Option<&str>,
        message: Option<String>,
        now: i64,
    ) {
        self.record(SyncEvent {
            record: record_ref(item),
            direction: direction.to_owned(),
            outcome,
            code: code.map(str::to_owned),
            message,
            field: None,
            changes: Vec::new(),
            at: now,
        })
        .await;
    }

    pub(crate) async fn note_changes(
        &self,
        item: &WorkItem,
        direction: &str,
        changes: Vec<FieldChange>,
        now: i64,
    ) {
        self.record(SyncEvent {
            record: record_ref(item),
            direction: direction.to_owned(),
            outcome: Outcome::Synced,
            code: None,
            message: None,
            field: None,
            changes,
            at: now,
        })
        .await;
    }

    /// A Salesforce per-record error: retried when Salesforce says it is passing (a
    /// locked row), otherwise recorded on the record with its code and field.
    pub(crate) async fn salesforce_failed(
        &self,
        item: &WorkItem,
        direction: &str,
        error: Option<SfErrorItem>,
        now: i64,
    ) -> ItemOutcome {
        use crate::adapters::http::ErrorClass;
        let Some(e) = error else {
            let code = Some("UNKNOWN_ERROR");
            self.note(item, direction, Outcome::Failed, code, None, now)
                .await;
            return ItemOutcome::Done;
        };
        if crate::adapters::salesforce::code_class(&e.code) == ErrorClass::Retryable {
            return ItemOutcome::Retry(e.code);
        }
        self.record(SyncEvent {
            record: record_ref(item),
            direction: direction.to_owned(),
            outcome: Outcome::Failed,
            code: Some(e.code.clone()),
            message: Some(e.message.clone()),
            field: e.fields.first().cloned(),
            changes: Vec::new(),
            at: now,
        })
        .await;
        ItemOutcome::Done
    }

    pub(crate) async fn hubspot_failed(
        &self,
        item: &WorkItem,
        direction: &str,
        category: &str,
        message: &str,
        now: i64,
    ) -> ItemOutcome {
        if matches!(category, "RATE_LIMITS" | "LOCKED" | "INTERNAL_ERROR") {
            return ItemOutcome::Retry(category.to_owned());
        }
        self.note(
            item,
            direction,
            Outcome::Failed,
            Some(category),
            Some(message.to_owned()),
            now,
        )
        .await;
        ItemOutcome::Done
    }
}

fn record_ref(item: &WorkItem) -> RecordRef {
    RecordRef {
        side: item.side.clone(),
        object: item.object.clone(),
        id: item.id.clone(),
    }
}

/// A change on one side flows to the other.
pub fn direction_from(item: &WorkItem) -> &'static str {
    if item.side == "salesforce" {
        "to_hubspot"
    } else {
        "to_salesforce"
    }
}
