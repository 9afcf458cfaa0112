//! The sync domain: what to sync and how two records are reconciled, as pure functions
//! over plain data.

pub mod activity;
pub mod config;
pub mod dedup;
pub mod explain;
pub mod geo;
pub mod lifecycle;
pub mod merge;
pub mod metadata;
pub mod pair;
pub mod value;

use serde::{Deserialize, Serialize};

/// Salesforce ids of 15 and 18 characters name the same record: the first 15 do.
pub fn same_salesforce_id(a: &str, b: &str) -> bool {
    a.get(..15).is_some() && a.get(..15) == b.get(..15)
}

/// One of the two CRMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Side {
    #[serde(rename = "hubspot")]
    HubSpot,
    #[serde(rename = "salesforce")]
    Salesforce,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::HubSpot => Side::Salesforce,
            Side::Salesforce => Side::HubSpot,
        }
    }

    /// The side a name (`hubspot`, `salesforce`) names.
    pub fn from_name(name: &str) -> Option<Side> {
        [Side::HubSpot, Side::Salesforce]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::HubSpot => "hubspot",
            Side::Salesforce => "salesforce",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::HubSpot => "HubSpot",
            Side::Salesforce => "Salesforce",
        })
    }
}

/// Milliseconds since the Unix epoch, UTC: the one time unit of the domain (HubSpot
/// reports epoch milliseconds; Salesforce's ISO date-times convert losslessly).
pub type Millis = i64;
