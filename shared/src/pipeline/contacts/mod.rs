//! Syncing HubSpot contacts with Salesforce leads and contacts, a batch at a time:
//! read both sides in bulk, find the link or match by email (a Contact wins over a Lead,
//! then the most recently modified), apply the contact rules, claim the email before
//! any create, merge, write each side with batch calls, then store links and outcomes.
//!
//! Creates are upserts on a unique key (email in HubSpot, `HubSpot_Contact_Id__c` in
//! Salesforce), so a worker that dies between the CRM write and the link write finds
//! its record again on the retry instead of creating a second one.

mod matching;

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::associations::ContactAccount;
use super::writes::{HubSpotInput, Planned, subset};
use super::{CLAIM_TTL_MS, ItemOutcome, Pipeline, Record, Work};
use crate::domain::Side;
use crate::domain::config::{Inclusion, PersonObject, SalesforceUpdateRule};
use crate::domain::dedup::email_key;
use crate::domain::merge::MergeRules;
use crate::ports::{Outcome, WorkItem};

pub const PAIR: &str = "contacts";
/// Salesforce's field that holds the HubSpot id: the external id creates upsert on.
pub const HUBSPOT_ID_FIELD: &str = "HubSpot_Contact_Id__c";
/// What a Lead gets as `Company` when HubSpot has none (Salesforce requires one).
pub const NO_COMPANY: &str = "[not provided]";
/// The HubSpot properties that say which Salesforce record a contact is.
pub(super) const LEAD_ID: &str = "salesforceleadid";
pub(super) const CONTACT_ID: &str = "salesforcecontactid";
const KIND: &str = "salesforceobjecttype";

pub(super) fn email_of(map: &Map<String, Value>, field: &str) -> Option<String> {
    map.get(field).and_then(Value::as_str).and_then(email_key)
}

pub(super) fn sf_id(row: &Map<String, Value>) -> String {
    row.get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

pub(super) fn same_sf_id(a: &str, b: &str) -> bool {
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
