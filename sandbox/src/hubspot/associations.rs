//! Associations v4: links between records, each with one or more association types
//! (HubSpot-defined: unlabeled and primary; user-defined labels), stored in both
//! directions, plus the single and batch endpoints that read and write them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::api::{Params, body};
use super::error::HsError;
use super::store::{AssociationChange, ChangeEvent, Objects, Portal, Source, singular};
use super::{HubSpot, lock};
use crate::clock::iso;

/// A record: (object type path name, id).
pub type RecordKey = (String, u64);

/// A record to associate a new one with, and the association types.
pub type Inline = (RecordKey, Vec<(String, u32)>);

/// Links from one record: (to type, to id) -> its association types.
type Links = BTreeMap<(String, u64), BTreeSet<(String, u32)>>;

/// All links, keyed by (from type, from id), both directions stored.
#[derive(Debug, Default)]
pub struct Associations {
    links: HashMap<(String, u64), Links>,
}

/// HubSpot's default (unlabeled) association type ids, and the primary ones, per pair
/// of object types.
pub fn default_type(from: &str, to: &str) -> Option<(u32, Option<u32>)> {
    Some(match (from, to) {
        ("contacts", "companies") => (279, Some(1)),
        ("companies", "contacts") => (280, Some(2)),
        ("deals", "companies") => (341, Some(5)),
        ("companies", "deals") => (342, Some(6)),
        ("deals", "contacts") => (3, None),
        ("contacts", "deals") => (4, None),
        ("tickets", "contacts") => (16, None),
        ("contacts", "tickets") => (15, None),
        ("tickets", "companies") => (339, Some(26)),
        ("companies", "tickets") => (340, Some(25)),
        ("calls", "contacts") => (194, None),
        ("contacts", "calls") => (193, None),
        ("emails", "contacts") => (198, None),
        ("contacts", "emails") => (197, None),
        ("meetings", "contacts") => (200, None),
        ("contacts", "meetings") => (199, None),
        ("notes", "contacts") => (202, None),
        ("contacts", "notes") => (201, None),
        ("tasks", "contacts") => (204, None),
        ("contacts", "tasks") => (203, None),
        ("deals", "line_items") => (19, None),
        ("line_items", "deals") => (20, None),
        // The portal's custom objects, with the type ids their schemas define.
        ("p_machines", "companies") => (711, None),
        ("companies", "p_machines") => (712, None),
        ("p_subscriptions", "companies") => (713, None),
        ("companies", "p_subscriptions") => (714, None),
        _ => return None,
    })
}

/// Tells webhooks about a link made or removed: one event per side, for the object
/// types webhooks cover.
fn announce(
    hs: &HubSpot,
    from: &RecordKey,
    to: &RecordKey,
    removed: bool,
    types: &[(String, u32)],
    source: Source,
) {
    let now = hs.clock.now_ms();
    let mut portal = lock(&hs.portal);
    for (a, b) in [(from, to), (to, from)] {
        let singular = |t: &str| t.trim_end_matches('s').to_uppercase();
        let name = |t: &str| {
            if t == "companies" {
                "COMPANY".to_owned()
            } else {
                singular(t)
            }
        };
        let primary = default_type(&a.0, &b.0)
            .and_then(|(_, p)| p)
            .is_some_and(|p| {
                types
                    .iter()
                    .any(|(_, t)| *t == p || reverse_type(&b.0, &a.0, *t) == p)
            });
        let change = AssociationChange {
            association_type: format!("{}_TO_{}", name(&a.0), name(&b.0)),
            from_id: a.1,
            to_id: b.1,
            removed,
            primary,
        };
        portal.emit(&a.0, |object| ChangeEvent {
            object,
            kind: "associationChange",
            object_id: a.1,
            property: None,
            merge: None,
            association: Some(change),
            object_type_id: None,
            at_ms: now,
            source,
        });
    }
}

/// The reverse type id of a HubSpot-defined one (each direction has its own id).
fn reverse_type(from: &str, to: &str, type_id: u32) -> u32 {
    match (default_type(from, to), default_type(to, from)) {
        (Some((u, p)), Some((ru, rp))) => {
            if type_id == u {
                ru
            } else if Some(type_id) == p {
                rp.unwrap_or(ru)
            } else {
                type_id
            }
        }
        _ => type_id,
    }
}

fn label(category: &str, type_id: u32, from: &str, to: &str) -> Value {
    let primary = default_type(from, to).and_then(|(_, p)| p) == Some(type_id);
    if category == "HUBSPOT_DEFINED" && primary {
        json!("Primary")
    } else {
        Value::Null
    }
}

impl Associations {
    pub fn link(&mut self, from: (&str, u64), to: (&str, u64), types: &[(String, u32)]) {
        let forward = self
            .links
            .entry((from.0.to_owned(), from.1))
            .or_default()
            .entry((to.0.to_owned(), to.1))
            .or_default();
        forward.extend(types.iter().cloned());
        let backward = self
            .links
            .entry((to.0.to_owned(), to.1))
            .or_default()
            .entry((from.0.to_owned(), from.1))
            .or_default();
        backward.extend(
            types
                .iter()
                .map(|(c, t)| (c.clone(), reverse_type(from.0, to.0, *t))),
        );
    }

    pub fn unlink(&mut self, from: (&str, u64), to: (&str, u64)) {
        if let Some(l) = self.links.get_mut(&(from.0.to_owned(), from.1)) {
            l.remove(&(to.0.to_owned(), to.1));
        }
        if let Some(l) = self.links.get_mut(&(to.0.to_owned(), to.1)) {
            l.remove(&(from.0.to_owned(), from.1));
        }
    }

    /// The records of type `to` linked from a record, with their types.
    pub fn of(&self, from: (&str, u64), to: &str) -> Vec<(u64, Vec<(String, u32)>)> {
        self.links
            .get(&(from.0.to_owned(), from.1))
            .map(|l| {
                l.iter()
                    .filter(|((t, _), types)| t == to && !types.is_empty())
                    .map(|((_, id), types)| (*id, types.iter().cloned().collect()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Associated ids per type in a v3 object read.
const V3_ASSOCIATIONS_PAGE: usize = 100;

/// The `associations` block of a v3 object read (`?associations=companies,deals`), as
/// HubSpot renders it: keyed by the plural type name (`line items` with a space), each
/// link once per type name (`deal_to_company` for the primary,
/// `deal_to_company_unlabeled` for the plain link). `None` when nothing of the asked
/// types is linked: HubSpot leaves the key out.
pub fn v3_block(
    links: &Associations,
    portal: &Portal,
    from: (&str, u64),
    requested: &[String],
) -> Result<Option<Value>, HsError> {
    let mut block = Map::new();
    for asked in requested {
        let to = portal
            .canonical(asked)
            .cloned()
            .ok_or_else(|| HsError::unknown_object_type(asked))?;
        let has_primary = default_type(from.0, &to).is_some_and(|(_, p)| p.is_some());
        let base = format!("{}_to_{}", singular(from.0), singular(&to));
        let mut results: Vec<Value> = Vec::new();
        for (id, types) in links.of(from, &to) {
            let mut names: Vec<String> = types
                .iter()
                .map(|(category, type_id)| {
                    let primary = category == "HUBSPOT_DEFINED"
                        && default_type(from.0, &to).and_then(|(_, p)| p) == Some(*type_id);
                    if has_primary && !primary && category == "HUBSPOT_DEFINED" {
                        format!("{base}_unlabeled")
                    } else {
                        base.clone()
                    }
                })
                .collect();
            names.sort();
            names.dedup();
            results.extend(
                names
                    .into_iter()
                    .map(|t| json!({"id": id.to_string(), "type": t})),
            );
        }
        if results.is_empty() {
            continue;
        }
        let mut entry = Map::new();
        if results.len() > V3_ASSOCIATIONS_PAGE {
            let next = results[V3_ASSOCIATIONS_PAGE]["id"].clone();
            results.truncate(V3_ASSOCIATIONS_PAGE);
            entry.insert("paging".into(), json!({"next": {"after": next}}));
        }
        entry.insert("results".into(), Value::Array(results));
        block.insert(to.replace('_', " "), Value::Object(entry));
    }
    Ok((!block.is_empty()).then_some(Value::Object(block)))
}

pub fn routes() -> Router<Arc<HubSpot>> {
    Router::new()
        .route(
            "/crm/v4/objects/{from_type}/{from_id}/associations/default/{to_type}/{to_id}",
            put(put_default),
        )
        .route(
            "/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}/{to_id}",
            put(put_labels).delete(delete_pair),
        )
        .route(
            "/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}",
            get(list),
        )
        .route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/associate/default",
            post(batch_default),
        )
        .route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/create",
            post(batch_create),
        )
        .route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/read",
            post(batch_read),
        )
        .route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/archive",
            post(batch_archive),
        )
}

type Reply = Result<Response, HsError>;

/// A person associates two records in HubSpot's UI (the default type): not an API
/// call (no fault, no count), heard by webhooks as any association is.
pub fn person_associates(
    hs: &HubSpot,
    from: (&str, &str),
    to: (&str, &str),
    person: Source,
) -> Result<(), HsError> {
    let (from, to) = resolve(hs, from, to)?;
    let types = default_types(&from.0, &to.0)?;
    lock(&hs.associations).link((&from.0, from.1), (&to.0, to.1), &types);
    announce(hs, &from, &to, false, &types, person);
    Ok(())
}

/// What a create's input asks to be associated with (`associations: [{to: {id}, types:
/// [{associationCategory, associationTypeId}]}]`), checked as a create checks its
/// properties, before anything is created: each type a HubSpot-defined one from `from`
/// to some object type, and the record it names live. Labels of the portal's own
/// (`USER_DEFINED`) are not kept here, and are refused.
pub fn inline_of(portal: &Portal, from: &str, input: &Value) -> Result<Vec<Inline>, HsError> {
    let Some(list) = input.get("associations").filter(|a| !a.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| HsError::validation("associations must be an array"))?;
    let from = portal.objects(from)?.kind.name.clone();
    let mut out = Vec::new();
    for a in list {
        let types = parse_types(a.get("types").unwrap_or(&Value::Null))?;
        let to_type = types
            .iter()
            .find_map(|(category, id)| {
                (category == "HUBSPOT_DEFINED")
                    .then(|| {
                        portal.objects.keys().find(|to| {
                            default_type(&from, to).is_some_and(|(u, p)| u == *id || p == Some(*id))
                        })
                    })
                    .flatten()
            })
            .ok_or_else(|| {
                HsError::validation(format!(
                    "association types {types:?} do not associate {from} with any object"
                ))
            })?;
        let id = a
            .get("to")
            .and_then(|t| t.get("id"))
            .and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))
            })
            .unwrap_or_default();
        let objects = portal.objects(to_type)?;
        let live = live_id(objects, &id).ok_or_else(|| {
            HsError::validation(format!(
                "association to {to_type} {id}: no such {}",
                objects.kind.upper
            ))
        })?;
        out.push(((to_type.clone(), live), types));
    }
    Ok(out)
}

/// Makes the associations a create asked for (checked by [`inline_of`]), telling
/// webhooks as any association does.
pub fn link_created(hs: &HubSpot, from: &RecordKey, inline: &[Inline], source: Source) {
    for (to, types) in inline {
        lock(&hs.associations).link((&from.0, from.1), (&to.0, to.1), types);
        announce(hs, from, to, false, types, source);
    }
}

/// The live record `id` names (a merged-away id: its survivor).
fn live_id(objects: &Objects, id: &str) -> Option<u64> {
    id.parse::<u64>()
        .ok()
        .map(|i| objects.resolve(i))
        .filter(|i| {
            objects
                .records
                .get(i)
                .is_some_and(|r| r.archived_ms.is_none())
        })
}

/// Checks that both records exist (live) and returns their canonical type names and ids.
fn resolve(
    hs: &HubSpot,
    from: (&str, &str),
    to: (&str, &str),
) -> Result<(RecordKey, RecordKey), HsError> {
    let portal = lock(&hs.portal);
    let one = |(t, id): (&str, &str)| -> Result<RecordKey, HsError> {
        let objects = portal.objects(t)?;
        let id = live_id(objects, id).ok_or_else(|| HsError::not_found(&objects.kind.upper, id))?;
        Ok((objects.kind.name.clone(), id))
    };
    Ok((one(from)?, one(to)?))
}

fn type_id_of(hs: &HubSpot, name: &str) -> String {
    lock(&hs.portal)
        .objects(name)
        .map(|o| o.kind.type_id.clone())
        .unwrap_or_default()
}

fn default_types(from: &str, to: &str) -> Result<Vec<(String, u32)>, HsError> {
    let (unlabeled, _) = default_type(from, to).ok_or_else(|| {
        HsError::validation(format!("No default association between {from} and {to}"))
    })?;
    Ok(vec![("HUBSPOT_DEFINED".to_owned(), unlabeled)])
}

fn batch_reply(results: Vec<Value>, ok: StatusCode, now: i64) -> Response {
    (
        ok,
        Json(json!({"status": "COMPLETE", "results": results, "startedAt": iso(now), "completedAt": iso(now)})),
    )
        .into_response()
}

async fn put_default(
    State(hs): State<Arc<HubSpot>>,
    Path((from_type, from_id, to_type, to_id)): Path<(String, String, String, String)>,
) -> Reply {
    let (from, to) = resolve(&hs, (&from_type, &from_id), (&to_type, &to_id))?;
    let types = default_types(&from.0, &to.0)?;
    lock(&hs.associations).link((&from.0, from.1), (&to.0, to.1), &types);
    announce(&hs, &from, &to, false, &types, Source::Integration);
    let spec = json!({"associationCategory": types[0].0, "associationTypeId": types[0].1});
    let result = json!({"from": {"id": from.1.to_string()}, "to": {"id": to.1.to_string()}, "associationSpec": spec});
    Ok(batch_reply(vec![result], StatusCode::OK, hs.clock.now_ms()))
}

fn parse_types(v: &Value) -> Result<Vec<(String, u32)>, HsError> {
    v.as_array()
        .ok_or_else(|| HsError::validation("expected an array of association types"))?
        .iter()
        .map(|t| {
            let category = t
                .get("associationCategory")
                .and_then(Value::as_str)
                .unwrap_or("HUBSPOT_DEFINED");
            let id = t
                .get("associationTypeId")
                .and_then(Value::as_u64)
                .ok_or_else(|| HsError::validation("associationTypeId is required"))?;
            Ok((category.to_owned(), id as u32))
        })
        .collect()
}

fn labels_between(
    hs: &HubSpot,
    from: &(String, u64),
    to: &(String, u64),
    types: &[(String, u32)],
) -> Value {
    let labels: Vec<Value> = types
        .iter()
        .map(|(c, t)| label(c, *t, &from.0, &to.0))
        .filter(|l| !l.is_null())
        .collect();
    json!({
        "fromObjectTypeId": type_id_of(hs, &from.0),
        "fromObjectId": from.1.to_string(),
        "toObjectTypeId": type_id_of(hs, &to.0),
        "toObjectId": to.1.to_string(),
        "labels": labels,
    })
}

async fn put_labels(
    State(hs): State<Arc<HubSpot>>,
    Path((from_type, from_id, to_type, to_id)): Path<(String, String, String, String)>,
    bytes: Bytes,
) -> Reply {
    let types = parse_types(&body(&bytes)?)?;
    let (from, to) = resolve(&hs, (&from_type, &from_id), (&to_type, &to_id))?;
    {
        // Labels replace the pair's existing ones.
        let mut a = lock(&hs.associations);
        a.unlink((&from.0, from.1), (&to.0, to.1));
        a.link((&from.0, from.1), (&to.0, to.1), &types);
    }
    announce(&hs, &from, &to, false, &types, Source::Integration);
    Ok((
        StatusCode::CREATED,
        Json(labels_between(&hs, &from, &to, &types)),
    )
        .into_response())
}

async fn delete_pair(
    State(hs): State<Arc<HubSpot>>,
    Path((from_type, from_id, to_type, to_id)): Path<(String, String, String, String)>,
) -> Reply {
    if let Ok((from, to)) = resolve(&hs, (&from_type, &from_id), (&to_type, &to_id)) {
        lock(&hs.associations).unlink((&from.0, from.1), (&to.0, to.1));
        announce(&hs, &from, &to, true, &[], Source::Integration);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn associated(
    from: &(String, u64),
    to_type: &str,
    items: Vec<(u64, Vec<(String, u32)>)>,
) -> Vec<Value> {
    items
        .into_iter()
        .map(|(id, types)| {
            let types: Vec<Value> = types
                .iter()
                .map(|(c, t)| {
                    let mut v = json!({"category": c, "typeId": t});
                    // Unlabeled types carry no label (the specs type it as a string).
                    if let Value::String(l) = label(c, *t, &from.0, to_type) {
                        v["label"] = json!(l);
                    }
                    v
                })
                .collect();
            json!({"toObjectId": id.to_string(), "associationTypes": types})
        })
        .collect()
}

async fn list(
    State(hs): State<Arc<HubSpot>>,
    Path((from_type, from_id, to_type)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Reply {
    let params = Params::parse(query)?;
    let limit = params
        .one("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(500)
        .clamp(1, 500);
    let after = params
        .one("after")
        .and_then(|a| a.parse::<u64>().ok())
        .unwrap_or(0);
    let (from, to_name) = {
        let portal = lock(&hs.portal);
        let objects = portal.objects(&from_type)?;
        let id = from_id
            .parse::<u64>()
            .ok()
            .map(|i| objects.resolve(i))
            .ok_or_else(|| HsError::not_found(&objects.kind.upper, &from_id))?;
        (
            (objects.kind.name.clone(), id),
            portal.objects(&to_type)?.kind.name.clone(),
        )
    };
    let mut items = lock(&hs.associations).of((&from.0, from.1), &to_name);
    items.retain(|(id, _)| *id >= after);
    let next = items.get(limit).map(|(id, _)| *id);
    items.truncate(limit);
    let mut out = json!({"results": associated(&from, &to_name, items)});
    if let Some(next) = next {
        out["paging"] = json!({"next": {"after": next.to_string()}});
    }
    Ok(Json(out).into_response())
}

fn pairs(input: &Value, max: usize) -> Result<Vec<(String, String, Value)>, HsError> {
    let inputs = input
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| HsError::validation("Invalid input JSON: missing field `inputs`"))?;
    if inputs.len() > max {
        return Err(HsError::too_many_inputs(max));
    }
    Ok(inputs
        .iter()
        .map(|i| {
            let id = |k: &str| {
                i.get(k)
                    .and_then(|v| v.get("id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (
                id("from"),
                id("to"),
                i.get("types").cloned().unwrap_or(Value::Null),
            )
        })
        .collect())
}

async fn batch_default(
    State(hs): State<Arc<HubSpot>>,
    Path((from_type, to_type)): Path<(String, String)>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let mut results = Vec::new();
    for (f, t, _) in pairs(&input, 2_000)? {
        let (from, to) = resolve(&hs, (&from_type, &f), (&to_type, &t))?;
        let types = default_types(&from.0, &to.0)?;
        lock(&hs.associations).link((&from.0, from.1), (&to.0, to.1), &types);
        announce(&hs, &from, &to, false, &types, Source::Integration);
        results.push(json!({
            "from": {"id": from.1.to_string()},
            "to": {"id": to.1.to_string()},
            "associationSpec": {"associationCategory": types[0].0, "associationTypeId": types[0].1},
        }));
    }
    Ok(batch_reply(results, StatusCode::OK, hs.clock.now_ms()))
}

async fn batch_create(
    State(hs): State<Arc<HubSpot>>,
    Path((from_type, to_type)): Path<(String, String)>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let mut results = Vec::new();
    for (f, t, types) in pairs(&input, 2_000)? {
        let types = parse_types(&types)?;
        let (from, to) = resolve(&hs, (&from_type, &f), (&to_type, &t))?;
        lock(&hs.associations).link((&from.0, from.1), (&to.0, to.1), &types);
        announce(&hs, &from, &to, false, &types, Source::Integration);
        results.push(labels_between(&hs, &from, &to, &types));
    }
    Ok(batch_reply(results, StatusCode::CREATED, hs.clock.now_ms()))
}

async fn batch_read(
    State(hs): State<Arc<HubSpot>>,
    Path((from_type, to_type)): Path<(String, String)>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let inputs = input
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| HsError::validation("Invalid input JSON: missing field `inputs`"))?;
    if inputs.len() > 1_000 {
        return Err(HsError::too_many_inputs(1_000));
    }
    let (from_name, to_name) = {
        let portal = lock(&hs.portal);
        (
            portal.objects(&from_type)?.kind.name.clone(),
            portal.objects(&to_type)?.kind.name.clone(),
        )
    };
    let mut results = Vec::new();
    for i in inputs {
        let Some(id) = i
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let from = (from_name.clone(), id);
        let items = lock(&hs.associations).of((&from.0, from.1), &to_name);
        if items.is_empty() {
            continue;
        }
        results.push(
            json!({"from": {"id": id.to_string()}, "to": associated(&from, &to_name, items)}),
        );
    }
    Ok(batch_reply(results, StatusCode::OK, hs.clock.now_ms()))
}

async fn batch_archive(
    State(hs): State<Arc<HubSpot>>,
    Path((from_type, to_type)): Path<(String, String)>,
    bytes: Bytes,
) -> Reply {
    let input = body(&bytes)?;
    let inputs = input
        .get("inputs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for i in inputs {
        let from = i
            .get("from")
            .and_then(|f| f.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let tos = i
            .get("to")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for t in tos {
            let to = t.get("id").and_then(Value::as_str).unwrap_or_default();
            if let Ok((f, t)) = resolve(&hs, (&from_type, &from), (&to_type, to)) {
                lock(&hs.associations).unlink((&f.0, f.1), (&t.0, t.1));
                announce(&hs, &f, &t, true, &[], Source::Integration);
            }
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
