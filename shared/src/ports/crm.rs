//! What the pipeline needs from each CRM, as traits over the clients' operations.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::adapters::hubspot::{BatchOutcome, HsRecord, HubSpotClient, HubSpotError, Owner};
use crate::adapters::salesforce::{RecordResult, SalesforceClient, SalesforceError};

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
    ) -> Result<Vec<HsRecord>, HubSpotError>;
    async fn batch_update(
        &self,
        object: &str,
        inputs: &[(String, Map<String, Value>)],
    ) -> Result<BatchOutcome, HubSpotError>;
    async fn batch_upsert(
        &self,
        object: &str,
        id_property: &str,
        inputs: &[(String, Map<String, Value>)],
    ) -> Result<BatchOutcome, HubSpotError>;
    async fn batch_create(
        &self,
        object: &str,
        inputs: &[(String, Map<String, Value>)],
    ) -> Result<BatchOutcome, HubSpotError>;
    async fn batch_archive(&self, object: &str, ids: &[String]) -> Result<(), HubSpotError>;
    async fn changed_since(
        &self,
        object: &str,
        since_ms: i64,
        properties: &[&str],
    ) -> Result<Vec<HsRecord>, HubSpotError>;
    /// One page of a listing (100 records) from `after`, and the next page's token.
    async fn list_page(
        &self,
        object: &str,
        properties: &[&str],
        archived: bool,
        after: Option<&str>,
    ) -> Result<(Vec<HsRecord>, Option<String>), HubSpotError>;
    /// One page of a search (`body` as HubSpot's search request); the index lags
    /// writes by seconds.
    async fn search(&self, object: &str, body: &Value) -> Result<Vec<HsRecord>, HubSpotError>;
    async fn owners(&self) -> Result<Vec<Owner>, HubSpotError>;
    /// The property definitions of an object type.
    async fn properties(&self, object: &str) -> Result<Vec<Value>, HubSpotError>;
    /// Calls made since this client was built (sync health).
    fn calls_made(&self) -> u64 {
        0
    }
    async fn list_members(&self, list_id: &str) -> Result<Vec<String>, HubSpotError>;
    async fn associations(
        &self,
        from: &str,
        to: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Vec<String>)>, HubSpotError>;
    async fn associate(
        &self,
        from: &str,
        to: &str,
        pairs: &[(String, String)],
    ) -> Result<(), HubSpotError>;
}

#[async_trait]
impl HubSpotApi for HubSpotClient {
    async fn batch_read(
        &self,
        object: &str,
        ids: &[String],
        properties: &[&str],
        with_history: &[&str],
        id_property: Option<&str>,
    ) -> Result<Vec<HsRecord>, HubSpotError> {
        HubSpotClient::batch_read(self, object, ids, properties, with_history, id_property).await
    }
    async fn batch_update(
        &self,
        object: &str,
        inputs: &[(String, Map<String, Value>)],
    ) -> Result<BatchOutcome, HubSpotError> {
        HubSpotClient::batch_update(self, object, inputs).await
    }
    async fn batch_upsert(
        &self,
        object: &str,
        id_property: &str,
        inputs: &[(String, Map<String, Value>)],
    ) -> Result<BatchOutcome, HubSpotError> {
        HubSpotClient::batch_upsert(self, object, id_property, inputs).await
    }
    async fn batch_create(
        &self,
        object: &str,
        inputs: &[(String, Map<String, Value>)],
    ) -> Result<BatchOutcome, HubSpotError> {
        HubSpotClient::batch_create(self, object, inputs).await
    }
    async fn batch_archive(&self, object: &str, ids: &[String]) -> Result<(), HubSpotError> {
        HubSpotClient::batch_archive(self, object, ids).await
    }
    async fn changed_since(
        &self,
        object: &str,
        since_ms: i64,
        properties: &[&str],
    ) -> Result<Vec<HsRecord>, HubSpotError> {
        HubSpotClient::changed_since(self, object, since_ms, properties).await
    }
    async fn list_page(
        &self,
        object: &str,
        properties: &[&str],
        archived: bool,
        after: Option<&str>,
    ) -> Result<(Vec<HsRecord>, Option<String>), HubSpotError> {
        HubSpotClient::list_page(self, object, properties, archived, after).await
    }
    async fn search(&self, object: &str, body: &Value) -> Result<Vec<HsRecord>, HubSpotError> {
        Ok(HubSpotClient::search(self, object, body).await?.records)
    }
    async fn owners(&self) -> Result<Vec<Owner>, HubSpotError> {
        HubSpotClient::owners(self).await
    }
    async fn properties(&self, object: &str) -> Result<Vec<Value>, HubSpotError> {
        HubSpotClient::properties(self, object).await
    }
    fn calls_made(&self) -> u64 {
        self.calls().total()
    }
    async fn list_members(&self, list_id: &str) -> Result<Vec<String>, HubSpotError> {
        HubSpotClient::list_members(self, list_id).await
    }
    async fn associations(
        &self,
        from: &str,
        to: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Vec<String>)>, HubSpotError> {
        HubSpotClient::associations(self, from, to, ids).await
    }
    async fn associate(
        &self,
        from: &str,
        to: &str,
        pairs: &[(String, String)],
    ) -> Result<(), HubSpotError> {
        HubSpotClient::associate(self, from, to, pairs).await
    }
}

/// Salesforce, as the pipeline uses it.
#[async_trait]
pub trait SalesforceApi: Send + Sync {
    async fn query(&self, soql: &str, all: bool) -> Result<Vec<Value>, SalesforceError>;
    async fn composite_queries(
        &self,
        queries: &[(String, String)],
        include_deleted: bool,
    ) -> Result<HashMap<String, Vec<Value>>, SalesforceError>;
    async fn create(
        &self,
        rows: &[(String, Map<String, Value>)],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError>;
    async fn update(
        &self,
        rows: &[(String, Map<String, Value>)],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError>;
    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        rows: &[Map<String, Value>],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError>;
    async fn retrieve(
        &self,
        object: &str,
        ids: &[String],
        fields: &[&str],
    ) -> Result<Vec<Option<Value>>, SalesforceError>;
    async fn deleted(
        &self,
        object: &str,
        start: &str,
        end: &str,
    ) -> Result<Vec<String>, SalesforceError>;
    async fn describe(&self, object: &str) -> Result<Value, SalesforceError>;
    /// Fails with a budget error once usage passed the configured ceiling.
    fn check_budget(&self) -> Result<(), SalesforceError>;
    /// Calls made since this client was built (sync health).
    fn calls_made(&self) -> u64 {
        0
    }
    /// The org's last reported API usage in the rolling 24 hours: (used, allowed).
    fn daily_usage(&self) -> Option<(u64, u64)> {
        None
    }
}

#[async_trait]
impl SalesforceApi for SalesforceClient {
    async fn query(&self, soql: &str, all: bool) -> Result<Vec<Value>, SalesforceError> {
        SalesforceClient::query(self, soql, all).await
    }
    async fn composite_queries(
        &self,
        queries: &[(String, String)],
        include_deleted: bool,
    ) -> Result<HashMap<String, Vec<Value>>, SalesforceError> {
        SalesforceClient::composite_queries(self, queries, include_deleted).await
    }
    async fn create(
        &self,
        rows: &[(String, Map<String, Value>)],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        SalesforceClient::create(self, rows, all_or_none).await
    }
    async fn update(
        &self,
        rows: &[(String, Map<String, Value>)],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        SalesforceClient::update(self, rows, all_or_none).await
    }
    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        rows: &[Map<String, Value>],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        SalesforceClient::upsert(self, object, external_id_field, rows, all_or_none).await
    }
    async fn retrieve(
        &self,
        object: &str,
        ids: &[String],
        fields: &[&str],
    ) -> Result<Vec<Option<Value>>, SalesforceError> {
        SalesforceClient::retrieve(self, object, ids, fields).await
    }
    async fn deleted(
        &self,
        object: &str,
        start: &str,
        end: &str,
    ) -> Result<Vec<String>, SalesforceError> {
        SalesforceClient::deleted(self, object, start, end).await
    }
    async fn describe(&self, object: &str) -> Result<Value, SalesforceError> {
        SalesforceClient::describe(self, object).await
    }
    fn check_budget(&self) -> Result<(), SalesforceError> {
        SalesforceClient::check_budget(self)
    }
    fn calls_made(&self) -> u64 {
        self.calls().total()
    }
    fn daily_usage(&self) -> Option<(u64, u64)> {
        self.api_usage()
    }
}
