//! The HubSpot client as the pipeline's [`HubSpotApi`] port.

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::search::{SEARCH_CAP, SEARCH_PAGE};
use super::{HubSpotClient, HubSpotError};
use crate::ports::crm::{
    BatchOutcome, CrmError, EmailEventPage, HsRecord, HubSpotApi, JoinPage, Modified, NewRecord,
    Owner, SubmissionPage,
};

impl From<HubSpotError> for CrmError {
    fn from(e: HubSpotError) -> Self {
        let message = match &e {
            HubSpotError::Api(api) => api.message.clone(),
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
impl HubSpotApi for HubSpotClient {
    async fn batch_read(
        &self,
        object: &str,
        ids: &[String],
        properties: &[&str],
        with_history: &[&str],
        id_property: Option<&str>,
    ) -> Result<Vec<HsRecord>, CrmError> {
        HubSpotClient::batch_read(self, object, ids, properties, with_history, id_property)
            .await
            .map_err(CrmError::from)
    }
    async fn batch_update(
        &self,
        object: &str,
        inputs: &[(String, Map<String, Value>)],
    ) -> Result<BatchOutcome, CrmError> {
        HubSpotClient::batch_update(self, object, inputs)
            .await
            .map_err(CrmError::from)
    }
    async fn batch_upsert(
        &self,
        object: &str,
        id_property: &str,
        inputs: &[(String, Map<String, Value>)],
    ) -> Result<BatchOutcome, CrmError> {
        HubSpotClient::batch_upsert(self, object, id_property, inputs)
            .await
            .map_err(CrmError::from)
    }
    async fn batch_create(
        &self,
        object: &str,
        inputs: &[NewRecord],
    ) -> Result<BatchOutcome, CrmError> {
        HubSpotClient::batch_create(self, object, inputs)
            .await
            .map_err(CrmError::from)
    }
    fn creates_associated(&self, from: &str, to: &str) -> bool {
        super::objects::default_association(from, to).is_some()
    }
    async fn batch_archive(&self, object: &str, ids: &[String]) -> Result<(), CrmError> {
        HubSpotClient::batch_archive(self, object, ids)
            .await
            .map_err(CrmError::from)
    }
    async fn changed_since(
        &self,
        object: &str,
        modified: Modified,
        properties: &[&str],
    ) -> Result<Vec<HsRecord>, CrmError> {
        HubSpotClient::changed_since(self, object, modified, properties)
            .await
            .map_err(CrmError::from)
    }
    async fn list_page(
        &self,
        object: &str,
        properties: &[&str],
        associations: &[&str],
        archived: bool,
        after: Option<&str>,
    ) -> Result<(Vec<HsRecord>, Option<String>), CrmError> {
        HubSpotClient::list_page(self, object, properties, associations, archived, after)
            .await
            .map_err(CrmError::from)
    }
    async fn search(&self, object: &str, body: &Value) -> Result<Vec<HsRecord>, CrmError> {
        let mut body = body.clone();
        let mut records = Vec::new();
        loop {
            let page = HubSpotClient::search(self, object, &body).await?;
            records.extend(page.records);
            match (page.next_after, body.as_object_mut()) {
                (Some(after), Some(b)) if after + SEARCH_PAGE <= SEARCH_CAP => {
                    b.insert("after".into(), Value::from(after.to_string()));
                }
                _ => return Ok(records),
            }
        }
    }
    async fn search_any(
        &self,
        object: &str,
        any: &[(String, String)],
        properties: &[String],
    ) -> Result<Vec<HsRecord>, CrmError> {
        HubSpotClient::search_any(self, object, any, properties)
            .await
            .map_err(CrmError::from)
    }
    async fn custom_object_types(&self) -> Result<Vec<(String, String)>, CrmError> {
        HubSpotClient::custom_object_types(self)
            .await
            .map_err(CrmError::from)
    }
    async fn owners(&self) -> Result<Vec<Owner>, CrmError> {
        HubSpotClient::owners(self).await.map_err(CrmError::from)
    }
    async fn properties(&self, object: &str) -> Result<Vec<Value>, CrmError> {
        HubSpotClient::properties(self, object)
            .await
            .map_err(CrmError::from)
    }
    fn calls_made(&self) -> u64 {
        self.calls().total()
    }
    fn daily_usage(&self) -> Option<(u64, u64)> {
        HubSpotClient::daily_usage(self)
    }
    fn record_url(&self, object: &str, id: &str) -> Option<String> {
        HubSpotClient::record_url(self, object, id)
    }
    async fn list_members(&self, list_id: &str) -> Result<Vec<String>, CrmError> {
        HubSpotClient::list_members(self, list_id)
            .await
            .map_err(CrmError::from)
    }
    async fn list_joins(&self, list_id: &str, after: Option<&str>) -> Result<JoinPage, CrmError> {
        HubSpotClient::list_joins(self, list_id, after)
            .await
            .map_err(CrmError::from)
    }
    async fn email_events(
        &self,
        kind: &str,
        since: i64,
        until: i64,
        offset: Option<&str>,
    ) -> Result<EmailEventPage, CrmError> {
        HubSpotClient::email_events(self, kind, since, until, offset)
            .await
            .map_err(CrmError::from)
    }
    async fn email_subject(&self, campaign_id: &str) -> Result<String, CrmError> {
        HubSpotClient::email_subject(self, campaign_id)
            .await
            .map_err(CrmError::from)
    }
    async fn form_name(&self, form_id: &str) -> Result<String, CrmError> {
        HubSpotClient::form_name(self, form_id)
            .await
            .map_err(CrmError::from)
    }
    async fn form_submissions(
        &self,
        form_id: &str,
        after: Option<&str>,
    ) -> Result<SubmissionPage, CrmError> {
        HubSpotClient::form_submissions(self, form_id, after)
            .await
            .map_err(CrmError::from)
    }
    async fn members_among(
        &self,
        list_id: &str,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<String>, CrmError> {
        HubSpotClient::members_among(self, list_id, object, ids)
            .await
            .map_err(CrmError::from)
    }
    async fn associations(
        &self,
        from: &str,
        to: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Vec<String>)>, CrmError> {
        HubSpotClient::associations(self, from, to, ids)
            .await
            .map_err(CrmError::from)
    }
    async fn associate(
        &self,
        from: &str,
        to: &str,
        pairs: &[(String, String)],
    ) -> Result<(), CrmError> {
        HubSpotClient::associate(self, from, to, pairs)
            .await
            .map_err(CrmError::from)
    }
}
