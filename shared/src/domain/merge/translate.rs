//! Translating one field's value from one side's vocabulary to the other's: picklist
//! value maps, deal stages per pipeline, owners, and states/countries.

use std::borrow::Cow;

use serde_json::Value;

use super::Snapshot;
use super::rules::{FieldRule, MergeRules, Translation};
use crate::domain::Side;
use crate::domain::config::{HubSpotGeoMode, PicklistMode, Transform};
use crate::domain::dedup::domain_key;
use crate::domain::value::Canon;

/// Why a value has no counterpart on the other side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untranslatable {
    /// Not in the value map / stage map.
    NotMapped(String),
    /// No HubSpot owner / Salesforce user with the same email.
    OwnerNotMatched(String),
    /// A state or country Salesforce's picklist does not know.
    UnknownPlace(String),
    /// A state whose record has no recognisable country.
    StateNeedsCountry(String),
}

/// The record pair a value belongs to, for translations that look at other fields.
pub struct RecordPair<'a> {
    pub rules: &'a MergeRules<'a>,
    pub hubspot: &'a Snapshot,
    pub salesforce: &'a Snapshot,
}

impl<'a> RecordPair<'a> {
    /// One side's record.
    pub(super) fn snapshot(&self, side: Side) -> &'a Snapshot {
        match side {
            Side::HubSpot => self.hubspot,
            Side::Salesforce => self.salesforce,
        }
    }

    fn raw_text(&self, side: Side, field: &str) -> Option<&'a str> {
        match self.snapshot(side).values.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim()),
            _ => None,
        }
    }

    /// The record's country code, from whichever side names a country it knows.
    fn country_code(&self) -> Option<&'a str> {
        let rule = self.rules.field_with(Transform::Country)?;
        let places = self.rules.places();
        let from_hubspot = self
            .raw_text(Side::HubSpot, rule.hubspot)
            .and_then(|t| places.country_code(t));
        from_hubspot.or_else(|| {
            rule.salesforce
                .and_then(|f| self.raw_text(Side::Salesforce, f))
                .and_then(|t| places.country_code(t))
        })
    }

    /// A deal not in HubSpot yet: the pipeline its Opportunity's record type maps to,
    /// where the `pipeline` property is mapped (with a value map) to a Salesforce field.
    fn pipeline_of_record_type(&self) -> Option<&'a str> {
        let rule = self.rules.fields.iter().find(|f| f.hubspot == "pipeline")?;
        let Translation::Map(map) = &rule.translation else {
            return None;
        };
        let value = self.raw_text(Side::Salesforce, rule.salesforce?)?;
        map.to_hubspot
            .iter()
            .find(|(k, _)| k.as_str() == value || crate::domain::same_salesforce_id(k, value))
            .map(|(_, v)| v.as_str())
    }

    fn converts_places(&self) -> bool {
        self.rules.state_country.is_some_and(|r| {
            r.hubspot_values == HubSpotGeoMode::MatchSalesforceDefaults
                && r.salesforce_picklists != PicklistMode::Disabled
        })
    }
}

fn is_code_field(rule: &FieldRule<'_>) -> bool {
    rule.salesforce.is_some_and(|f| f.ends_with("Code"))
}

/// `value` (read on `from`) in the other side's vocabulary.
pub fn translate<'a>(
    rule: &FieldRule<'a>,
    from: Side,
    value: &Canon<'a>,
    pair: &RecordPair<'a>,
) -> Result<Canon<'a>, Untranslatable> {
    if value.is_blank() {
        return Ok(Canon::Blank);
    }
    match &rule.translation {
        Translation::Identity => Ok(value.clone()),
        Translation::Map(map) => {
            let table = match from {
                Side::HubSpot => &map.to_salesforce,
                Side::Salesforce => &map.to_hubspot,
            };
            map_each(value, |v| table.get(v).map(String::as_str))
        }
        Translation::DealStage {
            pipelines,
            default_pipeline,
        } => {
            let pipeline = pair
                .raw_text(Side::HubSpot, "pipeline")
                .or_else(|| pair.pipeline_of_record_type())
                .unwrap_or(default_pipeline);
            let stages = pipelines.get(pipeline).ok_or_else(|| {
                Untranslatable::NotMapped(format!("pipeline \"{pipeline}\" has no stage map"))
            })?;
            let table = match from {
                Side::HubSpot => &stages.to_salesforce,
                Side::Salesforce => &stages.to_hubspot,
            };
            map_each(value, |v| table.get(v).map(String::as_str))
        }
        Translation::Owner => {
            let id = value.text();
            let other = match from {
                Side::HubSpot => pair.rules.owners.salesforce_user(&id),
                Side::Salesforce => pair.rules.owners.hubspot_owner(&id),
            };
            other
                .map(|o| Canon::Text(Cow::Owned(o.to_owned())))
                .ok_or_else(|| {
                    Untranslatable::OwnerNotMatched(format!(
                        "{from} owner {id} has no counterpart with the same email"
                    ))
                })
        }
        Translation::Country => translate_country(rule, from, value, pair),
        Translation::State => translate_state(rule, from, value, pair),
    }
}

fn map_each<'a>(
    value: &Canon<'a>,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Result<Canon<'a>, Untranslatable> {
    let one = |v: &str| {
        lookup(v)
            .map(Cow::Borrowed)
            .ok_or_else(|| Untranslatable::NotMapped(format!("\"{v}\" has no mapped value")))
    };
    match value {
        Canon::Set(items) => {
            let mut mapped = items
                .iter()
                .map(|i| one(i))
                .collect::<Result<Vec<_>, _>>()?;
            mapped.sort();
            mapped.dedup();
            Ok(Canon::Set(mapped))
        }
        other => one(&other.text()).map(Canon::Text),
    }
}

fn translate_country<'a>(
    rule: &FieldRule<'a>,
    from: Side,
    value: &Canon<'a>,
    pair: &RecordPair<'a>,
) -> Result<Canon<'a>, Untranslatable> {
    let text = value.text();
    let places = pair.rules.places();
    match from {
        Side::HubSpot if pair.converts_places() || is_code_field(rule) => {
            let code = places.country_code(&text).ok_or_else(|| {
                Untranslatable::UnknownPlace(format!(
                    "\"{text}\" is not a country Salesforce's picklist has"
                ))
            })?;
            let out = if is_code_field(rule) {
                code
            } else {
                places.country_label(code).unwrap_or(code)
            };
            Ok(Canon::Text(Cow::Borrowed(out)))
        }
        Side::Salesforce if is_code_field(rule) => Ok(places
            .country_label(&text)
            .map(|l| Canon::Text(Cow::Borrowed(l)))
            .unwrap_or_else(|| value.clone())),
        _ => Ok(value.clone()),
    }
}

fn translate_state<'a>(
    rule: &FieldRule<'a>,
    from: Side,
    value: &Canon<'a>,
    pair: &RecordPair<'a>,
) -> Result<Canon<'a>, Untranslatable> {
    let text = value.text();
    let places = pair.rules.places();
    match from {
        Side::HubSpot if pair.converts_places() || is_code_field(rule) => {
            let country = pair.country_code().ok_or_else(|| {
                Untranslatable::StateNeedsCountry(format!(
                    "state \"{text}\" cannot be matched to Salesforce's picklist without a country"
                ))
            })?;
            let code = places.state_code(country, &text).ok_or_else(|| {
                Untranslatable::UnknownPlace(format!(
                    "\"{text}\" is not a state of {country} in Salesforce's picklist"
                ))
            })?;
            let out = if is_code_field(rule) {
                code
            } else {
                places.state_label(country, code).unwrap_or(code)
            };
            Ok(Canon::Text(Cow::Borrowed(out)))
        }
        Side::Salesforce if is_code_field(rule) => Ok(pair
            .country_code()
            .and_then(|c| places.state_label(c, &text))
            .map(|l| Canon::Text(Cow::Borrowed(l)))
            .unwrap_or_else(|| value.clone())),
        _ => Ok(value.clone()),
    }
}

/// Whether two values name the same place or company domain (`usa` and `United
/// States`; `acme.com` and `https://www.acme.com/`), so that spelling alone never
/// causes a write.
pub fn same_meaning(
    rule: &FieldRule<'_>,
    hubspot: &Canon<'_>,
    salesforce: &Canon<'_>,
    pair: &RecordPair<'_>,
) -> bool {
    let texts = || (hubspot.text(), salesforce.text());
    if rule.hubspot == "domain" {
        // HubSpot's company domain against Salesforce's Website, which holds a URL.
        let (h, s) = texts();
        return matches!((domain_key(&h), domain_key(&s)), (Some(a), Some(b)) if a == b);
    }
    let (h, s) = match rule.translation {
        Translation::Country | Translation::State => texts(),
        _ => return false,
    };
    let places = pair.rules.places();
    match rule.translation {
        Translation::Country => matches!(
            (places.country_code(&h), places.country_code(&s)),
            (Some(a), Some(b)) if a == b
        ),
        Translation::State => pair.country_code().is_some_and(|c| {
            matches!(
                (places.state_code(c, &h), places.state_code(c, &s)),
                (Some(a), Some(b)) if a == b
            )
        }),
        _ => false,
    }
}
