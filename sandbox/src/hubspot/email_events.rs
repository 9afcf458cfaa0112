//! Marketing emails and their events (the Email Events API, legacy v1): a send to some
//! contacts makes a SENT event per recipient; a recipient opening or clicking makes an
//! OPEN or CLICK event (the control API). The integration reads events by time window
//! and type (`GET /email/public/v1/events`, at most 1,000 a page, `offset` to page on)
//! and a campaign's subject (`GET /email/public/v1/campaigns/{id}`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::api::{Params, body};
use super::error::HsError;
use super::{HubSpot, lock};

const EVENT_TYPES: [&str; 3] = ["SENT", "OPEN", "CLICK"];
const PAGE_MAX: usize = 1_000;

#[derive(Debug, Clone)]
pub struct EmailEvent {
    pub id: String,
    pub created: i64,
    pub recipient: String,
    pub kind: &'static str,
    pub campaign: u64,
}

#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: u64,
    pub subject: String,
    pub name: String,
}

#[derive(Debug, Default)]
pub struct EmailEvents {
    campaigns: Vec<Campaign>,
    /// In the order they happened.
    events: Vec<EmailEvent>,
}

impl EmailEvents {
    fn record(&mut self, created: i64, recipient: &str, kind: &'static str, campaign: u64) {
        let id = format!("{:x}-{:x}", created, self.events.len());
        self.events.push(EmailEvent {
            id,
            created,
            recipient: recipient.to_lowercase(),
            kind,
            campaign,
        });
    }
}

pub fn routes() -> Router<Arc<HubSpot>> {
    Router::new()
        .route("/email/public/v1/events", get(events))
        .route("/email/public/v1/campaigns/{id}", get(campaign))
}

/// The control API's routes: a marketing email sent, and a recipient's open or click.
pub fn control_routes() -> Router<Arc<HubSpot>> {
    Router::new()
        .route("/marketing-emails", post(send))
        .route("/marketing-emails/{id}/events", post(interact))
}

type Reply = Result<Response, HsError>;

fn number(params: &Params, key: &str) -> Result<Option<i64>, HsError> {
    params
        .one(key)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| HsError::validation(format!("{key} must be a number, got {v}")))
        })
        .transpose()
}

/// Events with `created` in `[startTimestamp, endTimestamp]`, of `eventType` when
/// given, oldest first.
async fn events(State(hs): State<Arc<HubSpot>>, RawQuery(q): RawQuery) -> Reply {
    let params = Params::parse(q)?;
    let start = number(&params, "startTimestamp")?.unwrap_or(i64::MIN);
    let end = number(&params, "endTimestamp")?.unwrap_or(i64::MAX);
    let limit = number(&params, "limit")?.unwrap_or(100);
    if !(1..=PAGE_MAX as i64).contains(&limit) {
        return Err(HsError::validation(format!(
            "limit must be between 1 and {PAGE_MAX}, got {limit}"
        )));
    }
    let kind = params.one("eventType");
    if let Some(k) = kind
        && !EVENT_TYPES.contains(&k)
    {
        return Err(HsError::validation(format!("Unknown eventType {k}")));
    }
    let offset = number(&params, "offset")?.unwrap_or(0).max(0) as usize;
    let state = lock(&hs.email_events);
    let matching: Vec<&EmailEvent> = state
        .events
        .iter()
        .filter(|e| e.created >= start && e.created <= end)
        .filter(|e| kind.is_none_or(|k| e.kind == k))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit as usize)
        .map(|e| {
            json!({"id": e.id, "created": e.created, "recipient": e.recipient, "type": e.kind, "emailCampaignId": e.campaign, "portalId": super::webhooks::PORTAL_ID, "appName": "BatchMailer"})
        })
        .collect();
    let next = offset + page.len();
    Ok(Json(json!({
        "events": page,
        "hasMore": next < matching.len(),
        "offset": next.to_string(),
    }))
    .into_response())
}

async fn campaign(State(hs): State<Arc<HubSpot>>, Path(id): Path<String>) -> Reply {
    let state = lock(&hs.email_events);
    let c = id
        .parse::<u64>()
        .ok()
        .and_then(|n| state.campaigns.iter().find(|c| c.id == n))
        .ok_or_else(|| {
            HsError::new(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                format!("Campaign {id} not found"),
            )
        })?;
    Ok(
        Json(json!({"id": c.id, "subject": c.subject, "name": c.name, "type": "BATCH_EMAIL"}))
            .into_response(),
    )
}

/// `POST /_sandbox/hubspot/marketing-emails` `{"subject", "recipients": [emails]}`:
/// sent now, a SENT event per recipient; answers the campaign id.
async fn send(State(hs): State<Arc<HubSpot>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let subject = v
        .get("subject")
        .and_then(Value::as_str)
        .ok_or_else(|| HsError::validation("subject is required"))?
        .to_owned();
    let recipients: Vec<String> = v
        .get("recipients")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    let now = hs.clock.now_ms();
    let mut state = lock(&hs.email_events);
    let id = 40_000_000 + state.campaigns.len() as u64 + 1;
    state.campaigns.push(Campaign {
        id,
        name: subject.clone(),
        subject,
    });
    for r in &recipients {
        state.record(now, r, "SENT", id);
    }
    Ok((StatusCode::CREATED, Json(json!({"emailCampaignId": id}))).into_response())
}

/// `POST /_sandbox/hubspot/marketing-emails/{id}/events` `{"recipient", "type": "OPEN" |
/// "CLICK"}`: a recipient opens or clicks, now.
async fn interact(State(hs): State<Arc<HubSpot>>, Path(id): Path<u64>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let recipient = v
        .get("recipient")
        .and_then(Value::as_str)
        .ok_or_else(|| HsError::validation("recipient is required"))?
        .to_owned();
    let kind = match v.get("type").and_then(Value::as_str) {
        Some("OPEN") => "OPEN",
        Some("CLICK") => "CLICK",
        other => {
            return Err(HsError::validation(format!(
                "type must be OPEN or CLICK, got {other:?}"
            )));
        }
    };
    let now = hs.clock.now_ms();
    let mut state = lock(&hs.email_events);
    if !state.campaigns.iter().any(|c| c.id == id) {
        return Err(HsError::validation(format!("no campaign {id}")));
    }
    state.record(now, &recipient, kind, id);
    Ok(StatusCode::CREATED.into_response())
}
