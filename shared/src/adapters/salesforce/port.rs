//! The Salesforce client as the pipeline's [`SalesforceApi`] port.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{SalesforceClient, SalesforceError};
use crate::ports::crm::{CrmError, RecordResult, SalesforceApi};

impl From<SalesforceError> for CrmError {
    fn from(e: SalesforceError) -> Self {
        let message = match &e {
            SalesforceError::Api(api) => api
                .errors
                .first()
                .map(|i| i.message.clone())
                .unwrap_or_default(),
            other => other.to_string(),
        };
        CrmError {
            class: e.class(),
            code: e.code().to_owned(),
            message,
            detail: e.to_string(),
        }
    }
}

#[async_trait]
impl SalesforceApi for SalesforceClient {
    async fn query(&self, soql: &str, all: bool) -> Result<Vec<Value>, CrmError> {
        SalesforceClient::query(self, soql, all)
            .await
            .map_err(CrmError::from)
    }
    async fn count(&self, soql: &str) -> Result<u64, CrmError> {
        SalesforceClient::count(self, soql)
            .await
            .map_err(CrmError::from)
    }
    async fn composite_queries(
        &self,
        queries: &[(String, String)],
        include_deleted: bool,
    ) -> Result<HashMap<String, Vec<Value>>, CrmError> {
        SalesforceClient::composite_queries(self, queries, include_deleted)
            .await
            .map_err(CrmError::from)
    }
    async fn create(
        &self,
        rows: &[(String, Map<String, Value>)],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, CrmError> {
        SalesforceClient::create(self, rows, all_or_none)
            .await
            .map_err(CrmError::from)
    }
    async fn update(
        &self,
        rows: &[(String, Map<String, Value>)],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, CrmError> {
        SalesforceClient::update(self, rows, all_or_none)
            .await
            .map_err(CrmError::from)
    }
    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        rows: &[Map<String, Value>],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, CrmError> {
        SalesforceClient::upsert(self, object, external_id_field, rows, all_or_none)
            .await
            .map_err(CrmError::from)
    }
    async fn retrieve(
        &self,
        object: &str,
        ids: &[String],
        fields: &[&str],
    ) -> Result<Vec<Option<Value>>, CrmError> {
        SalesforceClient::retrieve(self, object, ids, fields)
            .await
            .map_err(CrmError::from)
    }
    async fn deleted(&self, object: &str, start: &str, end: &str) -> Result<Vec<String>, CrmError> {
        SalesforceClient::deleted(self, object, start, end)
            .await
            .map_err(CrmError::from)
    }
    async fn describe(&self, object: &str) -> Result<Value, CrmError> {
        SalesforceClient::describe(self, object)
            .await
            .map_err(CrmError::from)
    }
    fn check_budget(&self) -> Result<(), CrmError> {
        SalesforceClient::check_budget(self).map_err(CrmError::from)
    }
    fn calls_made(&self) -> u64 {
        self.calls().total()
    }
    fn daily_usage(&self) -> Option<(u64, u64)> {
        self.api_usage()
    }
    fn record_url(&self, object: &str, id: &str) -> Option<String> {
        Some(self.record_url(object, id))
    }
}
