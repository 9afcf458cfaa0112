//! HubSpot records known without a read. A property webhook says one property's new
//! value and when it changed; the link says every other value as the last sync left
//! it. A change made after that sync, put over the link's values, is the record as a
//! read would give it, but for changes whose own webhooks are still on their way (each
//! brings its own reference; one older than the sync is read). So a person's edit in
//! HubSpot reaches Salesforce without a HubSpot call. And a Salesforce change's HubSpot
//! partner is taken as the link says (`partner_as_synced`): the check before the
//! HubSpot write is the read it needs.
//!
//! Where the link does not make the whole record (a property outside the mapping
//! changed, or the pair reads properties no link holds) the record is read. Nothing is
//! lost to a change not yet heard of: a HubSpot write is checked against the record
//! just before it leaves (`fresh.rs`), and the merge takes the link's values as
//! unchanged, so it writes Salesforce nothing of them it would not write from a read,
//! but where a rule sends HubSpot's agreed value over a Salesforce change; the HubSpot
//! change's own webhook, or the feed, then brings its newer value.

use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value, json};

use crate::domain::Side;
use crate::domain::pair::PairSpec;
use crate::ports::{HsRecord, Link, Seen, WorkItem};

/// How far HubSpot's clock and ours may be apart: a change timed this close after a
/// sync may have come before it, and is read.
const CLOCKS_MS: i64 = 2_000;

/// The property changes `seen` claims, each with when it happened; `None` when it
/// claims anything else or a change without its time.
fn property_changes(seen: &Seen) -> Option<Vec<(&str, &str, i64)>> {
    fn one(s: &Seen) -> Option<(&str, &str, i64)> {
        match s {
            Seen::Property {
                name,
                value,
                at: Some(at),
            } => Some((name.as_str(), value.as_str(), *at)),
            _ => None,
        }
    }
    match seen {
        Seen::All { claims } => claims.iter().map(one).collect(),
        single => one(single).map(|c| vec![c]),
    }
}

/// The record `item` names, from its webhooks over `link`'s values, when that is the
/// whole record the pair reads (`properties`, of which `mapped` are the pair's fields).
pub(crate) fn pushed_record(
    spec: &PairSpec,
    properties: &[String],
    mapped: &[&str],
    item: &WorkItem,
    link: &Link,
) -> Option<HsRecord> {
    if item.side != Side::HubSpot || item.id != link.hubspot_id {
        return None;
    }
    let mut changes = property_changes(item.seen.as_ref()?)?;
    // A change from before the sync may be older than what the sync read; HubSpot
    // times it by its clock, the link by ours.
    if changes.is_empty()
        || changes
            .iter()
            .any(|(name, _, at)| *at <= link.synced_at + CLOCKS_MS || !mapped.contains(name))
    {
        return None;
    }
    changes.sort_by_key(|(_, _, at)| *at);
    let mut values = Map::new();
    for pair in changes.windows(2) {
        let ((a, va, ta), (b, vb, tb)) = (pair[0], pair[1]);
        // Two values of one property at one time: which is last is unknown.
        if a == b && ta == tb && va != vb {
            return None;
        }
    }
    for (name, value, _) in &changes {
        values.insert((*name).to_owned(), json!(value));
    }
    let modified = changes.iter().map(|(_, _, at)| *at).max();
    over_link(spec, properties, mapped, link, values, modified)
}

/// The HubSpot partner of a Salesforce record whose change brought its values, as the
/// link says the last sync left it: the merge takes it as unchanged since, and the
/// check before a HubSpot write (`fresh.rs`) reads what is there now of each property
/// written, holding the write back where a person changed it. That read is the one a
/// HubSpot write needs; the merge needs none of its own. `None` where the link does not
/// make the whole record.
pub(crate) fn partner_as_synced(
    spec: &PairSpec,
    properties: &[String],
    mapped: &[&str],
    link: &Link,
) -> Option<HsRecord> {
    over_link(spec, properties, mapped, link, Map::new(), None)
}

/// Whether `record` is a partner taken as last synced (`partner_as_synced`): the only
/// kind without its modification time (a read, a listing, a feed and webhooks all give
/// one). Its check before a HubSpot write also holds the write back when the record was
/// modified since the sync at all: a field edited and edited back (A, B, A) holds its
/// synced value, and only its history, read with the record again, says which edit
/// came last.
pub(crate) fn taken_as_synced(spec: &PairSpec, record: &HsRecord) -> bool {
    !record.properties.contains_key(&spec.hubspot_modified)
}

/// `values` over the link's, for every property the pair reads, modified at `modified`
/// (none: not since the sync).
fn over_link(
    spec: &PairSpec,
    properties: &[String],
    mapped: &[&str],
    link: &Link,
    mut values: Map<String, Value>,
    modified: Option<i64>,
) -> Option<HsRecord> {
    for p in properties {
        if values.contains_key(p) {
            continue;
        }
        if mapped.contains(&p.as_str()) {
            // As a read gives it, text; no entry: blank when last synced.
            let text = match link.last_synced.get(p).map(|e| &e.hubspot) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => continue,
            };
            values.insert(p.clone(), json!(text));
        } else if *p == spec.hubspot_modified {
            let Some(modified) = modified else { continue };
            let at = DateTime::from_timestamp_millis(modified)?;
            values.insert(
                p.clone(),
                json!(at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            );
        } else if spec.salesforce_id_property(&link.salesforce_object) == Some(p.as_str()) {
            values.insert(p.clone(), json!(link.salesforce_id));
        } else if spec.kind_property.as_deref() == Some(p.as_str()) {
            values.insert(p.clone(), json!(link.salesforce_object.to_uppercase()));
        } else if p != "hs_merged_object_ids" && !spec.is_identity(p) {
            // Merged ids and another sObject's id are left blank: a merge comes with
            // its own event, read; the sync writes only its own partner's id.
            return None;
        }
    }
    Some(HsRecord {
        id: link.hubspot_id.clone(),
        properties: values,
        from_link: true,
        ..HsRecord::default()
    })
}

/// A property's value as text, for tests.
#[cfg(test)]
fn text(record: &HsRecord, p: &str) -> Option<String> {
    record
        .properties
        .get(p)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::merge::{LastSynced, SyncedField};

    fn link(synced_at: i64) -> Link {
        let mut last = LastSynced::default();
        for (p, v) in [("firstname", "Ann"), ("jobtitle", "Engineer")] {
            last.insert(
                p.into(),
                SyncedField {
                    hubspot: json!(v),
                    salesforce: json!(v),
                    held: None,
                },
            );
        }
        Link {
            pair: "contacts".into(),
            hubspot_id: "51".into(),
            salesforce_object: "Lead".into(),
            salesforce_id: "00Q000000000001AAA".into(),
            synced_at,
            last_synced: last,
            hubspot_read_at: None,
            version: 1,
        }
    }

    fn item(claims: &[(&str, &str, Option<i64>)]) -> WorkItem {
        let mut seen: Vec<Seen> = claims
            .iter()
            .map(|(n, v, at)| Seen::Property {
                name: (*n).into(),
                value: (*v).into(),
                at: *at,
            })
            .collect();
        WorkItem {
            side: Side::HubSpot,
            object: "contacts".into(),
            id: "51".into(),
            origin: "webhook".into(),
            seen: Some(if seen.len() == 1 {
                seen.remove(0)
            } else {
                Seen::All { claims: seen }
            }),
        }
    }

    #[test]
    fn a_change_after_the_sync_over_the_links_values_is_the_record() {
        let config = crate::domain::config::SyncConfig::builtin();
        let Some(spec) = crate::domain::pair::pairs_of(&config)
            .into_iter()
            .find(|p| p.name == "contacts")
        else {
            panic!("the built-in configuration syncs contacts");
        };
        let props: Vec<String> = [
            "firstname",
            "jobtitle",
            "phone",
            spec.hubspot_modified.as_str(),
            "hs_merged_object_ids",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(spec.salesforce_id_properties.iter().map(|(_, p)| p.clone()))
        .chain(spec.kind_property.clone())
        .collect();
        let mapped = ["firstname", "jobtitle", "phone"];
        let pushed = |claims, synced_at| {
            pushed_record(&spec, &props, &mapped, &item(claims), &link(synced_at))
        };
        let Some(p) = pushed(&[("jobtitle", "Architect", Some(3_001))], 1_000) else {
            panic!("a change after the sync is the record");
        };
        assert_eq!(text(&p, "jobtitle").as_deref(), Some("Architect"));
        assert_eq!(text(&p, "firstname").as_deref(), Some("Ann"));
        assert_eq!(text(&p, "phone"), None, "blank when last synced");
        let lead_id = spec.salesforce_id_property("Lead").unwrap_or_default();
        assert_eq!(text(&p, lead_id).as_deref(), Some("00Q000000000001AAA"));
        // The later of two values of one property.
        let two = pushed(
            &[
                ("jobtitle", "B", Some(5_000)),
                ("jobtitle", "A", Some(4_000)),
            ],
            1_000,
        );
        assert_eq!(two.and_then(|p| text(&p, "jobtitle")).as_deref(), Some("B"));
        // Read instead: a change from before the sync or as good as at it, one
        // without its time, one outside the mapping, two values at one time.
        assert!(pushed(&[("jobtitle", "A", Some(1_000))], 1_000).is_none());
        assert!(pushed(&[("jobtitle", "A", Some(3_000))], 1_000).is_none());
        assert!(pushed(&[("jobtitle", "A", None)], 1_000).is_none());
        assert!(pushed(&[("hs_lead_status", "NEW", Some(4_000))], 1_000).is_none());
        assert!(
            pushed(
                &[
                    ("jobtitle", "A", Some(4_000)),
                    ("jobtitle", "B", Some(4_000))
                ],
                1_000
            )
            .is_none()
        );
        // A pair reading a property no link holds.
        let more: Vec<String> = props
            .iter()
            .cloned()
            .chain(["lifecyclestage".into()])
            .collect();
        let unknown = pushed_record(
            &spec,
            &more,
            &mapped,
            &item(&[("jobtitle", "A", Some(4_000))]),
            &link(1_000),
        );
        assert!(unknown.is_none());
    }
}
