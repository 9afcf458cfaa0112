//! Lifecycle stage from opportunities (the seeds' "Adjusting Lifecycle Stage"): a HubSpot
//! contact whose Salesforce Contact has a contact role on an open opportunity becomes
//! `opportunity`, on a won one `customer`, never backwards (`domain::lifecycle`). With
//! company propagation on, the contact's HubSpot companies and every contact of them
//! follow, forward only too.
//!
//! It rides on the contacts pair: a Contact's opportunities are read with it (one query
//! per batch), the contacts hook adds the stage to the HubSpot writes, and the triggers
//! (a changed Opportunity or OpportunityContactRole, from the feeds or an outbound
//! message) queue the Contacts with a role on it as contact work. A Lead has no
//! contact roles, and a contact without any keeps its stage.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::soql::{IN_MAX, literal_list};
use super::work::Work;
use super::writes::Planned;
use super::{PairRun, Pipeline};
use crate::domain::Side;
use crate::domain::lifecycle::{OpportunityState, PROPERTY, may_move};
use crate::ports::WorkItem;

/// The sObjects whose changes can move a contact's stage.
pub const TRIGGERS: [&str; 2] = ["Opportunity", "OpportunityContactRole"];

/// Whether a queued reference is a lifecycle trigger.
pub(crate) fn is_trigger(item: &WorkItem) -> bool {
    item.side == Side::Salesforce && TRIGGERS.contains(&item.object.as_str())
}

/// A record's stage in a propagation: the furthest of the stages reaching it.
fn move_to<'s>(stages: &mut BTreeMap<String, &'s str>, id: String, stage: &'s str) {
    let at = stages.entry(id).or_insert(stage);
    if may_move(at, stage) {
        *at = stage;
    }
}

impl Pipeline {
    /// Whether contacts move with their opportunities.
    pub(crate) fn lifecycle_on(&self) -> bool {
        self.config.contacts.enabled && self.config.contacts.lifecycle_from_opportunities.enabled
    }

    /// The Salesforce feeds read only to trigger lifecycle moves: the opportunities (when
    /// deals do not sync them already) and the contact roles.
    pub fn trigger_feeds(&self) -> Vec<String> {
        if !self.lifecycle_on() {
            return Vec::new();
        }
        TRIGGERS
            .iter()
            .filter(|o| !self.pairs.iter().any(|p| p.spec.syncs(o)))
            .map(|o| (*o).to_owned())
            .collect()
    }

    /// The Contacts with a contact role on the opportunities or roles these references
    /// name, as contact work (one query per 200 references).
    pub(crate) async fn lifecycle_contacts(
        &self,
        triggers: &[&WorkItem],
    ) -> Result<Vec<WorkItem>, String> {
        let mut contacts: Vec<WorkItem> = Vec::new();
        for chunk in triggers.chunks(IN_MAX) {
            let of = |object: &str| -> Vec<&str> {
                chunk
                    .iter()
                    .filter(|i| i.object == object)
                    .map(|i| i.id.as_str())
                    .collect()
            };
            let mut conditions = Vec::new();
            let opportunities = of("Opportunity");
            if !opportunities.is_empty() {
                conditions.push(format!(
                    "OpportunityId IN ({})",
                    literal_list(&opportunities)
                ));
            }
            let roles = of("OpportunityContactRole");
            if !roles.is_empty() {
                conditions.push(format!("Id IN ({})", literal_list(&roles)));
            }
            let soql = format!(
                "SELECT ContactId FROM OpportunityContactRole WHERE {}",
                conditions.join(" OR ")
            );
            let rows = self
                .salesforce
                .query(&soql, false)
                .await
                .map_err(|e| e.to_string())?;
            for id in rows
                .iter()
                .filter_map(|r| r.get("ContactId").and_then(Value::as_str))
            {
                if !contacts.iter().any(|c| c.id == id) {
                    contacts.push(WorkItem {
                        side: Side::Salesforce,
                        object: "Contact".into(),
                        id: id.to_owned(),
                        origin: "lifecycle".into(),
                        seen: None,
                    });
                }
            }
        }
        Ok(contacts)
    }

    /// Each Salesforce Contact's opportunities, through its contact roles: one query per
    /// batch of contacts.
    pub(crate) async fn read_opportunities(
        &self,
        run: &PairRun,
        works: &mut [Work],
    ) -> Result<(), String> {
        if !self.lifecycle_on() || run.spec.name != "contacts" {
            return Ok(());
        }
        let ids: Vec<String> = works
            .iter()
            .filter_map(|w| w.salesforce.as_ref())
            .filter(|s| s.object == "Contact")
            .map(|s| s.id())
            .collect();
        let mut found: HashMap<String, Vec<OpportunityState>> = HashMap::new();
        let rows = self
            .query_in(&ids, |list| {
                format!(
                    "SELECT ContactId, Opportunity.IsClosed, Opportunity.IsWon \
                     FROM OpportunityContactRole WHERE ContactId IN ({list})"
                )
            })
            .await
            .map_err(|e| e.to_string())?;
        for row in rows {
            let Some(contact) = row.get("ContactId").and_then(Value::as_str) else {
                continue;
            };
            let flag = |f: &str| {
                row.get("Opportunity")
                    .and_then(|o| o.get(f))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            };
            found
                .entry(contact.to_owned())
                .or_default()
                .push(OpportunityState::of(flag("IsClosed"), flag("IsWon")));
        }
        for w in works.iter_mut() {
            if let Some(s) = w.salesforce.as_mut().filter(|s| s.object == "Contact") {
                s.opportunities = Some(found.remove(&s.id()).unwrap_or_default());
            }
        }
        Ok(())
    }

    /// The contacts of a written batch whose stage the rule moved: (HubSpot id, stage).
    pub(crate) fn lifecycle_moves(planned: &[Planned]) -> Vec<(String, String)> {
        planned
            .iter()
            .filter(|p| p.live())
            .filter_map(|p| {
                let stage = p.derived.get(PROPERTY)?.as_str()?;
                Some((p.hubspot_id.clone()?, stage.to_owned()))
            })
            .collect()
    }

    /// Company propagation: each moved contact's HubSpot companies, and every contact
    /// of those companies, move to its stage where that is forward. Best effort: a
    /// failure is logged and the next move of any of them tries again.
    pub(crate) async fn propagate_lifecycle(&self, moved: &[(String, String)]) {
        let rule = self.config.contacts.lifecycle_from_opportunities;
        if moved.is_empty() || !rule.enabled || !rule.propagate_to_company {
            return;
        }
        if let Err(e) = self.try_propagate(moved).await {
            tracing::warn!(message = "lifecycle stage not propagated to companies", error = %e);
        }
    }

    async fn try_propagate(&self, moved: &[(String, String)]) -> Result<(), String> {
        let contact_ids: Vec<String> = moved.iter().map(|(id, _)| id.clone()).collect();
        let stage_of: HashMap<&str, &str> = moved
            .iter()
            .map(|(i, s)| (i.as_str(), s.as_str()))
            .collect();
        // Each company's stage: the furthest of its moved contacts'.
        let mut companies: BTreeMap<String, &str> = BTreeMap::new();
        let of_contacts = self
            .hubspot
            .associations("contacts", "companies", &contact_ids)
            .await
            .map_err(|e| e.to_string())?;
        for (contact, list) in &of_contacts {
            let Some(stage) = stage_of.get(contact.as_str()).copied() else {
                continue;
            };
            for company in list {
                move_to(&mut companies, company.clone(), stage);
            }
        }
        if companies.is_empty() {
            return Ok(());
        }
        let company_ids: Vec<String> = companies.keys().cloned().collect();
        let mut contacts: BTreeMap<String, &str> = BTreeMap::new();
        for (company, list) in self
            .hubspot
            .associations("companies", "contacts", &company_ids)
            .await
            .map_err(|e| e.to_string())?
        {
            let Some(stage) = companies.get(&company).copied() else {
                continue;
            };
            for contact in list {
                move_to(&mut contacts, contact, stage);
            }
        }
        self.move_forward("companies", &companies).await?;
        self.move_forward("contacts", &contacts).await
    }

    /// Sets each record's stage where that moves it forward (read first: HubSpot would
    /// take a step back).
    async fn move_forward(
        &self,
        object: &str,
        stages: &BTreeMap<String, &str>,
    ) -> Result<(), String> {
        let ids: Vec<String> = stages.keys().cloned().collect();
        let mut inputs: Vec<(String, Map<String, Value>)> = Vec::new();
        for chunk in ids.chunks(100) {
            let records = self
                .hubspot
                .batch_read(object, chunk, &[PROPERTY], &[], None)
                .await
                .map_err(|e| e.to_string())?;
            for r in records {
                let Some(stage) = stages.get(&r.id).copied() else {
                    continue;
                };
                let current = r
                    .properties
                    .get(PROPERTY)
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if current != stage && may_move(current, stage) {
                    let mut properties = Map::new();
                    properties.insert(PROPERTY.into(), json!(stage));
                    inputs.push((r.id, properties));
                }
            }
        }
        for chunk in inputs.chunks(100) {
            let outcome = self
                .hubspot
                .batch_update(object, chunk)
                .await
                .map_err(|e| e.to_string())?;
            for e in &outcome.errors {
                tracing::warn!(message = "lifecycle stage not set", object, record = %e.key, error = %e.message);
            }
        }
        Ok(())
    }
}
