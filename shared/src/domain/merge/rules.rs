//! The merge rules of one object pair and one Salesforce object, compiled once from a
//! validated configuration and the CRMs' field metadata, then used for every record.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::domain::Side;
use crate::domain::config::{
    Direction, FieldMapping, Pair, PicklistMode, StageMap, StateCountryRule, Transform,
    ValidatedConfig, ValueMap,
};
use crate::domain::dedup::email_key;
use crate::domain::geo::{PlaceCatalog, Places};
use crate::domain::metadata::{FieldMeta, PairMeta, well_known_type};
use crate::domain::value::FieldType;

/// How values of one mapped field translate between the sides.
#[derive(Debug, Clone)]
pub enum Translation<'c> {
    Identity,
    Map(&'c ValueMap),
    DealStage {
        pipelines: &'c BTreeMap<String, StageMap>,
        default_pipeline: &'c str,
    },
    Owner,
    State,
    Country,
}

/// One mapped field, ready to merge.
#[derive(Debug, Clone)]
pub struct FieldRule<'c> {
    pub hubspot: &'c str,
    /// `None` when the mapping has no field on this Salesforce object (a Lead-only
    /// mapping on a Contact).
    pub salesforce: Option<&'c str>,
    pub direction: Direction,
    pub unless_blank: bool,
    pub translation: Translation<'c>,
    pub hubspot_meta: Option<FieldMeta>,
    pub salesforce_meta: Option<FieldMeta>,
}

impl FieldRule<'_> {
    /// The declared type of each side, where metadata or the standard objects say.
    pub fn declared_type(&self, side: Side) -> Option<FieldType> {
        match side {
            Side::HubSpot => self.hubspot_meta.as_ref().map(|m| m.ty),
            Side::Salesforce => self.salesforce_meta.as_ref().map(|m| m.ty),
        }
    }

    pub fn meta(&self, side: Side) -> Option<&FieldMeta> {
        match side {
            Side::HubSpot => self.hubspot_meta.as_ref(),
            Side::Salesforce => self.salesforce_meta.as_ref(),
        }
    }
}

/// HubSpot owner ids <-> Salesforce user ids, matched by email (plus explicit
/// overrides), for `transform = "owner"`.
#[derive(Debug, Clone, Default)]
pub struct OwnerDirectory {
    hubspot_to_salesforce: HashMap<String, String>,
    salesforce_to_hubspot: HashMap<String, String>,
    /// Who stands in for an owner with no match, per side the record is written to.
    default_salesforce_user: Option<String>,
    default_hubspot_owner: Option<String>,
}

impl OwnerDirectory {
    /// Pairs owners whose emails match; `overrides` (HubSpot id -> Salesforce id) win.
    pub fn match_by_email(
        hubspot_owners: &[(String, String)],
        salesforce_users: &[(String, String)],
        overrides: &BTreeMap<String, String>,
    ) -> Self {
        let by_email: HashMap<String, &String> = salesforce_users
            .iter()
            .filter_map(|(id, email)| email_key(email).map(|e| (e, id)))
            .collect();
        let mut dir = OwnerDirectory::default();
        for (hs_id, email) in hubspot_owners {
            if let Some(sf_id) = email_key(email).and_then(|e| by_email.get(&e)) {
                dir.insert(hs_id, sf_id);
            }
        }
        for (hs_id, sf_id) in overrides {
            dir.insert(hs_id, sf_id);
        }
        dir
    }

    fn insert(&mut self, hubspot: &str, salesforce: &str) {
        self.hubspot_to_salesforce
            .insert(hubspot.to_owned(), salesforce.to_owned());
        self.salesforce_to_hubspot
            .insert(salesforce.to_owned(), hubspot.to_owned());
    }

    /// The configured stand-ins for owners with no match (`[owners]
    /// default_salesforce_user`, `default_hubspot_owner`).
    pub fn with_defaults(mut self, owners: &crate::domain::config::OwnerSettings) -> Self {
        self.default_salesforce_user = owners.default_salesforce_user.clone();
        self.default_hubspot_owner = owners.default_hubspot_owner.clone();
        self
    }

    /// Who a record written to `side` gets when its owner has no match there.
    pub fn default_on(&self, side: crate::domain::Side) -> Option<&str> {
        match side {
            crate::domain::Side::Salesforce => self.default_salesforce_user.as_deref(),
            crate::domain::Side::HubSpot => self.default_hubspot_owner.as_deref(),
        }
    }

    pub fn salesforce_user(&self, hubspot_owner: &str) -> Option<&str> {
        self.hubspot_to_salesforce
            .get(hubspot_owner)
            .map(String::as_str)
    }

    pub fn hubspot_owner(&self, salesforce_user: &str) -> Option<&str> {
        self.salesforce_to_hubspot
            .get(salesforce_user)
            .map(String::as_str)
    }
}

/// Everything the merge needs about one pair on one Salesforce object.
#[derive(Debug, Clone)]
pub struct MergeRules<'c> {
    pub pair: &'c str,
    pub hubspot_object: &'c str,
    pub salesforce_object: &'c str,
    pub fields: Vec<FieldRule<'c>>,
    pub state_country: Option<StateCountryRule>,
    /// The org's own State/Country picklists, where the settings say they are
    /// customized and describe listed them.
    pub places: Option<Arc<PlaceCatalog>>,
    pub owners: &'c OwnerDirectory,
    /// The two records were synced before and lost their link (one was deleted and
    /// restored): with no last-synced values, a field filled on both sides goes to its
    /// most recent change, as a conflict would, not to the preferred side as when two
    /// strangers first meet; a person's edit after the restore is kept.
    pub resumed: bool,
    /// When the pair last synced (its link's time, taken after that sync's writes): a
    /// side whose record changed since may have had a field edited and edited back
    /// (A, B, A), which its value alone does not show.
    pub synced_at: Option<i64>,
}

/// A pair or Salesforce object the configuration does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error(
        "no object pair \"{0}\" in the configuration (expected contacts, companies, deals, tickets or a custom object's name)"
    )]
    UnknownPair(String),
    #[error(
        "pair \"{pair}\" does not sync with Salesforce object \"{object}\" (expected {expected})"
    )]
    UnknownObject {
        pair: String,
        object: String,
        expected: String,
    },
}

impl<'c> MergeRules<'c> {
    pub fn new(
        config: &'c ValidatedConfig,
        pair_name: &str,
        salesforce_object: &str,
        meta: &PairMeta,
        owners: &'c OwnerDirectory,
    ) -> Result<Self, RulesError> {
        let pair = config
            .pair(pair_name)
            .ok_or_else(|| RulesError::UnknownPair(pair_name.to_owned()))?;
        let objects = pair.salesforce_objects();
        let sobject = objects
            .iter()
            .copied()
            .find(|o| o.eq_ignore_ascii_case(salesforce_object))
            .ok_or_else(|| RulesError::UnknownObject {
                pair: pair_name.to_owned(),
                object: salesforce_object.to_owned(),
                expected: objects.join(" or "),
            })?;
        let fields = pair
            .fields()
            .iter()
            .map(|m| field_rule(config, &pair, m, sobject, meta))
            .collect();
        let state_country = match pair {
            Pair::Contacts(c) => Some(c.state_country),
            // Accounts' billing addresses follow the contact settings too.
            Pair::Companies(_) => Some(config.contacts.state_country),
            _ => None,
        };
        let places = state_country
            .filter(|r| r.salesforce_picklists == PicklistMode::Customized)
            .and_then(|_| meta.places.clone());
        Ok(MergeRules {
            pair: pair.name(),
            hubspot_object: pair.hubspot_object(),
            salesforce_object: sobject,
            fields,
            state_country,
            places,
            owners,
            resumed: false,
            synced_at: None,
        })
    }

    /// Where this record's places are looked up.
    pub fn places(&self) -> Places<'_> {
        self.places.as_deref().map_or(Places::Standard, Places::Org)
    }

    /// The mapping with a given transform (the record's country, for a state).
    pub fn field_with(&self, transform: Transform) -> Option<&FieldRule<'c>> {
        self.fields.iter().find(|f| {
            matches!(
                (&f.translation, transform),
                (Translation::Country, Transform::Country) | (Translation::State, Transform::State)
            )
        })
    }
}

fn field_rule<'c>(
    config: &'c ValidatedConfig,
    pair: &Pair<'c>,
    m: &'c FieldMapping,
    sobject: &'c str,
    meta: &PairMeta,
) -> FieldRule<'c> {
    let salesforce = m.salesforce.on(sobject);
    let translation = match (m.transform, &m.value_map) {
        (Some(Transform::DealStage), _) => Translation::DealStage {
            pipelines: &config.deals.pipelines,
            default_pipeline: &config.deals.default_pipeline,
        },
        (Some(Transform::Owner), _) => Translation::Owner,
        (Some(Transform::State), _) => Translation::State,
        (Some(Transform::Country), _) => Translation::Country,
        (None, Some(map)) => Translation::Map(map),
        (None, None) => Translation::Identity,
    };
    let hubspot_meta = meta.hubspot.get(&m.hubspot).cloned().or_else(|| {
        well_known_type(Side::HubSpot, pair.hubspot_object(), &m.hubspot).map(FieldMeta::of_type)
    });
    let salesforce_meta = salesforce.and_then(|f| {
        meta.salesforce
            .get(f)
            .cloned()
            .or_else(|| well_known_type(Side::Salesforce, sobject, f).map(FieldMeta::of_type))
    });
    FieldRule {
        hubspot: &m.hubspot,
        salesforce,
        direction: m.direction,
        unless_blank: m.unless_blank,
        translation,
        hubspot_meta,
        salesforce_meta,
    }
}
