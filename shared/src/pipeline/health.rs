//! Sync health, as an admin reads it: records (not events) synced, skipped and failing
//! per pair and direction, the codes behind skips, failures and held-back values, mapped
//! fields a CRM lost, how far behind each feed is, the queue, API use against each
//! CRM's allowance, and whether the sync is paused. `crmsync status`, `GET /health` and
//! the dashboard all show this one report.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Pipeline;
use crate::domain::{Millis, Side};
use crate::ports::{
    BrokenField, Counts, CursorStore, Outcome, Pause, QueueDepth, RecordStatus, StoreError,
    WorkItem, WorkQueue,
};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    pub at: Millis,
    pub paused: Option<Pause>,
    /// Records per pair, object and direction, by last outcome.
    pub flows: Vec<Flow>,
    /// Records whose last attempt failed, per code.
    pub failing_by_code: BTreeMap<String, u64>,
    /// Records whose last attempt was skipped, per reason.
    pub skipped_by_reason: BTreeMap<String, u64>,
    /// Records synced with a value held back (too long, not in a picklist...), per
    /// reason.
    pub held_back_by_reason: BTreeMap<String, u64>,
    /// Mapped fields a CRM no longer has: each pauses that field of its pair.
    pub broken_fields: Vec<BrokenField>,
    pub feeds: Vec<FeedHealth>,
    /// Work waiting; none when this process cannot see the queue.
    pub queue: Option<QueueDepth>,
    pub api: Vec<ApiUse>,
    /// The first failing records, oldest first.
    pub failing: Vec<FailingRecord>,
}

/// Records of one object moving one way.
#[derive(Debug, Clone, Serialize)]
pub struct Flow {
    pub pair: String,
    pub object: String,
    pub direction: String,
    pub records: Counts,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedHealth {
    pub feed: String,
    /// When the poller last read it.
    pub last_poll: Option<Millis>,
    /// How long since then, now.
    pub lag_ms: Option<i64>,
    /// The newest change read from it.
    pub cursor: Option<Millis>,
}

/// One CRM's API use: calls crmsync made in the last 24 hours (all its processes), and
/// the CRM's own daily count and allowance as its last answer reported them.
#[derive(Debug, Clone, Serialize)]
pub struct ApiUse {
    pub side: Side,
    pub calls_24h: u64,
    pub daily_used: Option<u64>,
    pub daily_limit: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailingRecord {
    /// `hubspot:contacts:101`, as `crmsync record` takes it.
    pub record: String,
    pub pair: Option<String>,
    pub direction: String,
    pub code: Option<String>,
    pub field: Option<String>,
    pub message: Option<String>,
    pub attempts: u32,
    pub since: Millis,
    pub hint: Option<&'static str>,
    /// The record in its CRM's web app, where known.
    pub url: Option<String>,
}

/// Failing records sharing a code.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorGroup {
    pub code: String,
    /// Records failing with it (of the pair asked for, if any).
    pub records: u64,
    pub hint: Option<&'static str>,
    /// The first of them, oldest first.
    pub failing: Vec<FailingRecord>,
}

/// Failing records grouped by code, `limit` listed per code; only `code` and only
/// `pair`'s records when given.
pub async fn errors(
    pipeline: &Pipeline,
    code: Option<&str>,
    pair: Option<&str>,
    limit: usize,
) -> Result<Vec<ErrorGroup>, StoreError> {
    let mut groups = Vec::new();
    for (outcome, c, n) in pipeline.status.codes().await? {
        if outcome != Outcome::Failed || code.is_some_and(|want| want != c) {
            continue;
        }
        // A pair filter reads every record of the code (failing records are few).
        let read = if pair.is_some() { 100_000 } else { limit };
        let mine: Vec<FailingRecord> = pipeline
            .status
            .by_outcome(Outcome::Failed, Some(&c), read)
            .await?
            .iter()
            .map(|s| pipeline.failing_record(s))
            .filter(|r| pair.is_none_or(|p| r.pair.as_deref() == Some(p)))
            .collect();
        let records = if pair.is_some() { mine.len() as u64 } else { n };
        if records == 0 {
            continue;
        }
        groups.push(ErrorGroup {
            hint: fix_hint(&c),
            code: c,
            records,
            failing: mine.into_iter().take(limit).collect(),
        });
    }
    Ok(groups)
}

/// How many failing records the report lists.
const FAILING_LISTED: usize = 50;

/// The code of a record whose reference ran out of attempts (dead-lettered).
pub const RETRIES_EXHAUSTED: &str = "RETRIES_EXHAUSTED";

/// What an admin can do about a code.
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
        "INVALID_FIELD" => {
            "a mapped field is gone from Salesforce: restore it or remove it from the mapping, then `crmsync resume`"
        }
        "CANNOT_UPDATE_CONVERTED_LEAD" => "the lead was converted: sync the contact it became",
        "ENTITY_IS_DELETED" => {
            "the record was deleted in Salesforce: restore it or let the link go"
        }
        "CONFLICT" => "another HubSpot record already has this email: merge the two contacts",
        "VALIDATION_ERROR" => "HubSpot refused a value: check the property's type and options",
        "unmapped_stage" => "add the stage to deals.pipelines.<pipeline> in both directions",
        "waiting_for_related" => {
            "the record it points at (a company, a contact) does not sync yet: see that record"
        }
        "would_truncate" => "shorten the value or widen the target field",
        "not_in_picklist" => "add the value to the target picklist, or map it with a value map",
        "value_not_mapped" => "add the value to the field's value map",
        "owner_not_matched" => "give the owner a user with the same email on the other side",
        "owner_defaulted" => {
            "the default owner stands in: give the owner a user with the same email on the other side"
        }
        "state_needs_country" => "fill the country, so the state matches Salesforce's picklist",
        "type_mismatch" => "the value does not read as the target field's type: fix the value",
        "no_email" => "give the contact an email (crmsync matches contacts by email)",
        "partner_deleted_in_salesforce" => {
            "its Salesforce record is deleted: restore it from the recycle bin, or clear the HubSpot property naming it to create a new one"
        }
        "partner_deleted_in_hubspot" => {
            "its HubSpot record is deleted: restore it in HubSpot, or clear the HubSpot id field to create a new one"
        }
        RETRIES_EXHAUSTED => {
            "it kept failing for a passing reason (see its message); once that is fixed, `crmsync resync --code RETRIES_EXHAUSTED`"
        }
        "merged_in_hubspot" => {
            "its HubSpot record was merged into another: merge this Salesforce record into the survivor's partner"
        }
        "converted_into_synced" => {
            "it was converted into a record that syncs with another HubSpot record: merge the two in HubSpot"
        }
        "outside_inclusion" => {
            "it is outside the HubSpot inclusion list or filter: add it to the list (it syncs at the next poll) or widen the filter"
        }
        "outside_salesforce_inclusion" => {
            "it is outside [<pair>.salesforce_inclusion]: change the record or the filter"
        }
        "no_synced_record" => {
            "the activity is on no synced contact, company or deal: associate one that syncs"
        }
        "related_not_synced" => {
            "its contact does not sync (activities.unsynced_contact = \"skip\"): sync the contact, then its next change tries again"
        }
        "campaign_inactive" => {
            "activate the Salesforce campaign, or name an active one for the form"
        }
        "campaign_unknown" => "the campaign the form names does not exist: fix [[campaigns.forms]]",
        "form_not_configured" => {
            "its form is no longer configured: add it to [[campaigns.forms]] or activities.form_submissions"
        }
        "related_not_contact" => {
            "convert the Lead to a Contact, or associate a contact that syncs with a Contact"
        }
        _ => return None,
    })
}

/// `side:object:id`, as the CLI takes a record.
pub fn record_key(side: &str, object: &str, id: &str) -> String {
    format!("{side}:{object}:{id}")
}

impl Pipeline {
    /// The pair a status's record belongs to.
    pub fn pair_of_record(&self, side: &str, object: &str) -> Option<String> {
        let side = Side::from_name(side)?;
        let item = WorkItem {
            side,
            object: object.to_owned(),
            id: String::new(),
            origin: String::new(),
            seen: None,
        };
        self.pair_of(&item).map(|r| r.spec.name.clone())
    }

    /// The record in its CRM's web app, where the deployment knows how to link.
    pub fn record_url(&self, side: &str, object: &str, id: &str) -> Option<String> {
        match Side::from_name(side)? {
            Side::HubSpot => self.hubspot.record_url(object, id),
            Side::Salesforce => self.salesforce.record_url(object, id),
        }
    }

    /// A failing (or skipped) record as health and `crmsync errors` list it.
    pub fn failing_record(&self, status: &RecordStatus) -> FailingRecord {
        let r = &status.last.record;
        FailingRecord {
            record: record_key(&r.side, &r.object, &r.id),
            pair: self.pair_of_record(&r.side, &r.object),
            direction: status.last.direction.clone(),
            hint: status.last.code.as_deref().and_then(fix_hint),
            code: status.last.code.clone(),
            field: status.last.field.clone(),
            message: status.last.message.clone(),
            attempts: status.attempts,
            since: status.first_seen,
            url: self.record_url(&r.side, &r.object, &r.id),
        }
    }
}

/// The health report. `queue`: the work queue, when this process can see it.
pub async fn report(
    pipeline: &Pipeline,
    cursors: &dyn CursorStore,
    queue: Option<&dyn WorkQueue>,
) -> Result<Health, StoreError> {
    let now = pipeline.clock.now_ms();
    let controls = pipeline.controls().await?;
    let mut h = Health {
        at: now,
        paused: controls.paused,
        broken_fields: controls.broken_fields,
        ..Health::default()
    };
    for (object, direction, records) in pipeline.status.counts().await? {
        // The record moving `to_salesforce` is a HubSpot one, and back.
        let side = if direction == "to_salesforce" {
            "hubspot"
        } else {
            "salesforce"
        };
        h.flows.push(Flow {
            pair: pipeline
                .pair_of_record(side, &object)
                .unwrap_or_else(|| "(not synced)".into()),
            object,
            direction,
            records,
        });
    }
    for (outcome, code, n) in pipeline.status.codes().await? {
        let into = match outcome {
            Outcome::Failed => &mut h.failing_by_code,
            Outcome::Skipped => &mut h.skipped_by_reason,
            Outcome::Synced => &mut h.held_back_by_reason,
        };
        *into.entry(code).or_default() += n;
    }
    h.failing = pipeline
        .status
        .by_outcome(Outcome::Failed, None, FAILING_LISTED)
        .await?
        .iter()
        .map(|s| pipeline.failing_record(s))
        .collect();
    let gauges = pipeline.telemetry.gauges().await?;
    let triggers = pipeline
        .trigger_feeds()
        .into_iter()
        .map(|o| format!("salesforce:{o}"));
    for feed in pipeline.feeds().into_iter().chain(triggers) {
        let last_poll = gauges.get(&format!("polled_at.{feed}")).copied();
        h.feeds.push(FeedHealth {
            lag_ms: last_poll.map(|t| (now - t).max(0)),
            last_poll,
            cursor: cursors.cursor(&feed).await?.map(|c| c.at),
            feed,
        });
    }
    if let Some(q) = queue {
        h.queue = Some(q.depth().await?);
    }
    let day = pipeline.telemetry.series(now - 86_400_000).await?;
    for side in [Side::HubSpot, Side::Salesforce] {
        let name = side.as_str();
        let calls: i64 = day
            .iter()
            .filter_map(|p| p.values.get(&format!("calls.{name}")))
            .sum();
        let gauge = |k: &str| {
            gauges
                .get(&format!("{name}.{k}"))
                .map(|v| (*v).max(0) as u64)
        };
        h.api.push(ApiUse {
            side,
            calls_24h: calls.max(0) as u64,
            daily_used: gauge("daily_used"),
            daily_limit: gauge("daily_limit"),
        });
    }
    Ok(h)
}
