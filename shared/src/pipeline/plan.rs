//! From a matched record pair to its writes: the pair's rules, twins, the dedup key's
//! claim before any create, and the three-way merge on both CRMs' field metadata.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::flow::{same_sf_id, soql_literal};
use super::pairs::{PairRun, PlanCheck, Verdict};
use super::sabotage::Sabotage;
use super::work::{Record, Work, hubspot_snapshot};
use super::writes::Planned;
use super::{CLAIM_TTL_MS, ItemOutcome, Pipeline};
use crate::domain::Side;
use crate::domain::merge::{Action, MergeRules, merge_fields};
use crate::domain::metadata::PairMeta;
use crate::domain::value::parse_datetime_millis;
use crate::ports::{ErrorClass, FieldChange, Outcome, WorkItem};

/// An sObject's field history object and the field that points at the record, as
/// Salesforce names them.
fn history_of(sobject: &str) -> (String, &'static str) {
    match sobject.strip_suffix("__c") {
        Some(custom) => (format!("{custom}__History"), "ParentId"),
        None if sobject == "Opportunity" => ("OpportunityFieldHistory".into(), "OpportunityId"),
        None => (
            format!("{sobject}History"),
            match sobject {
                "Lead" => "LeadId",
                "Contact" => "ContactId",
                "Account" => "AccountId",
                "Case" => "CaseId",
                _ => "ParentId",
            },
        ),
    }
}

/// When the pair last synced, for the merge's edited-back check (a link's time is
/// taken after its sync's writes).
fn synced_at(w: &Work) -> Option<i64> {
    w.link.as_ref().map(|l| l.synced_at).filter(|at| *at > 0)
}

/// A pair that ends before its writes: how, and the items it answers.
pub(crate) type Ended = (ItemOutcome, Vec<usize>);

impl Pipeline {
    /// The HubSpot records of pairs whose merge turns on when each field changed (both
    /// sides changed it, or a first sync of a `two_way` field): HubSpot's property
    /// history tells, so those, and only those, are read again with it. Reading history
    /// for every record would halve the records per call (50, not 100).
    pub(crate) async fn refine_with_history(
        &self,
        run: &PairRun,
        works: &mut [Work],
    ) -> Result<(), String> {
        let spec = &run.spec;
        let mut metas: HashMap<String, Arc<PairMeta>> = HashMap::new();
        let mut ids = Vec::new();
        let mut timed_salesforce: HashMap<String, Vec<String>> = HashMap::new();
        for w in works.iter() {
            let (Some(h), Some(s)) = (&w.hubspot, &w.salesforce) else {
                continue;
            };
            if !metas.contains_key(&s.object) {
                let meta = self.pair_meta(&spec.hubspot_object, &s.object).await;
                metas.insert(s.object.clone(), meta);
            }
            let Some(meta) = metas.get(&s.object) else {
                continue;
            };
            let Ok(mut rules) =
                MergeRules::new(&self.config, &spec.name, &s.object, meta, &self.owners)
            else {
                continue;
            };
            rules.resumed = resumed(spec, w);
            rules.synced_at = synced_at(w);
            let last = w.link.as_ref().map(|l| &l.last_synced);
            let salesforce = run.hooks.salesforce_snapshot(s);
            let plan = merge_fields(&rules, &hubspot_snapshot(h), &salesforce, last);
            let timed = plan.fields.iter().any(|f| f.timed);
            if timed {
                // Read with its history already (by a search): the Salesforce side's
                // field times are still needed.
                if h.history.is_empty() {
                    ids.push(h.id.clone());
                }
                timed_salesforce
                    .entry(s.object.clone())
                    .or_default()
                    .push(s.id());
                if let Some(from) = &w.converted_from {
                    timed_salesforce
                        .entry(from.object.clone())
                        .or_default()
                        .push(from.id());
                }
            }
        }
        if timed_salesforce.is_empty() {
            return Ok(());
        }
        let props = self.pair_properties(run);
        let refs: Vec<&str> = props.iter().map(String::as_str).collect();
        let history: Vec<&str> = self
            .config
            .pair(&spec.name)
            .map(|p| p.fields().iter().map(|f| f.hubspot.as_str()).collect())
            .unwrap_or_default();
        // Each side's history at once: neither read needs the other's answer.
        let hubspot_history = async {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            self.hubspot
                .batch_read(&spec.hubspot_object, &ids, &refs, &history, None)
                .await
                .map_err(|e| e.to_string())
        };
        let salesforce_times = async {
            self.find_converted_from(run, works, &mut timed_salesforce)
                .await?;
            self.salesforce_field_times(run, works, &timed_salesforce)
                .await
        };
        let (fresh, ()) = tokio::try_join!(hubspot_history, salesforce_times)?;
        for w in works.iter_mut() {
            let Some(h) = &w.hubspot else { continue };
            if let Some(r) = fresh.iter().find(|r| r.id == h.id) {
                w.hubspot = Some(r.clone());
            }
        }
        Ok(())
    }

    /// The Leads that timed Contacts were converted from, where a batch before this one
    /// followed the conversion: a Contact's inherited values date from its Lead (the
    /// Lead's field history and creation), not from the conversion, which would make
    /// them newer than an edit made in HubSpot before it. One query per sObject.
    async fn find_converted_from(
        &self,
        run: &PairRun,
        works: &mut [Work],
        timed: &mut HashMap<String, Vec<String>>,
    ) -> Result<(), String> {
        let mut found: Vec<Record> = Vec::new();
        for (sobject, ids) in timed.iter() {
            let Some((from, field)) = run.hooks.converted_from_field(sobject) else {
                continue;
            };
            let fields = self.pair_fields(run, from).join(", ");
            let rows = self
                .query_in(ids, |list| {
                    format!("SELECT {fields} FROM {from} WHERE {field} IN ({list})")
                })
                .await
                .map_err(|e| format!("Salesforce converted records unreadable: {e}"))?;
            found.extend(
                rows.iter()
                    .filter_map(Value::as_object)
                    .map(|r| Record::new(from, r.clone())),
            );
        }
        for w in works.iter_mut().filter(|w| w.converted_from.is_none()) {
            let Some(s) = &w.salesforce else { continue };
            let Some(from) = found.iter().find(|r| {
                run.hooks
                    .converted_to(r)
                    .is_some_and(|(o, id)| o == s.object && same_sf_id(&id, &s.id()))
            }) else {
                continue;
            };
            timed
                .entry(from.object.clone())
                .or_default()
                .push(from.id());
            w.converted_from = Some(from.clone());
        }
        Ok(())
    }

    /// When each mapped field of these Salesforce records last changed, from the org's
    /// field history (`LeadHistory`, `OpportunityFieldHistory`, `Machine__History`...):
    /// without it a record's last modification stands for all its fields, and a later
    /// edit of one field would win the conflicts of every other. One query per sObject;
    /// an org that does not track a field's history keeps the record's time for it. A
    /// call that fails for now (a 5xx, a rate limit) returns the batch to the queue: the
    /// record's time standing in would pick the wrong winner.
    async fn salesforce_field_times(
        &self,
        run: &PairRun,
        works: &mut [Work],
        ids: &HashMap<String, Vec<String>>,
    ) -> Result<(), String> {
        let Some(pair) = self.config.pair(&run.spec.name) else {
            return Ok(());
        };
        let mut tracked: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (sobject, records) in ids {
            let (history, parent) = history_of(sobject);
            let fields: Vec<String> = pair
                .fields()
                .iter()
                .filter_map(|f| f.salesforce.on(sobject))
                .map(soql_literal)
                .collect();
            if fields.is_empty() || records.is_empty() {
                continue;
            }
            let fields = fields.join(", ");
            let soql = |list: &str| {
                format!(
                    "SELECT {parent}, Field, CreatedDate FROM {history} \
                     WHERE {parent} IN ({list}) AND Field IN ({fields})"
                )
            };
            let rows = match self.query_in(records, soql).await {
                Ok(rows) => rows,
                // No history object for it (INVALID_TYPE): the org does not track it.
                Err(e) if e.class == ErrorClass::RecordLevel => {
                    tracing::info!(message = "no Salesforce field history; record times stand for fields", object = %sobject, error = %e);
                    continue;
                }
                Err(e) => return Err(format!("Salesforce field history unreadable: {e}")),
            };
            if let Some(fields) = self.history_tracked(sobject).await {
                tracked.insert(sobject.clone(), fields);
            }
            for row in rows.iter().filter_map(Value::as_object) {
                let text = |k: &str| row.get(k).and_then(Value::as_str);
                let (Some(id), Some(field), Some(at)) = (
                    text(parent),
                    text("Field"),
                    text("CreatedDate").and_then(parse_datetime_millis),
                ) else {
                    continue;
                };
                for w in works.iter_mut() {
                    // The record itself, or the one it was converted from (whose field
                    // values it inherited, under the same mapping's field names).
                    let own = w
                        .salesforce
                        .as_ref()
                        .is_some_and(|s| s.object == *sobject && same_sf_id(&s.id(), id));
                    let from = w
                        .converted_from
                        .as_ref()
                        .is_some_and(|c| c.object == *sobject && same_sf_id(&c.id(), id));
                    let Some(s) = w.salesforce.as_mut().filter(|_| own || from) else {
                        continue;
                    };
                    let name = if own {
                        Some(field.to_owned())
                    } else {
                        pair.fields()
                            .iter()
                            .find(|f| f.salesforce.on(sobject) == Some(field))
                            .and_then(|f| f.salesforce.on(&s.object))
                            .map(str::to_owned)
                    };
                    if own && s.modified_at > 0 && at > s.modified_at {
                        // A change after the version read (another worker's write in
                        // between): its time would stand for a value we do not hold.
                        s.changed_since_read = true;
                        continue;
                    }
                    if let Some(name) = name {
                        let latest = s.field_changed_at.entry(name).or_insert(at);
                        *latest = (*latest).max(at);
                    }
                }
            }
        }
        // A tracked field with no row (its own, or its converted Lead's) kept the value
        // it was created with: its time is the record's creation, not its last
        // modification (another field's later edit would otherwise make this field's
        // old value win; a HubSpot edit made after a Lead's restore was lost so,
        // history 45 of the convergence harness).
        for w in works.iter_mut() {
            let Some(s) = w.salesforce.as_mut() else {
                continue;
            };
            // A converted Lead's Contact holds the Lead's values: they date from the
            // Lead's creation, not the conversion.
            let created = |r: &super::work::Record| {
                r.row
                    .get("CreatedDate")
                    .and_then(Value::as_str)
                    .and_then(parse_datetime_millis)
            };
            let origin = w.converted_from.as_ref().and_then(created);
            let (Some(fields), Some(created)) = (tracked.get(&s.object), origin.or(created(s)))
            else {
                continue;
            };
            for field in pair
                .fields()
                .iter()
                .filter_map(|f| f.salesforce.on(&s.object))
            {
                if fields.contains(field) {
                    s.field_changed_at
                        .entry(field.to_owned())
                        .or_insert(created);
                }
            }
        }
        Ok(())
    }

    /// Claims the dedup keys of a batch's planned pairs, in one store call, before any
    /// of them creates or links: a pair whose key another worker holds is retried
    /// (it then matches what that worker made) and releases nothing.
    pub(crate) async fn claim_planned(&self, planned: &mut [Planned], now: i64) {
        if self.sabotaged(Sabotage::ClaimsOff) {
            return;
        }
        let claiming: Vec<usize> = (0..planned.len())
            .filter(|&n| planned[n].claim_key.is_some())
            .collect();
        if claiming.is_empty() {
            return;
        }
        let keys: Vec<String> = claiming
            .iter()
            .filter_map(|&n| planned[n].claim_key.clone())
            .collect();
        match self
            .claims
            .claim_all(&keys, &self.worker, CLAIM_TTL_MS, now)
            .await
        {
            Ok(taken) => {
                for (&n, taken) in claiming.iter().zip(taken) {
                    if !taken && let Some(k) = planned[n].claim_key.take() {
                        let why = format!("another worker is creating or linking {k}");
                        planned[n].outcome = Some(ItemOutcome::Retry(why));
                    }
                }
            }
            // Keys taken before the failure are released with the batch's others.
            Err(e) => {
                for &n in &claiming {
                    planned[n].outcome = Some(ItemOutcome::Retry(e.to_string()));
                }
            }
        }
    }

    /// The rules and the merge for one pair. `Err` ends the pair here (skipped, or a
    /// key another record of the batch claims), with the items it answers.
    pub(crate) async fn plan(
        &self,
        run: &PairRun,
        item: &WorkItem,
        mut w: Work,
        in_batch: &mut HashSet<String>,
        now: i64,
    ) -> Result<Planned, Ended> {
        let spec = &run.spec;
        let from = w.origin.unwrap_or(Side::HubSpot);
        let skip = |code: &str, message: Option<String>| {
            let code = code.to_owned();
            async move {
                self.note(item, from, Outcome::Skipped, Some(&code), message, now)
                    .await;
            }
        };
        // The records were read before their link: a link another worker stored since
        // this batch began may hold values newer than the records as read, and merging
        // the two would take our stale read for a new edit and write it back over the
        // newer one. Read again instead (found by the convergence harness, 4 workers).
        // A link this batch moved (a conversion followed, a merge's takeover) is no
        // exception (history 704: a followed conversion merged a stale HubSpot read
        // with the link another worker had just stored, and wrote it over a newer edit).
        // Nothing was written for it: a change it carries is looked at again as it came
        // (mostly our own write, whose link just landed: then an echo, not read again).
        if w.link.as_ref().is_some_and(|l| l.synced_at >= now) {
            let why = "its link changed while the records were read: looked at again";
            let outcome = if item.seen.is_some() {
                ItemOutcome::Later(why.into())
            } else {
                ItemOutcome::Retry(why.into())
            };
            return Err((outcome, w.items));
        }
        // Likewise a Salesforce record written between its read and its field history's
        // query: the history's newest time belongs to a value this merge does not hold,
        // and would make that stale value win (found by the harness, 4 workers under load).
        if w.salesforce.as_ref().is_some_and(|s| s.changed_since_read) {
            let why = "it changed while its field history was read: read again";
            return Err((ItemOutcome::Retry(why.into()), w.items));
        }
        if let Verdict::Skip { code, message } = run.admit(&w) {
            skip(code, message).await;
            return Err((ItemOutcome::Done, w.items));
        }
        if let Some(why) = w.superseded.take() {
            skip(super::matching::CONVERTED_INTO_SYNCED, Some(why)).await;
            return Err((ItemOutcome::Done, w.items));
        }
        if let Some(survivor) = &w.merged_into {
            let message = super::matching::merged_message(
                &spec.hubspot_object,
                &survivor.hubspot_id,
                &survivor.salesforce_object,
                &survivor.salesforce_id,
            );
            skip(super::matching::MERGED_IN_HUBSPOT, Some(message)).await;
            return Err((ItemOutcome::Done, w.items));
        }
        if let Some(twin) = w.twin_of.clone() {
            let takes_over = w
                .salesforce
                .as_ref()
                .is_some_and(|s| run.hooks.takes_over(s, &twin));
            if !takes_over {
                let message = format!(
                    "another Salesforce record with the same {} ({} {}) is synced with HubSpot {} {}",
                    spec.match_key
                        .as_ref()
                        .map_or("key", |k| k.salesforce.as_str()),
                    twin.salesforce_object,
                    twin.salesforce_id,
                    spec.hubspot_object,
                    twin.hubspot_id
                );
                skip("duplicate_in_salesforce", Some(message)).await;
                return Err((ItemOutcome::Done, w.items));
            }
            let Some(s) = &w.salesforce else {
                return Err((ItemOutcome::Done, w.items));
            };
            match self
                .links
                .relink(&twin, &twin.hubspot_id, &s.object, &s.id())
                .await
            {
                Ok(l) => w.link = Some(l),
                Err(e) => return Err((ItemOutcome::Retry(e.to_string()), w.items)),
            }
        }
        let key = spec.match_key.as_ref().and_then(|k| {
            w.hubspot
                .as_ref()
                .and_then(|h| k.of_hubspot(&h.properties))
                .or_else(|| w.salesforce.as_ref().and_then(|s| k.of_salesforce(&s.row)))
        });
        if let (None, None, Some(k)) = (&w.link, &key, &spec.match_key) {
            skip(k.kind.missing_code(), Some(k.missing_message(&spec.name))).await;
            return Err((ItemOutcome::Done, w.items));
        }
        let creating = w.hubspot.is_none() || w.salesforce.is_none();
        // A record that still names its partner, which is gone (deleted, in a recycle
        // bin; linked or not): making a new partner would leave a duplicate when the
        // old one is restored, so it waits, saying why. A restore finds the link again.
        if creating && let Some((code, message)) = partner_gone(spec, &w) {
            skip(code, Some(message)).await;
            return Err((ItemOutcome::Done, w.items));
        }
        // The key is claimed for a first link too, not only a create: two workers linking
        // one pair at once (its records' pushes, duplicated) would both write the ids.
        let first_link = creating || w.link.is_none();
        let claim_key = key
            .as_ref()
            .filter(|_| first_link)
            .map(|k| spec.claim_key(k));
        // Claimed with the batch's other keys in one call once every pair is planned
        // (`Pipeline::claim_planned`).
        if let Some(k) = &claim_key
            && !in_batch.insert(k.clone())
        {
            // The retry matches it against the record the other one makes.
            let why = format!("another record of this batch is creating or linking {k}");
            return Err((ItemOutcome::Retry(why), w.items));
        }
        let sobject = match &w.salesforce {
            Some(s) => s.object.clone(),
            None => run.hooks.create_as(spec, &w),
        };
        let meta = self.pair_meta(&spec.hubspot_object, &sobject).await;
        let rules = match MergeRules::new(&self.config, &spec.name, &sobject, &meta, &self.owners) {
            // A field gone from a CRM is neither read nor merged: its blank is no change.
            Ok(mut r) => {
                r.fields.retain(|f| {
                    !self.is_broken(Side::HubSpot, &spec.hubspot_object, f.hubspot)
                        && !f
                            .salesforce
                            .is_some_and(|sf| self.is_broken(Side::Salesforce, &sobject, sf))
                });
                r.resumed = resumed(spec, &w);
                r.synced_at = synced_at(&w);
                r
            }
            Err(e) => {
                return Err((ItemOutcome::Retry(e.to_string()), w.items));
            }
        };
        let salesforce = w
            .salesforce
            .as_ref()
            .map(|s| run.hooks.salesforce_snapshot(s))
            .unwrap_or_default();
        let hubspot = w.hubspot.as_ref().map(hubspot_snapshot).unwrap_or_default();
        let last = w.link.as_ref().map(|l| &l.last_synced);
        let plan = merge_fields(&rules, &hubspot, &salesforce, last);
        let note = match run.hooks.check_plan(&plan, creating) {
            PlanCheck::Go => None,
            PlanCheck::Note {
                code,
                field,
                message,
            } => Some((code, field, message)),
            PlanCheck::Skip {
                code,
                field,
                message,
            } => {
                let mut event = self.event(item, from, Outcome::Skipped, now);
                event.code = Some(code.to_owned());
                event.field = Some(field);
                event.message = Some(message);
                self.record(event).await;
                return Err((ItemOutcome::Done, w.items));
            }
        };
        let mut planned = Planned::from_plan(w, &plan, &hubspot, &salesforce, from, sobject);
        if self.sabotaged(Sabotage::EchoSuppressionOff) && planned.work.link.is_some() {
            for f in plan.fields.iter().filter(|f| f.action == Action::None) {
                if let (Some(field), Some(v)) = (f.salesforce, hubspot.values.get(f.hubspot))
                    && v.as_str().is_some_and(|t| !t.is_empty())
                {
                    planned
                        .salesforce_writes
                        .insert(field.to_owned(), v.clone());
                }
            }
        }
        let derived = run
            .hooks
            .derived_hubspot_writes(&planned.work, &planned.hubspot_writes);
        for (field, value) in derived {
            planned.changes.push(FieldChange {
                old: hubspot.values.get(&field).cloned().unwrap_or(Value::Null),
                new: value.clone(),
                field: field.clone(),
            });
            planned.hubspot_writes.insert(field.clone(), value.clone());
            planned.derived.insert(field, value);
        }
        planned.claim_key = claim_key;
        planned.key = key;
        planned.note = note;
        Ok(planned)
    }
}

/// The partner an unlinked record names but that was not found: `(code, message)`.
/// Whether one of an unlinked pair's records names the other (holds its id, as the sync
/// wrote it): they were synced before and lost their link to a deletion, and one is back.
fn resumed(spec: &crate::domain::pair::PairSpec, w: &Work) -> bool {
    let (None, Some(h), Some(s)) = (&w.link, &w.hubspot, &w.salesforce) else {
        return false;
    };
    let names_hubspot = s
        .row
        .get(&spec.hubspot_id_field)
        .and_then(Value::as_str)
        .is_some_and(|id| id == h.id);
    let names = |r: &super::work::Record| {
        spec.salesforce_id_property(&r.object)
            .and_then(|p| h.properties.get(p))
            .and_then(Value::as_str)
            .is_some_and(|id| same_sf_id(id, &r.id()))
    };
    // Or names the Lead the Salesforce record was converted from.
    names_hubspot || names(s) || w.converted_from.as_ref().is_some_and(names)
}

fn partner_gone(spec: &crate::domain::pair::PairSpec, w: &Work) -> Option<(&'static str, String)> {
    match (&w.hubspot, &w.salesforce) {
        (Some(h), None) => spec.sobjects.iter().find_map(|sobject| {
            let property = spec.salesforce_id_property(sobject)?;
            let id = h.properties.get(property).and_then(Value::as_str)?;
            (!id.is_empty()).then(|| {
                (
                    "partner_deleted_in_salesforce",
                    format!(
                        "it names Salesforce {sobject} {id} ({property}), which is deleted: restore it from the recycle bin, or clear {property} to create a new one"
                    ),
                )
            })
        }),
        (None, Some(s)) => {
            let id = s
                .row
                .get(&spec.hubspot_id_field)
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())?;
            Some((
                "partner_deleted_in_hubspot",
                format!(
                    "it names HubSpot {} {id} ({}), which is deleted: restore it in HubSpot, or clear {} to create a new one",
                    spec.hubspot_object, spec.hubspot_id_field, spec.hubspot_id_field
                ),
            ))
        }
        _ => None,
    }
}
