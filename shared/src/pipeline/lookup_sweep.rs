//! Associations made in HubSpot reach Salesforce by webhook alone: HubSpot's change
//! feed does not show them (associating two records leaves their modification times
//! alone). So a lost webhook would leave a lookup empty for good. Every quarter hour,
//! the synced Salesforce records whose lookup is still empty (`Opportunity.AccountId`,
//! `Contact.AccountId`...) are checked against their HubSpot records' associations,
//! and the ones HubSpot associates are queued: their sync sets the field. One query
//! per lookup, a link lookup per such record, and one association read per 100.

use serde_json::Value;

use super::Pipeline;
use super::poll::PollError;
use crate::domain::Side;
use crate::ports::{Cursor, CursorStore, StoreError, WorkItem, WorkQueue};

/// How often empty lookups are checked.
pub const LOOKUP_SWEEP_INTERVAL_MS: i64 = 15 * 60_000;
const KEY: &str = "sweep:lookups";

impl Pipeline {
    pub(crate) async fn sweep_empty_lookups(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        now: i64,
    ) -> Result<usize, PollError> {
        let last = cursors.cursor(KEY).await?;
        if last
            .as_ref()
            .is_some_and(|c| now - c.at < LOOKUP_SWEEP_INTERVAL_MS)
        {
            return Ok(0);
        }
        let to = Cursor {
            at: now,
            last_id: String::new(),
        };
        match cursors.advance(KEY, last.as_ref(), &to).await {
            Ok(()) => {}
            // Another poller sweeps.
            Err(StoreError::Conflict(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
        if last.is_none() {
            // The first poll: the initial sync reads every record anyway.
            return Ok(0);
        }
        let mut queued = 0;
        for run in self.pairs.iter() {
            let spec = &run.spec;
            for lookup in &spec.lookups {
                for sobject in &lookup.on {
                    let soql = format!(
                        "SELECT Id, {id} FROM {sobject} WHERE {field} = null",
                        id = spec.hubspot_id_field,
                        field = lookup.field
                    );
                    let rows = self
                        .salesforce
                        .query(&soql, false)
                        .await
                        .map_err(|e| PollError::Salesforce(e.to_string()))?;
                    // Its HubSpot record: named on it, or its link's (a record made in
                    // Salesforce first never learns the id of the record made for it).
                    let mut ids: Vec<String> = Vec::new();
                    for row in &rows {
                        let named = row
                            .get(&spec.hubspot_id_field)
                            .and_then(Value::as_str)
                            .filter(|id| !id.is_empty());
                        if let Some(id) = named {
                            ids.push(id.to_owned());
                        } else if let Some(id) = row.get("Id").and_then(Value::as_str)
                            && let Some(link) = self.links.by_salesforce(sobject, id).await?
                        {
                            ids.push(link.hubspot_id);
                        }
                    }
                    if ids.is_empty() {
                        continue;
                    }
                    let associated = self
                        .hubspot
                        .associations(&spec.hubspot_object, &lookup.target_hubspot, &ids)
                        .await
                        .map_err(|e| PollError::HubSpot(e.to_string()))?;
                    let items: Vec<WorkItem> = associated
                        .into_iter()
                        .filter(|(_, targets)| !targets.is_empty())
                        .map(|(id, _)| WorkItem {
                            side: Side::HubSpot,
                            object: spec.hubspot_object.clone(),
                            id,
                            origin: "sweep".into(),
                            seen: None,
                        })
                        .collect();
                    if !items.is_empty() {
                        tracing::info!(
                            message = "HubSpot associations no webhook reported: queued",
                            pair = %spec.name,
                            field = %lookup.field,
                            records = items.len()
                        );
                    }
                    queued += items.len();
                    for chunk in items.chunks(500) {
                        queue.send(chunk).await?;
                    }
                }
            }
        }
        Ok(queued)
    }
}
