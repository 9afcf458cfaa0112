//! The write stage every object pair shares: a batch of planned pairs goes to
//! Salesforce in one Collections update and one upsert per sObject (on the HubSpot id,
//! so a retry after a crash finds its record), to HubSpot in one batch update, and then
//! each pair's link, claim and outcome are stored. Record-level errors stay on their
//! pair; a failed call returns only its pairs to the queue.

use serde_json::{Map, Value, json};

use super::flow::same_sf_id;
use super::fresh::EarlyCheck;
use super::pairs::PairRun;
use super::work::{Prefetch, Record, Work};
use super::{ItemOutcome, Pipeline};
use crate::domain::Side;
use crate::domain::merge::{Action, LastSynced, MergePlan, Snapshot};
use crate::domain::pair::PairSpec;
use crate::ports::{
    BatchOutcome, CrmError, ErrorClass, FieldChange, HeldBack, Link, NewRecord, RecordResult,
    StoreError, WorkItem,
};

/// One HubSpot batch input: its key (id, email or trace id) and properties.
pub(crate) type HubSpotInput = (String, Map<String, Value>);

/// The planned pairs whose HubSpot record is to be created: those whose key was read
/// (and not found: `unread` false), or not read (`unread`).
fn hubspot_creates(planned: &[Planned], unread: bool) -> Vec<usize> {
    (0..planned.len())
        .filter(|&n| {
            planned[n].live()
                && planned[n].salesforce_id.is_some()
                && planned[n].hubspot_id.is_none()
                && planned[n].work.key_unread == unread
        })
        .collect()
}

/// The HubSpot creates made as plain creates, which take their associations: on a
/// unique key, a create whose key was read is an upsert, and upserts take none.
pub(crate) fn plain_hubspot_creates(run: &PairRun, planned: &[Planned]) -> Vec<usize> {
    let unique = run
        .spec
        .match_key
        .as_ref()
        .is_some_and(|k| k.hubspot_unique);
    let mut plain = hubspot_creates(planned, true);
    if !unique {
        plain.extend(hubspot_creates(planned, false));
    }
    plain
}

/// The inputs of the planned pairs `which`, in order.
fn subset<T: Clone>(inputs: &[(usize, T)], which: &[usize]) -> Vec<T> {
    which
        .iter()
        .filter_map(|n| inputs.iter().find(|(m, _)| m == n).map(|(_, t)| t.clone()))
        .collect()
}

/// A pair that passed the rules and has its writes worked out.
pub(crate) struct Planned {
    pub work: Work,
    /// The side whose change brought the pair here.
    pub from: Side,
    pub sobject: String,
    pub claim_key: Option<String>,
    /// The pair's dedup key (an email, a company domain or name).
    pub key: Option<String>,
    pub next_last_synced: LastSynced,
    pub last_synced_moved: bool,
    pub hubspot_writes: Map<String, Value>,
    /// The HubSpot writes the pair's own rules added (`PairHooks::derived_hubspot_writes`).
    pub derived: Map<String, Value>,
    pub salesforce_writes: Map<String, Value>,
    pub changes: Vec<FieldChange>,
    pub salesforce_id: Option<String>,
    pub hubspot_id: Option<String>,
    /// The HubSpot record was created by this batch: it has no associations but the
    /// ones it was created with.
    pub hubspot_new: bool,
    /// What a HubSpot record this batch creates is created associated with, as (object
    /// type, id): the linked targets of its Salesforce lookups (`lookups.rs`).
    pub hubspot_associations: Vec<(String, String)>,
    /// A data-quality note for the record's status: (code, field, message).
    pub note: Option<(&'static str, String, String)>,
    /// Values not written because the target would refuse or cut them.
    pub held_back: Vec<HeldBack>,
    /// Set once the pair failed or must be retried; later steps leave it alone.
    pub outcome: Option<ItemOutcome>,
}

impl Planned {
    /// A merged pair's writes, and the field changes to report (`hubspot` and
    /// `salesforce`: the snapshots the merge saw).
    pub fn from_plan(
        work: Work,
        plan: &MergePlan<'_>,
        hubspot: &Snapshot,
        salesforce: &Snapshot,
        from: Side,
        sobject: String,
    ) -> Planned {
        let last = work.link.as_ref().map(|l| &l.last_synced);
        let changes = plan
            .fields
            .iter()
            .filter(|f| f.action != Action::None)
            .map(|f| {
                let to_hubspot = plan.hubspot_writes.get(f.hubspot);
                let (old, new) = match (to_hubspot, f.salesforce) {
                    (Some(new), _) => (hubspot.values.get(f.hubspot), Some(new)),
                    (None, Some(field)) => (
                        salesforce.values.get(field),
                        plan.salesforce_writes.get(field),
                    ),
                    (None, None) => (None, None),
                };
                FieldChange {
                    field: f.hubspot.to_owned(),
                    old: old.cloned().unwrap_or(Value::Null),
                    new: new.cloned().unwrap_or(Value::Null),
                }
            })
            .collect();
        let held_back = plan
            .fields
            .iter()
            .filter(|f| f.reason.is_data_quality())
            .map(|f| HeldBack {
                field: f.hubspot.to_owned(),
                reason: f.reason.code().to_owned(),
                detail: f.detail.clone(),
            })
            .collect();
        Planned {
            held_back,
            from,
            sobject,
            claim_key: None,
            key: None,
            next_last_synced: plan.next_last_synced(last),
            last_synced_moved: !plan.last_synced_changes.is_empty() || work.link.is_none(),
            hubspot_writes: plan.hubspot_writes.clone(),
            derived: Map::new(),
            salesforce_writes: plan.salesforce_writes.clone(),
            changes,
            salesforce_id: work.salesforce.as_ref().map(Record::id),
            hubspot_id: work.hubspot.as_ref().map(|h| h.id.clone()),
            hubspot_new: false,
            hubspot_associations: Vec::new(),
            note: None,
            outcome: None,
            work,
        }
    }

    /// An echo of our own write, or a change to unmapped fields: nothing moved, and
    /// the records' statuses are left as they are.
    pub fn moved_nothing(&self) -> bool {
        self.work.link.is_some()
            && !self.last_synced_moved
            && self.hubspot_writes.is_empty()
            && self.salesforce_writes.is_empty()
            && self.note.is_none()
    }

    /// Whether its HubSpot writes may overwrite a person's edit, and are checked first:
    /// any beyond the sync's own identity properties (a record learning its partner's
    /// id overwrites nobody's edit).
    pub fn hubspot_writes_checked(&self, spec: &PairSpec) -> bool {
        !self.hubspot_writes.keys().all(|k| spec.is_identity(k))
    }

    pub fn live(&self) -> bool {
        self.outcome.is_none()
    }

    fn first_item(&self) -> usize {
        self.work.items.first().copied().unwrap_or(0)
    }
}

impl Pipeline {
    /// Salesforce writes of a batch: updates in one Collections call, creates as one
    /// upsert per sObject on the pair's HubSpot id field, so that a retry after a crash
    /// finds the record it made.
    pub(crate) async fn write_salesforce(
        &self,
        run: &PairRun,
        items: &[WorkItem],
        planned: &mut [Planned],
        now: i64,
        prefetch: &Prefetch,
    ) {
        let external_id = run.spec.hubspot_id_field.as_str();
        // A record learns the HubSpot id it is linked with (what a retry after a crash,
        // and an admin, find it by): when first linked, and when it still names another
        // HubSpot record (one deleted, whose email a new one took, took over its link).
        for p in planned.iter_mut().filter(|p| p.live()) {
            let named = p
                .work
                .salesforce
                .as_ref()
                .and_then(|s| s.row.get(external_id))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            let Some(hs) = p.hubspot_id.clone() else {
                continue;
            };
            let stale = match &named {
                None => p.work.link.is_none(),
                Some(n) => *n != hs,
            };
            if p.salesforce_id.is_some() && stale {
                p.salesforce_writes.insert(external_id.into(), json!(hs));
            }
        }
        let updates: Vec<usize> = (0..planned.len())
            .filter(|&n| {
                planned[n].live()
                    && planned[n].salesforce_id.is_some()
                    && !planned[n].salesforce_writes.is_empty()
            })
            .collect();
        self.hold_changed_salesforce(planned, &updates).await;
        let updates: Vec<usize> = updates.into_iter().filter(|&n| planned[n].live()).collect();
        if !updates.is_empty() {
            let rows: Vec<(String, Map<String, Value>)> = updates
                .iter()
                .map(|&n| {
                    let p = &planned[n];
                    let mut row = p.salesforce_writes.clone();
                    row.insert("Id".into(), json!(p.salesforce_id));
                    (p.sobject.clone(), row)
                })
                .collect();
            let results = self.salesforce.update(&rows, false).await;
            self.apply_salesforce_results(items, planned, &updates, results, now)
                .await;
        }
        for sobject in &run.spec.sobjects {
            let creates: Vec<usize> = (0..planned.len())
                .filter(|&n| {
                    planned[n].live()
                        && planned[n].salesforce_id.is_none()
                        && &planned[n].sobject == sobject
                })
                .collect();
            if creates.is_empty() {
                continue;
            }
            self.inline_lookups(run, planned, &creates, prefetch).await;
            let rows: Vec<Map<String, Value>> = creates
                .iter()
                .map(|&n| {
                    let p = &planned[n];
                    let mut row = p.salesforce_writes.clone();
                    row.insert(external_id.into(), json!(p.hubspot_id));
                    run.hooks.salesforce_create_defaults(sobject, &mut row);
                    row
                })
                .collect();
            let results = self
                .salesforce
                .upsert(sobject, external_id, &rows, false)
                .await;
            self.apply_salesforce_results(items, planned, &creates, results, now)
                .await;
        }
    }

    async fn apply_salesforce_results(
        &self,
        items: &[WorkItem],
        planned: &mut [Planned],
        which: &[usize],
        results: Result<Vec<RecordResult>, CrmError>,
        now: i64,
    ) {
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                for &n in which {
                    planned[n].outcome = Some(ItemOutcome::Retry(e.to_string()));
                }
                return;
            }
        };
        for (k, &n) in which.iter().enumerate() {
            match results.get(k) {
                Some(r) if r.ok() => {
                    if planned[n].salesforce_id.is_none() {
                        planned[n].salesforce_id = r.id.clone();
                    }
                }
                Some(r) => {
                    let item = &items[planned[n].first_item()];
                    let e = r.errors.first().cloned();
                    let outcome = self.salesforce_failed(item, planned[n].from, e, now).await;
                    planned[n].outcome = Some(outcome);
                }
                None => {
                    planned[n].outcome = Some(ItemOutcome::Retry("no result for a record".into()))
                }
            }
        }
    }

    /// HubSpot writes of a batch: every record learns its Salesforce id (and what the
    /// pair's hooks add), then one batch update and one batch create (an upsert on the
    /// pair's unique key where it has one).
    pub(crate) async fn write_hubspot(
        &self,
        run: &PairRun,
        items: &[WorkItem],
        planned: &mut [Planned],
        now: i64,
        early: Option<&EarlyCheck>,
    ) {
        // Every pair's HubSpot record names its partner: a new link, one this batch
        // moved (a conversion followed, a merge's takeover), and one moved by an
        // attempt that then read again (what it names is compared; equal costs nothing).
        for p in planned.iter_mut().filter(|p| p.live()) {
            let Some(sf) = p.salesforce_id.clone() else {
                continue;
            };
            let known = p.work.hubspot.as_ref().map(|h| &h.properties);
            if let Some(property) = run.spec.salesforce_id_property(&p.sobject) {
                let current = known
                    .and_then(|k| k.get(property))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !same_sf_id(current, &sf) {
                    p.hubspot_writes.insert(property.into(), json!(sf));
                }
            }
            if let Some(kind) = &run.spec.kind_property {
                let current = known.and_then(|k| k.get(kind)).and_then(Value::as_str);
                let wanted = p.sobject.to_uppercase();
                if current != Some(wanted.as_str()) {
                    p.hubspot_writes.insert(kind.clone(), json!(wanted));
                }
            }
            run.hooks
                .identity_writes(&p.sobject, known, &mut p.hubspot_writes);
        }
        self.update_hubspot(run, items, planned, now, early).await;
        self.create_hubspot(run, items, planned, now).await;
    }

    /// HubSpot updates of a batch, in one batch call.
    async fn update_hubspot(
        &self,
        run: &PairRun,
        items: &[WorkItem],
        planned: &mut [Planned],
        now: i64,
        early: Option<&EarlyCheck>,
    ) {
        let object = run.spec.hubspot_object.as_str();
        let updates: Vec<usize> = (0..planned.len())
            .filter(|&n| {
                planned[n].live()
                    && planned[n].salesforce_id.is_some()
                    && planned[n].hubspot_id.is_some()
                    && !planned[n].hubspot_writes.is_empty()
            })
            .collect();
        let checked: Vec<usize> = updates
            .iter()
            .copied()
            .filter(|&n| planned[n].hubspot_writes_checked(&run.spec))
            .collect();
        self.hold_changed_hubspot(&run.spec, planned, &checked, early)
            .await;
        let updates: Vec<usize> = updates.into_iter().filter(|&n| planned[n].live()).collect();
        if updates.is_empty() {
            return;
        }
        let inputs: Vec<(usize, HubSpotInput)> = updates
            .iter()
            .map(|&n| {
                let id = planned[n].hubspot_id.clone().unwrap_or_default();
                (n, (id, planned[n].hubspot_writes.clone()))
            })
            .collect();
        let results = self
            .hubspot_isolating(&updates, |which| {
                let subset = subset(&inputs, &which);
                async move { self.hubspot.batch_update(object, &subset).await }
            })
            .await;
        for (which, result) in results {
            match result {
                Ok(outcome) => {
                    for e in &outcome.errors {
                        let failed = which
                            .iter()
                            .find(|&&n| planned[n].hubspot_id.as_deref() == Some(e.key.as_str()));
                        if let Some(&n) = failed {
                            let item = &items[planned[n].first_item()];
                            let o = self
                                .hubspot_failed(item, planned[n].from, &e.category, &e.message, now)
                                .await;
                            planned[n].outcome = Some(o);
                        }
                    }
                }
                Err(e) => {
                    self.hubspot_call_failed(items, planned, &which, &e, now)
                        .await
                }
            }
        }
    }

    /// New HubSpot records of a batch, in one call of each kind. A pair with a unique
    /// HubSpot key upserts on it (a retry finds the record it made), except records
    /// whose key was not looked for (`Work::key_unread`): a create, which HubSpot
    /// refuses for a key it has, and the refused record is retried, read and merged
    /// then. The others create, each record carrying its Salesforce id, by which
    /// matching finds it again.
    async fn create_hubspot(
        &self,
        run: &PairRun,
        items: &[WorkItem],
        planned: &mut [Planned],
        now: i64,
    ) {
        let (read, unread) = (
            hubspot_creates(planned, false),
            hubspot_creates(planned, true),
        );
        let plain = plain_hubspot_creates(run, planned);
        self.inline_associations(run, planned, &plain).await;
        self.create_hubspot_of(run, items, planned, now, &read, true)
            .await;
        self.create_hubspot_of(run, items, planned, now, &unread, false)
            .await;
    }

    /// [`Pipeline::create_hubspot`] for the planned pairs `creates`; `upsert`: on the
    /// pair's unique key, where it has one.
    async fn create_hubspot_of(
        &self,
        run: &PairRun,
        items: &[WorkItem],
        planned: &mut [Planned],
        now: i64,
        creates: &[usize],
        upsert: bool,
    ) {
        let spec = &run.spec;
        if creates.is_empty() {
            return;
        }
        let unique = spec.match_key.as_ref().filter(|k| k.hubspot_unique);
        // Each input's key: the unique key's value, or a trace of the Salesforce id.
        let key_of = |p: &Planned| match unique {
            Some(_) => p.key.clone().unwrap_or_default(),
            None => format!("sf-{}", p.salesforce_id.clone().unwrap_or_default()),
        };
        let inputs: Vec<(usize, NewRecord)> = creates
            .iter()
            .map(|&n| {
                let mut props = planned[n].hubspot_writes.clone();
                run.hooks.hubspot_create_defaults(&mut props);
                match unique {
                    Some(k) if upsert => {
                        props.remove(&k.hubspot);
                    }
                    // Created by its key: the key is a property like any other.
                    Some(k) => {
                        props.insert(k.hubspot.clone(), json!(key_of(&planned[n])));
                    }
                    None => {}
                }
                let record = NewRecord {
                    key: key_of(&planned[n]),
                    properties: props,
                    associations: planned[n].hubspot_associations.clone(),
                };
                (n, record)
            })
            .collect();
        let object = spec.hubspot_object.as_str();
        let results = self
            .hubspot_isolating(creates, |which| {
                let subset = subset(&inputs, &which);
                async move {
                    match unique {
                        // An upsert's input is its key and properties.
                        Some(k) if upsert => {
                            let subset: Vec<HubSpotInput> =
                                subset.into_iter().map(|r| (r.key, r.properties)).collect();
                            self.hubspot.batch_upsert(object, &k.hubspot, &subset).await
                        }
                        _ => self.hubspot.batch_create(object, &subset).await,
                    }
                }
            })
            .await;
        for (which, result) in results {
            let outcome = match result {
                Ok(o) => o,
                Err(e) => {
                    self.hubspot_call_failed(items, planned, &which, &e, now)
                        .await;
                    continue;
                }
            };
            for &n in &which {
                let key = key_of(&planned[n]);
                let failed = outcome.errors.iter().find(|e| match unique {
                    Some(k) => k.kind.normalize(&e.key).as_deref() == Some(key.as_str()),
                    None => e.key == key,
                });
                if let Some(e) = failed {
                    // A record has its key: the retry reads it and merges.
                    if !upsert && unique.is_some() && e.category == "CONFLICT" {
                        planned[n].outcome = Some(ItemOutcome::Retry(format!(
                            "HubSpot has a record with its {}: {}",
                            spec.match_key
                                .as_ref()
                                .map(|k| k.hubspot.as_str())
                                .unwrap_or_default(),
                            e.message
                        )));
                        continue;
                    }
                    let item = &items[planned[n].first_item()];
                    let o = self
                        .hubspot_failed(item, planned[n].from, &e.category, &e.message, now)
                        .await;
                    planned[n].outcome = Some(o);
                    continue;
                }
                let sf = planned[n].salesforce_id.clone().unwrap_or_default();
                let id_property = spec.salesforce_id_property(&planned[n].sobject);
                let created = outcome.records.iter().find(|r| match unique {
                    Some(k) => k.of_hubspot(&r.properties).as_deref() == Some(key.as_str()),
                    None => id_property
                        .and_then(|p| r.properties.get(p))
                        .and_then(Value::as_str)
                        .is_some_and(|v| same_sf_id(v, &sf)),
                });
                planned[n].outcome = match created {
                    Some(r) => {
                        planned[n].hubspot_id = Some(r.id.clone());
                        // An upsert may have met a record its key already named.
                        planned[n].hubspot_new =
                            !upsert || unique.is_none() || outcome.created.contains(&r.id);
                        None
                    }
                    None => Some(ItemOutcome::Retry(
                        "HubSpot did not return the record it created".into(),
                    )),
                };
            }
        }
    }

    /// Runs a HubSpot batch call; when HubSpot refuses the whole batch for what one
    /// input holds (a 400), runs each input alone, so only the bad one fails.
    async fn hubspot_isolating<F, Fut>(
        &self,
        which: &[usize],
        call: F,
    ) -> Vec<(Vec<usize>, Result<BatchOutcome, CrmError>)>
    where
        F: Fn(Vec<usize>) -> Fut,
        Fut: std::future::Future<Output = Result<BatchOutcome, CrmError>>,
    {
        match call(which.to_vec()).await {
            Err(e) if e.class == ErrorClass::RecordLevel && which.len() > 1 => {
                tracing::info!(message = "HubSpot refused a batch; writing its records one by one", error = %e);
                let mut out = Vec::with_capacity(which.len());
                for &n in which {
                    out.push((vec![n], call(vec![n]).await));
                }
                out
            }
            result => vec![(which.to_vec(), result)],
        }
    }

    /// A HubSpot call that failed for `which`: a refusal of one record's data stays on
    /// that record; anything else is retried.
    async fn hubspot_call_failed(
        &self,
        items: &[WorkItem],
        planned: &mut [Planned],
        which: &[usize],
        error: &CrmError,
        now: i64,
    ) {
        for &n in which {
            planned[n].outcome = Some(
                if error.class == ErrorClass::RecordLevel && which.len() == 1 {
                    let item = &items[planned[n].first_item()];
                    self.hubspot_failed(item, planned[n].from, &error.code, &error.message, now)
                        .await
                } else {
                    ItemOutcome::Retry(error.to_string())
                },
            );
        }
    }

    /// Links, claims and outcomes of a written batch, into `outcomes` by item index:
    /// the batch's new links in one store call, its updated links in another, its
    /// statuses in a third, and its claims released in a fourth (a store call per
    /// record was most of an initial sync's store time, under one lock every worker
    /// shares).
    pub(crate) async fn finish(
        &self,
        pair: &str,
        items: &[WorkItem],
        planned: Vec<Planned>,
        outcomes: &mut [ItemOutcome],
        now: i64,
    ) {
        // After the writes: a record changed later than this was changed by someone
        // else (the merge's edited-back check, `MergeRules::synced_at`).
        let synced_at = self.clock.now_ms();
        let mut claims = Vec::new();
        let mut storing: Vec<(Planned, LinkWrite)> = Vec::new();
        for mut p in planned {
            claims.extend(p.claim_key.take());
            let write = match p.outcome.take() {
                Some(outcome) => Err(outcome),
                None => self.link_write(pair, &p, now, synced_at),
            };
            match write {
                Ok(write) => storing.push((p, write)),
                Err(outcome) => {
                    for &n in &p.work.items {
                        outcomes[n] = outcome.clone();
                    }
                }
            }
        }
        let stored = self.store_links(storing.iter().map(|(_, w)| w)).await;
        let mut events = Vec::new();
        for ((p, _), stored) in storing.into_iter().zip(stored) {
            let outcome = match stored {
                Ok(()) => {
                    events.extend(self.synced_events(items, &p, now));
                    ItemOutcome::Done
                }
                Err(e) => ItemOutcome::Retry(format!("link not stored: {e}")),
            };
            for &n in &p.work.items {
                outcomes[n] = outcome.clone();
            }
        }
        self.record_all(&events).await;
        // Their keys go back together, once every link is stored: a claim made before
        // this is still refused (`ClaimStore::release`), so nothing reads around them.
        if !claims.is_empty() {
            let now = self.clock.now_ms();
            let _ = self.claims.release_all(&claims, &self.worker, now).await;
        }
    }

    /// Stores the links `writes` name, each answered in order: the new ones in one
    /// store call, the moved ones in another.
    async fn store_links<'a>(
        &self,
        writes: impl Iterator<Item = &'a LinkWrite> + Clone,
    ) -> Vec<Result<(), StoreError>> {
        let of = |create: bool| -> Vec<Link> {
            writes
                .clone()
                .filter_map(|w| match w {
                    LinkWrite::Create(l) if create => Some(l.clone()),
                    LinkWrite::Update(l) if !create => Some(l.clone()),
                    _ => None,
                })
                .collect()
        };
        let (creates, updates) = (of(true), of(false));
        let (created, updated) = tokio::join!(
            async {
                match creates.is_empty() {
                    true => Vec::new(),
                    false => self.links.create_all(&creates).await,
                }
            },
            async {
                match updates.is_empty() {
                    true => Vec::new(),
                    false => self.links.update_all(&updates).await,
                }
            }
        );
        let (mut created, mut updated) = (created.into_iter(), updated.into_iter());
        writes
            .map(|w| {
                let answer = match w {
                    LinkWrite::Kept => Some(Ok(())),
                    LinkWrite::Create(_) => created.next().map(|r| r.map(drop)),
                    LinkWrite::Update(_) => updated.next().map(|r| r.map(drop)),
                };
                answer.unwrap_or_else(|| {
                    Err(StoreError::Unavailable("no answer for the link".into()))
                })
            })
            .collect()
    }

    /// What storing a written pair's link takes; `Err`: the pair's outcome instead.
    fn link_write(
        &self,
        pair: &str,
        p: &Planned,
        now: i64,
        synced_at: i64,
    ) -> Result<LinkWrite, ItemOutcome> {
        let (Some(hubspot_id), Some(salesforce_id)) =
            (p.hubspot_id.clone(), p.salesforce_id.clone())
        else {
            return Err(ItemOutcome::Retry(
                "a side has no id after the writes".into(),
            ));
        };
        // The HubSpot record was read (or created) by this batch, which began at `now`,
        // unless it was made from the link.
        let hubspot_read_at = match &p.work.hubspot {
            Some(h) if h.from_link => p.work.link.as_ref().and_then(|l| l.hubspot_read_at),
            _ => Some(now),
        };
        Ok(match &p.work.link {
            Some(_) if !p.last_synced_moved => LinkWrite::Kept,
            Some(link) => LinkWrite::Update(Link {
                last_synced: p.next_last_synced.clone(),
                synced_at,
                hubspot_read_at,
                ..link.clone()
            }),
            // A crash test's broken code: the records are written, their link is not.
            None if self.sabotaged(super::sabotage::Sabotage::LinkWriteSkipped) => LinkWrite::Kept,
            None => LinkWrite::Create(Link {
                pair: pair.into(),
                hubspot_id,
                salesforce_object: p.sobject.clone(),
                salesforce_id,
                last_synced: p.next_last_synced.clone(),
                synced_at,
                hubspot_read_at,
                version: 0,
            }),
        })
    }

    /// The statuses a synced pair's records get: one per record its references name.
    /// None when nothing moved: a record's status stays what the last real sync left
    /// (values held back then are still on it).
    fn synced_events(
        &self,
        items: &[WorkItem],
        p: &Planned,
        now: i64,
    ) -> Vec<crate::ports::SyncEvent> {
        if p.moved_nothing() {
            return Vec::new();
        }
        // How a pair linked now came to be: a side created, or two records matched.
        let linked = p
            .work
            .link
            .is_none()
            .then_some(match (&p.work.hubspot, &p.work.salesforce) {
                (None, _) => crate::ports::Linking::CreatedInHubSpot,
                (_, None) => crate::ports::Linking::CreatedInSalesforce,
                _ => crate::ports::Linking::Matched,
            });
        // Both sides' references may be in the batch: each record gets the outcome.
        let mut answered: Vec<&WorkItem> = Vec::new();
        for &n in &p.work.items {
            let i = &items[n];
            if !answered.iter().any(|a| a.side == i.side && a.id == i.id) {
                answered.push(i);
            }
        }
        answered
            .into_iter()
            .map(|item| {
                let mut event = self.event(item, item.side, crate::ports::Outcome::Synced, now);
                event.changes = p.changes.clone();
                event.held_back = p.held_back.clone();
                event.linked = linked;
                if let Some((code, field, message)) = &p.note {
                    event.code = Some((*code).to_owned());
                    event.field = Some(field.clone());
                    event.message = Some(message.clone());
                } else if let Some(first) = p.held_back.first() {
                    // Synced, with a value held back: sync health counts it by reason.
                    event.code = Some(first.reason.clone());
                    event.field = Some(first.field.clone());
                    event.message = first.detail.clone();
                }
                event
            })
            .collect()
    }
}

/// How a written pair's link is stored.
enum LinkWrite {
    /// As it is: nothing it keeps moved.
    Kept,
    Create(Link),
    Update(Link),
}
