//! `crmsync setup`: prepares both CRMs, idempotently. Creates the HubSpot properties
//! crmsync writes; checks that every mapped Salesforce field exists and is writable by
//! the integration user, and says how to fix what is not.

use crmsync_shared::adapters::hubspot::HubSpotClient;
use crmsync_shared::adapters::salesforce::SalesforceClient;
use crmsync_shared::domain::config::ValidatedConfig;
use crmsync_shared::local::env::Connections;
use crmsync_shared::pipeline::contacts::HUBSPOT_ID_FIELD;
use serde_json::{Value, json};

use crate::CliError;

/// The HubSpot properties crmsync keeps the Salesforce side in.
const HUBSPOT_PROPERTIES: [(&str, &str, &str); 4] = [
    ("contacts", "salesforceleadid", "Salesforce Lead ID"),
    ("contacts", "salesforcecontactid", "Salesforce Contact ID"),
    ("contacts", "salesforceobjecttype", "Salesforce record type"),
    ("companies", "salesforceaccountid", "Salesforce Account ID"),
];

/// What setup found: problems it could not fix, each with how to fix it.
pub struct SetupReport {
    pub created: Vec<String>,
    pub present: Vec<String>,
    pub problems: Vec<String>,
}

pub async fn run(config: &ValidatedConfig) -> Result<SetupReport, CliError> {
    let connections = Connections::from_env(|k| std::env::var(k).ok())
        .map_err(|e| CliError::Setup(e.to_string()))?;
    let hubspot = HubSpotClient::new(connections.hubspot)
        .map_err(|e| CliError::Setup(format!("HubSpot client: {e}")))?;
    let salesforce = SalesforceClient::new(connections.salesforce)
        .map_err(|e| CliError::Setup(format!("Salesforce client: {e}")))?;
    let mut report = SetupReport {
        created: Vec::new(),
        present: Vec::new(),
        problems: Vec::new(),
    };

    for (object, name, label) in HUBSPOT_PROPERTIES {
        let group = if object == "contacts" {
            "contactinformation"
        } else {
            "companyinformation"
        };
        let definition = json!({
            "name": name, "label": label, "type": "string", "fieldType": "text", "groupName": group,
            "description": "Written by crmsync: the linked Salesforce record."
        });
        match hubspot.ensure_property(object, &definition).await {
            Ok(true) => report.created.push(format!("HubSpot {object}.{name}")),
            Ok(false) => report.present.push(format!("HubSpot {object}.{name}")),
            Err(e) => report.problems.push(format!(
                "HubSpot {object}.{name}: could not create it ({e}); give the app the crm.schemas.{object}.write scope"
            )),
        }
    }

    let mut wanted: Vec<(&str, String)> = Vec::new();
    if config.contacts.enabled {
        for sobject in ["Lead", "Contact"] {
            wanted.push((sobject, HUBSPOT_ID_FIELD.to_owned()));
            for f in &config.contacts.fields {
                if let Some(field) = f.salesforce.on(sobject) {
                    wanted.push((sobject, field.to_owned()));
                }
            }
        }
    }
    for sobject in ["Lead", "Contact"] {
        let describe = match salesforce.describe(sobject).await {
            Ok(d) => d,
            Err(e) => {
                report.problems.push(format!("Salesforce {sobject}: cannot describe it ({e}); give the integration user read access"));
                continue;
            }
        };
        let fields: Vec<Value> = describe
            .get("fields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (_, name) in wanted.iter().filter(|(o, _)| *o == sobject) {
            let Some(f) = fields
                .iter()
                .find(|f| f.get("name").and_then(Value::as_str) == Some(name.as_str()))
            else {
                let fix = if name == HUBSPOT_ID_FIELD {
                    "create a Text(32) field with External ID and Unique checked"
                } else {
                    "create the field or change the mapping"
                };
                report
                    .problems
                    .push(format!("Salesforce {sobject}.{name} is missing: {fix}"));
                continue;
            };
            let flag = |k: &str| f.get(k).and_then(Value::as_bool).unwrap_or(false);
            let calculated = flag("calculated");
            if !calculated && !flag("updateable") && !flag("createable") {
                report.problems.push(format!(
                    "Salesforce {sobject}.{name} is read-only for the integration user: grant edit access in its profile or permission set (field-level security)"
                ));
            } else if name == HUBSPOT_ID_FIELD && !flag("externalId") {
                report.problems.push(format!(
                    "Salesforce {sobject}.{name} must be marked External ID"
                ));
            } else {
                report.present.push(format!("Salesforce {sobject}.{name}"));
            }
        }
    }
    Ok(report)
}
