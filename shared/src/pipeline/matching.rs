//! Finding both records of every pair in a batch: links, the other side of linked
//! pairs, converted records, and matches for unlinked records (the Salesforce record a
//! HubSpot record names, then the pair's dedup key, best first by the pair's rank).
//! A few bulk calls for the whole batch, never one per record.

use std::collections::HashMap;

use serde_json::Value;

use super::Pipeline;
use super::flow::{same_sf_id, soql_literal};
use super::pairs::PairRun;
use super::soql::{IN_MAX, literal_list};
use super::work::{MergedInto, Prefetch, Record, Work, answers_for, merge_same_pairs, merged_ids};
use crate::domain::Side;
use crate::domain::pair::{KeyKind, MatchKey};
use crate::ports::{HsRecord, Link, Outcome, StoreError, WorkItem};

/// Keys per `LIKE` query (each key is one condition).
const LIKE_CHUNK: usize = 50;

impl Pipeline {
    pub(crate) async fn link_and_match(
        &self,
        run: &PairRun,
        works: &mut Vec<Work>,
        prefetch: &Prefetch,
    ) -> Result<(), String> {
        let spec = &run.spec;
        let rank = |r: &Record| run.hooks.rank(r);
        // The links the read did not bring: one call per side and object.
        let mut unknown: HashMap<(Side, &str), Vec<String>> = HashMap::new();
        for w in works.iter() {
            match (&w.hubspot, &w.salesforce) {
                (Some(h), _) if prefetch.link(Side::HubSpot, &h.id).is_none() => unknown
                    .entry((Side::HubSpot, spec.name.as_str()))
                    .or_default()
                    .push(h.id.clone()),
                (None, Some(s)) if prefetch.link(Side::Salesforce, &s.id()).is_none() => unknown
                    .entry((Side::Salesforce, s.object.as_str()))
                    .or_default()
                    .push(s.id()),
                _ => {}
            }
        }
        let looked_up = self.links_of(unknown).await?;
        for w in works.iter_mut() {
            w.link = match (&w.hubspot, &w.salesforce) {
                (Some(h), _) => prefetch
                    .link(Side::HubSpot, &h.id)
                    .or_else(|| looked_up.get(&(Side::HubSpot, h.id.clone())).cloned())
                    .flatten(),
                (None, Some(s)) => prefetch
                    .link(Side::Salesforce, &s.id())
                    .or_else(|| looked_up.get(&(Side::Salesforce, s.id())).cloned())
                    .flatten(),
                _ => None,
            };
        }
        self.follow_conversions(run, works).await?;
        self.take_over_merged_links(run, works).await?;
        merge_same_pairs(works, &rank);
        self.read_linked_sides(run, works, prefetch).await?;
        // A linked record read just now may have been converted too.
        if self.follow_conversions(run, works).await? {
            self.read_linked_sides(run, works, prefetch).await?;
        }
        self.match_named(run, works).await?;
        if let Some(key) = &spec.match_key {
            self.match_hubspot_by_key(run, key, works).await?;
        }
        self.match_salesforce_records(run, works).await?;
        self.take_over_twins(run, works).await?;
        merge_same_pairs(works, &rank);
        self.find_unlinked_conversions(run, works).await?;
        for w in works.iter() {
            if let (Some(h), Some(link)) = (&w.hubspot, &w.link)
                && h.id == link.hubspot_id
            {
                self.tell_merged_partners(run, h, link).await?;
            }
        }
        Ok(())
    }

    /// An unlinked pair whose HubSpot record names another Salesforce record, which was
    /// converted into this pair's (a Lead deleted and restored, then converted before
    /// its restore synced): the same person resumed, whose inherited values date from
    /// the Lead (its field history and creation), not from the conversion. One read
    /// per sObject, for these rare pairs only.
    async fn find_unlinked_conversions(
        &self,
        run: &PairRun,
        works: &mut [Work],
    ) -> Result<(), String> {
        let spec = &run.spec;
        let named_other = |w: &Work| -> Option<(String, String)> {
            let (None, None, Some(h), Some(s)) =
                (&w.link, &w.converted_from, &w.hubspot, &w.salesforce)
            else {
                return None;
            };
            named_ids(spec, h)
                .find(|(_, id)| !same_sf_id(id, &s.id()))
                .map(|(sobject, id)| (sobject.clone(), id.to_owned()))
        };
        let mut named: HashMap<String, Vec<String>> = HashMap::new();
        for (sobject, id) in works.iter().filter_map(named_other) {
            named.entry(sobject).or_default().push(id);
        }
        if named.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<Record> = Vec::new();
        for (sobject, ids) in &named {
            rows.extend(self.read_salesforce(run, sobject, ids).await?);
        }
        for w in works.iter_mut() {
            let (Some((_, id)), Some(s)) = (named_other(w), &w.salesforce) else {
                continue;
            };
            let into = (s.object.clone(), s.id());
            let from = rows.iter().find(|r| {
                same_sf_id(&r.id(), &id)
                    && run
                        .hooks
                        .converted_to(r)
                        .is_some_and(|(o, i)| o == into.0 && same_sf_id(&i, &into.1))
            });
            if let Some(from) = from {
                w.converted_from = Some(from.clone());
            }
        }
        Ok(())
    }

    /// A Salesforce record that wins over its linked twin (a Contact over a Lead with its
    /// email) takes the twin's link here, before the merge, so the merge runs against
    /// what the pair last agreed on. A twin it was converted from is kept: its field
    /// history tells when the inherited values changed.
    async fn take_over_twins(&self, run: &PairRun, works: &mut [Work]) -> Result<(), String> {
        let winners: Vec<usize> = (0..works.len())
            .filter(|&n| {
                let w = &works[n];
                match (&w.salesforce, &w.twin_of, &w.link) {
                    (Some(s), Some(twin), None) => run.hooks.takes_over(s, twin),
                    _ => false,
                }
            })
            .collect();
        if winners.is_empty() {
            return Ok(());
        }
        let mut by_object: HashMap<String, Vec<String>> = HashMap::new();
        for &n in &winners {
            if let Some(twin) = &works[n].twin_of {
                by_object
                    .entry(twin.salesforce_object.clone())
                    .or_default()
                    .push(twin.salesforce_id.clone());
            }
        }
        let mut twins: Vec<Record> = Vec::new();
        for (sobject, ids) in &by_object {
            twins.extend(self.read_salesforce(run, sobject, ids).await?);
        }
        for n in winners {
            let w = &mut works[n];
            let (Some(s), Some(twin)) = (w.salesforce.clone(), w.twin_of.take()) else {
                continue;
            };
            let relinked = self
                .links
                .relink(&twin, &twin.hubspot_id, &s.object, &s.id())
                .await
                .map_err(|e| e.to_string())?;
            w.link = Some(relinked);
            w.converted_from = twins
                .iter()
                .find(|t| same_sf_id(&t.id(), &twin.salesforce_id))
                .filter(|t| {
                    run.hooks
                        .converted_to(t)
                        .is_some_and(|(o, id)| o == s.object && same_sf_id(&id, &s.id()))
                })
                .cloned();
        }
        Ok(())
    }

    /// A converted record hands its link to the record it became (a Lead to its
    /// Contact); the Contact is read in its place. Whether any was.
    async fn follow_conversions(&self, run: &PairRun, works: &mut [Work]) -> Result<bool, String> {
        let mut any = false;
        for w in works.iter_mut() {
            let Some(s) = &w.salesforce else { continue };
            if w.superseded.is_some() {
                continue;
            }
            if let (Some(link), Some((sobject, id))) = (&w.link, run.hooks.converted_to(s)) {
                let relinked = match self
                    .links
                    .relink(link, &link.hubspot_id, &sobject, &id)
                    .await
                {
                    Ok(l) => l,
                    // The record it became already syncs with another HubSpot record (a
                    // Lead converted into a Contact the merge survivor or another person
                    // holds, history 4239): this pair ends here, on this record alone.
                    Err(StoreError::Conflict(_)) => {
                        let holder = self
                            .links
                            .by_salesforce(&sobject, &id)
                            .await
                            .map_err(|e| e.to_string())?;
                        w.superseded = Some(format!(
                            "{} {} was converted into {sobject} {id}, which {}; HubSpot {} {} keeps no Salesforce partner",
                            s.object,
                            s.id(),
                            holder.map_or("another pair holds".to_owned(), |h| format!(
                                "syncs with HubSpot {} {}",
                                run.spec.hubspot_object, h.hubspot_id
                            )),
                            run.spec.hubspot_object,
                            link.hubspot_id,
                        ));
                        continue;
                    }
                    Err(e) => return Err(e.to_string()),
                };
                w.link = Some(relinked);
                // The HubSpot record learns the id it now partners (its
                // `salesforcecontactid`, its kind) when this pair writes: every pair's
                // HubSpot record is checked to name its partner (`write_hubspot`).
                w.converted_from = w.salesforce.take();
                any = true;
            }
        }
        Ok(any)
    }

    /// A HubSpot merge makes one record of several: an unlinked survivor takes over a
    /// link of the records merged into it (`kept_merged_link`), so the merge re-links
    /// instead of creating anything.
    async fn take_over_merged_links(
        &self,
        run: &PairRun,
        works: &mut [Work],
    ) -> Result<(), String> {
        for w in works.iter_mut().filter(|w| w.link.is_none()) {
            let Some(h) = &w.hubspot else { continue };
            let links = self.merged_links(run, h).await?;
            let Some(link) = self.kept_merged_link(run, h, &links).await? else {
                continue;
            };
            let relinked = self
                .links
                .relink(&link, &h.id, &link.salesforce_object, &link.salesforce_id)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(message = "a merged contact takes over a link", survivor = %h.id, merged = %link.hubspot_id, salesforce = %link.salesforce_id);
            w.link = Some(relinked);
        }
        Ok(())
    }

    /// The Salesforce partners of the other records merged into `survivor` (which now
    /// syncs with `kept`) stay, unsynced: each says why, now rather than at its next
    /// edit (crmsync never merges Salesforce records; a person does). Called whenever a
    /// merged record syncs, by whichever path it found its partner (its own change or
    /// its partner's, a takeover, a conversion, a restore); a partner that says so
    /// already is not told again.
    async fn tell_merged_partners(
        &self,
        run: &PairRun,
        survivor: &HsRecord,
        kept: &crate::ports::Link,
    ) -> Result<(), String> {
        let spec = &run.spec;
        for other in self.merged_links(run, survivor).await? {
            if same_sf_id(&other.salesforce_id, &kept.salesforce_id) {
                continue;
            }
            let item = WorkItem {
                side: Side::Salesforce,
                object: other.salesforce_object.clone(),
                id: other.salesforce_id.clone(),
                origin: "merge".into(),
                seen: None,
            };
            let told = self
                .status
                .status(&super::record_ref(&item))
                .await
                .ok()
                .flatten()
                .is_some_and(|s| s.last.code.as_deref() == Some(MERGED_IN_HUBSPOT));
            if told {
                continue;
            }
            let message = merged_message(
                &spec.hubspot_object,
                &kept.hubspot_id,
                &kept.salesforce_object,
                &kept.salesforce_id,
            );
            let now = self.clock.now_ms();
            self.note(
                &item,
                Side::Salesforce,
                Outcome::Skipped,
                Some(MERGED_IN_HUBSPOT),
                Some(message),
                now,
            )
            .await;
        }
        Ok(())
    }

    /// Which of `links` (the links of the records merged into `survivor`) the survivor
    /// keeps: the one whose Salesforce record it names; else the one whose Salesforce
    /// record has its key (the merge's primary gives the survivor its email: a
    /// converted person's contact names the Lead, not the Contact it became, history
    /// 163); else, when it names no Salesforce record at all, the first. None when it
    /// names a record none of them holds: that record is its partner, found by name
    /// (its own link went with a deletion, history 146).
    async fn kept_merged_link(
        &self,
        run: &PairRun,
        survivor: &HsRecord,
        links: &[crate::ports::Link],
    ) -> Result<Option<crate::ports::Link>, String> {
        if links.is_empty() {
            return Ok(None);
        }
        let spec = &run.spec;
        let named: Vec<&str> = named_ids(spec, survivor).map(|(_, id)| id).collect();
        if let Some(l) = links
            .iter()
            .find(|l| named.iter().any(|id| same_sf_id(id, &l.salesforce_id)))
        {
            return Ok(Some(l.clone()));
        }
        if let Some(key) = spec
            .match_key
            .as_ref()
            .and_then(|k| Some((k, k.of_hubspot(&survivor.properties)?)))
        {
            let mut by_object: HashMap<&str, Vec<String>> = HashMap::new();
            for l in links {
                by_object
                    .entry(&l.salesforce_object)
                    .or_default()
                    .push(l.salesforce_id.clone());
            }
            for (sobject, ids) in by_object {
                for r in self.read_salesforce(run, sobject, &ids).await? {
                    if key.0.of_salesforce(&r.row).as_ref() == Some(&key.1)
                        && let Some(l) =
                            links.iter().find(|l| same_sf_id(&l.salesforce_id, &r.id()))
                    {
                        return Ok(Some(l.clone()));
                    }
                }
            }
        }
        Ok(links.first().filter(|_| named.is_empty()).cloned())
    }

    /// `link`'s HubSpot record was merged into `survivor`, which is not linked yet: the
    /// survivor keeps the partner `kept_merged_link` chooses (as when the survivor's
    /// own sync comes first).
    async fn follow_merge(
        &self,
        run: &PairRun,
        survivor: &HsRecord,
        link: &crate::ports::Link,
    ) -> Result<Followed, String> {
        let links = self.merged_links(run, survivor).await?;
        let Some(kept) = self.kept_merged_link(run, survivor, &links).await? else {
            let named = named_ids(&run.spec, survivor).next();
            return Ok(Followed::Elsewhere(named.map(|(sobject, id)| MergedInto {
                hubspot_id: survivor.id.clone(),
                salesforce_object: sobject.clone(),
                salesforce_id: id.to_owned(),
            })));
        };
        let relinked = self
            .links
            .relink(
                &kept,
                &survivor.id,
                &kept.salesforce_object,
                &kept.salesforce_id,
            )
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(message = "a merged contact keeps a partner", survivor = %survivor.id, merged = %kept.hubspot_id, salesforce = %kept.salesforce_id);
        Ok(if same_sf_id(&kept.salesforce_id, &link.salesforce_id) {
            Followed::Kept(relinked)
        } else {
            Followed::Elsewhere(Some(MergedInto::of(&relinked)))
        })
    }

    /// The links of the records merged into `survivor` (not its own).
    async fn merged_links(
        &self,
        run: &PairRun,
        survivor: &HsRecord,
    ) -> Result<Vec<crate::ports::Link>, String> {
        let mut links = Vec::new();
        for id in merged_ids(survivor).filter(|id| *id != survivor.id) {
            if let Some(l) = self
                .links
                .by_hubspot(&run.spec.name, &id)
                .await
                .map_err(|e| e.to_string())?
            {
                links.push(l);
            }
        }
        Ok(links)
    }

    /// The other side of linked pairs, in one read per side and sObject.
    async fn read_linked_sides(
        &self,
        run: &PairRun,
        works: &mut [Work],
        prefetch: &Prefetch,
    ) -> Result<(), String> {
        let mut need_hs: Vec<String> = Vec::new();
        let mut need_sf: HashMap<String, Vec<String>> = HashMap::new();
        let mut hs: Vec<HsRecord> = Vec::new();
        let mut sf: Vec<Record> = Vec::new();
        for w in works.iter() {
            let Some(link) = &w.link else { continue };
            if w.hubspot.is_none() {
                match prefetch.hubspot(&link.hubspot_id) {
                    Some(h) => hs.push(h.clone()),
                    None => need_hs.push(link.hubspot_id.clone()),
                }
            }
            if w.salesforce.is_none() {
                match prefetch.salesforce(&link.salesforce_object, &link.salesforce_id) {
                    Some(s) => sf.push(s.clone()),
                    None => need_sf
                        .entry(link.salesforce_object.clone())
                        .or_default()
                        .push(link.salesforce_id.clone()),
                }
            }
        }
        let salesforce = futures::future::try_join_all(
            need_sf
                .iter()
                .map(|(sobject, ids)| self.read_salesforce(run, sobject, ids)),
        );
        let (read_hs, read_sf) =
            tokio::try_join!(self.read_hubspot(run, &need_hs, None), salesforce)?;
        hs.extend(read_hs);
        sf.extend(read_sf.into_iter().flatten());
        for w in works.iter_mut() {
            let Some(link) = w.link.clone() else { continue };
            if w.hubspot.is_none() {
                w.hubspot = hs.iter().find(|h| h.id == link.hubspot_id).cloned();
                // The linked record was merged: the survivor answers for it.
                if w.hubspot.is_none()
                    && let Some(survivor) = hs
                        .iter()
                        .find(|h| merged_ids(h).any(|id| id == link.hubspot_id))
                {
                    let taken = self
                        .links
                        .by_hubspot(&run.spec.name, &survivor.id)
                        .await
                        .map_err(|e| e.to_string())?;
                    match taken {
                        Some(other) => w.merged_into = Some(MergedInto::of(&other)),
                        None => match self.follow_merge(run, survivor, &link).await? {
                            Followed::Kept(kept) => w.link = Some(kept),
                            Followed::Elsewhere(partner) => w.merged_into = partner,
                        },
                    }
                    w.hubspot = Some(survivor.clone());
                }
            }
            if w.salesforce.is_none() {
                w.salesforce = sf
                    .iter()
                    .find(|s| same_sf_id(&s.id(), &link.salesforce_id))
                    .cloned();
            }
        }
        Ok(())
    }

    /// Unlinked HubSpot records that name their Salesforce record (an earlier
    /// integration, a create whose link write was lost, a state store rebuilt from
    /// scratch): that record, if it is free.
    async fn match_named(&self, run: &PairRun, works: &mut [Work]) -> Result<(), String> {
        let spec = &run.spec;
        let named_of = |h: &HsRecord| -> Option<(String, String)> {
            named_ids(spec, h)
                .next()
                .map(|(sobject, id)| (sobject.clone(), id.to_owned()))
        };
        let mut named: HashMap<String, Vec<String>> = HashMap::new();
        for w in works.iter().filter(|w| unlinked_hubspot(w)) {
            if let Some((sobject, id)) = w.hubspot.as_ref().and_then(named_of) {
                named.entry(sobject).or_default().push(id);
            }
        }
        let mut rows: Vec<Record> = Vec::new();
        for (sobject, ids) in &named {
            rows.extend(self.read_salesforce(run, sobject, ids).await?);
        }
        for w in works.iter_mut().filter(|w| unlinked_hubspot(w)) {
            let Some((_, id)) = w.hubspot.as_ref().and_then(named_of) else {
                continue;
            };
            let found = rows
                .iter()
                .find(|r| same_sf_id(&r.id(), &id))
                .filter(|r| run.hooks.matchable(r));
            let Some(r) = found else { continue };
            match self
                .links
                .by_salesforce(&r.object, &r.id())
                .await
                .map_err(|e| e.to_string())?
            {
                None => w.salesforce = Some(r.clone()),
                // Linked with another record: this one stays unmatched, as before.
                Some(link) => {
                    let _ = linked_meanwhile(w, link, r);
                }
            }
        }
        Ok(())
    }

    /// Unlinked HubSpot records: the best Salesforce record with their key. One linked
    /// to another HubSpot record already makes this one its twin.
    async fn match_hubspot_by_key(
        &self,
        run: &PairRun,
        key: &MatchKey,
        works: &mut [Work],
    ) -> Result<(), String> {
        let mut keys: Vec<String> = works
            .iter()
            .filter(|w| unlinked_hubspot(w))
            .filter_map(|w| {
                w.hubspot
                    .as_ref()
                    .and_then(|h| key.of_hubspot(&h.properties))
            })
            .collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return Ok(());
        }
        let found = self.salesforce_by_key(run, key, &keys).await?;
        for w in works.iter_mut().filter(|w| unlinked_hubspot(w)) {
            let k = w
                .hubspot
                .as_ref()
                .and_then(|h| key.of_hubspot(&h.properties));
            let Some(best) = k.and_then(|k| found.get(&k)).and_then(|t| t.first()) else {
                continue;
            };
            match self
                .links
                .by_salesforce(&best.object, &best.id())
                .await
                .map_err(|e| e.to_string())?
            {
                None => w.salesforce = Some(best.clone()),
                Some(link) => {
                    if let Some(other) = linked_meanwhile(w, link, best) {
                        w.twin_of = Some(other);
                    }
                }
            }
        }
        self.take_over_deleted_twins(run, works).await
    }

    /// A twin whose HubSpot record is gone (deleted, and a new one made with its key):
    /// the new record takes its link, and the Salesforce record with it.
    async fn take_over_deleted_twins(
        &self,
        run: &PairRun,
        works: &mut [Work],
    ) -> Result<(), String> {
        let ids: Vec<String> = works
            .iter()
            .filter_map(|w| w.twin_of.as_ref().map(|t| t.hubspot_id.clone()))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let alive = self.read_hubspot(run, &ids, None).await?;
        for w in works.iter_mut() {
            let (Some(twin), Some(h)) = (w.twin_of.clone(), w.hubspot.as_ref()) else {
                continue;
            };
            let gone = !alive.iter().any(|a| answers_for(a, &twin.hubspot_id));
            if !gone {
                continue;
            }
            let relinked = self
                .links
                .relink(&twin, &h.id, &twin.salesforce_object, &twin.salesforce_id)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(message = "a new contact takes over a deleted twin's link", contact = %h.id, twin = %twin.hubspot_id, salesforce = %twin.salesforce_id);
            let rows = self
                .read_salesforce(
                    run,
                    &twin.salesforce_object,
                    std::slice::from_ref(&twin.salesforce_id),
                )
                .await?;
            w.salesforce = rows.into_iter().next();
            w.link = Some(relinked);
            w.twin_of = None;
        }
        Ok(())
    }

    /// Salesforce records whose key is one of `keys`, best first per key. Exact and
    /// email keys are compared in SOQL; domains and names cannot be normalized there,
    /// so the query casts a wide net (`LIKE`) and the keys are compared here.
    async fn salesforce_by_key(
        &self,
        run: &PairRun,
        key: &MatchKey,
        keys: &[String],
    ) -> Result<HashMap<String, Vec<Record>>, String> {
        let like = matches!(key.kind, KeyKind::Domain | KeyKind::Name);
        let field = &key.salesforce;
        let mut found: HashMap<String, Vec<Record>> = HashMap::new();
        for chunk in keys.chunks(if like { LIKE_CHUNK } else { IN_MAX }) {
            let condition = if like {
                let any: Vec<String> = chunk
                    .iter()
                    .map(|k| format!("{field} LIKE {}", soql_literal(&format!("%{k}%"))))
                    .collect();
                format!("({})", any.join(" OR "))
            } else {
                format!("{field} IN ({})", literal_list(chunk))
            };
            let queries: Vec<(String, String)> = run
                .spec
                .sobjects
                .iter()
                .map(|sobject| {
                    let fields = self.pair_fields(run, sobject).join(", ");
                    let filter = run
                        .hooks
                        .match_filter(sobject)
                        .map(|f| format!(" AND {f}"))
                        .unwrap_or_default();
                    let soql = format!("SELECT {fields} FROM {sobject} WHERE {condition}{filter}");
                    (sobject.clone(), soql)
                })
                .collect();
            let answers = if queries.len() == 1 {
                let (sobject, soql) = &queries[0];
                let rows = self
                    .salesforce
                    .query(soql, false)
                    .await
                    .map_err(|e| e.to_string())?;
                HashMap::from([(sobject.clone(), rows)])
            } else {
                self.salesforce
                    .composite_queries(&queries, false)
                    .await
                    .map_err(|e| e.to_string())?
            };
            for (sobject, rows) in answers {
                for row in rows {
                    let Some(row) = row.as_object().cloned() else {
                        continue;
                    };
                    let Some(k) = key.of_salesforce(&row) else {
                        continue;
                    };
                    if chunk.contains(&k) {
                        found.entry(k).or_default().push(Record::new(&sobject, row));
                    }
                }
            }
        }
        for twins in found.values_mut() {
            twins.sort_by_key(|r| std::cmp::Reverse(run.hooks.rank(r)));
        }
        Ok(found)
    }

    /// Unlinked Salesforce records: the HubSpot record that carries their id, or has
    /// their key. One linked already makes this record its twin.
    async fn match_salesforce_records(
        &self,
        run: &PairRun,
        works: &mut [Work],
    ) -> Result<(), String> {
        let spec = &run.spec;
        let unlinked = |w: &Work| w.link.is_none() && w.hubspot.is_none() && w.salesforce.is_some();
        let key_of = |w: &Work| {
            let key = spec.match_key.as_ref()?;
            w.salesforce
                .as_ref()
                .and_then(|s| key.of_salesforce(&s.row))
        };
        // A record new to the sync (no retry brought it, it names no HubSpot record)
        // with a unique key is not looked for: HubSpot refuses to create a second
        // record with the key, and the refused create is retried, which reads (an
        // initial sync's Salesforce-only records were a read per 100 that found
        // nothing).
        let unique = spec.match_key.as_ref().is_some_and(|k| k.hubspot_unique);
        let names_none = |w: &Work| {
            w.salesforce.as_ref().is_none_or(|s| {
                s.row
                    .get(&spec.hubspot_id_field)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            })
        };
        for w in works.iter_mut() {
            w.key_unread = unique && w.news && unlinked(w) && names_none(w) && key_of(w).is_some();
        }
        let keys: Vec<String> = works
            .iter()
            .filter(|w| unlinked(w) && !w.key_unread)
            .filter_map(key_of)
            .collect();
        let ids: Vec<(String, String)> = works
            .iter()
            .filter(|w| unlinked(w) && !w.key_unread)
            .filter_map(|w| w.salesforce.as_ref())
            .filter_map(|s| Some((spec.salesforce_id_property(&s.object)?.to_owned(), s.id())))
            .collect();
        if keys.is_empty() && ids.is_empty() {
            return Ok(());
        }
        let found = match &spec.match_key {
            // A unique key reads by itself: no search, no search lag.
            Some(key) if key.hubspot_unique => {
                self.read_hubspot(run, &keys, Some(&key.hubspot)).await?
            }
            _ => self.search_hubspot(run, &ids, &keys).await?,
        };
        for w in works.iter_mut().filter(|w| unlinked(w) && !w.key_unread) {
            let Some(s) = w.salesforce.clone() else {
                continue;
            };
            let id = s.id();
            let by_id = spec.salesforce_id_property(&s.object).and_then(|p| {
                found.iter().find(|h| {
                    h.properties
                        .get(p)
                        .and_then(Value::as_str)
                        .is_some_and(|v| same_sf_id(v, &id))
                })
            });
            let key = key_of(w);
            let by_key = || {
                let k = spec.match_key.as_ref()?;
                found
                    .iter()
                    .find(|h| key.is_some() && k.of_hubspot(&h.properties) == key)
            };
            let Some(h) = by_id.or_else(by_key) else {
                continue;
            };
            let linked = self
                .links
                .by_hubspot(&spec.name, &h.id)
                .await
                .map_err(|e| e.to_string())?;
            match linked {
                // Its link already points here: it moved in this batch, after this work
                // looked its link up (a converted Lead's Contact). Linked, not a twin;
                // both sides learn the ids.
                Some(l) if l.salesforce_object == s.object && same_sf_id(&l.salesforce_id, &id) => {
                    w.link = Some(l);
                }
                other => w.twin_of = other,
            }
            w.hubspot = Some(h.clone());
        }
        Ok(())
    }

    /// HubSpot records that carry one of these Salesforce ids, or have one of these
    /// keys (in as few searches as HubSpot allows, with other batches' searches
    /// waiting at the limiter). It lags writes by seconds; the poller's overlap
    /// catches up.
    async fn search_hubspot(
        &self,
        run: &PairRun,
        ids: &[(String, String)],
        keys: &[String],
    ) -> Result<Vec<HsRecord>, String> {
        let spec = &run.spec;
        let mut any: Vec<(String, String)> = ids.to_vec();
        if let Some(key) = &spec.match_key {
            for k in keys {
                any.push((key.hubspot.clone(), k.clone()));
                if key.kind == KeyKind::Domain {
                    any.push((key.hubspot.clone(), format!("www.{k}")));
                }
            }
        }
        self.hubspot
            .search_any(&spec.hubspot_object, &any, &self.pair_properties(run))
            .await
            .map_err(|e| e.to_string())
    }
}

/// The Salesforce records a HubSpot record names (its id properties), per sObject of
/// the pair, in the pair's order.
fn named_ids<'a>(
    spec: &'a crate::domain::pair::PairSpec,
    h: &'a HsRecord,
) -> impl Iterator<Item = (&'a String, &'a str)> + 'a {
    spec.sobjects.iter().filter_map(move |sobject| {
        let id = spec
            .salesforce_id_property(sobject)
            .and_then(|p| h.properties.get(p))
            .and_then(Value::as_str)?;
        (!id.is_empty()).then_some((sobject, id))
    })
}

/// An unlinked HubSpot record whose Salesforce match `r` is linked: with this very
/// record, the batch that made one of the two wrote the link after this batch looked it
/// up (the creation's webhook came first), and the work carries on linked. Linked with
/// another record, the link comes back.
fn linked_meanwhile(w: &mut Work, link: Link, r: &Record) -> Option<Link> {
    let own = w.hubspot.as_ref().is_some_and(|h| h.id == link.hubspot_id)
        && link.salesforce_object == r.object
        && same_sf_id(&link.salesforce_id, &r.id());
    if !own {
        return Some(link);
    }
    w.link = Some(link);
    w.salesforce = Some(r.clone());
    None
}

fn unlinked_hubspot(w: &Work) -> bool {
    w.link.is_none() && w.salesforce.is_none() && w.hubspot.is_some() && w.twin_of.is_none()
}

/// Where a linked record's partner is after its HubSpot record was merged.
enum Followed {
    /// It is the survivor's partner: its link, moved to the survivor.
    Kept(crate::ports::Link),
    /// The survivor's partner is another record (another merged record's partner, or
    /// the record the survivor names, found by name when its own change is worked).
    Elsewhere(Option<MergedInto>),
}

/// The code of a Salesforce record whose HubSpot partner was merged into another's.
pub(crate) const MERGED_IN_HUBSPOT: &str = "merged_in_hubspot";
/// A converted record whose new record already syncs with another HubSpot record.
pub(crate) const CONVERTED_INTO_SYNCED: &str = "converted_into_synced";

/// Why a record whose HubSpot partner was merged away no longer syncs.
pub(crate) fn merged_message(
    hubspot_object: &str,
    survivor: &str,
    salesforce_object: &str,
    salesforce_id: &str,
) -> String {
    format!(
        "its HubSpot {hubspot_object} was merged into {survivor}, which is synced with Salesforce {salesforce_object} {salesforce_id}: merge the two Salesforce records too"
    )
}
