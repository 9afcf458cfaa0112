//! Properties (read, create: `crmsync setup` creates the ones it needs), owners and
//! pipelines.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::api::{Params, body};
use super::associations::default_type;
use super::error::HsError;
use super::schema::{DEAL_STAGES, ENTERPRISE_DEAL_STAGES};
use super::store::{Objects, PropType, PropertyDef};
use super::{HubSpot, lock};
use crate::clock::iso;

pub fn routes() -> Router<Arc<HubSpot>> {
    Router::new()
        .route(
            "/crm/v3/properties/{object_type}",
            get(list_properties).post(create_property),
        )
        .route(
            "/crm/v3/properties/{object_type}/{name}",
            get(read_property).delete(archive_property),
        )
        .route("/crm/v3/owners", get(list_owners))
        .route("/crm/v3/owners/{id}", get(read_owner))
        .route("/crm/v3/pipelines/{object_type}", get(list_pipelines))
        .route("/crm/v3/schemas", get(list_schemas))
        .route("/crm/v3/schemas/{object_type}", get(read_schema))
        .route("/crm-object-schemas/v3/schemas", get(list_schemas))
        .route(
            "/crm-object-schemas/v3/schemas/{object_type}",
            get(read_schema),
        )
        .route(
            "/crm/v3/pipelines/{object_type}/{pipeline_id}",
            get(read_pipeline),
        )
}

type Reply = Result<Response, HsError>;

/// The epoch every built-in definition claims as its creation time.
const DEFINED_AT: i64 = 1_577_836_800_000;

fn render_property(def: &PropertyDef) -> Value {
    let options: Vec<Value> = def
        .options
        .iter()
        .enumerate()
        .map(|(i, o)| json!({"label": o, "value": o, "displayOrder": i, "hidden": false}))
        .collect();
    json!({
        "name": def.name.as_ref(),
        "label": def.label,
        "type": def.ty.name(),
        "fieldType": def.ty.field_type(),
        "description": "",
        "groupName": "crmsync_sandbox",
        "options": options,
        "calculated": def.calculated,
        "hasUniqueValue": def.unique,
        "hidden": false,
        "formField": !def.read_only,
        "archived": false,
        "createdAt": iso(DEFINED_AT),
        "updatedAt": iso(DEFINED_AT),
        "modificationMetadata": {
            "archivable": !def.read_only,
            "readOnlyDefinition": def.read_only,
            "readOnlyValue": def.read_only,
        },
    })
}

async fn list_properties(State(hs): State<Arc<HubSpot>>, Path(object_type): Path<String>) -> Reply {
    let portal = lock(&hs.portal);
    let objects = portal.objects(&object_type)?;
    let results: Vec<Value> = objects.properties.values().map(render_property).collect();
    Ok(Json(json!({"results": results})).into_response())
}

async fn read_property(
    State(hs): State<Arc<HubSpot>>,
    Path((object_type, name)): Path<(String, String)>,
) -> Reply {
    let portal = lock(&hs.portal);
    let objects = portal.objects(&object_type)?;
    let def = objects.properties.get(name.as_str()).ok_or_else(|| {
        HsError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!(
                "Unable to find property {name} on object type {}",
                objects.kind.type_id
            ),
        )
    })?;
    Ok(Json(render_property(def)).into_response())
}

/// Archives (deletes) a property: it leaves the property list, reads leave it out,
/// writes naming it fail with PROPERTY_DOESNT_EXIST. HubSpot's own read-only and
/// calculated properties cannot be archived.
async fn archive_property(
    State(hs): State<Arc<HubSpot>>,
    Path((object_type, name)): Path<(String, String)>,
) -> Reply {
    let mut portal = lock(&hs.portal);
    let objects = portal.objects_mut(&object_type)?;
    let type_id = objects.kind.type_id.clone();
    let Some(def) = objects.properties.get(name.as_str()) else {
        return Err(HsError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unable to find property {name} on object type {type_id}"),
        ));
    };
    if def.read_only || def.calculated || def.unique {
        return Err(HsError::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("{name} is a HubSpot defined property and can't be archived"),
        ));
    }
    objects.properties.remove(name.as_str());
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn prop_type(ty: &str) -> Option<PropType> {
    Some(match ty {
        "string" => PropType::String,
        "number" => PropType::Number,
        "bool" => PropType::Bool,
        "enumeration" => PropType::Enumeration,
        "date" => PropType::Date,
        "datetime" => PropType::DateTime,
        "phone_number" => PropType::Phone,
        _ => return None,
    })
}

async fn create_property(
    State(hs): State<Arc<HubSpot>>,
    Path(object_type): Path<String>,
    bytes: Bytes,
) -> Reply {
    let v = body(&bytes)?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| HsError::validation(format!("{k} is required")))
    };
    let (name, label, ty) = (field("name")?, field("label")?, field("type")?);
    field("fieldType")?;
    field("groupName")?;
    let ty =
        prop_type(ty).ok_or_else(|| HsError::validation(format!("{ty} is not a property type")))?;
    let mut portal = lock(&hs.portal);
    let objects = portal.objects_mut(&object_type)?;
    if objects.properties.contains_key(name) {
        return Err(HsError::new(
            StatusCode::CONFLICT,
            "OBJECT_ALREADY_EXISTS",
            format!("A property named '{name}' already exists."),
        ));
    }
    let def = PropertyDef {
        name: Arc::from(name),
        label: label.to_owned(),
        ty,
        options: v
            .get("options")
            .and_then(Value::as_array)
            .map(|o| {
                o.iter()
                    .filter_map(|x| x.get("value").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        read_only: false,
        calculated: false,
        unique: v
            .get("hasUniqueValue")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    if def.unique {
        objects.unique.insert(def.name.clone(), Default::default());
    }
    let rendered = render_property(&def);
    objects.properties.insert(def.name.clone(), def);
    Ok((StatusCode::CREATED, Json(rendered)).into_response())
}

fn render_owner(o: &Value) -> Value {
    let mut o = o.clone();
    o["createdAt"] = json!(iso(DEFINED_AT));
    o["updatedAt"] = json!(iso(DEFINED_AT));
    o["userIdIncludingInactive"] = o["userId"].clone();
    o["teams"] = json!([]);
    o
}

async fn list_owners(State(hs): State<Arc<HubSpot>>, RawQuery(query): RawQuery) -> Reply {
    let params = Params::parse(query)?;
    let limit = params
        .one("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let after = params
        .one("after")
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0);
    let email = params.one("email").map(str::to_lowercase);
    let portal = lock(&hs.portal);
    let matching: Vec<&Value> = portal
        .owners
        .iter()
        .filter(|o| {
            email.as_ref().is_none_or(|e| {
                o["email"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(e))
            })
        })
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(after)
        .take(limit)
        .map(|o| render_owner(o))
        .collect();
    let mut out = json!({"results": page});
    if after + limit < matching.len() {
        out["paging"] = json!({"next": {"after": (after + limit).to_string()}});
    }
    Ok(Json(out).into_response())
}

async fn read_owner(State(hs): State<Arc<HubSpot>>, Path(id): Path<String>) -> Reply {
    let portal = lock(&hs.portal);
    let owner = portal
        .owners
        .iter()
        .find(|o| o["id"] == id.as_str())
        .ok_or_else(|| HsError::not_found("OWNER", &id))?;
    Ok(Json(render_owner(owner)).into_response())
}

fn pipelines(object_type: &str) -> Result<Vec<Value>, HsError> {
    let stage = |id: &str, i: usize, metadata: Value| {
        json!({
            "id": id, "label": id, "displayOrder": i, "archived": false, "metadata": metadata,
            "createdAt": iso(DEFINED_AT), "updatedAt": iso(DEFINED_AT),
        })
    };
    let (id, stages): (&str, Vec<Value>) = match object_type {
        "deals" | "0-3" => (
            "default",
            DEAL_STAGES
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let closed = s.starts_with("closed");
                    let probability = match *s {
                        "closedwon" => "1.0".to_owned(),
                        "closedlost" => "0.0".to_owned(),
                        _ => format!("{:.1}", 0.2 + 0.1 * i as f64),
                    };
                    stage(
                        s,
                        i,
                        json!({"isClosed": closed.to_string(), "probability": probability}),
                    )
                })
                .collect(),
        ),
        "tickets" | "0-5" => (
            "0",
            ["1", "2", "3", "4"]
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    stage(
                        s,
                        i,
                        json!({"ticketState": if *s == "4" {"CLOSED"} else {"OPEN"}}),
                    )
                })
                .collect(),
        ),
        other => {
            return Err(HsError::validation(format!("{other} has no pipelines")));
        }
    };
    let pipeline = |id: &str, label: &str, order: usize, stages: Vec<Value>| {
        json!({
            "id": id, "label": label, "displayOrder": order, "archived": false, "stages": stages,
            "createdAt": iso(DEFINED_AT), "updatedAt": iso(DEFINED_AT),
        })
    };
    if id != "default" {
        return Ok(vec![pipeline(id, "Support Pipeline", 0, stages)]);
    }
    // The portal's second deal pipeline.
    let enterprise = ENTERPRISE_DEAL_STAGES
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let probability = match *s {
                "ent_won" => 1.0,
                "ent_lost" => 0.0,
                _ => 0.3 * (i + 1) as f64,
            };
            let closed = matches!(*s, "ent_won" | "ent_lost");
            stage(
                s,
                i,
                json!({"isClosed": closed.to_string(), "probability": format!("{probability:.1}")}),
            )
        })
        .collect();
    Ok(vec![
        pipeline(id, "Sales Pipeline", 0, stages),
        pipeline("enterprise", "Enterprise Pipeline", 1, enterprise),
    ])
}

async fn list_pipelines(Path(object_type): Path<String>) -> Reply {
    Ok(Json(json!({"results": pipelines(&object_type)?})).into_response())
}

async fn read_pipeline(Path((object_type, id)): Path<(String, String)>) -> Reply {
    let p = pipelines(&object_type)?
        .into_iter()
        .find(|p| p["id"] == id.as_str())
        .ok_or_else(|| HsError::not_found("PIPELINE", &id))?;
    Ok(Json(p).into_response())
}

/// A custom object's schema, as HubSpot's schemas API reads it (schema management is
/// not imitated: the portal's custom objects are fixed).
fn render_schema(objects: &Objects, all: &[&Objects]) -> Value {
    let kind = &objects.kind;
    let short = kind.name.trim_start_matches("p_");
    let associations: Vec<Value> = all
        .iter()
        .filter_map(|other| {
            let (type_id, _) = default_type(&kind.name, &other.kind.name)?;
            Some(json!({
                "id": type_id.to_string(),
                "name": format!("{short}_to_{}", other.kind.name.trim_start_matches("p_")),
                "fromObjectTypeId": kind.type_id,
                "toObjectTypeId": other.kind.type_id,
                "createdAt": iso(DEFINED_AT),
                "updatedAt": iso(DEFINED_AT),
            }))
        })
        .collect();
    let required: Vec<&str> = objects
        .properties
        .keys()
        .map(|k| k.as_ref())
        .filter(|k| *k == "name")
        .collect();
    json!({
        "id": kind.type_id,
        "objectTypeId": kind.type_id,
        "name": short,
        "fullyQualifiedName": kind.name,
        "labels": {"singular": short.trim_end_matches('s'), "plural": short},
        "primaryDisplayProperty": "name",
        "requiredProperties": required,
        "searchableProperties": [],
        "secondaryDisplayProperties": [],
        "properties": objects.properties.values().map(render_property).collect::<Vec<_>>(),
        "associations": associations,
        "archived": false,
        "createdAt": iso(DEFINED_AT),
        "updatedAt": iso(DEFINED_AT),
    })
}

async fn list_schemas(State(hs): State<Arc<HubSpot>>) -> Reply {
    let portal = lock(&hs.portal);
    let all: Vec<&Objects> = portal.objects.values().collect();
    let results: Vec<Value> = all
        .iter()
        .filter(|o| o.kind.name.starts_with("p_"))
        .map(|o| render_schema(o, &all))
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

async fn read_schema(State(hs): State<Arc<HubSpot>>, Path(object_type): Path<String>) -> Reply {
    let portal = lock(&hs.portal);
    let all: Vec<&Objects> = portal.objects.values().collect();
    let objects = portal
        .objects(&object_type)
        .ok()
        .filter(|o| o.kind.name.starts_with("p_"))
        .ok_or_else(|| {
            HsError::new(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                format!("Unable to find object schema {object_type}"),
            )
        })?;
    Ok(Json(render_schema(objects, &all)).into_response())
}
