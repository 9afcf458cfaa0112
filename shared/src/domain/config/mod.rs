//! The sync configuration: which object pairs sync, how each field maps and in which
//! direction, and the contact rules of HubSpot's Salesforce integration settings.
//!
//! It is a TOML file (format documented in `docs/config.md`; `crmsync config example`
//! prints a commented one). [`SyncConfig::from_toml`] reads and validates it in one go
//! and returns every problem at once, each with its key path; only a
//! [`ValidatedConfig`] reaches the merge.

#[macro_use]
mod choice;
mod read;
mod validate;

use std::collections::BTreeMap;

pub use choice::Choice;
pub use validate::{Capabilities, Feature, validate_against_metadata};

use super::Side;

/// A problem in a configuration: where (a dotted key path such as
/// `contacts.fields[2].direction`) and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Every problem found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in the sync configuration:\n{}", .0.len(), format_list(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn format_list(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

choice! {
    /// Which side a field's value comes from, and when.
    pub enum Direction {
        /// On the first sync of a pair Salesforce's value wins; afterwards the most
        /// recent change wins.
        PreferSalesforce = "prefer_salesforce",
        /// Salesforce always overwrites HubSpot; HubSpot edits never reach Salesforce.
        AlwaysSalesforce = "always_salesforce",
        PreferHubSpot = "prefer_hubspot",
        AlwaysHubSpot = "always_hubspot",
        /// The most recent change wins, on the first sync too.
        TwoWay = "two_way",
        /// Mapped for reference only: nothing is written either way.
        None = "none",
    }
}

impl Direction {
    /// Whether a value may flow from `from` to the other side.
    pub fn allows_flow_from(self, from: Side) -> bool {
        match self {
            Direction::AlwaysSalesforce => from == Side::Salesforce,
            Direction::AlwaysHubSpot => from == Side::HubSpot,
            Direction::None => false,
            Direction::PreferSalesforce | Direction::PreferHubSpot | Direction::TwoWay => true,
        }
    }

    /// The side that wins a first-sync disagreement or a tie.
    pub fn preferred(self) -> Side {
        match self {
            Direction::PreferHubSpot | Direction::AlwaysHubSpot => Side::HubSpot,
            _ => Side::Salesforce,
        }
    }
}

choice! {
    /// The Salesforce object a contact is on (and what new HubSpot contacts become).
    pub enum PersonObject {
        Lead = "lead",
        Contact = "contact",
    }
}

impl PersonObject {
    pub fn sobject(self) -> &'static str {
        match self {
            PersonObject::Lead => "Lead",
            PersonObject::Contact => "Contact",
        }
    }
}

choice! {
    /// What a Salesforce lead/contact update does in HubSpot.
    pub enum SalesforceUpdateRule {
        CreateOrUpdate = "create_or_update",
        DoNothing = "do_nothing",
    }
}

choice! {
    /// What a Salesforce lead/contact deletion does in HubSpot. (A HubSpot deletion never
    /// deletes anything in Salesforce.)
    pub enum SalesforceDeleteRule {
        DeleteContact = "delete_contact",
        DoNothing = "do_nothing",
    }
}

choice! {
    /// How companies are matched to accounts before they are linked.
    pub enum CompanyDedupKey {
        Domain = "domain",
        Name = "name",
    }
}

choice! {
    /// Salesforce's State and Country picklists.
    pub enum PicklistMode {
        Disabled = "disabled",
        /// Enabled with Salesforce's standard values.
        Enabled = "enabled",
        /// Enabled and customized: the allowed values come from the org's describe.
        Customized = "customized",
    }
}

choice! {
    /// What HubSpot's free-text state/country values become in Salesforce.
    pub enum HubSpotGeoMode {
        /// Converted to Salesforce's standard values (`CA`, `california` -> `California`).
        MatchSalesforceDefaults = "match_salesforce_defaults",
        /// Sent as typed.
        AsIs = "as_is",
    }
}

choice! {
    /// A special translation between the two sides' values of one mapped field.
    pub enum Transform {
        /// HubSpot deal stage <-> Salesforce opportunity stage, per the pipeline's stage map.
        DealStage = "deal_stage",
        /// HubSpot owner id <-> Salesforce user id, matched by the owner's email.
        Owner = "owner",
        /// A state or province, per the contact state/country settings.
        State = "state",
        /// A country, per the contact state/country settings.
        Country = "country",
    }
}

choice! {
    /// HubSpot engagement types that can become Salesforce tasks.
    pub enum ActivityType {
        Email = "email",
        Meeting = "meeting",
        Call = "call",
        Note = "note",
        Task = "task",
    }
}

choice! {
    /// Operators of the contact inclusion filter (on HubSpot property values).
    pub enum FilterOperator {
        Eq = "eq",
        Neq = "neq",
        In = "in",
        NotIn = "not_in",
        Contains = "contains",
        NotContains = "not_contains",
        HasProperty = "has_property",
        NotHasProperty = "not_has_property",
    }
}

/// Where a mapping writes on the Salesforce side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SalesforceField {
    /// The same field on every Salesforce object of the pair.
    Same(String),
    /// Contacts only: a Lead and a Contact name their fields differently (`State` vs
    /// `MailingState`); a missing one means the mapping does not apply to that object.
    PerObject {
        lead: Option<String>,
        contact: Option<String>,
    },
}

impl SalesforceField {
    /// The field on `sobject` (`Lead`, `Contact`, `Account`...).
    pub fn on(&self, sobject: &str) -> Option<&str> {
        match self {
            SalesforceField::Same(f) => Some(f),
            SalesforceField::PerObject { lead, contact } => match sobject {
                "Lead" => lead.as_deref(),
                "Contact" => contact.as_deref(),
                _ => None,
            },
        }
    }

    pub fn all(&self) -> Vec<(&'static str, &str)> {
        match self {
            SalesforceField::Same(f) => vec![("", f.as_str())],
            SalesforceField::PerObject { lead, contact } => [("Lead", lead), ("Contact", contact)]
                .into_iter()
                .filter_map(|(o, f)| f.as_deref().map(|f| (o, f)))
                .collect(),
        }
    }
}

/// A picklist value map: HubSpot value -> Salesforce value, and back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValueMap {
    pub to_salesforce: BTreeMap<String, String>,
    pub to_hubspot: BTreeMap<String, String>,
}

/// One mapped field of an object pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMapping {
    /// Its position in the file's `fields` array, for key paths in messages.
    pub index: usize,
    pub hubspot: String,
    pub salesforce: SalesforceField,
    pub direction: Direction,
    /// A blank value never overwrites a filled one.
    pub unless_blank: bool,
    /// Values translated through a map (picklists whose values differ).
    pub value_map: Option<ValueMap>,
    pub transform: Option<Transform>,
}

/// An inclusion filter condition on a HubSpot contact property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionCondition {
    pub property: String,
    pub operator: FilterOperator,
    pub values: Vec<String>,
}

/// Which HubSpot records of a pair sync to Salesforce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Inclusion {
    /// No inclusion rule: every record syncs.
    #[default]
    Everything,
    /// Members of this HubSpot list (segment) only.
    List(String),
    /// Contacts whose properties meet every condition.
    Filter(Vec<InclusionCondition>),
}

impl Inclusion {
    /// Whether a contact with these HubSpot property values passes a filter. A list
    /// rule needs list membership, which the caller checks: this answers `None`.
    pub fn admits(&self, properties: &serde_json::Map<String, serde_json::Value>) -> Option<bool> {
        let conditions = match self {
            Inclusion::Everything => return Some(true),
            Inclusion::List(_) => return None,
            Inclusion::Filter(c) => c,
        };
        Some(conditions.iter().all(|c| c.admits(properties)))
    }
}

impl std::fmt::Display for Inclusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Inclusion::Everything => write!(f, "every record"),
            Inclusion::List(id) => write!(f, "the inclusion list {id}"),
            Inclusion::Filter(c) => write!(f, "the inclusion filter ({})", describe_all(c)),
        }
    }
}

fn describe_all(conditions: &[InclusionCondition]) -> String {
    conditions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" and ")
}

impl std::fmt::Display for InclusionCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.property, self.operator)?;
        if !self.values.is_empty() {
            write!(f, " {}", self.values.join(", "))?;
        }
        Ok(())
    }
}

/// A condition on a Salesforce field of one sObject (`Lead` `Status in Open, Working`):
/// `condition.property` is the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesforceCondition {
    pub object: String,
    pub condition: InclusionCondition,
}

/// Which records of a pair sync: the HubSpot rule (a list or a filter on properties)
/// and a filter on Salesforce fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InclusionRules {
    pub hubspot: Inclusion,
    pub salesforce: Vec<SalesforceCondition>,
}

impl InclusionRules {
    /// Whether a Salesforce record of `sobject` with these field values passes the
    /// Salesforce filter (an sObject without conditions always does).
    pub fn admits_salesforce(
        &self,
        sobject: &str,
        row: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        self.salesforce
            .iter()
            .filter(|c| c.object == sobject)
            .all(|c| c.condition.admits(row))
    }

    /// The Salesforce filter on `sobject`, as an admin reads it.
    pub fn describe_salesforce(&self, sobject: &str) -> String {
        let conditions: Vec<InclusionCondition> = self
            .salesforce
            .iter()
            .filter(|c| c.object == sobject)
            .map(|c| c.condition.clone())
            .collect();
        describe_all(&conditions)
    }

    /// The HubSpot properties the rule reads.
    pub fn hubspot_properties(&self) -> Vec<String> {
        match &self.hubspot {
            Inclusion::Filter(c) => c.iter().map(|c| c.property.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// The fields of `sobject` the Salesforce filter reads.
    pub fn salesforce_fields(&self, sobject: &str) -> Vec<String> {
        self.salesforce
            .iter()
            .filter(|c| c.object == sobject)
            .map(|c| c.condition.property.clone())
            .collect()
    }

    /// The HubSpot list whose members sync, when that is the rule.
    pub fn list(&self) -> Option<&str> {
        match &self.hubspot {
            Inclusion::List(id) => Some(id),
            _ => None,
        }
    }
}

impl InclusionCondition {
    fn admits(&self, properties: &serde_json::Map<String, serde_json::Value>) -> bool {
        let value = match properties.get(&self.property) {
            Some(serde_json::Value::String(s)) => s.trim().to_owned(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let lower = value.to_lowercase();
        let any_eq = || self.values.iter().any(|v| v.eq_ignore_ascii_case(&value));
        let any_in = || {
            self.values
                .iter()
                .any(|v| lower.contains(&v.to_lowercase()))
        };
        match self.operator {
            FilterOperator::Eq | FilterOperator::In => any_eq(),
            FilterOperator::Neq | FilterOperator::NotIn => !any_eq(),
            FilterOperator::Contains => any_in(),
            FilterOperator::NotContains => !any_in(),
            FilterOperator::HasProperty => !value.is_empty(),
            FilterOperator::NotHasProperty => value.is_empty(),
        }
    }
}

/// Lifecycle stage from opportunity stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LifecycleRule {
    pub enabled: bool,
    /// Every contact of the same company follows.
    pub propagate_to_company: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateCountryRule {
    pub salesforce_picklists: PicklistMode,
    pub hubspot_values: HubSpotGeoMode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSettings {
    pub enabled: bool,
    pub create_salesforce_as: PersonObject,
    pub on_salesforce_update: SalesforceUpdateRule,
    pub on_salesforce_delete: SalesforceDeleteRule,
    pub inclusion: InclusionRules,
    pub lifecycle_from_opportunities: LifecycleRule,
    pub state_country: StateCountryRule,
    pub fields: Vec<FieldMapping>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanySettings {
    pub enabled: bool,
    pub dedup_key: CompanyDedupKey,
    pub inclusion: InclusionRules,
    pub fields: Vec<FieldMapping>,
}

/// One deal pipeline's stage map, complete in both directions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageMap {
    pub to_salesforce: BTreeMap<String, String>,
    pub to_hubspot: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealSettings {
    pub enabled: bool,
    /// Stage maps by HubSpot pipeline id.
    pub pipelines: BTreeMap<String, StageMap>,
    /// The HubSpot pipeline of deals created from Salesforce opportunities.
    pub default_pipeline: String,
    pub fields: Vec<FieldMapping>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketSettings {
    pub enabled: bool,
    /// The HubSpot ticket pipeline of tickets created from Salesforce cases.
    pub pipeline: String,
    /// Its stage for a new ticket whose case status has no stage mapped.
    pub default_stage: String,
    pub fields: Vec<FieldMapping>,
}

choice! {
    /// Marketing email events that can become Salesforce Tasks.
    pub enum MarketingEmailEvent {
        Sent = "sent",
        Open = "open",
        Click = "click",
    }
}

impl MarketingEmailEvent {
    /// The Email Events API's name of the type.
    pub fn api_name(self) -> &'static str {
        match self {
            MarketingEmailEvent::Sent => "SENT",
            MarketingEmailEvent::Open => "OPEN",
            MarketingEmailEvent::Click => "CLICK",
        }
    }

    pub fn from_api_name(name: &str) -> Option<Self> {
        [Self::Sent, Self::Open, Self::Click]
            .into_iter()
            .find(|k| k.api_name() == name)
    }

    /// As a Task's subject says it.
    pub fn past_tense(self) -> &'static str {
        match self {
            MarketingEmailEvent::Sent => "sent",
            MarketingEmailEvent::Open => "opened",
            MarketingEmailEvent::Click => "clicked",
        }
    }
}

choice! {
    /// What an activity does whose contact (or company, deal) is not synced yet.
    pub enum UnsyncedRelated {
        /// Retried until it is (the status says `waiting_for_related`).
        Wait = "wait",
        /// Skipped with `related_not_synced`; its next change tries again.
        Skip = "skip",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivitySettings {
    pub enabled: bool,
    /// The engagement types that become Salesforce Tasks (default: all five).
    pub types: Vec<ActivityType>,
    pub unsynced_contact: UnsyncedRelated,
    /// Salesforce Tasks become HubSpot tasks too.
    pub salesforce_tasks_to_hubspot: bool,
    /// The HubSpot forms (guids) whose submissions become Tasks.
    pub form_submissions: Vec<String>,
    /// The marketing email events that become Tasks.
    pub marketing_email_events: Vec<MarketingEmailEvent>,
}

/// HubSpot forms whose submissions add the person to a Salesforce campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignSettings {
    pub enabled: bool,
    /// The CampaignMember `Status` a submission gives.
    pub member_status: String,
    pub forms: Vec<CampaignForm>,
}

/// A form that names a Salesforce campaign (HubSpot's form option "Salesforce campaign").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignForm {
    /// The HubSpot form's guid.
    pub form_id: String,
    /// The Salesforce Campaign id (`701...`).
    pub salesforce_campaign: String,
}

impl CampaignSettings {
    /// The campaign a form names.
    pub fn campaign_of(&self, form_id: &str) -> Option<&str> {
        self.forms
            .iter()
            .find(|f| f.form_id == form_id)
            .map(|f| f.salesforce_campaign.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerSettings {
    /// Match HubSpot owners and Salesforce users by email.
    pub enabled: bool,
    /// Explicit HubSpot owner id -> Salesforce user id pairs, for owners whose emails
    /// differ between the CRMs.
    pub overrides: BTreeMap<String, String>,
    /// The Salesforce user a record gets when its HubSpot owner has no match
    /// (`default_salesforce_user`); none: the owner is held back, with the reason.
    pub default_salesforce_user: Option<String>,
    /// The HubSpot owner a record gets when its Salesforce owner has no match
    /// (`default_hubspot_owner`).
    pub default_hubspot_owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomObjectPair {
    /// The name this pair goes by in crmsync (status, explain, logs).
    pub name: String,
    /// HubSpot object type id (`2-1234567`) or fully qualified name (`p_machines`).
    pub hubspot_object: String,
    /// Salesforce custom sObject (`Machine__c`).
    pub salesforce_object: String,
    pub enabled: bool,
    /// The Salesforce external id field that holds the HubSpot record id
    /// (`HubSpot_Machine_Id__c`): creates upsert on it.
    pub hubspot_id_field: String,
    /// The HubSpot property that holds the Salesforce record id (`salesforcemachineid`).
    pub salesforce_id_property: String,
    /// The properties that identify the same record on both sides, if any.
    pub match_on: Option<(String, String)>,
    /// Salesforce reference fields that follow the record's HubSpot associations.
    pub lookups: Vec<CustomLookup>,
    pub fields: Vec<FieldMapping>,
}

/// A custom object's reference field (`Account__c`) to another synced pair
/// (`companies`): it follows the HubSpot association between the two records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomLookup {
    pub salesforce: String,
    pub pair: String,
}

/// The whole sync configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    pub contacts: ContactSettings,
    pub companies: CompanySettings,
    pub deals: DealSettings,
    pub tickets: TicketSettings,
    pub activities: ActivitySettings,
    pub campaigns: CampaignSettings,
    pub owners: OwnerSettings,
    pub custom_objects: Vec<CustomObjectPair>,
}

/// A configuration that passed validation: the only kind the engine runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedConfig(SyncConfig);

impl std::ops::Deref for ValidatedConfig {
    type Target = SyncConfig;
    fn deref(&self) -> &SyncConfig {
        &self.0
    }
}

/// The built-in configuration, used whenever no file is given: HubSpot's own default
/// mappings.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// A commented configuration enabling every object pair, printed by
/// `crmsync config example`.
pub const EXAMPLE_TOML: &str = include_str!("example.toml");

impl SyncConfig {
    /// Reads and validates a TOML configuration against what the engine supports.
    pub fn from_toml(text: &str) -> Result<ValidatedConfig, ConfigErrors> {
        Self::from_toml_with(text, &Capabilities::current())
    }

    pub fn from_toml_with(
        text: &str,
        capabilities: &Capabilities,
    ) -> Result<ValidatedConfig, ConfigErrors> {
        let (config, mut errors) = read::parse(text)?;
        errors.extend(validate::validate(&config, capabilities));
        if errors.is_empty() {
            Ok(ValidatedConfig(config))
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The built-in default configuration.
    pub fn builtin() -> ValidatedConfig {
        // The built-in text is part of the program and a unit test validates it, so a
        // failure here is a bug in this crate, not bad input.
        #[allow(clippy::expect_used)]
        Self::from_toml(DEFAULT_TOML).expect("the built-in default configuration is valid")
    }
}

/// The object pairs of a configuration, by name.
#[derive(Debug, Clone, Copy)]
pub enum Pair<'a> {
    Contacts(&'a ContactSettings),
    Companies(&'a CompanySettings),
    Deals(&'a DealSettings),
    Tickets(&'a TicketSettings),
    Custom(&'a CustomObjectPair),
}

impl<'a> Pair<'a> {
    pub fn name(&self) -> &'a str {
        match self {
            Pair::Contacts(_) => "contacts",
            Pair::Companies(_) => "companies",
            Pair::Deals(_) => "deals",
            Pair::Tickets(_) => "tickets",
            Pair::Custom(c) => &c.name,
        }
    }

    /// The key path of the pair in the TOML file.
    pub fn path(&self, config: &SyncConfig) -> String {
        match self {
            Pair::Custom(c) => {
                let i = config
                    .custom_objects
                    .iter()
                    .position(|o| std::ptr::eq(o, *c))
                    .unwrap_or(0);
                format!("custom_objects[{i}]")
            }
            other => other.name().to_owned(),
        }
    }

    pub fn enabled(&self) -> bool {
        match self {
            Pair::Contacts(c) => c.enabled,
            Pair::Companies(c) => c.enabled,
            Pair::Deals(c) => c.enabled,
            Pair::Tickets(c) => c.enabled,
            Pair::Custom(c) => c.enabled,
        }
    }

    pub fn fields(&self) -> &'a [FieldMapping] {
        match self {
            Pair::Contacts(c) => &c.fields,
            Pair::Companies(c) => &c.fields,
            Pair::Deals(c) => &c.fields,
            Pair::Tickets(c) => &c.fields,
            Pair::Custom(c) => &c.fields,
        }
    }

    /// The HubSpot object type.
    pub fn hubspot_object(&self) -> &'a str {
        match self {
            Pair::Contacts(_) => "contacts",
            Pair::Companies(_) => "companies",
            Pair::Deals(_) => "deals",
            Pair::Tickets(_) => "tickets",
            Pair::Custom(c) => &c.hubspot_object,
        }
    }

    /// The Salesforce objects the pair syncs with.
    pub fn salesforce_objects(&self) -> Vec<&'a str> {
        match self {
            Pair::Contacts(_) => vec!["Lead", "Contact"],
            Pair::Companies(_) => vec!["Account"],
            Pair::Deals(_) => vec!["Opportunity"],
            Pair::Tickets(_) => vec!["Case"],
            Pair::Custom(c) => vec![&c.salesforce_object],
        }
    }
}

impl SyncConfig {
    pub fn pairs(&self) -> Vec<Pair<'_>> {
        let mut pairs = vec![
            Pair::Contacts(&self.contacts),
            Pair::Companies(&self.companies),
            Pair::Deals(&self.deals),
            Pair::Tickets(&self.tickets),
        ];
        pairs.extend(self.custom_objects.iter().map(Pair::Custom));
        pairs
    }

    pub fn pair(&self, name: &str) -> Option<Pair<'_>> {
        self.pairs().into_iter().find(|p| p.name() == name)
    }
}

#[cfg(test)]
mod tests;
