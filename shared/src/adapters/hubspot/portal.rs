//! The portal around the records: properties, owners, pipelines, lists and their
//! memberships, associations v4, and merges. Every list pages to its end.

use reqwest::Method;
use serde_json::{Value, json};

use super::objects::{HsRecord, id_inputs};
use super::{HubSpotClient, HubSpotError, Idempotent, together};
use crate::adapters::http::in_chunks;
use crate::domain::value::parse_datetime_millis;
use crate::ports::{
    EmailEvent, EmailEventPage, FormSubmission, JoinPage, ListJoin, SubmissionPage,
};

/// Records per list-membership page (HubSpot's maximum).
const MEMBERSHIP_PAGE: usize = 250;
/// Email events per page: the API's most.
const EMAIL_EVENT_PAGE: usize = 1_000;
/// Form submissions per page: HubSpot's most.
const SUBMISSION_PAGE: usize = 50;
/// Records per membership batch read (HubSpot states no limit for this endpoint; 100 is
/// its other batch reads' and keeps a request small).
const MEMBERSHIP_BATCH: usize = 100;
/// Inputs per association batch read.
const ASSOCIATION_READ_MAX: usize = 1_000;
/// Inputs per association batch create.
const ASSOCIATION_CREATE_MAX: usize = 2_000;

pub use crate::ports::crm::Owner;

impl HubSpotClient {
    /// Every property of an object type, as HubSpot describes it.
    pub async fn properties(&self, object: &str) -> Result<Vec<Value>, HubSpotError> {
        let a = self
            .request(
                Method::GET,
                &format!("/crm/v3/properties/{object}"),
                &[],
                None,
                Idempotent::Yes,
            )
            .await?;
        Ok(a.body
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Creates a property unless it exists (what `crmsync setup` needs).
    pub async fn ensure_property(
        &self,
        object: &str,
        definition: &Value,
    ) -> Result<bool, HubSpotError> {
        match self
            .request(
                Method::POST,
                &format!("/crm/v3/properties/{object}"),
                &[],
                Some(definition),
                Idempotent::Yes,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every owner, page by page.
    /// The portal's custom object types: (object type id `2-1001`, fully qualified
    /// name `p_machines`).
    pub async fn custom_object_types(&self) -> Result<Vec<(String, String)>, HubSpotError> {
        let a = self
            .request(Method::GET, "/crm/v3/schemas", &[], None, Idempotent::Yes)
            .await?;
        Ok(a.body
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let id = s.get("objectTypeId").or_else(|| s.get("id"))?.as_str()?;
                let name = s.get("fullyQualifiedName")?.as_str()?;
                Some((id.to_owned(), name.to_owned()))
            })
            .collect())
    }

    pub async fn owners(&self) -> Result<Vec<Owner>, HubSpotError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("limit", "100".to_owned())];
            if let Some(a) = &after {
                query.push(("after", a.clone()));
            }
            let a = self
                .request(Method::GET, "/crm/v3/owners", &query, None, Idempotent::Yes)
                .await?;
            for o in a
                .body
                .get("results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(id), Some(email)) = (
                    o.get("id").and_then(Value::as_str),
                    o.get("email").and_then(Value::as_str),
                ) {
                    out.push(Owner {
                        id: id.to_owned(),
                        email: email.to_owned(),
                    });
                }
            }
            match a.body.pointer("/paging/next/after").and_then(Value::as_str) {
                Some(next) => after = Some(next.to_owned()),
                None => return Ok(out),
            }
        }
    }

    /// The pipelines of `deals` or `tickets`, with their stages.
    pub async fn pipelines(&self, object: &str) -> Result<Vec<Value>, HubSpotError> {
        let a = self
            .request(
                Method::GET,
                &format!("/crm/v3/pipelines/{object}"),
                &[],
                None,
                Idempotent::Yes,
            )
            .await?;
        Ok(a.body
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Every record id in a list, page by page.
    pub async fn list_members(&self, list_id: &str) -> Result<Vec<String>, HubSpotError> {
        let path = format!("/crm/v3/lists/{list_id}/memberships");
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (results, next) = self
                .results_page(&path, MEMBERSHIP_PAGE, after.as_deref())
                .await?;
            out.extend(
                results
                    .iter()
                    .filter_map(|m| m.get("recordId").and_then(Value::as_str).map(str::to_owned)),
            );
            match next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// One page of a listing that answers `results` and `paging.next.after`.
    async fn results_page(
        &self,
        path: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), HubSpotError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(a) = after {
            query.push(("after", a.to_owned()));
        }
        let a = self
            .request(Method::GET, path, &query, None, Idempotent::Yes)
            .await?;
        let results = a
            .body
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let next = a
            .body
            .pointer("/paging/next/after")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok((results, next))
    }

    /// One page (250) of a list's members in the order they joined.
    pub async fn list_joins(
        &self,
        list_id: &str,
        after: Option<&str>,
    ) -> Result<JoinPage, HubSpotError> {
        let path = format!("/crm/v3/lists/{list_id}/memberships/join-order");
        let (results, next) = self.results_page(&path, MEMBERSHIP_PAGE, after).await?;
        let joins = results
            .iter()
            .filter_map(|m| {
                Some(ListJoin {
                    record_id: m.get("recordId")?.as_str()?.to_owned(),
                    joined_at: parse_datetime_millis(m.get("membershipTimestamp")?.as_str()?)?,
                })
            })
            .collect();
        Ok(JoinPage { joins, next })
    }

    /// A page (1,000, the API's most) of marketing email events of `kind` created in
    /// `[since, until]` (`GET /email/public/v1/events`).
    pub async fn email_events(
        &self,
        kind: &str,
        since: i64,
        until: i64,
        offset: Option<&str>,
    ) -> Result<EmailEventPage, HubSpotError> {
        let mut query = vec![
            ("eventType", kind.to_owned()),
            ("startTimestamp", since.to_string()),
            ("endTimestamp", until.to_string()),
            ("limit", EMAIL_EVENT_PAGE.to_string()),
        ];
        if let Some(o) = offset {
            query.push(("offset", o.to_owned()));
        }
        let a = self
            .request(
                Method::GET,
                "/email/public/v1/events",
                &query,
                None,
                Idempotent::Yes,
            )
            .await?;
        let events = a
            .body
            .get("events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some(EmailEvent {
                    id: e.get("id")?.as_str()?.to_owned(),
                    created: e.get("created")?.as_i64()?,
                    recipient: e.get("recipient")?.as_str()?.to_owned(),
                    kind: e.get("type")?.as_str()?.to_owned(),
                    campaign_id: e.get("emailCampaignId").map(|c| match c {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }),
                })
            })
            .collect();
        let more = a.body.get("hasMore").and_then(Value::as_bool) == Some(true);
        let next = more
            .then(|| {
                a.body
                    .get("offset")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .flatten();
        Ok(EmailEventPage { events, next })
    }

    /// A marketing email's subject (`GET /email/public/v1/campaigns/{id}`).
    pub async fn email_subject(&self, campaign_id: &str) -> Result<String, HubSpotError> {
        let a = self
            .request(
                Method::GET,
                &format!("/email/public/v1/campaigns/{campaign_id}"),
                &[],
                None,
                Idempotent::Yes,
            )
            .await?;
        Ok(a.body
            .get("subject")
            .or_else(|| a.body.get("name"))
            .and_then(Value::as_str)
            .unwrap_or(campaign_id)
            .to_owned())
    }

    /// A form's name (`GET /marketing/v3/forms/{formId}`).
    pub async fn form_name(&self, form_id: &str) -> Result<String, HubSpotError> {
        let a = self
            .request(
                Method::GET,
                &format!("/marketing/v3/forms/{form_id}"),
                &[],
                None,
                Idempotent::Yes,
            )
            .await?;
        Ok(a.body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(form_id)
            .to_owned())
    }

    /// One page (50, HubSpot's most) of a form's submissions, newest first.
    pub async fn form_submissions(
        &self,
        form_id: &str,
        after: Option<&str>,
    ) -> Result<SubmissionPage, HubSpotError> {
        let path = format!("/form-integrations/v1/submissions/forms/{form_id}");
        let (results, next) = self.results_page(&path, SUBMISSION_PAGE, after).await?;
        let submissions = results
            .iter()
            .filter_map(|s| {
                let email = s
                    .get("values")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|v| v.get("name").and_then(Value::as_str) == Some("email"))
                    .and_then(|v| v.get("value"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Some(FormSubmission {
                    conversion_id: s.get("conversionId")?.as_str()?.to_owned(),
                    submitted_at: s.get("submittedAt")?.as_i64()?,
                    email,
                })
            })
            .collect();
        Ok(SubmissionPage { submissions, next })
    }

    /// Which of `ids` are in the list now, read per record (100 a call) rather than
    /// paging the whole list.
    pub async fn members_among(
        &self,
        list_id: &str,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<String>, HubSpotError> {
        let parts = in_chunks(ids, MEMBERSHIP_BATCH, |chunk| async move {
            let inputs: Vec<Value> = chunk
                .iter()
                .map(|id| json!({"objectTypeId": super::object_type_id(object), "recordId": id}))
                .collect();
            let a = self
                .request(
                    Method::POST,
                    "/crm/v3/lists/records/memberships/batch/read",
                    &[],
                    Some(&json!({ "inputs": inputs })),
                    Idempotent::Yes,
                )
                .await?;
            let members: Vec<String> = a
                .body
                .get("results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|r| {
                    r.get("recordListMemberships")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|m| list_id_of(m).as_deref() == Some(list_id))
                })
                .filter_map(|r| r.get("recordId").and_then(Value::as_str).map(str::to_owned))
                .collect();
            Ok::<_, HubSpotError>(members)
        })
        .await?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// The lists a record belongs to.
    pub async fn lists_of(
        &self,
        object_type_id: &str,
        record_id: &str,
    ) -> Result<Vec<String>, HubSpotError> {
        let a = self
            .request(
                Method::GET,
                &format!("/crm/v3/lists/records/{object_type_id}/{record_id}/memberships"),
                &[],
                None,
                Idempotent::Yes,
            )
            .await?;
        Ok(a.body
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("listId").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// The records of `to` associated with each of `ids` (of `from`), 1,000 per call.
    pub async fn associations(
        &self,
        from: &str,
        to: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Vec<String>)>, HubSpotError> {
        let mut out = Vec::new();
        let path = format!("/crm/v4/associations/{from}/{to}/batch/read");
        for chunk in ids.chunks(ASSOCIATION_READ_MAX) {
            // Read with the other reads of these associations waiting at the limiter.
            let answer = self
                .read_together(
                    &path,
                    &path,
                    ASSOCIATION_READ_MAX,
                    chunk,
                    &[],
                    |all, _| json!({"inputs": id_inputs(all)}),
                )
                .await?;
            let together::Answer {
                ids: asked, body, ..
            } = answer.as_ref();
            for r in body
                .get("results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let from_id = r
                    .pointer("/from/id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let targets = r
                    .get("to")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| match t.get("toObjectId") {
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(Value::Number(n)) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect();
                if together::answers(chunk, asked, &from_id) {
                    out.push((from_id, targets));
                }
            }
        }
        Ok(out)
    }

    /// Links pairs with HubSpot's default (unlabeled) association, 2,000 per call, with
    /// the other associations of these objects waiting at the limiter (each worker's
    /// batch makes a few dozen: alone, an initial sync spent a call per batch on them).
    pub async fn associate(
        &self,
        from: &str,
        to: &str,
        pairs: &[(String, String)],
    ) -> Result<(), HubSpotError> {
        let path = format!("/crm/v4/associations/{from}/{to}/batch/associate/default");
        for chunk in pairs.chunks(ASSOCIATION_CREATE_MAX) {
            // Keyed by the pair: one call names a pair once.
            let inputs: Vec<(String, Value)> = chunk
                .iter()
                .map(|(f, t)| {
                    (
                        format!("{f}>{t}"),
                        json!({"from": {"id": f}, "to": {"id": t}}),
                    )
                })
                .collect();
            self.write_together(&path, &path, ASSOCIATION_CREATE_MAX, &inputs)
                .await?;
        }
        Ok(())
    }

    /// Merges `other` into `primary`; returns the merged record (a new id for contacts
    /// and companies).
    pub async fn merge(
        &self,
        object: &str,
        primary: &str,
        other: &str,
    ) -> Result<HsRecord, HubSpotError> {
        let body = json!({"primaryObjectId": primary, "objectIdToMerge": other});
        let a = self
            .request(
                Method::POST,
                &format!("/crm/v3/objects/{object}/merge"),
                &[],
                Some(&body),
                Idempotent::No,
            )
            .await?;
        HsRecord::from_json(&a.body)
    }
}

/// A membership's list id: a string in the lists API's newer answers, a number in the
/// batch read's documented example.
fn list_id_of(membership: &Value) -> Option<String> {
    match membership.get("listId")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
