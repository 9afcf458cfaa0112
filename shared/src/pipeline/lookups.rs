//! Lookups and junctions, kept in step with HubSpot associations once a batch's
//! records are written and linked:
//!
//! - a lookup (`Contact.AccountId`, `Opportunity.AccountId`, `Machine__c.Account__c`):
//!   a value set in Salesforce associates the HubSpot record with the linked target; a
//!   HubSpot association of a record whose field is empty sets it;
//! - a junction (`OpportunityContactRole`): every contact role becomes a HubSpot
//!   association and every association of a linked Contact a role, never twice.
//!
//! A target that is not linked yet is synced here, in the same batch; a record whose
//! target still cannot be linked goes back to the queue to wait for it. One
//! association read per lookup and at most one write per side for the whole batch.
//!
//! A lookup put in step is recorded on the link (`LastSynced::lookup`): a record that
//! comes back for an edit of its values (nothing that can change an association) with
//! the field still at the recorded value is in step without reading its associations.
//! Under a stream of edits that read was a quarter of the HubSpot calls.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::flow::same_sf_id;
use super::pairs::PairRun;
use super::work::{Associated, Prefetch};
use super::writes::Planned;
use super::{ItemOutcome, Pipeline};
use crate::domain::Side;
use crate::domain::merge::LastSynced;
use crate::domain::pair::{Junction, Lookup};
use crate::ports::{Link, Outcome, Seen, WorkItem};

/// A pair written in this batch: both ids, its sObject, its Salesforce row as read
/// (lookup values), and the queued items it answers.
pub(crate) struct Synced {
    pub hubspot_id: String,
    pub salesforce_id: String,
    pub sobject: String,
    pub row: Map<String, Value>,
    pub items: Vec<usize>,
    pub from: Side,
    /// Created in HubSpot by this batch (no associations to read).
    pub hubspot_new: bool,
    /// What it was created associated with (object type, id), when created here.
    pub created_with: Vec<(String, String)>,
    /// Nothing moved, so the writes left the records' statuses as they were.
    pub status_kept: bool,
    /// The link's last-synced values, with the lookups it recorded in step.
    pub recorded: LastSynced,
    /// Every change that brought the record here leaves its associations as they were.
    pub values_only: bool,
}

/// Whether a change leaves the HubSpot record's associations as they were: an edit of
/// values (a HubSpot property's webhook or feed read: HubSpot's feeds never show an
/// association; any Salesforce change, whose lookups the Salesforce row shows).
/// Associations change by their own webhook, the lookup sweep, a creation or a merge.
pub(crate) fn values_only(item: &WorkItem) -> bool {
    fn claim(side: Side, seen: &Seen) -> bool {
        match seen {
            Seen::Property { .. } => side == Side::HubSpot,
            Seen::Values { listed_at, .. } => listed_at.is_none(),
            Seen::All { claims } => claims.iter().all(|c| claim(side, c)),
            Seen::Created | Seen::Association { .. } => false,
        }
    }
    item.seen.as_ref().is_some_and(|s| claim(item.side, s))
}

impl Synced {
    pub fn of(planned: &[Planned], items: &[WorkItem]) -> Vec<Synced> {
        planned
            .iter()
            .filter(|p| p.live())
            .filter_map(|p| {
                Some(Synced {
                    hubspot_id: p.hubspot_id.clone()?,
                    salesforce_id: p.salesforce_id.clone()?,
                    sobject: p.sobject.clone(),
                    // As written: a created record's lookups were set with it.
                    row: {
                        let mut row = p
                            .work
                            .salesforce
                            .as_ref()
                            .map(|s| s.row.clone())
                            .unwrap_or_default();
                        row.extend(p.salesforce_writes.clone());
                        row
                    },
                    items: p.work.items.clone(),
                    from: p.from,
                    hubspot_new: p.hubspot_new,
                    created_with: match p.hubspot_new {
                        true => p.hubspot_associations.clone(),
                        false => Vec::new(),
                    },
                    status_kept: p.moved_nothing(),
                    recorded: p
                        .work
                        .link
                        .as_ref()
                        .map(|l| l.last_synced.clone())
                        .unwrap_or_default(),
                    values_only: p
                        .work
                        .items
                        .iter()
                        .all(|&i| items.get(i).is_some_and(values_only)),
                })
            })
            .collect()
    }
}

/// What one pass over a lookup found missing: targets to sync, by side, and targets
/// that can never fill the field (a Case's contact that syncs with a Lead).
#[derive(Default)]
struct Missing {
    /// (record index in `synced`, the target reference).
    targets: Vec<(usize, WorkItem)>,
    /// (record index in `synced`, why the field stays empty).
    wrong_kind: Vec<(usize, String)>,
    /// The records' associations a lookup's look read (or was given), for the pass
    /// that applies after it.
    read: Option<Associated>,
}

/// What a lookup pass does with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Only looks: which targets are missing, and the associations as they are.
    Look,
    /// Associates, sets fields and records the lookups in step.
    Apply,
}

impl Missing {
    fn push(&mut self, record: usize, side: Side, object: &str, id: &str) {
        self.targets.push((record, related(side, object, id)));
    }
}

/// A reference to a record another record points at, to sync it first.
fn related(side: Side, object: &str, id: &str) -> WorkItem {
    WorkItem {
        side,
        object: object.to_owned(),
        id: id.to_owned(),
        origin: "related".into(),
        seen: None,
    }
}

fn text<'a>(row: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    row.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// One of the pair's lookups or junctions.
#[derive(Clone, Copy)]
enum Step<'a> {
    Lookup(&'a Lookup),
    Junction(&'a Junction),
}

impl Step<'_> {
    fn target(&self) -> &str {
        match self {
            Step::Lookup(l) => &l.target,
            Step::Junction(j) => &j.target,
        }
    }
}

/// The reason a record's related record holds it back.
pub(crate) const WAITING_FOR_RELATED: &str = "waiting_for_related";
/// How a retry's reason begins when the record waits for a related record.
pub(crate) const WAITING_PREFIX: &str = "waiting for a related record of";
/// How that reason's message ends while the record is retried.
pub(crate) const RETRIED_UNTIL_SYNCED: &str = "; retried until it is";

/// How deep syncing a record's related records may go (a deal's contact's company).
const MAX_DEPTH: u8 = 3;

impl Pipeline {
    pub(crate) async fn sync_lookups(
        &self,
        run: &PairRun,
        items: &[WorkItem],
        synced: Vec<Synced>,
        outcomes: &mut [ItemOutcome],
        depth: u8,
        prefetch: &Prefetch,
    ) {
        if synced.is_empty() {
            return;
        }
        let steps = run
            .spec
            .lookups
            .iter()
            .map(Step::Lookup)
            .chain(run.spec.junctions.iter().map(Step::Junction));
        let mut waiting: BTreeSet<usize> = BTreeSet::new();
        for step in steps {
            let mine: Vec<usize> = (0..synced.len())
                .filter(|&n| match step {
                    Step::Lookup(l) => l.on.contains(&synced[n].sobject),
                    Step::Junction(_) => true,
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            let result = self
                .bring_in_step(run, step, &synced, &mine, depth, prefetch)
                .await;
            self.settle_waiting(run, items, &synced, result, &mut waiting, step.target())
                .await;
        }
        for &n in &waiting {
            for &i in &synced[n].items {
                outcomes[i] = ItemOutcome::Retry(format!(
                    "{WAITING_PREFIX} {} to sync",
                    synced[n].hubspot_id
                ));
            }
        }
        self.no_longer_waiting(items, &synced, &waiting).await;
    }

    /// A record that waited for a related record, retried once that synced: its values
    /// synced the first time, so its retry moves nothing and records no status; only
    /// the lookup filled. Its status said it waits, and now says it synced.
    async fn no_longer_waiting(
        &self,
        items: &[WorkItem],
        synced: &[Synced],
        waiting: &BTreeSet<usize>,
    ) {
        for (n, s) in synced.iter().enumerate() {
            if !s.status_kept || waiting.contains(&n) {
                continue;
            }
            for &i in &s.items {
                let item = &items[i];
                let status = self.status.status(&super::record_ref(item)).await;
                let waited = status
                    .ok()
                    .flatten()
                    .is_some_and(|st| st.last.code.as_deref() == Some(WAITING_FOR_RELATED));
                if waited {
                    let event = self.event(item, item.side, Outcome::Synced, self.clock.now_ms());
                    self.record(event).await;
                }
            }
        }
    }

    async fn pass(
        &self,
        run: &PairRun,
        step: Step<'_>,
        synced: &[Synced],
        which: &[usize],
        prefetch: &Prefetch,
        pass: Pass,
    ) -> Result<Missing, String> {
        match step {
            Step::Lookup(l) => {
                self.lookup_pass(run, l, synced, which, prefetch, pass)
                    .await
            }
            Step::Junction(j) => self.junction_pass(run, j, synced, which, prefetch).await,
        }
    }

    /// Runs a pass; when targets are missing, syncs them in this batch and runs the
    /// pass again. Returns the targets still missing.
    async fn bring_in_step(
        &self,
        run: &PairRun,
        step: Step<'_>,
        synced: &[Synced],
        which: &[usize],
        depth: u8,
        prefetch: &Prefetch,
    ) -> Result<Missing, String> {
        if depth >= MAX_DEPTH {
            return self
                .pass(run, step, synced, which, prefetch, Pass::Apply)
                .await;
        }
        // A lookup looks first and applies once its missing targets synced: the
        // associations it makes go in one call, and what it read serves both passes
        // (a pass applied before its targets synced associated twice and read the
        // associations again: at 100,000 people per side, ~200 of HubSpot's calls).
        let first = match step {
            Step::Lookup(_) => Pass::Look,
            Step::Junction(_) => Pass::Apply,
        };
        let missing = self.pass(run, step, synced, which, prefetch, first).await?;
        if missing.targets.is_empty() && first == Pass::Apply {
            return Ok(missing);
        }
        if !missing.targets.is_empty() {
            let mut refs: Vec<WorkItem> = missing.targets.iter().map(|(_, t)| t.clone()).collect();
            refs.sort_by(|a, b| (&a.side, &a.object, &a.id).cmp(&(&b.side, &b.object, &b.id)));
            refs.dedup();
            tracing::info!(message = "syncing related records first", pair = %run.spec.name, count = refs.len());
            self.sync_related(refs, depth + 1).await;
        }
        // A lookup's look serves the pass that applies; a junction's first pass
        // associated the targets it found, and the second reads again (no `read`).
        let known = Prefetch {
            associations: missing.read.into_iter().collect(),
            ..Prefetch::default()
        };
        self.pass(run, step, synced, which, &known, Pass::Apply)
            .await
    }

    /// After a pass: records whose targets are still missing wait (retried), with the
    /// reason on their status.
    async fn settle_waiting(
        &self,
        run: &PairRun,
        items: &[WorkItem],
        synced: &[Synced],
        result: Result<Missing, String>,
        waiting: &mut BTreeSet<usize>,
        target: &str,
    ) {
        match result {
            Ok(missing) => {
                for (n, why) in missing.wrong_kind {
                    let Some(&first) = synced[n].items.first() else {
                        continue;
                    };
                    // The record synced; this field of it cannot follow the association.
                    let mut event = self.event(
                        &items[first],
                        synced[n].from,
                        Outcome::Synced,
                        self.clock.now_ms(),
                    );
                    event.code = Some("related_not_contact".into());
                    event.message = Some(why);
                    self.record(event).await;
                }
                for (n, t) in missing.targets {
                    if !waiting.insert(n) {
                        continue;
                    }
                    let Some(&first) = synced[n].items.first() else {
                        continue;
                    };
                    let why = self
                        .status
                        .status(&super::record_ref(&t))
                        .await
                        .ok()
                        .flatten()
                        .and_then(|s| s.last.code)
                        .map(|c| format!(" (its last sync: {c})"))
                        .unwrap_or_default();
                    let mut event = self.event(
                        &items[first],
                        synced[n].from,
                        Outcome::Skipped,
                        self.clock.now_ms(),
                    );
                    event.code = Some(WAITING_FOR_RELATED.into());
                    event.message = Some(format!(
                        "{} {} {} is not synced with {target} yet{why}{RETRIED_UNTIL_SYNCED}",
                        t.side, t.object, t.id
                    ));
                    self.record(event).await;
                }
            }
            Err(e) => {
                // The records themselves synced; the next change of either retries this.
                tracing::warn!(message = "lookups not synced", pair = %run.spec.name, error = %e);
            }
        }
    }

    /// The HubSpot associations of the records `which` with `target` records. Records
    /// this batch created have none and are not read: in an initial sync a third of the
    /// contacts are created, and each read was a call per 1,000. (A portal that
    /// associates new contacts with companies by email domain does so on its own; that
    /// association reaches Salesforce with the contact's next change.)
    async fn associations_of(
        &self,
        run: &PairRun,
        target: &str,
        synced: &[Synced],
        which: &[usize],
        prefetch: &Prefetch,
    ) -> Result<Vec<(String, Vec<String>)>, String> {
        let ids: Vec<String> = which
            .iter()
            .filter(|&&n| !synced[n].hubspot_new)
            .map(|&n| synced[n].hubspot_id.clone())
            .collect();
        // What a record created here was created with is all it has.
        let created = which
            .iter()
            .map(|&n| &synced[n])
            .filter(|s| s.hubspot_new)
            .map(|s| {
                let to: Vec<String> = s
                    .created_with
                    .iter()
                    .filter(|(object, _)| object == target)
                    .map(|(_, id)| id.clone())
                    .collect();
                (s.hubspot_id.clone(), to)
            })
            .filter(|(_, to)| !to.is_empty());
        if ids.is_empty() {
            return Ok(created.collect());
        }
        let (mut known, unknown) = prefetch.associations(target, &ids);
        known.extend(created);
        if !unknown.is_empty() {
            let read = self
                .hubspot
                .associations(&run.spec.hubspot_object, target, &unknown)
                .await
                .map_err(|e| e.to_string())?;
            known.extend(read);
        }
        Ok(known)
    }

    /// One pass over a lookup: associate what Salesforce says, set what HubSpot says.
    async fn lookup_pass(
        &self,
        run: &PairRun,
        lookup: &Lookup,
        synced: &[Synced],
        which: &[usize],
        prefetch: &Prefetch,
        pass: Pass,
    ) -> Result<Missing, String> {
        // The HubSpot record a record's field was last put in step with, when the field
        // still holds that value and nothing since can have moved the associations:
        // in step, its associations unread.
        // A blank field recorded with no HubSpot record ("", ""): in step with none.
        let in_step = |n: usize| -> Option<&str> {
            let s = &synced[n];
            let (value, hubspot) = s.recorded.lookup(&lookup.field)?;
            let now = text(&s.row, &lookup.field).unwrap_or_default();
            let same = if now.is_empty() || value.is_empty() {
                now == value
            } else {
                same_sf_id(now, value)
            };
            (s.values_only && same).then_some(hubspot)
        };
        let to_read: Vec<usize> = which
            .iter()
            .copied()
            .filter(|&n| in_step(n).is_none())
            .collect();
        let current = self
            .associations_of(run, &lookup.target_hubspot, synced, &to_read, prefetch)
            .await?;
        // What this pass read, for the applying pass after a look.
        let mut missing = Missing {
            read: (pass == Pass::Look).then(|| Associated {
                to: lookup.target_hubspot.clone(),
                asked: to_read
                    .iter()
                    .filter(|&&n| !synced[n].hubspot_new)
                    .map(|&n| synced[n].hubspot_id.clone())
                    .collect(),
                found: current.clone(),
            }),
            ..Missing::default()
        };
        let mut associate = Vec::new();
        let mut set_field: Vec<(String, Map<String, Value>)> = Vec::new();
        // (record, the field's value, its target's HubSpot id) now in step.
        let mut record: Vec<(usize, &str, String)> = Vec::new();
        // The targets' links in one call (a batch's contacts name hundreds of accounts).
        let mut targets: Vec<String> = which
            .iter()
            .filter_map(|&n| text(&synced[n].row, &lookup.field).map(str::to_owned))
            .collect();
        targets.sort_unstable();
        targets.dedup();
        let target_links = self
            .links_of(HashMap::from([(
                (Side::Salesforce, lookup.target_sobject.as_str()),
                targets,
            )]))
            .await?;
        for &n in which {
            let s = &synced[n];
            let associated: &[String] = current
                .iter()
                .find(|(id, _)| *id == s.hubspot_id)
                .map(|(_, c)| c.as_slice())
                .unwrap_or_default();
            match text(&s.row, &lookup.field) {
                Some(target) => match target_links
                    .get(&(Side::Salesforce, target.to_owned()))
                    .cloned()
                    .flatten()
                {
                    Some(l) if in_step(n) == Some(l.hubspot_id.as_str()) => {}
                    Some(l) => {
                        if !associated.contains(&l.hubspot_id) {
                            associate.push((s.hubspot_id.clone(), l.hubspot_id.clone()));
                        }
                        record.push((n, target, l.hubspot_id));
                    }
                    None => missing.push(n, Side::Salesforce, &lookup.target_sobject, target),
                },
                None => {
                    let found = self.associated_target(lookup, associated).await?;
                    match (found, associated.first()) {
                        // Linked, but as an sObject this field cannot point at.
                        (Some(l), _) if l.salesforce_object != lookup.target_sobject => {
                            missing.wrong_kind.push((
                                n,
                                format!(
                                    "{}.{} takes a {}; HubSpot {} {} syncs with {} {}: convert the {} to fill it",
                                    s.sobject,
                                    lookup.field,
                                    lookup.target_sobject,
                                    lookup.target_hubspot,
                                    l.hubspot_id,
                                    l.salesforce_object,
                                    l.salesforce_id,
                                    l.salesforce_object
                                ),
                            ));
                        }
                        (Some(l), _) => {
                            let mut row = Map::new();
                            row.insert("Id".into(), json!(s.salesforce_id));
                            row.insert(lookup.field.clone(), json!(l.salesforce_id));
                            set_field.push((s.sobject.clone(), row));
                        }
                        (None, Some(first)) => {
                            missing.push(n, Side::HubSpot, &lookup.target_hubspot, first)
                        }
                        // Read and associated with nothing, as the field says.
                        (None, None) if to_read.contains(&n) => {
                            record.push((n, "", String::new()));
                        }
                        (None, None) => {}
                    }
                }
            }
        }
        if pass == Pass::Look {
            return Ok(missing);
        }
        if !associate.is_empty() {
            self.hubspot
                .associate(&run.spec.hubspot_object, &lookup.target_hubspot, &associate)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.record_lookups(run, synced, &lookup.field, &record)
            .await;
        if !set_field.is_empty() {
            let results = self
                .salesforce
                .update(&set_field, false)
                .await
                .map_err(|e| e.to_string())?;
            for r in results.iter().filter(|r| !r.ok()) {
                tracing::warn!(message = "lookup not set", field = %lookup.field, errors = ?r.errors);
            }
        }
        Ok(missing)
    }

    /// The first linked target of `associated` (HubSpot ids) the lookup's field can
    /// point at, else the first linked one (to say why the field stays empty).
    async fn associated_target(
        &self,
        lookup: &Lookup,
        associated: &[String],
    ) -> Result<Option<Link>, String> {
        let mut found = None;
        for target in associated {
            let link = self
                .links
                .by_hubspot(&lookup.target, target)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(l) = link {
                let fits = l.salesforce_object == lookup.target_sobject;
                if fits || found.is_none() {
                    found = Some(l);
                }
                if fits {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Fills the lookups of the Salesforce records about to be created (`creates`,
    /// planned pairs) from the HubSpot associations the batch already knows (listed or
    /// read with its records) whose targets are linked: the record is created with its
    /// field set, rather than updated just after its link was stored, which would come
    /// back as a change of ours the link does not know (a read of both records for each
    /// deal of an initial sync). Anything else is left to the lookup pass.
    pub(crate) async fn inline_lookups(
        &self,
        run: &PairRun,
        planned: &mut [Planned],
        creates: &[usize],
        prefetch: &Prefetch,
    ) {
        for lookup in &run.spec.lookups {
            for &n in creates {
                let p = &planned[n];
                if !lookup.on.contains(&p.sobject)
                    || p.salesforce_writes.contains_key(&lookup.field)
                {
                    continue;
                }
                let Some(id) = p.hubspot_id.clone() else {
                    continue;
                };
                let (known, _) = prefetch.associations(&lookup.target_hubspot, &[id]);
                let Some((_, associated)) = known.first() else {
                    continue;
                };
                // The store did not answer: the lookup pass tries again.
                let Ok(Some(link)) = self.associated_target(lookup, associated).await else {
                    continue;
                };
                if link.salesforce_object == lookup.target_sobject {
                    planned[n]
                        .salesforce_writes
                        .insert(lookup.field.clone(), json!(link.salesforce_id));
                }
            }
        }
    }

    /// The lookups HubSpot's creates of this pair take inline (a contact's company).
    fn inline_lookups_of<'a>(&self, run: &'a PairRun) -> impl Iterator<Item = &'a Lookup> {
        let spec = &run.spec;
        spec.lookups.iter().filter(|l| {
            self.hubspot
                .creates_associated(&spec.hubspot_object, &l.target_hubspot)
        })
    }

    /// Each of `creates` (planned pairs) with a value in `lookup`'s field: its index,
    /// and its target's link (`None`: not linked), the links looked up at once.
    async fn create_targets(
        &self,
        lookup: &Lookup,
        planned: &[Planned],
        creates: &[usize],
    ) -> Result<Vec<(usize, String, Option<Link>)>, String> {
        let (which, targets): (Vec<usize>, Vec<String>) = creates
            .iter()
            .filter(|&&n| lookup.on.contains(&planned[n].sobject))
            .filter_map(|&n| {
                let row = &planned[n].work.salesforce.as_ref()?.row;
                Some((n, text(row, &lookup.field)?.to_owned()))
            })
            .unzip();
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let links = self
            .links
            .by_salesforce_ids(&lookup.target_sobject, &targets)
            .await
            .map_err(|e| e.to_string())?;
        Ok(which
            .into_iter()
            .zip(targets)
            .zip(links)
            .map(|((n, target), link)| (n, target, link))
            .collect())
    }

    /// Before HubSpot creates (`creates`, planned pairs made as plain creates): syncs
    /// the targets of their inline lookups that are not linked yet (a new Contact's
    /// Account the queue has not brought yet), so that the creates carry their
    /// associations instead of an associate call after them. The lookup pass would sync
    /// these targets anyway, after the creates. A target that does not sync is left to
    /// that pass.
    pub(crate) async fn bring_in_create_targets(
        &self,
        run: &PairRun,
        planned: &[Planned],
        creates: &[usize],
        depth: u8,
    ) {
        if creates.is_empty() || depth >= MAX_DEPTH {
            return;
        }
        let mut refs: Vec<WorkItem> = Vec::new();
        for lookup in self.inline_lookups_of(run) {
            // The store did not answer: the lookup pass looks again.
            let Ok(targets) = self.create_targets(lookup, planned, creates).await else {
                continue;
            };
            refs.extend(
                targets
                    .iter()
                    .filter(|(_, _, link)| link.is_none())
                    .map(|(_, target, _)| {
                        related(Side::Salesforce, &lookup.target_sobject, target)
                    }),
            );
        }
        if refs.is_empty() {
            return;
        }
        refs.sort_by(|a, b| (&a.object, &a.id).cmp(&(&b.object, &b.id)));
        refs.dedup();
        tracing::info!(message = "syncing the targets of new records first", pair = %run.spec.name, count = refs.len());
        self.sync_related(refs, depth + 1).await;
    }

    /// The HubSpot associations the records about to be created in HubSpot (`creates`,
    /// planned pairs) are created with: the linked target of each Salesforce lookup
    /// with a value (a Contact's Account), where HubSpot takes it with the create. The
    /// lookup pass then has nothing to associate.
    pub(crate) async fn inline_associations(
        &self,
        run: &PairRun,
        planned: &mut [Planned],
        creates: &[usize],
    ) {
        for lookup in self.inline_lookups_of(run) {
            // The store did not answer, or a target is not linked yet: the lookup
            // pass associates it, or syncs the target first.
            let Ok(targets) = self.create_targets(lookup, planned, creates).await else {
                continue;
            };
            for (n, _, link) in targets {
                if let Some(link) = link {
                    planned[n]
                        .hubspot_associations
                        .push((lookup.target_hubspot.clone(), link.hubspot_id));
                }
            }
        }
    }

    /// Records on the links of `synced[n]` that `field` is in step at `(value, hubspot)`
    /// (its value associated with the HubSpot record `hubspot`), for each
    /// `(n, value, hubspot)`: the batch's links read in one store call and written in
    /// another. Best effort: a link another batch moved on meanwhile keeps its own, and
    /// the next sync reads the associations.
    async fn record_lookups(
        &self,
        run: &PairRun,
        synced: &[Synced],
        field: &str,
        records: &[(usize, &str, String)],
    ) {
        let moved: Vec<&(usize, &str, String)> = records
            .iter()
            .filter(|(n, value, hubspot)| {
                synced[*n].recorded.lookup(field) != Some((value, hubspot.as_str()))
            })
            .collect();
        if moved.is_empty() {
            return;
        }
        let ids: Vec<String> = moved
            .iter()
            .map(|(n, _, _)| synced[*n].hubspot_id.clone())
            .collect();
        let Ok(links) = self.links.by_hubspot_ids(&run.spec.name, &ids).await else {
            return;
        };
        let mut updates: Vec<Link> = Vec::new();
        for ((_, value, hubspot), link) in moved.iter().zip(links) {
            let Some(mut link) = link else {
                continue;
            };
            // A record named twice (two references of one batch) is written once.
            if link.last_synced.lookup(field) == Some((value, hubspot.as_str()))
                || updates.iter().any(|u| u.hubspot_id == link.hubspot_id)
            {
                continue;
            }
            link.last_synced.set_lookup(field, value, hubspot);
            updates.push(link);
        }
        for result in self.links.update_all(&updates).await {
            if let Err(e) = result {
                tracing::debug!(message = "lookup not recorded", field = %field, error = %e);
            }
        }
    }

    /// One pass over a junction: its rows and the HubSpot associations, made equal by
    /// adding what either side lacks (a removal on one side is not copied: neither CRM
    /// says which side removed).
    async fn junction_pass(
        &self,
        run: &PairRun,
        junction: &Junction,
        synced: &[Synced],
        which: &[usize],
        prefetch: &Prefetch,
    ) -> Result<Missing, String> {
        let associated = self
            .associations_of(run, &junction.target_hubspot, synced, which, prefetch)
            .await?;
        let parents: Vec<&str> = which
            .iter()
            .map(|&n| synced[n].salesforce_id.as_str())
            .collect();
        let rows = self
            .query_in(&parents, |list| {
                format!(
                    "SELECT Id, {parent}, {child} FROM {sobject} WHERE {parent} IN ({list})",
                    parent = junction.parent_field,
                    child = junction.child_field,
                    sobject = junction.sobject,
                )
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut existing: HashMap<usize, Vec<String>> = HashMap::new();
        for row in rows.iter().filter_map(Value::as_object) {
            let (Some(parent), Some(child)) = (
                text(row, &junction.parent_field),
                text(row, &junction.child_field),
            ) else {
                continue;
            };
            if let Some(&n) = which
                .iter()
                .find(|&&n| same_sf_id(&synced[n].salesforce_id, parent))
            {
                existing.entry(n).or_default().push(child.to_owned());
            }
        }
        let mut missing = Missing::default();
        let mut create: Vec<(String, Map<String, Value>)> = Vec::new();
        let mut associate = Vec::new();
        for &n in which {
            let s = &synced[n];
            let roles = existing.get(&n).cloned().unwrap_or_default();
            let hubspot_targets: &[String] = associated
                .iter()
                .find(|(id, _)| *id == s.hubspot_id)
                .map(|(_, t)| t.as_slice())
                .unwrap_or_default();
            for target in hubspot_targets {
                match self
                    .links
                    .by_hubspot(&junction.target, target)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    // A junction row points at one sObject only (a Lead has no roles).
                    Some(l) if l.salesforce_object != junction.target_sobject => {}
                    Some(l) if roles.iter().any(|r| same_sf_id(r, &l.salesforce_id)) => {}
                    Some(l) => {
                        let mut row = Map::new();
                        row.insert(junction.parent_field.clone(), json!(s.salesforce_id));
                        row.insert(junction.child_field.clone(), json!(l.salesforce_id));
                        create.push((junction.sobject.clone(), row));
                    }
                    None => missing.push(n, Side::HubSpot, &junction.target_hubspot, target),
                }
            }
            for role in &roles {
                match self
                    .links
                    .by_salesforce(&junction.target_sobject, role)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(l) if hubspot_targets.contains(&l.hubspot_id) => {}
                    Some(l) => associate.push((s.hubspot_id.clone(), l.hubspot_id)),
                    None => missing.push(n, Side::Salesforce, &junction.target_sobject, role),
                }
            }
        }
        if !associate.is_empty() {
            associate.sort();
            associate.dedup();
            self.hubspot
                .associate(
                    &run.spec.hubspot_object,
                    &junction.target_hubspot,
                    &associate,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        if !create.is_empty() {
            let results = self
                .salesforce
                .create(&create, false)
                .await
                .map_err(|e| e.to_string())?;
            for r in results.iter().filter(|r| !r.ok()) {
                tracing::warn!(message = "junction row not created", sobject = %junction.sobject, errors = ?r.errors);
            }
        }
        Ok(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(side: Side, seen: Option<Seen>) -> WorkItem {
        WorkItem {
            side,
            object: "contacts".into(),
            id: "1".into(),
            origin: "webhook".into(),
            seen,
        }
    }

    #[test]
    fn only_edits_of_values_leave_associations_as_they_were() {
        let property = Seen::Property {
            name: "jobtitle".into(),
            value: "Architect".into(),
            at: None,
        };
        let values = |listed_at| Seen::Values {
            values: Map::new(),
            modified_at: 1,
            whole: false,
            listed_at,
            associations: Default::default(),
        };
        assert!(values_only(&item(Side::HubSpot, Some(property.clone()))));
        assert!(values_only(&item(Side::Salesforce, Some(values(None)))));
        // An association's webhook says nothing of values; nor a retry.
        assert!(!values_only(&item(Side::HubSpot, None)));
        assert!(!values_only(&item(Side::HubSpot, Some(Seen::Created))));
        assert!(
            !values_only(&item(Side::HubSpot, Some(values(Some(1))))),
            "a listing is no edit"
        );
        let all = |claims| Seen::All { claims };
        assert!(values_only(&item(
            Side::HubSpot,
            Some(all(vec![property.clone(), values(None)]))
        )));
        assert!(!values_only(&item(
            Side::HubSpot,
            Some(all(vec![property, Seen::Created]))
        )));
    }
}
