//! The write stage every object pair shares: a batch of planned pairs goes to
//! Salesforce in one Collections update and one upsert per sObject (on the HubSpot id,
//! so a retry after a crash finds its record), to HubSpot in one batch update, and then
//! each pair's link, claim and outcome are stored. Record-level errors stay on their
//! pair; a failed call returns only its pairs to the queue.

use serde_json::{Map, Value, json};

use super::{ItemOutcome, Pipeline, Work};
use crate::adapters::http::ErrorClass;
use crate::adapters::hubspot::{BatchOutcome, HubSpotError};
use crate::adapters::salesforce::{RecordResult, SalesforceError};
use crate::domain::merge::{Action, LastSynced, MergeRules, Snapshot, merge_fields};
use crate::ports::{FieldChange, Link, WorkItem};

/// One HubSpot batch input: its key (id, email or trace id) and properties.
pub(crate) type HubSpotInput = (String, Map<String, Value>);

/// The inputs of the planned pairs `which`, in order.
pub(crate) fn subset<T: Clone>(inputs: &[(usize, T)], which: &[usize]) -> Vec<T> {
    which
        .iter()
        .filter_map(|n| inputs.iter().find(|(m, _)| m == n).map(|(_, t)| t.clone()))
        .collect()
}

/// A pair that passed the rules and has its writes worked out.
pub(crate) struct Planned {
    pub work: Work,
    pub direction: &'static str,
    pub sobject: String,
    pub claim_key: Option<String>,
    /// The pair's dedup key (an email, a company domain or name).
    pub key: Option<String>,
    pub next_last_synced: LastSynced,
    pub last_synced_moved: bool,
    pub hubspot_writes: Map<String, Value>,
    pub salesforce_writes: Map<String, Value>,
    pub changes: Vec<FieldChange>,
    pub salesforce_id: Option<String>,
    pub hubspot_id: Option<String>,
    /// Set once the pair failed or must be retried; later steps leave it alone.
    pub outcome: Option<ItemOutcome>,
}

impl Planned {
    /// Merges one pair (`salesforce` is its Salesforce snapshot as the merge should see
    /// it) and works out its writes and the field changes to report.
    pub fn merged(
        work: Work,
        rules: &MergeRules<'_>,
        salesforce: Snapshot,
        direction: &'static str,
        sobject: String,
        claim_key: Option<String>,
        key: Option<String>,
    ) -> Planned {
        let hubspot = work
            .hubspot
            .as_ref()
            .map(super::hubspot_snapshot)
            .unwrap_or_default();
        let last = work.link.as_ref().map(|l| &l.last_synced);
        let plan = merge_fields(rules, &hubspot, &salesforce, last);
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
        Planned {
            direction,
            sobject,
            claim_key,
            key,
            next_last_synced: plan.next_last_synced(last),
            last_synced_moved: !plan.last_synced_changes.is_empty() || work.link.is_none(),
            hubspot_writes: plan.hubspot_writes.clone(),
            salesforce_writes: plan.salesforce_writes.clone(),
            changes,
            salesforce_id: work.salesforce.as_ref().map(super::Record::id),
            hubspot_id: work.hubspot.as_ref().map(|h| h.id.clone()),
            outcome: None,
            work,
        }
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
    /// upsert per sObject on `external_id` (the HubSpot id). `defaults` fills what a
    /// create needs that HubSpot may not have (a Lead's Company).
    pub(crate) async fn write_salesforce(
        &self,
        items: &[WorkItem],
        planned: &mut [Planned],
        external_id: &str,
        defaults: impl Fn(&str, &mut Map<String, Value>),
        now: i64,
    ) {
        // A record linked for the first time learns its HubSpot id (what a retry after
        // a crash, and an admin, find it by).
        for p in planned
            .iter_mut()
            .filter(|p| p.live() && p.work.link.is_none())
        {
            let known = p
                .work
                .salesforce
                .as_ref()
                .and_then(|s| s.row.get(external_id))
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty());
            if let (Some(_), Some(hs), false) = (&p.salesforce_id, &p.hubspot_id, known) {
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
        let mut sobjects: Vec<String> = planned.iter().map(|p| p.sobject.clone()).collect();
        sobjects.sort();
        sobjects.dedup();
        for sobject in sobjects {
            let creates: Vec<usize> = (0..planned.len())
                .filter(|&n| {
                    planned[n].live()
                        && planned[n].salesforce_id.is_none()
                        && planned[n].sobject == sobject
                })
                .collect();
            if creates.is_empty() {
                continue;
            }
            let rows: Vec<Map<String, Value>> = creates
                .iter()
                .map(|&n| {
                    let p = &planned[n];
                    let mut row = p.salesforce_writes.clone();
                    row.insert(external_id.into(), json!(p.hubspot_id));
                    defaults(&sobject, &mut row);
                    row
                })
                .collect();
            let results = self
                .salesforce
                .upsert(&sobject, external_id, &rows, false)
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
        results: Result<Vec<RecordResult>, SalesforceError>,
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
                    let outcome = self
                        .salesforce_failed(item, planned[n].direction, e, now)
                        .await;
                    planned[n].outcome = Some(outcome);
                }
                None => {
                    planned[n].outcome = Some(ItemOutcome::Retry("no result for a record".into()))
                }
            }
        }
    }

    /// HubSpot updates of a batch, in one batch call.
    pub(crate) async fn update_hubspot(
        &self,
        object: &str,
        items: &[WorkItem],
        planned: &mut [Planned],
        now: i64,
    ) {
        let updates: Vec<usize> = (0..planned.len())
            .filter(|&n| {
                planned[n].live()
                    && planned[n].salesforce_id.is_some()
                    && planned[n].hubspot_id.is_some()
                    && !planned[n].hubspot_writes.is_empty()
            })
            .collect();
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
                            let direction = planned[n].direction;
                            let o = self
                                .hubspot_failed(item, direction, &e.category, &e.message, now)
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

    /// Runs a HubSpot batch call; when HubSpot refuses the whole batch for what one
    /// input holds (a 400), runs each input alone, so only the bad one fails.
    pub(crate) async fn hubspot_isolating<F, Fut>(
        &self,
        which: &[usize],
        call: F,
    ) -> Vec<(Vec<usize>, Result<BatchOutcome, HubSpotError>)>
    where
        F: Fn(Vec<usize>) -> Fut,
        Fut: std::future::Future<Output = Result<BatchOutcome, HubSpotError>>,
    {
        match call(which.to_vec()).await {
            Err(e) if e.class() == ErrorClass::RecordLevel && which.len() > 1 => {
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
    pub(crate) async fn hubspot_call_failed(
        &self,
        items: &[WorkItem],
        planned: &mut [Planned],
        which: &[usize],
        error: &HubSpotError,
        now: i64,
    ) {
        for &n in which {
            planned[n].outcome = Some(match (error, which.len()) {
                (HubSpotError::Api(api), 1) if error.class() == ErrorClass::RecordLevel => {
                    let item = &items[planned[n].first_item()];
                    self.hubspot_failed(
                        item,
                        planned[n].direction,
                        &api.category,
                        &api.message,
                        now,
                    )
                    .await
                }
                _ => ItemOutcome::Retry(error.to_string()),
            });
        }
    }

    /// Links, claims and outcomes of a written batch, into `outcomes` by item index.
    pub(crate) async fn finish(
        &self,
        pair: &str,
        items: &[WorkItem],
        planned: Vec<Planned>,
        outcomes: &mut [ItemOutcome],
        now: i64,
    ) {
        for p in planned {
            let indexes = p.work.items.clone();
            let item = &items[p.first_item()];
            let outcome = self.finish_one(pair, item, p, now).await;
            for n in indexes {
                outcomes[n] = outcome.clone();
            }
        }
    }

    async fn finish_one(&self, pair: &str, item: &WorkItem, p: Planned, now: i64) -> ItemOutcome {
        let release = |key: Option<String>| async move {
            if let Some(key) = key {
                let _ = self.claims.release(&key, &self.worker).await;
            }
        };
        if let Some(outcome) = p.outcome {
            release(p.claim_key).await;
            return outcome;
        }
        let (Some(hubspot_id), Some(salesforce_id)) =
            (p.hubspot_id.clone(), p.salesforce_id.clone())
        else {
            release(p.claim_key).await;
            return ItemOutcome::Retry("a side has no id after the writes".into());
        };
        let stored = match &p.work.link {
            Some(link) if !p.last_synced_moved => Ok(link.clone()),
            Some(link) => {
                let next = Link {
                    last_synced: p.next_last_synced.clone(),
                    synced_at: now,
                    ..link.clone()
                };
                self.links.update(&next).await
            }
            None => {
                let link = Link {
                    pair: pair.into(),
                    hubspot_id,
                    salesforce_object: p.sobject.clone(),
                    salesforce_id,
                    last_synced: p.next_last_synced.clone(),
                    synced_at: now,
                    version: 0,
                };
                self.links.create(&link).await
            }
        };
        release(p.claim_key).await;
        if let Err(e) = stored {
            return ItemOutcome::Retry(format!("link not stored: {e}"));
        }
        // An echo of our own write, or a change to unmapped fields: nothing moved, and
        // the record's status stays what the last real sync left.
        let moved_nothing = p.work.link.is_some()
            && !p.last_synced_moved
            && p.hubspot_writes.is_empty()
            && p.salesforce_writes.is_empty();
        if !moved_nothing {
            self.note_changes(item, p.direction, p.changes, now).await;
        }
        ItemOutcome::Done
    }
}
