//! Object pairs as data: which HubSpot object syncs with which Salesforce sObject(s),
//! how unlinked records find each other, where each side keeps the other's id, and
//! which lookups follow the pair. The pipeline runs one flow over these; what is truly
//! special to a pair is a small hook of the pipeline's, not a field here.

use serde_json::{Map, Value};

use super::config::{CompanyDedupKey, InclusionRules, PersonObject, SyncConfig};
use super::dedup::{company_name_key, domain_key, email_key};

/// The dependency rank of a pair: pairs sync in this order within a batch, so that a
/// lookup finds the record it points at linked already (companies before the contacts
/// and deals on them).
pub type Rank = u8;

/// How a dedup key is normalized before two records are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Lower-cased, trimmed email address.
    Email,
    /// A website's registrable host (`https://www.acme.com/` is `acme.com`).
    Domain,
    /// A company name without legal suffixes and punctuation.
    Name,
    /// The value as is (trimmed): serial numbers, external ids.
    Exact,
}

impl KeyKind {
    pub fn normalize(self, raw: &str) -> Option<String> {
        match self {
            KeyKind::Email => email_key(raw),
            KeyKind::Domain => domain_key(raw),
            KeyKind::Name => company_name_key(raw),
            KeyKind::Exact => Some(raw.trim().to_owned()).filter(|s| !s.is_empty()),
        }
    }

    /// The reason an unlinked record without the key is skipped.
    pub fn missing_code(self) -> &'static str {
        match self {
            KeyKind::Email => "no_email",
            KeyKind::Domain => "no_domain",
            KeyKind::Name => "no_name",
            KeyKind::Exact => "no_match_key",
        }
    }
}

/// The values that say two unlinked records are the same thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchKey {
    pub hubspot: String,
    pub salesforce: String,
    pub kind: KeyKind,
    /// HubSpot enforces the property unique, so records are read by it (`idProperty`)
    /// and created by upserting on it, never through the lagging search index.
    pub hubspot_unique: bool,
}

impl MatchKey {
    pub fn of_hubspot(&self, properties: &Map<String, Value>) -> Option<String> {
        text(properties, &self.hubspot).and_then(|v| self.kind.normalize(v))
    }

    pub fn of_salesforce(&self, row: &Map<String, Value>) -> Option<String> {
        text(row, &self.salesforce).and_then(|v| self.kind.normalize(v))
    }

    /// What an unlinked record without the key is told.
    pub fn missing_message(&self, pair: &str) -> String {
        match self.kind {
            KeyKind::Email => "a contact without an email address does not sync".to_owned(),
            KeyKind::Domain => {
                "a company without a domain (website) does not sync: it could not be deduplicated"
                    .to_owned()
            }
            KeyKind::Name => "a company without a name does not sync".to_owned(),
            KeyKind::Exact => format!(
                "a {pair} record without {} / {} does not sync: it could not be matched",
                self.hubspot, self.salesforce
            ),
        }
    }
}

/// A Salesforce reference field that follows a HubSpot association: `Contact.AccountId`
/// and the contact's company, `Opportunity.AccountId` and the deal's company.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The reference field.
    pub field: String,
    /// The sObjects of the pair that have it (a Lead has no `AccountId`).
    pub on: Vec<String>,
    /// The pair the field points into.
    pub target: String,
    /// That pair's HubSpot object type (the association's other end).
    pub target_hubspot: String,
    /// That pair's Salesforce object.
    pub target_sobject: String,
}

/// A junction sObject that follows a HubSpot association in both directions:
/// `OpportunityContactRole` and the deal's contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Junction {
    pub sobject: String,
    /// The field that points at this pair's record (`OpportunityId`).
    pub parent_field: String,
    /// The field that points at the other pair's record (`ContactId`).
    pub child_field: String,
    pub target: String,
    pub target_hubspot: String,
    /// The only target sObject a junction row can point at (`Contact`, never `Lead`).
    pub target_sobject: String,
}

/// One object pair, as the flow runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairSpec {
    pub name: String,
    pub rank: Rank,
    pub hubspot_object: String,
    /// The sObjects the pair syncs with (contacts: `Contact` and `Lead`).
    pub sobjects: Vec<String>,
    /// What a record created from HubSpot becomes.
    pub create_as: String,
    /// The Salesforce external id field that holds the HubSpot id: creates upsert on
    /// it, so a retry after a crash finds its record instead of making a second.
    pub hubspot_id_field: String,
    /// Per sObject, the HubSpot property that holds the Salesforce id.
    pub salesforce_id_properties: Vec<(String, String)>,
    /// The HubSpot property that says which sObject the record is on, where a pair
    /// has several (contacts: `LEAD` or `CONTACT`).
    pub kind_property: Option<String>,
    /// HubSpot's last-modified property of the object type.
    pub hubspot_modified: String,
    pub match_key: Option<MatchKey>,
    pub lookups: Vec<Lookup>,
    pub junctions: Vec<Junction>,
    /// Which records sync (an inclusion list or filter, a Salesforce filter).
    pub inclusion: InclusionRules,
}

impl PairSpec {
    /// Whether a HubSpot identity property (the Salesforce id, the kind) holding
    /// `value` says what a link to `sobject` `salesforce_id` says; `None` for other
    /// properties.
    pub fn identity_holds(
        &self,
        property: &str,
        value: &str,
        sobject: &str,
        salesforce_id: &str,
    ) -> Option<bool> {
        if self.salesforce_id_property(sobject) == Some(property) {
            return Some(super::same_salesforce_id(value, salesforce_id));
        }
        if self.kind_property.as_deref() == Some(property) {
            return Some(value == sobject.to_uppercase());
        }
        None
    }

    /// Whether `property` is one of the HubSpot identity properties the sync keeps (a
    /// Salesforce id, the kind): the sync's own, not a person's.
    pub fn is_identity(&self, property: &str) -> bool {
        self.kind_property.as_deref() == Some(property)
            || self
                .salesforce_id_properties
                .iter()
                .any(|(_, p)| p == property)
    }

    /// The HubSpot property that holds the id of a record of `sobject`.
    pub fn salesforce_id_property(&self, sobject: &str) -> Option<&str> {
        self.salesforce_id_properties
            .iter()
            .find(|(o, _)| o == sobject)
            .map(|(_, p)| p.as_str())
    }

    pub fn syncs(&self, sobject: &str) -> bool {
        self.sobjects.iter().any(|o| o == sobject)
    }

    /// The claim a create takes on its key, so that two workers never create the same
    /// record twice.
    pub fn claim_key(&self, key: &str) -> String {
        format!("{}:{key}", self.name)
    }
}

fn text<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    map.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn account_lookup(config: &SyncConfig, field: &str, on: &str) -> Option<Lookup> {
    config.companies.enabled.then(|| Lookup {
        field: field.to_owned(),
        on: vec![on.to_owned()],
        target: "companies".to_owned(),
        target_hubspot: "companies".to_owned(),
        target_sobject: "Account".to_owned(),
    })
}

/// Every enabled pair of a configuration, in dependency order.
pub fn pairs_of(config: &SyncConfig) -> Vec<PairSpec> {
    let mut pairs = Vec::new();
    if config.companies.enabled {
        let (hubspot, salesforce, kind) = match config.companies.dedup_key {
            CompanyDedupKey::Domain => ("domain", "Website", KeyKind::Domain),
            CompanyDedupKey::Name => ("name", "Name", KeyKind::Name),
        };
        pairs.push(PairSpec {
            name: "companies".into(),
            rank: 0,
            hubspot_object: "companies".into(),
            sobjects: vec!["Account".into()],
            create_as: "Account".into(),
            hubspot_id_field: "HubSpot_Company_Id__c".into(),
            salesforce_id_properties: vec![("Account".into(), "salesforceaccountid".into())],
            kind_property: None,
            hubspot_modified: "hs_lastmodifieddate".into(),
            match_key: Some(MatchKey {
                hubspot: hubspot.into(),
                salesforce: salesforce.into(),
                kind,
                hubspot_unique: false,
            }),
            lookups: Vec::new(),
            junctions: Vec::new(),
            inclusion: config.companies.inclusion.clone(),
        });
    }
    if config.contacts.enabled {
        pairs.push(PairSpec {
            name: "contacts".into(),
            rank: 1,
            hubspot_object: "contacts".into(),
            sobjects: vec!["Contact".into(), "Lead".into()],
            create_as: match config.contacts.create_salesforce_as {
                PersonObject::Lead => "Lead".into(),
                PersonObject::Contact => "Contact".into(),
            },
            hubspot_id_field: "HubSpot_Contact_Id__c".into(),
            salesforce_id_properties: vec![
                ("Contact".into(), "salesforcecontactid".into()),
                ("Lead".into(), "salesforceleadid".into()),
            ],
            kind_property: Some("salesforceobjecttype".into()),
            hubspot_modified: "lastmodifieddate".into(),
            match_key: Some(MatchKey {
                hubspot: "email".into(),
                salesforce: "Email".into(),
                kind: KeyKind::Email,
                hubspot_unique: true,
            }),
            lookups: account_lookup(config, "AccountId", "Contact")
                .into_iter()
                .collect(),
            junctions: Vec::new(),
            inclusion: config.contacts.inclusion.clone(),
        });
    }
    if config.deals.enabled {
        let junctions = config
            .contacts
            .enabled
            .then(|| Junction {
                sobject: "OpportunityContactRole".into(),
                parent_field: "OpportunityId".into(),
                child_field: "ContactId".into(),
                target: "contacts".into(),
                target_hubspot: "contacts".into(),
                target_sobject: "Contact".into(),
            })
            .into_iter()
            .collect();
        pairs.push(PairSpec {
            name: "deals".into(),
            rank: 2,
            hubspot_object: "deals".into(),
            sobjects: vec!["Opportunity".into()],
            create_as: "Opportunity".into(),
            hubspot_id_field: "HubSpot_Deal_Id__c".into(),
            salesforce_id_properties: vec![(
                "Opportunity".into(),
                "salesforceopportunityid".into(),
            )],
            kind_property: None,
            hubspot_modified: "hs_lastmodifieddate".into(),
            match_key: None,
            lookups: account_lookup(config, "AccountId", "Opportunity")
                .into_iter()
                .collect(),
            junctions,
            inclusion: InclusionRules::default(),
        });
    }
    if config.tickets.enabled {
        let mut lookups: Vec<Lookup> = Vec::new();
        // A Case points at a Contact (never a Lead) and an Account: the ticket's
        // associations.
        if config.contacts.enabled {
            lookups.push(Lookup {
                field: "ContactId".into(),
                on: vec!["Case".into()],
                target: "contacts".into(),
                target_hubspot: "contacts".into(),
                target_sobject: "Contact".into(),
            });
        }
        lookups.extend(account_lookup(config, "AccountId", "Case"));
        pairs.push(PairSpec {
            name: "tickets".into(),
            rank: 3,
            hubspot_object: "tickets".into(),
            sobjects: vec!["Case".into()],
            create_as: "Case".into(),
            hubspot_id_field: "HubSpot_Ticket_Id__c".into(),
            salesforce_id_properties: vec![("Case".into(), "salesforcecaseid".into())],
            kind_property: None,
            hubspot_modified: "hs_lastmodifieddate".into(),
            match_key: None,
            lookups,
            junctions: Vec::new(),
            inclusion: InclusionRules::default(),
        });
    }
    for custom in config.custom_objects.iter().filter(|c| c.enabled) {
        let lookups = custom
            .lookups
            .iter()
            .filter_map(|l| {
                let target = config.pair(&l.pair).filter(|p| p.enabled())?;
                let sobject = *target.salesforce_objects().first()?;
                Some(Lookup {
                    field: l.salesforce.clone(),
                    on: vec![custom.salesforce_object.clone()],
                    target: l.pair.clone(),
                    target_hubspot: target.hubspot_object().to_owned(),
                    target_sobject: sobject.to_owned(),
                })
            })
            .collect();
        pairs.push(PairSpec {
            name: custom.name.clone(),
            // After every standard pair, and after the custom pairs it points at.
            rank: 4 + custom.lookups.len().min(200) as Rank,
            hubspot_object: custom.hubspot_object.clone(),
            sobjects: vec![custom.salesforce_object.clone()],
            create_as: custom.salesforce_object.clone(),
            hubspot_id_field: custom.hubspot_id_field.clone(),
            salesforce_id_properties: vec![(
                custom.salesforce_object.clone(),
                custom.salesforce_id_property.clone(),
            )],
            kind_property: None,
            hubspot_modified: "hs_lastmodifieddate".into(),
            match_key: custom.match_on.as_ref().map(|(h, s)| MatchKey {
                hubspot: h.clone(),
                salesforce: s.clone(),
                kind: KeyKind::Exact,
                hubspot_unique: false,
            }),
            lookups,
            junctions: Vec::new(),
            inclusion: InclusionRules::default(),
        });
    }
    pairs.sort_by_key(|p| p.rank);
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::config::SyncConfig;

    #[test]
    fn the_builtin_pairs_run_companies_first() {
        let config = SyncConfig::builtin();
        let names: Vec<String> = pairs_of(&config).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["companies", "contacts", "deals"]);
    }

    #[test]
    fn identity_properties_are_compared_with_the_link() {
        let config = SyncConfig::builtin();
        let contacts = pairs_of(&config)
            .into_iter()
            .find(|p| p.name == "contacts")
            .unwrap_or_else(|| panic!("no contacts pair"));
        let id = "00Q8M0000000001UAA";
        let holds = |p: &str, v: &str| contacts.identity_holds(p, v, "Lead", id);
        assert_eq!(holds("salesforceleadid", "00Q8M0000000001"), Some(true));
        assert_eq!(holds("salesforceleadid", "00Q8M0000000002UAA"), Some(false));
        assert_eq!(holds("salesforceleadid", ""), Some(false));
        assert_eq!(holds("salesforceobjecttype", "LEAD"), Some(true));
        assert_eq!(holds("salesforceobjecttype", "CONTACT"), Some(false));
        assert_eq!(holds("firstname", "Ada"), None);
    }

    #[test]
    fn keys_normalize_per_kind() {
        assert_eq!(
            KeyKind::Domain.normalize("https://www.Acme.com/x"),
            Some("acme.com".into())
        );
        assert_eq!(KeyKind::Exact.normalize("  SN-1 "), Some("SN-1".into()));
        assert_eq!(KeyKind::Exact.normalize("   "), None);
    }
}
