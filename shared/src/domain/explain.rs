//! `crmsync explain`: one record pair in, every field's decision out. The tool an admin
//! uses to answer "why did this field (not) sync?".
//!
//! The input is a JSON document (format in README.md):
//! ```json
//! {
//!   "pair": "contacts", "salesforce_object": "Lead",
//!   "hubspot":    { "values": {"phone": "555-0100"}, "modified_at": "2024-05-01T10:00:00Z",
//!                   "field_modified_at": {"phone": "2024-05-01T10:00:00Z"} },
//!   "salesforce": { "values": {"Phone": "555-0199"}, "modified_at": 1714557600000 },
//!   "last_synced": { "phone": {"hubspot": "555-0100", "salesforce": "555-0100"} },
//!   "metadata": { "hubspot": {}, "salesforce": {"Phone": {"type": "text", "length": 40}} },
//!   "owners": [ {"hubspot_id": "101", "salesforce_id": "005...", "email": "a@b.com"} ]
//! }
//! ```
//! Times are epoch milliseconds or ISO 8601. `last_synced` absent or null means the
//! pair's first sync.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::config::ValidatedConfig;
use super::merge::{
    FieldOutcome, LastSynced, MergeRules, OwnerDirectory, RulesError, Snapshot, merge_fields,
};
use super::metadata::PairMeta;
use super::value::parse_datetime_millis;
use super::{Millis, Side};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainInput {
    pub pair: String,
    /// The Salesforce object of the pair (`Lead` or `Contact` for contacts); defaults to
    /// the pair's only object, or `Contact`.
    #[serde(default)]
    pub salesforce_object: Option<String>,
    pub hubspot: SideInput,
    pub salesforce: SideInput,
    #[serde(default)]
    pub last_synced: Option<LastSynced>,
    #[serde(default)]
    pub metadata: PairMeta,
    #[serde(default)]
    pub owners: Vec<OwnerInput>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideInput {
    #[serde(default)]
    pub values: Map<String, Value>,
    #[serde(default, deserialize_with = "opt_time")]
    pub modified_at: Option<Millis>,
    #[serde(default, deserialize_with = "time_map")]
    pub field_modified_at: FxHashMap<String, Millis>,
}

/// An owner known on both sides; either id may be absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerInput {
    #[serde(default)]
    pub hubspot_id: Option<String>,
    #[serde(default)]
    pub salesforce_id: Option<String>,
    pub email: String,
}

fn parse_time(v: &Value) -> Option<Millis> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => parse_datetime_millis(s.trim()),
        _ => None,
    }
}

fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_time(&v).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected epoch milliseconds or an ISO 8601 time, got {v}"
            ))
        }),
    }
}

fn time_map<'de, D: Deserializer<'de>>(d: D) -> Result<FxHashMap<String, Millis>, D::Error> {
    let raw = Map::<String, Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| match parse_time(&v) {
            Some(t) => Ok((k, t)),
            None => Err(serde::de::Error::custom(format!(
                "field_modified_at.{k}: expected epoch milliseconds or an ISO 8601 time, got {v}"
            ))),
        })
        .collect()
}

impl From<SideInput> for Snapshot {
    fn from(s: SideInput) -> Self {
        Snapshot {
            values: s.values.into_iter().collect(),
            modified_at: s.modified_at,
            field_modified_at: s.field_modified_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("the pair document is not valid: {0}")]
    Input(#[from] serde_json::Error),
    #[error(transparent)]
    Rules(#[from] RulesError),
}

/// The printed answer: the writes for each side, the new last-synced values and
/// every field's decision.
#[derive(Debug, Serialize)]
struct Explanation<'c> {
    pair: &'c str,
    salesforce_object: &'c str,
    first_sync: bool,
    hubspot_writes: &'c Map<String, Value>,
    salesforce_writes: &'c Map<String, Value>,
    last_synced: LastSynced,
    fields: &'c [FieldOutcome<'c>],
}

/// Merges the record pair described by `json` under `config` and returns the
/// explanation as JSON.
pub fn explain(json: &str, config: &ValidatedConfig) -> Result<Value, ExplainError> {
    let input: ExplainInput = serde_json::from_str(json)?;
    let owner_ids = |side: Side| -> Vec<(String, String)> {
        input
            .owners
            .iter()
            .filter_map(|o| {
                let id = match side {
                    Side::HubSpot => o.hubspot_id.clone(),
                    Side::Salesforce => o.salesforce_id.clone(),
                };
                id.map(|id| (id, o.email.clone()))
            })
            .collect()
    };
    let owners = OwnerDirectory::match_by_email(
        &owner_ids(Side::HubSpot),
        &owner_ids(Side::Salesforce),
        &config.owners.overrides,
    )
    .with_defaults(&config.owners);
    let object = match &input.salesforce_object {
        Some(o) => o.as_str(),
        None => config
            .pair(&input.pair)
            .and_then(|p| p.salesforce_objects().last().copied())
            .unwrap_or("Contact"),
    };
    let rules = MergeRules::new(config, &input.pair, object, &input.metadata, &owners)?;
    let hubspot = Snapshot::from(input.hubspot.clone());
    let salesforce = Snapshot::from(input.salesforce.clone());
    let last_synced = input.last_synced.clone();
    let plan = merge_fields(&rules, &hubspot, &salesforce, last_synced.as_ref());
    let explanation = Explanation {
        pair: rules.pair,
        salesforce_object: rules.salesforce_object,
        first_sync: last_synced.is_none(),
        hubspot_writes: &plan.hubspot_writes,
        salesforce_writes: &plan.salesforce_writes,
        last_synced: plan.next_last_synced(last_synced.as_ref()),
        fields: &plan.fields,
    };
    Ok(serde_json::to_value(&explanation)?)
}
