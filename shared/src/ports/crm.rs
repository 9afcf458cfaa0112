//! What the pipeline needs from each CRM: small traits over the operations it uses,
//! and the types they speak. The CRM clients in `adapters/` implement them; nothing
//! here knows HTTP.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde_json::{Map, Value};

/// What a failed call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Try again later (rate limits, 5xx, timeouts, record locks).
    Retryable,
    /// Stays on the record: its data or the org's rules refuse it.
    RecordLevel,
    /// Stops the run: credentials, permissions, a disabled API.
    Fatal,
    /// The daily API allowance is used up: non-urgent work stops until it rolls.
    Budget,
}

/// A CRM call that failed, as the pipeline sees it: what it means, the CRM's own code
/// (`VALIDATION_ERROR`, `REQUIRED_FIELD_MISSING`...) and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct CrmError {
    pub class: ErrorClass,
    pub code: String,
    /// The CRM's message, as it wrote it.
    pub message: String,
    /// The whole error, for logs (never a secret: the clients redact those).
    pub detail: String,
}

/// A record's place in a list's join order: the list's change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListJoin {
    pub record_id: String,
    /// When it joined the list (ms); a record that left and rejoined, when it rejoined.
    pub joined_at: i64,
}

/// One page of a list's members in the order they joined, and the next page's token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinPage {
    pub joins: Vec<ListJoin>,
    pub next: Option<String>,
}

/// A form submission: which, when, and the email it was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormSubmission {
    pub conversion_id: String,
    pub submitted_at: i64,
    pub email: Option<String>,
}

/// One page of a form's submissions, newest first, and the next page's token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubmissionPage {
    pub submissions: Vec<FormSubmission>,
    pub next: Option<String>,
}

/// A marketing email event: what a recipient did with which email, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailEvent {
    pub id: String,
    pub created: i64,
    pub recipient: String,
    /// `SENT`, `OPEN`, `CLICK`...
    pub kind: String,
    pub campaign_id: Option<String>,
}

/// One page of email events and the next page's offset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmailEventPage {
    pub events: Vec<EmailEvent>,
    pub next: Option<String>,
}

/// A HubSpot record as read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HsRecord {
    pub id: String,
    pub properties: Map<String, Value>,
    /// Per property: (value, epoch ms) newest first, when asked for.
    pub history: HashMap<String, Vec<(String, i64)>>,
    pub archived: bool,
    /// The ids of its associated records by object type, for the types the read asked
    /// for (a listing's page). A type absent is unknown (not asked, or more than one
    /// answer holds), not unassociated.
    pub associations: BTreeMap<String, Vec<String>>,
    /// Not read: made by the pipeline from its link's values and webhooks' changes
    /// (`pipeline::pushed`), so it says nothing of a change no webhook told of.
    pub from_link: bool,
}

impl HsRecord {
    /// When each property last changed, from its history.
    pub fn changed_at(&self) -> HashMap<String, i64> {
        self.history
            .iter()
            .filter_map(|(k, h)| h.iter().map(|(_, at)| *at).max().map(|at| (k.clone(), at)))
            .collect()
    }
}

/// A HubSpot record to create: the input's key (its trace id), its properties, and the
/// records it is created associated with, as (object type, id), each by the pair's
/// default association (only pairs `HubSpotApi::creates_associated` takes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewRecord {
    pub key: String,
    pub properties: Map<String, Value>,
    pub associations: Vec<(String, String)>,
}

/// A failure of one input of a HubSpot batch.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The input's key (its id, email, or trace id).
    pub key: String,
    pub category: String,
    pub message: String,
}

/// What a HubSpot batch write did, input by input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutcome {
    pub records: Vec<HsRecord>,
    /// For upserts: ids of records the call created.
    pub created: Vec<String>,
    pub errors: Vec<InputError>,
}

impl BatchOutcome {
    /// One outcome of several calls' outcomes, in their order.
    pub fn joined(parts: impl IntoIterator<Item = BatchOutcome>) -> Self {
        parts.into_iter().fold(Self::default(), |mut all, part| {
            all.records.extend(part.records);
            all.created.extend(part.created);
            all.errors.extend(part.errors);
            all
        })
    }
}

/// The modification times a feed read takes, in epoch ms: at or after `since` and,
/// when given, before `until`; and when `also` is given, the earlier window
/// `[also.0, also.1)` too, in the same calls (a feed's fresh changes and the window
/// that has since settled past the search index's lag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Modified {
    pub since: i64,
    pub until: Option<i64>,
    pub also: Option<(i64, i64)>,
}

/// A HubSpot owner: its id is the `hubspot_owner_id` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub email: String,
}

/// One `{message, errorCode, fields}` of a Salesforce error body or record result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SfErrorItem {
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
    /// What the code means (a locked row is worth retrying; a validation rule is not).
    #[serde(skip)]
    pub class: ErrorClass,
}

/// What happened to one record of a Salesforce Collections call.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordResult {
    pub id: Option<String>,
    /// For upserts: whether the record was created.
    pub created: Option<bool>,
    pub errors: Vec<SfErrorItem>,
}

impl RecordResult {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// HubSpot, as the pipeline uses it.
#[async_trait]
pub trait HubSpotApi: Send + Sync {
    async fn batch_read(
        &self,
        object: &str,
        ids: &[String],
        properties: &[&str],
        with_history: &[&str],
        id_property: Option<&str>,
    ) -> Result<Vec<HsRecord>, CrmError>;
    async fn batch_update(
        &self,
        object: &str,
        inputs: &[(String, Map<String, Value>)],
    ) -> Result<BatchOutcome, CrmError>;
    async fn batch_upsert(
        &self,
        object: &str,
        id_property: &str,
        inputs: &[(String, Map<String, Value>)],
    ) -> Result<BatchOutcome, CrmError>;
    async fn batch_create(
        &self,
        object: &str,
        inputs: &[NewRecord],
    ) -> Result<BatchOutcome, CrmError>;
    /// Whether a record of `from` can be created associated with a record of `to` (the
    /// pair's default association type is known): otherwise it is associated after.
    fn creates_associated(&self, from: &str, to: &str) -> bool {
        let _ = (from, to);
        false
    }
    async fn batch_archive(&self, object: &str, ids: &[String]) -> Result<(), CrmError>;
    /// Records modified in `modified`'s windows.
    async fn changed_since(
        &self,
        object: &str,
        modified: Modified,
        properties: &[&str],
    ) -> Result<Vec<HsRecord>, CrmError>;
    /// One page of a listing (100 records) from `after`, and the next page's token;
    /// each record with its associations to the `associations` object types.
    async fn list_page(
        &self,
        object: &str,
        properties: &[&str],
        associations: &[&str],
        archived: bool,
        after: Option<&str>,
    ) -> Result<(Vec<HsRecord>, Option<String>), CrmError>;
    /// Every page of a search (`body` as HubSpot's search request, up to the 10,000
    /// results HubSpot pages to); the index lags writes by seconds.
    async fn search(&self, object: &str, body: &Value) -> Result<Vec<HsRecord>, CrmError>;
    /// Records whose property holds one of the values (`any`: property and value,
    /// compared without case), each once, with `properties`: however many values,
    /// in as few searches as HubSpot's filter limits allow. The index lags writes.
    async fn search_any(
        &self,
        object: &str,
        any: &[(String, String)],
        properties: &[String],
    ) -> Result<Vec<HsRecord>, CrmError>;
    async fn owners(&self) -> Result<Vec<Owner>, CrmError>;
    /// The portal's custom object types: (object type id, fully qualified name).
    async fn custom_object_types(&self) -> Result<Vec<(String, String)>, CrmError>;
    /// The property definitions of an object type.
    async fn properties(&self, object: &str) -> Result<Vec<Value>, CrmError>;
    /// Calls made since this client was built (sync health).
    fn calls_made(&self) -> u64 {
        0
    }
    /// The portal's last reported daily API use: (used, allowed); private apps only.
    fn daily_usage(&self) -> Option<(u64, u64)> {
        None
    }
    /// The record in HubSpot's web app (needs the portal id).
    fn record_url(&self, _object: &str, _id: &str) -> Option<String> {
        None
    }
    async fn list_members(&self, list_id: &str) -> Result<Vec<String>, CrmError>;
    /// One page of a list's members in join order, from `after` (a token of a page
    /// read before; none: the first member to join).
    async fn list_joins(&self, list_id: &str, after: Option<&str>) -> Result<JoinPage, CrmError>;
    /// Marketing email events of `kind` created in `[since, until]`, a page (1,000)
    /// from `offset`.
    async fn email_events(
        &self,
        kind: &str,
        since: i64,
        until: i64,
        offset: Option<&str>,
    ) -> Result<EmailEventPage, CrmError>;
    /// A marketing email's subject, by its campaign id.
    async fn email_subject(&self, campaign_id: &str) -> Result<String, CrmError>;
    /// A form's name.
    async fn form_name(&self, form_id: &str) -> Result<String, CrmError>;
    /// One page (50) of a form's submissions, newest first, from `after`.
    async fn form_submissions(
        &self,
        form_id: &str,
        after: Option<&str>,
    ) -> Result<SubmissionPage, CrmError>;
    /// Which of `ids` (records of `object`) are members of the list now.
    async fn members_among(
        &self,
        list_id: &str,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<String>, CrmError>;
    async fn associations(
        &self,
        from: &str,
        to: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Vec<String>)>, CrmError>;
    async fn associate(
        &self,
        from: &str,
        to: &str,
        pairs: &[(String, String)],
    ) -> Result<(), CrmError>;
}

/// Salesforce, as the pipeline uses it.
#[async_trait]
pub trait SalesforceApi: Send + Sync {
    async fn query(&self, soql: &str, all: bool) -> Result<Vec<Value>, CrmError>;
    /// `SELECT COUNT() ...`: how many rows match.
    async fn count(&self, soql: &str) -> Result<u64, CrmError>;
    async fn composite_queries(
        &self,
        queries: &[(String, String)],
        include_deleted: bool,
    ) -> Result<HashMap<String, Vec<Value>>, CrmError>;
    async fn create(
        &self,
        rows: &[(String, Map<String, Value>)],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, CrmError>;
    async fn update(
        &self,
        rows: &[(String, Map<String, Value>)],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, CrmError>;
    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        rows: &[Map<String, Value>],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, CrmError>;
    async fn retrieve(
        &self,
        object: &str,
        ids: &[String],
        fields: &[&str],
    ) -> Result<Vec<Option<Value>>, CrmError>;
    async fn deleted(&self, object: &str, start: &str, end: &str) -> Result<Vec<String>, CrmError>;
    async fn describe(&self, object: &str) -> Result<Value, CrmError>;
    /// Fails with a budget error once usage passed the configured ceiling.
    fn check_budget(&self) -> Result<(), CrmError>;
    /// Calls made since this client was built (sync health).
    fn calls_made(&self) -> u64 {
        0
    }
    /// The org's last reported API usage in the rolling 24 hours: (used, allowed).
    fn daily_usage(&self) -> Option<(u64, u64)> {
        None
    }
    /// The record in Salesforce's web app.
    fn record_url(&self, _object: &str, _id: &str) -> Option<String> {
        None
    }
}
