//! The REST endpoints under `/services/data/vXX.X/`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::error::{SfError, SfFailure};
use super::query::{self, Matches};
use super::schema::{FieldDef, ObjectDef, SfType};
use super::store::{Org, WriteOptions, parse_datetime, sf_datetime};
use super::{API_VERSION, Caller, Cursor, Salesforce, ids, soql};
use crate::hubspot::lock;

/// Collections take at most this many records per call.
const COLLECTION_MAX: usize = 200;
/// Query cursors live two days.
const CURSOR_TTL_MS: i64 = 2 * 86_400_000;
const UPDATED_WINDOW_MS: i64 = 30 * 86_400_000;
const DELETED_WINDOW_MS: i64 = 15 * 86_400_000;

type Reply = Result<Response, SfFailure>;

pub fn public_routes() -> Router<Arc<Salesforce>> {
    Router::new()
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions))
}

pub fn routes() -> Router<Arc<Salesforce>> {
    let v = "/services/data/{version}";
    Router::new()
        .route(&format!("{v}/"), get(resources))
        .route(&format!("{v}/limits"), get(limits))
        .route(&format!("{v}/limits/"), get(limits))
        .route(&format!("{v}/query"), get(query_first))
        .route(&format!("{v}/query/"), get(query_first))
        .route(&format!("{v}/query/{{locator}}"), get(query_more))
        .route(&format!("{v}/queryAll"), get(query_all_first))
        .route(&format!("{v}/queryAll/"), get(query_all_first))
        .route(&format!("{v}/queryAll/{{locator}}"), get(query_more))
        .route(&format!("{v}/sobjects"), get(describe_global))
        .route(&format!("{v}/sobjects/"), get(describe_global))
        .route(&format!("{v}/sobjects/{{object}}"), post(create))
        .route(&format!("{v}/sobjects/{{object}}/"), post(create))
        .route(&format!("{v}/sobjects/{{object}}/describe"), get(describe))
        .route(&format!("{v}/sobjects/{{object}}/describe/"), get(describe))
        .route(&format!("{v}/sobjects/{{object}}/updated"), get(updated))
        .route(&format!("{v}/sobjects/{{object}}/updated/"), get(updated))
        .route(&format!("{v}/sobjects/{{object}}/deleted"), get(deleted))
        .route(&format!("{v}/sobjects/{{object}}/deleted/"), get(deleted))
        .route(
            &format!("{v}/sobjects/{{object}}/{{id}}"),
            get(read).patch(update).delete(remove),
        )
        .route(
            &format!("{v}/sobjects/{{object}}/{{field}}/{{value}}"),
            get(read_by_external_id).patch(upsert),
        )
        .route(
            &format!("{v}/composite/sobjects"),
            post(collection_create)
                .patch(collection_update)
                .delete(collection_delete),
        )
        .route(
            &format!("{v}/composite/sobjects/{{object}}"),
            get(collection_retrieve).post(collection_retrieve_post),
        )
        .route(
            &format!("{v}/composite/sobjects/{{object}}/{{field}}"),
            axum::routing::patch(collection_upsert),
        )
        .route(&format!("{v}/composite"), post(composite))
}

async fn versions() -> Response {
    Json(json!([
        {"label": "Spring '25", "url": "/services/data/v63.0", "version": "63.0"},
        {"label": "Summer '25", "url": "/services/data/v64.0", "version": "64.0"},
        {"label": "Winter '26", "url": "/services/data/v65.0", "version": "65.0"},
    ]))
    .into_response()
}

async fn resources(Path(version): Path<String>) -> Reply {
    let base = format!("/services/data/{version}");
    Ok(Json(json!({
        "sobjects": format!("{base}/sobjects"),
        "query": format!("{base}/query"),
        "queryAll": format!("{base}/queryAll"),
        "limits": format!("{base}/limits"),
        "composite": format!("{base}/composite"),
    }))
    .into_response())
}

async fn limits(State(sf): State<Arc<Salesforce>>) -> Reply {
    let max = lock(&sf.settings).daily_api_limit.unwrap_or(u64::MAX / 2);
    let used = sf.api_usage() as u64;
    Ok(Json(json!({
        "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)},
        "DailyBulkApiBatches": {"Max": 15_000, "Remaining": 15_000},
        "DailyBulkV2QueryJobs": {"Max": 10_000, "Remaining": 10_000},
        "DailyDeliveredPlatformEvents": {"Max": 50_000, "Remaining": 50_000},
    }))
    .into_response())
}

fn params(raw: Option<String>) -> Vec<(String, String)> {
    serde_urlencoded::from_str(&raw.unwrap_or_default()).unwrap_or_default()
}

fn param<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `Sforce-Query-Options: batchSize=N` (200..=2000; the org may send more or fewer).
fn batch_size(sf: &Salesforce, headers: &HeaderMap) -> usize {
    let default = lock(&sf.settings).batch_size;
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().strip_prefix("batchSize="))
        })
        .and_then(|n| n.trim().parse::<usize>().ok())
        .map_or(default, |n| n.clamp(200, 2_000))
}

fn page(
    sf: &Salesforce,
    version: &str,
    matches: Matches,
    batch: usize,
    offset: usize,
    locator: Option<String>,
) -> Value {
    let org = lock(&sf.org);
    let total = matches.ids.len();
    let Some(fields) = &matches.fields else {
        return json!({"totalSize": total, "done": true, "records": []});
    };
    let end = (offset + batch).min(total);
    let records: Vec<Value> = matches.ids[offset.min(total)..end]
        .iter()
        .filter_map(|id| org.get(id))
        .map(|(o, r)| query::render(&org, o, r, fields))
        .collect();
    drop(org);
    let mut out = json!({"totalSize": total, "done": end >= total, "records": records});
    if end < total {
        let expires_ms = sf.clock.now_ms() + CURSOR_TTL_MS;
        let locator = locator.unwrap_or_else(|| {
            sf.new_cursor(Cursor {
                matches,
                batch,
                expires_ms,
            })
        });
        out["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{locator}-{end}"));
    }
    out
}

async fn run_query(
    sf: Arc<Salesforce>,
    version: String,
    raw: Option<String>,
    headers: HeaderMap,
    all: bool,
) -> Reply {
    let p = params(raw);
    let q = param(&p, "q")
        .ok_or_else(|| SfFailure::malformed_query("A query string has to be specified"))?;
    let parsed = soql::parse(q).map_err(|e| SfFailure::malformed_query(e.0))?;
    let now = sf.clock.now_ms();
    let matches = {
        let org = lock(&sf.org);
        query::run(&org, q, &parsed, all, now)?
    };
    let batch = batch_size(&sf, &headers);
    Ok(Json(page(&sf, &version, matches, batch, 0, None)).into_response())
}

async fn query_first(
    State(sf): State<Arc<Salesforce>>,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Reply {
    run_query(sf, version, raw, headers, false).await
}

async fn query_all_first(
    State(sf): State<Arc<Salesforce>>,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Reply {
    run_query(sf, version, raw, headers, true).await
}

async fn query_more(
    State(sf): State<Arc<Salesforce>>,
    Path((version, locator)): Path<(String, String)>,
) -> Reply {
    let invalid = || {
        SfFailure::bad_request(vec![SfError::new(
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )])
    };
    let (id, offset) = locator.rsplit_once('-').ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    let cursor = lock(&sf.cursors).get(id).cloned().ok_or_else(invalid)?;
    if cursor.expires_ms <= sf.clock.now_ms() {
        lock(&sf.cursors).remove(id);
        return Err(invalid());
    }
    Ok(Json(page(
        &sf,
        &version,
        cursor.matches,
        cursor.batch,
        offset,
        Some(id.to_owned()),
    ))
    .into_response())
}

fn object_def(org: &Org, name: &str) -> Result<ObjectDef, SfFailure> {
    org.object(name).cloned().ok_or_else(|| {
        SfFailure::new(
            StatusCode::NOT_FOUND,
            SfError::new("NOT_FOUND", "The requested resource does not exist"),
        )
    })
}

/// With State and Country picklists on, an address's code fields list the org's values:
/// the state code depends on the country code.
fn describe_places(org: &Org, field: &mut Value) {
    let Some(name) = field["name"].as_str().map(str::to_owned) else {
        return;
    };
    if name.ends_with("CountryCode") {
        field["picklistValues"] = json!(org.places.country_values());
        field["restrictedPicklist"] = json!(true);
    } else if let Some(prefix) = name.strip_suffix("StateCode") {
        field["picklistValues"] = json!(org.places.state_values());
        field["restrictedPicklist"] = json!(true);
        field["dependentPicklist"] = json!(true);
        field["controllerName"] = json!(format!("{prefix}CountryCode"));
    }
}

fn describe_field(f: &FieldDef) -> Value {
    let picklist: Vec<Value> = f
        .picklist
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"active": true, "defaultValue": i == 0 && f.defaulted_on_create, "label": v, "validFor": null, "value": v}))
        .collect();
    json!({
        "name": f.name,
        "label": f.label,
        "type": f.ty.name(),
        "length": f.length,
        "precision": if f.ty.is_numeric() { 18 } else { 0 },
        "scale": if f.ty.is_numeric() && f.ty.name() != "int" { 2 } else { 0 },
        "nillable": f.nillable,
        "createable": f.createable,
        "updateable": f.updateable,
        "defaultedOnCreate": f.defaulted_on_create,
        "calculated": f.formula.is_some(),
        "calculatedFormula": f.formula.map(|k| format!("{k:?}")),
        "unique": f.unique,
        "externalId": f.external_id,
        "idLookup": f.name == "Id" || f.external_id,
        "caseSensitive": false,
        "picklistValues": picklist,
        "restrictedPicklist": f.restricted,
        "dependentPicklist": false,
        "referenceTo": f.reference_to,
        "relationshipName": f.relationship_name,
        "compoundFieldName": f.compound,
        "queryByDistance": f.ty == SfType::Address,
        "sortable": f.ty != SfType::Address && f.ty != SfType::TextArea,
        "groupable": f.ty != SfType::Address && f.ty != SfType::TextArea,
        "polymorphicForeignKey": f.reference_to.len() > 1,
    })
}

fn urls(name: &str) -> Value {
    let base = format!("{}/sobjects/{name}", super::data_path());
    json!({"sobject": base, "describe": format!("{base}/describe"), "rowTemplate": format!("{base}/{{ID}}")})
}

async fn describe(
    State(sf): State<Arc<Salesforce>>,
    Path((_, object)): Path<(String, String)>,
) -> Reply {
    let org = lock(&sf.org);
    let o = object_def(&org, &object)?;
    let mut fields: Vec<Value> = o.fields.iter().map(describe_field).collect();
    if org.state_country_picklists {
        for f in &mut fields {
            describe_places(&org, f);
        }
    }
    Ok(Json(json!({
        "name": o.name, "label": o.name.trim_end_matches("__c"), "keyPrefix": o.key_prefix,
        "custom": o.custom, "createable": o.createable, "updateable": true, "deletable": true,
        "queryable": true, "replicateable": true, "fields": fields, "urls": urls(o.name),
        "childRelationships": [], "recordTypeInfos": [],
    }))
    .into_response())
}

async fn describe_global(State(sf): State<Arc<Salesforce>>) -> Reply {
    let org = lock(&sf.org);
    let objects: Vec<Value> = org
        .objects
        .iter()
        .map(|o| {
            json!({
                "name": o.name, "label": o.name.trim_end_matches("__c"), "keyPrefix": o.key_prefix,
                "custom": o.custom, "queryable": true, "createable": o.createable, "updateable": true,
                "deletable": true, "replicateable": true, "urls": urls(o.name),
            })
        })
        .collect();
    Ok(
        Json(json!({"encoding": "UTF-8", "maxBatchSize": COLLECTION_MAX, "sobjects": objects}))
            .into_response(),
    )
}

fn write_options(headers: &HeaderMap) -> WriteOptions {
    WriteOptions {
        allow_duplicates: headers
            .get("sforce-duplicate-rule-header")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.replace(' ', "").to_lowercase().contains("allowsave=true")),
    }
}

fn body(bytes: &Bytes) -> Result<Value, SfFailure> {
    serde_json::from_slice(bytes).map_err(|e| {
        SfFailure::bad_request(vec![SfError::new(
            "JSON_PARSER_ERROR",
            format!("The request body is not valid JSON: {e}"),
        )])
    })
}

fn fields_of(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn lock_error(id: &str) -> SfError {
    SfError::new(
        "UNABLE_TO_LOCK_ROW",
        format!("unable to obtain exclusive access to this record or 1 records: {id}"),
    )
}

async fn create(
    State(sf): State<Arc<Salesforce>>,
    Extension(caller): Extension<Caller>,
    Path((_, object)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Reply {
    let input = fields_of(&body(&bytes)?);
    if caller == Caller::Integration && sf.take_lock_fault() {
        return Err(SfFailure::bad_request(vec![lock_error(&object)]));
    }
    let now = sf.clock.now_ms();
    let id = lock(&sf.org)
        .create(
            &object,
            &input,
            now,
            caller.writer(),
            write_options(&headers),
        )
        .map_err(SfFailure::bad_request)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "success": true, "errors": []})),
    )
        .into_response())
}

fn render_row(
    org: &Org,
    object: &ObjectDef,
    id: &str,
    fields: Option<&str>,
) -> Result<Value, SfFailure> {
    let (o, r) = org.get(id).ok_or_else(SfFailure::not_found)?;
    if o.name != object.name || r.deleted_ms.is_some() {
        return Err(SfFailure::not_found());
    }
    let names: Vec<String> = match fields {
        Some(list) => {
            let names: Vec<String> = list
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            if let Some(bad) = names.iter().find(|n| o.field(n).is_none()) {
                return Err(SfFailure::bad_request(vec![SfError::new(
                    "INVALID_FIELD",
                    format!("No such column '{bad}' on sobject of type {}", o.name),
                )]));
            }
            names
        }
        None => o.fields.iter().map(|f| f.name.clone()).collect(),
    };
    Ok(query::render(org, o, r, &names))
}

async fn read(
    State(sf): State<Arc<Salesforce>>,
    Path((_, object, id)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let p = params(raw);
    let org = lock(&sf.org);
    let o = object_def(&org, &object)?;
    if ids::to18(&id).is_none() {
        return Err(SfFailure::not_found());
    }
    Ok(Json(render_row(&org, &o, &id, param(&p, "fields"))?).into_response())
}

async fn update(
    State(sf): State<Arc<Salesforce>>,
    Extension(caller): Extension<Caller>,
    Path((_, object, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Reply {
    let input = fields_of(&body(&bytes)?);
    if caller == Caller::Integration && sf.take_lock_fault() {
        return Err(SfFailure::bad_request(vec![lock_error(&id)]));
    }
    let now = sf.clock.now_ms();
    lock(&sf.org)
        .update(
            Some(&object),
            &id,
            &input,
            now,
            caller.writer(),
            write_options(&headers),
        )
        .map_err(|errors| {
            let status = match errors.first().map(|e| e.code.as_str()) {
                Some("ENTITY_IS_DELETED" | "NOT_FOUND") => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            SfFailure {
                status,
                errors,
                headers: Vec::new(),
            }
        })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove(
    State(sf): State<Arc<Salesforce>>,
    Extension(caller): Extension<Caller>,
    Path((_, _object, id)): Path<(String, String, String)>,
) -> Reply {
    let now = sf.clock.now_ms();
    lock(&sf.org).delete(&id, now, caller.writer())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The live records whose external-id field holds `value`.
fn by_external_id(
    org: &Org,
    object: &ObjectDef,
    field: &str,
    value: &str,
) -> Result<Vec<String>, SfFailure> {
    let def = object
        .field(field)
        .filter(|f| f.external_id || f.name == "Id")
        .ok_or_else(SfFailure::not_found)?;
    Ok(org
        .candidates(object.name, &def.name, value)
        .into_iter()
        .filter(|r| r.deleted_ms.is_none())
        .filter(|r| {
            r.fields
                .get(&def.name)
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
        })
        .map(|r| r.id.clone())
        .collect())
}

async fn read_by_external_id(
    State(sf): State<Arc<Salesforce>>,
    Path((_, object, field, value)): Path<(String, String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let p = params(raw);
    let org = lock(&sf.org);
    let o = object_def(&org, &object)?;
    let found = by_external_id(&org, &o, &field, &value)?;
    match found.as_slice() {
        [one] => Ok(Json(render_row(&org, &o, one, param(&p, "fields"))?).into_response()),
        [] => Err(SfFailure::not_found()),
        many => Ok((
            StatusCode::MULTIPLE_CHOICES,
            Json(json!(
                many.iter()
                    .map(|id| format!("{}/sobjects/{object}/{id}", super::data_path()))
                    .collect::<Vec<_>>()
            )),
        )
            .into_response()),
    }
}

/// Upserts one record by external id; returns (id, created).
fn upsert_one(
    sf: &Salesforce,
    caller: Caller,
    object: &ObjectDef,
    field: &str,
    value: &str,
    mut input: Map<String, Value>,
    options: WriteOptions,
) -> Result<(String, bool), (StatusCode, Vec<SfError>)> {
    let now = sf.clock.now_ms();
    let mut org = lock(&sf.org);
    let found = by_external_id(&org, object, field, value).map_err(|f| (f.status, f.errors))?;
    match found.as_slice() {
        [] => {
            let def_name = object
                .field(field)
                .map(|f| f.name.clone())
                .unwrap_or_else(|| field.to_owned());
            input.insert(def_name, json!(value));
            let id = org
                .create(object.name, &input, now, caller.writer(), options)
                .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
            Ok((id, true))
        }
        [one] => {
            input.remove(field);
            org.update(
                Some(object.name),
                one,
                &input,
                now,
                caller.writer(),
                options,
            )
            .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
            Ok((one.clone(), false))
        }
        _ => Err((
            StatusCode::MULTIPLE_CHOICES,
            vec![SfError::new(
                "MULTIPLE_CHOICES",
                format!("more than one record found for external id field {field}: {value}"),
            )],
        )),
    }
}

async fn upsert(
    State(sf): State<Arc<Salesforce>>,
    Extension(caller): Extension<Caller>,
    Path((_, object, field, value)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Reply {
    let input = fields_of(&body(&bytes)?);
    let o = object_def(&lock(&sf.org), &object)?;
    if caller == Caller::Integration && sf.take_lock_fault() {
        return Err(SfFailure::bad_request(vec![lock_error(&value)]));
    }
    match upsert_one(
        &sf,
        caller,
        &o,
        &field,
        &value,
        input,
        write_options(&headers),
    ) {
        Ok((id, true)) => Ok((
            StatusCode::CREATED,
            Json(json!({"id": id, "success": true, "errors": [], "created": true})),
        )
            .into_response()),
        Ok((id, false)) => Ok((
            StatusCode::OK,
            Json(json!({"id": id, "success": true, "errors": [], "created": false})),
        )
            .into_response()),
        Err((status, errors)) => Err(SfFailure {
            status,
            errors,
            headers: Vec::new(),
        }),
    }
}

/// `start`/`end` of the replication calls, to the minute (seconds are ignored).
fn window(p: &[(String, String)], now: i64, max_back: i64) -> Result<(i64, i64), SfFailure> {
    let at = |k: &str| {
        param(p, k)
            .and_then(parse_datetime)
            .map(|ms| ms - ms.rem_euclid(60_000))
            .ok_or_else(|| {
                SfFailure::bad_request(vec![SfError::new(
                    "INVALID_DATE",
                    format!("{k} must be an ISO 8601 date-time"),
                )])
            })
    };
    let (start, end) = (at("start")?, at("end")?);
    if start >= end {
        return Err(SfFailure::bad_request(vec![SfError::new(
            "INVALID_DATE",
            "start must be before end",
        )]));
    }
    if start < now - max_back {
        return Err(SfFailure::bad_request(vec![SfError::new(
            "INVALID_REPLICATION_DATE",
            format!(
                "start date cannot be more than {} days ago",
                max_back / 86_400_000
            ),
        )]));
    }
    Ok((start, end.min(now - now.rem_euclid(60_000))))
}

async fn updated(
    State(sf): State<Arc<Salesforce>>,
    Path((_, object)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let p = params(raw);
    let now = sf.clock.now_ms();
    let (start, end) = window(&p, now, UPDATED_WINDOW_MS)?;
    let org = lock(&sf.org);
    let o = object_def(&org, &object)?;
    let ids: Vec<&str> = org
        .records(o.name)
        .filter(|r| r.deleted_ms.is_none() && r.modstamp_ms >= start && r.modstamp_ms < end)
        .map(|r| r.id.as_str())
        .collect();
    Ok(Json(json!({"ids": ids, "latestDateCovered": sf_datetime(end)})).into_response())
}

async fn deleted(
    State(sf): State<Arc<Salesforce>>,
    Path((_, object)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let p = params(raw);
    let now = sf.clock.now_ms();
    let (start, end) = window(&p, now, DELETED_WINDOW_MS)?;
    let org = lock(&sf.org);
    let o = object_def(&org, &object)?;
    let records: Vec<Value> = org
        .deletions
        .iter()
        .filter(|(obj, _, at)| obj == o.name && *at >= start && *at < end)
        .map(|(_, id, at)| json!({"id": id, "deletedDate": sf_datetime(*at)}))
        .collect();
    Ok(Json(json!({
        "deletedRecords": records,
        "earliestDateAvailable": sf_datetime(now - DELETED_WINDOW_MS),
        "latestDateCovered": sf_datetime(end),
    }))
    .into_response())
}

fn too_many(n: usize) -> SfFailure {
    SfFailure::bad_request(vec![SfError::new(
        "EXCEEDED_ID_LIMIT",
        format!(
            "record limit reached. cannot submit more than {COLLECTION_MAX} records into this call ({n} given)"
        ),
    )])
}

fn rolled_back() -> Value {
    json!({"success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}]})
}

fn failure(errors: &[SfError]) -> Value {
    json!({"success": false, "errors": errors.iter().map(SfError::result).collect::<Vec<_>>()})
}

/// Runs a Collections write record by record. With `allOrNone`, the first failure
/// rolls every change of the call back (the org is restored from a copy of the
/// touched records).
fn collection_write(
    sf: &Salesforce,
    all_or_none: bool,
    items: Vec<Value>,
    mut write: impl FnMut(&mut Org, &Value) -> Result<Value, Vec<SfError>>,
) -> Vec<Value> {
    let mut org = lock(&sf.org);
    let snapshot = all_or_none.then(|| org.checkpoint());
    let mut results = Vec::with_capacity(items.len());
    let mut failed = false;
    for item in &items {
        let locked = sf.take_lock_fault();
        let outcome = if locked {
            Err(vec![lock_error(
                item.get("Id").and_then(Value::as_str).unwrap_or("record"),
            )])
        } else {
            write(&mut org, item)
        };
        match outcome {
            Ok(v) => results.push(v),
            Err(e) => {
                failed = true;
                results.push(failure(&e));
                if all_or_none {
                    break;
                }
            }
        }
    }
    if !failed {
        org.commit();
    }
    if let (true, Some(checkpoint)) = (failed, snapshot) {
        org.rollback(checkpoint);
        let culprit = results.len() - 1;
        return (0..items.len())
            .map(|i| {
                if i == culprit {
                    results[i].clone()
                } else {
                    rolled_back()
                }
            })
            .collect();
    }
    results
}

fn records_of(v: &Value) -> Vec<Value> {
    v.get("records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn type_of(item: &Value) -> Option<String> {
    item.get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn collection_create(
    State(sf): State<Arc<Salesforce>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let items = records_of(&input);
    if items.len() > COLLECTION_MAX {
        return Err(too_many(items.len()));
    }
    let all_or_none = input
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let options = write_options(&headers);
    let now = sf.clock.now_ms();
    let results = collection_write(&sf, all_or_none, items, |org, item| {
        let object = type_of(item).ok_or_else(|| {
            vec![SfError::new(
                "INVALID_TYPE",
                "Each record needs attributes.type",
            )]
        })?;
        let id = org.create(&object, &fields_of(item), now, caller.writer(), options)?;
        Ok(json!({"id": id, "success": true, "errors": []}))
    });
    Ok(Json(Value::Array(results)).into_response())
}

async fn collection_update(
    State(sf): State<Arc<Salesforce>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let items = records_of(&input);
    if items.len() > COLLECTION_MAX {
        return Err(too_many(items.len()));
    }
    let all_or_none = input
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let options = write_options(&headers);
    let now = sf.clock.now_ms();
    let results = collection_write(&sf, all_or_none, items, |org, item| {
        let id = item
            .get("Id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                vec![
                    SfError::new("MISSING_ARGUMENT", "Id not specified in an update call")
                        .on(&["Id"]),
                ]
            })?
            .to_owned();
        let mut fields = fields_of(item);
        fields.remove("Id");
        org.update(
            type_of(item).as_deref(),
            &id,
            &fields,
            now,
            caller.writer(),
            options,
        )?;
        Ok(json!({"id": ids::to18(&id).unwrap_or(id), "success": true, "errors": []}))
    });
    Ok(Json(Value::Array(results)).into_response())
}

async fn collection_delete(
    State(sf): State<Arc<Salesforce>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let p = params(raw);
    let ids: Vec<Value> = param(&p, "ids")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| json!({"Id": s}))
        .collect();
    if ids.len() > COLLECTION_MAX {
        return Err(too_many(ids.len()));
    }
    let all_or_none = param(&p, "allOrNone").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let now = sf.clock.now_ms();
    let results = collection_write(&sf, all_or_none, ids, |org, item| {
        let id = item
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        org.delete(&id, now, caller.writer()).map_err(|e| vec![e])?;
        Ok(json!({"id": ids::to18(&id).unwrap_or(id), "success": true, "errors": []}))
    });
    Ok(Json(Value::Array(results)).into_response())
}

async fn collection_upsert(
    State(sf): State<Arc<Salesforce>>,
    Extension(caller): Extension<Caller>,
    Path((_, object, field)): Path<(String, String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let items = records_of(&input);
    if items.len() > COLLECTION_MAX {
        return Err(too_many(items.len()));
    }
    let o = object_def(&lock(&sf.org), &object)?;
    let all_or_none = input
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let options = write_options(&headers);
    // Upserts go one by one through the same path as the single-record upsert; a
    // failure with allOrNone rolls the call back.
    let checkpoint = all_or_none.then(|| lock(&sf.org).checkpoint());
    let mut results = Vec::new();
    let mut failed_at = None;
    for (i, item) in items.iter().enumerate() {
        let value = item.get(&field).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let outcome = match value {
            None => Err((
                StatusCode::BAD_REQUEST,
                vec![
                    SfError::new("MISSING_ARGUMENT", format!("{field} not specified"))
                        .on(&[&field]),
                ],
            )),
            Some(_) if sf.take_lock_fault() => {
                Err((StatusCode::BAD_REQUEST, vec![lock_error(&field)]))
            }
            Some(v) => {
                let mut fields = fields_of(item);
                fields.remove(&field);
                upsert_one(&sf, caller, &o, &field, &v, fields, options)
            }
        };
        match outcome {
            Ok((id, created)) => {
                results.push(json!({"id": id, "success": true, "errors": [], "created": created}))
            }
            Err((_, e)) => {
                results.push(failure(&e));
                failed_at.get_or_insert(i);
                if all_or_none {
                    break;
                }
            }
        }
    }
    if failed_at.is_none() {
        lock(&sf.org).commit();
    }
    if let (Some(culprit), Some(checkpoint)) = (failed_at, checkpoint) {
        lock(&sf.org).rollback(checkpoint);
        results = (0..items.len())
            .map(|i| {
                if i == culprit {
                    results[i].clone()
                } else {
                    rolled_back()
                }
            })
            .collect();
    }
    Ok(Json(Value::Array(results)).into_response())
}

fn retrieve(
    sf: &Salesforce,
    object: &str,
    ids: &[String],
    fields: &[String],
) -> Result<Value, SfFailure> {
    let org = lock(&sf.org);
    let o = object_def(&org, object)?;
    if let Some(bad) = fields.iter().find(|f| o.field(f).is_none()) {
        return Err(SfFailure::bad_request(vec![SfError::new(
            "INVALID_FIELD",
            format!("No such column '{bad}' on sobject of type {}", o.name),
        )]));
    }
    let records: Vec<Value> = ids
        .iter()
        .map(|id| match org.get(id) {
            Some((ro, r)) if ro.name == o.name && r.deleted_ms.is_none() => {
                query::render(&org, ro, r, fields)
            }
            _ => Value::Null,
        })
        .collect();
    Ok(Value::Array(records))
}

async fn collection_retrieve(
    State(sf): State<Arc<Salesforce>>,
    Path((_, object)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let p = params(raw);
    let split = |k: &str| -> Vec<String> {
        param(&p, k)
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (ids, fields) = (split("ids"), split("fields"));
    if ids.len() > 2_000 {
        return Err(too_many(ids.len()));
    }
    Ok(Json(retrieve(&sf, &object, &ids, &fields)?).into_response())
}

async fn collection_retrieve_post(
    State(sf): State<Arc<Salesforce>>,
    Path((_, object)): Path<(String, String)>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let list = |k: &str| -> Vec<String> {
        input
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (ids, fields) = (list("ids"), list("fields"));
    if ids.len() > 2_000 {
        return Err(too_many(ids.len()));
    }
    Ok(Json(retrieve(&sf, &object, &ids, &fields)?).into_response())
}

/// The Composite resource: several reads in one API call. The sandbox serves `GET`
/// subrequests for queries, `updated`/`deleted` and single rows.
async fn composite(State(sf): State<Arc<Salesforce>>, bytes: Bytes) -> Reply {
    let input = body(&bytes)?;
    let subrequests = input
        .get("compositeRequest")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if subrequests.len() > 25 {
        return Err(SfFailure::bad_request(vec![SfError::new(
            "INVALID_BATCH_REQUEST",
            "A composite request may hold at most 25 subrequests",
        )]));
    }
    let mut responses = Vec::new();
    for sub in subrequests {
        let reference = sub.get("referenceId").cloned().unwrap_or(Value::Null);
        let method = sub.get("method").and_then(Value::as_str).unwrap_or("GET");
        let url = sub
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let (status, body) = if method.eq_ignore_ascii_case("GET") {
            match composite_get(&sf, &url).await {
                Ok(v) => (200, v),
                Err(f) => (
                    f.status.as_u16(),
                    Value::Array(f.errors.iter().map(SfError::rest).collect()),
                ),
            }
        } else {
            (
                400,
                json!([{"message": format!("The sandbox's composite resource serves GET subrequests only ({method} {url})"), "errorCode": "INVALID_BATCH_REQUEST"}]),
            )
        };
        responses.push(json!({"body": body, "httpHeaders": {}, "httpStatusCode": status, "referenceId": reference}));
    }
    Ok(Json(json!({"compositeResponse": responses})).into_response())
}

async fn composite_get(sf: &Arc<Salesforce>, url: &str) -> Result<Value, SfFailure> {
    let (path, raw) = match url.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (url.to_owned(), None),
    };
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    // ["", "services", "data", "v65.0", ...]
    let version = parts
        .get(3)
        .map(|s| (*s).to_owned())
        .unwrap_or_else(|| format!("v{API_VERSION}"));
    let rest = parts.get(4..).unwrap_or_default();
    // A subrequest answers in the version its own URL names.
    let scoped = version.clone();
    let response = super::in_version(scoped, async move {
        Ok::<_, SfFailure>(match rest {
            ["query"] => run_query(sf.clone(), version, raw, HeaderMap::new(), false).await?,
            ["queryAll"] => run_query(sf.clone(), version, raw, HeaderMap::new(), true).await?,
            ["sobjects", object, "updated"] => {
                updated(
                    State(sf.clone()),
                    Path((version, (*object).to_owned())),
                    RawQuery(raw),
                )
                .await?
            }
            ["sobjects", object, "deleted"] => {
                deleted(
                    State(sf.clone()),
                    Path((version, (*object).to_owned())),
                    RawQuery(raw),
                )
                .await?
            }
            ["sobjects", object, id] => {
                read(
                    State(sf.clone()),
                    Path((version, (*object).to_owned(), (*id).to_owned())),
                    RawQuery(raw),
                )
                .await?
            }
            _ => return Err(SfFailure::not_found()),
        })
    })
    .await?;
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|_| SfFailure::not_found())?;
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}
