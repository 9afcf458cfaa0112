//! Where pushes enter: HubSpot webhooks, Salesforce outbound messages, manual sync
//! requests and the health check. Framework-free (a request in, a response out), so the
//! Lambda behind API Gateway and the local runner's HTTP server share every rule.
//!
//! Nothing is queued unless the request is authentic and well formed (4xx otherwise),
//! and nothing is acknowledged unless it was queued (5xx, so the sender retries).

pub mod hubspot;
pub mod salesforce;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::Pipeline;
use crate::domain::Side;
use crate::ports::{CursorStore, RELEASED_FOR_ALL, Seen, WorkItem, WorkQueue};
use crate::secret::Secret;

/// Bodies larger than this are refused (a HubSpot batch of 100 events or a Salesforce
/// message of 100 notifications is far smaller).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a delivered event id is remembered, to drop redeliveries.
const EVENT_TTL_MS: i64 = 24 * 3_600_000;

/// Numbers requests, so each claims its event keys under its own name.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// What the intake needs to know about its deployment.
#[derive(Debug, Clone, Default)]
pub struct IntakeSettings {
    /// The base URL the CRMs call (`https://abc.execute-api.../prod`); HubSpot signs the
    /// full URL it called, which is this plus the route.
    pub public_url: String,
    pub hubspot_app_secret: Option<Secret>,
    pub salesforce_org_id: Option<String>,
    /// The secret in the outbound message URL (`?token=...`).
    pub salesforce_outbound_token: Option<Secret>,
    /// The bearer key `POST /sync` and `GET /health` require.
    pub api_key: Option<Secret>,
}

/// A request, as any HTTP front end hands it over.
#[derive(Debug, Clone, Default)]
pub struct IntakeRequest {
    pub method: String,
    /// The route (`/webhooks/hubspot`), without any API Gateway stage prefix.
    pub path: String,
    pub query: Option<String>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl IntakeRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Headers beyond the content type (a login challenge).
    pub headers: Vec<(&'static str, String)>,
}

impl IntakeResponse {
    fn json(status: u16, body: Value) -> Self {
        IntakeResponse {
            status,
            content_type: "application/json",
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Self::json(status, json!({"error": message}))
    }

    fn soap(status: u16, body: String) -> Self {
        IntakeResponse {
            status,
            content_type: "text/xml; charset=utf-8",
            body,
            headers: Vec::new(),
        }
    }
}

/// The intake: one per process.
#[derive(Clone)]
pub struct Intake {
    pub settings: IntakeSettings,
    pub pipeline: Pipeline,
    pub queue: Arc<dyn WorkQueue>,
    pub cursors: Arc<dyn CursorStore>,
}

fn secret_matches(expected: &Secret, given: &str) -> bool {
    bool::from(expected.expose().as_bytes().ct_eq(given.as_bytes()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncRequest {
    #[serde(default)]
    records: Vec<SyncRecord>,
    #[serde(default)]
    hubspot_list: Option<String>,
    /// `salesforce:Lead`: import every record of the object into HubSpot (the poller
    /// lists them, checkpointed).
    #[serde(default)]
    import: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncRecord {
    side: Side,
    object: String,
    id: String,
}

impl Intake {
    pub async fn handle(&self, request: &IntakeRequest) -> IntakeResponse {
        if request.body.len() > MAX_BODY_BYTES {
            return IntakeResponse::error(413, "the body is larger than 1 MiB");
        }
        let path = request.path.trim_end_matches('/');
        match (request.method.as_str(), path) {
            ("POST", "/webhooks/hubspot") => self.hubspot_webhook(request).await,
            ("POST", "/webhooks/salesforce") => self.salesforce_outbound(request).await,
            ("POST", "/sync") => self.manual_sync(request).await,
            ("GET", "/health") => self.health(request).await,
            ("GET", "/dashboard") => self.dashboard(request).await,
            (
                _,
                "/webhooks/hubspot" | "/webhooks/salesforce" | "/sync" | "/health" | "/dashboard",
            ) => IntakeResponse::error(405, "method not allowed"),
            _ => IntakeResponse::error(404, "no such route"),
        }
    }

    /// Queues items whose event keys were not seen before; the keys are claimed first
    /// and released if the enqueue fails, so the sender's retry is not dropped.
    async fn enqueue_new(&self, keyed: Vec<(String, WorkItem)>) -> Result<usize, String> {
        let now = self.pipeline.clock.now_ms();
        let owner = format!(
            "intake-{}-{now}-{}",
            std::process::id(),
            REQUESTS.fetch_add(1, Ordering::Relaxed)
        );
        let (keys, items): (Vec<String>, Vec<WorkItem>) = keyed
            .into_iter()
            .map(|(key, item)| (format!("event:{key}"), item))
            .unzip();
        if keys.is_empty() {
            return Ok(0);
        }
        // A delivery's keys in one call (it holds up to 100 events). One that failed
        // part way may have taken some: this request's owner lets them all go, so that
        // the sender's retry is not taken for a duplicate.
        let claimed = match self
            .pipeline
            .claims
            .claim_all(&keys, &owner, EVENT_TTL_MS, now)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                self.release(&keys, &owner).await;
                return Err(e.to_string());
            }
        };
        let mut fresh = Vec::new();
        let mut taken = Vec::new();
        for ((key, item), claimed) in keys.into_iter().zip(items).zip(claimed) {
            if claimed {
                taken.push(key);
                if !fresh.contains(&item) {
                    fresh.push(item);
                }
            }
        }
        if fresh.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.queue.send(&fresh).await {
            self.release(&taken, &owner).await;
            return Err(e.to_string());
        }
        Ok(fresh.len())
    }

    async fn release(&self, keys: &[String], owner: &str) {
        let _ = self
            .pipeline
            .claims
            .release_all(keys, owner, RELEASED_FOR_ALL)
            .await;
    }

    async fn hubspot_webhook(&self, request: &IntakeRequest) -> IntakeResponse {
        let Some(secret) = &self.settings.hubspot_app_secret else {
            return IntakeResponse::error(
                401,
                "HubSpot webhooks are not configured (no app secret)",
            );
        };
        let mut uri = format!(
            "{}{}",
            self.settings.public_url.trim_end_matches('/'),
            request.path
        );
        if let Some(q) = request.query.as_deref().filter(|q| !q.is_empty()) {
            uri = format!("{uri}?{q}");
        }
        let verified = hubspot::verify(
            secret.expose(),
            "POST",
            &uri,
            &request.body,
            request.header("x-hubspot-signature-v3"),
            request.header("x-hubspot-request-timestamp"),
            self.pipeline.clock.now_ms(),
        );
        if let Err(e) = verified {
            tracing::info!(message = "refused a HubSpot webhook", reason = %e);
            return IntakeResponse::error(401, &e.to_string());
        }
        let events = match hubspot::events(&request.body) {
            Ok(e) => e,
            Err(e) => return IntakeResponse::error(400, &e.to_string()),
        };
        let mut keyed = Vec::new();
        let mut seen = Vec::new();
        let mut items = Vec::with_capacity(events.len());
        let mut ids = Vec::with_capacity(events.len());
        for mut e in events {
            e.item.object = self.pipeline.hubspot_object_name(&e.item.object);
            // A property's change may be synced from the link and the webhook alone,
            // without a read (`pushed.rs`): it says nothing of the rest of the record as
            // modified then (an edit whose webhook was lost), which the feed's read of
            // that modification still brings.
            let property = matches!(e.item.seen, Some(Seen::Property { .. }));
            if let (Some(at), false) = (e.at, property) {
                seen.push((format!("hubspot:{}", e.item.object), e.item.id.clone(), at));
            }
            ids.push(format!("hubspot:{}", e.event_id));
            items.push(e.item);
        }
        // A linked record's creation, or a property set to the value last synced
        // (most often our own write, come back): nothing to queue. The delivery's
        // links are looked up together (a delivery holds up to 100 events).
        let echoes = self.pipeline.are_echoes(&items).await;
        for ((id, item), echo) in ids.into_iter().zip(items).zip(echoes) {
            if !echo {
                keyed.push((id, item));
            }
        }
        match self.enqueue_new(keyed).await {
            Ok(n) => {
                self.pipeline.mark_seen(&seen).await;
                IntakeResponse::json(200, json!({"queued": n}))
            }
            Err(e) => IntakeResponse::error(503, &format!("could not queue the events: {e}")),
        }
    }

    async fn salesforce_outbound(&self, request: &IntakeRequest) -> IntakeResponse {
        let (Some(org), Some(token)) = (
            &self.settings.salesforce_org_id,
            &self.settings.salesforce_outbound_token,
        ) else {
            return IntakeResponse::soap(
                401,
                salesforce::fault("outbound messages are not configured"),
            );
        };
        let given = request.query_param("token").unwrap_or_default();
        if !secret_matches(token, &given) {
            return IntakeResponse::soap(401, salesforce::fault("wrong or missing token"));
        }
        let message = match salesforce::parse(&request.body, org) {
            Ok(m) => m,
            Err(e @ salesforce::OutboundError::WrongOrganization) => {
                return IntakeResponse::soap(403, salesforce::fault(&e.to_string()));
            }
            Err(e) => return IntakeResponse::soap(400, salesforce::fault(&e.to_string())),
        };
        let mut keyed = Vec::with_capacity(message.notifications.len());
        let mut seen = Vec::new();
        let mut items = Vec::with_capacity(message.notifications.len());
        let mut ids = Vec::with_capacity(message.notifications.len());
        for n in message.notifications {
            let stamp = n.fields.get("SystemModstamp");
            if let Some(at) = stamp.and_then(|t| crate::domain::value::parse_datetime_millis(t)) {
                seen.push((
                    format!("salesforce:{}", n.item.object),
                    n.item.id.clone(),
                    at,
                ));
            }
            let modified_at = n
                .fields
                .get("LastModifiedDate")
                .and_then(|t| crate::domain::value::parse_datetime_millis(t))
                .unwrap_or(0);
            let mut item = n.item;
            item.seen = Some(Seen::Values {
                values: n
                    .fields
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
                modified_at,
                // The message's fields are the ones its rule sends, not the pair's.
                whole: false,
                listed_at: None,
                associations: Default::default(),
            });
            ids.push(format!("salesforce:{}:{}", n.id, item.id));
            items.push(item);
        }
        // The fields as the message gave them: our own write come back is not queued,
        // here or (its link stored by then) at the worker. The message's links are
        // looked up together (a message holds up to 100 notifications).
        let echoes = self.pipeline.are_echoes(&items).await;
        for ((id, item), echo) in ids.into_iter().zip(items).zip(echoes) {
            if !echo {
                keyed.push((id, item));
            }
        }
        match self.enqueue_new(keyed).await {
            Ok(_) => {
                self.pipeline.mark_seen(&seen).await;
                IntakeResponse::soap(200, salesforce::ACK.to_owned())
            }
            Err(e) => IntakeResponse::soap(503, salesforce::fault(&format!("not queued: {e}"))),
        }
    }

    /// The bearer key, or (for a browser) HTTP Basic with the key as the password.
    fn authorized(&self, request: &IntakeRequest) -> bool {
        let Some(key) = &self.settings.api_key else {
            return false;
        };
        let header = request.header("authorization").unwrap_or("");
        if let Some(given) = header.strip_prefix("Bearer ") {
            return secret_matches(key, given.trim());
        }
        let basic = header
            .strip_prefix("Basic ")
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok());
        match basic.as_deref().and_then(|b| b.split_once(':')) {
            Some((_, password)) => secret_matches(key, password),
            None => false,
        }
    }

    async fn manual_sync(&self, request: &IntakeRequest) -> IntakeResponse {
        if !self.authorized(request) {
            return IntakeResponse::error(401, "a valid bearer key is required");
        }
        let parsed: SyncRequest = match serde_json::from_slice(&request.body) {
            Ok(r) => r,
            Err(e) => {
                return IntakeResponse::error(
                    400,
                    &format!(
                        "expected {{\"records\": [...]}}, {{\"hubspot_list\": \"ID\"}} or {{\"import\": \"salesforce:Lead\"}}: {e}"
                    ),
                );
            }
        };
        if let Some(target) = &parsed.import {
            if !parsed.records.is_empty() || parsed.hubspot_list.is_some() {
                return IntakeResponse::error(400, "an import is asked for on its own");
            }
            let sobject = match self.pipeline.import_target(target) {
                Ok(o) => o,
                Err(e) => return IntakeResponse::error(400, &e.to_string()),
            };
            return match self
                .pipeline
                .start_import(self.cursors.as_ref(), &sobject)
                .await
            {
                Ok((start, _)) => IntakeResponse::json(
                    202,
                    json!({"import": format!("salesforce:{sobject}"), "start": start}),
                ),
                Err(e) => IntakeResponse::error(503, &format!("import not started: {e}")),
            };
        }
        let mut items = Vec::new();
        for r in parsed.records {
            let item = WorkItem {
                side: r.side,
                object: r.object.clone(),
                id: r.id.clone(),
                origin: "manual".into(),
                seen: None,
            };
            let known = self.pipeline.pair_of(&item).is_some();
            if !known || r.id.is_empty() || r.id.len() > 64 {
                return IntakeResponse::error(
                    400,
                    &format!(
                        "not a record crmsync syncs: {} {} {:?}",
                        r.side, r.object, r.id
                    ),
                );
            }
            items.push(item);
        }
        if let Some(list) = parsed.hubspot_list {
            match self.pipeline.list_items(&list).await {
                Ok(members) => items.extend(members),
                Err(e) => {
                    return IntakeResponse::error(502, &format!("could not read list {list}: {e}"));
                }
            }
        }
        if items.is_empty() {
            return IntakeResponse::error(
                400,
                "nothing to sync: give records, a hubspot_list or an import",
            );
        }
        for chunk in items.chunks(500) {
            if let Err(e) = self.queue.send(chunk).await {
                return IntakeResponse::error(503, &format!("could not queue: {e}"));
            }
        }
        // Queued either way; a paused sync takes them on resume.
        let paused = matches!(self.pipeline.controls().await, Ok(c) if c.paused.is_some());
        IntakeResponse::json(202, json!({"queued": items.len(), "paused": paused}))
    }

    async fn health(&self, request: &IntakeRequest) -> IntakeResponse {
        if !self.authorized(request) {
            return IntakeResponse::error(401, "a valid bearer key is required");
        }
        let queue = Some(self.queue.as_ref());
        match super::health::report(&self.pipeline, self.cursors.as_ref(), queue).await {
            Ok(h) => IntakeResponse::json(200, serde_json::to_value(h).unwrap_or(Value::Null)),
            Err(e) => IntakeResponse::error(503, &e.to_string()),
        }
    }

    /// The sync-health page; a browser without the key gets a login prompt (the key
    /// is the password, any user name).
    async fn dashboard(&self, request: &IntakeRequest) -> IntakeResponse {
        if !self.authorized(request) {
            let mut answer = IntakeResponse::error(401, "a valid key is required");
            answer.headers.push((
                "www-authenticate",
                "Basic realm=\"crmsync\", charset=\"UTF-8\"".into(),
            ));
            return answer;
        }
        let pipeline = &self.pipeline;
        let since = pipeline.clock.now_ms() - super::dashboard::CHART_HOURS * 3_600_000;
        let page = async {
            let health =
                super::health::report(pipeline, self.cursors.as_ref(), Some(self.queue.as_ref()))
                    .await?;
            let series = pipeline.telemetry.series(since).await?;
            let errors = super::health::errors(pipeline, None, None, 5).await?;
            Ok::<_, crate::ports::StoreError>(super::dashboard::render(&health, &series, &errors))
        };
        match page.await {
            Ok(html) => IntakeResponse {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: html,
                headers: vec![("cache-control", "no-store".into())],
            },
            Err(e) => IntakeResponse::error(503, &e.to_string()),
        }
    }
}
