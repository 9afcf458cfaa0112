//! Lists (segments) and their memberships: what an inclusion list is made of. Manual
//! lists only; membership changes through the API or the control API.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::api::{Params, body};
use super::error::HsError;
use super::{HubSpot, lock};
use crate::clock::iso;

#[derive(Debug, Clone)]
pub struct List {
    pub id: u64,
    pub name: String,
    pub object_type_id: String,
    pub version: u32,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Record id -> when it joined.
    pub members: BTreeMap<u64, i64>,
}

#[derive(Debug, Default)]
pub struct Lists {
    lists: BTreeMap<u64, List>,
    next_id: u64,
}

impl Lists {
    pub fn create(&mut self, name: &str, object_type_id: &str, now: i64) -> Result<&List, HsError> {
        if self
            .lists
            .values()
            .any(|l| l.name == name && l.object_type_id == object_type_id)
        {
            return Err(HsError::new(
                axum::http::StatusCode::CONFLICT,
                "OBJECT_ALREADY_EXISTS",
                format!("A list named {name} already exists"),
            ));
        }
        self.next_id += 1;
        let id = self.next_id;
        let list = List {
            id,
            name: name.to_owned(),
            object_type_id: object_type_id.to_owned(),
            version: 1,
            created_ms: now,
            updated_ms: now,
            members: BTreeMap::new(),
        };
        Ok(self.lists.entry(id).or_insert(list))
    }

    pub fn get(&self, id: u64) -> Result<&List, HsError> {
        self.lists
            .get(&id)
            .ok_or_else(|| HsError::not_found("LIST", id))
    }

    fn get_mut(&mut self, id: u64) -> Result<&mut List, HsError> {
        self.lists
            .get_mut(&id)
            .ok_or_else(|| HsError::not_found("LIST", id))
    }

    /// Adds and removes members; returns (added, removed).
    pub fn change(
        &mut self,
        id: u64,
        add: &[u64],
        remove: &[u64],
        now: i64,
    ) -> Result<(Vec<u64>, Vec<u64>), HsError> {
        let list = self.get_mut(id)?;
        let added: Vec<u64> = add
            .iter()
            .copied()
            .filter(|r| list.members.insert(*r, now).is_none())
            .collect();
        let removed: Vec<u64> = remove
            .iter()
            .copied()
            .filter(|r| list.members.remove(r).is_some())
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            list.version += 1;
            list.updated_ms = now;
        }
        Ok((added, removed))
    }
}

fn render(l: &List) -> Value {
    json!({
        "listId": l.id.to_string(),
        "listVersion": l.version,
        "name": l.name,
        "objectTypeId": l.object_type_id,
        "processingStatus": "COMPLETE",
        "processingType": "MANUAL",
        "size": l.members.len(),
        "createdAt": iso(l.created_ms),
        "updatedAt": iso(l.updated_ms),
    })
}

pub fn routes() -> Router<Arc<HubSpot>> {
    Router::new()
        .route("/crm/v3/lists", post(create))
        .route("/crm/v3/lists/{list_id}", get(read))
        .route(
            "/crm/v3/lists/object-type-id/{object_type_id}/name/{name}",
            get(by_name),
        )
        .route("/crm/v3/lists/{list_id}/memberships", get(memberships))
        .route(
            "/crm/v3/lists/{list_id}/memberships/join-order",
            get(join_order),
        )
        .route(
            "/crm/v3/lists/records/memberships/batch/read",
            post(batch_memberships),
        )
        .route("/crm/v3/lists/{list_id}/memberships/add", put(add))
        .route("/crm/v3/lists/{list_id}/memberships/remove", put(remove))
        .route(
            "/crm/v3/lists/records/{object_type_id}/{record_id}/memberships",
            get(of_record),
        )
}

type Reply = Result<Response, HsError>;

fn list_id(s: &str) -> Result<u64, HsError> {
    s.parse().map_err(|_| HsError::not_found("LIST", s))
}

async fn create(State(hs): State<Arc<HubSpot>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| HsError::validation(format!("{k} is required")))
    };
    let (name, object_type_id) = (field("name")?, field("objectTypeId")?);
    match field("processingType")? {
        "MANUAL" | "SNAPSHOT" => {}
        other => {
            return Err(HsError::validation(format!(
                "processingType {other} is not supported by the sandbox (MANUAL lists only)"
            )));
        }
    }
    let now = hs.clock.now_ms();
    let mut lists = lock(&hs.lists);
    let list = lists.create(name, object_type_id, now)?;
    Ok(Json(json!({"list": render(list)})).into_response())
}

async fn read(State(hs): State<Arc<HubSpot>>, Path(id): Path<String>) -> Reply {
    let lists = lock(&hs.lists);
    Ok(Json(json!({"list": render(lists.get(list_id(&id)?)?)})).into_response())
}

async fn by_name(
    State(hs): State<Arc<HubSpot>>,
    Path((object_type_id, name)): Path<(String, String)>,
) -> Reply {
    let lists = lock(&hs.lists);
    let list = lists
        .lists
        .values()
        .find(|l| l.name == name && l.object_type_id == object_type_id)
        .ok_or_else(|| HsError::not_found("LIST", &name))?;
    Ok(Json(json!({"list": render(list)})).into_response())
}

async fn memberships(
    State(hs): State<Arc<HubSpot>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    let params = Params::parse(q)?;
    let limit = params
        .one("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100);
    if limit == 0 || limit > 250 {
        return Err(HsError::validation(format!(
            "limit must be between 1 and 250, got {limit}"
        )));
    }
    let after = params
        .one("after")
        .and_then(|a| a.parse::<u64>().ok())
        .unwrap_or(0);
    let lists = lock(&hs.lists);
    let list = lists.get(list_id(&id)?)?;
    let mut page: Vec<(u64, i64)> = list
        .members
        .range(after..)
        .map(|(r, t)| (*r, *t))
        .take(limit + 1)
        .collect();
    let next = (page.len() > limit)
        .then(|| page.pop().map(|(r, _)| r))
        .flatten();
    let results: Vec<Value> = page
        .iter()
        .map(|(r, t)| json!({"recordId": r.to_string(), "membershipTimestamp": iso(*t)}))
        .collect();
    let mut out = json!({"results": results, "total": list.members.len()});
    if let Some(n) = next {
        out["paging"] = json!({"next": {"after": n.to_string()}});
    }
    Ok(Json(out).into_response())
}

/// A position in a list's join order: when the record joined, then its id. The paging
/// token names the next page's first position, so it stays valid when members before
/// it leave (HubSpot's token is opaque; the sandbox's is too, to its callers).
fn join_token(joined: i64, record: u64) -> String {
    format!("j{joined:x}.{record:x}")
}

fn parse_join_token(token: &str) -> Result<(i64, u64), HsError> {
    let bad = || HsError::validation(format!("Invalid paging token: {token}"));
    let (t, r) = token
        .strip_prefix('j')
        .and_then(|rest| rest.split_once('.'))
        .ok_or_else(bad)?;
    let joined = i64::from_str_radix(t, 16).map_err(|_| bad())?;
    let record = u64::from_str_radix(r, 16).map_err(|_| bad())?;
    Ok((joined, record))
}

/// `GET .../memberships/join-order`: members in the order they joined, oldest first.
async fn join_order(
    State(hs): State<Arc<HubSpot>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    let params = Params::parse(q)?;
    let limit = params
        .one("limit")
        .map(|l| {
            l.parse::<usize>()
                .map_err(|_| HsError::validation(format!("limit must be a number, got {l}")))
        })
        .transpose()?
        .unwrap_or(100);
    if limit == 0 || limit > 250 {
        return Err(HsError::validation(format!(
            "limit must be between 1 and 250, got {limit}"
        )));
    }
    if params.one("before").is_some() && params.one("after").is_none() {
        return Err(HsError::validation(
            "the sandbox pages join order forward only (after), not before",
        ));
    }
    let from = params.one("after").map(parse_join_token).transpose()?;
    let lists = lock(&hs.lists);
    let list = lists.get(list_id(&id)?)?;
    let mut order: Vec<(i64, u64)> = list.members.iter().map(|(r, t)| (*t, *r)).collect();
    order.sort_unstable();
    let mut page: Vec<(i64, u64)> = order
        .into_iter()
        .filter(|p| from.is_none_or(|f| *p >= f))
        .take(limit + 1)
        .collect();
    let next = (page.len() > limit).then(|| page.pop()).flatten();
    let results: Vec<Value> = page
        .iter()
        .map(|(t, r)| json!({"recordId": r.to_string(), "membershipTimestamp": iso(*t)}))
        .collect();
    let mut out = json!({"results": results, "total": list.members.len()});
    if let Some((t, r)) = next {
        out["paging"] = json!({"next": {"after": join_token(t, r)}});
    }
    Ok(Json(out).into_response())
}

/// `POST /crm/v3/lists/records/memberships/batch/read`: the lists each record is in.
async fn batch_memberships(State(hs): State<Arc<HubSpot>>, bytes: Bytes) -> Reply {
    let v = body(&bytes)?;
    let inputs = v
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| HsError::validation("inputs is required"))?;
    let started = iso(hs.clock.now_ms());
    let lists = lock(&hs.lists);
    let mut results = Vec::new();
    for input in inputs {
        let field = |k: &str| {
            input
                .get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| HsError::validation(format!("inputs[].{k} is required")))
        };
        let (object_type_id, record_id) = (field("objectTypeId")?, field("recordId")?);
        let record: Option<u64> = record_id.parse().ok();
        let memberships: Vec<Value> = lists
            .lists
            .values()
            .filter(|l| l.object_type_id == object_type_id)
            .filter_map(|l| {
                let t = l.members.get(&record?)?;
                Some(json!({"listId": l.id.to_string(), "listVersion": l.version, "firstAddedTimestamp": iso(*t), "lastAddedTimestamp": iso(*t)}))
            })
            .collect();
        results.push(json!({"objectTypeId": object_type_id, "recordId": record_id, "recordListMemberships": memberships}));
    }
    Ok(Json(json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": iso(hs.clock.now_ms()),
    }))
    .into_response())
}

/// A person adds and removes members in the UI (`PUT /_sandbox/hubspot/lists/{id}/memberships`,
/// `{"add": [...], "remove": [...]}`): not an API call of the integration's.
pub async fn person_change(
    State(hs): State<Arc<HubSpot>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Reply {
    let v = body(&bytes)?;
    let id = list_id(&id)?;
    let object_type = lock(&hs.lists).get(id)?.object_type_id.clone();
    let (live, missing) = existing(&hs, &object_type, ids(&v["add"]));
    let (added, removed) =
        lock(&hs.lists).change(id, &live, &ids(&v["remove"]), hs.clock.now_ms())?;
    Ok(update_reply(added, removed, missing))
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().and_then(|s| s.parse().ok()).or(x.as_u64()))
                .collect()
        })
        .unwrap_or_default()
}

/// Splits record ids into the live ones and the missing ones.
fn existing(hs: &HubSpot, object_type_id: &str, ids: Vec<u64>) -> (Vec<u64>, Vec<u64>) {
    let portal = lock(&hs.portal);
    let Ok(objects) = portal.objects(object_type_id) else {
        return (Vec::new(), ids);
    };
    ids.into_iter().partition(|id| {
        objects
            .records
            .get(&objects.resolve(*id))
            .is_some_and(|r| r.archived_ms.is_none())
    })
}

fn update_reply(added: Vec<u64>, removed: Vec<u64>, missing: Vec<u64>) -> Response {
    let s = |v: Vec<u64>| v.into_iter().map(|i| i.to_string()).collect::<Vec<_>>();
    Json(json!({"recordsIdsAdded": s(added), "recordIdsRemoved": s(removed), "recordIdsMissing": s(missing)})).into_response()
}

async fn add(State(hs): State<Arc<HubSpot>>, Path(id): Path<String>, bytes: Bytes) -> Reply {
    let requested = ids(&body(&bytes)?);
    let id = list_id(&id)?;
    let object_type = lock(&hs.lists).get(id)?.object_type_id.clone();
    let (live, missing) = existing(&hs, &object_type, requested);
    let (added, _) = lock(&hs.lists).change(id, &live, &[], hs.clock.now_ms())?;
    Ok(update_reply(added, Vec::new(), missing))
}

async fn remove(State(hs): State<Arc<HubSpot>>, Path(id): Path<String>, bytes: Bytes) -> Reply {
    let requested = ids(&body(&bytes)?);
    let (_, removed) = lock(&hs.lists).change(list_id(&id)?, &[], &requested, hs.clock.now_ms())?;
    let missing: Vec<u64> = requested
        .into_iter()
        .filter(|r| !removed.contains(r))
        .collect();
    Ok(update_reply(Vec::new(), removed, missing))
}

async fn of_record(
    State(hs): State<Arc<HubSpot>>,
    Path((object_type_id, record_id)): Path<(String, String)>,
) -> Reply {
    let record: u64 = record_id
        .parse()
        .map_err(|_| HsError::not_found("RECORD", &record_id))?;
    let lists = lock(&hs.lists);
    let results: Vec<Value> = lists
        .lists
        .values()
        .filter(|l| l.object_type_id == object_type_id)
        .filter_map(|l| {
            l.members.get(&record).map(|t| {
                json!({"listId": l.id.to_string(), "listVersion": l.version, "firstAddedTimestamp": iso(*t), "lastAddedTimestamp": iso(*t), "isPublicList": true})
            })
        })
        .collect();
    Ok(Json(json!({"results": results, "total": results.len()})).into_response())
}
