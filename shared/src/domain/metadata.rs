//! What each CRM says about a field: type, length, whether it can be written, picklist
//! values. HubSpot's properties API and Salesforce's describe call report it; the
//! adapters turn their answers into [`FieldMeta`], and the merge and the config
//! validation read only this.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::value::FieldType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMeta {
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// Maximum text length (Salesforce string fields); longer values are refused with
    /// STRING_TOO_LONG, so the merge holds them back as a data-quality issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// Not writable by the integration (Salesforce `updateable: false`, HubSpot
    /// `readOnlyValue`).
    #[serde(default)]
    pub read_only: bool,
    /// A formula / calculated field: computed by the CRM, never written, and its changes
    /// alone never trigger a sync.
    #[serde(default)]
    pub formula: bool,
    /// The allowed values of a picklist or enumeration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picklist: Option<Vec<String>>,
    /// Whether values outside `picklist` are refused (Salesforce restricted picklists;
    /// HubSpot enumerations always are).
    #[serde(default)]
    pub restricted: bool,
}

impl FieldMeta {
    pub fn of_type(ty: FieldType) -> Self {
        FieldMeta {
            ty,
            length: None,
            read_only: false,
            formula: false,
            picklist: None,
            restricted: false,
        }
    }

    /// Whether `value` would be refused as outside this field's allowed values.
    pub fn refuses_value(&self, value: &str) -> bool {
        match &self.picklist {
            Some(values) if self.restricted => !values.iter().any(|v| v == value),
            _ => false,
        }
    }
}

/// Field metadata of one object on one side, by field / property name.
pub type ObjectMeta = HashMap<String, FieldMeta>;

/// Field metadata of both sides of one object pair.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairMeta {
    #[serde(default)]
    pub hubspot: ObjectMeta,
    #[serde(default)]
    pub salesforce: ObjectMeta,
    /// The org's State and Country/Territory picklists, where they are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub places: Option<std::sync::Arc<super::geo::PlaceCatalog>>,
}

/// The types of the fields of HubSpot's and Salesforce's standard objects that the
/// built-in mappings use, so that a merge without fetched metadata still compares
/// numbers as numbers and dates as dates.
pub fn well_known_type(side: super::Side, object: &str, field: &str) -> Option<FieldType> {
    use super::Side;
    use FieldType::*;
    let ty = match (side, object, field) {
        (Side::HubSpot, _, "email") => Email,
        (Side::HubSpot, _, "annualrevenue" | "numberofemployees" | "amount") => Number,
        (Side::HubSpot, _, "closedate" | "createdate" | "lastmodifieddate") => DateTime,
        (Side::HubSpot, _, "hs_lastmodifieddate") => DateTime,
        (Side::HubSpot, _, "dealstage" | "lifecyclestage" | "industry" | "hs_lead_status") => Enum,
        (Side::HubSpot, _, "hs_pipeline_stage" | "hs_ticket_priority") => Enum,
        (Side::Salesforce, _, "Email") => Email,
        (Side::Salesforce, _, "AnnualRevenue" | "NumberOfEmployees" | "Amount") => Number,
        (Side::Salesforce, _, "CloseDate") => Date,
        (Side::Salesforce, _, "StageName" | "Industry" | "Status" | "Priority") => Enum,
        (Side::Salesforce, _, "LastModifiedDate" | "SystemModstamp" | "CreatedDate") => DateTime,
        _ => return None,
    };
    Some(ty)
}

/// A HubSpot property definition (`/crm/v3/properties/{object}`) as field metadata.
pub fn from_hubspot_property(p: &serde_json::Value) -> Option<(String, FieldMeta)> {
    use serde_json::Value;
    let name = p.get("name")?.as_str()?.to_owned();
    let field_type = p
        .get("fieldType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ty = match p.get("type").and_then(Value::as_str).unwrap_or("string") {
        "number" => FieldType::Number,
        "bool" => FieldType::Bool,
        "date" => FieldType::Date,
        "datetime" => FieldType::DateTime,
        "enumeration" if field_type == "checkbox" => FieldType::MultiEnum,
        "enumeration" if field_type == "booleancheckbox" => FieldType::Bool,
        "enumeration" => FieldType::Enum,
        _ if name == "email" => FieldType::Email,
        _ => FieldType::Text,
    };
    let options: Vec<String> = p
        .get("options")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|o| o.get("hidden").and_then(Value::as_bool) != Some(true))
                .filter_map(|o| o.get("value").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let enumerated = matches!(ty, FieldType::Enum | FieldType::MultiEnum);
    let read_only = p
        .pointer("/modificationMetadata/readOnlyValue")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let meta = FieldMeta {
        ty,
        length: None,
        read_only,
        formula: p
            .get("calculated")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        restricted: enumerated && !options.is_empty(),
        picklist: (enumerated && !options.is_empty()).then_some(options),
    };
    Some((name, meta))
}

/// A field of a Salesforce describe (`fields[]`) as field metadata.
pub fn from_salesforce_field(f: &serde_json::Value) -> Option<(String, FieldMeta)> {
    use serde_json::Value;
    let name = f.get("name")?.as_str()?.to_owned();
    let flag = |k: &str| f.get(k).and_then(Value::as_bool).unwrap_or(false);
    let ty = match f.get("type").and_then(Value::as_str).unwrap_or("string") {
        "email" => FieldType::Email,
        "double" | "currency" | "int" | "percent" | "long" => FieldType::Number,
        "boolean" => FieldType::Bool,
        "date" => FieldType::Date,
        "datetime" => FieldType::DateTime,
        "picklist" => FieldType::Enum,
        "multipicklist" => FieldType::MultiEnum,
        _ => FieldType::Text,
    };
    let values: Vec<String> = f
        .get("picklistValues")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|v| v.get("active").and_then(Value::as_bool) != Some(false))
                .filter_map(|v| v.get("value").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let length = f
        .get("length")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0 && matches!(ty, FieldType::Text | FieldType::Email))
        .and_then(|n| usize::try_from(n).ok());
    let meta = FieldMeta {
        ty,
        length,
        read_only: !flag("updateable") && !flag("createable"),
        formula: flag("calculated"),
        restricted: flag("restrictedPicklist"),
        picklist: (!values.is_empty()).then_some(values),
    };
    Some((name, meta))
}

#[cfg(test)]
mod describe_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crm_answers_become_field_metadata() {
        let (name, m) = from_hubspot_property(&json!({"name": "industry", "type": "enumeration", "fieldType": "select", "options": [{"value": "RETAIL"}, {"value": "OLD", "hidden": true}]}))
            .unwrap_or_else(|| panic!("no meta"));
        assert_eq!(name, "industry");
        assert_eq!(m.ty, FieldType::Enum);
        assert!(m.refuses_value("Technology"));
        assert!(!m.refuses_value("RETAIL"));
        let (_, m) = from_salesforce_field(&json!({"name": "Title", "type": "string", "length": 128, "updateable": true, "createable": true}))
            .unwrap_or_else(|| panic!("no meta"));
        assert_eq!(
            (m.ty, m.length, m.read_only),
            (FieldType::Text, Some(128), false)
        );
        let (_, m) =
            from_salesforce_field(&json!({"name": "Name", "type": "string", "calculated": true}))
                .unwrap_or_else(|| panic!("no meta"));
        assert!(m.formula && m.read_only);
    }
}
