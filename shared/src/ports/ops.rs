//! What operators set and read while crmsync runs: the pause switch and the mapped
//! fields a CRM no longer has (controls), and the time series behind sync health
//! (records synced and failed, feed lag, API calls). Both live in the state store, so
//! the CLI, the dashboard, the poller, the intake and every worker see one truth, on
//! one machine or on AWS.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::{Millis, Side};

/// An operator's pause: nothing syncs, nothing queued is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub since: Millis,
    /// Who paused (the CLI user, `dashboard`...), for the status line.
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A mapped field one CRM no longer has: the pair syncs its other fields and this one
/// waits, with one error on the pair instead of every record failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenField {
    pub pair: String,
    pub side: Side,
    /// The HubSpot object or the sObject the field belonged to.
    pub object: String,
    pub field: String,
    pub message: String,
    pub since: Millis,
}

/// The run-time controls, one document in the state store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Controls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Pause>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broken_fields: Vec<BrokenField>,
    /// Bumped to make the poller list every record again (a full reconcile after a
    /// pause longer than Salesforce keeps its change and deletion history).
    #[serde(default)]
    pub reconcile: u64,
    /// Bumped by every resume: workers re-check field metadata they cached.
    #[serde(default)]
    pub generation: u64,
}

impl Controls {
    pub fn is_broken(&self, side: Side, object: &str, field: &str) -> bool {
        self.broken_fields
            .iter()
            .any(|b| b.side == side && b.object == object && b.field.eq_ignore_ascii_case(field))
    }
}

/// Controls, read and replaced under a version check (two operators, or an operator and
/// a worker marking a broken field, cannot overwrite each other).
#[async_trait]
pub trait ControlStore: Send + Sync {
    /// The controls and their version (0: never written).
    async fn controls(&self) -> Result<(Controls, u64), StoreError>;
    /// Replaces the controls if the stored version is still `version`; returns the new
    /// version. A conflict means someone else wrote first: read again.
    async fn put_controls(&self, controls: &Controls, version: u64) -> Result<u64, StoreError>;
}

/// The width of one time-series bucket.
pub const BUCKET_MS: Millis = 10 * 60_000;

/// How long time-series buckets are kept.
pub const SERIES_TTL_MS: Millis = 7 * 86_400_000;

/// The bucket `at` falls in (its start).
pub fn bucket_of(at: Millis) -> Millis {
    at.div_euclid(BUCKET_MS) * BUCKET_MS
}

/// One bucket of the time series: named values (`synced`, `failed`,
/// `calls.salesforce`, `lag.salesforce:Lead`...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub bucket: Millis,
    pub values: BTreeMap<String, i64>,
}

/// Counters per time bucket, and gauges (the latest value of each name).
#[async_trait]
pub trait TelemetryStore: Send + Sync {
    /// Adds each value to its counter in the bucket of `at`.
    async fn add(&self, at: Millis, values: &[(String, i64)]) -> Result<(), StoreError>;
    /// Sets gauges: the latest value of each name, and its value in the bucket of `at`
    /// (the last one set in that bucket).
    async fn gauge(&self, at: Millis, values: &[(String, i64)]) -> Result<(), StoreError>;
    /// Buckets from `since` on, oldest first.
    async fn series(&self, since: Millis) -> Result<Vec<SeriesPoint>, StoreError>;
    /// Every gauge's latest value.
    async fn gauges(&self) -> Result<BTreeMap<String, i64>, StoreError>;
}
