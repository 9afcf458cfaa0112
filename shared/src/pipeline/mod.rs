//! The sync pipeline: the orchestration the Lambda functions and the local runner
//! share. It talks to the CRMs and the state only through ports, and decides nothing
//! the domain does not (the merge, the rules, the dedup keys).
//!
//! - [`poll`]: change feeds -> record references on the queue, then the cursor moves.
//! - [`intake`]: webhooks, outbound messages and manual requests -> the queue.
//! - [`Pipeline::sync_batch`]: record references -> both CRMs and the link state.

pub mod backfill;
pub mod contacts;
pub mod health;
pub mod intake;
pub mod poll;
pub mod worker;
mod writes;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::adapters::hubspot::HsRecord;
use crate::adapters::salesforce::SfErrorItem;
use crate::domain::Side;
use crate::domain::config::ValidatedConfig;
use crate::domain::merge::{OwnerDirectory, Snapshot};
use crate::domain::value::parse_datetime_millis;
use crate::ports::{
    ClaimStore, Clock, FieldChange, HubSpotApi, Link, LinkStore, Outcome, RecordRef, SalesforceApi,
    StatusStore, SyncEvent, WorkItem,
};

/// Everything a sync needs, built once per process (per Lambda cold start).
#[derive(Clone)]
pub struct Pipeline {
    pub config: Arc<ValidatedConfig>,
    pub hubspot: Arc<dyn HubSpotApi>,
    pub salesforce: Arc<dyn SalesforceApi>,
    pub links: Arc<dyn LinkStore>,
    pub claims: Arc<dyn ClaimStore>,
    pub status: Arc<dyn StatusStore>,
    pub clock: Arc<dyn Clock>,
    pub owners: Arc<OwnerDirectory>,
    /// Who claims dedup keys (a Lambda request id, a local worker name).
    pub worker: String,
    /// A named point where the process aborts (crash tests; `CRMSYNC_FAILPOINT`).
    pub failpoint: Option<String>,
}

/// How handling one queued item ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Synced, skipped with a reason, or failed for good with the CRM's code: the item
    /// is acknowledged either way (the outcome is on the record's status).
    Done,
    /// Worth another attempt later (rate limits, locks, another worker holding a claim);
    /// the item goes back to the queue.
    Retry(String),
}

/// How long a claim on a dedup key lasts: longer than one batch takes.
pub const CLAIM_TTL_MS: i64 = 5 * 60 * 1000;
/// How long per-record history is kept.
pub const HISTORY_TTL_MS: i64 = 30 * 86_400_000;

/// The object pair a queued reference belongs to.
pub fn pair_of(item: &WorkItem) -> Option<&'static str> {
    match (item.side.as_str(), item.object.as_str()) {
        ("hubspot", "contacts") | ("salesforce", "Lead" | "Contact") => Some(contacts::PAIR),
        _ => None,
    }
}

/// One Salesforce record as read: its sObject and fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct Record {
    pub object: String,
    pub row: Map<String, Value>,
    pub modified_at: i64,
}

impl Record {
    pub fn new(object: &str, row: Map<String, Value>) -> Self {
        let modified_at = row
            .get("LastModifiedDate")
            .and_then(Value::as_str)
            .and_then(parse_datetime_millis)
            .unwrap_or(0);
        Record {
            object: object.to_owned(),
            row,
            modified_at,
        }
    }

    pub fn id(&self) -> String {
        self.row
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.row.clone(), Some(self.modified_at))
    }
}

pub(crate) fn hubspot_snapshot(r: &HsRecord) -> Snapshot {
    let modified = r
        .properties
        .get("lastmodifieddate")
        .and_then(Value::as_str)
        .and_then(parse_datetime_millis);
    let mut s = Snapshot::new(r.properties.clone(), modified);
    s.field_modified_at = r.changed_at().into_iter().collect();
    s
}

/// One record pair being synced, and the queued items it answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Work {
    pub hubspot: Option<HsRecord>,
    pub salesforce: Option<Record>,
    pub link: Option<Link>,
    /// The link of the HubSpot record when it belongs to another Salesforce record
    /// (a twin with the same email).
    pub twin_of: Option<Link>,
    pub items: Vec<usize>,
    /// Whether the HubSpot record is in the inclusion list, when a list rule applies.
    pub in_list: Option<bool>,
    /// Which side's change brought it here.
    pub origin: Option<Side>,
}

impl Pipeline {
    /// A pipeline whose state lives in one store (the embedded one, or DynamoDB).
    pub fn new<S>(
        config: ValidatedConfig,
        hubspot: Arc<dyn HubSpotApi>,
        salesforce: Arc<dyn SalesforceApi>,
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        worker: impl Into<String>,
    ) -> Self
    where
        S: LinkStore + ClaimStore + StatusStore + 'static,
    {
        Pipeline {
            config: Arc::new(config),
            hubspot,
            salesforce,
            links: store.clone(),
            claims: store.clone(),
            status: store,
            clock,
            owners: Arc::new(OwnerDirectory::default()),
            worker: worker.into(),
            failpoint: None,
        }
    }

    /// Pairs HubSpot owners with Salesforce users by email (plus the configured
    /// overrides), for owner fields.
    pub async fn load_owners(&mut self) -> Result<(), String> {
        if !self.config.owners.enabled {
            return Ok(());
        }
        let hubspot: Vec<(String, String)> = self
            .hubspot
            .owners()
            .await
            .map_err(|e| format!("HubSpot owners: {e}"))?
            .into_iter()
            .map(|o| (o.id, o.email))
            .collect();
        let salesforce: Vec<(String, String)> = self
            .salesforce
            .query("SELECT Id, Email FROM User WHERE IsActive = true", false)
            .await
            .map_err(|e| format!("Salesforce users: {e}"))?
            .iter()
            .filter_map(|u| {
                let id = u.get("Id")?.as_str()?.to_owned();
                let email = u.get("Email")?.as_str()?.to_owned();
                Some((id, email))
            })
            .collect();
        self.owners = Arc::new(OwnerDirectory::match_by_email(
            &hubspot,
            &salesforce,
            &self.config.owners.overrides,
        ));
        Ok(())
    }

    /// Syncs a batch of queued references: one outcome per reference, in order. A
    /// record-level CRM error stays on its record; only retryable failures come back
    /// as [`ItemOutcome::Retry`].
    pub async fn sync_batch(&self, items: &[WorkItem]) -> Vec<ItemOutcome> {
        let mut outcomes = vec![ItemOutcome::Done; items.len()];
        if self.config.paused {
            return vec![ItemOutcome::Retry("sync is paused".into()); items.len()];
        }
        let mut contact_items = Vec::new();
        let mut contact_index = Vec::new();
        for (n, item) in items.iter().enumerate() {
            match pair_of(item) {
                Some(contacts::PAIR) if self.config.contacts.enabled => {
                    contact_items.push(item.clone());
                    contact_index.push(n);
                }
                _ => {
                    let direction = direction_from(item);
                    self.note(
                        item,
                        direction,
                        Outcome::Skipped,
                        Some("pair_not_synced"),
                        None,
                        self.clock.now_ms(),
                    )
                    .await;
                }
            }
        }
        if !contact_items.is_empty() {
            for (k, o) in self
                .sync_contacts(&contact_items)
                .await
                .into_iter()
                .enumerate()
            {
                if let Some(&n) = contact_index.get(k) {
                    outcomes[n] = o;
                }
            }
        }
        outcomes
    }

    /// Aborts the process at a named point when the failpoint says so (crash tests).
    pub(crate) fn failpoint(&self, name: &str) {
        if self.failpoint.as_deref() == Some(name) {
            eprintln!("crmsync: failpoint {name} reached, aborting");
            std::process::abort();
        }
    }

    pub(crate) async fn record(&self, event: SyncEvent) {
        if let Err(e) = self.status.record(&event, HISTORY_TTL_MS).await {
            tracing::warn!(message = "could not record a sync outcome", error = %e);
        }
    }

    pub(crate) async fn note(
        &self,
        item: &WorkItem,
        direction: &str,
        outcome: Outcome,
        code: Option<&str>,
        message: Option<String>,
        now: i64,
    ) {
        self.record(SyncEvent {
            record: record_ref(item),
            direction: direction.to_owned(),
            outcome,
            code: code.map(str::to_owned),
            message,
            field: None,
            changes: Vec::new(),
            at: now,
        })
        .await;
    }

    pub(crate) async fn note_changes(
        &self,
        item: &WorkItem,
        direction: &str,
        changes: Vec<FieldChange>,
        now: i64,
    ) {
        self.record(SyncEvent {
            record: record_ref(item),
            direction: direction.to_owned(),
            outcome: Outcome::Synced,
            code: None,
            message: None,
            field: None,
            changes,
            at: now,
        })
        .await;
    }

    /// A Salesforce per-record error: retried when Salesforce says it is passing (a
    /// locked row), otherwise recorded on the record with its code and field.
    pub(crate) async fn salesforce_failed(
        &self,
        item: &WorkItem,
        direction: &str,
        error: Option<SfErrorItem>,
        now: i64,
    ) -> ItemOutcome {
        use crate::adapters::http::ErrorClass;
        let Some(e) = error else {
            let code = Some("UNKNOWN_ERROR");
            self.note(item, direction, Outcome::Failed, code, None, now)
                .await;
            return ItemOutcome::Done;
        };
        if crate::adapters::salesforce::code_class(&e.code) == ErrorClass::Retryable {
            return ItemOutcome::Retry(e.code);
        }
        self.record(SyncEvent {
            record: record_ref(item),
            direction: direction.to_owned(),
            outcome: Outcome::Failed,
            code: Some(e.code.clone()),
            message: Some(e.message.clone()),
            field: e.fields.first().cloned(),
            changes: Vec::new(),
            at: now,
        })
        .await;
        ItemOutcome::Done
    }

    pub(crate) async fn hubspot_failed(
        &self,
        item: &WorkItem,
        direction: &str,
        category: &str,
        message: &str,
        now: i64,
    ) -> ItemOutcome {
        if matches!(category, "RATE_LIMITS" | "LOCKED" | "INTERNAL_ERROR") {
            return ItemOutcome::Retry(category.to_owned());
        }
        self.note(
            item,
            direction,
            Outcome::Failed,
            Some(category),
            Some(message.to_owned()),
            now,
        )
        .await;
        ItemOutcome::Done
    }
}

fn record_ref(item: &WorkItem) -> RecordRef {
    RecordRef {
        side: item.side.clone(),
        object: item.object.clone(),
        id: item.id.clone(),
    }
}

/// A change on one side flows to the other.
pub fn direction_from(item: &WorkItem) -> &'static str {
    if item.side == "salesforce" {
        "to_hubspot"
    } else {
        "to_salesforce"
    }
}
