//! No write over a newer edit. Between a batch's reads and its writes a person may edit
//! a field the merge is about to overwrite; writing anyway would lose that edit (both
//! sides would end on the older value). So just before each side's updates leave, the
//! fields about to be written are read again, one call per side and batch, and a pair
//! whose target changed since the merge read it goes back to the queue to be merged
//! again with what is there now, instead of being written. (A HubSpot record the merge
//! took as its link last synced it, `pushed.rs`, is read here only: this read finds a
//! change since that sync.)

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use super::flow::same_sf_id;
use super::pushed::taken_as_synced;
use super::soql::in_lists;
use super::writes::Planned;
use super::{ItemOutcome, Pipeline};
use crate::domain::pair::PairSpec;
use crate::domain::value::parse_datetime_millis;
use crate::ports::{HsRecord, Link};

/// Why a pair was held back.
const CHANGED: &str = "changed since it was read: merged again instead of written over";

/// HubSpot records read for the check while the batch's Salesforce writes were in
/// flight (the check then costs no call of its own), with the properties read.
pub(crate) struct EarlyCheck {
    props: Vec<String>,
    records: Vec<HsRecord>,
}

/// Blank in either CRM's forms (`null`, absent, `""`) compares equal.
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let blank = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    };
    (blank(a) && blank(b)) || a == b
}

/// Whether any field about to be written differs now from what the merge read.
fn changed<'a>(
    fields: impl IntoIterator<Item = &'a String>,
    read: &Map<String, Value>,
    now: &Map<String, Value>,
) -> bool {
    fields.into_iter().any(|f| !same(read.get(f), now.get(f)))
}

/// The HubSpot properties of `writes` a person's edit may be lost under: not the sync's
/// own identity properties (a record learning its partner's id overwrites nobody's
/// edit), which the batch adds after the check was planned and the check never reads.
fn checked<'a>(
    spec: &'a PairSpec,
    writes: &'a Map<String, Value>,
) -> impl Iterator<Item = &'a String> {
    writes.keys().filter(|k| !spec.is_identity(k))
}

/// Whether HubSpot's record (`now`) was modified after its link's last sync.
fn modified_since(spec: &PairSpec, now: &Map<String, Value>, link: Option<&Link>) -> bool {
    let modified = now
        .get(&spec.hubspot_modified)
        .and_then(Value::as_str)
        .and_then(parse_datetime_millis);
    match (modified, link) {
        (Some(at), Some(link)) => at > link.synced_at,
        _ => true,
    }
}

impl Pipeline {
    /// Holds back the Salesforce updates `which` whose record changed since it was read.
    pub(crate) async fn hold_changed_salesforce(&self, planned: &mut [Planned], which: &[usize]) {
        let mut by_object: HashMap<String, (BTreeSet<String>, Vec<usize>)> = HashMap::new();
        for &n in which {
            let p = &planned[n];
            if p.work.salesforce.is_none() {
                continue;
            }
            let entry = by_object.entry(p.sobject.clone()).or_default();
            entry.0.extend(p.salesforce_writes.keys().cloned());
            entry.1.push(n);
        }
        if by_object.is_empty() {
            return;
        }
        let mut queries: Vec<(String, String)> = Vec::new();
        for (sobject, (fields, members)) in &by_object {
            let ids: Vec<&str> = members
                .iter()
                .filter_map(|&n| planned[n].salesforce_id.as_deref())
                .collect();
            let fields: Vec<&str> = fields
                .iter()
                .map(String::as_str)
                .filter(|f| *f != "Id")
                .collect();
            for list in in_lists(&ids) {
                let soql = format!(
                    "SELECT Id, {} FROM {sobject} WHERE Id IN ({list})",
                    fields.join(", ")
                );
                queries.push((sobject.clone(), soql));
            }
        }
        let answers = self.query_keyed(queries).await;
        let answers = match answers {
            Ok(a) => a,
            Err(e) => {
                // Unchecked, nothing is written: the pairs are merged again later.
                for (_, members) in by_object.values() {
                    for &n in members {
                        planned[n].outcome = Some(ItemOutcome::Retry(e.to_string()));
                    }
                }
                return;
            }
        };
        for (sobject, (_, members)) in &by_object {
            let rows = answers.get(sobject).map(Vec::as_slice).unwrap_or_default();
            for &n in members {
                let p = &planned[n];
                let id = p.salesforce_id.clone().unwrap_or_default();
                let now = rows.iter().filter_map(Value::as_object).find(|r| {
                    r.get("Id")
                        .and_then(Value::as_str)
                        .is_some_and(|x| same_sf_id(x, &id))
                });
                let read = p.work.salesforce.as_ref().map(|s| &s.row);
                let stale = match (read, now) {
                    (Some(read), Some(now)) => changed(p.salesforce_writes.keys(), read, now),
                    // Gone since: the retry finds it deleted and says so.
                    _ => true,
                };
                if stale {
                    tracing::info!(message = "a Salesforce record changed since it was read", record = %id);
                    planned[n].outcome = Some(ItemOutcome::Retry(CHANGED.into()));
                }
            }
        }
    }

    /// The HubSpot updates a batch's merge planned (ids, and the properties they
    /// write), to be read for their check while the Salesforce writes are in flight.
    pub(crate) fn hubspot_check_plan(
        spec: &PairSpec,
        planned: &[Planned],
    ) -> Option<(Vec<String>, Vec<String>)> {
        let members = planned.iter().filter(|p| {
            p.live()
                && p.salesforce_id.is_some()
                && p.work.hubspot.is_some()
                && p.hubspot_writes_checked(spec)
        });
        let mut ids = Vec::new();
        // The modification time, for records taken as last synced.
        let mut props = BTreeSet::from([spec.hubspot_modified.clone()]);
        for p in members {
            ids.extend(p.hubspot_id.clone());
            props.extend(checked(spec, &p.hubspot_writes).cloned());
        }
        (!ids.is_empty()).then(|| (ids, props.into_iter().collect()))
    }

    /// Reads what `hubspot_check_plan` names; `None` when there is nothing to read, or
    /// the read failed (the check then reads for itself).
    pub(crate) async fn read_hubspot_check(
        &self,
        object: &str,
        plan: Option<(Vec<String>, Vec<String>)>,
    ) -> Option<EarlyCheck> {
        let (ids, props) = plan?;
        let refs: Vec<&str> = props.iter().map(String::as_str).collect();
        let records = self
            .hubspot
            .batch_read(object, &ids, &refs, &[], None)
            .await
            .ok()?;
        Some(EarlyCheck { props, records })
    }

    /// Holds back the HubSpot updates `which` whose record changed since it was read.
    /// Records `early` read with every property they write need no read of their own.
    pub(crate) async fn hold_changed_hubspot(
        &self,
        spec: &PairSpec,
        planned: &mut [Planned],
        which: &[usize],
        early: Option<&EarlyCheck>,
    ) {
        let members: Vec<usize> = which
            .iter()
            .copied()
            .filter(|&n| planned[n].work.hubspot.is_some())
            .collect();
        if members.is_empty() {
            return;
        }
        let covered = |n: usize| -> Option<&HsRecord> {
            let early = early?;
            let p = &planned[n];
            let id = p.hubspot_id.as_deref()?;
            checked(spec, &p.hubspot_writes)
                .all(|k| early.props.contains(k))
                .then(|| early.records.iter().find(|r| r.id == id))
                .flatten()
        };
        let mut fresh: Vec<HsRecord> = Vec::new();
        let mut uncovered: Vec<usize> = Vec::new();
        for &n in &members {
            match covered(n) {
                Some(r) => fresh.push(r.clone()),
                None => uncovered.push(n),
            }
        }
        if !uncovered.is_empty() {
            let ids: Vec<String> = uncovered
                .iter()
                .filter_map(|&n| planned[n].hubspot_id.clone())
                .collect();
            let mut props: BTreeSet<&str> = uncovered
                .iter()
                .flat_map(|&n| checked(spec, &planned[n].hubspot_writes).map(String::as_str))
                .collect();
            props.insert(&spec.hubspot_modified);
            let props: Vec<&str> = props.into_iter().collect();
            match self
                .hubspot
                .batch_read(&spec.hubspot_object, &ids, &props, &[], None)
                .await
            {
                Ok(r) => fresh.extend(r),
                Err(e) => {
                    for &n in &uncovered {
                        planned[n].outcome = Some(ItemOutcome::Retry(e.to_string()));
                    }
                    return;
                }
            }
        }
        for &n in &members {
            let p = &planned[n];
            let id = p.hubspot_id.clone().unwrap_or_default();
            let now = fresh.iter().find(|r| r.id == id).map(|r| &r.properties);
            let read = p.work.hubspot.as_ref();
            let stale = match (read, now) {
                (Some(read), Some(now)) => {
                    changed(checked(spec, &p.hubspot_writes), &read.properties, now)
                        || (taken_as_synced(spec, read)
                            && modified_since(spec, now, p.work.link.as_ref()))
                }
                _ => true,
            };
            if stale {
                tracing::info!(message = "a HubSpot record changed since it was read", record = %id);
                planned[n].outcome = Some(ItemOutcome::Retry(CHANGED.into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blanks_compare_equal_and_only_written_fields_count() {
        let map = |v: Value| v.as_object().cloned().unwrap_or_default();
        let writes = map(json!({"FirstName": "Ann"}));
        let read = map(json!({"FirstName": null, "Phone": "1"}));
        assert!(!changed(
            writes.keys(),
            &read,
            &map(json!({"FirstName": "", "Phone": "2"}))
        ));
        assert!(changed(
            writes.keys(),
            &read,
            &map(json!({"FirstName": "Sally"}))
        ));
    }
}
