//! Reading the TOML text into a [`SyncConfig`], collecting every problem with its key
//! path instead of stopping at the first (which is all serde's derive can do).

use std::collections::BTreeMap;

use toml::{Table, Value};

use super::*;

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(path, message));
    }
}

/// One TOML table being read: remembers which keys were asked for, so that whatever is
/// left is reported as unknown.
struct Node<'a> {
    path: String,
    table: &'a Table,
    asked: Vec<&'static str>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> Node<'a> {
    fn new(path: String, table: &'a Table) -> Self {
        Node {
            path,
            table,
            asked: Vec::new(),
        }
    }

    fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.asked.push(key);
        self.table.get(key)
    }

    fn bool(&mut self, key: &'static str, default: bool, p: &mut Problems) -> bool {
        match self.get(key) {
            None => default,
            Some(Value::Boolean(b)) => *b,
            Some(other) => {
                p.push(
                    self.at(key),
                    format!("expected true or false, got {}", type_name(other)),
                );
                default
            }
        }
    }

    fn string(&mut self, key: &'static str, p: &mut Problems) -> Option<String> {
        match self.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::String(_) => {
                p.push(self.at(key), "expected a non-empty string");
                None
            }
            other => {
                p.push(
                    self.at(key),
                    format!("expected a string, got {}", type_name(other)),
                );
                None
            }
        }
    }

    fn required_string(
        &mut self,
        key: &'static str,
        what: &str,
        p: &mut Problems,
    ) -> Option<String> {
        if self.table.contains_key(key) {
            self.string(key, p)
        } else {
            self.asked.push(key);
            p.push(self.at(key), format!("missing: expected {what}"));
            None
        }
    }

    fn choice<T: Choice>(&mut self, key: &'static str, default: T, p: &mut Problems) -> T {
        self.optional_choice(key, p).unwrap_or(default)
    }

    /// A named value, `None` when absent or not one of the names (reported).
    fn optional_choice<T: Choice>(&mut self, key: &'static str, p: &mut Problems) -> Option<T> {
        let found = match self.get(key)? {
            Value::String(s) => T::from_name(s.trim()).ok_or_else(|| format!("\"{s}\"")),
            other => Err(type_name(other).to_owned()),
        };
        found
            .map_err(|got| {
                p.push(
                    self.at(key),
                    format!("expected one of {}, got {got}", T::expected()),
                )
            })
            .ok()
    }

    fn table(&mut self, key: &'static str, p: &mut Problems) -> Option<Node<'a>> {
        match self.get(key)? {
            Value::Table(t) => Some(Node::new(self.at(key), t)),
            other => {
                p.push(
                    self.at(key),
                    format!("expected a table, got {}", type_name(other)),
                );
                None
            }
        }
    }

    /// An array of tables (`[[contacts.fields]]`).
    fn tables(&mut self, key: &'static str, p: &mut Problems) -> Vec<Node<'a>> {
        let path = self.at(key);
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::Table(t) => Some(Node::new(format!("{path}[{i}]"), t)),
                    other => {
                        p.push(
                            format!("{path}[{i}]"),
                            format!("expected a table, got {}", type_name(other)),
                        );
                        None
                    }
                })
                .collect(),
            Some(other) => {
                p.push(
                    path,
                    format!("expected an array of tables, got {}", type_name(other)),
                );
                Vec::new()
            }
        }
    }

    /// A table of string values (`value_map = { NEW = "Open" }`).
    fn string_map(
        &mut self,
        key: &'static str,
        p: &mut Problems,
    ) -> Option<BTreeMap<String, String>> {
        let node = self.table(key, p)?;
        let mut map = BTreeMap::new();
        for (k, v) in node.table {
            match v {
                Value::String(s) => {
                    map.insert(k.trim().to_owned(), s.trim().to_owned());
                }
                other => p.push(
                    join(&node.path, k),
                    format!("expected a string, got {}", type_name(other)),
                ),
            }
        }
        // Every key of a map is data, none is unknown: `node` is not finished.
        Some(map)
    }

    fn string_list(&mut self, key: &'static str, p: &mut Problems) -> Option<Vec<String>> {
        let path = self.at(key);
        match self.get(key)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| match v {
                        Value::String(s) => Some(s.trim().to_owned()),
                        other => {
                            p.push(
                                format!("{path}[{i}]"),
                                format!("expected a string, got {}", type_name(other)),
                            );
                            None
                        }
                    })
                    .collect(),
            ),
            other => {
                p.push(
                    path,
                    format!("expected an array of strings, got {}", type_name(other)),
                );
                None
            }
        }
    }

    /// Reports every key nobody asked for.
    fn finish(self, p: &mut Problems) {
        for key in self.table.keys() {
            if !self.asked.contains(&key.as_str()) {
                let mut known = self.asked.clone();
                known.sort_unstable();
                known.dedup();
                p.push(
                    join(&self.path, key),
                    format!("unknown key; expected one of: {}", known.join(", ")),
                );
            }
        }
    }
}

/// Parses the TOML text into a configuration and the problems of shape found in it
/// (unknown keys, wrong types, unknown names); a part with a problem is left out, so
/// the cross-key rules of `validate` can still run on the rest. Only text that is not
/// TOML at all is an error here.
pub(super) fn parse(text: &str) -> Result<(SyncConfig, Vec<ConfigError>), ConfigErrors> {
    let table: Table = toml::from_str(text).map_err(|e| {
        let span = e.span().map(|s| line_of(text, s.start));
        let path = span
            .map(|l| format!("line {l}"))
            .unwrap_or_else(|| "(file)".into());
        ConfigErrors(vec![ConfigError::new(
            path,
            format!("not valid TOML: {}", e.message()),
        )])
    })?;
    let mut p = Problems::default();
    let mut root = Node::new(String::new(), &table);
    let config = read_root(&mut root, &mut p);
    root.finish(&mut p);
    Ok((config, p.0))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn read_root(root: &mut Node<'_>, p: &mut Problems) -> SyncConfig {
    // Pausing is run-time state now (`crmsync pause`), not a setting a restart reads.
    if root.get("paused").is_some() {
        p.push(
            root.at("paused"),
            "pausing is not a configuration setting: run `crmsync pause` and `crmsync resume` (remove this key)",
        );
    }
    let contacts = section(root, "contacts", p, read_contacts);
    let companies = section(root, "companies", p, read_companies);
    let deals = section(root, "deals", p, read_deals);
    let tickets = section(root, "tickets", p, |n, p| TicketSettings {
        enabled: n.bool("enabled", false, p),
        pipeline: n.string("pipeline", p).unwrap_or_else(|| "0".into()),
        default_stage: n.string("default_stage", p).unwrap_or_else(|| "1".into()),
        fields: read_fields(n, false, p),
    });
    let activities = section(root, "activities", p, read_activities);
    let campaigns = section(root, "campaigns", p, read_campaigns);
    let owners = section(root, "owners", p, read_owners);
    let custom_objects = root
        .tables("custom_objects", p)
        .into_iter()
        .map(|mut n| {
            let pair = read_custom(&mut n, p);
            n.finish(p);
            pair
        })
        .collect();
    SyncConfig {
        contacts,
        companies,
        deals,
        tickets,
        activities,
        campaigns,
        owners,
        custom_objects,
    }
}

/// Reads an optional section; an absent one reads as an empty table (all defaults).
fn section<T>(
    root: &mut Node<'_>,
    key: &'static str,
    p: &mut Problems,
    read: impl FnOnce(&mut Node<'_>, &mut Problems) -> T,
) -> T {
    let empty = Table::new();
    let mut node = root
        .table(key, p)
        .unwrap_or_else(|| Node::new(key.to_owned(), &empty));
    let value = read(&mut node, p);
    node.finish(p);
    value
}

fn read_contacts(n: &mut Node<'_>, p: &mut Problems) -> ContactSettings {
    let enabled = n.bool("enabled", true, p);
    let create_salesforce_as = n.choice("create_salesforce_as", PersonObject::Lead, p);
    let on_salesforce_update = n.choice(
        "on_salesforce_update",
        SalesforceUpdateRule::CreateOrUpdate,
        p,
    );
    let on_salesforce_delete = n.choice("on_salesforce_delete", SalesforceDeleteRule::DoNothing, p);
    let inclusion = read_inclusion(
        n,
        "a HubSpot contact property name",
        &["Lead", "Contact"],
        p,
    );
    let lifecycle_from_opportunities = match n.table("lifecycle_from_opportunities", p) {
        Some(mut t) => {
            let rule = LifecycleRule {
                enabled: t.bool("enabled", false, p),
                propagate_to_company: t.bool("propagate_to_company", false, p),
            };
            t.finish(p);
            rule
        }
        None => LifecycleRule::default(),
    };
    let default_geo = StateCountryRule {
        salesforce_picklists: PicklistMode::Disabled,
        hubspot_values: HubSpotGeoMode::AsIs,
    };
    let state_country = match n.table("state_country", p) {
        Some(mut t) => {
            let rule = StateCountryRule {
                salesforce_picklists: t.choice(
                    "salesforce_picklists",
                    default_geo.salesforce_picklists,
                    p,
                ),
                hubspot_values: t.choice("hubspot_values", default_geo.hubspot_values, p),
            };
            t.finish(p);
            rule
        }
        None => default_geo,
    };
    ContactSettings {
        enabled,
        create_salesforce_as,
        on_salesforce_update,
        on_salesforce_delete,
        inclusion,
        lifecycle_from_opportunities,
        state_country,
        fields: read_fields(n, true, p),
    }
}

/// `[X.inclusion]` (the HubSpot rule: a list or filters on `what` properties) and
/// `[X.salesforce_inclusion]` (filters on the fields of `sobjects`).
fn read_inclusion(
    n: &mut Node<'_>,
    what: &'static str,
    sobjects: &[&str],
    p: &mut Problems,
) -> InclusionRules {
    InclusionRules {
        hubspot: read_hubspot_inclusion(n, what, p),
        salesforce: read_salesforce_inclusion(n, sobjects, p),
    }
}

fn read_hubspot_inclusion(n: &mut Node<'_>, what: &'static str, p: &mut Problems) -> Inclusion {
    let Some(mut t) = n.table("inclusion", p) else {
        return Inclusion::Everything;
    };
    let list = t.string("list_id", p);
    let conditions: Vec<InclusionCondition> = t
        .tables("filters", p)
        .into_iter()
        .filter_map(|mut c| {
            let property = c.required_string("property", what, p);
            let condition = read_condition(&mut c, property, p);
            c.finish(p);
            condition
        })
        .collect();
    let path = t.path.clone();
    t.finish(p);
    match (list, conditions.is_empty()) {
        (Some(_), false) => {
            p.push(path, "give either list_id or filters, not both");
            Inclusion::Everything
        }
        (Some(id), true) => Inclusion::List(id),
        (None, false) => Inclusion::Filter(conditions),
        (None, true) => Inclusion::Everything,
    }
}

fn read_salesforce_inclusion(
    n: &mut Node<'_>,
    sobjects: &[&str],
    p: &mut Problems,
) -> Vec<SalesforceCondition> {
    let Some(mut t) = n.table("salesforce_inclusion", p) else {
        return Vec::new();
    };
    let conditions = t
        .tables("filters", p)
        .into_iter()
        .filter_map(|mut c| {
            let object = c.required_string("object", "the sObject the field is on", p);
            if let Some(o) = &object
                && !sobjects.contains(&o.as_str())
            {
                p.push(
                    c.at("object"),
                    format!(
                        "\"{o}\" is not an sObject of this pair (one of: {})",
                        sobjects.join(", ")
                    ),
                );
            }
            let field = c.required_string("field", "a Salesforce field name", p);
            let condition = read_condition(&mut c, field, p);
            c.finish(p);
            Some(SalesforceCondition {
                object: object?,
                condition: condition?,
            })
        })
        .collect();
    t.finish(p);
    conditions
}

/// A filter's operator and values, on the property (or field) already read.
fn read_condition(
    c: &mut Node<'_>,
    property: Option<String>,
    p: &mut Problems,
) -> Option<InclusionCondition> {
    let operator = c.choice("operator", FilterOperator::Eq, p);
    let values = c.string_list("values", p).unwrap_or_default();
    let needs_values = !matches!(
        operator,
        FilterOperator::HasProperty | FilterOperator::NotHasProperty
    );
    if needs_values && values.is_empty() {
        p.push(
            c.at("values"),
            format!("operator \"{operator}\" needs at least one value"),
        );
    }
    Some(InclusionCondition {
        property: property?,
        operator,
        values,
    })
}

fn read_companies(n: &mut Node<'_>, p: &mut Problems) -> CompanySettings {
    CompanySettings {
        enabled: n.bool("enabled", true, p),
        dedup_key: n.choice("dedup_key", CompanyDedupKey::Domain, p),
        inclusion: read_inclusion(n, "a HubSpot company property name", &["Account"], p),
        fields: read_fields(n, false, p),
    }
}

fn read_deals(n: &mut Node<'_>, p: &mut Problems) -> DealSettings {
    let enabled = n.bool("enabled", true, p);
    let mut pipelines = BTreeMap::new();
    if let Some(t) = n.table("pipelines", p) {
        let ids: Vec<String> = t.table.keys().cloned().collect();
        for id in ids {
            let path = join(&t.path, &id);
            match t.table.get(&id) {
                Some(Value::Table(pt)) => {
                    let mut node = Node::new(path, pt);
                    let map = StageMap {
                        to_salesforce: node.string_map("to_salesforce", p).unwrap_or_default(),
                        to_hubspot: node.string_map("to_hubspot", p).unwrap_or_default(),
                    };
                    node.finish(p);
                    pipelines.insert(id, map);
                }
                Some(other) => p.push(path, format!("expected a table, got {}", type_name(other))),
                None => {}
            }
        }
        // Every key of `pipelines` is a pipeline id: `t` is not finished.
    }
    DealSettings {
        enabled,
        pipelines,
        default_pipeline: n
            .string("default_pipeline", p)
            .unwrap_or_else(|| "default".into()),
        fields: read_fields(n, false, p),
    }
}

fn read_activities(n: &mut Node<'_>, p: &mut Problems) -> ActivitySettings {
    let enabled = n.bool("enabled", false, p);
    let unsynced_contact = n.choice("unsynced_contact", UnsyncedRelated::Wait, p);
    let salesforce_tasks_to_hubspot = n.bool("salesforce_tasks_to_hubspot", false, p);
    let form_submissions = n.string_list("form_submissions", p).unwrap_or_default();
    let events_path = n.at("marketing_email_events");
    let marketing_email_events = n
        .string_list("marketing_email_events", p)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let e = MarketingEmailEvent::from_name(&name);
            if e.is_none() {
                p.push(
                    format!("{events_path}[{i}]"),
                    format!(
                        "expected one of {}, got \"{name}\"",
                        MarketingEmailEvent::expected()
                    ),
                );
            }
            e
        })
        .collect();
    let path = n.at("types");
    let all = ["email", "meeting", "call", "note", "task"].map(str::to_owned);
    let types = n
        .string_list("types", p)
        .unwrap_or_else(|| all.to_vec())
        .into_iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let t = ActivityType::from_name(&name);
            if t.is_none() {
                p.push(
                    format!("{path}[{i}]"),
                    format!(
                        "expected one of {}, got \"{name}\"",
                        ActivityType::expected()
                    ),
                );
            }
            t
        })
        .collect();
    ActivitySettings {
        enabled,
        types,
        unsynced_contact,
        salesforce_tasks_to_hubspot,
        form_submissions,
        marketing_email_events,
    }
}

fn read_campaigns(n: &mut Node<'_>, p: &mut Problems) -> CampaignSettings {
    let enabled = n.bool("enabled", false, p);
    let member_status = n
        .string("member_status", p)
        .unwrap_or_else(|| "Responded".into());
    let forms = n
        .tables("forms", p)
        .into_iter()
        .filter_map(|mut f| {
            let form_id = f.required_string("form_id", "a HubSpot form's guid", p);
            let campaign = f.required_string(
                "salesforce_campaign",
                "a Salesforce Campaign id (701...)",
                p,
            );
            if let Some(c) = &campaign {
                let ok = (c.len() == 15 || c.len() == 18)
                    && c.starts_with("701")
                    && c.chars().all(|x| x.is_ascii_alphanumeric());
                if !ok {
                    p.push(
                        f.at("salesforce_campaign"),
                        format!("\"{c}\" is not a Salesforce Campaign id (15 or 18 characters, starting 701)"),
                    );
                }
            }
            f.finish(p);
            Some(CampaignForm {
                form_id: form_id?,
                salesforce_campaign: campaign?,
            })
        })
        .collect();
    CampaignSettings {
        enabled,
        member_status,
        forms,
    }
}

fn read_owners(n: &mut Node<'_>, p: &mut Problems) -> OwnerSettings {
    let default_salesforce_user = n.string("default_salesforce_user", p).filter(|id| {
        let user = id.len() == 15 || id.len() == 18;
        let ok = user && id.starts_with("005") && id.chars().all(|c| c.is_ascii_alphanumeric());
        if !ok {
            p.push(
                n.at("default_salesforce_user"),
                format!(
                    "expected a Salesforce user id (005..., 15 or 18 characters), got \"{id}\""
                ),
            );
        }
        ok
    });
    let default_hubspot_owner = n.string("default_hubspot_owner", p).filter(|id| {
        let ok = id.chars().all(|c| c.is_ascii_digit());
        if !ok {
            p.push(
                n.at("default_hubspot_owner"),
                format!("expected a HubSpot owner id (digits), got \"{id}\""),
            );
        }
        ok
    });
    OwnerSettings {
        enabled: n.bool("enabled", true, p),
        overrides: n.string_map("overrides", p).unwrap_or_default(),
        default_salesforce_user,
        default_hubspot_owner,
    }
}

fn read_custom(n: &mut Node<'_>, p: &mut Problems) -> CustomObjectPair {
    let name = n
        .required_string("name", "a name for this pair", p)
        .unwrap_or_default();
    let hubspot_object = n
        .required_string(
            "hubspot_object",
            "a HubSpot object type id (2-1234567) or name (p_machines)",
            p,
        )
        .unwrap_or_default();
    let salesforce_object = n
        .required_string(
            "salesforce_object",
            "a Salesforce custom object (Machine__c)",
            p,
        )
        .unwrap_or_default();
    let enabled = n.bool("enabled", true, p);
    let hubspot_id_field = n
        .required_string(
            "hubspot_id_field",
            "the Salesforce external id field that holds the HubSpot id (HubSpot_Machine_Id__c)",
            p,
        )
        .unwrap_or_default();
    let salesforce_id_property = n
        .required_string(
            "salesforce_id_property",
            "the HubSpot property that holds the Salesforce id (salesforcemachineid)",
            p,
        )
        .unwrap_or_default();
    let lookups = n
        .tables("lookups", p)
        .into_iter()
        .filter_map(|mut t| {
            let salesforce = t.required_string(
                "salesforce",
                "the Salesforce reference field (Account__c)",
                p,
            );
            let pair = t.required_string("pair", "the pair it points into (companies)", p);
            t.finish(p);
            Some(CustomLookup {
                salesforce: salesforce?,
                pair: pair?,
            })
        })
        .collect();
    let match_on = n.table("match_on", p).and_then(|mut t| {
        let hs = t.required_string(
            "hubspot",
            "the HubSpot property that identifies a record",
            p,
        );
        let sf = t.required_string(
            "salesforce",
            "the Salesforce field that identifies a record",
            p,
        );
        t.finish(p);
        Some((hs?, sf?))
    });
    CustomObjectPair {
        name,
        hubspot_object,
        salesforce_object,
        enabled,
        hubspot_id_field,
        salesforce_id_property,
        match_on,
        lookups,
        fields: read_fields(n, false, p),
    }
}

fn read_fields(n: &mut Node<'_>, per_object_allowed: bool, p: &mut Problems) -> Vec<FieldMapping> {
    n.tables("fields", p)
        .into_iter()
        .enumerate()
        .filter_map(|(index, mut f)| {
            let m = read_field(&mut f, index, per_object_allowed, p);
            f.finish(p);
            m
        })
        .collect()
}

fn read_field(
    f: &mut Node<'_>,
    index: usize,
    per_object_allowed: bool,
    p: &mut Problems,
) -> Option<FieldMapping> {
    let hubspot = f.required_string("hubspot", "a HubSpot property name", p);
    let salesforce = match f.get("salesforce") {
        None => {
            p.push(
                f.at("salesforce"),
                "missing: expected a Salesforce field name",
            );
            None
        }
        Some(Value::String(s)) if !s.trim().is_empty() => {
            Some(SalesforceField::Same(s.trim().to_owned()))
        }
        Some(Value::Table(_)) if per_object_allowed => {
            let mut t = f.table("salesforce", p)?;
            let lead = t.string("lead", p);
            let contact = t.string("contact", p);
            if lead.is_none() && contact.is_none() {
                p.push(t.path.clone(), "expected a field for lead, contact or both");
            }
            t.finish(p);
            Some(SalesforceField::PerObject { lead, contact })
        }
        Some(Value::Table(_)) => {
            p.push(
                f.at("salesforce"),
                "a field per Salesforce object ({ lead = ..., contact = ... }) is for contacts only; expected a field name",
            );
            None
        }
        Some(other) => {
            p.push(
                f.at("salesforce"),
                format!("expected a Salesforce field name, got {}", type_name(other)),
            );
            None
        }
    };
    let direction = f.choice("direction", Direction::PreferSalesforce, p);
    let unless_blank = f.bool("unless_blank", false, p);
    let to_salesforce = f.string_map("value_map", p);
    let to_hubspot = f.string_map("value_map_to_hubspot", p);
    let value_map = match (to_salesforce, to_hubspot) {
        (None, None) => None,
        (to_sf, to_hs) => {
            let to_salesforce = to_sf.unwrap_or_default();
            // Without an explicit reverse map, the forward map read backwards; that only
            // works when no two HubSpot values share a Salesforce value.
            let to_hubspot = to_hs.unwrap_or_else(|| {
                let mut back = BTreeMap::new();
                for (h, s) in &to_salesforce {
                    let previous = back.insert(s.clone(), h.clone());
                    if let (Some(first), true) = (previous, direction.allows_flow_from(Side::Salesforce)) {
                        p.push(
                            f.at("value_map"),
                            format!(
                                "\"{first}\" and \"{h}\" both map to \"{s}\", so \"{s}\" cannot be mapped back; add value_map_to_hubspot"
                            ),
                        );
                    }
                }
                back
            });
            Some(ValueMap {
                to_salesforce,
                to_hubspot,
            })
        }
    };
    let transform = f.optional_choice("transform", p);
    Some(FieldMapping {
        index,
        hubspot: hubspot?,
        salesforce: salesforce?,
        direction,
        unless_blank,
        value_map,
        transform,
    })
}
