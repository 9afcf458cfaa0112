//! Sync health, as an admin reads it: records synced, skipped and failing per object
//! and direction, the reasons and CRM codes behind skips and failures, and how far
//! behind each change feed is.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Pipeline;
use crate::ports::{Counts, CursorStore, Outcome, StoreError};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// `object direction` -> counts.
    pub records: BTreeMap<String, Counts>,
    /// Last outcome's code -> records whose last attempt failed with it.
    pub failing_by_code: BTreeMap<String, u64>,
    /// Reason -> records whose last attempt was skipped for it.
    pub skipped_by_reason: BTreeMap<String, u64>,
    /// A few failing records with their error, field and attempts.
    pub failing: Vec<FailingRecord>,
    /// Feed -> how far behind now its cursor is (milliseconds); none: never polled.
    pub feed_lag_ms: BTreeMap<String, Option<i64>>,
    pub api: ApiUsage,
}

/// API calls this process made, and the Salesforce org's daily allowance as its last
/// answer reported it (`Sforce-Limit-Info`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApiUsage {
    pub hubspot_calls: u64,
    pub salesforce_calls: u64,
    pub salesforce_daily_used: Option<u64>,
    pub salesforce_daily_limit: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailingRecord {
    pub record: String,
    pub direction: String,
    pub code: Option<String>,
    pub field: Option<String>,
    pub message: Option<String>,
    pub attempts: u32,
    pub hint: Option<&'static str>,
}

/// What an admin can do about a CRM error code.
pub fn fix_hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "REQUIRED_FIELD_MISSING" => "fill the field in HubSpot, or map a HubSpot property to it",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION" => {
            "the record breaks a Salesforce validation rule: fix the value or the rule"
        }
        "DUPLICATES_DETECTED" | "DUPLICATE_VALUE" => {
            "a Salesforce duplicate rule or unique field refuses it: merge the duplicates"
        }
        "STRING_TOO_LONG" => "shorten the value or widen the Salesforce field",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" => {
            "add the value to the picklist or map it to an allowed one"
        }
        "INSUFFICIENT_ACCESS_OR_READONLY" | "INVALID_FIELD_FOR_INSERT_UPDATE" => {
            "give the integration user edit access to the field and record"
        }
        "CANNOT_UPDATE_CONVERTED_LEAD" => "the lead was converted: sync the contact it became",
        "CONFLICT" => "another HubSpot record already has this email: merge the two contacts",
        "VALIDATION_ERROR" => "HubSpot refused a value: check the property's type and options",
        "unmapped_stage" => "add the stage to deals.pipelines.<pipeline> in both directions",
        "waiting_for_related" => {
            "the record it points at (a company, a contact) does not sync yet: see that record"
        }
        _ => return None,
    })
}

pub async fn report(pipeline: &Pipeline, cursors: &dyn CursorStore) -> Result<Health, StoreError> {
    let mut h = Health::default();
    for (object, direction, counts) in pipeline.status.counts().await? {
        h.records.insert(format!("{object} {direction}"), counts);
    }
    for status in pipeline
        .status
        .by_outcome(Outcome::Failed, None, 10_000)
        .await?
    {
        let code = status.last.code.clone().unwrap_or_else(|| "unknown".into());
        *h.failing_by_code.entry(code.clone()).or_default() += 1;
        if h.failing.len() < 50 {
            let r = &status.last.record;
            h.failing.push(FailingRecord {
                record: format!("{} {} {}", r.side, r.object, r.id),
                direction: status.last.direction.clone(),
                hint: fix_hint(&code),
                code: status.last.code.clone(),
                field: status.last.field.clone(),
                message: status.last.message.clone(),
                attempts: status.attempts,
            });
        }
    }
    for status in pipeline
        .status
        .by_outcome(Outcome::Skipped, None, 10_000)
        .await?
    {
        let code = status.last.code.unwrap_or_else(|| "unknown".into());
        *h.skipped_by_reason.entry(code).or_default() += 1;
    }
    let daily = pipeline.salesforce.daily_usage();
    h.api = ApiUsage {
        hubspot_calls: pipeline.hubspot.calls_made(),
        salesforce_calls: pipeline.salesforce.calls_made(),
        salesforce_daily_used: daily.map(|(used, _)| used),
        salesforce_daily_limit: daily.map(|(_, limit)| limit),
    };
    let now = pipeline.clock.now_ms();
    for feed in pipeline.feeds() {
        let lag = cursors.cursor(&feed).await?.map(|c| (now - c.at).max(0));
        h.feed_lag_ms.insert(feed, lag);
    }
    Ok(h)
}
