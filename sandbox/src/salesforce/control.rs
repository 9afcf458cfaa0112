//! The control API (`/_sandbox/salesforce/...`): acts as the org's admin (never the
//! integration user), converts leads, seeds, injects faults, sets org rules, reads
//! counters, dumps records and moves the clock. No auth: loopback only.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::error::{SfError, SfFailure};
use super::places::{Place, Places};
use super::store::{RuleCondition, ValidationRule, WriteOptions, Writer};
use super::{Fault, PendingEdit, Salesforce, query};
use crate::hubspot::lock;
use crate::seed::SeedSpec;

const ADMIN: Writer = Writer::Human;

pub fn routes() -> Router<Arc<Salesforce>> {
    Router::new()
        .route("/seed", post(seed))
        .route("/objects/{object}", get(dump).post(create))
        .route("/objects/{object}/load", post(load))
        .route(
            "/objects/{object}/{id}",
            axum::routing::patch(update).delete(remove),
        )
        .route("/leads/{id}/convert", post(convert))
        .route("/objects/{object}/{id}/undelete", post(undelete))
        .route(
            "/faults",
            post(faults).get(fault_state).delete(clear_faults),
        )
        .route("/faults/release", post(release_held))
        .route("/sessions/revoke", post(revoke))
        .route("/counters", get(counters))
        .route("/writes", get(writes))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance))
        .route("/settings", put(settings))
        .route("/validation-rules", post(add_rule).delete(remove_rules))
        .route(
            "/schema/{object}/fields/{field}",
            axum::routing::delete(remove_field),
        )
        .route("/outbound", get(outbound_state).put(outbound_settings))
}

type Reply = Result<Response, SfFailure>;

fn body(bytes: &Bytes) -> Result<Value, SfFailure> {
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| SfFailure::bad_request(vec![SfError::new("JSON_PARSER_ERROR", e.to_string())]))
}

fn full(sf: &Salesforce, id: &str) -> Result<Value, SfFailure> {
    let org = lock(&sf.org);
    let (o, r) = org.get(id).ok_or_else(SfFailure::not_found)?;
    let names: Vec<String> = o.fields.iter().map(|f| f.name.clone()).collect();
    Ok(query::render(&org, o, r, &names))
}

async fn seed(State(sf): State<Arc<Salesforce>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let spec = SeedSpec {
        seed: v.get("seed").and_then(Value::as_u64).unwrap_or(1),
        records: v.get("records").and_then(Value::as_u64).unwrap_or(100) as usize,
        overlap: v.get("overlap").and_then(Value::as_f64).unwrap_or(0.5),
        deals: v.get("deals").and_then(Value::as_u64).map(|d| d as usize),
    };
    let now = sf.clock.now_ms();
    let counts = super::seed::seed(&mut lock(&sf.org), &crate::seed::generate(spec), now);
    Ok(Json(counts).into_response())
}

async fn create(
    State(sf): State<Arc<Salesforce>>,
    Path(object): Path<String>,
    bytes: Bytes,
) -> Reply {
    let v = body(&bytes)?;
    let now = sf.clock.now_ms();
    let fields: Map<String, Value> = v.as_object().cloned().unwrap_or_default();
    let id = lock(&sf.org)
        .create(
            &object,
            &fields,
            now,
            ADMIN,
            WriteOptions {
                allow_duplicates: true,
            },
        )
        .map_err(SfFailure::bad_request)?;
    Ok((StatusCode::CREATED, Json(full(&sf, &id)?)).into_response())
}

/// A data load by an admin (Data Loader, an import wizard): many records of one
/// sObject at once, `{"records": [{fields}, ...]}` -> `{"ids": [...]}`. It stops at
/// the first record refused; those before it stay, as a Data Loader run leaves them.
async fn load(
    State(sf): State<Arc<Salesforce>>,
    Path(object): Path<String>,
    bytes: Bytes,
) -> Reply {
    let v = body(&bytes)?;
    let rows = v.get("records").and_then(Value::as_array).ok_or_else(|| {
        SfFailure::bad_request(vec![SfError::new(
            "JSON_PARSER_ERROR",
            "expected {\"records\": [...]}",
        )])
    })?;
    let now = sf.clock.now_ms();
    let mut org = lock(&sf.org);
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let fields: Map<String, Value> = row.as_object().cloned().unwrap_or_default();
        let id = org
            .create(
                &object,
                &fields,
                now,
                ADMIN,
                WriteOptions {
                    allow_duplicates: true,
                },
            )
            .map_err(SfFailure::bad_request)?;
        ids.push(id);
    }
    Ok((StatusCode::CREATED, Json(json!({ "ids": ids }))).into_response())
}

async fn update(
    State(sf): State<Arc<Salesforce>>,
    Path((object, id)): Path<(String, String)>,
    bytes: Bytes,
) -> Reply {
    let v = body(&bytes)?;
    let now = sf.clock.now_ms();
    let fields: Map<String, Value> = v.as_object().cloned().unwrap_or_default();
    lock(&sf.org)
        .update(
            Some(&object),
            &id,
            &fields,
            now,
            ADMIN,
            WriteOptions {
                allow_duplicates: true,
            },
        )
        .map_err(SfFailure::bad_request)?;
    Ok(Json(full(&sf, &id)?).into_response())
}

async fn remove(State(sf): State<Arc<Salesforce>>, Path((_, id)): Path<(String, String)>) -> Reply {
    let now = sf.clock.now_ms();
    lock(&sf.org).delete(&id, now, ADMIN)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn dump(State(sf): State<Arc<Salesforce>>, Path(object): Path<String>) -> Reply {
    let org = lock(&sf.org);
    let o = org.object(&object).ok_or_else(SfFailure::not_found)?;
    let names: Vec<String> = o.fields.iter().map(|f| f.name.clone()).collect();
    let records: Vec<Value> = org
        .records(o.name)
        .map(|r| query::render(&org, o, r, &names))
        .collect();
    Ok(Json(json!({"records": records})).into_response())
}

/// `{"accountId": "001...", "contactId": "003...", "createOpportunity": true}`
async fn convert(State(sf): State<Arc<Salesforce>>, Path(id): Path<String>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let now = sf.clock.now_ms();
    let result = lock(&sf.org)
        .convert_lead(
            &id,
            v.get("accountId").and_then(Value::as_str),
            v.get("contactId").and_then(Value::as_str),
            v.get("createOpportunity")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            now,
        )
        .map_err(SfFailure::bad_request)?;
    Ok(Json(result).into_response())
}

/// Restores a record from the recycle bin, as an admin does.
async fn undelete(
    State(sf): State<Arc<Salesforce>>,
    Path((_, id)): Path<(String, String)>,
) -> Reply {
    let now = sf.clock.now_ms();
    lock(&sf.org)
        .undelete(&id, now)
        .map_err(|e| SfFailure::bad_request(vec![e]))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `{"faults": [{"status": 503}, {"delay_ms": 500}, {"lock_row": true},
/// {"hold": true, "when": "LeadHistory"}], "repeat": 1}`
async fn faults(State(sf): State<Arc<Salesforce>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let repeat = v.get("repeat").and_then(Value::as_u64).unwrap_or(1) as usize;
    let mut parsed = Vec::new();
    for f in v
        .get("faults")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        if let Some(edit) = f.get("person_edit") {
            let text = |k: &str| edit.get(k).and_then(Value::as_str).map(str::to_owned);
            let (Some(object), Some(id)) = (text("object"), text("id")) else {
                return Err(SfFailure::bad_request(vec![SfError::new(
                    "INVALID_FAULT",
                    "person_edit needs object and id",
                )]));
            };
            let reads = f.get("after_reads").and_then(Value::as_u64).unwrap_or(1);
            let fields = edit
                .get("fields")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let edit = PendingEdit { object, id, fields };
            sf.schedule_edit(reads.clamp(1, 1_000) as u32, edit);
            continue;
        }
        let when = f.get("when").and_then(Value::as_str).map(str::to_owned);
        let fault = if let Some(s) = f.get("status").and_then(Value::as_u64) {
            match when {
                Some(text) => Fault::StatusWhen(s as u16, text),
                None => Fault::Status(s as u16),
            }
        } else if f.get("hold").and_then(Value::as_bool) == Some(true) {
            match when {
                Some(text) => Fault::HoldWhen(text),
                None => {
                    return Err(SfFailure::bad_request(vec![SfError::new(
                        "INVALID_FAULT",
                        "a hold needs \"when\": the text of the call it holds",
                    )]));
                }
            }
        } else if let Some(ms) = f.get("delay_ms").and_then(Value::as_u64) {
            Fault::Delay(ms)
        } else if f.get("lock_row").and_then(Value::as_bool) == Some(true) {
            Fault::LockRow
        } else {
            return Err(SfFailure::bad_request(vec![SfError::new(
                "INVALID_FAULT",
                "a fault is {\"status\": N} (with \"when\": text, only calls whose path and query hold it), {\"delay_ms\": N}, {\"lock_row\": true}, {\"hold\": true, \"when\": text} (until POST /faults/release) or {\"person_edit\": {\"object\", \"id\", \"fields\"}, \"after_reads\": N}",
            )]));
        };
        parsed.push(fault);
    }
    let n = parsed.len() * repeat;
    sf.inject(parsed.into_iter().cycle().take(n));
    Ok(Json(json!({"queued": n})).into_response())
}

/// Ends an injected outage: the faults not yet used are dropped, `{"cleared": n}`.
async fn clear_faults(State(sf): State<Arc<Salesforce>>) -> Reply {
    Ok(Json(json!({"cleared": sf.clear_faults()})).into_response())
}

/// `{"pending": faults not yet used, "held": calls waiting for a release}`.
async fn fault_state(State(sf): State<Arc<Salesforce>>) -> Reply {
    let (pending, held) = sf.fault_state();
    Ok(Json(json!({"pending": pending, "held": held})).into_response())
}

/// Lets the calls held by a `hold` fault go on: `{"released": n}`.
async fn release_held(State(sf): State<Arc<Salesforce>>) -> Reply {
    Ok(Json(json!({"released": sf.release_held()})).into_response())
}

async fn revoke(State(sf): State<Arc<Salesforce>>) -> Reply {
    sf.revoke_all();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn counters(State(sf): State<Arc<Salesforce>>) -> Reply {
    Ok(Json(json!({"calls": sf.counters(), "api_usage": sf.api_usage()})).into_response())
}

/// How often the integration wrote each record: `{"00Q...": 2, ...}`.
async fn writes(State(sf): State<Arc<Salesforce>>) -> Reply {
    Ok(Json(json!(lock(&sf.org).integration_writes)).into_response())
}

async fn clock(State(sf): State<Arc<Salesforce>>) -> Reply {
    Ok(Json(json!({"now_ms": sf.clock.now_ms()})).into_response())
}

async fn advance(State(sf): State<Arc<Salesforce>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let ms = v.get("ms").and_then(Value::as_i64).unwrap_or(0);
    sf.clock.advance(ms);
    Ok(Json(json!({"now_ms": sf.clock.now_ms()})).into_response())
}

/// `{"daily_api_limit": 100000 | null, "session_ttl_ms": N, "duplicate_rules": bool,
/// "state_country_picklists": bool, "places": {"countries": [{"code", "label", "active"}],
/// "states": [{"country", "code", "label", "active"}]}, "read_only_objects": [..],
/// "read_only_records": [..], "batch_size": N}`
async fn settings(State(sf): State<Arc<Salesforce>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    {
        let mut s = lock(&sf.settings);
        if let Some(l) = v.get("daily_api_limit") {
            s.daily_api_limit = l.as_u64();
        }
        if let Some(t) = v.get("session_ttl_ms").and_then(Value::as_i64) {
            s.session_ttl_ms = t;
        }
        if let Some(b) = v.get("batch_size").and_then(Value::as_u64) {
            s.batch_size = b as usize;
        }
    }
    let mut org = lock(&sf.org);
    if let Some(b) = v.get("duplicate_rules").and_then(Value::as_bool) {
        org.duplicate_rules = b;
    }
    if let Some(b) = v.get("state_country_picklists").and_then(Value::as_bool) {
        org.state_country_picklists = b;
    }
    if let Some(p) = v.get("places") {
        customize_places(&mut org.places, p)
            .map_err(|m| SfFailure::bad_request(vec![SfError::new("INVALID_FIELD", m)]))?;
    }
    if let Some(x) = v.get("modstamp_skew_ms") {
        org.modstamp_skew_ms = x
            .as_i64()
            .filter(|m| (0..=3_600_000).contains(m))
            .ok_or_else(|| {
                SfFailure::bad_request(vec![SfError::new(
                    "INVALID_FIELD",
                    "modstamp_skew_ms must be 0 to 3600000",
                )])
            })?;
    }
    let strings = |k: &str| -> Option<Vec<String>> {
        v.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
    };
    if let Some(tracked) = v.get("history_tracked").and_then(Value::as_object) {
        for (object, fields) in tracked {
            let fields: Vec<String> = fields
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            org.set_history_tracked(object, &fields)
                .map_err(|m| SfFailure::bad_request(vec![SfError::new("INVALID_FIELD", m)]))?;
        }
    }
    if let Some(objects) = strings("read_only_objects") {
        org.read_only_objects = objects.into_iter().collect();
    }
    if let Some(records) = strings("read_only_records") {
        org.read_only_records = records
            .into_iter()
            .filter_map(|r| super::ids::to18(&r))
            .collect();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `{"object": "Lead", "name": "Phone_Required", "field": "Phone", "when": "blank" |
/// {"equals": "x"} | {"longer_than": N}, "message": "..."}`
async fn add_rule(State(sf): State<Arc<Salesforce>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let condition = match v.get("when") {
        Some(Value::String(s)) if s == "blank" => RuleCondition::Blank,
        Some(w) if w.get("equals").is_some() => {
            RuleCondition::Equals(w["equals"].as_str().unwrap_or_default().to_owned())
        }
        Some(w) if w.get("longer_than").is_some() => {
            RuleCondition::LongerThan(w["longer_than"].as_u64().unwrap_or(0) as usize)
        }
        _ => {
            return Err(SfFailure::bad_request(vec![SfError::new(
                "INVALID_RULE",
                "when is \"blank\", {\"equals\": \"x\"} or {\"longer_than\": N}",
            )]));
        }
    };
    let (Some(object), Some(field), Some(message)) =
        (text("object"), text("field"), text("message"))
    else {
        return Err(SfFailure::bad_request(vec![SfError::new(
            "INVALID_RULE",
            "object, field and message are required",
        )]));
    };
    lock(&sf.org).validation_rules.push(ValidationRule {
        name: text("name").unwrap_or_else(|| format!("{object}_{field}_rule")),
        object,
        field,
        condition,
        message,
    });
    Ok(StatusCode::CREATED.into_response())
}

/// Removes every validation rule (an admin fixing what blocked records).
async fn remove_rules(State(sf): State<Arc<Salesforce>>) -> Reply {
    lock(&sf.org).validation_rules.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deletes a field from an object, as an admin deleting a custom field: describe stops
/// listing it, and queries and writes naming it fail with INVALID_FIELD.
async fn remove_field(
    State(sf): State<Arc<Salesforce>>,
    Path((object, field)): Path<(String, String)>,
) -> Reply {
    let mut org = lock(&sf.org);
    let def = org
        .objects
        .iter_mut()
        .find(|o| o.name.eq_ignore_ascii_case(&object))
        .ok_or_else(SfFailure::not_found)?;
    let before = def.fields.len();
    def.fields.retain(|f| !f.name.eq_ignore_ascii_case(&field));
    if def.fields.len() == before {
        return Err(SfFailure::not_found());
    }
    org.define_objects();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `{"url": "http://127.0.0.1:8080/webhooks/salesforce?token=..." | null, "objects": ["Lead", "Contact"]}`
async fn outbound_settings(State(sf): State<Arc<Salesforce>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let mut s = lock(&sf.settings);
    if let Some(url) = v.get("url") {
        s.outbound.url = url.as_str().map(str::to_owned);
    }
    let rate = |key: &str| -> Result<Option<f64>, SfFailure> {
        match v.get(key) {
            None => Ok(None),
            Some(x) => x
                .as_f64()
                .filter(|r| (0.0..=1.0).contains(r))
                .map(Some)
                .ok_or_else(|| {
                    SfFailure::bad_request(vec![SfError::new(
                        "INVALID_FIELD",
                        format!("{key} must be between 0 and 1"),
                    )])
                }),
        }
    };
    if let Some(r) = rate("loss_rate")? {
        s.outbound.loss_rate = r;
    }
    if let Some(r) = rate("duplicate_rate")? {
        s.outbound.duplicate_rate = r;
    }
    if let Some(x) = v.get("delay_ms_max") {
        s.outbound.delay_ms_max = x
            .as_i64()
            .filter(|m| (0..=86_400_000).contains(m))
            .ok_or_else(|| {
                SfFailure::bad_request(vec![SfError::new(
                    "INVALID_FIELD",
                    "delay_ms_max must be 0 to 86400000",
                )])
            })?;
    }
    if let Some(objects) = v.get("objects").and_then(Value::as_array) {
        s.outbound.objects = objects
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn outbound_state(State(sf): State<Arc<Salesforce>>) -> Reply {
    let url = lock(&sf.settings).outbound.url.clone();
    let o = lock(&sf.outbound);
    Ok(Json(json!({
        "url": url,
        "pending": o.pending(),
        "lost": o.lost,
        "delivered": o.delivered,
        "failed": o.failed,
        "abandoned": o.abandoned,
    }))
    .into_response())
}

/// An admin's customization of the State and Country/Territory picklists: each entry adds
/// a value or replaces the one with its code (`active` defaults to true).
fn customize_places(places: &mut Places, v: &Value) -> Result<(), String> {
    let place = |e: &Value, what: &str| -> Result<Place, String> {
        let text = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("places.{what}: each needs a \"{k}\""))
        };
        Ok(Place {
            code: text("code")?,
            label: text("label")?,
            active: e.get("active").and_then(Value::as_bool).unwrap_or(true),
        })
    };
    let list = |k: &str| -> Result<Vec<Value>, String> {
        match v.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(_) => Err(format!("places.{k} must be a list")),
        }
    };
    for e in list("countries")? {
        places.set_country(place(&e, "countries")?);
    }
    for e in list("states")? {
        let country = e
            .get("country")
            .and_then(Value::as_str)
            .ok_or("places.states: each needs a \"country\" (its code)")?;
        if !places.countries.iter().any(|c| c.code == country) {
            return Err(format!("places.states: no country with code {country}"));
        }
        places.set_state(country, place(&e, "states")?);
    }
    Ok(())
}
