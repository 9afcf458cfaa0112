//! Rules that span several keys: duplicates, complete stage maps, transforms in the
//! right pairs, what the engine supports, and (once the CRMs' metadata is known) that
//! every mapped field exists and has a compatible type.

use std::collections::{BTreeSet, HashMap};

use super::*;
use crate::domain::metadata::ObjectMeta;
use crate::domain::value::FieldType;

/// HubSpot's default deal pipeline (`default`) and its stage ids.
pub const HUBSPOT_DEFAULT_PIPELINE_STAGES: [&str; 7] = [
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];

/// Something a configuration can switch on, which the engine either acts on or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Contacts,
    Companies,
    Deals,
    Tickets,
    Activities,
    Campaigns,
    CustomObjects,
    LifecycleFromOpportunities,
    InclusionList,
    InclusionFilter,
    /// A filter on Salesforce fields (`Lead.Status`).
    SalesforceInclusion,
    StateCountryConversion,
    /// The org's own State/Country picklist values, read from describe.
    CustomizedStateCountryPicklists,
    DeleteContactOnSalesforceDelete,
}

impl Feature {
    /// What the feature is, as an admin reads it in a refusal.
    pub fn describe(self) -> &'static str {
        match self {
            Feature::Contacts => "contact sync",
            Feature::Companies => "company sync",
            Feature::Deals => "deal sync",
            Feature::Tickets => "ticket <-> case sync",
            Feature::Activities => "activity sync (engagements <-> tasks)",
            Feature::Campaigns => "campaign members from form submissions",
            Feature::CustomObjects => "custom object sync",
            Feature::LifecycleFromOpportunities => "lifecycle stages from opportunities",
            Feature::InclusionList => "the inclusion list",
            Feature::InclusionFilter => "the inclusion filter",
            Feature::SalesforceInclusion => "the Salesforce inclusion filter",
            Feature::StateCountryConversion => "state/country conversion",
            Feature::CustomizedStateCountryPicklists => {
                "customized State/Country picklists (the org's own values)"
            }
            Feature::DeleteContactOnSalesforceDelete => "deleting contacts on Salesforce deletion",
        }
    }
}

/// What the engine acts on. A configuration that switches on anything else is refused,
/// never silently ignored.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub supported: Vec<Feature>,
}

impl Capabilities {
    /// Everything this build's pipeline carries out.
    pub fn current() -> Self {
        use Feature::*;
        Capabilities {
            supported: vec![
                Contacts,
                Companies,
                Deals,
                Tickets,
                Activities,
                Campaigns,
                CustomObjects,
                LifecycleFromOpportunities,
                InclusionList,
                InclusionFilter,
                SalesforceInclusion,
                StateCountryConversion,
                CustomizedStateCountryPicklists,
                DeleteContactOnSalesforceDelete,
            ],
        }
    }
}

/// The features a configuration switches on, each with the key path that does it.
fn features_used(c: &SyncConfig) -> Vec<(Feature, String)> {
    let mut used = Vec::new();
    let mut on = |cond: bool, f: Feature, path: &str| {
        if cond {
            used.push((f, path.to_owned()));
        }
    };
    on(c.contacts.enabled, Feature::Contacts, "contacts.enabled");
    on(c.companies.enabled, Feature::Companies, "companies.enabled");
    on(c.deals.enabled, Feature::Deals, "deals.enabled");
    on(c.tickets.enabled, Feature::Tickets, "tickets.enabled");
    on(
        c.activities.enabled,
        Feature::Activities,
        "activities.enabled",
    );
    on(c.campaigns.enabled, Feature::Campaigns, "campaigns.enabled");
    on(
        c.custom_objects.iter().any(|o| o.enabled),
        Feature::CustomObjects,
        "custom_objects",
    );
    on(
        c.contacts.lifecycle_from_opportunities.enabled,
        Feature::LifecycleFromOpportunities,
        "contacts.lifecycle_from_opportunities.enabled",
    );
    for (pair, rules) in [
        ("contacts", &c.contacts.inclusion),
        ("companies", &c.companies.inclusion),
    ] {
        on(
            matches!(rules.hubspot, Inclusion::List(_)),
            Feature::InclusionList,
            &format!("{pair}.inclusion.list_id"),
        );
        on(
            matches!(rules.hubspot, Inclusion::Filter(_)),
            Feature::InclusionFilter,
            &format!("{pair}.inclusion.filters"),
        );
        on(
            !rules.salesforce.is_empty(),
            Feature::SalesforceInclusion,
            &format!("{pair}.salesforce_inclusion.filters"),
        );
    }
    on(
        c.contacts.state_country.hubspot_values == HubSpotGeoMode::MatchSalesforceDefaults,
        Feature::StateCountryConversion,
        "contacts.state_country.hubspot_values",
    );
    on(
        c.contacts.state_country.salesforce_picklists == PicklistMode::Customized,
        Feature::CustomizedStateCountryPicklists,
        "contacts.state_country.salesforce_picklists",
    );
    on(
        c.contacts.on_salesforce_delete == SalesforceDeleteRule::DeleteContact,
        Feature::DeleteContactOnSalesforceDelete,
        "contacts.on_salesforce_delete",
    );
    used
}

pub(super) fn validate(c: &SyncConfig, capabilities: &Capabilities) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (feature, path) in features_used(c) {
        if !capabilities.supported.contains(&feature) {
            errors.push(ConfigError::new(
                path,
                format!(
                    "{} is not implemented by this version of crmsync yet; switch it off",
                    feature.describe()
                ),
            ));
        }
    }
    for pair in c.pairs() {
        check_fields(c, pair, &mut errors);
    }
    check_deals(&c.deals, &mut errors);
    check_custom_objects(c, &mut errors);
    if c.activities.enabled && c.activities.types.is_empty() {
        errors.push(ConfigError::new(
            "activities.types",
            format!(
                "activity sync is enabled but no type is: expected some of {}",
                ActivityType::expected()
            ),
        ));
    }
    if c.campaigns.enabled && !c.contacts.enabled {
        errors.push(ConfigError::new(
            "campaigns.enabled",
            "campaign members are synced contacts, which do not sync: set contacts.enabled = true too",
        ));
    }
    if c.campaigns.enabled && c.campaigns.forms.is_empty() {
        errors.push(ConfigError::new(
            "campaigns.forms",
            "campaigns are on but no form names a campaign: add [[campaigns.forms]] with form_id and salesforce_campaign",
        ));
    }
    if c.activities.enabled && !c.contacts.enabled {
        errors.push(ConfigError::new(
            "activities.enabled",
            "activities hang on synced contacts, which do not sync: set contacts.enabled = true too",
        ));
    }
    let lifecycle = c.contacts.lifecycle_from_opportunities;
    if lifecycle.propagate_to_company && !lifecycle.enabled {
        errors.push(ConfigError::new(
            "contacts.lifecycle_from_opportunities.propagate_to_company",
            "propagates lifecycle stages that are not moved: set enabled = true too, or remove it",
        ));
    }
    if lifecycle.enabled && !c.contacts.enabled {
        errors.push(ConfigError::new(
            "contacts.lifecycle_from_opportunities.enabled",
            "moves the stages of contacts, which do not sync: set contacts.enabled = true too",
        ));
    }
    let uses_owner = c.pairs().iter().any(|p| {
        p.fields()
            .iter()
            .any(|f| f.transform == Some(Transform::Owner))
    });
    if uses_owner && !c.owners.enabled && c.owners.overrides.is_empty() {
        errors.push(ConfigError::new(
            "owners.enabled",
            "a field uses transform = \"owner\" but owner matching is off and no overrides are given",
        ));
    }
    errors
}

fn check_fields(c: &SyncConfig, pair: Pair<'_>, errors: &mut Vec<ConfigError>) {
    let base = pair.path(c);
    let mut hubspot_seen = HashMap::new();
    let mut salesforce_seen = HashMap::new();
    for f in pair.fields() {
        let path = format!("{base}.fields[{}]", f.index);
        if let Some(first) = hubspot_seen.insert(f.hubspot.as_str(), f.index) {
            errors.push(ConfigError::new(
                format!("{path}.hubspot"),
                format!(
                    "\"{}\" is already mapped by {base}.fields[{first}]",
                    f.hubspot
                ),
            ));
        }
        for (object, field) in f.salesforce.all() {
            if let Some(first) = salesforce_seen.insert((object, field), f.index) {
                errors.push(ConfigError::new(
                    format!("{path}.salesforce"),
                    format!("\"{field}\" is already mapped by {base}.fields[{first}]"),
                ));
            }
        }
        if f.transform.is_some() && f.value_map.is_some() {
            errors.push(ConfigError::new(
                format!("{path}.transform"),
                "a field takes either a transform or a value_map, not both",
            ));
        }
        let allowed = match f.transform {
            Some(Transform::DealStage) => matches!(pair, Pair::Deals(_)),
            Some(Transform::State | Transform::Country) => {
                matches!(pair, Pair::Contacts(_) | Pair::Companies(_))
            }
            Some(Transform::Owner) | None => true,
        };
        if !allowed {
            errors.push(ConfigError::new(
                format!("{path}.transform"),
                format!(
                    "transform \"{}\" does not apply to {}",
                    f.transform.map(|t| t.as_str()).unwrap_or_default(),
                    pair.name()
                ),
            ));
        }
    }
}

fn check_deals(d: &DealSettings, errors: &mut Vec<ConfigError>) {
    let stage_field = d
        .fields
        .iter()
        .position(|f| f.transform == Some(Transform::DealStage));
    if d.enabled && stage_field.is_none() {
        errors.push(ConfigError::new(
            "deals.fields",
            "no field maps deal stages (hubspot = \"dealstage\", salesforce = \"StageName\", transform = \"deal_stage\"); Salesforce requires StageName on every opportunity",
        ));
    }
    // Pipeline <-> Opportunity record type: a value map whose every pipeline has a
    // stage map (the stages of a deal made from an Opportunity come from it).
    if let Some(f) = d.fields.iter().find(|f| f.hubspot == "pipeline") {
        let path = format!("deals.fields[{}]", f.index);
        match &f.value_map {
            None => errors.push(ConfigError::new(
                format!("{path}.value_map"),
                "the pipeline maps through a value_map: { <HubSpot pipeline id> = \"<18-character record type id>\" }",
            )),
            Some(map) => {
                let named: BTreeSet<&String> =
                    map.to_salesforce.keys().chain(map.to_hubspot.values()).collect();
                for pipeline in named {
                    if !d.pipelines.contains_key(pipeline) {
                        errors.push(ConfigError::new(
                            format!("{path}.value_map.{pipeline}"),
                            format!("pipeline \"{pipeline}\" has no stage map in deals.pipelines"),
                        ));
                    }
                }
            }
        }
    }
    if stage_field.is_none() {
        return;
    }
    if d.pipelines.is_empty() {
        errors.push(ConfigError::new(
            "deals.pipelines",
            "deal stages are mapped but no pipeline has a stage map",
        ));
    }
    if !d.pipelines.contains_key(&d.default_pipeline) {
        errors.push(ConfigError::new(
            "deals.default_pipeline",
            format!(
                "pipeline \"{}\" has no stage map in deals.pipelines",
                d.default_pipeline
            ),
        ));
    }
    for (id, map) in &d.pipelines {
        let path = format!("deals.pipelines.{id}");
        if id == "default" {
            for stage in HUBSPOT_DEFAULT_PIPELINE_STAGES {
                if !map.to_salesforce.contains_key(stage) {
                    errors.push(ConfigError::new(
                        format!("{path}.to_salesforce"),
                        format!("HubSpot stage \"{stage}\" of the default pipeline has no Salesforce stage"),
                    ));
                }
            }
        }
        // Each direction must cover every stage the other one names.
        let sf_stages: BTreeSet<&String> = map.to_salesforce.values().collect();
        for stage in sf_stages {
            if !map.to_hubspot.contains_key(stage) {
                errors.push(ConfigError::new(
                    format!("{path}.to_hubspot"),
                    format!("Salesforce stage \"{stage}\" has no HubSpot stage"),
                ));
            }
        }
        let hs_stages: BTreeSet<&String> = map.to_hubspot.values().collect();
        for stage in hs_stages {
            if !map.to_salesforce.contains_key(stage) {
                errors.push(ConfigError::new(
                    format!("{path}.to_salesforce"),
                    format!("HubSpot stage \"{stage}\" has no Salesforce stage"),
                ));
            }
        }
    }
}

fn check_custom_objects(c: &SyncConfig, errors: &mut Vec<ConfigError>) {
    let mut names = HashMap::new();
    for (i, o) in c.custom_objects.iter().enumerate() {
        let path = format!("custom_objects[{i}]");
        if ["contacts", "companies", "deals", "tickets", "activities"].contains(&o.name.as_str()) {
            errors.push(ConfigError::new(
                format!("{path}.name"),
                format!("\"{}\" is the name of a standard pair", o.name),
            ));
        }
        if let Some(first) = names.insert(o.name.as_str(), i) {
            errors.push(ConfigError::new(
                format!("{path}.name"),
                format!(
                    "\"{}\" is already the name of custom_objects[{first}]",
                    o.name
                ),
            ));
        }
        if !is_hubspot_object_type(&o.hubspot_object) {
            errors.push(ConfigError::new(
                format!("{path}.hubspot_object"),
                format!(
                    "expected an object type id like \"2-1234567\" or a name like \"p_machines\", got \"{}\"",
                    o.hubspot_object
                ),
            ));
        }
        if !o.salesforce_object.is_empty() && !o.salesforce_object.ends_with("__c") {
            errors.push(ConfigError::new(
                format!("{path}.salesforce_object"),
                format!(
                    "expected a custom object API name ending in __c, got \"{}\"",
                    o.salesforce_object
                ),
            ));
        }
        if !o.hubspot_id_field.is_empty() && !o.hubspot_id_field.ends_with("__c") {
            errors.push(ConfigError::new(
                format!("{path}.hubspot_id_field"),
                format!(
                    "expected a custom External ID field ending in __c, got \"{}\"",
                    o.hubspot_id_field
                ),
            ));
        }
        for (k, l) in o.lookups.iter().enumerate() {
            let at = format!("{path}.lookups[{k}].pair");
            match c.pair(&l.pair) {
                None => errors.push(ConfigError::new(
                    at,
                    format!("no object pair \"{}\" in the configuration", l.pair),
                )),
                Some(t) if !t.enabled() => errors.push(ConfigError::new(
                    at,
                    format!(
                        "pair \"{}\" is not enabled, so nothing could be linked",
                        l.pair
                    ),
                )),
                Some(t) if t.salesforce_objects().len() != 1 => errors.push(ConfigError::new(
                    at,
                    format!(
                        "a lookup points at one sObject; \"{}\" syncs with {}",
                        l.pair,
                        t.salesforce_objects().join(" and ")
                    ),
                )),
                Some(t) if t.name() == o.name => {
                    errors.push(ConfigError::new(at, "a pair cannot look itself up"))
                }
                Some(_) => {}
            }
        }
    }
}

fn is_hubspot_object_type(s: &str) -> bool {
    let id = s
        .split_once('-')
        .is_some_and(|(a, b)| is_digits(a) && is_digits(b));
    let name = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.starts_with(|c: char| c.is_ascii_lowercase());
    id || name
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Checks a configuration against what the CRMs report about their fields: every
/// mapped field exists, types are compatible (text never to number), value maps and
/// stage maps name real picklist values, and no direction can only ever write a field
/// the integration may not write.
///
/// `hubspot` is keyed by HubSpot object type (`contacts`, `p_machines`), `salesforce`
/// by sObject (`Lead`, `Account`). An object missing from the metadata is not checked.
pub fn validate_against_metadata(
    c: &SyncConfig,
    hubspot: &HashMap<String, ObjectMeta>,
    salesforce: &HashMap<String, ObjectMeta>,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for pair in c.pairs().into_iter().filter(|p| p.enabled()) {
        let base = pair.path(c);
        let hs_meta = hubspot.get(pair.hubspot_object());
        for f in pair.fields() {
            let path = format!("{base}.fields[{}]", f.index);
            let hs_field = match hs_meta {
                Some(meta) => match meta.get(&f.hubspot) {
                    Some(m) => Some(m),
                    None => {
                        errors.push(ConfigError::new(
                            format!("{path}.hubspot"),
                            format!(
                                "HubSpot {} have no property \"{}\"",
                                pair.hubspot_object(),
                                f.hubspot
                            ),
                        ));
                        None
                    }
                },
                None => None,
            };
            for sobject in pair.salesforce_objects() {
                let Some(field) = f.salesforce.on(sobject) else {
                    continue;
                };
                let Some(meta) = salesforce.get(sobject) else {
                    continue;
                };
                let Some(sf_field) = meta.get(field) else {
                    errors.push(ConfigError::new(
                        format!("{path}.salesforce"),
                        format!("Salesforce {sobject} has no field \"{field}\" (INVALID_FIELD)"),
                    ));
                    continue;
                };
                if let Some(hs_field) = hs_field {
                    let translated = f.value_map.is_some() || f.transform.is_some();
                    if !translated && hs_field.ty.family() != sf_field.ty.family() {
                        errors.push(ConfigError::new(
                            path.clone(),
                            format!(
                                "a {} property mapped to a {} field ({sobject}.{field}): expected matching types",
                                hs_field.ty.as_str(),
                                sf_field.ty.as_str()
                            ),
                        ));
                    }
                }
                let unwritable = sf_field.read_only || sf_field.formula;
                if unwritable && f.direction == Direction::AlwaysHubSpot {
                    errors.push(ConfigError::new(
                        format!("{path}.direction"),
                        format!(
                            "{sobject}.{field} is {} and can never be written; always_hubspot would do nothing",
                            if sf_field.formula { "a formula field" } else { "read-only" }
                        ),
                    ));
                }
                // A ticket's status and priority: every value on either side has its
                // counterpart, or a ticket or case would meet one it cannot carry.
                if let (Some(map), "tickets") = (&f.value_map, pair.name()) {
                    let options = hs_field.and_then(|h| h.picklist.as_ref());
                    for o in options.into_iter().flatten() {
                        if !map.to_salesforce.contains_key(o) {
                            errors.push(ConfigError::new(
                                format!("{path}.value_map"),
                                format!(
                                    "HubSpot tickets {} \"{o}\" has no Salesforce value",
                                    f.hubspot
                                ),
                            ));
                        }
                    }
                    for v in sf_field.picklist.iter().flatten() {
                        if !map.to_hubspot.contains_key(v) {
                            errors.push(ConfigError::new(
                                format!("{path}.value_map"),
                                format!(
                                    "Salesforce {sobject}.{field} \"{v}\" has no HubSpot value"
                                ),
                            ));
                        }
                    }
                }
                if let Some(map) = &f.value_map {
                    for (h, s) in &map.to_salesforce {
                        if sf_field.refuses_value(s) {
                            errors.push(ConfigError::new(
                                format!("{path}.value_map.{h}"),
                                format!("\"{s}\" is not a value of the restricted picklist {sobject}.{field}"),
                            ));
                        }
                    }
                }
                let stages = sf_field.picklist.as_ref().filter(|_| {
                    f.transform == Some(Transform::DealStage) && sf_field.ty == FieldType::Enum
                });
                if let Some(values) = stages {
                    check_sf_stages(&c.deals, values, &mut errors);
                }
            }
        }
    }
    errors
}

fn check_sf_stages(d: &DealSettings, stages: &[String], errors: &mut Vec<ConfigError>) {
    for (id, map) in &d.pipelines {
        for stage in stages {
            if !map.to_hubspot.contains_key(stage) {
                errors.push(ConfigError::new(
                    format!("deals.pipelines.{id}.to_hubspot"),
                    format!("Salesforce stage \"{stage}\" has no HubSpot stage"),
                ));
            }
        }
        for (h, s) in &map.to_salesforce {
            if !stages.contains(s) {
                errors.push(ConfigError::new(
                    format!("deals.pipelines.{id}.to_salesforce.{h}"),
                    format!("\"{s}\" is not a Salesforce opportunity stage"),
                ));
            }
        }
    }
}
