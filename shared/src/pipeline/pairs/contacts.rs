//! Contacts <-> Leads and Contacts: what only this pair decides. A Contact wins over a
//! Lead with the same email; a converted Lead hands its link to its Contact; the
//! settings choose what new contacts become and what Salesforce updates and deletions
//! do; and a Lead's `Company` placeholder never flows back into HubSpot. (Inclusion
//! rules are every pair's: `pairs::inclusion`.)

use serde_json::{Map, Value, json};

use super::{PairHooks, Verdict};
use crate::domain::Side;
use crate::domain::config::{
    ContactSettings, SalesforceDeleteRule, SalesforceUpdateRule, ValidatedConfig,
};
use crate::domain::lifecycle;
use crate::domain::merge::Snapshot;
use crate::pipeline::work::{Record, Work};
use crate::ports::Link;

/// What a Lead gets as `Company` when HubSpot has none (Salesforce requires one).
pub const NO_COMPANY: &str = "[not provided]";
const LEAD_ID: &str = "salesforceleadid";

pub(super) struct Contacts {
    settings: ContactSettings,
}

impl Contacts {
    pub fn new(config: &ValidatedConfig) -> Self {
        Contacts {
            settings: config.contacts.clone(),
        }
    }
}

impl PairHooks for Contacts {
    fn hubspot_properties(&self) -> Vec<String> {
        let mut props = Vec::new();
        if self.settings.lifecycle_from_opportunities.enabled {
            props.push(lifecycle::PROPERTY.into());
        }
        props
    }

    fn salesforce_fields(&self, sobject: &str) -> Vec<String> {
        match sobject {
            "Lead" => vec!["IsConverted".into(), "ConvertedContactId".into()],
            _ => Vec::new(),
        }
    }

    fn match_filter(&self, sobject: &str) -> Option<&'static str> {
        (sobject == "Lead").then_some("IsConverted = false")
    }

    fn matchable(&self, record: &Record) -> bool {
        record.row.get("IsConverted").and_then(Value::as_bool) != Some(true)
    }

    fn rank(&self, record: &Record) -> (bool, i64) {
        (record.object == "Contact", record.modified_at)
    }

    fn converted_to(&self, record: &Record) -> Option<(String, String)> {
        record
            .row
            .get("ConvertedContactId")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(|c| ("Contact".to_owned(), c.to_owned()))
    }

    fn converted_from_field(&self, sobject: &str) -> Option<(&'static str, &'static str)> {
        (sobject == "Contact").then_some(("Lead", "ConvertedContactId"))
    }

    fn admit(&self, work: &Work) -> Verdict {
        if work.origin == Some(Side::Salesforce)
            && self.settings.on_salesforce_update == SalesforceUpdateRule::DoNothing
        {
            return Verdict::Skip {
                code: "salesforce_updates_off",
                message: None,
            };
        }
        Verdict::Go
    }

    fn takes_over(&self, record: &Record, twin: &Link) -> bool {
        record.object == "Contact" && twin.salesforce_object == "Lead"
    }

    fn salesforce_snapshot(&self, record: &Record) -> Snapshot {
        let mut s = record.snapshot();
        if record.object == "Lead"
            && s.values.get("Company").and_then(Value::as_str) == Some(NO_COMPANY)
        {
            s.values.insert("Company".into(), Value::Null);
        }
        s
    }

    fn salesforce_create_defaults(&self, sobject: &str, row: &mut Map<String, Value>) {
        let blank = row
            .get("Company")
            .is_none_or(|c| c.as_str().is_none_or(str::is_empty));
        if sobject == "Lead" && blank {
            row.insert("Company".into(), json!(NO_COMPANY));
        }
    }

    fn derived_hubspot_writes(
        &self,
        work: &Work,
        planned: &Map<String, Value>,
    ) -> Map<String, Value> {
        let mut writes = Map::new();
        let opportunities = work
            .salesforce
            .as_ref()
            .and_then(|s| s.opportunities.as_ref());
        if let (true, Some(opportunities)) = (
            self.settings.lifecycle_from_opportunities.enabled,
            opportunities,
        ) {
            let current = planned
                .get(lifecycle::PROPERTY)
                .or_else(|| work.hubspot.as_ref()?.properties.get(lifecycle::PROPERTY))
                .and_then(Value::as_str);
            if let Some(stage) = lifecycle::stage_from_opportunities(current, opportunities) {
                writes.insert(lifecycle::PROPERTY.into(), json!(stage));
            }
        }
        writes
    }

    fn identity_writes(
        &self,
        sobject: &str,
        known: Option<&Map<String, Value>>,
        writes: &mut Map<String, Value>,
    ) {
        let known = |k: &str| {
            known
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        // A contact that was a Lead no longer names it.
        if sobject == "Contact" && !known(LEAD_ID).is_empty() {
            writes.insert(LEAD_ID.into(), json!(""));
        }
    }

    fn archive_on_salesforce_delete(&self) -> bool {
        self.settings.on_salesforce_delete == SalesforceDeleteRule::DeleteContact
    }
}
