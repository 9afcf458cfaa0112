//! The simulated portal's data: object types, their properties and records, with
//! HubSpot's rules for writes (unknown and read-only properties, enumeration options,
//! unique emails), per-property history, archiving, merges and a search index that
//! lags writes.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::error::HsError;
use crate::clock::iso;

/// A record's stored properties; names are shared with the property definitions.
pub type Props = BTreeMap<Arc<str>, String>;

/// Who made a change, as HubSpot reports it in property history and webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The integration's token (a private app).
    Integration,
    /// A person in the HubSpot UI (any other token, or the control API).
    User(u64),
    /// The seed generator.
    Import,
}

/// The app id the integration's writes are attributed to.
pub const APP_ID: u64 = 1_160_452;
/// The user id the control API's edits are attributed to.
pub const UI_USER_ID: u64 = 45_678;

impl Source {
    pub fn source_type(self) -> &'static str {
        match self {
            Source::Integration => "INTEGRATION",
            Source::User(_) => "CRM_UI",
            Source::Import => "IMPORT",
        }
    }

    pub fn source_id(self) -> String {
        match self {
            Source::Integration => format!("{APP_ID}"),
            Source::User(id) => format!("userId:{id}"),
            Source::Import => "import".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropType {
    String,
    Number,
    Bool,
    Enumeration,
    Date,
    DateTime,
    Phone,
}

impl PropType {
    pub fn name(self) -> &'static str {
        match self {
            PropType::String => "string",
            PropType::Number => "number",
            PropType::Bool => "bool",
            PropType::Enumeration => "enumeration",
            PropType::Date => "date",
            PropType::DateTime => "datetime",
            PropType::Phone => "phone_number",
        }
    }

    pub fn field_type(self) -> &'static str {
        match self {
            PropType::String => "text",
            PropType::Number => "number",
            PropType::Bool => "booleancheckbox",
            PropType::Enumeration => "select",
            PropType::Date => "date",
            PropType::DateTime => "date",
            PropType::Phone => "phonenumber",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PropertyDef {
    pub name: Arc<str>,
    pub label: String,
    pub ty: PropType,
    pub options: Vec<String>,
    /// HubSpot computes it; writes are refused.
    pub read_only: bool,
    pub calculated: bool,
    pub unique: bool,
}

impl PropertyDef {
    fn new(name: &str, ty: PropType) -> Self {
        PropertyDef {
            name: Arc::from(name),
            label: name.replace('_', " "),
            ty,
            options: Vec::new(),
            read_only: false,
            calculated: false,
            unique: false,
        }
    }
}

/// One recorded change of one property.
#[derive(Debug, Clone)]
pub struct Change {
    pub value: String,
    pub at_ms: i64,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub id: u64,
    pub props: Arc<Props>,
    /// What search sees: the properties as of the last index update, `None` until the
    /// record is first indexed.
    pub indexed: Option<Arc<Props>>,
    /// Changes after creation, oldest first. Seeded values have none: their history is
    /// the creation itself.
    pub history: HashMap<Arc<str>, Vec<Change>>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub created_by: Source,
    pub archived_ms: Option<i64>,
    /// Ids merged into this record (`hs_merged_object_ids`).
    pub merged_ids: Vec<u64>,
}

/// Static facts of an object type.
#[derive(Debug, Clone)]
pub struct ObjectKind {
    /// Path name: `contacts`, `p_machines`.
    pub name: String,
    /// `0-1`, `2-1001`.
    pub type_id: String,
    /// As error messages name it: `CONTACT`.
    pub upper: String,
    /// Properties returned when a read names none.
    pub default_properties: Vec<&'static str>,
    /// `lastmodifieddate` for contacts, `hs_lastmodifieddate` otherwise.
    pub modified_property: &'static str,
}

/// All records of one object type.
#[derive(Debug)]
pub struct Objects {
    pub kind: ObjectKind,
    pub records: BTreeMap<u64, Record>,
    /// Ids absorbed by merges -> the id they resolve to now.
    pub merged: HashMap<u64, u64>,
    /// Unique property values (contact email, `hasUniqueValue` properties), lower-cased,
    /// per property -> record id.
    pub unique: HashMap<Arc<str>, HashMap<String, u64>>,
    pub properties: BTreeMap<Arc<str>, PropertyDef>,
    /// Records written but not yet visible to search, by due time.
    pub index_queue: VecDeque<(i64, u64)>,
    /// Every record by its last modification, `(updated_ms, id)`: a search for what
    /// changed since a time reads from there instead of every record, as HubSpot's
    /// index does (a feed polls it every second; at 100,000 contacts a scan of them all
    /// made the sandbox the bench's bottleneck). Kept by [`Objects::modified`].
    by_modified: BTreeSet<(i64, u64)>,
}

/// `contacts` -> `contact`, `companies` -> `company`, `line_items` -> `line_item`.
pub fn singular(name: &str) -> String {
    match name.strip_suffix("ies") {
        Some(stem) => format!("{stem}y"),
        None => name.strip_suffix('s').unwrap_or(name).to_owned(),
    }
}

/// Computed properties every object has.
const SYSTEM: [&str; 4] = [
    "hs_object_id",
    "createdate",
    "lastmodifieddate",
    "hs_lastmodifieddate",
];

impl Objects {
    pub fn new(kind: ObjectKind, defs: Vec<PropertyDef>) -> Self {
        let mut properties: BTreeMap<Arc<str>, PropertyDef> =
            defs.into_iter().map(|d| (d.name.clone(), d)).collect();
        for name in SYSTEM {
            let ty = if name == "hs_object_id" {
                PropType::Number
            } else {
                PropType::DateTime
            };
            let mut def = PropertyDef::new(name, ty);
            def.read_only = true;
            def.calculated = true;
            properties.insert(def.name.clone(), def);
        }
        let mut merged_ids = PropertyDef::new("hs_merged_object_ids", PropType::Enumeration);
        merged_ids.read_only = true;
        properties.insert(merged_ids.name.clone(), merged_ids);
        let unique = properties
            .values()
            .filter(|d| d.unique)
            .map(|d| (d.name.clone(), HashMap::new()))
            .collect();
        Objects {
            kind,
            records: BTreeMap::new(),
            merged: HashMap::new(),
            unique,
            properties,
            index_queue: VecDeque::new(),
            by_modified: BTreeSet::new(),
        }
    }

    /// Notes that record `id`'s modification time moved from `old` (none: new) to `new`.
    fn modified(&mut self, id: u64, old: Option<i64>, new: i64) {
        if let Some(old) = old {
            self.by_modified.remove(&(old, id));
        }
        self.by_modified.insert((new, id));
    }

    /// Entries in the modification index: one per record, whatever became of it.
    #[cfg(test)]
    pub fn modified_entries(&self) -> usize {
        self.by_modified.len()
    }

    /// The ids of records last modified at or after `since`, in that order.
    pub fn modified_since(&self, since: i64) -> impl Iterator<Item = u64> + '_ {
        self.by_modified.range((since, 0)..).map(|(_, id)| *id)
    }

    /// The id a given id resolves to (merged ids resolve to the merge result).
    pub fn resolve(&self, id: u64) -> u64 {
        let mut id = id;
        // Merges can chain (A into B, B into C); the map has no cycles.
        for _ in 0..64 {
            match self.merged.get(&id) {
                Some(next) => id = *next,
                None => break,
            }
        }
        id
    }

    /// A property value, computed ones included.
    pub fn value<'r>(
        &self,
        record: &'r Record,
        props: &'r Props,
        name: &str,
    ) -> Option<Cow<'r, str>> {
        match name {
            "hs_object_id" => Some(Cow::Owned(record.id.to_string())),
            "createdate" => Some(Cow::Owned(iso(record.created_ms))),
            "lastmodifieddate" | "hs_lastmodifieddate" => {
                (name == self.kind.modified_property).then(|| Cow::Owned(iso(record.updated_ms)))
            }
            // A line item's amount is its price times its quantity.
            "amount" if self.kind.name == "line_items" => {
                let number = |k: &str| props.get(k).and_then(|v| v.trim().parse::<f64>().ok());
                let (price, quantity) = (number("price")?, number("quantity").unwrap_or(1.0));
                Some(Cow::Owned(format!("{:.2}", price * quantity)))
            }
            "hs_merged_object_ids" if !record.merged_ids.is_empty() => Some(Cow::Owned(
                record
                    .merged_ids
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(";"),
            )),
            _ => props.get(name).map(|v| Cow::Borrowed(v.as_str())),
        }
    }

    /// Looks a record up by id or by a unique property (`idProperty=email`).
    pub fn find(&self, key: &str, id_property: Option<&str>) -> Option<u64> {
        match id_property {
            None | Some("hs_object_id") => key.parse::<u64>().ok().map(|id| self.resolve(id)),
            Some(prop) => self
                .unique
                .get(prop)
                .and_then(|m| m.get(&key.trim().to_lowercase()))
                .copied(),
        }
    }

    /// Validates property values for a write, HubSpot's way: every problem in one 400.
    pub fn check_write(
        &self,
        props: &Map<String, Value>,
    ) -> Result<Vec<(Arc<str>, String)>, HsError> {
        let mut problems = Vec::new();
        let mut out = Vec::with_capacity(props.len());
        for (name, value) in props {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => other.to_string(),
            };
            let Some(def) = self.properties.get(name.as_str()) else {
                problems.push(PropertyProblem::missing(name));
                continue;
            };
            if def.read_only {
                problems.push(PropertyProblem::read_only(name));
                continue;
            }
            if let Some(problem) = check_value(def, &text) {
                problems.push(problem);
                continue;
            }
            out.push((def.name.clone(), normalize_value(def, &text)));
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(HsError::invalid_properties(&problems))
        }
    }
}

/// One invalid property of a write.
#[derive(Debug, Clone)]
pub struct PropertyProblem {
    pub name: String,
    pub code: &'static str,
    pub message: String,
}

impl PropertyProblem {
    fn missing(name: &str) -> Self {
        PropertyProblem {
            name: name.into(),
            code: "PROPERTY_DOESNT_EXIST",
            message: format!("Property \"{name}\" does not exist"),
        }
    }

    fn read_only(name: &str) -> Self {
        PropertyProblem {
            name: name.into(),
            code: "READ_ONLY_VALUE",
            message: format!("\"{name}\" is a read only property; its value cannot be set."),
        }
    }
}

fn check_value(def: &PropertyDef, text: &str) -> Option<PropertyProblem> {
    if text.is_empty() {
        return None;
    }
    let bad = |code: &'static str, message: String| {
        Some(PropertyProblem {
            name: def.name.to_string(),
            code,
            message,
        })
    };
    match def.ty {
        PropType::Number if text.trim().parse::<f64>().is_err() => {
            bad("INVALID_DOUBLE", format!("{text} was not a valid number."))
        }
        PropType::Bool if !matches!(text, "true" | "false") => bad(
            "INVALID_BOOLEAN",
            format!("{text} was not a valid boolean (true or false)."),
        ),
        PropType::Enumeration if !def.options.is_empty() => {
            // Multi-checkbox values are `;`-joined; a leading `;` appends.
            let bad_option = text
                .split(';')
                .filter(|o| !o.is_empty())
                .find(|o| !def.options.iter().any(|opt| opt == o));
            match bad_option {
                Some(o) => bad(
                    "INVALID_OPTION",
                    format!(
                        "{o} was not one of the allowed options: [{}]",
                        def.options.join(", ")
                    ),
                ),
                None => None,
            }
        }
        PropType::Date | PropType::DateTime if parse_time_ms(text).is_none() => bad(
            "INVALID_DATE",
            format!("{text} is not a valid date; use ISO 8601 or epoch milliseconds."),
        ),
        _ => None,
    }
}

/// Dates and date-times are stored as HubSpot returns them: ISO 8601 (dates at
/// midnight UTC).
fn normalize_value(def: &PropertyDef, text: &str) -> String {
    match def.ty {
        PropType::DateTime => parse_time_ms(text)
            .map(iso)
            .unwrap_or_else(|| text.to_owned()),
        PropType::Date => parse_time_ms(text)
            .map(|ms| {
                iso(ms - ms.rem_euclid(86_400_000))
                    .chars()
                    .take(10)
                    .collect()
            })
            .unwrap_or_else(|| text.to_owned()),
        _ => text.to_owned(),
    }
}

/// Epoch milliseconds of a time written as epoch ms, ISO 8601 or `YYYY-MM-DD`.
pub fn parse_time_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(d.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

/// The whole portal.
#[derive(Debug)]
pub struct Portal {
    pub objects: BTreeMap<String, Objects>,
    /// objectTypeId and other names -> path name.
    pub aliases: HashMap<String, String>,
    next_id: u64,
    /// How long a write takes to reach search.
    pub search_lag_ms: i64,
    pub owners: Vec<Value>,
    /// Changes not yet handed to the webhook dispatcher.
    pub outbox: Vec<ChangeEvent>,
    /// The integration's successful creates and updates per record (`contacts/100001`),
    /// whether or not they changed a value: when, and the properties they changed.
    pub integration_writes: BTreeMap<String, Vec<Value>>,
}

/// One change, as a webhook event will describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// `contact`, `company`, `deal` (webhooks cover these three).
    pub object: &'static str,
    /// `creation`, `propertyChange`, `deletion`, `restore`, `merge`.
    pub kind: &'static str,
    pub object_id: u64,
    pub property: Option<(String, String)>,
    /// For merges: (primary id, merged ids, new id).
    pub merge: Option<(u64, Vec<u64>, u64)>,
    /// For association changes.
    pub association: Option<AssociationChange>,
    /// Custom objects' events are `object.*` and name the type by its id (`2-1001`).
    pub object_type_id: Option<String>,
    pub at_ms: i64,
    pub source: Source,
}

impl ChangeEvent {
    /// An event about a whole record (`creation`, `deletion`, `restore`), for `emit`.
    fn of_record(
        kind: &'static str,
        object_id: u64,
        at_ms: i64,
        source: Source,
    ) -> impl FnOnce(&'static str) -> ChangeEvent {
        move |object| ChangeEvent {
            object,
            kind,
            object_id,
            property: None,
            merge: None,
            association: None,
            object_type_id: None,
            at_ms,
            source,
        }
    }
}

/// One side of an association change, as its webhook event describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct AssociationChange {
    /// `CONTACT_TO_COMPANY`...
    pub association_type: String,
    pub from_id: u64,
    pub to_id: u64,
    pub removed: bool,
    pub primary: bool,
}

/// The webhook object name of a path name, for the types webhooks cover: contacts,
/// companies, deals, and (HubSpot's generic `object.*` subscriptions, events naming the
/// `objectTypeId`) engagements and custom objects.
fn webhook_object(type_name: &str) -> Option<&'static str> {
    match type_name {
        "contacts" => Some("contact"),
        "companies" => Some("company"),
        "deals" => Some("deal"),
        "tickets" => Some("ticket"),
        "calls" | "emails" | "meetings" | "notes" | "tasks" => Some("object"),
        t if t.starts_with("p_") => Some("object"),
        _ => None,
    }
}

/// What a read asks for.
#[derive(Debug, Clone, Default)]
pub struct ReadSpec {
    pub properties: Option<Vec<String>>,
    pub with_history: Vec<String>,
}

impl Portal {
    pub fn new(search_lag_ms: i64) -> Self {
        let mut portal = Portal {
            objects: BTreeMap::new(),
            aliases: HashMap::new(),
            next_id: 100_001,
            search_lag_ms,
            owners: Vec::new(),
            outbox: Vec::new(),
            integration_writes: BTreeMap::new(),
        };
        for (kind, defs) in super::schema::standard_objects() {
            portal.add_type(kind, defs);
        }
        portal
    }

    pub fn add_type(&mut self, kind: ObjectKind, defs: Vec<PropertyDef>) {
        self.aliases.insert(kind.type_id.clone(), kind.name.clone());
        self.aliases.insert(kind.name.clone(), kind.name.clone());
        // HubSpot's standard objects go by their singular too (`contact`, `company`).
        if kind.type_id.starts_with("0-") {
            self.aliases.insert(singular(&kind.name), kind.name.clone());
        }
        if let Some(short) = kind.name.strip_prefix("p_") {
            self.aliases.insert(short.to_owned(), kind.name.clone());
        }
        self.objects
            .insert(kind.name.clone(), Objects::new(kind, defs));
    }

    /// The object type a path segment names (`contacts`, `contact`, `0-1`, `Contacts`,
    /// `p_machines`, `2-1001`).
    pub fn objects(&self, name: &str) -> Result<&Objects, HsError> {
        self.canonical(name)
            .and_then(|n| self.objects.get(n))
            .ok_or_else(|| HsError::unknown_object_type(name))
    }

    /// The object type's own name for a path segment, case aside.
    pub fn canonical(&self, name: &str) -> Option<&String> {
        self.aliases
            .get(name)
            .or_else(|| self.aliases.get(&name.to_ascii_lowercase()))
    }

    pub fn objects_mut(&mut self, name: &str) -> Result<&mut Objects, HsError> {
        let canonical = self
            .canonical(name)
            .cloned()
            .ok_or_else(|| HsError::unknown_object_type(name))?;
        self.objects
            .get_mut(&canonical)
            .ok_or_else(|| HsError::unknown_object_type(name))
    }

    pub fn emit(&mut self, type_name: &str, event: impl FnOnce(&'static str) -> ChangeEvent) {
        let canonical = self
            .aliases
            .get(type_name)
            .map(String::as_str)
            .unwrap_or(type_name);
        if let Some(object) = webhook_object(canonical) {
            let mut change = event(object);
            if object == "object" {
                change.object_type_id = self.objects.get(canonical).map(|o| o.kind.type_id.clone());
            }
            if change.source != Source::Import {
                self.outbox.push(change);
            }
        }
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Creates a record. `check_unique` is off only for the seed generator, which
    /// guarantees uniqueness itself.
    pub fn create(
        &mut self,
        type_name: &str,
        props: &Map<String, Value>,
        now: i64,
        source: Source,
    ) -> Result<u64, HsError> {
        let checked = self.objects(type_name)?.check_write(props)?;
        self.create_checked(type_name, checked, now, source)
    }

    pub fn create_checked(
        &mut self,
        type_name: &str,
        checked: Vec<(Arc<str>, String)>,
        now: i64,
        source: Source,
    ) -> Result<u64, HsError> {
        let objects = self.objects(type_name)?;
        for (name, value) in &checked {
            if let Some(existing) = objects
                .unique
                .get(name)
                .and_then(|m| m.get(&value.to_lowercase()))
            {
                return Err(HsError::conflict(*existing, &objects.kind.upper));
            }
        }
        let id = self.next_id();
        let lag = self.search_lag_ms;
        let objects = self.objects_mut(type_name)?;
        let props: Props = checked.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        for (name, index) in objects.unique.iter_mut() {
            if let Some(v) = props.get(name) {
                index.insert(v.to_lowercase(), id);
            }
        }
        let props = Arc::new(props);
        objects.records.insert(
            id,
            Record {
                id,
                indexed: (lag <= 0).then(|| props.clone()),
                props,
                history: HashMap::new(),
                created_ms: now,
                updated_ms: now,
                created_by: source,
                archived_ms: None,
                merged_ids: Vec::new(),
            },
        );
        objects.modified(id, None, now);
        if lag > 0 {
            objects.index_queue.push_back((now + lag, id));
        }
        self.count_write(type_name, id, source, now, &["(created)".into()]);
        self.emit(
            type_name,
            ChangeEvent::of_record("creation", id, now, source),
        );
        Ok(id)
    }

    /// Updates a live record. Returns whether anything changed (a PATCH that sets the
    /// values already there changes nothing: no history, no new modification time).
    pub fn update(
        &mut self,
        type_name: &str,
        id: u64,
        props: &Map<String, Value>,
        now: i64,
        source: Source,
    ) -> Result<Vec<(Arc<str>, String)>, HsError> {
        let checked = self.objects(type_name)?.check_write(props)?;
        self.update_checked(type_name, id, checked, now, source)
    }

    pub fn update_checked(
        &mut self,
        type_name: &str,
        id: u64,
        checked: Vec<(Arc<str>, String)>,
        now: i64,
        source: Source,
    ) -> Result<Vec<(Arc<str>, String)>, HsError> {
        let lag = self.search_lag_ms;
        let objects = self.objects_mut(type_name)?;
        let id = objects.resolve(id);
        let upper = objects.kind.upper.clone();
        let Some(record) = objects.records.get(&id).filter(|r| r.archived_ms.is_none()) else {
            return Err(HsError::not_found(&upper, id));
        };
        let changes: Vec<(Arc<str>, String)> = checked
            .into_iter()
            .filter(|(name, value)| {
                record
                    .props
                    .get(name)
                    .map_or(!value.is_empty(), |old| old != value)
            })
            .collect();
        for (name, value) in &changes {
            if value.is_empty() {
                continue;
            }
            let owner = objects
                .unique
                .get(name)
                .and_then(|m| m.get(&value.to_lowercase()));
            if let Some(owner) = owner.filter(|o| **o != id) {
                return Err(HsError::conflict(*owner, &upper));
            }
        }
        if changes.is_empty() {
            self.count_write(type_name, id, source, now, &[]);
            return Ok(changes);
        }
        let Some(record) = objects.records.get_mut(&id) else {
            return Err(HsError::not_found(&upper, id));
        };
        let props = Arc::make_mut(&mut record.props);
        for (name, value) in &changes {
            let old = if value.is_empty() {
                props.remove(name)
            } else {
                props.insert(name.clone(), value.clone())
            };
            if let Some(index) = objects.unique.get_mut(name) {
                if let Some(old) = &old {
                    index.remove(&old.to_lowercase());
                }
                if !value.is_empty() {
                    index.insert(value.to_lowercase(), id);
                }
            }
            let history = record.history.entry(name.clone()).or_default();
            // The first change keeps the value the record was created with.
            if let (true, Some(old)) = (history.is_empty(), old) {
                history.push(Change {
                    value: old,
                    at_ms: record.created_ms,
                    source: record.created_by,
                });
            }
            history.push(Change {
                value: value.clone(),
                at_ms: now,
                source,
            });
        }
        let old = std::mem::replace(&mut record.updated_ms, now);
        if lag <= 0 {
            record.indexed = Some(record.props.clone());
        } else {
            objects.index_queue.push_back((now + lag, id));
        }
        objects.modified(id, Some(old), now);
        for (name, value) in &changes {
            self.emit(type_name, |object| ChangeEvent {
                object,
                kind: "propertyChange",
                object_id: id,
                property: Some((name.to_string(), value.clone())),
                merge: None,
                association: None,
                object_type_id: None,
                at_ms: now,
                source,
            });
        }
        let names: Vec<String> = changes.iter().map(|(n, _)| n.to_string()).collect();
        self.count_write(type_name, id, source, now, &names);
        Ok(changes)
    }

    fn count_write(
        &mut self,
        type_name: &str,
        id: u64,
        source: Source,
        now: i64,
        changed: &[String],
    ) {
        if source == Source::Integration {
            self.integration_writes
                .entry(format!("{type_name}/{id}"))
                .or_default()
                .push(serde_json::json!({"at": now, "changed": changed}));
        }
    }

    /// Archives (soft-deletes) a record; unknown ids are fine, as in HubSpot.
    pub fn archive(
        &mut self,
        type_name: &str,
        id: u64,
        now: i64,
        source: Source,
    ) -> Result<bool, HsError> {
        let objects = self.objects_mut(type_name)?;
        let id = objects.resolve(id);
        let Some(record) = objects
            .records
            .get_mut(&id)
            .filter(|r| r.archived_ms.is_none())
        else {
            return Ok(false);
        };
        record.archived_ms = Some(now);
        let props = record.props.clone();
        for (name, index) in objects.unique.iter_mut() {
            if let Some(v) = props.get(name) {
                index.remove(&v.to_lowercase());
            }
        }
        self.emit(
            type_name,
            ChangeEvent::of_record("deletion", id, now, source),
        );
        Ok(true)
    }

    /// Restores an archived record (from HubSpot's recycle bin): live again with its
    /// id, unless another record took its unique values (email) meanwhile.
    pub fn restore(
        &mut self,
        type_name: &str,
        id: u64,
        now: i64,
        source: Source,
    ) -> Result<(), HsError> {
        let lag = self.search_lag_ms;
        let objects = self.objects_mut(type_name)?;
        let upper = objects.kind.upper.clone();
        let Some(record) = objects.records.get(&id).filter(|r| r.archived_ms.is_some()) else {
            return Err(HsError::not_found(&upper, id));
        };
        let props = record.props.clone();
        for (name, index) in &objects.unique {
            if let Some(other) = props.get(name).and_then(|v| index.get(&v.to_lowercase())) {
                return Err(HsError::conflict(*other, &upper));
            }
        }
        for (name, index) in objects.unique.iter_mut() {
            if let Some(v) = props.get(name) {
                index.insert(v.to_lowercase(), id);
            }
        }
        if let Some(record) = objects.records.get_mut(&id) {
            record.archived_ms = None;
            let old = std::mem::replace(&mut record.updated_ms, now);
            // Back in search like any write: at once without lag, else when it is due.
            if lag <= 0 {
                record.indexed = Some(record.props.clone());
            } else {
                objects.index_queue.push_back((now + lag, id));
            }
            objects.modified(id, Some(old), now);
        }
        self.emit(
            type_name,
            ChangeEvent::of_record("restore", id, now, source),
        );
        Ok(())
    }

    /// Makes every record visible to search at once (seeded data existed before).
    pub fn index_all(&mut self) {
        for objects in self.objects.values_mut() {
            objects.index_queue.clear();
            for r in objects.records.values_mut() {
                r.indexed = Some(r.props.clone());
            }
        }
    }

    /// Makes due index updates visible to search.
    pub fn refresh_index(&mut self, type_name: &str, now: i64) -> Result<(), HsError> {
        let objects = self.objects_mut(type_name)?;
        while let Some((due, id)) = objects.index_queue.front().copied() {
            if due > now {
                break;
            }
            objects.index_queue.pop_front();
            if let Some(r) = objects.records.get_mut(&id) {
                r.indexed = Some(r.props.clone());
            }
        }
        Ok(())
    }

    /// Merges `merge_id` into `primary_id`: the result gets a new id, the primary's
    /// values win, blanks are filled from the other, and both old ids keep resolving.
    pub fn merge(
        &mut self,
        type_name: &str,
        primary_id: u64,
        merge_id: u64,
        now: i64,
        source: Source,
    ) -> Result<u64, HsError> {
        let new_id = self.next_id();
        let lag = self.search_lag_ms;
        let objects = self.objects_mut(type_name)?;
        let upper = objects.kind.upper.clone();
        let (a, b) = (objects.resolve(primary_id), objects.resolve(merge_id));
        if a == b {
            return Err(HsError::validation("Cannot merge an object with itself."));
        }
        let live = |id: u64| {
            objects
                .records
                .get(&id)
                .filter(|r| r.archived_ms.is_none())
                .cloned()
        };
        let primary = live(a).ok_or_else(|| HsError::not_found(&upper, a))?;
        let other = live(b).ok_or_else(|| HsError::not_found(&upper, b))?;
        let mut props = (*other.props).clone();
        props.extend(primary.props.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut history = other.history.clone();
        for (k, v) in &primary.history {
            history
                .entry(k.clone())
                .or_default()
                .extend(v.iter().cloned());
        }
        let mut merged_ids = vec![a, b];
        merged_ids.extend(primary.merged_ids.iter().chain(other.merged_ids.iter()));
        for (id, r) in [(a, &primary), (b, &other)] {
            objects.records.remove(&id);
            objects.by_modified.remove(&(r.updated_ms, id));
            objects.merged.insert(id, new_id);
        }
        for index in objects.unique.values_mut() {
            for v in index.values_mut() {
                if *v == a || *v == b {
                    *v = new_id;
                }
            }
        }
        let props = Arc::new(props);
        objects.records.insert(
            new_id,
            Record {
                id: new_id,
                indexed: (lag <= 0).then(|| props.clone()),
                props,
                history,
                created_ms: primary.created_ms.min(other.created_ms),
                updated_ms: now,
                created_by: source,
                archived_ms: None,
                merged_ids,
            },
        );
        objects.modified(new_id, None, now);
        if lag > 0 {
            objects.index_queue.push_back((now + lag, new_id));
        }
        self.emit(type_name, |object| ChangeEvent {
            object,
            kind: "merge",
            object_id: a,
            property: None,
            merge: Some((a, vec![b], new_id)),
            association: None,
            object_type_id: None,
            at_ms: now,
            source,
        });
        Ok(new_id)
    }

    /// A record as the API returns it (`SimplePublicObject` and friends).
    pub fn render(&self, objects: &Objects, record: &Record, spec: &ReadSpec) -> Value {
        let mut properties = Map::new();
        let names: Vec<&str> = match &spec.properties {
            Some(names) if !names.is_empty() => names.iter().map(String::as_str).collect(),
            _ => objects.kind.default_properties.clone(),
        };
        for name in names {
            if !objects.properties.contains_key(name) {
                continue;
            }
            // Requested but empty: omitted, as the specs type every value as a string.
            if let Some(v) = objects.value(record, &record.props, name) {
                properties.insert(name.to_owned(), Value::String(v.into_owned()));
            }
        }
        let mut out = json!({
            "id": record.id.to_string(),
            "properties": properties,
            "createdAt": iso(record.created_ms),
            "updatedAt": iso(record.updated_ms),
            "archived": record.archived_ms.is_some(),
        });
        if let Some(at) = record.archived_ms {
            out["archivedAt"] = json!(iso(at));
        }
        if !spec.with_history.is_empty() {
            let mut with_history = Map::new();
            for name in &spec.with_history {
                if !objects.properties.contains_key(name.as_str()) {
                    continue;
                }
                with_history.insert(
                    name.clone(),
                    Value::Array(history_of(objects, record, name)),
                );
            }
            out["propertiesWithHistory"] = Value::Object(with_history);
        }
        out
    }
}

/// A property's history, newest first: explicit changes, then the creation value.
fn history_of(objects: &Objects, record: &Record, name: &str) -> Vec<Value> {
    let entry = |value: &str, at: i64, source: Source| {
        let mut v = json!({
            "value": value,
            "timestamp": iso(at),
            "sourceType": source.source_type(),
            "sourceId": source.source_id(),
        });
        if let Source::User(user) = source {
            v["updatedByUserId"] = json!(user);
        }
        v
    };
    let changes = record.history.get(name).map(Vec::as_slice).unwrap_or(&[]);
    let mut out: Vec<Value> = changes
        .iter()
        .rev()
        .map(|c| entry(&c.value, c.at_ms, c.source))
        .collect();
    // The value the record was created with, unless it was never set.
    let created_value = match changes.first() {
        Some(_) => None,
        None => objects
            .value(record, &record.props, name)
            .map(Cow::into_owned),
    };
    if let Some(v) = created_value {
        out.push(entry(&v, record.created_ms, record.created_by));
    }
    out
}
