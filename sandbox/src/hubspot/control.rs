//! The control API (`/_sandbox/hubspot/...`): acts as a person in the HubSpot UI (its
//! changes are attributed to a user, never to the integration), seeds data, injects
//! faults, reads call counters, dumps records and moves the clock. No auth: the sandbox
//! listens on loopback only.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::api::body;
use super::error::HsError;
use super::limits::RateLimits;
use super::store::{ReadSpec, Source, UI_USER_ID};
use super::{Fault, HubSpot, PendingEdit, lock};
use crate::seed::SeedSpec;

const HUMAN: Source = Source::User(UI_USER_ID);

pub fn routes() -> Router<Arc<HubSpot>> {
    Router::new()
        .route("/seed", post(seed))
        .route("/objects/{object_type}", get(dump).post(create))
        .route("/objects/{object_type}/{id}", patch(update).delete(archive))
        .route("/objects/{object_type}/merge", post(merge))
        .route("/objects/{object_type}/{id}/restore", post(restore))
        .route(
            "/objects/{object_type}/{id}/associations/{to_type}/{to_id}",
            put(associate),
        )
        .route(
            "/lists/{list_id}/memberships",
            put(super::lists::person_change),
        )
        .route("/faults", post(faults))
        .route("/counters", get(counters))
        .route("/writes", get(writes))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance))
        .route("/settings", put(settings))
        .route("/webhooks", get(webhook_state).put(webhook_settings))
}

type Reply = Result<Response, HsError>;

fn props(v: &Value) -> Map<String, Value> {
    v.get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Every property of a record, archived ones included, for assertions.
fn full(hs: &HubSpot, object_type: &str, id: u64) -> Result<Value, HsError> {
    let portal = lock(&hs.portal);
    let objects = portal.objects(object_type)?;
    let record = objects
        .records
        .get(&objects.resolve(id))
        .ok_or_else(|| HsError::not_found(&objects.kind.upper, id))?;
    let mut names: Vec<String> = objects.properties.keys().map(|k| k.to_string()).collect();
    names.sort();
    let spec = ReadSpec {
        properties: Some(names),
        with_history: Vec::new(),
    };
    Ok(portal.render(objects, record, &spec))
}

async fn seed(State(hs): State<Arc<HubSpot>>, bytes: Bytes) -> Reply {
    let v = if bytes.is_empty() {
        json!({})
    } else {
        body(&bytes)?
    };
    let spec = SeedSpec {
        seed: v.get("seed").and_then(Value::as_u64).unwrap_or(1),
        records: v.get("records").and_then(Value::as_u64).unwrap_or(100) as usize,
        overlap: v.get("overlap").and_then(Value::as_f64).unwrap_or(0.5),
        deals: v.get("deals").and_then(Value::as_u64).map(|d| d as usize),
    };
    let now = hs.clock.now_ms();
    let world = crate::seed::generate(spec);
    let counts = super::seed::seed(
        &mut lock(&hs.portal),
        &mut lock(&hs.associations),
        &world,
        now,
    )?;
    Ok(Json(counts).into_response())
}

async fn create(
    State(hs): State<Arc<HubSpot>>,
    Path(object_type): Path<String>,
    bytes: Bytes,
) -> Reply {
    let v = body(&bytes)?;
    let now = hs.clock.now_ms();
    let id = lock(&hs.portal).create(&object_type, &props(&v), now, HUMAN)?;
    Ok((StatusCode::CREATED, Json(full(&hs, &object_type, id)?)).into_response())
}

async fn update(
    State(hs): State<Arc<HubSpot>>,
    Path((object_type, id)): Path<(String, u64)>,
    bytes: Bytes,
) -> Reply {
    let v = body(&bytes)?;
    let now = hs.clock.now_ms();
    lock(&hs.portal).update(&object_type, id, &props(&v), now, HUMAN)?;
    Ok(Json(full(&hs, &object_type, id)?).into_response())
}

async fn archive(
    State(hs): State<Arc<HubSpot>>,
    Path((object_type, id)): Path<(String, u64)>,
) -> Reply {
    let now = hs.clock.now_ms();
    lock(&hs.portal).archive(&object_type, id, now, HUMAN)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Restores an archived record, as a person restoring it from the recycle bin.
async fn restore(
    State(hs): State<Arc<HubSpot>>,
    Path((object_type, id)): Path<(String, String)>,
) -> Reply {
    let now = hs.clock.now_ms();
    let id: u64 = id
        .parse()
        .map_err(|_| HsError::validation(format!("not a record id: {id}")))?;
    lock(&hs.portal).restore(&object_type, id, now, HUMAN)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A person associates two records (HubSpot's default association type).
async fn associate(
    State(hs): State<Arc<HubSpot>>,
    Path((object_type, id, to_type, to_id)): Path<(String, String, String, String)>,
) -> Reply {
    super::associations::person_associates(&hs, (&object_type, &id), (&to_type, &to_id), HUMAN)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn merge(
    State(hs): State<Arc<HubSpot>>,
    Path(object_type): Path<String>,
    bytes: Bytes,
) -> Reply {
    let v = body(&bytes)?;
    let id = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str().and_then(|s| s.parse().ok()).or(x.as_u64()))
            .ok_or_else(|| HsError::validation(format!("{k} must be a record id")))
    };
    let now = hs.clock.now_ms();
    let new_id = lock(&hs.portal).merge(
        &object_type,
        id("primaryObjectId")?,
        id("objectIdToMerge")?,
        now,
        HUMAN,
    )?;
    Ok(Json(full(&hs, &object_type, new_id)?).into_response())
}

async fn dump(State(hs): State<Arc<HubSpot>>, Path(object_type): Path<String>) -> Reply {
    let ids: Vec<u64> = {
        let portal = lock(&hs.portal);
        portal
            .objects(&object_type)?
            .records
            .keys()
            .copied()
            .collect()
    };
    let records = ids
        .into_iter()
        .map(|id| full(&hs, &object_type, id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({"results": records})).into_response())
}

/// `{"faults": [{"status": 429}, {"status": 503}, {"delay_ms": 2000}], "repeat": 1}`:
/// the next integration calls meet these, in order.
async fn faults(State(hs): State<Arc<HubSpot>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let repeat = v.get("repeat").and_then(Value::as_u64).unwrap_or(1) as usize;
    let list = v
        .get("faults")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut parsed = Vec::new();
    for f in &list {
        if let Some(edit) = f.get("person_edit") {
            let reads = f.get("after_reads").and_then(Value::as_u64).unwrap_or(1);
            hs.schedule_edit(reads.min(1_000) as u32, person_edit(edit)?);
            continue;
        }
        let fault = match (
            f.get("status").and_then(Value::as_u64),
            f.get("delay_ms").and_then(Value::as_u64),
            f.get("drop").and_then(Value::as_bool),
        ) {
            (Some(s), _, _) => Fault::Status(s as u16),
            (None, Some(ms), _) => Fault::Delay(ms),
            (None, None, Some(true)) => Fault::Drop,
            _ => {
                return Err(HsError::validation(
                    "a fault is {\"status\": N}, {\"delay_ms\": N}, {\"drop\": true} or {\"person_edit\": {\"object\", \"id\", \"properties\"}, \"after_reads\": N}",
                ));
            }
        };
        parsed.push(fault);
    }
    let n = parsed.len() * repeat;
    hs.inject(parsed.into_iter().cycle().take(n));
    Ok(Json(json!({"queued": n})).into_response())
}

/// `{"person_edit": {"object": "contacts", "id": "51", "properties": {...}}, "after_reads": 1}`:
/// a person's edit that lands right after the integration's next reads (`0`: as the
/// next read arrives, before it is answered).
fn person_edit(edit: &Value) -> Result<PendingEdit, HsError> {
    let id = edit
        .get("id")
        .and_then(|x| x.as_str().and_then(|s| s.parse().ok()).or(x.as_u64()))
        .ok_or_else(|| HsError::validation("person_edit.id must be a record id"))?;
    let object_type = edit
        .get("object")
        .and_then(Value::as_str)
        .ok_or_else(|| HsError::validation("person_edit.object is required"))?;
    Ok(PendingEdit {
        object_type: object_type.to_owned(),
        id,
        properties: props(edit),
    })
}

async fn counters(State(hs): State<Arc<HubSpot>>) -> Reply {
    Ok(Json(json!(hs.counters())).into_response())
}

/// How often the integration wrote each record: `{"contacts/100001": 2, ...}`.
async fn writes(State(hs): State<Arc<HubSpot>>) -> Reply {
    Ok(Json(json!(lock(&hs.portal).integration_writes)).into_response())
}

async fn clock(State(hs): State<Arc<HubSpot>>) -> Reply {
    Ok(Json(json!({"now_ms": hs.clock.now_ms()})).into_response())
}

async fn advance(State(hs): State<Arc<HubSpot>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let ms = v
        .get("ms")
        .and_then(Value::as_i64)
        .ok_or_else(|| HsError::validation("expected {\"ms\": N}"))?;
    hs.clock.advance(ms);
    Ok(Json(json!({"now_ms": hs.clock.now_ms()})).into_response())
}

/// `{"search_lag_ms": 0, "limits": null | {"per_ten_seconds": 190, "daily": 625000, "search_per_second": 5}}`
async fn settings(State(hs): State<Arc<HubSpot>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    if let Some(lag) = v.get("search_lag_ms").and_then(Value::as_i64) {
        lock(&hs.settings).search_lag_ms = lag;
        lock(&hs.portal).search_lag_ms = lag;
    }
    if let Some(l) = v.get("limits") {
        let defaults = RateLimits::default();
        lock(&hs.settings).limits = match l {
            Value::Null => None,
            l => Some(RateLimits {
                per_ten_seconds: l
                    .get("per_ten_seconds")
                    .and_then(Value::as_u64)
                    .map_or(defaults.per_ten_seconds, |n| n as u32),
                daily: l
                    .get("daily")
                    .and_then(Value::as_u64)
                    .unwrap_or(defaults.daily),
                search_per_second: l
                    .get("search_per_second")
                    .and_then(Value::as_u64)
                    .map_or(defaults.search_per_second, |n| n as u32),
            }),
        };
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `{"target_url": "http://127.0.0.1:8080/webhooks/hubspot", "app_secret": "...", "imperfect": true}`
async fn webhook_settings(State(hs): State<Arc<HubSpot>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let mut w = lock(&hs.webhooks);
    if let Some(url) = v.get("target_url") {
        w.settings.target_url = url.as_str().map(str::to_owned);
    }
    if let Some(secret) = v.get("app_secret").and_then(Value::as_str) {
        w.settings.app_secret = secret.to_owned();
    }
    if let Some(imperfect) = v.get("imperfect").and_then(Value::as_bool) {
        w.settings.imperfect = imperfect;
    }
    let rate = |k: &str| -> Result<Option<f64>, HsError> {
        match v.get(k) {
            None => Ok(None),
            Some(x) => x
                .as_f64()
                .filter(|r| (0.0..=1.0).contains(r))
                .map(Some)
                .ok_or_else(|| HsError::validation(format!("{k} must be between 0 and 1"))),
        }
    };
    if let Some(r) = rate("loss_rate")? {
        w.settings.loss_rate = r;
    }
    if let Some(r) = rate("duplicate_rate")? {
        w.settings.duplicate_rate = r;
    }
    if let Some(ms) = v.get("delay_ms_max") {
        w.settings.delay_ms_max = ms
            .as_i64()
            .filter(|m| (0..=86_400_000).contains(m))
            .ok_or_else(|| HsError::validation("delay_ms_max must be 0 to 86400000"))?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn webhook_state(State(hs): State<Arc<HubSpot>>) -> Reply {
    let w = lock(&hs.webhooks);
    Ok(Json(json!({
        "target_url": w.settings.target_url,
        "imperfect": w.settings.imperfect,
        "loss_rate": w.settings.loss_rate,
        "duplicate_rate": w.settings.duplicate_rate,
        "delay_ms_max": w.settings.delay_ms_max,
        "lost": w.lost,
        "pending": w.pending(),
        "delivered": w.delivered,
        "failed": w.failed,
        "abandoned": w.abandoned,
    }))
    .into_response())
}
