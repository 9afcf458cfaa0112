//! The object pairs the pipeline runs. Each is a [`PairSpec`] (data, from the
//! configuration) and its hooks: the few decisions that are truly a pair's own
//! (contacts: Lead or Contact, twins, lead conversion, the Lead company placeholder;
//! deals: the pipeline of new deals, unmapped stages). Everything else is one flow
//! (`flow.rs`) for every pair, custom objects included.

mod contacts;
mod deals;
mod inclusion;
mod tickets;

use serde_json::{Map, Value};

use super::work::{Record, Work};
use crate::domain::config::ValidatedConfig;
use crate::domain::merge::{MergePlan, Snapshot};
use crate::domain::pair::{PairSpec, pairs_of};
use crate::ports::Link;

/// A pair as the pipeline runs it.
pub(crate) struct PairRun {
    pub spec: PairSpec,
    pub hooks: Box<dyn PairHooks>,
}

impl PairRun {
    /// Whether a record pair goes on: the pair's inclusion rules, then its own.
    pub fn admit(&self, work: &Work) -> Verdict {
        match inclusion::verdict(&self.spec, work) {
            Verdict::Go => self.hooks.admit(work),
            skip => skip,
        }
    }
}

/// Builds every enabled pair of a configuration, in dependency order.
pub(crate) fn build(config: &ValidatedConfig) -> Vec<PairRun> {
    pairs_of(config)
        .into_iter()
        .map(|spec| {
            let hooks: Box<dyn PairHooks> = match spec.name.as_str() {
                "contacts" => Box::new(contacts::Contacts::new(config)),
                "deals" => Box::new(deals::Deals::new(config)),
                "tickets" => Box::new(tickets::Tickets::new(config)),
                _ => Box::new(Plain),
            };
            PairRun { spec, hooks }
        })
        .collect()
}

/// Whether a record pair goes on to the merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Go,
    Skip {
        code: &'static str,
        message: Option<String>,
    },
}

/// What a plan may still be told after the merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlanCheck {
    Go,
    /// The pair syncs, and its status carries this data-quality note.
    Note {
        code: &'static str,
        field: String,
        message: String,
    },
    /// The pair does not sync (a create that would be refused, or wrong).
    Skip {
        code: &'static str,
        field: String,
        message: String,
    },
}

/// A pair's own decisions. Every method has the answer most pairs want.
pub(crate) trait PairHooks: Send + Sync {
    /// HubSpot properties the hooks read, beyond the mapped and identity ones.
    fn hubspot_properties(&self) -> Vec<String> {
        Vec::new()
    }

    /// Salesforce fields the hooks read on `sobject`.
    fn salesforce_fields(&self, _sobject: &str) -> Vec<String> {
        Vec::new()
    }

    /// A SOQL condition records of `sobject` must meet to be matched by key.
    fn match_filter(&self, _sobject: &str) -> Option<&'static str> {
        None
    }

    /// Whether a Salesforce record can pair with an unlinked HubSpot record.
    fn matchable(&self, _record: &Record) -> bool {
        true
    }

    /// Among Salesforce records with one key, the highest wins.
    fn rank(&self, record: &Record) -> (bool, i64) {
        (false, record.modified_at)
    }

    /// The Salesforce record a record became (a converted Lead's Contact): its link
    /// moves there.
    fn converted_to(&self, _record: &Record) -> Option<(String, String)> {
        None
    }

    /// Where records of `sobject` may have been converted from: the sObject and the
    /// field on it naming what it became (`Lead.ConvertedContactId` for Contacts).
    fn converted_from_field(&self, _sobject: &str) -> Option<(&'static str, &'static str)> {
        None
    }

    /// The pair's rules, before anything is claimed or merged.
    fn admit(&self, _work: &Work) -> Verdict {
        Verdict::Go
    }

    /// Whether a Salesforce record takes over the link of its twin (another record with
    /// its key that is linked already) instead of being skipped.
    fn takes_over(&self, _record: &Record, _twin: &Link) -> bool {
        false
    }

    /// The sObject a record created from HubSpot becomes.
    fn create_as(&self, spec: &PairSpec, _work: &Work) -> String {
        spec.create_as.clone()
    }

    /// The Salesforce record as the merge sees it.
    fn salesforce_snapshot(&self, record: &Record) -> Snapshot {
        record.snapshot()
    }

    /// What a Salesforce create needs that HubSpot may not have.
    fn salesforce_create_defaults(&self, _sobject: &str, _row: &mut Map<String, Value>) {}

    /// What a HubSpot create needs that Salesforce may not have.
    fn hubspot_create_defaults(&self, _properties: &mut Map<String, Value>) {}

    /// HubSpot writes the pair's own rules add to the merge's (`planned`), such as a
    /// lifecycle stage its opportunities move a contact to.
    fn derived_hubspot_writes(
        &self,
        _work: &Work,
        _planned: &Map<String, Value>,
    ) -> Map<String, Value> {
        Map::new()
    }

    /// HubSpot properties that say what kind of Salesforce record this is, beyond its
    /// id (`known`: the HubSpot record's current properties).
    fn identity_writes(
        &self,
        _sobject: &str,
        _known: Option<&Map<String, Value>>,
        _writes: &mut Map<String, Value>,
    ) {
    }

    /// Whether a Salesforce deletion archives the HubSpot record.
    fn archive_on_salesforce_delete(&self) -> bool {
        false
    }

    /// A look at the merge's plan (`creating`: a side has no record yet).
    fn check_plan(&self, _plan: &MergePlan<'_>, _creating: bool) -> PlanCheck {
        PlanCheck::Go
    }
}

/// A pair with no decisions of its own: companies, custom objects.
struct Plain;

impl PairHooks for Plain {}
