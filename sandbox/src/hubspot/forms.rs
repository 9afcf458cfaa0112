//! Forms and their submissions: a visitor submits a form (the control API), which
//! creates or updates the contact with that email, as HubSpot does; the integration
//! reads a form's submissions newest first (`GET /form-integrations/v1/submissions/
//! forms/{guid}`, at most 50 a page, `after` to page on).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::api::{Params, body};
use super::error::HsError;
use super::store::{Source, UI_USER_ID};
use super::{HubSpot, lock};

/// One submission, as the API shows it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub conversion_id: String,
    pub submitted_at: i64,
    pub values: Vec<(String, String)>,
    pub page_url: String,
}

#[derive(Debug, Clone)]
pub struct Form {
    pub guid: String,
    pub name: String,
    /// Oldest first.
    pub submissions: Vec<Submission>,
}

#[derive(Debug, Default)]
pub struct Forms {
    forms: BTreeMap<String, Form>,
    next: u64,
}

impl Forms {
    fn create(&mut self, name: &str) -> &Form {
        self.next += 1;
        // A form's guid, in HubSpot's shape.
        let guid = format!("5f1c{:04x}-0000-4000-8000-{:012x}", self.next, self.next);
        self.forms.entry(guid.clone()).or_insert(Form {
            guid,
            name: name.to_owned(),
            submissions: Vec::new(),
        })
    }
}

pub fn routes() -> Router<Arc<HubSpot>> {
    Router::new()
        .route(
            "/form-integrations/v1/submissions/forms/{guid}",
            get(submissions),
        )
        .route("/marketing/v3/forms/{guid}", get(read_form))
}

/// `GET /marketing/v3/forms/{formId}`: the form's definition (its name, here).
async fn read_form(State(hs): State<Arc<HubSpot>>, Path(guid): Path<String>) -> Reply {
    let forms = lock(&hs.forms);
    let form = forms.forms.get(&guid).ok_or_else(|| not_found(&guid))?;
    Ok(
        Json(json!({"id": form.guid, "name": form.name, "formType": "hubspot", "archived": false}))
            .into_response(),
    )
}

/// The control API's routes: a form made in the UI, and a visitor's submission.
pub fn control_routes() -> Router<Arc<HubSpot>> {
    Router::new()
        .route("/forms", post(create_form))
        .route("/forms/{guid}/submit", post(submit))
}

type Reply = Result<Response, HsError>;

fn not_found(guid: &str) -> HsError {
    HsError::new(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("Form {guid} not found"),
    )
}

/// Newest first; `after` is the offset of the next page (opaque to callers).
async fn submissions(
    State(hs): State<Arc<HubSpot>>,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    let params = Params::parse(q)?;
    let limit = match params.one("limit") {
        None => 20,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=50).contains(l))
            .ok_or_else(|| {
                HsError::validation(format!("limit must be between 1 and 50, got {l}"))
            })?,
    };
    let offset = match params.one("after") {
        None => 0,
        Some(a) => a
            .parse::<usize>()
            .map_err(|_| HsError::validation(format!("Invalid after: {a}")))?,
    };
    let forms = lock(&hs.forms);
    let form = forms.forms.get(&guid).ok_or_else(|| not_found(&guid))?;
    let newest_first: Vec<&Submission> = form.submissions.iter().rev().collect();
    let page: Vec<Value> = newest_first
        .iter()
        .skip(offset)
        .take(limit)
        .map(|s| {
            let values: Vec<Value> = s
                .values
                .iter()
                .map(|(n, v)| json!({"name": n, "value": v}))
                .collect();
            json!({"conversionId": s.conversion_id, "submittedAt": s.submitted_at, "values": values, "pageUrl": s.page_url})
        })
        .collect();
    let mut out = json!({ "results": page });
    if offset + limit < newest_first.len() {
        out["paging"] = json!({"next": {"after": (offset + limit).to_string()}});
    }
    Ok(Json(out).into_response())
}

/// `POST /_sandbox/hubspot/forms` `{"name": "..."}` -> `{"guid": "..."}`.
async fn create_form(State(hs): State<Arc<HubSpot>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| HsError::validation("name is required"))?;
    let mut forms = lock(&hs.forms);
    let form = forms.create(name);
    Ok((
        StatusCode::CREATED,
        Json(json!({"guid": form.guid, "name": form.name})),
    )
        .into_response())
}

/// `POST /_sandbox/hubspot/forms/{guid}/submit` `{"values": {"email": ..., ...}}`: a
/// visitor submits the form. The contact with that email is created or updated with
/// the values (contact properties), and the submission is kept.
async fn submit(State(hs): State<Arc<HubSpot>>, Path(guid): Path<String>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let values: Map<String, Value> = v
        .get("values")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| HsError::validation("values is required"))?;
    let email = values
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| e.contains('@'))
        .ok_or_else(|| HsError::validation("a submission needs an email"))?
        .to_owned();
    if !lock(&hs.forms).forms.contains_key(&guid) {
        return Err(not_found(&guid));
    }
    let now = hs.clock.now_ms();
    let visitor = Source::User(UI_USER_ID);
    let contact = {
        let mut portal = lock(&hs.portal);
        let existing = portal.objects("contacts")?.find(&email, Some("email"));
        match existing {
            Some(id) => {
                portal.update("contacts", id, &values, now, visitor)?;
                id
            }
            None => portal.create("contacts", &values, now, visitor)?,
        }
    };
    let mut forms = lock(&hs.forms);
    let form = forms.forms.get_mut(&guid).ok_or_else(|| not_found(&guid))?;
    let conversion_id = format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        now as u64 & 0xffff_ffff,
        form.submissions.len(),
        contact
    );
    form.submissions.push(Submission {
        conversion_id: conversion_id.clone(),
        submitted_at: now,
        values: values
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect(),
        page_url: "https://www.example.com/contact-us".into(),
    });
    Ok((
        StatusCode::OK,
        Json(json!({"conversionId": conversion_id, "contactId": contact.to_string()})),
    )
        .into_response())
}
