//! Our own writes, recognised from the link alone when they come back: a linked record
//! whose mapped values are the ones last synced, and that was modified no later than
//! that sync, has nothing to sync. Reading it again would find nothing to do. The intake
//! asks this of each outbound message, the poller of each record its feeds read (they
//! read the mapped values with the change), so an echo costs neither a queued reference
//! nor a second read.
//!
//! A change the link cannot vouch for is left to the worker: a value that differs, a
//! mapped field the link holds no value for, a modification after the sync (a person's
//! change of a lookup or an association, which has no last-synced value, is one), a
//! HubSpot merge. What this cannot tell apart: a person's change of only a lookup or an
//! association made between our write and the link's store (the batch's last
//! milliseconds), which then syncs with the record's next change.

use serde_json::{Map, Value};

use super::Pipeline;
use super::sabotage::Sabotage;
use super::work::Record;
use crate::ports::Link;

/// A value as text, as webhooks and outbound messages give it (`None`: no value).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl Pipeline {
    fn echo_checks_off(&self) -> bool {
        self.sabotaged(Sabotage::EchoSuppressionOff)
    }

    /// Whether the HubSpot record `id` of `object`, read with `properties` and last
    /// modified at `modified_at`, is as its link last synced it.
    pub(crate) async fn hubspot_holds(
        &self,
        object: &str,
        id: &str,
        properties: &Map<String, Value>,
        modified_at: i64,
    ) -> bool {
        if self.echo_checks_off() {
            return false;
        }
        let merged = properties
            .get("hs_merged_object_ids")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.is_empty());
        if merged {
            return false;
        }
        let Some(run) = self.pairs.iter().find(|p| p.spec.hubspot_object == object) else {
            return false;
        };
        let Some(pair) = self.config.pair(&run.spec.name) else {
            return false;
        };
        let link = match self.links.by_hubspot(&run.spec.name, id).await {
            Ok(Some(link)) => link,
            // Unlinked, or the store did not answer: the worker decides.
            _ => return false,
        };
        if !synced_after(&link, modified_at) {
            return false;
        }
        pair.fields().iter().all(|f| {
            let value = properties
                .get(&f.hubspot)
                .and_then(text)
                .unwrap_or_default();
            match link.last_synced.get(&f.hubspot) {
                Some(_) => link.last_synced.holds_hubspot(&f.hubspot, &value),
                None => value.is_empty(),
            }
        })
    }

    /// Whether the Salesforce record `id` of `sobject`, read as `row` (values as the
    /// API gives them, or as text), last modified at `modified_at`, is as its link last
    /// synced it.
    pub(crate) async fn salesforce_holds(
        &self,
        sobject: &str,
        id: &str,
        row: Map<String, Value>,
        modified_at: i64,
    ) -> bool {
        if self.echo_checks_off() {
            return false;
        }
        let Some(run) = self.pairs.iter().find(|p| p.spec.syncs(sobject)) else {
            return false;
        };
        let Some(pair) = self.config.pair(&run.spec.name) else {
            return false;
        };
        let link = match self.links.by_salesforce(sobject, id).await {
            Ok(Some(link)) => link,
            _ => return false,
        };
        if !synced_after(&link, modified_at) {
            return false;
        }
        // The values as the merge sees them (a Lead's placeholder company is none).
        let seen = run.hooks.salesforce_snapshot(&Record::new(sobject, row));
        pair.fields().iter().all(|f| {
            let Some(field) = f.salesforce.on(sobject) else {
                return true;
            };
            let value = seen.values.get(field).and_then(text);
            match link.last_synced.get(&f.hubspot) {
                Some(_) => link
                    .last_synced
                    .holds_salesforce(&f.hubspot, value.as_deref()),
                None => value.as_deref().is_none_or(str::is_empty),
            }
        })
    }
}

/// The record's last modification is no later than the link's sync: what it holds was
/// there when the sync stored its values.
fn synced_after(link: &Link, modified_at: i64) -> bool {
    modified_at > 0 && modified_at <= link.synced_at
}
