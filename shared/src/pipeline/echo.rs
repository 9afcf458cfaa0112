//! Our own writes, recognised from the link alone when they come back: a linked record
//! whose mapped values are the ones last synced, and that was modified no later than
//! that sync, has nothing to sync. Reading it again would find nothing to do. What a
//! change's source saw of the record travels with its reference (`Seen`: a webhook's
//! property, an outbound message's fields, a feed's read of the mapped values), and is
//! checked where the link may be known: at the intake, at the poller, and at the worker
//! before it reads (a push often arrives before the batch that wrote stored its link).
//! An echo costs no read, and mostly no queued reference either. The initial sync's
//! listing is vouched for by time alone: a record listed before its pair synced from a
//! read of it (its partner's reference came first) has nothing left to sync. An
//! association webhook is vouched for by the lookup the link recorded in step, or by
//! the pair following no association to that object (each association fires on both
//! its records).
//!
//! A change the link cannot vouch for is left to the worker: a value that differs, a
//! mapped field the link holds no value for, a modification after the sync (a person's
//! change of a lookup or an association, which has no last-synced value, is one), a
//! HubSpot merge. What this cannot tell apart: a person's change of only a lookup or an
//! association made between our write and the link's store (the batch's last
//! milliseconds), which then syncs with the record's next change.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::sabotage::Sabotage;
use super::work::Record;
use super::{PairRun, Pipeline};
use crate::domain::config::Pair;
use crate::domain::{Side, same_salesforce_id};
use crate::ports::{Link, Seen, WorkItem};

/// A value as text, as webhooks and outbound messages give it (`None`: no value).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// What the echo check found of a reference.
pub(crate) struct EchoCheck {
    /// Our own write come back, with nothing to sync.
    pub echo: bool,
    /// The record's link as the check looked it up (`None`: it looked nothing up), so
    /// that the worker's read of the batch need not look it up again.
    pub link: Option<Option<Link>>,
}

impl EchoCheck {
    const NOT_LOOKED: EchoCheck = EchoCheck {
        echo: false,
        link: None,
    };
}

impl Pipeline {
    /// Whether what each reference's source saw of its record (`item.seen`) is what
    /// the record's link last synced: our own write come back, with nothing to sync.
    /// For references of any pairs (a feed's page, a webhook delivery), each pair's
    /// links looked up together; in order.
    pub(crate) async fn are_echoes(&self, items: &[WorkItem]) -> Vec<bool> {
        let mut echoes = vec![false; items.len()];
        for run in self.pairs.iter() {
            let (which, mine): (Vec<usize>, Vec<&WorkItem>) = items
                .iter()
                .enumerate()
                .filter(|(_, i)| self.pair_of(i).is_some_and(|r| std::ptr::eq(r, run)))
                .unzip();
            if mine.is_empty() {
                continue;
            }
            for (n, check) in which
                .into_iter()
                .zip(self.check_echoes_of(run, &mine).await)
            {
                echoes[n] = check.echo;
            }
        }
        echoes
    }

    /// [`Pipeline::are_echoes`] for references of one pair (a worker's batch), with
    /// the links it looked up: a call per side and object, not one per reference.
    pub(crate) async fn check_echoes(&self, run: &PairRun, items: &[WorkItem]) -> Vec<EchoCheck> {
        let items: Vec<&WorkItem> = items.iter().collect();
        self.check_echoes_of(run, &items).await
    }

    /// [`Pipeline::check_echoes`] of borrowed references.
    async fn check_echoes_of(&self, run: &PairRun, items: &[&WorkItem]) -> Vec<EchoCheck> {
        let mut checks: Vec<EchoCheck> = items.iter().map(|_| EchoCheck::NOT_LOOKED).collect();
        if self.sabotaged(Sabotage::EchoSuppressionOff) {
            return checks;
        }
        let Some(pair) = self.config.pair(&run.spec.name) else {
            return checks;
        };
        // The references that say what their source saw (only those may be echoes),
        // per side and object.
        let mut groups: BTreeMap<(Side, &str), Vec<usize>> = BTreeMap::new();
        for (n, item) in items.iter().enumerate() {
            if item.seen.is_some() {
                groups
                    .entry((item.side, item.object.as_str()))
                    .or_default()
                    .push(n);
            }
        }
        for ((side, object), indexes) in groups {
            let ids: Vec<String> = indexes.iter().map(|&n| items[n].id.clone()).collect();
            let looked_up = match side {
                Side::HubSpot => self.links.by_hubspot_ids(&run.spec.name, &ids).await,
                Side::Salesforce => self.links.by_salesforce_ids(object, &ids).await,
            };
            // The store did not answer: the worker looks again, and decides.
            let Ok(links) = looked_up else { continue };
            for (n, link) in indexes.into_iter().zip(links) {
                checks[n] = judge_echo(run, &pair, items[n], link);
            }
        }
        checks
    }
}

/// What `item`'s link (as looked up) says of it.
fn judge_echo(run: &PairRun, pair: &Pair<'_>, item: &WorkItem, link: Option<Link>) -> EchoCheck {
    let claims = match &item.seen {
        Some(Seen::All { claims }) => claims.as_slice(),
        Some(one) => std::slice::from_ref(one),
        // Nothing said of the record: nothing to vouch for.
        None => return EchoCheck::NOT_LOOKED,
    };
    // Unlinked: the worker decides.
    let echo = link.as_ref().is_some_and(|link| {
        claims
            .iter()
            .all(|claim| holds(run, pair, link, item, claim))
    });
    EchoCheck {
        echo,
        link: Some(link),
    }
}

/// Whether an association of the record with `to_id` (a record of `to`) leaves its
/// pair with nothing to sync: the record follows no association to `to` (a company's
/// side of its contact's association: the contact's side is the one that syncs; a
/// contact linked with a Lead), or it is the one a lookup was last put in step with
/// (our own write come back).
fn association_holds(run: &PairRun, link: &Link, to: &str, to_id: &str, removed: bool) -> bool {
    let spec = &run.spec;
    let junction = spec.junctions.iter().any(|j| j.target_hubspot == to);
    // A lookup lives on some sObjects only: a Lead's company is no lookup.
    let mut lookups = spec
        .lookups
        .iter()
        .filter(|l| l.target_hubspot == to && l.on.contains(&link.salesforce_object))
        .peekable();
    if !junction && lookups.peek().is_none() {
        return true;
    }
    !removed
        && !junction
        && lookups.any(|l| {
            link.last_synced
                .lookup(&l.field)
                .is_some_and(|(_, hubspot)| hubspot == to_id)
        })
}

/// Whether one thing a source saw of the record is what its link last synced.
fn holds(run: &PairRun, pair: &Pair<'_>, link: &Link, item: &WorkItem, claim: &Seen) -> bool {
    match (item.side, claim) {
        // A linked record's creation: we created it, or linked it since.
        (Side::HubSpot, Seen::Created) => true,
        // The initial sync's listing, with the pair synced since it read the record,
        // from a read of the record at least as new. (A HubSpot record made from the
        // link and a webhook is no such read: the listing may hold an edit whose own
        // webhook was lost.)
        (
            Side::HubSpot,
            Seen::Values {
                listed_at: Some(at),
                ..
            },
        ) if link.hubspot_read_at.is_some_and(|read| read >= *at) => true,
        (
            Side::Salesforce,
            Seen::Values {
                listed_at: Some(at),
                ..
            },
        ) if link.synced_at >= *at => true,
        (Side::HubSpot, Seen::Property { name, value, .. }) => {
            link.last_synced.holds_hubspot(name, value)
                || run
                    .spec
                    .identity_holds(name, value, &link.salesforce_object, &link.salesforce_id)
                    .unwrap_or(false)
        }
        (
            Side::HubSpot,
            Seen::Values {
                values,
                modified_at,
                ..
            },
        ) => synced_after(link, *modified_at) && hubspot_holds(pair, link, values),
        (
            Side::Salesforce,
            Seen::Values {
                values,
                modified_at,
                ..
            },
        ) => {
            synced_after(link, *modified_at)
                && salesforce_holds(run, pair, link, &item.object, values)
        }
        (Side::HubSpot, Seen::Association { to, to_id, removed }) => {
            association_holds(run, link, to, to_id, *removed)
        }
        // Nested claims are flattened when merged; anything else is not vouched for.
        _ => false,
    }
}

/// The record's last modification is no later than the link's sync: what it holds was
/// there when the sync stored its values.
fn synced_after(link: &Link, modified_at: i64) -> bool {
    modified_at > 0 && modified_at <= link.synced_at
}

/// Whether a HubSpot record's properties are the ones its link last synced (a merge's
/// survivor never is: its merged ids are news to the link).
fn hubspot_holds(pair: &Pair<'_>, link: &Link, properties: &Map<String, Value>) -> bool {
    let merged = properties
        .get("hs_merged_object_ids")
        .and_then(Value::as_str)
        .is_some_and(|m| !m.is_empty());
    !merged
        && pair.fields().iter().all(|f| {
            let value = properties
                .get(&f.hubspot)
                .and_then(text)
                .unwrap_or_default();
            match link.last_synced.get(&f.hubspot) {
                Some(_) => link.last_synced.holds_hubspot(&f.hubspot, &value),
                None => value.is_empty(),
            }
        })
}

/// Whether a Salesforce record's fields (as the API gives them, or as text) are the
/// ones its link last synced.
fn salesforce_holds(
    run: &PairRun,
    pair: &Pair<'_>,
    link: &Link,
    sobject: &str,
    row: &Map<String, Value>,
) -> bool {
    // The values as the merge sees them (a Lead's placeholder company is none).
    let seen = run
        .hooks
        .salesforce_snapshot(&Record::new(sobject, row.clone()));
    pair.fields().iter().all(|f| {
        let Some(field) = f.salesforce.on(sobject) else {
            return true;
        };
        let value = seen.values.get(field).and_then(text);
        match link.last_synced.get(&f.hubspot) {
            Some(_) => link
                .last_synced
                .holds_salesforce(&f.hubspot, value.as_deref()),
            None => value.as_deref().is_none_or(str::is_empty),
        }
    })
}

/// How long after a change a reference naming a partner its link does not know yet is
/// taken for our own write in flight: the batch that wrote it has not stored its link.
pub(crate) const IN_FLIGHT_MS: i64 = 10_000;

/// Whether what `item`'s source saw is, by every sign, our own write whose batch has
/// not stored its link yet: a change of the last [`IN_FLIGHT_MS`] that names a partner
/// (the sync's id property or field) its link does not hold. Read now, it would be read
/// again once that link lands (the records are read before their link, and a link
/// stored since sends the batch back: `plan.rs`); looked at again a moment later as it
/// came (`ItemOutcome::Later`), it is mostly recognised as an echo, with no read. Found
/// by the scale bench, its workers keeping up with the listing: outbound messages of
/// our writes arrived before their links, 2,500 references at 10,000 people read and
/// then sent back.
pub(crate) fn in_flight(run: &PairRun, item: &WorkItem, link: Option<&Link>, now: i64) -> bool {
    let recent = |at: i64| at > 0 && now - at < IN_FLIGHT_MS;
    // Whether a field or property holding `value` names a partner the link does not.
    let names_unknown = |name: &str, value: &str| {
        !value.is_empty()
            && match item.side {
                Side::Salesforce => {
                    name.eq_ignore_ascii_case(&run.spec.hubspot_id_field)
                        && link.is_none_or(|l| l.hubspot_id != value)
                }
                Side::HubSpot => {
                    run.spec
                        .salesforce_id_properties
                        .iter()
                        .any(|(_, p)| p == name)
                        && link.is_none_or(|l| !same_salesforce_id(value, &l.salesforce_id))
                }
            }
    };
    let one = |claim: &Seen| match claim {
        Seen::Values {
            values,
            modified_at,
            listed_at: None,
            ..
        } => {
            recent(*modified_at)
                && values
                    .iter()
                    .any(|(name, v)| v.as_str().is_some_and(|v| names_unknown(name, v)))
        }
        Seen::Property { name, value, at } => {
            item.side == Side::HubSpot && at.is_some_and(recent) && names_unknown(name, value)
        }
        _ => false,
    };
    match &item.seen {
        Some(Seen::All { claims }) => claims.iter().any(one),
        Some(claim) => one(claim),
        None => false,
    }
}
