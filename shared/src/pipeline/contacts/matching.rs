//! Finding the records of a contact batch: both sides read in bulk, links, lead
//! conversions, and matches for unlinked records (the Salesforce record a HubSpot
//! contact names, then email: a Contact over a Lead, then the most recently modified).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{CONTACT_ID, LEAD_ID, PAIR, email_of, same_sf_id, sf_id};
use crate::domain::Side;
use crate::domain::config::SalesforceDeleteRule;
use crate::pipeline::{Pipeline, Record, Work};
use crate::ports::{Outcome, WorkItem};

impl Pipeline {
    pub(super) async fn read_contacts_hs(
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

    pub(super) async fn read_contacts_sf(
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
    pub(super) async fn salesforce_by_email(
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

    /// The records the queue names, read in bulk from each side, one work per record.
    pub(super) async fn gather_contacts(
        &self,
        items: &[WorkItem],
        now: i64,
    ) -> Result<Vec<Work>, String> {
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
    pub(super) async fn salesforce_deleted(&self, item: &WorkItem, now: i64) -> Result<(), String> {
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
    pub(super) async fn match_contacts(&self, works: &mut Vec<Work>) -> Result<(), String> {
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
        crate::pipeline::merge_same_pairs(works);
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
        crate::pipeline::merge_same_pairs(works);
        Ok(())
    }
}
