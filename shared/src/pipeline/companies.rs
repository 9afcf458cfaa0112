//! Syncing HubSpot companies with Salesforce accounts, a batch at a time: read both
//! sides in bulk, find the link or match by the configured dedup key (normalized
//! domain by default, or normalized name), claim the key before any create, merge,
//! and write through the shared write stage.
//!
//! Salesforce creates upsert on `HubSpot_Company_Id__c`; HubSpot creates carry the
//! Account id in `salesforceaccountid`, which matching looks for first, so a retry
//! after a crash finds the company it made instead of making a second one.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::writes::{HubSpotInput, Planned, subset};
use super::{CLAIM_TTL_MS, ItemOutcome, Pipeline, Record, Work};
use crate::adapters::hubspot::HsRecord;
use crate::domain::Side;
use crate::domain::config::CompanyDedupKey;
use crate::domain::dedup::{company_name_key, domain_key};
use crate::domain::merge::MergeRules;
use crate::ports::{Outcome, WorkItem};

pub const PAIR: &str = "companies";
pub const SOBJECT: &str = "Account";
/// Salesforce's field that holds the HubSpot company id.
pub const HUBSPOT_ID_FIELD: &str = "HubSpot_Company_Id__c";
/// The HubSpot property that holds the Account id.
pub const ACCOUNT_ID: &str = "salesforceaccountid";

fn text<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    map.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn soql_quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

impl Pipeline {
    fn company_key_hubspot(&self, h: &HsRecord) -> Option<String> {
        match self.config.companies.dedup_key {
            CompanyDedupKey::Domain => text(&h.properties, "domain").and_then(domain_key),
            CompanyDedupKey::Name => text(&h.properties, "name").and_then(company_name_key),
        }
    }

    fn company_key_salesforce(&self, row: &Map<String, Value>) -> Option<String> {
        match self.config.companies.dedup_key {
            CompanyDedupKey::Domain => text(row, "Website").and_then(domain_key),
            CompanyDedupKey::Name => text(row, "Name").and_then(company_name_key),
        }
    }

    pub(crate) fn company_properties(&self) -> Vec<String> {
        let mut props: Vec<String> = self
            .config
            .companies
            .fields
            .iter()
            .map(|f| f.hubspot.clone())
            .collect();
        for p in [
            "domain",
            "name",
            "hs_lastmodifieddate",
            "hs_merged_object_ids",
            ACCOUNT_ID,
        ] {
            if !props.iter().any(|x| x == p) {
                props.push(p.to_owned());
            }
        }
        props
    }

    pub(crate) fn company_fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = self
            .config
            .companies
            .fields
            .iter()
            .filter_map(|f| f.salesforce.on(SOBJECT).map(str::to_owned))
            .collect();
        for f in [
            "Id",
            "Name",
            "Website",
            "LastModifiedDate",
            HUBSPOT_ID_FIELD,
        ] {
            if !fields.iter().any(|x| x == f) {
                fields.push(f.to_owned());
            }
        }
        fields
    }

    async fn read_companies_hs(&self, ids: &[String]) -> Result<Vec<HsRecord>, String> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let props = self.company_properties();
        let refs: Vec<&str> = props.iter().map(String::as_str).collect();
        self.hubspot
            .batch_read(PAIR, ids, &refs, &[], None)
            .await
            .map_err(|e| e.to_string())
    }

    async fn read_accounts(&self, ids: &[String]) -> Result<Vec<Record>, String> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let fields = self.company_fields();
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        let rows = self
            .salesforce
            .retrieve(SOBJECT, ids, &refs)
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_object().cloned())
            .map(|r| Record::new(SOBJECT, r))
            .collect())
    }

    /// Accounts whose normalized domain (or name) is one of `keys`, most recently
    /// modified first. Salesforce cannot normalize in SOQL, so the query casts a wide
    /// net (`LIKE`) and the keys are compared here.
    async fn accounts_by_key(&self, keys: &[String]) -> Result<HashMap<String, Record>, String> {
        let mut found: HashMap<String, Record> = HashMap::new();
        let fields = self.company_fields().join(", ");
        for chunk in keys.chunks(50) {
            let filter = match self.config.companies.dedup_key {
                CompanyDedupKey::Domain => chunk
                    .iter()
                    .map(|k| format!("Website LIKE '%{}%'", soql_quote(k)))
                    .collect::<Vec<_>>()
                    .join(" OR "),
                CompanyDedupKey::Name => chunk
                    .iter()
                    .map(|k| format!("Name LIKE '%{}%'", soql_quote(k)))
                    .collect::<Vec<_>>()
                    .join(" OR "),
            };
            let soql = format!("SELECT {fields} FROM {SOBJECT} WHERE {filter}");
            for row in self
                .salesforce
                .query(&soql, false)
                .await
                .map_err(|e| e.to_string())?
            {
                let Some(row) = row.as_object().cloned() else {
                    continue;
                };
                let Some(key) = self.company_key_salesforce(&row) else {
                    continue;
                };
                if !chunk.contains(&key) {
                    continue;
                }
                let record = Record::new(SOBJECT, row);
                if found
                    .get(&key)
                    .is_none_or(|r| record.modified_at > r.modified_at)
                {
                    found.insert(key, record);
                }
            }
        }
        Ok(found)
    }

    /// HubSpot companies that carry one of these Account ids, or whose domain (name) is
    /// one of these keys.
    async fn hubspot_companies_for(
        &self,
        account_ids: &[String],
        keys: &[String],
    ) -> Result<Vec<HsRecord>, String> {
        let props = self.company_properties();
        let mut groups = Vec::new();
        if !account_ids.is_empty() {
            groups.push(json!({"filters": [{"propertyName": ACCOUNT_ID, "operator": "IN", "values": account_ids}]}));
        }
        if !keys.is_empty() {
            let (property, values): (&str, Vec<String>) = match self.config.companies.dedup_key {
                CompanyDedupKey::Domain => (
                    "domain",
                    keys.iter()
                        .flat_map(|k| [k.clone(), format!("www.{k}")])
                        .collect(),
                ),
                CompanyDedupKey::Name => ("name", keys.to_vec()),
            };
            groups.push(json!({"filters": [{"propertyName": property, "operator": "IN", "values": values}]}));
        }
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({"filterGroups": groups, "properties": props, "limit": 200});
        self.hubspot
            .search(PAIR, &body)
            .await
            .map_err(|e| e.to_string())
    }

    pub(crate) async fn sync_companies(&self, items: &[WorkItem]) -> Vec<ItemOutcome> {
        let mut outcomes = vec![ItemOutcome::Done; items.len()];
        if let Err(e) = self.try_sync_companies(items, &mut outcomes).await {
            tracing::warn!(message = "company batch failed; returning it to the queue", error = %e);
            return vec![ItemOutcome::Retry(e); items.len()];
        }
        outcomes
    }

    async fn try_sync_companies(
        &self,
        items: &[WorkItem],
        outcomes: &mut [ItemOutcome],
    ) -> Result<(), String> {
        let now = self.clock.now_ms();
        let mut works = self.gather_companies(items, now).await?;
        self.match_companies(&mut works).await?;
        let meta = self.pair_meta(PAIR, SOBJECT).await;
        let props = self.company_properties();
        self.refine_with_history(
            PAIR,
            &mut works,
            &props,
            |_| Some(meta.clone()),
            Record::snapshot,
        )
        .await?;
        let mut planned = Vec::new();
        for w in works {
            let first = w.items.first().copied().unwrap_or(0);
            match self.plan_company(&items[first], w, now).await {
                Ok(p) => planned.push(p),
                Err((outcome, indexes)) => {
                    for n in indexes {
                        outcomes[n] = outcome.clone();
                    }
                }
            }
        }
        self.write_salesforce(items, &mut planned, HUBSPOT_ID_FIELD, |_, _| {}, now)
            .await;
        for p in planned.iter_mut().filter(|p| p.live()) {
            let Some(account) = p.salesforce_id.clone() else {
                continue;
            };
            let known = p
                .work
                .hubspot
                .as_ref()
                .and_then(|h| text(&h.properties, ACCOUNT_ID));
            if known != Some(account.as_str()) {
                p.hubspot_writes.insert(ACCOUNT_ID.into(), json!(account));
            }
        }
        self.update_hubspot(PAIR, items, &mut planned, now).await;
        self.create_hubspot_companies(items, &mut planned, now)
            .await;
        self.failpoint(&format!("after_crm_write:{PAIR}"));
        self.finish(PAIR, items, planned, outcomes, now).await;
        Ok(())
    }

    async fn gather_companies(&self, items: &[WorkItem], now: i64) -> Result<Vec<Work>, String> {
        let hs_ids: Vec<String> = items
            .iter()
            .filter(|i| i.side == "hubspot")
            .map(|i| i.id.clone())
            .collect();
        let hs = self.read_companies_hs(&hs_ids).await?;
        let mut works = self.hubspot_works(PAIR, items, &hs, now).await?;
        let sf_ids: Vec<String> = items
            .iter()
            .filter(|i| i.side == "salesforce")
            .map(|i| i.id.clone())
            .collect();
        let accounts = self.read_accounts(&sf_ids).await?;
        for (n, item) in items
            .iter()
            .enumerate()
            .filter(|(_, i)| i.side == "salesforce")
        {
            let Some(a) = accounts
                .iter()
                .find(|a| a.id().get(..15) == item.id.get(..15))
            else {
                // An Account deletion never deletes a HubSpot company; the link goes.
                if let Some(link) = self
                    .links
                    .by_salesforce(SOBJECT, &item.id)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    self.links.remove(&link).await.map_err(|e| e.to_string())?;
                }
                self.note(
                    item,
                    "to_hubspot",
                    Outcome::Skipped,
                    Some("deleted_in_salesforce"),
                    None,
                    now,
                )
                .await;
                continue;
            };
            match works
                .iter_mut()
                .find(|w| w.salesforce.as_ref().is_some_and(|s| s.id() == a.id()))
            {
                Some(w) => w.items.push(n),
                None => works.push(Work {
                    salesforce: Some(a.clone()),
                    items: vec![n],
                    origin: Some(Side::Salesforce),
                    ..Work::default()
                }),
            }
        }
        Ok(works)
    }

    async fn match_companies(&self, works: &mut Vec<Work>) -> Result<(), String> {
        for w in works.iter_mut() {
            w.link = match (&w.hubspot, &w.salesforce) {
                (Some(h), _) => self
                    .links
                    .by_hubspot(PAIR, &h.id)
                    .await
                    .map_err(|e| e.to_string())?,
                (None, Some(s)) => self
                    .links
                    .by_salesforce(SOBJECT, &s.id())
                    .await
                    .map_err(|e| e.to_string())?,
                _ => None,
            };
        }
        super::merge_same_pairs(works);
        let need_hs: Vec<String> = works
            .iter()
            .filter(|w| w.hubspot.is_none())
            .filter_map(|w| w.link.as_ref().map(|l| l.hubspot_id.clone()))
            .collect();
        let need_sf: Vec<String> = works
            .iter()
            .filter(|w| w.salesforce.is_none())
            .filter_map(|w| w.link.as_ref().map(|l| l.salesforce_id.clone()))
            .collect();
        let hs = self.read_companies_hs(&need_hs).await?;
        let sf = self.read_accounts(&need_sf).await?;
        for w in works.iter_mut() {
            let Some(link) = w.link.clone() else { continue };
            if w.hubspot.is_none() {
                w.hubspot = hs.iter().find(|h| h.id == link.hubspot_id).cloned();
            }
            if w.salesforce.is_none() {
                w.salesforce = sf
                    .iter()
                    .find(|s| s.id().get(..15) == link.salesforce_id.get(..15))
                    .cloned();
            }
        }
        // Unlinked HubSpot companies: the Account they name, or one with their key.
        let unlinked_hs: Vec<usize> = (0..works.len())
            .filter(|&n| works[n].link.is_none() && works[n].salesforce.is_none())
            .collect();
        let named: Vec<String> = unlinked_hs
            .iter()
            .filter_map(|&n| {
                works[n]
                    .hubspot
                    .as_ref()
                    .and_then(|h| text(&h.properties, ACCOUNT_ID))
                    .map(str::to_owned)
            })
            .collect();
        let named = self.read_accounts(&named).await?;
        let keys: Vec<String> = unlinked_hs
            .iter()
            .filter_map(|&n| {
                works[n]
                    .hubspot
                    .as_ref()
                    .and_then(|h| self.company_key_hubspot(h))
            })
            .collect();
        let by_key = if keys.is_empty() {
            HashMap::new()
        } else {
            self.accounts_by_key(&keys).await?
        };
        for &n in &unlinked_hs {
            let Some(h) = works[n].hubspot.clone() else {
                continue;
            };
            let account = text(&h.properties, ACCOUNT_ID)
                .and_then(|id| named.iter().find(|a| a.id().get(..15) == id.get(..15)))
                .or_else(|| self.company_key_hubspot(&h).and_then(|k| by_key.get(&k)));
            if let Some(a) = account {
                // An Account already synced with another HubSpot company: this one is
                // a HubSpot duplicate, and creating a second Account would not help.
                match self
                    .links
                    .by_salesforce(SOBJECT, &a.id())
                    .await
                    .map_err(|e| e.to_string())?
                {
                    None => works[n].salesforce = Some(a.clone()),
                    Some(other) => works[n].twin_of = Some(other),
                }
            }
        }
        // Unlinked Accounts: the HubSpot company that carries their id, or has their key.
        let unlinked_sf: Vec<usize> = (0..works.len())
            .filter(|&n| works[n].link.is_none() && works[n].hubspot.is_none())
            .collect();
        let ids: Vec<String> = unlinked_sf
            .iter()
            .filter_map(|&n| works[n].salesforce.as_ref().map(Record::id))
            .collect();
        let keys: Vec<String> = unlinked_sf
            .iter()
            .filter_map(|&n| {
                works[n]
                    .salesforce
                    .as_ref()
                    .and_then(|s| self.company_key_salesforce(&s.row))
            })
            .collect();
        let found = self.hubspot_companies_for(&ids, &keys).await?;
        for &n in &unlinked_sf {
            let Some(s) = works[n].salesforce.clone() else {
                continue;
            };
            let id = s.id();
            let key = self.company_key_salesforce(&s.row);
            let company = found
                .iter()
                .find(|h| {
                    text(&h.properties, ACCOUNT_ID).is_some_and(|a| a.get(..15) == id.get(..15))
                })
                .or_else(|| {
                    found
                        .iter()
                        .find(|h| key.is_some() && self.company_key_hubspot(h) == key)
                });
            if let Some(h) = company
                && self
                    .links
                    .by_hubspot(PAIR, &h.id)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none()
            {
                works[n].hubspot = Some(h.clone());
            }
        }
        super::merge_same_pairs(works);
        Ok(())
    }

    async fn plan_company(
        &self,
        item: &WorkItem,
        w: Work,
        now: i64,
    ) -> Result<Planned, (ItemOutcome, Vec<usize>)> {
        let direction = if w.origin == Some(Side::Salesforce) {
            "to_hubspot"
        } else {
            "to_salesforce"
        };
        let key = w
            .hubspot
            .as_ref()
            .and_then(|h| self.company_key_hubspot(h))
            .or_else(|| {
                w.salesforce
                    .as_ref()
                    .and_then(|s| self.company_key_salesforce(&s.row))
            });
        if let Some(twin) = &w.twin_of {
            let message = format!(
                "Salesforce Account {} with the same key is synced with HubSpot company {}",
                twin.salesforce_id, twin.hubspot_id
            );
            self.note(
                item,
                direction,
                Outcome::Skipped,
                Some("duplicate_in_salesforce"),
                Some(message),
                now,
            )
            .await;
            return Err((ItemOutcome::Done, w.items.clone()));
        }
        let creating = w.hubspot.is_none() || w.salesforce.is_none();
        if w.link.is_none() && key.is_none() {
            let (code, message) = match self.config.companies.dedup_key {
                CompanyDedupKey::Domain => (
                    "no_domain",
                    "a company without a domain (website) does not sync: it could not be deduplicated",
                ),
                CompanyDedupKey::Name => ("no_name", "a company without a name does not sync"),
            };
            self.note(
                item,
                direction,
                Outcome::Skipped,
                Some(code),
                Some(message.into()),
                now,
            )
            .await;
            return Err((ItemOutcome::Done, w.items.clone()));
        }
        let claim_key = if creating {
            key.as_ref().map(|k| format!("company-key:{k}"))
        } else {
            None
        };
        if let Some(k) = &claim_key {
            match self.claims.claim(k, &self.worker, CLAIM_TTL_MS, now).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err((
                        ItemOutcome::Retry(format!("another worker is creating {k}")),
                        w.items.clone(),
                    ));
                }
                Err(e) => return Err((ItemOutcome::Retry(e.to_string()), w.items.clone())),
            }
        }
        let meta = self.pair_meta(PAIR, SOBJECT).await;
        let rules = MergeRules::new(&self.config, PAIR, SOBJECT, &meta, &self.owners)
            .map_err(|e| (ItemOutcome::Retry(e.to_string()), w.items.clone()))?;
        let sf = w
            .salesforce
            .as_ref()
            .map(Record::snapshot)
            .unwrap_or_default();
        Ok(Planned::merged(
            w,
            &rules,
            sf,
            direction,
            SOBJECT.into(),
            claim_key,
            key,
        ))
    }

    /// New HubSpot companies of a batch in one call, each carrying its Account id.
    async fn create_hubspot_companies(
        &self,
        items: &[WorkItem],
        planned: &mut [Planned],
        now: i64,
    ) {
        let creates: Vec<usize> = (0..planned.len())
            .filter(|&n| {
                planned[n].live()
                    && planned[n].salesforce_id.is_some()
                    && planned[n].hubspot_id.is_none()
            })
            .collect();
        if creates.is_empty() {
            return;
        }
        let inputs: Vec<(usize, HubSpotInput)> = creates
            .iter()
            .map(|&n| {
                let trace = format!(
                    "account-{}",
                    planned[n].salesforce_id.clone().unwrap_or_default()
                );
                (n, (trace, planned[n].hubspot_writes.clone()))
            })
            .collect();
        let results = self
            .hubspot_isolating(&creates, |which| {
                let subset = subset(&inputs, &which);
                async move { self.hubspot.batch_create(PAIR, &subset).await }
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
                let account = planned[n].salesforce_id.clone().unwrap_or_default();
                let trace = format!("account-{account}");
                if let Some(e) = outcome.errors.iter().find(|e| e.key == trace) {
                    let item = &items[planned[n].work.items.first().copied().unwrap_or(0)];
                    let direction = planned[n].direction;
                    let o = self
                        .hubspot_failed(item, direction, &e.category, &e.message, now)
                        .await;
                    planned[n].outcome = Some(o);
                    continue;
                }
                let created = outcome
                    .records
                    .iter()
                    .find(|r| text(&r.properties, ACCOUNT_ID) == Some(account.as_str()));
                planned[n].outcome = match created {
                    Some(r) => {
                        planned[n].hubspot_id = Some(r.id.clone());
                        None
                    }
                    None => Some(ItemOutcome::Retry(
                        "HubSpot did not return the new company".into(),
                    )),
                };
            }
        }
    }
}
