//! `crmsync setup`: prepares both CRMs, idempotently. Creates the HubSpot properties
//! crmsync writes; checks that every mapped HubSpot property exists and that every
//! Salesforce field the configuration needs (external ids, mapped fields, lookups) exists
//! on every synced object and is writable by the integration user, and says how to fix
//! what is not.

use crmsync_shared::adapters::hubspot::HubSpotClient;
use crmsync_shared::adapters::salesforce::SalesforceClient;
use crmsync_shared::domain::activity;
use crmsync_shared::domain::config::ValidatedConfig;
use crmsync_shared::domain::pair::pairs_of;
use crmsync_shared::local::env::Connections;
use serde_json::{Value, json};

use crate::CliError;

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

    let pairs = pairs_of(config);
    // The HubSpot properties crmsync keeps the Salesforce side in.
    let mut properties: Vec<(String, String, String)> = Vec::new();
    for pair in &pairs {
        for (sobject, property) in &pair.salesforce_id_properties {
            let label = format!("Salesforce {sobject} ID");
            properties.push((pair.hubspot_object.clone(), property.clone(), label));
        }
        if let Some(kind) = &pair.kind_property {
            let label = "Salesforce record type".to_owned();
            properties.push((pair.hubspot_object.clone(), kind.clone(), label));
        }
    }
    for (object, name, label) in &properties {
        let group = match object.as_str() {
            "contacts" => "contactinformation",
            "companies" => "companyinformation",
            "deals" => "dealinformation",
            "tickets" => "ticketinformation",
            _ => "",
        };
        if group.is_empty() {
            // A custom object's property groups are its own: check, do not guess.
            match hubspot.properties(object).await {
                Ok(props) if props.iter().any(|p| p.get("name").and_then(Value::as_str) == Some(name)) => {
                    report.present.push(format!("HubSpot {object}.{name}"));
                }
                Ok(_) => report.problems.push(format!(
                    "HubSpot {object}.{name} is missing: create a single-line text property named {name} on the custom object"
                )),
                Err(e) => report
                    .problems
                    .push(format!("HubSpot {object}: could not read its properties ({e})")),
            }
            continue;
        }
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

    // Every mapped HubSpot property exists on its object.
    for pair in &pairs {
        let mappings = config
            .pair(&pair.name)
            .map(|p| p.fields())
            .unwrap_or_default();
        let object = &pair.hubspot_object;
        let existing: Vec<String> = match hubspot.properties(object).await {
            Ok(props) => props
                .iter()
                .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect(),
            Err(e) => {
                report.problems.push(format!(
                    "HubSpot {object}: could not read its properties ({e}); give the app the crm.schemas.{object}.read scope"
                ));
                continue;
            }
        };
        let mut seen: Vec<&str> = Vec::new();
        for f in mappings {
            let name = f.hubspot.as_str();
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            if existing.iter().any(|p| p == name) {
                report.present.push(format!("HubSpot {object}.{name}"));
            } else {
                report.problems.push(format!(
                    "HubSpot {object}.{name} is missing: create the property or change the mapping"
                ));
            }
        }
    }

    // Salesforce Tasks as HubSpot tasks: upserted on a unique property of tasks.
    let activities = &config.activities;
    if activities.enabled && activities.salesforce_tasks_to_hubspot {
        let name = activity::TASK_ID_PROPERTY;
        match hubspot.properties("tasks").await {
            Ok(props)
                if props.iter().any(|p| {
                    p.get("name").and_then(Value::as_str) == Some(name)
                        && p.get("hasUniqueValue").and_then(Value::as_bool) == Some(true)
                }) =>
            {
                report.present.push(format!("HubSpot tasks.{name}"));
            }
            Ok(_) => report.problems.push(format!(
                "HubSpot tasks.{name} is missing: create a single-line text property named {name} on tasks with \"Require unique values\" on (Salesforce Tasks are upserted on it)"
            )),
            Err(e) => report
                .problems
                .push(format!("HubSpot tasks: could not read its properties ({e})")),
        }
    }

    let mut wanted: Vec<(String, String, bool)> = Vec::new();
    if activities.enabled {
        wanted.push(("Task".into(), activity::ENGAGEMENT_ID_FIELD.into(), true));
    }
    for pair in &pairs {
        let mappings = config
            .pair(&pair.name)
            .map(|p| p.fields())
            .unwrap_or_default();
        for sobject in &pair.sobjects {
            wanted.push((sobject.clone(), pair.hubspot_id_field.clone(), true));
            for f in mappings {
                if let Some(field) = f.salesforce.on(sobject) {
                    wanted.push((sobject.clone(), field.to_owned(), false));
                }
            }
            for l in pair.lookups.iter().filter(|l| l.on.contains(sobject)) {
                wanted.push((sobject.clone(), l.field.clone(), false));
            }
            // The Salesforce inclusion filter reads these fields on every batch.
            for field in pair.inclusion.salesforce_fields(sobject) {
                wanted.push((sobject.clone(), field, false));
            }
        }
    }
    let mut sobjects: Vec<String> = wanted.iter().map(|(o, _, _)| o.clone()).collect();
    sobjects.sort();
    sobjects.dedup();
    for sobject in &sobjects {
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
        let mut seen: Vec<&str> = Vec::new();
        for (_, name, external) in wanted.iter().filter(|(o, _, _)| o == sobject) {
            if seen.contains(&name.as_str()) {
                continue;
            }
            seen.push(name);
            let Some(f) = fields
                .iter()
                .find(|f| f.get("name").and_then(Value::as_str) == Some(name.as_str()))
            else {
                let fix = if *external {
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
            } else if *external && !flag("externalId") {
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
