//! The CRM v3 object endpoints: single-record calls, paged lists, batch calls, search and
//! merge, answered as `../shared/specs/hubspot/` describes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::associations::{self, v3_block};
use super::error::HsError;
use super::store::{Objects, Portal, ReadSpec, Record};
use super::{Caller, HubSpot, lock};
use crate::clock::iso;

/// HubSpot's page and batch limits.
const LIST_LIMIT_MAX: usize = 100;
const BATCH_MAX: usize = 100;
const BATCH_WITH_HISTORY_MAX: usize = 50;
const SEARCH_LIMIT_MAX: usize = 200;
const SEARCH_RESULTS_MAX: usize = 10_000;
const SEARCH_GROUPS_MAX: usize = 5;
const SEARCH_FILTERS_PER_GROUP_MAX: usize = 6;
const SEARCH_FILTERS_MAX: usize = 18;

pub fn routes() -> Router<Arc<HubSpot>> {
    Router::new()
        .route("/crm/v3/objects/{object_type}", get(list).post(create))
        .route(
            "/crm/v3/objects/{object_type}/{id}",
            get(read).patch(update).delete(archive),
        )
        .route("/crm/v3/objects/{object_type}/batch/read", post(batch_read))
        .route(
            "/crm/v3/objects/{object_type}/batch/create",
            post(batch_create),
        )
        .route(
            "/crm/v3/objects/{object_type}/batch/update",
            post(batch_update),
        )
        .route(
            "/crm/v3/objects/{object_type}/batch/upsert",
            post(batch_upsert),
        )
        .route(
            "/crm/v3/objects/{object_type}/batch/archive",
            post(batch_archive),
        )
        .route(
            "/crm/v3/objects/{object_type}/search",
            post(super::api::search),
        )
        .route("/crm/v3/objects/{object_type}/merge", post(merge))
}

type Reply = Result<Response, HsError>;

/// Parses a JSON body the way HubSpot reports bad ones: a 400 VALIDATION_ERROR.
pub fn body(bytes: &Bytes) -> Result<Value, HsError> {
    serde_json::from_slice(bytes)
        .map_err(|e| HsError::validation(format!("Invalid input JSON: {e}")))
}

/// Query parameters; repeated keys and comma-separated lists both collect.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<String>) -> Result<Self, HsError> {
        let raw = raw.unwrap_or_default();
        serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
            .map(Params)
            .map_err(|e| HsError::validation(format!("Invalid query string: {e}")))
    }

    pub fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        let items: Vec<String> = self
            .0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        (!items.is_empty() || self.0.iter().any(|(k, _)| k == key)).then_some(items)
    }

    fn flag(&self, key: &str) -> bool {
        self.one(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn read_spec(&self) -> ReadSpec {
        ReadSpec {
            properties: self.list("properties"),
            with_history: self.list("propertiesWithHistory").unwrap_or_default(),
        }
    }
}

fn str_list(v: &Value, key: &str) -> Option<Vec<String>> {
    v.get(key).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

fn props_of(v: &Value) -> Map<String, Value> {
    v.get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn inputs(v: &Value, max: usize) -> Result<Vec<Value>, HsError> {
    let inputs = v
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| HsError::validation("Invalid input JSON: missing field `inputs`"))?;
    if inputs.len() > max {
        return Err(HsError::too_many_inputs(max));
    }
    Ok(inputs.clone())
}

fn live(objects: &Objects, id: u64) -> Option<&Record> {
    objects
        .records
        .get(&objects.resolve(id))
        .filter(|r| r.archived_ms.is_none())
}

async fn list(
    State(hs): State<Arc<HubSpot>>,
    Path(object_type): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let params = Params::parse(query)?;
    let limit = match params.one("limit") {
        None => 10,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| HsError::validation(format!("limit: {l} is not a number")))?,
    };
    if limit == 0 || limit > LIST_LIMIT_MAX {
        return Err(HsError::validation(format!(
            "limit must be between 1 and {LIST_LIMIT_MAX}, got {limit}"
        )));
    }
    let after = match params.one("after") {
        None => 0,
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| HsError::validation(format!("after: {a} is not a valid paging cursor")))?,
    };
    let archived = params.flag("archived");
    let spec = params.read_spec();
    if !spec.with_history.is_empty() && limit > BATCH_WITH_HISTORY_MAX {
        return Err(HsError::validation(format!(
            "limit must be at most {BATCH_WITH_HISTORY_MAX} with propertiesWithHistory"
        )));
    }
    let asked = params.list("associations").unwrap_or_default();
    let portal = lock(&hs.portal);
    let objects = portal.objects(&object_type)?;
    let mut page: Vec<&Record> = objects
        .records
        .range(after..)
        .map(|(_, r)| r)
        .filter(|r| r.archived_ms.is_some() == archived)
        .take(limit + 1)
        .collect();
    let next = (page.len() > limit)
        .then(|| page.pop().map(|r| r.id))
        .flatten();
    let links = lock(&hs.associations);
    let mut results: Vec<Value> = Vec::with_capacity(page.len());
    for r in &page {
        let mut one = portal.render(objects, r, &spec);
        if !asked.is_empty()
            && let Some(block) = v3_block(&links, &portal, (&objects.kind.name, r.id), &asked)?
        {
            one["associations"] = block;
        }
        results.push(one);
    }
    let mut out = json!({ "results": results });
    if let Some(next) = next {
        out["paging"] = json!({"next": {
            "after": next.to_string(),
            "link": format!("/crm/v3/objects/{object_type}?after={next}&limit={limit}"),
        }});
    }
    Ok(Json(out).into_response())
}

async fn create(
    State(hs): State<Arc<HubSpot>>,
    Extension(caller): Extension<Caller>,
    Path(object_type): Path<String>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let now = hs.clock.now_ms();
    let mut portal = lock(&hs.portal);
    let inline = associations::inline_of(&portal, &object_type, &input)?;
    let id = portal.create(&object_type, &props_of(&input), now, caller.source())?;
    let objects = portal.objects(&object_type)?;
    let record = live(objects, id).ok_or_else(|| HsError::not_found(&objects.kind.upper, id))?;
    let spec = ReadSpec {
        properties: Some(
            props_of(&input)
                .keys()
                .cloned()
                .chain(default_names(objects))
                .collect(),
        ),
        with_history: Vec::new(),
    };
    let rendered = portal.render(objects, record, &spec);
    let kind = objects.kind.name.clone();
    drop(portal);
    associations::link_created(&hs, &(kind, id), &inline, caller.source());
    Ok((StatusCode::CREATED, Json(rendered)).into_response())
}

fn default_names(objects: &Objects) -> Vec<String> {
    objects
        .kind
        .default_properties
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

async fn read(
    State(hs): State<Arc<HubSpot>>,
    Path((object_type, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Reply {
    let params = Params::parse(query)?;
    let archived = params.flag("archived");
    let portal = lock(&hs.portal);
    let objects = portal.objects(&object_type)?;
    let found = objects
        .find(&id, params.one("idProperty"))
        .and_then(|id| objects.records.get(&id))
        .filter(|r| r.archived_ms.is_some() == archived);
    let record = found.ok_or_else(|| HsError::not_found(&objects.kind.upper, &id))?;
    let mut out = portal.render(objects, record, &params.read_spec());
    let asked = params.list("associations").unwrap_or_default();
    if !asked.is_empty() {
        let links = lock(&hs.associations);
        if let Some(block) = v3_block(&links, &portal, (&objects.kind.name, record.id), &asked)? {
            out["associations"] = block;
        }
    }
    Ok(Json(out).into_response())
}

async fn update(
    State(hs): State<Arc<HubSpot>>,
    Extension(caller): Extension<Caller>,
    Path((object_type, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    bytes: Bytes,
) -> Reply {
    let params = Params::parse(query)?;
    let input = body(&bytes)?;
    let now = hs.clock.now_ms();
    let mut portal = lock(&hs.portal);
    let objects = portal.objects(&object_type)?;
    let upper = objects.kind.upper.clone();
    let target = objects
        .find(&id, params.one("idProperty"))
        .ok_or_else(|| HsError::not_found(&upper, &id))?;
    let props = props_of(&input);
    portal.update(&object_type, target, &props, now, caller.source())?;
    let objects = portal.objects(&object_type)?;
    let record = live(objects, target).ok_or_else(|| HsError::not_found(&upper, target))?;
    let spec = ReadSpec {
        properties: Some(
            props
                .keys()
                .cloned()
                .chain(default_names(objects))
                .collect(),
        ),
        with_history: Vec::new(),
    };
    Ok(Json(portal.render(objects, record, &spec)).into_response())
}

async fn archive(
    State(hs): State<Arc<HubSpot>>,
    Extension(caller): Extension<Caller>,
    Path((object_type, id)): Path<(String, String)>,
) -> Reply {
    let now = hs.clock.now_ms();
    let mut portal = lock(&hs.portal);
    // An unknown id is a 204 as well, as HubSpot answers.
    if let Ok(id) = id.parse::<u64>() {
        portal.archive(&object_type, id, now, caller.source())?;
    } else {
        portal.objects(&object_type)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn batch_reply(
    results: Vec<Value>,
    errors: Vec<Value>,
    started: i64,
    completed: i64,
    ok: StatusCode,
) -> Response {
    let mut out = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(completed),
    });
    if errors.is_empty() {
        return (ok, Json(out)).into_response();
    }
    out["numErrors"] = json!(errors.len());
    out["errors"] = Value::Array(errors);
    (StatusCode::MULTI_STATUS, Json(out)).into_response()
}

fn batch_error(category: &str, message: String, context: Value) -> Value {
    json!({"status": "error", "category": category, "message": message, "context": context, "errors": [], "links": {}})
}

async fn batch_read(
    State(hs): State<Arc<HubSpot>>,
    Path(object_type): Path<String>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let spec = ReadSpec {
        properties: str_list(&input, "properties"),
        with_history: str_list(&input, "propertiesWithHistory").unwrap_or_default(),
    };
    let max = if spec.with_history.is_empty() {
        BATCH_MAX
    } else {
        BATCH_WITH_HISTORY_MAX
    };
    let inputs = inputs(&input, max)?;
    let id_property = input.get("idProperty").and_then(Value::as_str);
    let now = hs.clock.now_ms();
    let portal = lock(&hs.portal);
    let objects = portal.objects(&object_type)?;
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for i in &inputs {
        let key = i.get("id").and_then(Value::as_str).unwrap_or_default();
        match objects
            .find(key, id_property)
            .and_then(|id| live(objects, id))
        {
            Some(r) => results.push(portal.render(objects, r, &spec)),
            None => missing.push(key.to_owned()),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![batch_error(
            "OBJECT_NOT_FOUND",
            format!(
                "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                objects.kind.upper
            ),
            json!({"ids": missing}),
        )]
    };
    Ok(batch_reply(
        results,
        errors,
        now,
        hs.clock.now_ms(),
        StatusCode::OK,
    ))
}

async fn batch_create(
    State(hs): State<Arc<HubSpot>>,
    Extension(caller): Extension<Caller>,
    Path(object_type): Path<String>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let inputs = inputs(&input, BATCH_MAX)?;
    let now = hs.clock.now_ms();
    let mut portal = lock(&hs.portal);
    // Every input is validated first: one invalid property fails the whole call.
    let objects = portal.objects(&object_type)?;
    let checked = inputs
        .iter()
        .map(|i| objects.check_write(&props_of(i)))
        .collect::<Result<Vec<_>, _>>()?;
    // So are the associations each input is to be created with.
    let inline = inputs
        .iter()
        .map(|i| associations::inline_of(&portal, &object_type, i))
        .collect::<Result<Vec<_>, _>>()?;
    // With an objectWriteTraceId on every input, failures are reported per input (207);
    // otherwise the first conflict fails the whole batch, and nothing is written.
    let traced: Option<Vec<String>> = inputs
        .iter()
        .map(|i| {
            i.get("objectWriteTraceId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    if traced.is_none() {
        let mut seen = std::collections::HashMap::new();
        for (n, c) in checked.iter().enumerate() {
            for (name, value) in c {
                let Some(index) = objects.unique.get(name) else {
                    continue;
                };
                if value.is_empty() {
                    continue;
                }
                if let Some(existing) = index.get(&value.to_lowercase()) {
                    return Err(HsError::conflict(*existing, &objects.kind.upper));
                }
                if let Some(first) = seen.insert((name.clone(), value.to_lowercase()), n) {
                    return Err(HsError::validation(format!(
                        "Duplicate {name} \"{value}\" in inputs {first} and {n}"
                    )));
                }
            }
        }
    }
    let mut ids = Vec::new();
    let mut errors = Vec::new();
    for (n, c) in checked.into_iter().enumerate() {
        match portal.create_checked(&object_type, c, now, caller.source()) {
            Ok(id) => ids.push((n, id)),
            Err(e) => {
                let trace = traced
                    .as_ref()
                    .and_then(|t| t.get(n))
                    .cloned()
                    .unwrap_or_default();
                errors.push(batch_error(
                    e.body["category"].as_str().unwrap_or("CONFLICT"),
                    e.body["message"].as_str().unwrap_or_default().to_owned(),
                    json!({"objectWriteTraceId": [trace]}),
                ));
            }
        }
    }
    let objects = portal.objects(&object_type)?;
    let results = ids
        .iter()
        .filter_map(|(n, id)| {
            let record = live(objects, *id)?;
            let spec = ReadSpec {
                properties: Some(
                    props_of(&inputs[*n])
                        .keys()
                        .cloned()
                        .chain(default_names(objects))
                        .collect(),
                ),
                with_history: Vec::new(),
            };
            let mut v = portal.render(objects, record, &spec);
            if let Some(t) = traced.as_ref().and_then(|t| t.get(*n)) {
                v["objectWriteTraceId"] = json!(t);
            }
            Some(v)
        })
        .collect();
    let kind = objects.kind.name.clone();
    drop(portal);
    for (n, id) in &ids {
        if let Some(inline) = inline.get(*n) {
            associations::link_created(&hs, &(kind.clone(), *id), inline, caller.source());
        }
    }
    Ok(batch_reply(
        results,
        errors,
        now,
        hs.clock.now_ms(),
        StatusCode::CREATED,
    ))
}

async fn batch_update(
    State(hs): State<Arc<HubSpot>>,
    Extension(caller): Extension<Caller>,
    Path(object_type): Path<String>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let inputs = inputs(&input, BATCH_MAX)?;
    let now = hs.clock.now_ms();
    let mut portal = lock(&hs.portal);
    let objects = portal.objects(&object_type)?;
    let checked = inputs
        .iter()
        .map(|i| objects.check_write(&props_of(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut done = Vec::new();
    let mut missing = Vec::new();
    let mut errors = Vec::new();
    for (i, c) in inputs.iter().zip(checked) {
        let key = i.get("id").and_then(Value::as_str).unwrap_or_default();
        let id_property = i.get("idProperty").and_then(Value::as_str);
        let objects = portal.objects(&object_type)?;
        let Some(id) = objects
            .find(key, id_property)
            .filter(|id| live(objects, *id).is_some())
        else {
            missing.push(key.to_owned());
            continue;
        };
        match portal.update_checked(&object_type, id, c, now, caller.source()) {
            Ok(_) => done.push((id, props_of(i))),
            Err(e) => errors.push(batch_error(
                e.body["category"].as_str().unwrap_or("VALIDATION_ERROR"),
                e.body["message"].as_str().unwrap_or_default().to_owned(),
                json!({"ids": [key]}),
            )),
        }
    }
    let objects = portal.objects(&object_type)?;
    if !missing.is_empty() {
        errors.push(batch_error(
            "OBJECT_NOT_FOUND",
            format!(
                "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                objects.kind.upper
            ),
            json!({"ids": missing}),
        ));
    }
    let results = done
        .iter()
        .filter_map(|(id, props)| {
            let spec = ReadSpec {
                properties: Some(
                    props
                        .keys()
                        .cloned()
                        .chain(default_names(objects))
                        .collect(),
                ),
                with_history: Vec::new(),
            };
            live(objects, *id).map(|r| portal.render(objects, r, &spec))
        })
        .collect();
    Ok(batch_reply(
        results,
        errors,
        now,
        hs.clock.now_ms(),
        StatusCode::OK,
    ))
}

async fn batch_upsert(
    State(hs): State<Arc<HubSpot>>,
    Extension(caller): Extension<Caller>,
    Path(object_type): Path<String>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let inputs = inputs(&input, BATCH_MAX)?;
    let now = hs.clock.now_ms();
    let mut portal = lock(&hs.portal);
    let objects = portal.objects(&object_type)?;
    let mut plan = Vec::new();
    for i in &inputs {
        let key = i
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let id_property = i
            .get("idProperty")
            .and_then(Value::as_str)
            .unwrap_or("hs_object_id");
        if id_property != "hs_object_id" && !objects.unique.contains_key(id_property) {
            return Err(HsError::validation(format!(
                "{id_property} is not a unique property of {}; upsert needs one",
                objects.kind.name
            )));
        }
        let mut props = props_of(i);
        if id_property != "hs_object_id" {
            props
                .entry(id_property.to_owned())
                .or_insert(Value::String(key.clone()));
        }
        let checked = objects.check_write(&props)?;
        let existing = objects
            .find(&key, Some(id_property))
            .filter(|id| live(objects, *id).is_some());
        plan.push((existing, checked, props));
    }
    let mut results = Vec::new();
    for (existing, checked, props) in plan {
        let (id, new) = match existing {
            Some(id) => {
                portal.update_checked(&object_type, id, checked, now, caller.source())?;
                (id, false)
            }
            None => (
                portal.create_checked(&object_type, checked, now, caller.source())?,
                true,
            ),
        };
        let objects = portal.objects(&object_type)?;
        if let Some(r) = live(objects, id) {
            let spec = ReadSpec {
                properties: Some(
                    props
                        .keys()
                        .cloned()
                        .chain(default_names(objects))
                        .collect(),
                ),
                with_history: Vec::new(),
            };
            let mut v = portal.render(objects, r, &spec);
            v["new"] = json!(new);
            results.push(v);
        }
    }
    Ok(batch_reply(
        results,
        Vec::new(),
        now,
        hs.clock.now_ms(),
        StatusCode::OK,
    ))
}

async fn batch_archive(
    State(hs): State<Arc<HubSpot>>,
    Extension(caller): Extension<Caller>,
    Path(object_type): Path<String>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let inputs = inputs(&input, BATCH_MAX)?;
    let now = hs.clock.now_ms();
    let mut portal = lock(&hs.portal);
    for i in &inputs {
        if let Some(id) = i
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u64>().ok())
        {
            portal.archive(&object_type, id, now, caller.source())?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn merge(
    State(hs): State<Arc<HubSpot>>,
    Extension(caller): Extension<Caller>,
    Path(object_type): Path<String>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let id = |key: &str| {
        input
            .get(key)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| HsError::validation(format!("{key} must be a record id")))
    };
    let (primary, other) = (id("primaryObjectId")?, id("objectIdToMerge")?);
    let now = hs.clock.now_ms();
    let mut portal = lock(&hs.portal);
    let new_id = portal.merge(&object_type, primary, other, now, caller.source())?;
    let objects = portal.objects(&object_type)?;
    let record =
        live(objects, new_id).ok_or_else(|| HsError::not_found(&objects.kind.upper, new_id))?;
    let spec = ReadSpec {
        properties: Some(
            default_names(objects)
                .into_iter()
                .chain(["hs_merged_object_ids".to_owned()])
                .collect(),
        ),
        with_history: Vec::new(),
    };
    Ok(Json(portal.render(objects, record, &spec)).into_response())
}

pub async fn search(
    State(hs): State<Arc<HubSpot>>,
    Path(object_type): Path<String>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let request = super::search_request::SearchRequest::parse(&input)?;
    let now = hs.clock.now_ms();
    let mut portal = lock(&hs.portal);
    portal.refresh_index(&object_type, now)?;
    let portal: &Portal = &portal;
    let objects = portal.objects(&object_type)?;
    let candidates: Box<dyn Iterator<Item = &Record>> = match request.modified_floor(objects) {
        Some(since) => Box::new(
            objects
                .modified_since(since)
                .filter_map(|id| objects.records.get(&id)),
        ),
        None => Box::new(objects.records.values()),
    };
    let mut matches: Vec<(&Record, &super::store::Props)> = candidates
        .filter(|r| r.archived_ms.is_none())
        .filter_map(|r| r.indexed.as_deref().map(|p| (r, p)))
        .filter(|(r, p)| request.matches(objects, r, p))
        .collect();
    request.sort(objects, &mut matches);
    let total = matches.len();
    let start = request.after.min(total);
    let end = (start + request.limit).min(total);
    let spec = ReadSpec {
        properties: request.properties.clone(),
        with_history: Vec::new(),
    };
    let results: Vec<Value> = matches[start..end]
        .iter()
        .map(|(r, _)| portal.render(objects, r, &spec))
        .collect();
    let mut out = json!({"total": total, "results": results});
    if end < total && end < SEARCH_RESULTS_MAX {
        out["paging"] = json!({"next": {"after": end.to_string()}});
    }
    Ok(Json(out).into_response())
}

pub const SEARCH_LIMITS: (usize, usize, usize, usize, usize) = (
    SEARCH_LIMIT_MAX,
    SEARCH_RESULTS_MAX,
    SEARCH_GROUPS_MAX,
    SEARCH_FILTERS_PER_GROUP_MAX,
    SEARCH_FILTERS_MAX,
);
