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
