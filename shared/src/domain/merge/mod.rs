//! The three-way merge of one linked record pair: for every mapped field, compare each
//! side's current value with the value both sides last agreed on, and decide what moves
//! where, and why.
//!
//! - A field changed on one side only moves to the other, if its direction allows.
//! - Changed on both sides is a conflict: `always_*` decides regardless; otherwise the
//!   most recent change wins (ties go to the preferred side, Salesforce for `two_way`).
//! - With no last-synced value (first sync, or a field newly added to the mapping) the
//!   preferred side wins (`two_way`: the most recent); a blank is not a value there, so
//!   the filled side fills it whatever the preference.
//! - A side that already holds the value gets no write: our own writes, read back,
//!   change nothing, which is what ends echo loops.
//! - Values are compared normalized ([`crate::domain::value`]), so `"1.0"` vs `1` or a
//!   re-ordered multi-select is no change.
//! - A write the target would refuse (formula or read-only field, value outside a
//!   picklist, too long, lifecycle stage backwards, owner or value with no counterpart)
//!   is held back with its reason; the rest of the record still syncs.

mod rules;
mod translate;

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use rules::{FieldRule, MergeRules, OwnerDirectory, RulesError, Translation};
pub use translate::Untranslatable;

use super::config::Direction;
use super::lifecycle;
use super::value::{Canon, FieldType, infer_type, normalize};
use super::{Millis, Side};
use translate::{RecordPair, same_meaning, translate};

/// Field values by name, as a CRM returned them. Hashed with FxHash: a merge looks up
/// every mapped field on both sides, and SipHash alone would cost more than the merge.
pub type FieldValues = FxHashMap<String, Value>;

/// One side's current record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Property / field values as the CRM returned them.
    pub values: FieldValues,
    /// When the record last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<Millis>,
    /// When each field last changed, where the CRM says (HubSpot's property history).
    #[serde(default, skip_serializing_if = "FxHashMap::is_empty")]
    pub field_modified_at: FxHashMap<String, Millis>,
}

impl Snapshot {
    pub fn new(
        values: impl IntoIterator<Item = (String, Value)>,
        modified_at: Option<Millis>,
    ) -> Self {
        Snapshot {
            values: values.into_iter().collect(),
            modified_at,
            field_modified_at: FxHashMap::default(),
        }
    }

    fn changed_at(&self, field: &str) -> Option<Millis> {
        self.field_modified_at
            .get(field)
            .copied()
            .or(self.modified_at)
    }

    fn raw(&self, field: &str) -> &Value {
        self.values.get(field).unwrap_or(&Value::Null)
    }
}

/// The values both sides last agreed on, per mapped field, keyed by HubSpot property.
///
/// Serialized as a JSON object. Entries stay in mapping order, so the merge finds each
/// field's entry at its own position without a lookup (and falls back to a search when
/// the mapping changed since).
///
/// A lookup a sync put in step has an entry too, keyed by its Salesforce field behind
/// [`LOOKUP_PREFIX`] (`@AccountId`): the field's value and the HubSpot record the
/// record was associated with for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastSynced {
    entries: Vec<(String, SyncedField)>,
}

/// What a lookup's entry key starts with: no HubSpot property name does.
pub const LOOKUP_PREFIX: &str = "@";

impl LastSynced {
    /// The lookup `field` as a sync last put it in step: its Salesforce value, and the
    /// HubSpot record associated for it.
    pub fn lookup(&self, field: &str) -> Option<(&str, &str)> {
        let entry = self.get(&format!("{LOOKUP_PREFIX}{field}"))?;
        Some((entry.salesforce.as_str()?, entry.hubspot.as_str()?))
    }

    /// Records that the lookup `field`, at `salesforce`, has its record associated with
    /// the HubSpot record `hubspot`.
    pub fn set_lookup(&mut self, field: &str, salesforce: &str, hubspot: &str) {
        self.insert(
            format!("{LOOKUP_PREFIX}{field}"),
            SyncedField {
                hubspot: Value::from(hubspot),
                salesforce: Value::from(salesforce),
                held: None,
            },
        );
    }

    /// The entry of `property`, looked for first at position `hint`.
    pub fn get_at(&self, hint: usize, property: &str) -> Option<&SyncedField> {
        match self.entries.get(hint) {
            Some((k, v)) if k == property => Some(v),
            _ => self.get(property),
        }
    }

    pub fn get(&self, property: &str) -> Option<&SyncedField> {
        self.entries
            .iter()
            .find(|(k, _)| k == property)
            .map(|(_, v)| v)
    }

    /// Whether HubSpot's `property` last synced as `value`, given as a webhook gives
    /// it (text; empty for no value).
    pub fn holds_hubspot(&self, property: &str, value: &str) -> bool {
        self.get(property).is_some_and(|f| match &f.hubspot {
            Value::String(s) => s == value,
            Value::Null => value.is_empty(),
            Value::Number(n) => n.to_string() == value,
            Value::Bool(b) => b.to_string() == value,
            _ => false,
        })
    }

    /// Whether the Salesforce field of `property` last synced as `value`, given as an
    /// outbound message gives it (text; `None` for no value). Numbers compare as
    /// numbers (`5000000.0` is `5000000`); anything else as its text.
    pub fn holds_salesforce(&self, property: &str, value: Option<&str>) -> bool {
        self.get(property)
            .is_some_and(|f| match (&f.salesforce, value) {
                (Value::Null, v) => v.is_none_or(str::is_empty),
                (Value::String(s), Some(v)) => s == v,
                (Value::Number(n), Some(v)) => {
                    n.as_f64().is_some() && v.trim().parse::<f64>().ok() == n.as_f64()
                }
                (Value::Bool(b), Some(v)) => b.to_string() == v,
                _ => false,
            })
    }

    /// Sets the entry of `property`, replacing an earlier one.
    pub fn insert(&mut self, property: String, value: SyncedField) {
        match self.entries.iter_mut().find(|(k, _)| *k == property) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((property, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &SyncedField)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Appends an entry; the merge visits each mapped property once, in order.
    fn push(&mut self, property: &str, value: SyncedField) {
        self.entries.push((property.to_owned(), value));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<(String, SyncedField)> for LastSynced {
    fn from_iter<I: IntoIterator<Item = (String, SyncedField)>>(iter: I) -> Self {
        let mut last = LastSynced::default();
        for (k, v) in iter {
            last.insert(k, v);
        }
        last
    }
}

impl Serialize for LastSynced {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.entries.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for LastSynced {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        map.into_iter()
            .map(|(k, v)| {
                serde_json::from_value(v)
                    .map(|v| (k, v))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

/// One field's last agreed values, in each side's own wire form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncedField {
    pub hubspot: Value,
    pub salesforce: Value,
    /// Set when this side's value was held back at the field's first sync (an owner
    /// with no match, a value the target refuses): the values are the pair as seen
    /// then, not agreed ones, so a later change on either side is a change. Without
    /// them the field had no last-synced value, and the preferred side's held value
    /// kept beating every later change of the other side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Side>,
}

/// What happens to one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    None,
    WriteHubspot,
    WriteSalesforce,
}

/// Why a field is written, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Both sides already hold the same value.
    InSync,
    /// Neither side changed since the last sync.
    Unchanged,
    ChangedInHubspot,
    ChangedInSalesforce,
    /// First sync: one side was blank and the other filled it.
    FirstSyncFillsBlank,
    /// First sync, both filled: the direction's preferred side won.
    FirstSyncPreferred,
    /// First sync of a `two_way` field, both filled: the most recent value won.
    FirstSyncMostRecent,
    /// Changed on both sides: the most recent change won.
    ConflictMostRecent,
    /// Changed on both sides at the same (or an unknown) time: the preferred side won.
    ConflictPreferred,
    /// `always_*`: the source side overwrites the other whatever changed.
    AlwaysSource,
    /// `direction = "none"`.
    Direction,
    /// A blank would have overwritten a filled value (`unless_blank`).
    BlankProtected,
    /// The target is a formula field: never written.
    FormulaField,
    /// The target is read-only for the integration.
    ReadOnlyField,
    /// Only a Salesforce formula field changed: that alone never triggers a sync.
    FormulaChangeAlone,
    /// The value is not an allowed value of the target's picklist.
    NotInPicklist,
    /// The value has no entry in the value map or stage map.
    ValueNotMapped,
    /// The owner has no counterpart with the same email.
    OwnerNotMatched,
    /// The owner has no counterpart; the configured default owner was written.
    OwnerDefaulted,
    /// A state needs a country to match Salesforce's picklist.
    StateNeedsCountry,
    /// A value does not parse as the field's type.
    TypeMismatch,
    /// The value is longer than the target field allows.
    WouldTruncate,
    /// The lifecycle stage would move backwards.
    LifecycleBackwards,
    /// The mapping has no field on this Salesforce object.
    NotMappedForObject,
}

impl Reason {
    /// The reason as sync health names it (`would_truncate`, `not_in_picklist`...).
    pub fn code(self) -> &'static str {
        match self {
            Reason::InSync => "in_sync",
            Reason::Unchanged => "unchanged",
            Reason::ChangedInHubspot => "changed_in_hubspot",
            Reason::ChangedInSalesforce => "changed_in_salesforce",
            Reason::FirstSyncFillsBlank => "first_sync_fills_blank",
            Reason::FirstSyncPreferred => "first_sync_preferred",
            Reason::FirstSyncMostRecent => "first_sync_most_recent",
            Reason::ConflictMostRecent => "conflict_most_recent",
            Reason::ConflictPreferred => "conflict_preferred",
            Reason::AlwaysSource => "always_source",
            Reason::Direction => "direction",
            Reason::BlankProtected => "blank_protected",
            Reason::FormulaField => "formula_field",
            Reason::ReadOnlyField => "read_only_field",
            Reason::FormulaChangeAlone => "formula_change_alone",
            Reason::NotInPicklist => "not_in_picklist",
            Reason::ValueNotMapped => "value_not_mapped",
            Reason::OwnerNotMatched => "owner_not_matched",
            Reason::OwnerDefaulted => "owner_defaulted",
            Reason::StateNeedsCountry => "state_needs_country",
            Reason::TypeMismatch => "type_mismatch",
            Reason::WouldTruncate => "would_truncate",
            Reason::LifecycleBackwards => "lifecycle_backwards",
            Reason::NotMappedForObject => "not_mapped_for_object",
        }
    }

    /// A data-quality issue: the write was held back because the target would refuse
    /// it or lose part of it (or, for an owner, a stand-in was written).
    pub fn is_data_quality(self) -> bool {
        matches!(
            self,
            Reason::NotInPicklist
                | Reason::ValueNotMapped
                | Reason::OwnerNotMatched
                | Reason::OwnerDefaulted
                | Reason::StateNeedsCountry
                | Reason::TypeMismatch
                | Reason::WouldTruncate
        )
    }
}

/// The decision for one mapped field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldOutcome<'c> {
    pub hubspot: &'c str,
    pub salesforce: Option<&'c str>,
    pub direction: Direction,
    pub action: Action,
    pub reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Which side moves was decided by when each side changed (or would be, with the
    /// times known): the pair's field histories matter, even when the chosen value
    /// was then held back.
    #[serde(skip)]
    pub timed: bool,
}

/// The result of merging one record pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergePlan<'c> {
    pub hubspot_writes: Map<String, Value>,
    pub salesforce_writes: Map<String, Value>,
    /// Last-synced entries that differ from the ones merged against. Usually few or
    /// none, so an echo costs no state write either (see [`MergePlan::next_last_synced`]).
    pub last_synced_changes: Vec<(&'c str, SyncedField)>,
    pub fields: Vec<FieldOutcome<'c>>,
}

impl MergePlan<'_> {
    pub fn writes_nothing(&self) -> bool {
        self.hubspot_writes.is_empty() && self.salesforce_writes.is_empty()
    }

    /// The pair's new last-synced values, to store once the writes succeeded: the ones
    /// merged against, with this merge's changes, for the mapped fields only (a field
    /// dropped from the mapping and added back later merges as on a first sync), and
    /// the lookups' entries as they were (the merge does not touch lookups).
    pub fn next_last_synced(&self, previous: Option<&LastSynced>) -> LastSynced {
        let mut next = LastSynced::default();
        for (position, outcome) in self.fields.iter().enumerate() {
            let changed = self
                .last_synced_changes
                .iter()
                .find(|(k, _)| *k == outcome.hubspot)
                .map(|(_, v)| v);
            let entry =
                changed.or_else(|| previous.and_then(|p| p.get_at(position, outcome.hubspot)));
            if let Some(entry) = entry {
                next.push(outcome.hubspot, entry.clone());
            }
        }
        let lookups = previous
            .into_iter()
            .flat_map(LastSynced::iter)
            .filter(|(k, _)| k.starts_with(LOOKUP_PREFIX));
        for (k, entry) in lookups {
            next.push(k, entry.clone());
        }
        next
    }
}

/// Merges one record pair. `last_synced` is `None` on the pair's first sync.
pub fn merge_fields<'c>(
    rules: &'c MergeRules<'c>,
    hubspot: &Snapshot,
    salesforce: &Snapshot,
    last_synced: Option<&LastSynced>,
) -> MergePlan<'c> {
    let pair = RecordPair {
        rules,
        hubspot,
        salesforce,
    };
    let mut plan = MergePlan {
        hubspot_writes: Map::new(),
        salesforce_writes: Map::new(),
        last_synced_changes: Vec::new(),
        fields: Vec::with_capacity(rules.fields.len()),
    };
    // Writes of Salesforce formula values held until some other field moves.
    let mut held: Vec<(usize, Box<Pending>)> = Vec::new();
    for (position, rule) in rules.fields.iter().enumerate() {
        let last = last_synced.and_then(|l| l.get_at(position, rule.hubspot));
        let decision = decide(rule, &pair, last);
        let index = plan.fields.len();
        plan.fields.push(FieldOutcome {
            hubspot: rule.hubspot,
            salesforce: rule.salesforce,
            direction: rule.direction,
            action: Action::None,
            reason: decision.reason,
            detail: decision.detail,
            timed: decision.timed,
        });
        match decision.result {
            Outcome::Keep => {}
            Outcome::Held(seen) => {
                if last != Some(&seen) {
                    plan.last_synced_changes.push((rule.hubspot, seen));
                }
            }
            Outcome::Agreed {
                hubspot,
                salesforce,
            } => {
                let same =
                    last.is_some_and(|l| l.hubspot == *hubspot && l.salesforce == *salesforce);
                if !same {
                    let synced = SyncedField {
                        hubspot: hubspot.clone(),
                        salesforce: salesforce.clone(),
                        held: None,
                    };
                    plan.last_synced_changes.push((rule.hubspot, synced));
                }
            }
            Outcome::Write(pending) if pending.formula_only => held.push((index, pending)),
            Outcome::Write(pending) => pending.apply(index, &mut plan),
        }
    }
    if !plan.writes_nothing() {
        for (index, pending) in held {
            pending.apply(index, &mut plan);
        }
    }
    plan
}

/// A write decided for one field.
struct Pending {
    target: Side,
    field: String,
    value: Value,
    synced: SyncedField,
    /// Only a Salesforce formula value changed.
    formula_only: bool,
    reason: Reason,
    /// What the record's status says about the write (a stand-in owner).
    detail: Option<String>,
}

impl Pending {
    fn apply(self, index: usize, plan: &mut MergePlan<'_>) {
        let writes = match self.target {
            Side::HubSpot => &mut plan.hubspot_writes,
            Side::Salesforce => &mut plan.salesforce_writes,
        };
        writes.insert(self.field, self.value);
        let outcome = &mut plan.fields[index];
        outcome.action = match self.target {
            Side::HubSpot => Action::WriteHubspot,
            Side::Salesforce => Action::WriteSalesforce,
        };
        outcome.reason = self.reason;
        outcome.detail = self.detail;
        plan.last_synced_changes
            .push((outcome.hubspot, self.synced));
    }
}

enum Outcome<'v> {
    /// Nothing written; the previous last-synced value (if any) stays.
    Keep,
    /// The chosen side's value was held back: the pair as seen is remembered.
    Held(SyncedField),
    /// Both sides agree on these raw values: they are the new last-synced ones.
    Agreed {
        hubspot: &'v Value,
        salesforce: &'v Value,
    },
    Write(Box<Pending>),
}

struct Decision<'v> {
    result: Outcome<'v>,
    reason: Reason,
    detail: Option<String>,
    /// The moving side was chosen by when each side changed.
    timed: bool,
}

impl Decision<'_> {
    fn keep(reason: Reason, detail: Option<String>) -> Self {
        Decision {
            timed: false,
            result: Outcome::Keep,
            reason,
            detail,
        }
    }

    /// A value chosen to move and then kept back is a hold: the pair as `seen`.
    fn held_as(self, seen: SyncedField) -> Self {
        match self.result {
            Outcome::Keep => Decision {
                result: Outcome::Held(seen),
                ..self
            },
            _ => self,
        }
    }
}

/// The comparison type of a field: the Salesforce side's declared type (its values are
/// typed), else HubSpot's, else what the Salesforce value looks like.
fn comparison_type(rule: &FieldRule<'_>, hs_raw: &Value, sf_raw: &Value) -> FieldType {
    rule.declared_type(Side::Salesforce)
        .or_else(|| rule.declared_type(Side::HubSpot))
        .unwrap_or_else(|| {
            if sf_raw.is_null() {
                infer_type(hs_raw)
            } else {
                infer_type(sf_raw)
            }
        })
}

fn decide<'c>(
    rule: &FieldRule<'c>,
    pair: &RecordPair<'c>,
    last: Option<&SyncedField>,
) -> Decision<'c> {
    let Some(sf_field) = rule.salesforce else {
        return Decision::keep(
            Reason::NotMappedForObject,
            Some(format!(
                "no {} field is mapped",
                pair.rules.salesforce_object
            )),
        );
    };
    if rule.direction == Direction::None {
        return Decision::keep(Reason::Direction, Some("direction is \"none\"".into()));
    }
    let hs_raw = pair.hubspot.raw(rule.hubspot);
    let sf_raw = pair.salesforce.raw(sf_field);
    let ty = comparison_type(rule, hs_raw, sf_raw);
    let hv = match normalize(hs_raw, ty) {
        Ok(v) => v,
        Err(e) => return Decision::keep(Reason::TypeMismatch, Some(format!("HubSpot value {e}"))),
    };
    let sv = match normalize(sf_raw, ty) {
        Ok(v) => v,
        Err(e) => {
            return Decision::keep(Reason::TypeMismatch, Some(format!("Salesforce value {e}")));
        }
    };

    let hv_for_sf = translate(rule, Side::HubSpot, &hv, pair);
    let sv_for_hs = translate(rule, Side::Salesforce, &sv, pair);
    let in_sync = matches!(&hv_for_sf, Ok(v) if *v == sv)
        || matches!(&sv_for_hs, Ok(v) if *v == hv)
        || same_meaning(rule, &hv, &sv, pair);
    if in_sync {
        return Decision {
            timed: false,
            result: Outcome::Agreed {
                hubspot: hs_raw,
                salesforce: sf_raw,
            },
            reason: Reason::InSync,
            detail: None,
        };
    }

    let Some((source, reason)) = choose_source(rule, pair, last, &hv, &sv, ty) else {
        return Decision::keep(Reason::Unchanged, None);
    };
    let seen = SyncedField {
        hubspot: hs_raw.clone(),
        salesforce: sf_raw.clone(),
        held: Some(source),
    };
    let move_value = move || -> Decision<'c> {
        let (value, translated) = match source {
            Side::HubSpot => (&hv, hv_for_sf),
            Side::Salesforce => (&sv, sv_for_hs),
        };
        let target = source.other();
        let target_field = match target {
            Side::HubSpot => rule.hubspot,
            Side::Salesforce => sf_field,
        };
        let target_current = match target {
            Side::HubSpot => &hv,
            Side::Salesforce => &sv,
        };

        if rule.unless_blank && value.is_blank() && !target_current.is_blank() {
            return Decision::keep(
                Reason::BlankProtected,
                Some(format!(
                    "a blank {source} value does not overwrite {target}'s"
                )),
            );
        }
        let target_meta = rule.meta(target);
        if let Some(meta) = target_meta {
            if meta.formula {
                return Decision::keep(
                    Reason::FormulaField,
                    Some(format!("{target} {target_field} is a formula field")),
                );
            }
            if meta.read_only {
                return Decision::keep(
                    Reason::ReadOnlyField,
                    Some(format!(
                        "{target} {target_field} is read-only for the integration"
                    )),
                );
            }
        }
        // An owner with no match takes the configured stand-in, and says so.
        let mut stand_in = None;
        let translated = match translated {
            Ok(v) => v,
            Err(Untranslatable::OwnerNotMatched(why)) => {
                match pair.rules.owners.default_on(target) {
                    Some(default) => {
                        stand_in = Some(format!(
                            "{why}; the default {target} owner {default} is set instead"
                        ));
                        Canon::Text(std::borrow::Cow::Owned(default.to_owned()))
                    }
                    None => return untranslatable(Untranslatable::OwnerNotMatched(why)),
                }
            }
            Err(u) => return untranslatable(u),
        };
        let target_type = rule.declared_type(target).unwrap_or(ty);
        let rendered = translated.render(target, target_type);
        if let Some(meta) = target_meta.filter(|m| m.picklist.is_some() || m.length.is_some()) {
            let text = translated.text();
            let refused = match &translated {
                Canon::Set(items) => items
                    .iter()
                    .find(|i| meta.refuses_value(i))
                    .map(|i| i.to_string()),
                Canon::Blank => None,
                _ => meta.refuses_value(&text).then(|| text.to_string()),
            };
            if let Some(value) = refused {
                return Decision::keep(
                    Reason::NotInPicklist,
                    Some(format!(
                        "\"{value}\" is not an allowed value of {target} {target_field}"
                    )),
                );
            }
            if let Some(max) = meta.length {
                let len = text.chars().count();
                if len > max {
                    return Decision::keep(
                        Reason::WouldTruncate,
                        Some(format!(
                            "{len} characters; {target} {target_field} holds {max}"
                        )),
                    );
                }
            }
        }
        if target == Side::HubSpot
            && rule.hubspot == lifecycle::PROPERTY
            && !lifecycle::may_move(&hv.text(), &translated.text())
        {
            return Decision::keep(
                Reason::LifecycleBackwards,
                Some(format!(
                    "lifecycle stage moves forward only: \"{}\" -> \"{}\" refused",
                    hv.text(),
                    translated.text()
                )),
            );
        }
        let source_is_formula = source == Side::Salesforce
            && rule.meta(Side::Salesforce).is_some_and(|m| m.formula)
            && last.is_some();
        let synced = match target {
            Side::HubSpot => SyncedField {
                hubspot: rendered.clone(),
                salesforce: sf_raw.clone(),
                held: None,
            },
            Side::Salesforce => SyncedField {
                hubspot: hs_raw.clone(),
                salesforce: rendered.clone(),
                held: None,
            },
        };
        let reason = if stand_in.is_some() {
            Reason::OwnerDefaulted
        } else {
            reason
        };
        Decision {
            timed: false,
            result: Outcome::Write(Box::new(Pending {
                target,
                field: target_field.to_owned(),
                value: rendered,
                synced,
                formula_only: source_is_formula,
                reason,
                detail: stand_in.clone(),
            })),
            reason: if source_is_formula {
                Reason::FormulaChangeAlone
            } else {
                reason
            },
            detail: if source_is_formula {
                Some(format!(
                    "only the formula field {sf_field} changed; it syncs with the record's next change"
                ))
            } else {
                stand_in
            },
        }
    };
    // Held at a first sync: the pair as seen becomes its last-synced value, or the
    // preferred side's held value would win again over every later change of the
    // other. With a last-synced value, change detection works as it is (and an
    // echo of a held value costs no state write).
    let mut decision = if last.is_none() {
        move_value().held_as(seen)
    } else {
        move_value()
    };
    decision.timed = match reason {
        Reason::ConflictMostRecent | Reason::ConflictPreferred | Reason::FirstSyncMostRecent => {
            true
        }
        Reason::ChangedInHubspot => may_be_edited_back(pair, Side::Salesforce),
        Reason::ChangedInSalesforce => may_be_edited_back(pair, Side::HubSpot),
        _ => false,
    };
    decision
}

fn untranslatable(u: Untranslatable) -> Decision<'static> {
    let (reason, detail) = match u {
        Untranslatable::NotMapped(d) => (Reason::ValueNotMapped, d),
        Untranslatable::OwnerNotMatched(d) => (Reason::OwnerNotMatched, d),
        Untranslatable::UnknownPlace(d) => (Reason::NotInPicklist, d),
        Untranslatable::StateNeedsCountry(d) => (Reason::StateNeedsCountry, d),
    };
    Decision::keep(reason, Some(detail))
}

/// Which side's value moves, and why; `None` when nothing should move.
fn choose_source(
    rule: &FieldRule<'_>,
    pair: &RecordPair<'_>,
    last: Option<&SyncedField>,
    hv: &Canon<'_>,
    sv: &Canon<'_>,
    ty: FieldType,
) -> Option<(Side, Reason)> {
    match rule.direction {
        Direction::AlwaysSalesforce => return Some((Side::Salesforce, Reason::AlwaysSource)),
        Direction::AlwaysHubSpot => return Some((Side::HubSpot, Reason::AlwaysSource)),
        Direction::None => return None,
        Direction::PreferSalesforce | Direction::PreferHubSpot | Direction::TwoWay => {}
    }
    let preferred = rule.direction.preferred();
    let newer = || {
        let hs_at = pair.hubspot.changed_at(rule.hubspot);
        let sf_at = rule.salesforce.and_then(|f| pair.salesforce.changed_at(f));
        match (hs_at, sf_at) {
            (Some(h), Some(s)) if h > s => Some(Side::HubSpot),
            (Some(h), Some(s)) if s > h => Some(Side::Salesforce),
            _ => None,
        }
    };
    let Some(last) = last else {
        // First sync of this field.
        return Some(if hv.is_blank() {
            (Side::Salesforce, Reason::FirstSyncFillsBlank)
        } else if sv.is_blank() {
            (Side::HubSpot, Reason::FirstSyncFillsBlank)
        } else if rule.direction == Direction::TwoWay || pair.rules.resumed {
            (newer().unwrap_or(preferred), Reason::FirstSyncMostRecent)
        } else {
            (preferred, Reason::FirstSyncPreferred)
        });
    };
    // A last-synced value that no longer parses (the field's type changed) counts as
    // a change, so the pair is reconciled rather than left stuck.
    let changed = |was: &Value, raw: &Value, now: &Canon<'_>| {
        was != raw && normalize(was, ty).map_or(true, |l| l != *now)
    };
    let hs_changed = changed(&last.hubspot, pair.hubspot.raw(rule.hubspot), hv);
    let sf_changed = changed(
        &last.salesforce,
        rule.salesforce
            .map_or(&Value::Null, |f| pair.salesforce.raw(f)),
        sv,
    );
    match (hs_changed, sf_changed) {
        (false, false) => None,
        (true, false) => Some(
            edited_back(rule, pair, Side::Salesforce)
                .unwrap_or((Side::HubSpot, Reason::ChangedInHubspot)),
        ),
        (false, true) => Some(
            edited_back(rule, pair, Side::HubSpot)
                .unwrap_or((Side::Salesforce, Reason::ChangedInSalesforce)),
        ),
        (true, true) => Some(match newer() {
            Some(side) => (side, Reason::ConflictMostRecent),
            None => (preferred, Reason::ConflictPreferred),
        }),
    }
}

/// Whether `side`, whose field holds its last-synced value, may have been edited and
/// edited back since the last sync (A, B, A): its record changed after that sync. Only
/// the field's history can tell, so the merge asks for it (`timed`).
fn may_be_edited_back(pair: &RecordPair<'_>, side: Side) -> bool {
    let (Some(synced), Some(modified)) = (pair.rules.synced_at, pair.snapshot(side).modified_at)
    else {
        return false;
    };
    modified > synced
}

/// `side`'s field holds its last-synced value, but its history says a person set it
/// after the last sync, and after the other side's change (A, B, A in the seconds
/// between two syncs): that later edit wins, as a conflict's most recent change does.
/// Only a field time from history counts; a record's time would make another field's
/// edit look like this one's.
fn edited_back(rule: &FieldRule<'_>, pair: &RecordPair<'_>, side: Side) -> Option<(Side, Reason)> {
    let synced = pair.rules.synced_at?;
    let (field, other_field) = match side {
        Side::HubSpot => (rule.hubspot, rule.salesforce?),
        Side::Salesforce => (rule.salesforce?, rule.hubspot),
    };
    let back = *pair.snapshot(side).field_modified_at.get(field)?;
    let changed = pair.snapshot(side.other()).changed_at(other_field)?;
    (back > synced && back > changed).then_some((side, Reason::ConflictMostRecent))
}

#[cfg(test)]
mod tests;
