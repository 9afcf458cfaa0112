//! The one flow every object pair runs, a batch at a time: read both sides in bulk,
//! find links or match (`matching.rs`), apply the pair's rules, claim the dedup key
//! before any create, merge (`plan.rs`), write both sides in batches (`writes.rs`),
//! store links and last-synced values, record outcomes, then bring the pair's lookups
//! and junctions in step (`lookups.rs`).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::pairs::PairRun;
use super::work::{Prefetch, Record, Work, answers_for};
use super::{ItemOutcome, Pipeline};
use crate::domain::Side;
use crate::ports::{HsRecord, Link, Outcome, Seen, WorkItem};

pub(crate) use crate::domain::same_salesforce_id as same_sf_id;

/// A SOQL string literal: `'...'`, quotes and backslashes escaped.
pub(crate) fn soql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A Salesforce record's object and id as [`same_sf_id`] compares it (its first 15
/// characters); none for an id too short to compare.
fn sf_key(r: &Record) -> Option<(&str, &str)> {
    let id = r.row.get("Id")?.as_str()?.get(..15)?;
    Some((r.object.as_str(), id))
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !value.is_empty() && !list.iter().any(|x| x == value) {
        list.push(value.to_owned());
    }
}

/// The links the echo check looked up for a batch's references (by side and id), and
/// when it began looking: the batch's time.
struct KnownLinks {
    /// A claim is made at this time, not later: a link stored and its claim released
    /// after this lookup found none must refuse the claim, or the batch would create
    /// again what the other one made (the scale bench's companies made twice).
    at: i64,
    links: std::collections::HashMap<(Side, String), Option<Link>>,
}

/// The values `item` brings of its record when they may stand in for a read: every
/// property or field the pair reads, modified after the link's last sync (a record as
/// read before that sync may have changed since: it is read again).
fn carried<'a>(item: &'a WorkItem, link: Option<&Link>) -> Option<&'a Map<String, Value>> {
    match &item.seen {
        Some(Seen::Values {
            values,
            modified_at,
            whole: true,
            ..
        }) if link.is_none_or(|l| *modified_at > l.synced_at) => Some(values),
        _ => None,
    }
}

/// Why a reference of our own write in flight goes back to the queue unread.
const IN_FLIGHT: &str = "our own write, its link not stored yet: looked at again in a moment";

impl Pipeline {
    /// The HubSpot properties a pair reads: mapped, identity, key and hook ones.
    pub(crate) fn pair_properties(&self, run: &PairRun) -> Vec<String> {
        let spec = &run.spec;
        let mut props: Vec<String> = Vec::new();
        if let Some(pair) = self.config.pair(&spec.name) {
            for f in pair.fields() {
                if !self.is_broken(Side::HubSpot, &spec.hubspot_object, &f.hubspot) {
                    push_unique(&mut props, &f.hubspot);
                }
            }
        }
        push_unique(&mut props, &spec.hubspot_modified);
        push_unique(&mut props, "hs_merged_object_ids");
        for (_, p) in &spec.salesforce_id_properties {
            push_unique(&mut props, p);
        }
        if let Some(key) = &spec.match_key {
            push_unique(&mut props, &key.hubspot);
        }
        if let Some(kind) = &spec.kind_property {
            push_unique(&mut props, kind);
        }
        for p in run
            .hooks
            .hubspot_properties()
            .into_iter()
            .chain(spec.inclusion.hubspot_properties())
        {
            push_unique(&mut props, &p);
        }
        props
    }

    /// The Salesforce fields a pair reads on `sobject`.
    pub(crate) fn pair_fields(&self, run: &PairRun, sobject: &str) -> Vec<String> {
        let spec = &run.spec;
        let mut fields: Vec<String> = Vec::new();
        if let Some(pair) = self.config.pair(&spec.name) {
            for f in pair.fields() {
                if let Some(field) = f.salesforce.on(sobject)
                    && !self.is_broken(Side::Salesforce, sobject, field)
                {
                    push_unique(&mut fields, field);
                }
            }
        }
        // CreatedDate: when a history-tracked field without history rows got its value.
        for f in [
            "Id",
            "LastModifiedDate",
            "CreatedDate",
            spec.hubspot_id_field.as_str(),
        ] {
            push_unique(&mut fields, f);
        }
        if let Some(key) = &spec.match_key {
            push_unique(&mut fields, &key.salesforce);
        }
        for l in spec
            .lookups
            .iter()
            .filter(|l| l.on.iter().any(|o| o == sobject))
        {
            push_unique(&mut fields, &l.field);
        }
        for f in run
            .hooks
            .salesforce_fields(sobject)
            .into_iter()
            .chain(spec.inclusion.salesforce_fields(sobject))
        {
            push_unique(&mut fields, &f);
        }
        fields
    }

    pub(crate) async fn read_hubspot(
        &self,
        run: &PairRun,
        ids: &[String],
        id_property: Option<&str>,
    ) -> Result<Vec<HsRecord>, String> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let props = self.pair_properties(run);
        let refs: Vec<&str> = props.iter().map(String::as_str).collect();
        // Without property history: `refine_with_history` reads it where it decides.
        self.hubspot
            .batch_read(&run.spec.hubspot_object, ids, &refs, &[], id_property)
            .await
            .map_err(|e| e.to_string())
    }

    pub(crate) async fn read_salesforce(
        &self,
        run: &PairRun,
        sobject: &str,
        ids: &[String],
    ) -> Result<Vec<Record>, String> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let fields = self.pair_fields(run, sobject);
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        let rows = self
            .salesforce
            .retrieve(sobject, ids, &refs)
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_object().cloned())
            .map(|r| Record::new(sobject, r))
            .collect())
    }

    /// Syncs a batch of one pair's references; one outcome per item, in order.
    /// `depth`: how many lookups away from the queued records this batch is (a
    /// deal's company synced for it is one).
    pub(crate) async fn sync_pair(
        &self,
        run: &PairRun,
        items: &[WorkItem],
        depth: u8,
    ) -> Vec<ItemOutcome> {
        // Our own writes come back by push and feed, often before the batch that wrote
        // them stored its links: recognised now, they are done without a read. The
        // links the check looked up serve the read of the rest.
        let now = self.clock.now_ms();
        // Per reference: done as an echo, sent back as our write in flight, or read.
        let mut answered: Vec<Option<ItemOutcome>> = Vec::with_capacity(items.len());
        let mut known = KnownLinks {
            at: now,
            links: Default::default(),
        };
        for (item, check) in items.iter().zip(self.check_echoes(run, items).await) {
            let answer = if check.echo {
                Some(ItemOutcome::Done)
            } else if let Some(link) = &check.link
                && super::echo::in_flight(run, item, link.as_ref(), now)
            {
                Some(ItemOutcome::Later(IN_FLIGHT.into()))
            } else {
                None
            };
            if let Some(link) = check.link {
                known.links.insert((item.side, item.id.clone()), link);
            }
            answered.push(answer);
        }
        let echoes = answered
            .iter()
            .filter(|a| matches!(a, Some(ItemOutcome::Done)))
            .count();
        let in_flight = answered.iter().filter(|a| a.is_some()).count() - echoes;
        tracing::debug!(message = "echoes recognised", pair = %run.spec.name, references = items.len(), echoes, in_flight);
        if echoes + in_flight == 0 {
            return self.sync_read(run, items, depth, &known).await;
        }
        let rest: Vec<WorkItem> = items
            .iter()
            .zip(&answered)
            .filter(|(_, a)| a.is_none())
            .map(|(i, _)| i.clone())
            .collect();
        let mut synced = if rest.is_empty() {
            Vec::new()
        } else {
            self.sync_read(run, &rest, depth, &known).await
        }
        .into_iter();
        answered
            .into_iter()
            .map(|a| a.unwrap_or_else(|| synced.next().unwrap_or(ItemOutcome::Done)))
            .collect()
    }

    /// [`Pipeline::sync_pair`] for references that need their records read.
    async fn sync_read(
        &self,
        run: &PairRun,
        items: &[WorkItem],
        depth: u8,
        known: &KnownLinks,
    ) -> Vec<ItemOutcome> {
        let mut outcomes = vec![ItemOutcome::Done; items.len()];
        self.check_mapping(run).await;
        if let Err(e) = self
            .try_sync_pair(run, items, &mut outcomes, depth, known)
            .await
        {
            // A field deleted since the metadata was read: the retry runs without it.
            if e.contains("INVALID_FIELD")
                || e.contains("No such column")
                || e.contains("PROPERTY_DOESNT_EXIST")
            {
                self.field_refused(&e).await;
            }
            tracing::warn!(message = "batch failed; returning it to the queue", pair = %run.spec.name, error = %e);
            return vec![ItemOutcome::Retry(e); items.len()];
        }
        outcomes
    }

    async fn try_sync_pair(
        &self,
        run: &PairRun,
        items: &[WorkItem],
        outcomes: &mut [ItemOutcome],
        depth: u8,
        known: &KnownLinks,
    ) -> Result<(), String> {
        let now = known.at;
        let t0 = std::time::Instant::now();
        let (mut works, prefetch) = self.gather(run, items, now, known).await?;
        let t_gather = t0.elapsed().as_millis();
        self.link_and_match(run, &mut works, &prefetch).await?;
        let t_match = t0.elapsed().as_millis();
        self.refine_with_history(run, &mut works).await?;
        self.read_opportunities(run, &mut works).await?;
        let members = self.inclusion_members(run, &works).await?;
        let t_refine = t0.elapsed().as_millis();
        let mut planned = Vec::new();
        // Keys a pair of this batch is creating: the claim store lets its owner claim
        // again, so two records of one batch with one key are kept apart here.
        let mut creating: HashSet<String> = HashSet::new();
        for mut w in works {
            w.in_list = members
                .as_ref()
                .map(|m| w.hubspot.as_ref().is_some_and(|h| m.contains(&h.id)));
            let first = w.items.first().copied().unwrap_or(0);
            match self.plan(run, &items[first], w, &mut creating, now).await {
                Ok(p) => planned.push(p),
                Err((outcome, indexes)) => {
                    for n in indexes {
                        outcomes[n] = outcome.clone();
                    }
                }
            }
        }
        self.claim_planned(&mut planned, now).await;
        let t_plan = t0.elapsed().as_millis();
        // Crash tests aim at every step boundary of a batch that writes: between the
        // Salesforce and the HubSpot write, after both before the links, after the
        // links before the queue hears of it.
        let pair = &run.spec.name;
        // A new record's related records not synced yet sync first, so that its
        // create carries its associations.
        let creates = super::writes::plain_hubspot_creates(run, &planned);
        self.bring_in_create_targets(run, &planned, &creates, depth)
            .await;
        // The HubSpot updates' check reads while the Salesforce writes are in flight:
        // still just before its own writes, and one round trip fewer.
        let check = Pipeline::hubspot_check_plan(&run.spec, &planned);
        let ((), early) = tokio::join!(
            self.write_salesforce(run, items, &mut planned, now, &prefetch),
            self.read_hubspot_check(&run.spec.hubspot_object, check),
        );
        let wrote_salesforce = planned
            .iter()
            .any(|p| p.live() && !p.salesforce_writes.is_empty());
        if wrote_salesforce {
            self.failpoint(&format!("after_salesforce_write:{pair}"));
        }
        self.write_hubspot(run, items, &mut planned, now, early.as_ref())
            .await;
        let wrote = planned
            .iter()
            .any(|p| p.live() && !(p.salesforce_writes.is_empty() && p.hubspot_writes.is_empty()));
        if wrote {
            self.failpoint(&format!("after_crm_write:{pair}"));
        }
        let moved = Pipeline::lifecycle_moves(&planned);
        let synced = super::lookups::Synced::of(&planned, items);
        let t_write = t0.elapsed().as_millis();
        self.finish(pair, items, planned, outcomes, now).await;
        let t_finish = t0.elapsed().as_millis();
        if wrote {
            self.failpoint(&format!("after_link_write:{pair}"));
        }
        self.sync_lookups(run, items, synced, outcomes, depth, &prefetch)
            .await;
        self.propagate_lifecycle(&moved).await;
        // Where a batch's time goes (ms from its start to the end of each step): the
        // scale bench's `CRMSYNC_LOG=crmsync_shared::pipeline::flow=debug`.
        tracing::debug!(
            message = "a batch's steps",
            pair = %pair,
            references = items.len(),
            read = t_gather,
            matched = t_match,
            refined = t_refine,
            planned = t_plan,
            written = t_write,
            linked = t_finish,
            done = t0.elapsed().as_millis()
        );
        Ok(())
    }

    /// Which of the batch's HubSpot records are in the pair's inclusion list, read for
    /// those records only (a list of 100,000 is not paged for a batch of ten); `None`
    /// when no list rule applies.
    async fn inclusion_members(
        &self,
        run: &PairRun,
        works: &[Work],
    ) -> Result<Option<HashSet<String>>, String> {
        let Some(list) = run.spec.inclusion.list() else {
            return Ok(None);
        };
        let ids: Vec<String> = works
            .iter()
            .filter_map(|w| w.hubspot.as_ref().map(|h| h.id.clone()))
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let members = self
            .hubspot
            .members_among(list, &run.spec.hubspot_object, &ids)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(members.into_iter().collect()))
    }

    /// The links of records by side and object (HubSpot's by the pair's name,
    /// Salesforce's by sObject): one store call each, not one per record.
    pub(crate) async fn links_of(
        &self,
        wanted: std::collections::HashMap<(Side, &str), Vec<String>>,
    ) -> Result<std::collections::HashMap<(Side, String), Option<Link>>, String> {
        let mut found = std::collections::HashMap::new();
        for ((side, object), ids) in wanted.into_iter().filter(|(_, ids)| !ids.is_empty()) {
            let links = match side {
                Side::HubSpot => self.links.by_hubspot_ids(object, &ids).await,
                Side::Salesforce => self.links.by_salesforce_ids(object, &ids).await,
            }
            .map_err(|e| e.to_string())?;
            found.extend(ids.into_iter().map(|id| (side, id)).zip(links));
        }
        Ok(found)
    }

    /// The records the queue names, read in bulk from each side, one work per record;
    /// their linked records of the other side are read in the same calls (`Prefetch`).
    /// Links the echo check looked up (`known`) are not looked up again.
    async fn gather(
        &self,
        run: &PairRun,
        items: &[WorkItem],
        now: i64,
        known: &KnownLinks,
    ) -> Result<(Vec<Work>, Prefetch), String> {
        let mut prefetch = Prefetch::default();
        let mut hs_ids: Vec<String> = Vec::new();
        let mut sf_ids: Vec<(String, Vec<String>)> = run
            .spec
            .sobjects
            .iter()
            .map(|s| (s.clone(), Vec::new()))
            .collect();
        let mut push_sf = |sobject: &str, id: &str| {
            if let Some((_, ids)) = sf_ids.iter_mut().find(|(s, _)| s == sobject) {
                push_unique(ids, id);
            }
        };
        // Records their references bring as a listing or a feed read them: synced from
        // as read, not read again.
        let mut carried_hs: Vec<HsRecord> = Vec::new();
        let mut carried_sf: Vec<Record> = Vec::new();
        // Records their webhooks say enough of, and the HubSpot partners of Salesforce
        // changes that brought their values, as last synced (`pushed.rs`): not read
        // either.
        let mut pushed: Vec<HsRecord> = Vec::new();
        let mut partners: Vec<HsRecord> = Vec::new();
        let properties = self.pair_properties(run);
        let mapped: Vec<&str> = self
            .config
            .pair(&run.spec.name)
            .map(|p| {
                p.fields()
                    .iter()
                    .map(|f| f.hubspot.as_str())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|m| properties.iter().any(|p| p == m))
            .collect();
        // The links neither the prefetch nor the echo check has: one call per side and
        // object, not one per reference.
        let mut unknown: std::collections::HashMap<(Side, &str), Vec<String>> =
            std::collections::HashMap::new();
        for i in items {
            let key = (i.side, i.id.clone());
            if prefetch.link(i.side, &i.id).is_none() && !known.links.contains_key(&key) {
                let object = match i.side {
                    Side::HubSpot => run.spec.name.as_str(),
                    Side::Salesforce => i.object.as_str(),
                };
                unknown.entry((i.side, object)).or_default().push(key.1);
            }
        }
        let looked_up = self.links_of(unknown).await?;
        for i in items {
            if prefetch.link(i.side, &i.id).is_some() {
                continue;
            }
            let key = (i.side, i.id.clone());
            let link = known
                .links
                .get(&key)
                .or_else(|| looked_up.get(&key))
                .cloned()
                .flatten();
            match (i.side, carried(i, link.as_ref())) {
                (Side::HubSpot, Some(values)) => carried_hs.push(HsRecord {
                    id: i.id.clone(),
                    properties: values.clone(),
                    associations: match &i.seen {
                        Some(Seen::Values { associations, .. }) => associations.clone(),
                        _ => Default::default(),
                    },
                    ..HsRecord::default()
                }),
                (Side::HubSpot, None) => match link.as_ref().and_then(|l| {
                    super::pushed::pushed_record(&run.spec, &properties, &mapped, i, l)
                }) {
                    Some(p) => pushed.push(p),
                    None => push_unique(&mut hs_ids, &i.id),
                },
                (Side::Salesforce, Some(values)) => {
                    carried_sf.push(Record::new(&i.object, values.clone()))
                }
                (Side::Salesforce, None) => push_sf(&i.object, &i.id),
            }
            if let Some(l) = &link {
                // A retry carries nothing of its change: it reads both records.
                let as_synced = || {
                    i.seen.as_ref().and_then(|_| {
                        super::pushed::partner_as_synced(&run.spec, &properties, &mapped, l)
                    })
                };
                match i.side {
                    Side::HubSpot => push_sf(&l.salesforce_object, &l.salesforce_id),
                    Side::Salesforce => match as_synced() {
                        Some(h) => partners.push(h),
                        None => push_unique(&mut hs_ids, &l.hubspot_id),
                    },
                }
            }
            prefetch.links.push((i.side, i.id.clone(), link));
        }
        // A record the batch reads anyway, or names twice, is read for all; one its
        // webhooks bring serves its partner too.
        let named: Vec<String> = pushed.iter().map(|p| p.id.clone()).collect();
        let (pushed, read): (Vec<_>, Vec<_>) = pushed.into_iter().partition(|p| {
            let id = &p.id;
            !hs_ids.contains(id)
                && !carried_hs.iter().any(|h| &h.id == id)
                && named.iter().filter(|n| *n == id).count() == 1
        });
        for p in &read {
            push_unique(&mut hs_ids, &p.id);
        }
        let mut as_synced: Vec<HsRecord> = Vec::new();
        for p in partners {
            let id = &p.id;
            let known = hs_ids.contains(id)
                || carried_hs.iter().any(|h| &h.id == id)
                || pushed.iter().any(|h| &h.id == id)
                || as_synced.iter().any(|h| &h.id == id);
            if !known {
                as_synced.push(p);
            }
        }
        let carried_ids: HashSet<&str> = carried_hs.iter().map(|h| h.id.as_str()).collect();
        hs_ids.retain(|id| !carried_ids.contains(id.as_str()));
        let carried_keys: HashSet<(&str, &str)> = carried_sf.iter().filter_map(sf_key).collect();
        for (sobject, ids) in &mut sf_ids {
            ids.retain(|id| {
                id.get(..15)
                    .is_none_or(|id| !carried_keys.contains(&(sobject.as_str(), id)))
            });
        }
        let salesforce = futures::future::try_join_all(
            sf_ids
                .iter()
                .map(|(sobject, ids)| self.read_salesforce(run, sobject, ids)),
        );
        let listed = listed_associations(run, &carried_hs);
        let mut followed = associations_to_read(run, items, &prefetch.links);
        // Listed with their associations: nothing to read.
        for (to, asked) in &mut followed {
            if let Some(l) = listed.iter().find(|l| &l.to == to) {
                let ids: HashSet<&str> = l.asked.iter().map(String::as_str).collect();
                asked.retain(|id| !ids.contains(id.as_str()));
            }
        }
        followed.retain(|(_, asked)| !asked.is_empty());
        let associations =
            futures::future::try_join_all(followed.into_iter().map(|(to, asked)| async move {
                let found = self
                    .hubspot
                    .associations(&run.spec.hubspot_object, &to, &asked)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(super::work::Associated { to, asked, found })
            }));
        let (mut records, rows, associations) = tokio::try_join!(
            self.read_hubspot(run, &hs_ids, None),
            salesforce,
            associations
        )?;
        prefetch.associations = associations;
        prefetch.associations.extend(listed);
        for h in carried_hs {
            if !records.iter().any(|r| r.id == h.id) {
                records.push(h);
            }
        }
        records.extend(pushed);
        records.extend(as_synced);
        prefetch.salesforce = rows.into_iter().flatten().collect();
        // Looked up by key, not by a scan per record: a batch holds a thousand.
        let mut read: HashMap<(String, String), usize> = HashMap::new();
        for (n, r) in prefetch.salesforce.iter().enumerate() {
            if let Some((object, id)) = sf_key(r) {
                read.entry((object.to_owned(), id.to_owned())).or_insert(n);
            }
        }
        for r in carried_sf {
            let key = sf_key(&r).map(|(o, i)| (o.to_owned(), i.to_owned()));
            if key.as_ref().is_some_and(|k| read.contains_key(k)) {
                continue;
            }
            if let Some(key) = key {
                read.insert(key, prefetch.salesforce.len());
            }
            prefetch.salesforce.push(r);
        }
        let mut works = self.hubspot_works(run, items, &records, now).await?;
        prefetch.hubspot = records;
        let mut by_id: HashMap<String, usize> = HashMap::new();
        for (n, w) in works.iter().enumerate() {
            if let Some(s) = &w.salesforce {
                by_id.entry(s.id()).or_insert(n);
            }
        }
        for sobject in &run.spec.sobjects {
            let mine = |i: &&WorkItem| i.side == Side::Salesforce && &i.object == sobject;
            for (n, item) in items.iter().enumerate().filter(|(_, i)| mine(i)) {
                let found = item
                    .id
                    .get(..15)
                    .and_then(|id| read.get(&(sobject.clone(), id.to_owned())));
                let Some(r) = found.map(|&at| &prefetch.salesforce[at]) else {
                    self.salesforce_deleted(run, item, now).await?;
                    continue;
                };
                let id = r.id();
                match by_id.get(&id).map(|&at| &mut works[at]) {
                    Some(w) => {
                        w.items.push(n);
                        w.news &= item.seen.is_some();
                    }
                    None => {
                        by_id.insert(id, works.len());
                        works.push(Work {
                            salesforce: Some(r.clone()),
                            items: vec![n],
                            origin: Some(Side::Salesforce),
                            news: item.seen.is_some(),
                            ..Work::default()
                        });
                    }
                }
            }
        }
        Ok((works, prefetch))
    }

    /// The HubSpot records the queue names, one work per record. An id merged into
    /// another resolves to the survivor; a record gone from HubSpot loses its link
    /// (nothing is deleted in Salesforce) and is skipped with that reason.
    async fn hubspot_works(
        &self,
        run: &PairRun,
        items: &[WorkItem],
        records: &[HsRecord],
        now: i64,
    ) -> Result<Vec<Work>, String> {
        let mut works: Vec<Work> = Vec::new();
        for (n, item) in items
            .iter()
            .enumerate()
            .filter(|(_, i)| i.side == Side::HubSpot)
        {
            let found = records.iter().find(|r| answers_for(r, &item.id));
            let Some(r) = found else {
                self.hubspot_deleted(&run.spec.name, &item.id).await?;
                let code = Some("deleted_in_hubspot");
                self.note(item, Side::HubSpot, Outcome::Skipped, code, None, now)
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

    /// A Salesforce record that is gone: the HubSpot record is archived when the pair
    /// says so, and the link goes either way.
    async fn salesforce_deleted(
        &self,
        run: &PairRun,
        item: &WorkItem,
        now: i64,
    ) -> Result<(), String> {
        let link = self
            .links
            .by_salesforce(&item.object, &item.id)
            .await
            .map_err(|e| e.to_string())?;
        let archive = run.hooks.archive_on_salesforce_delete();
        if let Some(link) = link {
            if archive {
                self.hubspot
                    .batch_archive(
                        &run.spec.hubspot_object,
                        std::slice::from_ref(&link.hubspot_id),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            }
            self.links.remove(&link).await.map_err(|e| e.to_string())?;
        }
        let code = if archive {
            "deleted_in_salesforce_archived"
        } else {
            "deleted_in_salesforce"
        };
        self.note(
            item,
            Side::Salesforce,
            Outcome::Skipped,
            Some(code),
            None,
            now,
        )
        .await;
        Ok(())
    }
}

/// The HubSpot objects the pair's lookups and junctions follow associations to.
pub(crate) fn followed_objects(run: &PairRun) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let lookups = run.spec.lookups.iter().map(|l| l.target_hubspot.as_str());
    for to in lookups.chain(run.spec.junctions.iter().map(|j| j.target_hubspot.as_str())) {
        if !out.contains(&to) {
            out.push(to);
        }
    }
    out
}

/// The associations a listing's records came with, per object the pair follows: as
/// good as read with the records.
fn listed_associations(run: &PairRun, carried: &[HsRecord]) -> Vec<super::work::Associated> {
    let mut out = Vec::new();
    for to in followed_objects(run) {
        let found: Vec<(String, Vec<String>)> = carried
            .iter()
            .filter_map(|h| Some((h.id.clone(), h.associations.get(to)?.clone())))
            .collect();
        if !found.is_empty() {
            out.push(super::work::Associated {
                to: to.to_owned(),
                asked: found.iter().map(|(id, _)| id.clone()).collect(),
                found,
            });
        }
    }
    out
}

/// The associations the pair's lookups and junctions will read once the batch is
/// written, of the records already linked, and of the unlinked HubSpot records queued
/// (a record they create in Salesforce is created with its lookups set: `lookups.rs`):
/// per HubSpot object they point at, the HubSpot ids. A lookup's field lives on some
/// sObjects only (a Lead has no `AccountId`): only those records' links count.
fn associations_to_read(
    run: &PairRun,
    items: &[WorkItem],
    links: &[(Side, String, Option<Link>)],
) -> Vec<(String, Vec<String>)> {
    // Linked HubSpot records some change of which may have moved their associations: a
    // lookup the link recorded in step is read for these only (`lookups.rs`).
    let by_item: HashMap<(Side, &str), &Link> = links
        .iter()
        .filter_map(|(s, id, l)| Some(((*s, id.as_str()), l.as_ref()?)))
        .collect();
    let moved: HashSet<&str> = items
        .iter()
        .filter(|i| !super::lookups::values_only(i))
        .filter_map(|i| by_item.get(&(i.side, i.id.as_str())))
        .map(|l| l.hubspot_id.as_str())
        .collect();
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let targets = run
        .spec
        .lookups
        .iter()
        .map(|l| (&l.target_hubspot, Some(l)))
        .chain(run.spec.junctions.iter().map(|j| (&j.target_hubspot, None)));
    for (to, lookup) in targets {
        let wanted = |l: &Link| match lookup {
            None => true,
            Some(lookup) => {
                lookup.on.contains(&l.salesforce_object)
                    && (l.last_synced.lookup(&lookup.field).is_none()
                        || moved.contains(&l.hubspot_id.as_str()))
            }
        };
        let unlinked = links.iter().filter_map(|(side, id, l)| match (side, l) {
            (Side::HubSpot, None) => Some(id.clone()),
            _ => None,
        });
        let ids: Vec<String> = links
            .iter()
            .filter_map(|(_, _, l)| l.as_ref())
            .filter(|l| wanted(l))
            .map(|l| l.hubspot_id.clone())
            .chain(unlinked)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let at = match out.iter().position(|(t, _)| t == to) {
            Some(at) => at,
            None => {
                out.push((to.clone(), Vec::new()));
                out.len() - 1
            }
        };
        for id in ids {
            push_unique(&mut out[at].1, &id);
        }
    }
    out
}
