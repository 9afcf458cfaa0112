//! sObject Collections: create, update, upsert and delete up to 200 records per call,
//! and retrieve up to 2,000; results mapped back to the records in request order.
//! Records that failed only because a row was locked are tried once more.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{SalesforceClient, SalesforceError, SfErrorItem};
use crate::adapters::http::{ErrorClass, in_chunks};

/// Records per Collections write.
pub const COLLECTION_MAX: usize = 200;
/// Ids per Collections retrieve (POST).
pub const RETRIEVE_MAX: usize = 2_000;

pub use crate::ports::crm::RecordResult;

impl RecordResult {
    fn from_json(v: &Value) -> Self {
        RecordResult {
            id: v.get("id").and_then(Value::as_str).map(str::to_owned),
            created: v.get("created").and_then(Value::as_bool),
            errors: v
                .get("errors")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(SfErrorItem::from_json).collect())
                .unwrap_or_default(),
        }
    }

    fn retryable(&self) -> bool {
        !self.errors.is_empty() && self.errors.iter().all(|e| e.class == ErrorClass::Retryable)
    }
}

/// A record for a Collections write: its type and fields.
pub type Row = (String, Map<String, Value>);

fn with_type(object: &str, fields: &Map<String, Value>) -> Value {
    let mut v = fields.clone();
    v.insert("attributes".into(), json!({"type": object}));
    Value::Object(v)
}

impl SalesforceClient {
    async fn collection_call(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        idempotent: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let v = self
            .request(method, path, &[], Some(body), idempotent)
            .await?;
        Ok(v.as_array()
            .map(|a| a.iter().map(RecordResult::from_json).collect())
            .unwrap_or_default())
    }

    /// Runs a Collections write per chunk of 200, then once more for the records that
    /// failed on a lock.
    async fn collection_write(
        &self,
        method: Method,
        path: &str,
        records: &[Value],
        all_or_none: bool,
        idempotent: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let method = &method;
        let mut results: Vec<RecordResult> =
            in_chunks(records, COLLECTION_MAX, |chunk| async move {
                let body = json!({"allOrNone": all_or_none, "records": chunk});
                self.collection_call(method.clone(), path, &body, idempotent)
                    .await
            })
            .await?
            .into_iter()
            .flatten()
            .collect();
        let again: Vec<usize> = (0..results.len())
            .filter(|i| results[*i].retryable())
            .collect();
        if !again.is_empty() && idempotent {
            let retry: Vec<Value> = again.iter().map(|i| records[*i].clone()).collect();
            let body = json!({"allOrNone": all_or_none, "records": retry});
            let second = self
                .collection_call(method.clone(), path, &body, idempotent)
                .await?;
            for (i, r) in again.into_iter().zip(second) {
                results[i] = r;
            }
        }
        Ok(results)
    }

    /// Creates records (types may mix). Not retried after a timeout: creating twice
    /// would duplicate; the caller upserts by an external id where it can.
    pub async fn create(
        &self,
        rows: &[Row],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let records: Vec<Value> = rows.iter().map(|(o, f)| with_type(o, f)).collect();
        self.collection_write(
            Method::POST,
            &self.data_path("/composite/sobjects"),
            &records,
            all_or_none,
            false,
        )
        .await
    }

    /// Updates records; each row's fields must hold its `Id`.
    pub async fn update(
        &self,
        rows: &[Row],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let records: Vec<Value> = rows.iter().map(|(o, f)| with_type(o, f)).collect();
        self.collection_write(
            Method::PATCH,
            &self.data_path("/composite/sobjects"),
            &records,
            all_or_none,
            true,
        )
        .await
    }

    /// Creates or updates records of one type by an external-id field: safe to retry.
    pub async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        rows: &[Map<String, Value>],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let records: Vec<Value> = rows.iter().map(|f| with_type(object, f)).collect();
        let path = self.data_path(&format!("/composite/sobjects/{object}/{external_id_field}"));
        self.collection_write(Method::PATCH, &path, &records, all_or_none, true)
            .await
    }

    /// Deletes records by id, 200 per call.
    pub async fn delete(
        &self,
        ids: &[String],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let parts = in_chunks(ids, COLLECTION_MAX, |chunk| async move {
            let query = [
                ("ids", chunk.join(",")),
                ("allOrNone", all_or_none.to_string()),
            ];
            let v = self
                .request(
                    Method::DELETE,
                    &self.data_path("/composite/sobjects"),
                    &query,
                    None,
                    true,
                )
                .await?;
            Ok::<_, SalesforceError>(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(RecordResult::from_json)
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// Records of one type by id, 2,000 per call; `None` for ids the org does not have.
    pub async fn retrieve(
        &self,
        object: &str,
        ids: &[String],
        fields: &[&str],
    ) -> Result<Vec<Option<Value>>, SalesforceError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(RETRIEVE_MAX) {
            let body = json!({"ids": chunk, "fields": fields});
            let v = self
                .request(
                    Method::POST,
                    &self.data_path(&format!("/composite/sobjects/{object}")),
                    &[],
                    Some(&body),
                    true,
                )
                .await?;
            out.extend(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| (!r.is_null()).then(|| r.clone())),
            );
        }
        Ok(out)
    }
}
