//! The initial sync, planned without writing: what a first run would create, link and
//! update on each side. Both sides are read in bulk and matched in memory (by email;
//! a Contact over a Lead, then the most recently modified), as the sync matches them.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::{Pipeline, Record, contacts};
use crate::domain::config::{PersonObject, SalesforceUpdateRule};
use crate::domain::dedup::email_key;

/// Per object pair: what would happen, by kind, with counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BackfillPlan {
    /// `contacts` -> `create in Salesforce as Lead` -> 12, ...
    pub pairs: BTreeMap<String, BTreeMap<String, u64>>,
}

impl BackfillPlan {
    fn add(&mut self, pair: &str, what: impl Into<String>) {
        *self
            .pairs
            .entry(pair.to_owned())
            .or_default()
            .entry(what.into())
            .or_default() += 1;
    }
}

impl Pipeline {
    /// Reads both CRMs and reports what a first sync would do. Writes nothing.
    pub async fn plan_backfill(&self) -> Result<BackfillPlan, String> {
        let mut plan = BackfillPlan::default();
        if !self.config.contacts.enabled {
            return Ok(plan);
        }
        let pair = contacts::PAIR;
        let props = self.contact_properties();
        let refs: Vec<&str> = props.iter().map(String::as_str).collect();
        let hubspot = self
            .hubspot
            .changed_since(pair, 0, &refs)
            .await
            .map_err(|e| format!("HubSpot contacts: {e}"))?;
        let mut salesforce: HashMap<String, Record> = HashMap::new();
        let mut sf_without_email = 0u64;
        for sobject in ["Contact", "Lead"] {
            let fields = self.contact_fields(sobject).join(", ");
            let filter = if sobject == "Lead" {
                " WHERE IsConverted = false"
            } else {
                ""
            };
            let rows = self
                .salesforce
                .query(&format!("SELECT {fields} FROM {sobject}{filter}"), false)
                .await
                .map_err(|e| format!("Salesforce {sobject}: {e}"))?;
            for row in rows.into_iter().filter_map(|r| r.as_object().cloned()) {
                let record = Record::new(sobject, row);
                let Some(email) = record
                    .row
                    .get("Email")
                    .and_then(Value::as_str)
                    .and_then(email_key)
                else {
                    sf_without_email += 1;
                    continue;
                };
                let better = match salesforce.get(&email) {
                    None => true,
                    Some(o) => {
                        (o.object == "Lead" && sobject == "Contact")
                            || (o.object == sobject && record.modified_at > o.modified_at)
                    }
                };
                if better {
                    if let Some(loser) = salesforce.insert(email, record) {
                        plan.add(
                            pair,
                            format!("skip Salesforce {} (duplicate email)", loser.object),
                        );
                    }
                } else {
                    plan.add(pair, format!("skip Salesforce {sobject} (duplicate email)"));
                }
            }
        }
        let create_as = match self.config.contacts.create_salesforce_as {
            PersonObject::Lead => "Lead",
            PersonObject::Contact => "Contact",
        };
        let mut matched: HashSet<String> = HashSet::new();
        for h in &hubspot {
            let Some(email) = h
                .properties
                .get("email")
                .and_then(Value::as_str)
                .and_then(email_key)
            else {
                plan.add(pair, "skip HubSpot contact (no email)");
                continue;
            };
            if self
                .links
                .by_hubspot(pair, &h.id)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                plan.add(pair, "update (already linked)");
                matched.insert(email);
                continue;
            }
            match salesforce.get(&email) {
                Some(s) => {
                    plan.add(pair, format!("link with Salesforce {}", s.object));
                    matched.insert(email);
                }
                None if self.config.contacts.inclusion.admits(&h.properties) == Some(false) => {
                    plan.add(pair, "skip HubSpot contact (outside inclusion)");
                }
                None => plan.add(pair, format!("create in Salesforce as {create_as}")),
            }
        }
        let creates_in_hubspot =
            self.config.contacts.on_salesforce_update == SalesforceUpdateRule::CreateOrUpdate;
        for (email, s) in &salesforce {
            if matched.contains(email) {
                continue;
            }
            if creates_in_hubspot {
                plan.add(
                    pair,
                    format!("create in HubSpot from Salesforce {}", s.object),
                );
            } else {
                plan.add(
                    pair,
                    format!("skip Salesforce {} (updates set to do nothing)", s.object),
                );
            }
        }
        for _ in 0..sf_without_email {
            plan.add(pair, "skip Salesforce record (no email)");
        }
        Ok(plan)
    }
}
