//! The simulated org's records and the rules every write goes through: field
//! existence and access, types and lengths, required fields, restricted picklists,
//! unique external ids, duplicate rules on email, validation rules, converted leads,
//! deleted records, read-only access, State/Country picklists. Formula fields are
//! computed on read.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::error::SfError;
use super::ids;
use super::schema::{FieldDef, Formula, OPPORTUNITY_STAGES, ObjectDef, SfType, standard_objects};

/// The integration user (the first token) and the person behind other tokens and the
/// control API: users 1 and 2 of the org.
pub static INTEGRATION_USER: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| ids::make("005", 1));
pub static ADMIN_USER: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| ids::make("005", 2));

/// The prefixes of address fields (`MailingCity`, `City` on leads...).
const ADDRESS_PREFIXES: [&str; 5] = ["", "Mailing", "Other", "Billing", "Shipping"];

#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    /// Stored values of writable fields, by canonical field name.
    pub fields: Map<String, Value>,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub modstamp_ms: i64,
    pub created_by: String,
    pub modified_by: String,
    pub deleted_ms: Option<i64>,
}

/// A configurable validation rule: when `field` meets `condition` on a saved record,
/// the save fails with FIELD_CUSTOM_VALIDATION_EXCEPTION and `message`.
#[derive(Debug, Clone)]
pub struct ValidationRule {
    pub object: String,
    pub name: String,
    pub field: String,
    pub condition: RuleCondition,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleCondition {
    Blank,
    Equals(String),
    LongerThan(usize),
}

/// Who writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Integration,
    Human,
}

impl Writer {
    pub fn user(self) -> &'static str {
        match self {
            Writer::Integration => INTEGRATION_USER.as_str(),
            Writer::Human => ADMIN_USER.as_str(),
        }
    }
}

/// Options of one write, from request headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// `Sforce-Duplicate-Rule-Header: allowSave=true`.
    pub allow_duplicates: bool,
}

/// One field's lookup: lower-cased value -> the ids of records that held it.
type ValueIndex = HashMap<String, BTreeSet<String>>;

#[derive(Debug)]
pub struct Org {
    pub id: String,
    pub objects: Vec<ObjectDef>,
    records: HashMap<String, BTreeMap<String, Record>>,
    /// Lookups by a field's value (external ids, unique fields, email): per (object,
    /// field), lower-cased value -> ids that held it. Built on a field's first lookup,
    /// kept up on every write after; entries are never removed, so a lookup checks each
    /// candidate record itself. Upserts and duplicate rules then cost no scan per row.
    index: std::cell::RefCell<HashMap<(String, String), ValueIndex>>,
    next: HashMap<String, u64>,
    pub validation_rules: Vec<ValidationRule>,
    /// Standard duplicate rules on Lead and Contact email.
    pub duplicate_rules: bool,
    /// State and Country picklists (`...StateCode`, `...CountryCode` hold ISO codes).
    pub state_country_picklists: bool,
    /// Their values: Salesforce's standard ones, as customized.
    pub places: super::places::Places,
    /// Objects and records the integration user may not edit.
    pub read_only_objects: HashSet<String>,
    pub read_only_records: HashSet<String>,
    /// (object, id, when) of deletions, for `sobjects/{type}/deleted`.
    pub deletions: Vec<(String, String, i64)>,
    /// Records created or updated, for outbound messages.
    pub outbox: Vec<(String, String)>,
    /// While an all-or-none call runs: each touched record as it was before (`None`:
    /// created by the call), to roll back.
    journal: Option<Vec<(String, String, Option<Record>)>>,
    /// `SystemModstamp` is set when a transaction commits, so a long transaction can
    /// stamp an earlier time than a later, faster one: writes are stamped up to this
    /// much before their commit, at random.
    pub modstamp_skew_ms: i64,
    skew_state: u64,
    /// The integration's successful creates and updates per record id, whether or not
    /// they changed a value: when, and the fields they changed.
    pub integration_writes: BTreeMap<String, Vec<Value>>,
    /// The fields whose changes write field history rows, per object that keeps
    /// history. An object not named here tracks every field it may (the sandbox's
    /// default); a real org's admin picks up to [`HISTORY_TRACKED_MAX`] per object.
    history_tracked: HashMap<String, BTreeSet<String>>,
}

/// How many fields of one object may keep field history (without Field Audit Trail).
pub const HISTORY_TRACKED_MAX: usize = 20;

/// Where to roll an all-or-none call back to.
#[derive(Debug)]
pub struct Checkpoint {
    next: HashMap<String, u64>,
    deletions: usize,
    outbox: usize,
}

/// Salesforce's date-time form: `2024-05-06T10:00:00.000+0000`.
pub fn sf_datetime(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string())
        .unwrap_or_default()
}

pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| t.timestamp_millis())
        .ok()
}

fn parse_date(s: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

impl Org {
    /// The `SystemModstamp` of a write committed at `now`.
    fn stamp(&mut self, now: i64) -> i64 {
        if self.modstamp_skew_ms <= 0 {
            return now;
        }
        // xorshift64: deterministic, no shared RNG needed.
        let mut x = self.skew_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.skew_state = x;
        now - (x % (self.modstamp_skew_ms as u64 + 1)) as i64
    }

    pub fn new(org_id: &str) -> Self {
        let mut org = Org {
            id: org_id.to_owned(),
            objects: standard_objects(),
            records: HashMap::new(),
            index: Default::default(),
            next: HashMap::new(),
            validation_rules: Vec::new(),
            duplicate_rules: true,
            state_country_picklists: false,
            places: super::places::Places::standard(),
            read_only_objects: HashSet::new(),
            read_only_records: HashSet::new(),
            deletions: Vec::new(),
            outbox: Vec::new(),
            journal: None,
            modstamp_skew_ms: 0,
            skew_state: 0x9E37_79B9_7F4A_7C15,
            integration_writes: BTreeMap::new(),
            history_tracked: HashMap::new(),
        };
        org.define_objects();
        // Users 1 and 2: the integration user and the admin behind the control API.
        for (id, first, last, email) in [
            (
                INTEGRATION_USER.as_str(),
                "Integration",
                "User",
                "integration@crmsync-demo.com",
            ),
            (
                ADMIN_USER.as_str(),
                "Org",
                "Admin",
                "admin@crmsync-demo.com",
            ),
        ] {
            let fields = json!({"Username": email, "Email": email, "FirstName": first, "LastName": last, "IsActive": true});
            org.seed_with_id(
                "User",
                id,
                fields.as_object().cloned().unwrap_or_default(),
                0,
            );
        }
        org.next.insert("User".into(), 2);
        org
    }

    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.objects
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// The object an id belongs to, by key prefix.
    pub fn object_of_id(&self, id: &str) -> Option<&ObjectDef> {
        let prefix = id.get(..3)?;
        self.objects.iter().find(|o| o.key_prefix == prefix)
    }

    pub fn records(&self, object: &str) -> impl Iterator<Item = &Record> {
        self.records
            .get(object)
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// The records of `object` whose `field` may hold `value` (case-insensitively), in
    /// id order: every one that does, and perhaps some that no longer do (callers
    /// compare the value themselves).
    pub fn candidates(&self, object: &str, field: &str, value: &str) -> Vec<&Record> {
        let key = (object.to_owned(), field.to_owned());
        let mut index = self.index.borrow_mut();
        let values = index.entry(key).or_insert_with(|| {
            let mut built = ValueIndex::new();
            for r in self.records(object) {
                if let Some(v) = r.fields.get(field).and_then(Value::as_str) {
                    built
                        .entry(v.to_lowercase())
                        .or_default()
                        .insert(r.id.clone());
                }
            }
            built
        });
        let Some(ids) = values.get(&value.to_lowercase()) else {
            return Vec::new();
        };
        let Some(records) = self.records.get(object) else {
            return Vec::new();
        };
        ids.iter().filter_map(|id| records.get(id)).collect()
    }

    /// Keeps the built lookups up with a record just written.
    fn reindex(&self, object: &str, id: &str) {
        let Some(record) = self.records.get(object).and_then(|m| m.get(id)) else {
            return;
        };
        for ((o, field), values) in self.index.borrow_mut().iter_mut() {
            if o != object {
                continue;
            }
            if let Some(v) = record.fields.get(field).and_then(Value::as_str) {
                values
                    .entry(v.to_lowercase())
                    .or_default()
                    .insert(id.to_owned());
            }
        }
    }

    pub fn count(&self, object: &str) -> usize {
        self.records.get(object).map_or(0, BTreeMap::len)
    }

    /// A record by id (15 or 18 characters), deleted ones included.
    pub fn get(&self, id: &str) -> Option<(&ObjectDef, &Record)> {
        let id = ids::to18(id)?;
        let object = self.object_of_id(&id)?;
        let record = self.records.get(object.name)?.get(&id)?;
        Some((object, record))
    }

    /// Starts recording changes so that they can be rolled back together.
    pub fn checkpoint(&mut self) -> Checkpoint {
        self.journal = Some(Vec::new());
        Checkpoint {
            next: self.next.clone(),
            deletions: self.deletions.len(),
            outbox: self.outbox.len(),
        }
    }

    /// Keeps the changes since the checkpoint.
    pub fn commit(&mut self) {
        self.journal = None;
    }

    /// Undoes every change since the checkpoint.
    pub fn rollback(&mut self, to: Checkpoint) {
        for (object, id, before) in self.journal.take().unwrap_or_default().into_iter().rev() {
            let records = self.records.entry(object.clone()).or_default();
            match before {
                Some(r) => {
                    records.insert(id.clone(), r);
                    self.reindex(&object, &id);
                }
                None => {
                    records.remove(&id);
                }
            }
        }
        self.next = to.next;
        self.deletions.truncate(to.deletions);
        self.outbox.truncate(to.outbox);
    }

    /// Notes a record's state before a change, when a checkpoint is open.
    fn remember(&mut self, object: &str, id: &str) {
        let before = self.records.get(object).and_then(|m| m.get(id)).cloned();
        if let Some(journal) = self.journal.as_mut() {
            journal.push((object.to_owned(), id.to_owned(), before));
        }
    }

    /// Whether changes of `field` on `object` write field history rows.
    pub fn is_history_tracked(&self, object: &str, field: &str) -> bool {
        if !super::schema::HISTORIES
            .iter()
            .any(|(o, _, _)| *o == object)
        {
            return false;
        }
        match self.history_tracked.get(object) {
            Some(fields) => fields.contains(field),
            None => self
                .object(object)
                .and_then(|o| o.field(field))
                .is_some_and(Self::may_track),
        }
    }

    /// Salesforce tracks history of fields a person edits: not of formulas, system
    /// fields or compound addresses.
    fn may_track(def: &FieldDef) -> bool {
        def.updateable && def.formula.is_none() && def.ty != SfType::Address
    }

    /// Sets which fields of `object` keep field history, as an admin does in Setup:
    /// only an object with history, at most [`HISTORY_TRACKED_MAX`] fields, each one
    /// that may be tracked.
    pub fn set_history_tracked(&mut self, object: &str, fields: &[String]) -> Result<(), String> {
        if !super::schema::HISTORIES
            .iter()
            .any(|(o, _, _)| *o == object)
        {
            return Err(format!("{object} does not keep field history"));
        }
        if fields.len() > HISTORY_TRACKED_MAX {
            return Err(format!(
                "{object}: at most {HISTORY_TRACKED_MAX} fields keep history, {} named",
                fields.len()
            ));
        }
        let def = self
            .object(object)
            .ok_or_else(|| format!("no object {object}"))?;
        for name in fields {
            match def.field(name) {
                Some(f) if Self::may_track(f) => {}
                Some(_) => return Err(format!("{object}.{name} cannot keep history")),
                None => return Err(format!("no field {object}.{name}")),
            }
        }
        self.history_tracked
            .insert(object.to_owned(), fields.iter().cloned().collect());
        self.define_objects();
        Ok(())
    }

    /// (Re)writes the `EntityDefinition` and `FieldDefinition` rows from the schema
    /// and the history settings, so SOQL on them answers as Setup would.
    pub fn define_objects(&mut self) {
        self.records.remove("EntityDefinition");
        self.records.remove("FieldDefinition");
        let objects: Vec<ObjectDef> = self.objects.clone();
        let (mut entity_n, mut field_n) = (0u64, 0u64);
        for object in &objects {
            entity_n += 1;
            let entity_id = ids::make("0ED", entity_n);
            let row = json!({
                "QualifiedApiName": object.name,
                "DeveloperName": object.name.trim_end_matches("__c"),
                "Label": object.name,
            });
            self.seed_with_id(
                "EntityDefinition",
                &entity_id,
                row.as_object().cloned().unwrap_or_default(),
                0,
            );
            for field in &object.fields {
                field_n += 1;
                let row = json!({
                    "QualifiedApiName": field.name,
                    "DeveloperName": field.name.trim_end_matches("__c"),
                    "DataType": field.ty.name(),
                    "EntityDefinitionId": entity_id,
                    "IsFieldHistoryTracked": self.is_history_tracked(object.name, &field.name),
                });
                self.seed_with_id(
                    "FieldDefinition",
                    &ids::make("0FD", field_n),
                    row.as_object().cloned().unwrap_or_default(),
                    0,
                );
            }
        }
    }

    fn new_id(&mut self, object: &ObjectDef) -> String {
        let n = self.next.entry(object.name.to_owned()).or_insert(0);
        *n += 1;
        ids::make(object.key_prefix, *n)
    }

    /// A field's value on a record, computed ones included; `Null` when empty.
    /// A compound address as SOQL reads it: an object of its components (keys in
    /// alphabetical order; the codes only with State and Country picklists on), or null
    /// when every component is empty.
    fn compound_address(&self, record: &Record, field: &FieldDef) -> Value {
        let prefix = field.name.strip_suffix("Address").unwrap_or_default();
        let get = |part: &str| {
            record
                .fields
                .get(&format!("{prefix}{part}"))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let mut parts = vec![
            ("city", get("City")),
            ("country", get("Country")),
            ("geocodeAccuracy", get("GeocodeAccuracy")),
            ("latitude", get("Latitude")),
            ("longitude", get("Longitude")),
            ("postalCode", get("PostalCode")),
            ("state", get("State")),
            ("street", get("Street")),
        ];
        if self.state_country_picklists {
            parts.push(("countryCode", get("CountryCode")));
            parts.push(("stateCode", get("StateCode")));
            parts.sort_by_key(|(k, _)| *k);
        }
        if parts.iter().all(|(_, v)| v.is_null()) {
            return Value::Null;
        }
        Value::Object(parts.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn value(&self, record: &Record, field: &FieldDef) -> Value {
        if field.ty == SfType::Address {
            return self.compound_address(record, field);
        }
        match field.name.as_str() {
            "Id" => return json!(record.id),
            "IsDeleted" => return json!(record.deleted_ms.is_some()),
            "CreatedDate" => return json!(sf_datetime(record.created_ms)),
            "LastModifiedDate" => return json!(sf_datetime(record.modified_ms)),
            "SystemModstamp" => return json!(sf_datetime(record.modstamp_ms)),
            "CreatedById" => return json!(record.created_by),
            "LastModifiedById" => return json!(record.modified_by),
            _ => {}
        }
        let get = |name: &str| record.fields.get(name).cloned().unwrap_or(Value::Null);
        let stage = || get("StageName").as_str().map(str::to_owned);
        match field.formula {
            Some(Formula::FullName) => {
                let first = get("FirstName");
                let last = get("LastName");
                let name = [first.as_str(), last.as_str()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                if name.is_empty() {
                    Value::Null
                } else {
                    json!(name)
                }
            }
            Some(Formula::EmployeeBand) => match get("NumberOfEmployees").as_f64() {
                Some(n) if n <= 50.0 => json!("1-50"),
                Some(n) if n <= 500.0 => json!("51-500"),
                Some(_) => json!("501+"),
                None => Value::Null,
            },
            Some(Formula::StageClosed) => json!(stage().is_some_and(|s| s.starts_with("Closed"))),
            Some(Formula::StageWon) => json!(stage().as_deref() == Some("Closed Won")),
            Some(Formula::StageProbability) => stage()
                .and_then(|s| OPPORTUNITY_STAGES.iter().find(|(n, _)| *n == s))
                .map_or(Value::Null, |(_, p)| json!(p)),
            None => {
                let v = get(&field.name);
                if v.is_null() && field.ty == SfType::Boolean {
                    json!(false)
                } else {
                    v
                }
            }
        }
    }

    /// A lookup takes ids of the objects it points at: a Lead's id in `Case.ContactId`
    /// is refused as Salesforce refuses it.
    fn check_reference(&self, def: &FieldDef, value: Value) -> Result<Value, SfError> {
        let Some(id) = value.as_str().filter(|_| def.ty == SfType::Reference) else {
            return Ok(value);
        };
        let prefixes: Vec<&str> = def
            .reference_to
            .iter()
            .filter_map(|o| self.object(o).map(|d| d.key_prefix))
            .collect();
        if prefixes.is_empty() || prefixes.iter().any(|p| id.starts_with(p)) {
            return Ok(value);
        }
        Err(SfError::new(
            "FIELD_INTEGRITY_EXCEPTION",
            format!("{}: id value of incorrect type: {id}", def.label),
        )
        .on(&[&def.name]))
    }

    /// Validates and converts the values of a write. Problems are collected, not
    /// returned at the first one, as Salesforce lists them.
    fn convert(
        &self,
        object: &ObjectDef,
        input: &Map<String, Value>,
        creating: bool,
    ) -> Result<Map<String, Value>, Vec<SfError>> {
        let mut out = Map::new();
        let mut errors = Vec::new();
        let mut not_writable = Vec::new();
        for (name, value) in input {
            if name == "attributes" {
                continue;
            }
            let Some(def) = object.field(name) else {
                errors.push(
                    SfError::new(
                        "INVALID_FIELD",
                        format!("No such column '{name}' on sobject of type {}", object.name),
                    )
                    .on(&[name]),
                );
                continue;
            };
            let writable = if creating {
                def.createable
            } else {
                def.updateable
            };
            if !writable {
                not_writable.push(def.name.clone());
                continue;
            }
            match convert_value(def, value).and_then(|v| self.check_reference(def, v)) {
                Ok(v) => {
                    out.insert(def.name.clone(), v);
                }
                Err(e) => errors.push(e),
            }
        }
        if !not_writable.is_empty() {
            errors.push(
                SfError::new(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    format!(
                        "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                        not_writable.join(", ")
                    ),
                )
                .on(&not_writable.iter().map(String::as_str).collect::<Vec<_>>()),
            );
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Rules that look at the record as it would be saved.
    /// A campaign member names a Lead or a Contact, and one person joins a campaign
    /// once (Salesforce: "Already a campaign member.").
    fn campaign_member_problems(&self, saved: &Map<String, Value>) -> Vec<SfError> {
        let text = |k: &str| {
            saved
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let person = text("LeadId").or(text("ContactId"));
        let Some(person) = person else {
            return vec![SfError::new(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [LeadId or ContactId]",
            )];
        };
        let campaign = text("CampaignId");
        // 15 and 18 characters name the same record.
        let short = |id: &str| id.get(..15).unwrap_or(id).to_owned();
        let same = |r: &Record, k: &str, v: Option<&str>| {
            r.fields.get(k).and_then(Value::as_str).map(short) == v.map(short)
        };
        let already = self.records("CampaignMember").any(|r| {
            r.deleted_ms.is_none()
                && same(r, "CampaignId", campaign)
                && (same(r, "LeadId", Some(person)) || same(r, "ContactId", Some(person)))
        });
        if already {
            return vec![SfError::new(
                "DUPLICATE_VALUE",
                "Already a campaign member.",
            )];
        }
        Vec::new()
    }

    fn check_saved(
        &self,
        object: &ObjectDef,
        id: Option<&str>,
        saved: &Map<String, Value>,
        options: WriteOptions,
    ) -> Result<(), Vec<SfError>> {
        let mut errors = Vec::new();
        if object.name == "CampaignMember" && id.is_none() {
            errors.extend(self.campaign_member_problems(saved));
        }
        let missing: Vec<&str> = object
            .fields
            .iter()
            .filter(|f| {
                f.required()
                    || (!f.nillable
                        && f.createable
                        && f.defaulted_on_create
                        && f.ty != SfType::Boolean)
            })
            .filter(|f| saved.get(&f.name).is_none_or(is_blank))
            .map(|f| f.name.as_str())
            .collect();
        if !missing.is_empty() {
            errors.push(
                SfError::new(
                    "REQUIRED_FIELD_MISSING",
                    format!("Required fields are missing: [{}]", missing.join(", ")),
                )
                .on(&missing),
            );
        }
        for def in object.fields.iter().filter(|f| f.unique) {
            let Some(v) = saved
                .get(&def.name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            else {
                continue;
            };
            let clash = self
                .candidates(object.name, &def.name, v)
                .into_iter()
                .find(|r| {
                    r.deleted_ms.is_none()
                        && Some(r.id.as_str()) != id
                        && r.fields
                            .get(&def.name)
                            .and_then(Value::as_str)
                            .is_some_and(|x| x.eq_ignore_ascii_case(v))
                });
            if let Some(other) = clash {
                errors.push(
                    SfError::new(
                        "DUPLICATE_VALUE",
                        format!(
                            "duplicate value found: {} duplicates value on record with id: {}",
                            def.name, other.id
                        ),
                    )
                    .on(&[&def.name]),
                );
            }
        }
        if let Err(e) = self.check_places(object, saved) {
            errors.push(e);
        }
        for rule in self
            .validation_rules
            .iter()
            .filter(|r| r.object.eq_ignore_ascii_case(object.name))
        {
            let v = saved.get(&rule.field).cloned().unwrap_or(Value::Null);
            let fires = match &rule.condition {
                RuleCondition::Blank => is_blank(&v),
                RuleCondition::Equals(x) => v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(x)),
                RuleCondition::LongerThan(n) => v.as_str().is_some_and(|s| s.chars().count() > *n),
            };
            if fires {
                errors.push(
                    SfError::new("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message.clone())
                        .on(&[&rule.field]),
                );
            }
        }
        if errors.is_empty()
            && self.duplicate_rules
            && !options.allow_duplicates
            && let Some(dup) = self.duplicate_of(object, id, saved)
        {
            errors.push(dup);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The standard duplicate rules: a lead or contact whose email another live lead or
    /// contact already has.
    fn duplicate_of(
        &self,
        object: &ObjectDef,
        id: Option<&str>,
        saved: &Map<String, Value>,
    ) -> Option<SfError> {
        let targets: &[&str] = match object.name {
            "Contact" => &["Contact"],
            "Lead" => &["Lead", "Contact"],
            _ => return None,
        };
        let email = saved
            .get("Email")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())?;
        let (entity, found) = targets.iter().find_map(|t| {
            self.candidates(t, "Email", email)
                .into_iter()
                .find(|r| {
                    r.deleted_ms.is_none()
                        && Some(r.id.as_str()) != id
                        && r.fields.get("IsConverted") != Some(&Value::Bool(true))
                        && r.fields
                            .get("Email")
                            .and_then(Value::as_str)
                            .is_some_and(|e| e.eq_ignore_ascii_case(email))
                })
                .map(|r| (*t, r))
        })?;
        let message =
            "You're creating a duplicate record. We recommend you use an existing record instead.";
        let mut e = SfError::new("DUPLICATES_DETECTED", message);
        e.extra = Some(Box::new((
            "duplicateResult".into(),
            json!({
                "allowSave": true,
                "duplicateRule": format!("Standard_{}_Duplicate_Rule", object.name),
                "duplicateRuleEntityType": object.name,
                "errorMessage": message,
                "matchResults": [{
                    "entityType": entity, "errors": [], "matchEngine": "FuzzyMatchEngine",
                    "rule": format!("Standard_{entity}_Match_Rule_v1_1"), "size": 1, "success": true,
                    "matchRecords": [{"additionalInformation": [], "fieldDiffs": [], "matchConfidence": 100.0,
                        "record": {"attributes": {"type": entity, "url": format!("{}/sobjects/{entity}/{}", super::data_path(), found.id)}, "Id": found.id}}]
                }]
            }),
        )));
        Some(e)
    }

    /// State and Country picklists: codes and names must be the org's active values
    /// (`places.rs`), and a state needs a country. Names and codes are kept in step.
    fn check_places(&self, object: &ObjectDef, saved: &Map<String, Value>) -> Result<(), SfError> {
        if !self.state_country_picklists {
            return Ok(());
        }
        for prefix in ADDRESS_PREFIXES {
            let country_code = format!("{prefix}CountryCode");
            if object.field(&country_code).is_none() {
                continue;
            }
            let code = saved
                .get(&country_code)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            if let Some(code) = code
                && self.places.country_by_code(code).is_none()
            {
                return Err(SfError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("The {country_code} field contains {code}, which isn't an available country. Choose a valid country."),
                    )
                    .on(&[&country_code]));
            }
            let state_code = format!("{prefix}StateCode");
            let state = saved
                .get(&state_code)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            if let Some(state) = state {
                let Some(country) = code else {
                    return Err(SfError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        "A country must be specified before specifying a state value for field: State/Province",
                    )
                    .on(&[&state_code]));
                };
                if self.places.state_by_code(country, state).is_none() {
                    return Err(SfError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("The {state_code} field contains {state}, which isn't an available state. Choose a valid state."),
                    )
                    .on(&[&state_code]));
                }
            }
        }
        Ok(())
    }

    /// Keeps `Country`/`CountryCode` and `State`/`StateCode` in step when picklists are
    /// on: writing either sets the other.
    fn sync_places(
        &self,
        object: &ObjectDef,
        changes: &mut Map<String, Value>,
        saved: &Map<String, Value>,
    ) -> Result<(), SfError> {
        if !self.state_country_picklists {
            return Ok(());
        }
        for prefix in ADDRESS_PREFIXES {
            let (country, country_code) =
                (format!("{prefix}Country"), format!("{prefix}CountryCode"));
            if object.field(&country_code).is_none() {
                continue;
            }
            if let Some(name) = changes
                .get(&country)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
            {
                let place = self.places.country(&name).ok_or_else(|| {
                    SfError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("There's a problem with this country, even though it may appear correct. Please select a country/territory from the list of valid countries. ({name})"),
                    )
                    .on(&[&country])
                })?;
                changes.insert(country_code.clone(), json!(place.code));
                changes.insert(country.clone(), json!(place.label));
            } else if let Some(code) = changes
                .get(&country_code)
                .and_then(Value::as_str)
                .map(str::to_owned)
                && let Some(place) = self.places.country_by_code(&code)
            {
                changes.insert(country.clone(), json!(place.label));
            }
            let (state, state_code) = (format!("{prefix}State"), format!("{prefix}StateCode"));
            let country_now = changes
                .get(&country_code)
                .or_else(|| saved.get(&country_code))
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(name) = changes
                .get(&state)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
            {
                let Some(cc) = country_now else {
                    return Err(SfError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        "A country must be specified before specifying a state value for field: State/Province",
                    )
                    .on(&[&state]));
                };
                let place = self.places.state(&cc, &name).ok_or_else(|| {
                    SfError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("There's a problem with this state, even though it may appear correct. Please select a state from the list of valid states. ({name})"),
                    )
                    .on(&[&state])
                })?;
                changes.insert(state_code.clone(), json!(place.code));
                changes.insert(state.clone(), json!(place.label));
            } else if let (Some(code), Some(cc)) = (
                changes
                    .get(&state_code)
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                country_now,
            ) && let Some(place) = self.places.state_by_code(&cc, &code)
            {
                changes.insert(state.clone(), json!(place.label));
            }
        }
        Ok(())
    }

    fn check_access(
        &self,
        object: &ObjectDef,
        id: Option<&str>,
        writer: Writer,
    ) -> Result<(), SfError> {
        let refused = writer == Writer::Integration
            && (self.read_only_objects.contains(object.name)
                || id.is_some_and(|i| self.read_only_records.contains(i)));
        if refused {
            return Err(SfError::new(
                "INSUFFICIENT_ACCESS_OR_READONLY",
                "insufficient access rights on object id",
            ));
        }
        Ok(())
    }

    /// Creates a record; returns its id.
    pub fn create(
        &mut self,
        object_name: &str,
        input: &Map<String, Value>,
        now: i64,
        writer: Writer,
        options: WriteOptions,
    ) -> Result<String, Vec<SfError>> {
        let object = self.object(object_name).cloned().ok_or_else(|| {
            vec![SfError::new(
                "NOT_FOUND",
                "The requested resource does not exist",
            )]
        })?;
        if !object.createable {
            return Err(vec![SfError::new(
                "INSUFFICIENT_ACCESS_OR_READONLY",
                "insufficient access rights on object id",
            )]);
        }
        self.check_access(&object, None, writer)
            .map_err(|e| vec![e])?;
        let mut fields = self.convert(&object, input, true)?;
        for def in object
            .fields
            .iter()
            .filter(|d| d.defaulted_on_create && d.formula.is_none() && d.createable)
        {
            if fields.get(&def.name).is_none_or(Value::is_null) {
                let default = match (object.name, def.name.as_str()) {
                    (_, _) if def.ty == SfType::Boolean => json!(false),
                    ("Lead", "Status") => json!("Open - Not Contacted"),
                    ("Case", "Status") => json!("New"),
                    ("Task", "Status") => json!("Not Started"),
                    ("Task", "Priority") => json!("Normal"),
                    _ => def.picklist.first().map_or(Value::Null, |v| json!(v)),
                };
                fields.insert(def.name.clone(), default);
            }
        }
        if object.field("OwnerId").is_some() && fields.get("OwnerId").is_none_or(Value::is_null) {
            fields.insert("OwnerId".into(), json!(writer.user()));
        }
        let mut changes = fields;
        self.sync_places(&object, &mut changes, &Map::new())
            .map_err(|e| vec![e])?;
        self.check_saved(&object, None, &changes, options)?;
        let id = self.new_id(&object);
        self.remember(object.name, &id);
        let stamp = self.stamp(now);
        let record = Record {
            id: id.clone(),
            fields: changes.into_iter().filter(|(_, v)| !v.is_null()).collect(),
            created_ms: now,
            modified_ms: now,
            modstamp_ms: stamp,
            created_by: writer.user().into(),
            modified_by: writer.user().into(),
            deleted_ms: None,
        };
        self.records
            .entry(object.name.to_owned())
            .or_default()
            .insert(id.clone(), record);
        self.reindex(object.name, &id);
        self.outbox.push((object.name.to_owned(), id.clone()));
        self.count_write(&id, writer, now, vec!["(created)".into()]);
        Ok(id)
    }

    /// Updates a record by id.
    pub fn update(
        &mut self,
        object_name: Option<&str>,
        id: &str,
        input: &Map<String, Value>,
        now: i64,
        writer: Writer,
        options: WriteOptions,
    ) -> Result<(), Vec<SfError>> {
        let Some(id18) = ids::to18(id) else {
            return Err(vec![
                SfError::new(
                    "MALFORMED_ID",
                    format!("Record ID: id value of incorrect type: {id}"),
                )
                .on(&["Id"]),
            ]);
        };
        let Some((object, record)) = self.get(&id18).map(|(o, r)| (o.clone(), r.clone())) else {
            return Err(vec![SfError::new(
                "NOT_FOUND",
                "The requested resource does not exist",
            )]);
        };
        if object_name.is_some_and(|n| !n.eq_ignore_ascii_case(object.name)) {
            return Err(vec![
                SfError::new(
                    "MALFORMED_ID",
                    format!("{}: id value of incorrect type: {id}", object.name),
                )
                .on(&["Id"]),
            ]);
        }
        if record.deleted_ms.is_some() {
            return Err(vec![SfError::new("ENTITY_IS_DELETED", "entity is deleted")]);
        }
        if object.name == "Lead" && record.fields.get("IsConverted") == Some(&Value::Bool(true)) {
            return Err(vec![SfError::new(
                "CANNOT_UPDATE_CONVERTED_LEAD",
                "cannot reference converted lead",
            )]);
        }
        self.check_access(&object, Some(&id18), writer)
            .map_err(|e| vec![e])?;
        let mut changes = self.convert(&object, input, false)?;
        self.sync_places(&object, &mut changes, &record.fields)
            .map_err(|e| vec![e])?;
        let mut saved = record.fields.clone();
        for (k, v) in &changes {
            saved.insert(k.clone(), v.clone());
        }
        self.check_saved(&object, Some(&id18), &saved, options)?;
        // Each changed field: (name, old value, new value).
        let changed: Vec<(String, Value, Value)> = saved
            .iter()
            .filter_map(|(k, v)| {
                let old = record.fields.get(k).unwrap_or(&Value::Null);
                (old != v).then(|| (k.clone(), old.clone(), v.clone()))
            })
            .collect();
        self.track_history(object.name, &id18, &changed, now, writer);
        let stamp = self.stamp(now);
        if let Some(r) = self
            .records
            .get_mut(object.name)
            .and_then(|m| m.get_mut(&id18))
        {
            r.fields = saved.into_iter().filter(|(_, v)| !v.is_null()).collect();
            r.modified_ms = now;
            r.modstamp_ms = stamp;
            r.modified_by = writer.user().into();
        }
        self.reindex(object.name, &id18);
        let names = changed.into_iter().map(|(k, _, _)| k).collect();
        self.count_write(&id18, writer, now, names);
        self.outbox.push((object.name.to_owned(), id18));
        Ok(())
    }

    fn count_write(&mut self, id: &str, writer: Writer, now: i64, changed: Vec<String>) {
        if writer == Writer::Integration {
            self.integration_writes
                .entry(id.to_owned())
                .or_default()
                .push(json!({"at": now, "changed": changed}));
        }
    }

    /// Field history: a row per changed field of a tracked object, as the platform
    /// writes them (`Field`, `OldValue`, `NewValue`, `CreatedDate` = the change).
    fn track_history(
        &mut self,
        object: &str,
        id: &str,
        changed: &[(String, Value, Value)],
        now: i64,
        writer: Writer,
    ) {
        let Some((_, history, parent)) = super::schema::HISTORIES
            .iter()
            .find(|(o, _, _)| *o == object)
        else {
            return;
        };
        let text = |v: &Value| match v {
            Value::Null => Value::Null,
            Value::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        };
        for (field, old, new) in changed {
            if !self.is_history_tracked(object, field) {
                continue;
            }
            let mut row = Map::new();
            row.insert((*parent).to_owned(), Value::String(id.to_owned()));
            row.insert("Field".into(), Value::String(field.clone()));
            row.insert("OldValue".into(), text(old));
            row.insert("NewValue".into(), text(new));
            self.seed(history, row, now, writer.user());
        }
    }

    /// Sets fields the API may not write (conversion results), as the platform does.
    fn system_set(&mut self, id: &str, fields: &[(&str, Value)], now: i64, writer: Writer) {
        if let Some((object, _)) = self.get(id).map(|(o, r)| (o.name.to_owned(), r.id.clone()))
            && let Some(r) = self.records.get_mut(&object).and_then(|m| m.get_mut(id))
        {
            for (k, v) in fields {
                r.fields.insert((*k).to_owned(), v.clone());
            }
            r.modified_ms = now;
            r.modstamp_ms = now;
            r.modified_by = writer.user().into();
            self.reindex(&object, id);
        }
    }

    /// Deletes (to the recycle bin) a record.
    pub fn delete(&mut self, id: &str, now: i64, writer: Writer) -> Result<(), SfError> {
        let id18 = ids::to18(id).ok_or_else(|| {
            SfError::new(
                "MALFORMED_ID",
                format!("Record ID: id value of incorrect type: {id}"),
            )
        })?;
        let (object, deleted) = self
            .get(&id18)
            .map(|(o, r)| (o.clone(), r.deleted_ms.is_some()))
            .ok_or_else(|| SfError::new("NOT_FOUND", "The requested resource does not exist"))?;
        if deleted {
            return Err(SfError::new("ENTITY_IS_DELETED", "entity is deleted"));
        }
        self.check_access(&object, Some(&id18), writer)?;
        let stamp = self.stamp(now);
        if let Some(r) = self
            .records
            .get_mut(object.name)
            .and_then(|m| m.get_mut(&id18))
        {
            r.deleted_ms = Some(now);
            r.modstamp_ms = stamp;
        }
        self.deletions.push((object.name.to_owned(), id18, now));
        Ok(())
    }

    /// Restores a record from the recycle bin (an admin's undelete): it is live again
    /// with its id, and `SystemModstamp` moves so that change feeds see it.
    pub fn undelete(&mut self, id: &str, now: i64) -> Result<(), SfError> {
        let id18 = ids::to18(id).ok_or_else(|| {
            SfError::new(
                "MALFORMED_ID",
                format!("Record ID: id value of incorrect type: {id}"),
            )
        })?;
        let object = self
            .get(&id18)
            .filter(|(_, r)| r.deleted_ms.is_some())
            .map(|(o, _)| o.name.to_owned())
            .ok_or_else(|| SfError::new("UNDELETE_FAILED", "Entity is not in the recycle bin"))?;
        let stamp = self.stamp(now);
        if let Some(r) = self
            .records
            .get_mut(object.as_str())
            .and_then(|m| m.get_mut(&id18))
        {
            r.deleted_ms = None;
            r.modified_ms = now;
            r.modstamp_ms = stamp;
        }
        self.deletions.retain(|(_, d, _)| *d != id18);
        Ok(())
    }

    /// Converts a lead, as `convertLead()` does: an account (new, or the one given), a
    /// contact, optionally an opportunity, and the lead marked converted, in one go.
    /// Into an existing contact (`contact_id`), as a person picks one in the conversion
    /// dialog: the contact keeps its values and its account, and no account is made.
    pub fn convert_lead(
        &mut self,
        lead_id: &str,
        account_id: Option<&str>,
        contact_id: Option<&str>,
        create_opportunity: bool,
        now: i64,
    ) -> Result<Value, Vec<SfError>> {
        let (object, lead) = self
            .get(lead_id)
            .map(|(o, r)| (o.name.to_owned(), r.clone()))
            .ok_or_else(|| {
                vec![SfError::new(
                    "NOT_FOUND",
                    "The requested resource does not exist",
                )]
            })?;
        if object != "Lead" || lead.deleted_ms.is_some() {
            return Err(vec![SfError::new(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
            )]);
        }
        if lead.fields.get("IsConverted") == Some(&Value::Bool(true)) {
            return Err(vec![SfError::new(
                "CANNOT_UPDATE_CONVERTED_LEAD",
                "cannot reference converted lead",
            )]);
        }
        let get = |k: &str| lead.fields.get(k).cloned().unwrap_or(Value::Null);
        let writer = Writer::Human;
        let options = WriteOptions {
            allow_duplicates: true,
        };
        let existing = match contact_id {
            Some(c) => match self.get(c) {
                Some((o, r)) if o.name == "Contact" && r.deleted_ms.is_none() => {
                    Some((r.id.clone(), r.fields.get("AccountId").cloned()))
                }
                _ => {
                    return Err(vec![SfError::new(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id",
                    )]);
                }
            },
            None => None,
        };
        let existing_account = existing
            .as_ref()
            .and_then(|(_, a)| a.as_ref())
            .and_then(Value::as_str)
            .map(str::to_owned);
        let account = match account_id.or(existing_account.as_deref()) {
            Some(a) => ids::to18(a).ok_or_else(|| {
                vec![SfError::new(
                    "MALFORMED_ID",
                    "account id value of incorrect type",
                )]
            })?,
            None => {
                let mut a = Map::new();
                a.insert("Name".into(), get("Company"));
                a.insert("OwnerId".into(), get("OwnerId"));
                // Salesforce's standard conversion mapping.
                for (from, to) in [
                    ("Website", "Website"),
                    ("City", "BillingCity"),
                    ("Street", "BillingStreet"),
                    ("PostalCode", "BillingPostalCode"),
                ] {
                    a.insert(to.into(), get(from));
                }
                self.create("Account", &a, now, writer, options)?
            }
        };
        let mut c = Map::new();
        for k in [
            "FirstName",
            "LastName",
            "Email",
            "Phone",
            "Title",
            "OwnerId",
            "LeadSource",
        ] {
            c.insert(k.into(), get(k));
        }
        for (from, to) in [
            ("Street", "MailingStreet"),
            ("City", "MailingCity"),
            ("PostalCode", "MailingPostalCode"),
        ] {
            c.insert(to.into(), get(from));
        }
        c.insert("AccountId".into(), json!(account));
        let contact = match existing {
            Some((id, _)) => id,
            None => self.create("Contact", &c, now, writer, options)?,
        };
        let opportunity = if create_opportunity {
            let mut o = Map::new();
            o.insert(
                "Name".into(),
                json!(format!(
                    "{}-",
                    get("Company").as_str().unwrap_or("Converted")
                )),
            );
            o.insert("StageName".into(), json!("Prospecting"));
            let close =
                chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now + 30 * 86_400_000)
                    .map(|t| t.format("%Y-%m-%d").to_string())
                    .unwrap_or_default();
            o.insert("CloseDate".into(), json!(close));
            o.insert("AccountId".into(), json!(account));
            o.insert("OwnerId".into(), get("OwnerId"));
            Some(self.create("Opportunity", &o, now, writer, options)?)
        } else {
            None
        };
        let today = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        self.system_set(
            &lead.id,
            &[
                ("IsConverted", json!(true)),
                ("ConvertedDate", json!(today)),
                ("ConvertedAccountId", json!(account)),
                ("ConvertedContactId", json!(contact)),
                (
                    "ConvertedOpportunityId",
                    opportunity.clone().map_or(Value::Null, Value::String),
                ),
                ("Status", json!("Closed - Converted")),
            ],
            now,
            writer,
        );
        self.outbox.push(("Lead".into(), lead.id.clone()));
        Ok(json!({
            "leadId": lead.id,
            "accountId": account,
            "contactId": contact,
            "opportunityId": opportunity,
        }))
    }

    /// Inserts a record as the seed generator does: no rules, no outbox.
    pub fn seed(
        &mut self,
        object_name: &str,
        fields: Map<String, Value>,
        now: i64,
        owner: &str,
    ) -> Option<String> {
        let object = self.object(object_name)?.clone();
        let id = self.new_id(&object);
        let record = Record {
            id: id.clone(),
            fields,
            created_ms: now,
            modified_ms: now,
            modstamp_ms: now,
            created_by: owner.into(),
            modified_by: owner.into(),
            deleted_ms: None,
        };
        self.records
            .entry(object.name.to_owned())
            .or_default()
            .insert(id.clone(), record);
        self.reindex(object.name, &id);
        Some(id)
    }

    /// Inserts a record with a given id (users).
    pub fn seed_with_id(
        &mut self,
        object_name: &str,
        id: &str,
        fields: Map<String, Value>,
        now: i64,
    ) {
        let record = Record {
            id: id.to_owned(),
            fields,
            created_ms: now,
            modified_ms: now,
            modstamp_ms: now,
            created_by: ADMIN_USER.clone(),
            modified_by: ADMIN_USER.clone(),
            deleted_ms: None,
        };
        self.records
            .entry(object_name.to_owned())
            .or_default()
            .insert(id.to_owned(), record);
        self.reindex(object_name, id);
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Checks and converts one value to its field's stored form.
fn convert_value(def: &FieldDef, value: &Value) -> Result<Value, SfError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let name = def.name.as_str();
    let parse_error = |v: &Value| {
        SfError::new(
            "JSON_PARSER_ERROR",
            format!(
                "Cannot deserialize instance of {} from {} value {v} for field {name}",
                def.ty.name(),
                json_kind(v)
            ),
        )
        .on(&[name])
    };
    match def.ty {
        SfType::Boolean => match value {
            Value::Bool(b) => Ok(json!(b)),
            Value::String(s)
                if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
            {
                Ok(json!(s.eq_ignore_ascii_case("true")))
            }
            other => Err(parse_error(other)),
        },
        SfType::Int => match value {
            Value::Number(n) if n.as_i64().is_some() => Ok(value.clone()),
            Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                Ok(json!(n.as_f64().map(|f| f as i64)))
            }
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(|i| json!(i))
                .map_err(|_| parse_error(value)),
            other => Err(parse_error(other)),
        },
        SfType::Double | SfType::Currency | SfType::Percent => match value {
            Value::Number(_) => Ok(value.clone()),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(|f| json!(f))
                .map_err(|_| parse_error(value)),
            other => Err(parse_error(other)),
        },
        SfType::Date => {
            let s = value.as_str().ok_or_else(|| parse_error(value))?;
            let d = parse_date(s)
                .or_else(|| {
                    parse_datetime(s)
                        .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
                        .map(|t| t.date_naive())
                })
                .ok_or_else(|| parse_error(value))?;
            Ok(json!(d.format("%Y-%m-%d").to_string()))
        }
        SfType::DateTime => {
            let s = value.as_str().ok_or_else(|| parse_error(value))?;
            let ms = parse_datetime(s)
                .or_else(|| {
                    parse_date(s)
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|t| t.and_utc().timestamp_millis())
                })
                .ok_or_else(|| parse_error(value))?;
            Ok(json!(sf_datetime(ms)))
        }
        SfType::Id | SfType::Reference => {
            let s = value.as_str().ok_or_else(|| parse_error(value))?;
            if s.is_empty() {
                return Ok(Value::Null);
            }
            let id = ids::to18(s).ok_or_else(|| {
                SfError::new(
                    "MALFORMED_ID",
                    format!("{}: id value of incorrect type: {s}", def.label),
                )
                .on(&[name])
            })?;
            Ok(json!(id))
        }
        _ => {
            let s = match value {
                Value::String(s) => s.clone(),
                other => return Err(parse_error(other)),
            };
            if s.is_empty() {
                return Ok(Value::Null);
            }
            if s.chars().count() > def.length && def.length > 0 {
                return Err(SfError::new(
                    "STRING_TOO_LONG",
                    format!(
                        "{}: data value too large: {s} (max length={})",
                        def.label, def.length
                    ),
                )
                .on(&[name]));
            }
            if def.ty == SfType::Email && !valid_email(&s) {
                return Err(SfError::new(
                    "INVALID_EMAIL_ADDRESS",
                    format!("{}: invalid email address: {s}", def.label),
                )
                .on(&[name]));
            }
            if def.restricted {
                let values: Vec<&str> = if def.ty == SfType::MultiPicklist {
                    s.split(';').collect()
                } else {
                    vec![s.as_str()]
                };
                if let Some(bad) = values.iter().find(|v| !def.picklist.contains(v)) {
                    return Err(SfError::new(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        format!(
                            "{}: bad value for restricted picklist field: {bad}",
                            def.label
                        ),
                    )
                    .on(&[name]));
                }
            }
            Ok(json!(s))
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
        Value::Null => "VALUE_NULL",
    }
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn codes(r: Result<impl std::fmt::Debug, Vec<SfError>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.code)
            .collect()
    }

    const I: Writer = Writer::Integration;

    fn opts() -> WriteOptions {
        WriteOptions::default()
    }

    #[test]
    fn required_fields_lengths_and_picklists_are_enforced_together() {
        let mut org = Org::new("00D8M0000000001AAA");
        let r = org.create(
            "Lead",
            &map(json!({"Title": "x".repeat(129), "Status": "Bogus"})),
            0,
            I,
            opts(),
        );
        let errors = r.err().unwrap_or_default();
        let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(
            codes,
            vec!["STRING_TOO_LONG", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"]
        );
        assert!(
            errors[0]
                .message
                .starts_with("Title: data value too large:")
        );
        assert!(errors[0].message.ends_with("(max length=128)"));
        let r = org.create("Lead", &map(json!({"FirstName": "Ada"})), 0, I, opts());
        let errors = r.err().unwrap_or_default();
        assert_eq!(
            errors[0].message,
            "Required fields are missing: [LastName, Company]"
        );
        assert_eq!(errors[0].fields, vec!["LastName", "Company"]);
    }

    #[test]
    fn formula_and_read_only_fields_cannot_be_written_and_formulas_compute() {
        let mut org = Org::new("00D");
        let r = org.create("Account", &map(json!({"Name": "Acme", "Employee_Band__c": "x", "CreatedDate": "2024-01-01T00:00:00Z"})), 0, I, opts());
        let errors = r.err().unwrap_or_default();
        assert_eq!(errors[0].code, "INVALID_FIELD_FOR_INSERT_UPDATE");
        assert_eq!(errors[0].fields, vec!["Employee_Band__c", "CreatedDate"]);
        let id = org
            .create(
                "Account",
                &map(json!({"Name": "Acme", "NumberOfEmployees": 120})),
                0,
                I,
                opts(),
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
        let (object, record) = org.get(&id).unwrap_or_else(|| panic!("created"));
        let band = object
            .field("Employee_Band__c")
            .map(|f| org.value(record, f));
        assert_eq!(band, Some(json!("51-500")));
        assert!(
            codes(org.create(
                "Account",
                &map(json!({"Name": "X", "Bacon__c": 1})),
                0,
                I,
                opts()
            ))
            .contains(&"INVALID_FIELD".to_owned())
        );
    }

    #[test]
    fn duplicates_unique_values_and_validation_rules() {
        let mut org = Org::new("00D");
        let c =
            json!({"LastName": "Silva", "Email": "ana@acme.com", "HubSpot_Contact_Id__c": "101"});
        org.create("Contact", &map(c.clone()), 0, I, opts())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let again = json!({"LastName": "Silva", "Email": "ANA@acme.com"});
        assert_eq!(
            codes(org.create("Contact", &map(again.clone()), 0, I, opts())),
            vec!["DUPLICATES_DETECTED"]
        );
        assert!(
            org.create(
                "Contact",
                &map(again),
                0,
                I,
                WriteOptions {
                    allow_duplicates: true
                }
            )
            .is_ok()
        );
        let clash = json!({"LastName": "Other", "HubSpot_Contact_Id__c": "101"});
        assert_eq!(
            codes(org.create("Contact", &map(clash), 0, I, opts())),
            vec!["DUPLICATE_VALUE"]
        );
        org.validation_rules.push(ValidationRule {
            object: "Lead".into(),
            name: "Phone_Required".into(),
            field: "Phone".into(),
            condition: RuleCondition::Blank,
            message: "Leads need a phone number".into(),
        });
        let r = org.create(
            "Lead",
            &map(json!({"LastName": "L", "Company": "C"})),
            0,
            I,
            opts(),
        );
        let errors = r.err().unwrap_or_default();
        assert_eq!(errors[0].code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
        assert_eq!(errors[0].message, "Leads need a phone number");
    }

    /// Lookups by a field's value (duplicate rules, unique values) follow every write:
    /// after an update a record is found under its new values and no longer under its
    /// old ones.
    #[test]
    fn lookups_by_value_follow_updates() {
        let mut org = Org::new("00D");
        let first =
            json!({"LastName": "Silva", "Email": "old@acme.com", "HubSpot_Contact_Id__c": "101"});
        let id = org
            .create("Contact", &map(first), 0, I, opts())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let person = |email: &str| map(json!({"LastName": "Other", "Email": email}));
        // The first lookups build the indexes.
        assert_eq!(
            codes(org.create("Contact", &person("old@acme.com"), 0, I, opts())),
            vec!["DUPLICATES_DETECTED"]
        );
        let moved = json!({"Email": "new@acme.com", "HubSpot_Contact_Id__c": "202"});
        org.update(Some("Contact"), &id, &map(moved), 1, I, opts())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            codes(org.create("Contact", &person("NEW@acme.com"), 2, I, opts())),
            vec!["DUPLICATES_DETECTED"]
        );
        let clash = json!({"LastName": "Other", "HubSpot_Contact_Id__c": "202"});
        assert_eq!(
            codes(org.create("Contact", &map(clash), 2, I, opts())),
            vec!["DUPLICATE_VALUE"]
        );
        assert!(
            org.create("Contact", &person("old@acme.com"), 2, I, opts())
                .is_ok(),
            "the old email is free again"
        );
    }

    #[test]
    fn a_converted_lead_is_linked_to_its_contact_and_can_no_longer_be_updated() {
        let mut org = Org::new("00D");
        let lead = org
            .create(
                "Lead",
                &map(json!({"LastName": "Lee", "Company": "Lee Co", "Email": "lee@leeco.com"})),
                0,
                I,
                opts(),
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
        let result = org
            .convert_lead(&lead, None, None, true, 1_000)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let contact = result["contactId"].as_str().unwrap_or_default();
        let (_, c) = org.get(contact).unwrap_or_else(|| panic!("contact"));
        assert_eq!(c.fields["Email"], "lee@leeco.com");
        assert_eq!(c.fields["AccountId"], result["accountId"]);
        let (_, l) = org.get(&lead).unwrap_or_else(|| panic!("lead"));
        assert_eq!(l.fields["IsConverted"], true);
        assert_eq!(l.fields["ConvertedContactId"].as_str(), Some(contact));
        assert!(result["opportunityId"].is_string());
        let r = org.update(
            Some("Lead"),
            &lead,
            &map(json!({"Phone": "1"})),
            2_000,
            I,
            opts(),
        );
        assert_eq!(codes(r), vec!["CANNOT_UPDATE_CONVERTED_LEAD"]);
    }

    #[test]
    fn a_lead_converted_into_an_existing_contact_leaves_the_contact_as_it_was() {
        let mut org = Org::new("00D");
        let account = org
            .create("Account", &map(json!({"Name": "Acme"})), 0, I, opts())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let contact = org
            .create(
                "Contact",
                &map(
                    json!({"LastName": "Kept", "Email": "kept@acme.example", "AccountId": account}),
                ),
                0,
                I,
                opts(),
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
        let lead = org
            .create(
                "Lead",
                &map(json!({"LastName": "Lee", "Company": "Lee Co", "Email": "lee@leeco.com"})),
                0,
                I,
                opts(),
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
        let accounts = org.records.get("Account").map_or(0, |r| r.len());
        let result = org
            .convert_lead(&lead, None, Some(&contact), false, 1_000)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(result["contactId"].as_str(), Some(contact.as_str()));
        assert_eq!(result["accountId"].as_str(), Some(account.as_str()));
        assert_eq!(org.records.get("Account").map_or(0, |r| r.len()), accounts);
        let (_, c) = org.get(&contact).unwrap_or_else(|| panic!("contact"));
        assert_eq!(c.fields["Email"], "kept@acme.example");
        let (_, l) = org.get(&lead).unwrap_or_else(|| panic!("lead"));
        assert_eq!(
            l.fields["ConvertedContactId"].as_str(),
            Some(contact.as_str())
        );
        // Into a record that is not a contact: refused, the lead untouched.
        let other = org
            .create(
                "Lead",
                &map(json!({"LastName": "Other", "Company": "O"})),
                0,
                I,
                opts(),
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
        let refused = org.convert_lead(&other, None, Some(&account), false, 1_000);
        assert_eq!(
            codes(refused.map(|_| ())),
            vec!["INVALID_CROSS_REFERENCE_KEY"]
        );
    }

    #[test]
    fn deleted_records_and_read_only_access() {
        let mut org = Org::new("00D");
        let id = org
            .create("Account", &map(json!({"Name": "A"})), 0, I, opts())
            .unwrap_or_else(|e| panic!("{e:?}"));
        org.read_only_records.insert(id.clone());
        assert_eq!(
            codes(org.update(None, &id, &map(json!({"Name": "B"})), 1, I, opts())),
            vec!["INSUFFICIENT_ACCESS_OR_READONLY"]
        );
        assert!(
            org.update(
                None,
                &id,
                &map(json!({"Name": "B"})),
                1,
                Writer::Human,
                opts()
            )
            .is_ok()
        );
        org.read_only_records.clear();
        assert!(org.delete(&id, 2, I).is_ok());
        assert_eq!(
            codes(org.update(None, &id, &map(json!({"Name": "C"})), 3, I, opts())),
            vec!["ENTITY_IS_DELETED"]
        );
        assert_eq!(org.deletions.len(), 1);
    }

    #[test]
    fn state_and_country_picklists_keep_names_and_codes_in_step() {
        let mut org = Org::new("00D");
        org.state_country_picklists = true;
        let id = org
            .create("Contact", &map(json!({"LastName": "P", "MailingCountry": "United States", "MailingState": "California"})), 0, I, opts())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let (_, c) = org.get(&id).unwrap_or_else(|| panic!("contact"));
        assert_eq!(c.fields["MailingCountryCode"], "US");
        assert_eq!(c.fields["MailingStateCode"], "CA");
        let r = org.create(
            "Contact",
            &map(json!({"LastName": "P", "MailingState": "Ontario"})),
            0,
            I,
            opts(),
        );
        assert_eq!(codes(r), vec!["FIELD_INTEGRITY_EXCEPTION"]);
        let r = org.create(
            "Contact",
            &map(json!({"LastName": "P", "MailingCountry": "Atlantis"})),
            0,
            I,
            opts(),
        );
        assert_eq!(codes(r), vec!["FIELD_INTEGRITY_EXCEPTION"]);
    }

    #[test]
    fn values_are_stored_in_salesforce_form() {
        let mut org = Org::new("00D");
        let id = org
            .create("Opportunity", &map(json!({"Name": "Deal", "StageName": "Closed Won", "CloseDate": "2024-06-30", "Amount": "1200.5"})), 0, I, opts())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let (object, r) = org.get(&id).unwrap_or_else(|| panic!("opportunity"));
        assert_eq!(r.fields["Amount"], json!(1200.5));
        let won = object.field("IsWon").map(|f| org.value(r, f));
        assert_eq!(won, Some(json!(true)));
        let created = object.field("CreatedDate").map(|f| org.value(r, f));
        assert_eq!(created, Some(json!("1970-01-01T00:00:00.000+0000")));
        assert_eq!(
            codes(org.create(
                "Opportunity",
                &map(json!({"Name": "D", "StageName": "Prospecting", "CloseDate": "soon"})),
                0,
                I,
                opts()
            )),
            vec!["JSON_PARSER_ERROR"]
        );
    }
}
