//! The units of a sync batch: a Salesforce record as read, the HubSpot record's
//! snapshot, and a `Work`: one record pair and the queued items it answers.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::domain::Side;
use crate::domain::lifecycle::OpportunityState;
use crate::domain::merge::Snapshot;
use crate::domain::value::parse_datetime_millis;
use crate::ports::{HsRecord, Link};

/// The record a HubSpot merge made and the Salesforce record it syncs with.
#[derive(Debug, Clone)]
pub(crate) struct MergedInto {
    pub hubspot_id: String,
    pub salesforce_object: String,
    pub salesforce_id: String,
}

impl MergedInto {
    pub fn of(link: &Link) -> Self {
        MergedInto {
            hubspot_id: link.hubspot_id.clone(),
            salesforce_object: link.salesforce_object.clone(),
            salesforce_id: link.salesforce_id.clone(),
        }
    }
}

/// One Salesforce record as read: its sObject and fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct Record {
    pub object: String,
    pub row: Map<String, Value>,
    pub modified_at: i64,
    /// When each field last changed, where the org's field history says.
    pub field_changed_at: std::collections::HashMap<String, i64>,
    /// Its field history shows a change after the modification time it was read with:
    /// another writer got in between the read and the history query, so the values as
    /// read and the times as queried belong to different versions.
    pub changed_since_read: bool,
    /// A Contact's opportunities through its contact roles, where lifecycle stages
    /// follow them (read per batch, `lifecycle.rs`).
    pub opportunities: Option<Vec<OpportunityState>>,
}

impl Record {
    pub fn new(object: &str, row: Map<String, Value>) -> Self {
        let modified_at = row
            .get("LastModifiedDate")
            .and_then(Value::as_str)
            .and_then(parse_datetime_millis)
            .unwrap_or(0);
        Record {
            object: object.to_owned(),
            row,
            modified_at,
            field_changed_at: Default::default(),
            changed_since_read: false,
            opportunities: None,
        }
    }

    pub fn id(&self) -> String {
        self.row
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::new(self.row.clone(), Some(self.modified_at));
        s.field_modified_at = self
            .field_changed_at
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        s
    }
}

pub(crate) fn hubspot_snapshot(r: &HsRecord) -> Snapshot {
    let modified = ["lastmodifieddate", "hs_lastmodifieddate"]
        .iter()
        .find_map(|p| r.properties.get(*p).and_then(Value::as_str))
        .and_then(parse_datetime_millis);
    let mut s = Snapshot::new(r.properties.clone(), modified);
    s.field_modified_at = r.changed_at().into_iter().collect();
    s
}

/// The ids merged into a HubSpot record (`hs_merged_object_ids`).
pub(crate) fn merged_ids(h: &HsRecord) -> impl Iterator<Item = String> + '_ {
    h.properties
        .get("hs_merged_object_ids")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(';')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Whether a HubSpot record read for `id` answers for it: it is that record, or the
/// survivor a merge made of it.
pub(crate) fn answers_for(h: &HsRecord, id: &str) -> bool {
    h.id == id || merged_ids(h).any(|m| m == id)
}

/// What a batch's first read brought beyond the queued records: the queued records'
/// links, and their linked records on the other side, read in the same round trip (a
/// read per side, at once), so finding each pair's other side waits for no call.
#[derive(Debug, Default)]
pub(crate) struct Prefetch {
    /// Each queued record's link, by side and id (`None`: looked up, not linked).
    pub links: Vec<(Side, String, Option<Link>)>,
    pub hubspot: Vec<HsRecord>,
    pub salesforce: Vec<Record>,
    /// Linked HubSpot records' associations the pair's lookups and junctions follow,
    /// read with the records: the lookups run after the writes and would otherwise
    /// wait another round trip for them.
    pub associations: Vec<Associated>,
}

/// The associations of `asked` (HubSpot ids) to `to` records, as read.
#[derive(Debug, Default)]
pub(crate) struct Associated {
    pub to: String,
    pub asked: Vec<String>,
    pub found: Vec<(String, Vec<String>)>,
}

impl Prefetch {
    /// The associations to `to` of those of `ids` read with the records (or listed
    /// with them), and the ids whose associations were not.
    pub fn associations(
        &self,
        to: &str,
        ids: &[String],
    ) -> (Vec<(String, Vec<String>)>, Vec<String>) {
        let reads: Vec<&Associated> = self.associations.iter().filter(|a| a.to == to).collect();
        let asked: HashSet<&str> = reads
            .iter()
            .flat_map(|a| a.asked.iter().map(String::as_str))
            .collect();
        let found: HashMap<&str, &Vec<String>> = reads
            .iter()
            .flat_map(|a| a.found.iter().map(|(id, to)| (id.as_str(), to)))
            .collect();
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for id in ids {
            match (asked.contains(id.as_str()), found.get(id.as_str())) {
                (true, Some(to)) => known.push((id.clone(), (*to).clone())),
                (true, None) => {}
                (false, _) => unknown.push(id.clone()),
            }
        }
        (known, unknown)
    }

    /// The link looked up for this record, if it was.
    pub fn link(&self, side: Side, id: &str) -> Option<Option<Link>> {
        self.links
            .iter()
            .find(|(s, i, _)| {
                *s == side
                    && match side {
                        Side::HubSpot => i == id,
                        Side::Salesforce => crate::domain::same_salesforce_id(i, id),
                    }
            })
            .map(|(_, _, l)| l.clone())
    }

    /// The HubSpot record read for `id` (itself, or the survivor it was merged into).
    pub fn hubspot(&self, id: &str) -> Option<&HsRecord> {
        self.hubspot.iter().find(|h| answers_for(h, id))
    }

    pub fn salesforce(&self, sobject: &str, id: &str) -> Option<&Record> {
        self.salesforce
            .iter()
            .find(|r| r.object == sobject && crate::domain::same_salesforce_id(&r.id(), id))
    }
}

/// One record pair being synced, and the queued items it answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Work {
    pub hubspot: Option<HsRecord>,
    pub salesforce: Option<Record>,
    pub link: Option<Link>,
    /// The link of the HubSpot record when it belongs to another Salesforce record
    /// (a twin with the same email).
    pub twin_of: Option<Link>,
    pub items: Vec<usize>,
    /// The HubSpot record this pair was linked with was merged into one that is
    /// linked with another Salesforce record.
    pub merged_into: Option<MergedInto>,
    /// Whether the HubSpot record is in the inclusion list, when a list rule applies.
    pub in_list: Option<bool>,
    /// Which side's change brought it here.
    pub origin: Option<Side>,
    /// The record the Salesforce side was converted from (a Lead, for its Contact): its
    /// field history tells when the values the Contact inherited changed.
    pub converted_from: Option<Record>,
    /// Why this pair ends in this batch though its records are fine: the record its
    /// Salesforce side was converted into already syncs with another HubSpot record.
    pub superseded: Option<String>,
    /// Every reference that brought it carries what its source saw (none is a retry).
    pub news: bool,
    /// Its HubSpot record was not looked for by the pair's unique key: it is created
    /// with a create that fails if a record has the key (`matching.rs`).
    pub key_unread: bool,
}

/// Both sides of one pair may be in a batch (a poll reads both feeds, or a webhook
/// and an outbound message cross): one work per pair, by link or by the records
/// matched on either side.
pub(crate) fn merge_same_pairs(works: &mut Vec<Work>, rank: &dyn Fn(&Record) -> (bool, i64)) {
    // A record whose HubSpot partner was merged into another holds the survivor only
    // to say so: it is not the survivor's pair, nor its twin (histories 1683 and 5386:
    // the survivor, unlinked while its own partner was deleted, took the merged-away
    // contact's Lead for its pair, then for a twin).
    fn apart(w: &Work) -> bool {
        w.merged_into.is_some() || w.superseded.is_some()
    }
    fn link(w: &Work) -> Option<&str> {
        w.link.as_ref().map(|l| l.hubspot_id.as_str())
    }
    fn hs(w: &Work) -> Option<&str> {
        w.hubspot.as_ref().map(|h| h.id.as_str())
    }
    fn sf(w: &Work) -> Option<&str> {
        w.salesforce
            .as_ref()
            .map(|s| s.row.get("Id").and_then(Value::as_str).unwrap_or_default())
    }
    fn same(a: &Work, b: &Work) -> bool {
        if apart(a) || apart(b) {
            return false;
        }
        let agree = |x: Option<&str>, y: Option<&str>| x.is_none() || y.is_none() || x == y;
        (link(a).is_some() && link(a) == link(b))
            || (hs(a).is_some() && hs(a) == hs(b) && agree(sf(a), sf(b)))
            || (sf(a).is_some() && sf(a) == sf(b) && agree(hs(a), hs(b)))
    }
    /// What `same` compares, to find the works that may be the same pair without
    /// comparing each with each (a batch of a thousand was a tenth of a worker's CPU).
    #[derive(PartialEq, Eq, Hash)]
    enum Key {
        Link(String),
        HubSpot(String),
        Salesforce(String),
    }
    fn keys(w: &Work) -> Vec<Key> {
        let mut keys = Vec::with_capacity(3);
        keys.extend(link(w).map(|id| Key::Link(id.to_owned())));
        keys.extend(hs(w).map(|id| Key::HubSpot(id.to_owned())));
        keys.extend(sf(w).map(|id| Key::Salesforce(id.to_owned())));
        keys
    }
    let mut merged: Vec<Work> = Vec::with_capacity(works.len());
    let mut index: HashMap<Key, Vec<usize>> = HashMap::new();
    for w in works.drain(..) {
        let found = if apart(&w) {
            None
        } else {
            // The first work merged so far that is the same pair, as a scan would find.
            let mut candidates: Vec<usize> = keys(&w)
                .iter()
                .filter_map(|k| index.get(k))
                .flatten()
                .copied()
                .collect();
            candidates.sort_unstable();
            candidates.dedup();
            candidates.into_iter().find(|&m| same(&merged[m], &w))
        };
        let Some(m) = found else {
            if !apart(&w) {
                for k in keys(&w) {
                    index.entry(k).or_default().push(merged.len());
                }
            }
            merged.push(w);
            continue;
        };
        let into = &mut merged[m];
        into.items.extend(w.items);
        into.news &= w.news;
        into.key_unread &= w.key_unread;
        if into.hubspot.is_none() {
            into.hubspot = w.hubspot;
        }
        if into.salesforce.is_none() {
            into.salesforce = w.salesforce;
        }
        if into.link.is_none() {
            into.link = w.link;
        }
        // What it took from `w` finds it too.
        for k in keys(&merged[m]) {
            let at = index.entry(k).or_default();
            if !at.contains(&m) {
                at.push(m);
                at.sort_unstable();
            }
        }
    }
    // Twins in one batch: several Salesforce records matched to one HubSpot record.
    // The best (by the pair's rank: a Contact over a Lead, then the most recently
    // modified) is synced; the others are told which record won.
    let rank = |w: &Work| w.salesforce.as_ref().map(rank);
    let mut by_hubspot: HashMap<String, Vec<usize>> = HashMap::new();
    for (m, w) in merged.iter().enumerate() {
        if let (None, Some(h)) = (&w.merged_into, &w.hubspot) {
            by_hubspot.entry(h.id.clone()).or_default().push(m);
        }
    }
    for n in 0..merged.len() {
        let Some(h) = merged[n].hubspot.as_ref().map(|h| h.id.clone()) else {
            continue;
        };
        if merged[n].link.is_some() {
            continue;
        }
        let best = by_hubspot
            .get(&h)
            .into_iter()
            .flatten()
            .copied()
            .max_by_key(|&m| (merged[m].link.is_some(), rank(&merged[m])));
        if let Some(b) = best.filter(|&b| b != n)
            && let Some(winner) = merged[b].salesforce.clone()
        {
            merged[n].twin_of = Some(Link {
                pair: String::new(),
                hubspot_id: h,
                salesforce_object: winner.object.clone(),
                salesforce_id: winner.id(),
                last_synced: Default::default(),
                synced_at: 0,
                hubspot_read_at: None,
                version: 0,
            });
        }
    }
    *works = merged;
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    /// Found by the convergence harness (histories 1683 and 5386): in one batch, the
    /// merged survivor (unlinked: its partner was deleted) and the merged-away contact's
    /// Lead, which holds the survivor only to say it was merged. They are not one pair,
    /// and the Lead is not the survivor's twin.
    #[test]
    fn a_merged_away_record_is_neither_the_survivors_pair_nor_its_twin() {
        let survivor = HsRecord {
            id: "100012".into(),
            ..HsRecord::default()
        };
        let mut row = Map::new();
        row.insert("Id".into(), json!("00Q000000000005AAA"));
        let lead = Record::new("Lead", row);
        let link = Link {
            pair: "contacts".into(),
            hubspot_id: "100004".into(),
            salesforce_object: "Lead".into(),
            salesforce_id: lead.id(),
            last_synced: Default::default(),
            synced_at: 1,
            hubspot_read_at: None,
            version: 1,
        };
        let mut works = vec![
            Work {
                hubspot: Some(survivor.clone()),
                items: vec![0],
                ..Work::default()
            },
            Work {
                hubspot: Some(survivor),
                salesforce: Some(lead),
                link: Some(link),
                merged_into: Some(MergedInto {
                    hubspot_id: "100012".into(),
                    salesforce_object: "Lead".into(),
                    salesforce_id: "00Q000000000001AAA".into(),
                }),
                items: vec![1],
                ..Work::default()
            },
        ];
        merge_same_pairs(&mut works, &|_| (false, 0));
        assert_eq!(works.len(), 2);
        assert!(works[0].salesforce.is_none() && works[0].link.is_none());
        assert!(works[0].twin_of.is_none(), "{:?}", works[0].twin_of);
        assert!(works[1].merged_into.is_some());
    }
}
