//! Syncing HubSpot contacts with Salesforce leads and contacts, a batch at a time:
//! read both sides in bulk, find the link or match by email (a Contact wins over a Lead,
//! then the most recently modified), apply the contact rules, claim the email before
//! any create, merge, write each side with batch calls, then store links and outcomes.
//!
//! Creates are upserts on a unique key (email in HubSpot, `HubSpot_Contact_Id__c` in
//! Salesforce), so a worker that dies between the CRM write and the link write finds
//! its record again on the retry instead of creating a second one.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::associations::ContactAccount;
use super::writes::{HubSpotInput, Planned, subset};
use super::{CLAIM_TTL_MS, ItemOutcome, Pipeline, Record, Work};
use crate::domain::Side;
use crate::domain::config::{Inclusion, PersonObject, SalesforceDeleteRule, SalesforceUpdateRule};
use crate::domain::dedup::email_key;
use crate::domain::merge::MergeRules;
use crate::ports::{Outcome, WorkItem};

pub const PAIR: &str = "contacts";
/// Salesforce's field that holds the HubSpot id: the external id creates upsert on.
pub const HUBSPOT_ID_FIELD: &str = "HubSpot_Contact_Id__c";
/// What a Lead gets as `Company` when HubSpot has none (Salesforce requires one).
pub const NO_COMPANY: &str = "[not provided]";
/// The HubSpot properties that say which Salesforce record a contact is.
const LEAD_ID: &str = "salesforceleadid";
const CONTACT_ID: &str = "salesforcecontactid";
const KIND: &str = "salesforceobjecttype";

fn email_of(map: &Map<String, Value>, field: &str) -> Option<String> {
    map.get(field).and_then(Value::as_str).and_then(email_key)
}

fn sf_id(row: &Map<String, Value>) -> String {
    row.get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn same_sf_id(a: &str, b: &str) -> bool {
    a.get(..15).is_some() && a.get(..15) == b.get(..15)
}

/// What a new Lead needs that HubSpot may not have: a company.
fn lead_defaults(sobject: &str, row: &mut Map<String, Value>) {
    let blank = row
        .get("Company")
        .is_none_or(|c| c.as_str().is_none_or(str::is_empty));
    if sobject == "Lead" && blank {
        row.insert("Company".into(), json!(NO_COMPANY));
    }
}

/// A Salesforce lead or contact as the merge sees it: the `Company` placeholder a lead
/// was created with counts as blank, so it never flows back into HubSpot.
fn salesforce_snapshot(record: &Record) -> crate::domain::merge::Snapshot {
    let mut s = record.snapshot();
    if record.object == "Lead"
        && s.values.get("Company").and_then(Value::as_str) == Some(NO_COMPANY)
    {
        s.values.insert("Company".into(), Value::Null);
    }
    s
}

impl Pipeline {
    pub(crate) fn contact_properties(&self) -> Vec<String> {
        let mut props: Vec<String> = self
            .config
            .contacts
            .fields
            .iter()
            .map(|f| f.hubspot.clone())
            .collect();
        let mut extra: Vec<&str> = vec![
            "email",
            "lastmodifieddate",
            "hs_merged_object_ids",
            LEAD_ID,
            CONTACT_ID,
            KIND,
        ];
        if let Inclusion::Filter(conditions) = &self.config.contacts.inclusion {
            extra.extend(conditions.iter().map(|c| c.property.as_str()));
        }
        for p in extra {
            if !props.iter().any(|x| x == p) {
                props.push(p.to_owned());
            }
        }
        props
    }

    pub(crate) fn contact_fields(&self, sobject: &str) -> Vec<String> {
        let mut fields: Vec<String> = self
            .config
            .contacts
            .fields
            .iter()
            .filter_map(|f| f.salesforce.on(sobject).map(str::to_owned))
            .collect();
        let mut extra = vec!["Id", "Email", "LastModifiedDate", HUBSPOT_ID_FIELD];
        if sobject == "Lead" {
            extra.extend(["IsConverted", "ConvertedContactId"]);
        } else {
            extra.push("AccountId");
        }
        for f in extra {
            if !fields.iter().any(|x| x == f) {
                fields.push(f.to_owned());
            }
        }
        fields
    }

    async fn read_contacts_hs(
        &self,
        ids: &[String],
        by_email: bool,
    ) -> Result<Vec<crate::adapters::hubspot::HsRecord>, String> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let props = self.contact_properties();
        let refs: Vec<&str> = props.iter().map(String::as_str).collect();
        let id_property = by_email.then_some("email");
        // Without property history: `refine_with_history` reads it where it decides.
        self.hubspot
            .batch_read(PAIR, ids, &refs, &[], id_property)
            .await
            .map_err(|e| e.to_string())
    }

    async fn read_contacts_sf(
        &self,
        sobject: &str,
        ids: &[String],
    ) -> Result<Vec<Map<String, Value>>, String> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let fields = self.contact_fields(sobject);
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
            .collect())
    }

    /// Salesforce leads and contacts by email, best first per email: a Contact before
    /// a Lead, then the most recently modified (converted leads never match).
    async fn salesforce_by_email(
        &self,
        emails: &[String],
    ) -> Result<HashMap<String, Vec<Record>>, String> {
        let mut found: HashMap<String, Vec<Record>> = HashMap::new();
        for chunk in emails.chunks(200) {
            let list = chunk
                .iter()
                .map(|e| format!("'{}'", e.replace('\\', "\\\\").replace('\'', "\\'")))
                .collect::<Vec<_>>()
                .join(", ");
            let queries: Vec<(String, String)> = ["Contact", "Lead"]
                .iter()
                .map(|sobject| {
                    let fields = self.contact_fields(sobject).join(", ");
                    let filter = if *sobject == "Lead" {
                        " AND IsConverted = false"
                    } else {
                        ""
                    };
                    (
                        (*sobject).to_owned(),
                        format!("SELECT {fields} FROM {sobject} WHERE Email IN ({list}){filter}"),
                    )
                })
                .collect();
            let answers = self
                .salesforce
                .composite_queries(&queries, false)
                .await
                .map_err(|e| e.to_string())?;
            for (sobject, rows) in answers {
                for row in rows {
                    let Some(row) = row.as_object().cloned() else {
                        continue;
                    };
                    let Some(email) = email_of(&row, "Email") else {
                        continue;
                    };
                    found
                        .entry(email)
                        .or_default()
                        .push(Record::new(&sobject, row));
                }
            }
        }
        for twins in found.values_mut() {
            twins.sort_by(|a, b| {
                (b.object == "Contact")
                    .cmp(&(a.object == "Contact"))
                    .then(b.modified_at.cmp(&a.modified_at))
            });
        }
        Ok(found)
    }

    /// Syncs a batch of contact references; one outcome per item, in order.
    pub(crate) async fn sync_contacts(&self, items: &[WorkItem]) -> Vec<ItemOutcome> {
        let mut outcomes = vec![ItemOutcome::Done; items.len()];
        if let Err(e) = self.try_sync_contacts(items, &mut outcomes).await {
            tracing::warn!(message = "contact batch failed; returning it to the queue", error = %e);
            return vec![ItemOutcome::Retry(e); items.len()];
        }
        outcomes
    }

    async fn try_sync_contacts(
        &self,
        items: &[WorkItem],
        outcomes: &mut [ItemOutcome],
    ) -> Result<(), String> {
        let now = self.clock.now_ms();
        let mut works = self.gather_contacts(items, now).await?;
        self.match_contacts(&mut works).await?;
        let mut metas: HashMap<String, _> = HashMap::new();
        for w in &works {
            if let Some(s) = &w.salesforce
                && !metas.contains_key(&s.object)
            {
                metas.insert(s.object.clone(), self.pair_meta(PAIR, &s.object).await);
            }
        }
        let props = self.contact_properties();
        self.refine_with_history(
            PAIR,
            &mut works,
            &props,
            |w| {
                w.salesforce
                    .as_ref()
                    .and_then(|s| metas.get(s.object.as_str()).cloned())
            },
            salesforce_snapshot,
        )
        .await?;

        let members = self.inclusion_list_members(&works).await?;
        let mut planned = Vec::new();
        for mut w in works {
            w.in_list = members
                .as_ref()
                .map(|m| w.hubspot.as_ref().is_some_and(|h| m.contains(&h.id)));
            let first = w.items.first().copied().unwrap_or(0);
            match self.plan_contact(&items[first], w, now).await {
                Ok(p) => planned.push(p),
                Err((outcome, indexes)) => {
                    for n in indexes {
                        outcomes[n] = outcome.clone();
                    }
                }
            }
        }
        self.write_salesforce(items, &mut planned, HUBSPOT_ID_FIELD, lead_defaults, now)
            .await;
        self.write_hubspot_contacts(items, &mut planned, now).await;
        self.failpoint(&format!("after_crm_write:{PAIR}"));
        let accounts: Vec<ContactAccount> = planned
            .iter()
            .filter(|p| p.live() && p.sobject == "Contact")
            .filter_map(|p| {
                Some(ContactAccount {
                    hubspot_id: p.hubspot_id.clone()?,
                    salesforce_id: p.salesforce_id.clone()?,
                    account_id: p
                        .work
                        .salesforce
                        .as_ref()
                        .and_then(|s| s.row.get("AccountId"))
                        .and_then(Value::as_str)
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned),
                })
            })
            .collect();
        self.finish(PAIR, items, planned, outcomes, now).await;
        self.sync_contact_companies(accounts).await;
        Ok(())
    }

    /// The records the queue names, read in bulk from each side, one work per record.
    async fn gather_contacts(&self, items: &[WorkItem], now: i64) -> Result<Vec<Work>, String> {
        let mut hs_ids: Vec<String> = items
            .iter()
            .filter(|i| i.side == "hubspot")
            .map(|i| i.id.clone())
            .collect();
        hs_ids.dedup();
        let hs_records = self.read_contacts_hs(&hs_ids, false).await?;
        let mut works = self.hubspot_works(PAIR, items, &hs_records, now).await?;
        for sobject in ["Lead", "Contact"] {
            let mine = |i: &&WorkItem| i.side == "salesforce" && i.object == sobject;
            let mut ids: Vec<String> = items.iter().filter(mine).map(|i| i.id.clone()).collect();
            ids.dedup();
            let rows = self.read_contacts_sf(sobject, &ids).await?;
            for (n, item) in items.iter().enumerate().filter(|(_, i)| mine(i)) {
                let Some(row) = rows.iter().find(|r| same_sf_id(&sf_id(r), &item.id)) else {
                    self.salesforce_deleted(item, now).await?;
                    continue;
                };
                let id = sf_id(row);
                match works
                    .iter_mut()
                    .find(|w| w.salesforce.as_ref().is_some_and(|s| s.id() == id))
                {
                    Some(w) => w.items.push(n),
                    None => works.push(Work {
                        salesforce: Some(Record::new(sobject, row.clone())),
                        items: vec![n],
                        origin: Some(Side::Salesforce),
                        ..Work::default()
                    }),
                }
            }
        }
        Ok(works)
    }

    /// A Salesforce lead or contact that is gone: the HubSpot contact is archived when
    /// the setting says so, and the link goes either way.
    async fn salesforce_deleted(&self, item: &WorkItem, now: i64) -> Result<(), String> {
        let link = self
            .links
            .by_salesforce(&item.object, &item.id)
            .await
            .map_err(|e| e.to_string())?;
        let archive =
            self.config.contacts.on_salesforce_delete == SalesforceDeleteRule::DeleteContact;
        if let Some(link) = link {
            if archive {
                self.hubspot
                    .batch_archive(PAIR, std::slice::from_ref(&link.hubspot_id))
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
        self.note(item, "to_hubspot", Outcome::Skipped, Some(code), None, now)
            .await;
        Ok(())
    }

    /// Links for every work, the other side of linked pairs, lead conversions, and
    /// matches by email for the rest: a few bulk calls for the whole batch.
    async fn match_contacts(&self, works: &mut Vec<Work>) -> Result<(), String> {
        for w in works.iter_mut() {
            w.link = match (&w.hubspot, &w.salesforce) {
                (Some(h), _) => self
                    .links
                    .by_hubspot(PAIR, &h.id)
                    .await
                    .map_err(|e| e.to_string())?,
                (None, Some(s)) => self
                    .links
                    .by_salesforce(&s.object, &s.id())
                    .await
                    .map_err(|e| e.to_string())?,
                _ => None,
            };
        }
        // A converted lead hands its link to the contact it became.
        for w in works.iter_mut() {
            let Some(s) = &w.salesforce else { continue };
            let converted_to = s
                .row
                .get("ConvertedContactId")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            if let (Some(link), Some(contact)) = (&w.link, converted_to) {
                let relinked = self
                    .links
                    .relink(link, &link.hubspot_id, "Contact", contact)
                    .await
                    .map_err(|e| e.to_string())?;
                w.link = Some(relinked);
                w.salesforce = None;
            }
        }
        super::merge_same_pairs(works);
        // The other side of linked pairs.
        let mut need_hs: Vec<String> = Vec::new();
        let mut need_sf: HashMap<String, Vec<String>> = HashMap::new();
        for w in works.iter().filter(|w| w.link.is_some()) {
            let Some(link) = &w.link else { continue };
            if w.hubspot.is_none() {
                need_hs.push(link.hubspot_id.clone());
            }
            if w.salesforce.is_none() {
                need_sf
                    .entry(link.salesforce_object.clone())
                    .or_default()
                    .push(link.salesforce_id.clone());
            }
        }
        let hs = self.read_contacts_hs(&need_hs, false).await?;
        let mut sf: Vec<Record> = Vec::new();
        for (sobject, ids) in &need_sf {
            sf.extend(
                self.read_contacts_sf(sobject, ids)
                    .await?
                    .into_iter()
                    .map(|r| Record::new(sobject, r)),
            );
        }
        for w in works.iter_mut() {
            let Some(link) = w.link.clone() else { continue };
            if w.hubspot.is_none() {
                w.hubspot = hs.iter().find(|h| h.id == link.hubspot_id).cloned();
            }
            if w.salesforce.is_none() {
                w.salesforce = sf
                    .iter()
                    .find(|s| same_sf_id(&s.id(), &link.salesforce_id))
                    .cloned();
            }
        }

        // Unlinked HubSpot contacts that name their Salesforce record (an earlier
        // integration, or a state store rebuilt from scratch): that record.
        let mut named: HashMap<&str, Vec<String>> = HashMap::new();
        for w in works
            .iter()
            .filter(|w| w.link.is_none() && w.salesforce.is_none())
        {
            let Some(h) = &w.hubspot else { continue };
            for (property, sobject) in [(CONTACT_ID, "Contact"), (LEAD_ID, "Lead")] {
                if let Some(id) = h
                    .properties
                    .get(property)
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                {
                    named.entry(sobject).or_default().push(id.to_owned());
                    break;
                }
            }
        }
        let mut named_rows: Vec<Record> = Vec::new();
        for (sobject, ids) in &named {
            named_rows.extend(
                self.read_contacts_sf(sobject, ids)
                    .await?
                    .into_iter()
                    .map(|r| Record::new(sobject, r)),
            );
        }
        for w in works
            .iter_mut()
            .filter(|w| w.link.is_none() && w.salesforce.is_none())
        {
            let Some(h) = &w.hubspot else { continue };
            let found = [CONTACT_ID, LEAD_ID]
                .iter()
                .filter_map(|p| h.properties.get(*p).and_then(Value::as_str))
                .find_map(|id| named_rows.iter().find(|r| same_sf_id(&r.id(), id)))
                .filter(|r| r.row.get("IsConverted").and_then(Value::as_bool) != Some(true));
            if let Some(r) = found
                && self
                    .links
                    .by_salesforce(&r.object, &r.id())
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none()
            {
                w.salesforce = Some(r.clone());
            }
        }
        // Unlinked HubSpot contacts: the best Salesforce record with their email.
        let emails: Vec<String> = works
            .iter()
            .filter(|w| w.link.is_none() && w.salesforce.is_none())
            .filter_map(|w| {
                w.hubspot
                    .as_ref()
                    .and_then(|h| email_of(&h.properties, "email"))
            })
            .collect();
        if !emails.is_empty() {
            let found = self.salesforce_by_email(&emails).await?;
            for w in works
                .iter_mut()
                .filter(|w| w.link.is_none() && w.salesforce.is_none())
            {
                let email = w
                    .hubspot
                    .as_ref()
                    .and_then(|h| email_of(&h.properties, "email"));
                if let Some(best) = email.and_then(|e| found.get(&e)).and_then(|t| t.first()) {
                    // The best twin may be linked to another contact already.
                    if self
                        .links
                        .by_salesforce(&best.object, &best.id())
                        .await
                        .map_err(|e| e.to_string())?
                        .is_none()
                    {
                        w.salesforce = Some(best.clone());
                    }
                }
            }
        }
        // Unlinked Salesforce records: the HubSpot contact with their email.
        let emails: Vec<String> = works
            .iter()
            .filter(|w| w.link.is_none() && w.hubspot.is_none())
            .filter_map(|w| {
                w.salesforce
                    .as_ref()
                    .and_then(|s| email_of(&s.row, "Email"))
            })
            .collect();
        let found = self.read_contacts_hs(&emails, true).await?;
        for w in works
            .iter_mut()
            .filter(|w| w.link.is_none() && w.hubspot.is_none())
        {
            let email = w
                .salesforce
                .as_ref()
                .and_then(|s| email_of(&s.row, "Email"));
            w.hubspot = found
                .iter()
                .find(|h| email.is_some() && email_of(&h.properties, "email") == email)
                .cloned();
            // That contact may be linked to a twin already.
            if let Some(h) = &w.hubspot {
                w.twin_of = self
                    .links
                    .by_hubspot(PAIR, &h.id)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        super::merge_same_pairs(works);
        Ok(())
    }

    /// Members of the inclusion list, read once for a batch that creates in
    /// Salesforce; `None` when no list rule applies.
    async fn inclusion_list_members(
        &self,
        works: &[Work],
    ) -> Result<Option<std::collections::HashSet<String>>, String> {
        let Inclusion::List(list) = &self.config.contacts.inclusion else {
            return Ok(None);
        };
        if !works
            .iter()
            .any(|w| w.hubspot.is_some() && w.salesforce.is_none())
        {
            return Ok(None);
        }
        let ids = self
            .hubspot
            .list_members(list)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(ids.into_iter().collect()))
    }

    /// The rules and the merge for one pair. `Err` ends the pair here (skipped, or a
    /// claim held by another worker), with the items it answers.
    async fn plan_contact(
        &self,
        item: &WorkItem,
        mut w: Work,
        now: i64,
    ) -> Result<Planned, (ItemOutcome, Vec<usize>)> {
        let settings = &self.config.contacts;
        let direction = if w.origin == Some(Side::Salesforce) {
            "to_hubspot"
        } else {
            "to_salesforce"
        };
        let done = |w: &Work| (ItemOutcome::Done, w.items.clone());
        if w.origin == Some(Side::Salesforce)
            && settings.on_salesforce_update == SalesforceUpdateRule::DoNothing
        {
            self.note(
                item,
                direction,
                Outcome::Skipped,
                Some("salesforce_updates_off"),
                None,
                now,
            )
            .await;
            return Err(done(&w));
        }
        if let (Some(twin), Some(s)) = (&w.twin_of, &w.salesforce) {
            // Another Salesforce record with this email is linked: a Contact wins over
            // a Lead; otherwise the linked one stays.
            if !(s.object == "Contact" && twin.salesforce_object == "Lead") {
                let message = format!(
                    "another Salesforce record with this email ({} {}) is synced with HubSpot contact {}",
                    twin.salesforce_object, twin.salesforce_id, twin.hubspot_id
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
                return Err(done(&w));
            }
            let relinked = self
                .links
                .relink(twin, &twin.hubspot_id, &s.object, &s.id())
                .await;
            match relinked {
                Ok(l) => w.link = Some(l),
                Err(e) => return Err((ItemOutcome::Retry(e.to_string()), w.items.clone())),
            }
        }
        let email = w
            .hubspot
            .as_ref()
            .and_then(|h| email_of(&h.properties, "email"))
            .or_else(|| {
                w.salesforce
                    .as_ref()
                    .and_then(|s| email_of(&s.row, "Email"))
            });
        if w.link.is_none() && email.is_none() {
            let message = "a contact without an email address does not sync".to_owned();
            self.note(
                item,
                direction,
                Outcome::Skipped,
                Some("no_email"),
                Some(message),
                now,
            )
            .await;
            return Err(done(&w));
        }
        if let (Some(h), None) = (&w.hubspot, &w.salesforce)
            && settings.inclusion.admits(&h.properties).or(w.in_list) == Some(false)
        {
            self.note(
                item,
                direction,
                Outcome::Skipped,
                Some("outside_inclusion"),
                None,
                now,
            )
            .await;
            return Err(done(&w));
        }
        let creating = w.hubspot.is_none() || w.salesforce.is_none();
        let claim_key = if creating {
            email.as_ref().map(|e| format!("contact-email:{e}"))
        } else {
            None
        };
        if let Some(key) = &claim_key {
            match self
                .claims
                .claim(key, &self.worker, CLAIM_TTL_MS, now)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    let why = format!("another worker is creating {key}");
                    return Err((ItemOutcome::Retry(why), w.items.clone()));
                }
                Err(e) => return Err((ItemOutcome::Retry(e.to_string()), w.items.clone())),
            }
        }
        let sobject = match (&w.salesforce, settings.create_salesforce_as) {
            (Some(s), _) => s.object.clone(),
            (None, PersonObject::Lead) => "Lead".to_owned(),
            (None, PersonObject::Contact) => "Contact".to_owned(),
        };
        let meta = self.pair_meta(PAIR, &sobject).await;
        let Ok(rules) = MergeRules::new(&self.config, PAIR, &sobject, &meta, &self.owners) else {
            return Err((
                ItemOutcome::Retry(format!("no rules for {sobject}")),
                w.items.clone(),
            ));
        };
        let sf = w
            .salesforce
            .as_ref()
            .map(salesforce_snapshot)
            .unwrap_or_default();
        Ok(Planned::merged(
            w, &rules, sf, direction, sobject, claim_key, email,
        ))
    }

    /// HubSpot writes of the whole batch: one batch update, one upsert by email for the
    /// creates. Every contact learns its Salesforce id and which kind of record it is.
    async fn write_hubspot_contacts(&self, items: &[WorkItem], planned: &mut [Planned], now: i64) {
        for p in planned.iter_mut().filter(|p| p.outcome.is_none()) {
            let Some(sf) = p.salesforce_id.clone() else {
                continue;
            };
            let (id_property, other) = if p.sobject == "Lead" {
                (LEAD_ID, CONTACT_ID)
            } else {
                (CONTACT_ID, LEAD_ID)
            };
            let h = p.work.hubspot.as_ref().map(|h| &h.properties);
            let known = |k: &str| {
                h.and_then(|m| m.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            if !same_sf_id(&known(id_property), &sf) {
                p.hubspot_writes.insert(id_property.into(), json!(sf));
            }
            if p.sobject == "Contact" && !known(other).is_empty() {
                p.hubspot_writes.insert(other.into(), json!(""));
            }
            if known(KIND) != p.sobject.to_uppercase() {
                p.hubspot_writes
                    .insert(KIND.into(), json!(p.sobject.to_uppercase()));
            }
        }
        self.update_hubspot(PAIR, items, planned, now).await;
        let live = |p: &Planned| p.live() && p.salesforce_id.is_some();
        let creates: Vec<usize> = (0..planned.len())
            .filter(|&n| live(&planned[n]) && planned[n].hubspot_id.is_none())
            .collect();
        if creates.is_empty() {
            return;
        }
        let inputs: Vec<(usize, HubSpotInput)> = creates
            .iter()
            .map(|&n| {
                let mut props = planned[n].hubspot_writes.clone();
                props.remove("email");
                (n, (planned[n].key.clone().unwrap_or_default(), props))
            })
            .collect();
        let results = self
            .hubspot_isolating(&creates, |which| {
                let subset = subset(&inputs, &which);
                async move { self.hubspot.batch_upsert(PAIR, "email", &subset).await }
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
                let email = planned[n].key.clone();
                if let Some(e) = outcome.errors.iter().find(|e| email_key(&e.key) == email) {
                    let item = &items[planned[n].work.items.first().copied().unwrap_or(0)];
                    let direction = planned[n].direction;
                    let o = self
                        .hubspot_failed(item, direction, &e.category, &e.message, now)
                        .await;
                    planned[n].outcome = Some(o);
                    continue;
                }
                let record = outcome
                    .records
                    .iter()
                    .find(|r| email.is_some() && email_of(&r.properties, "email") == email);
                planned[n].outcome = match record {
                    Some(r) => {
                        planned[n].hubspot_id = Some(r.id.clone());
                        None
                    }
                    None => Some(ItemOutcome::Retry(
                        "HubSpot did not return the upserted contact".into(),
                    )),
                };
            }
        }
    }
}
