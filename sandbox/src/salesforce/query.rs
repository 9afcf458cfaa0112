//! Running a parsed SOQL query against the org: field checks (INVALID_FIELD with
//! Salesforce's message), relationship paths, filtering, ordering, `LIMIT`/`OFFSET`,
//! and rendering records with their `attributes`.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use super::error::{SfError, SfFailure};
use super::schema::{FieldDef, ObjectDef, SfType};
use super::soql::{Expr, Literal, Op, Query, Select, like};
use super::store::{Org, Record, parse_datetime};

/// `OFFSET` may not go past this.
const OFFSET_MAX: usize = 2_000;

/// Matching record ids, in order; the caller pages through them.
#[derive(Debug, Clone)]
pub struct Matches {
    pub object: String,
    pub ids: Vec<String>,
    /// `None` for `COUNT()`.
    pub fields: Option<Vec<String>>,
}

fn invalid_field(soql: &str, path: &str, object: &str) -> SfFailure {
    let column = soql.find(path).map_or(1, |i| soql[..i].chars().count() + 1);
    SfFailure::bad_request(vec![SfError::new(
        "INVALID_FIELD",
        format!(
            "\n{soql}\n{}^\nERROR at Row:1:Column:{column}\nNo such column '{path}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
            " ".repeat(column.saturating_sub(1))
        ),
    )])
}

/// The field a path ends on, checking every step (`Account.Owner.Email`).
fn field_of<'o>(org: &'o Org, object: &'o ObjectDef, path: &str) -> Option<&'o FieldDef> {
    let mut current = object;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return current.field(part);
        }
        let reference = current.relationship(part)?;
        current = org.object(reference.reference_to.first()?)?;
    }
    None
}

/// A path's value on a record, following references.
pub fn value_at(
    org: &Org,
    object: &ObjectDef,
    record: &Record,
    path: &str,
) -> (Option<SfType>, Value) {
    let mut current_object = object;
    let mut current = record;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return match current_object.field(part) {
                Some(def) => (Some(def.ty), org.value(current, def)),
                None => (None, Value::Null),
            };
        }
        let Some(reference) = current_object.relationship(part) else {
            return (None, Value::Null);
        };
        let Some(target) = current.fields.get(&reference.name).and_then(Value::as_str) else {
            return (None, Value::Null);
        };
        match org.get(target) {
            Some((o, r)) => {
                current_object = o;
                current = r;
            }
            None => return (None, Value::Null),
        }
    }
    (None, Value::Null)
}

/// Finds the records a query selects.
pub fn run(
    org: &Org,
    soql: &str,
    q: &Query,
    include_deleted: bool,
    now: i64,
) -> Result<Matches, SfFailure> {
    let object = org.object(&q.object).ok_or_else(|| {
        SfFailure::bad_request(vec![SfError::new(
            "INVALID_TYPE",
            format!(
                "\n{soql}\nERROR at Row:1:Column:1\nsObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
                q.object
            ),
        )])
    })?;
    let mut paths: Vec<&str> = match &q.select {
        Select::Count => Vec::new(),
        Select::Fields(f) => f.iter().map(String::as_str).collect(),
    };
    let filtered: Vec<&str> = q.filter.as_ref().map(|f| f.fields()).unwrap_or_default();
    let ordered: Vec<&str> = q.order.iter().map(|o| o.field.as_str()).collect();
    paths.extend(filtered.iter().copied());
    paths.extend(ordered.iter().copied());
    for path in paths {
        if field_of(org, object, path).is_none() {
            return Err(invalid_field(soql, path, object.name));
        }
    }
    // A compound address is selected, never filtered or sorted on.
    for path in filtered.iter().chain(&ordered) {
        if field_of(org, object, path).is_some_and(|f| f.ty == SfType::Address) {
            return Err(SfFailure::bad_request(vec![SfError::new(
                "INVALID_FIELD",
                format!(
                    "\n{soql}\nERROR at Row:1:Column:1\nAddress fields can only be filtered using Distance expressions: {path}"
                ),
            )]));
        }
    }
    if q.offset.is_some_and(|o| o > OFFSET_MAX) {
        return Err(SfFailure::bad_request(vec![SfError::new(
            "NUMBER_OUTSIDE_VALID_RANGE",
            format!("Maximum SOQL offset allowed is {OFFSET_MAX}"),
        )]));
    }
    let mut records: Vec<&Record> = org
        .records(object.name)
        .filter(|r| include_deleted || r.deleted_ms.is_none())
        .filter(|r| {
            q.filter
                .as_ref()
                .is_none_or(|f| eval(org, object, r, f, now))
        })
        .collect();
    if !q.order.is_empty() {
        records.sort_by(|a, b| {
            for o in &q.order {
                let (ty, va) = value_at(org, object, a, &o.field);
                let (_, vb) = value_at(org, object, b, &o.field);
                let ord = match (va.is_null(), vb.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if o.nulls_last {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (false, true) => {
                        if o.nulls_last {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (false, false) => {
                        let c = compare_values(ty, &va, &vb);
                        if o.descending { c.reverse() } else { c }
                    }
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    let ids: Vec<String> = records
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(usize::MAX))
        .map(|r| r.id.clone())
        .collect();
    Ok(Matches {
        object: object.name.to_owned(),
        ids,
        fields: match &q.select {
            Select::Count => None,
            Select::Fields(f) => Some(f.clone()),
        },
    })
}

fn compare_values(ty: Option<SfType>, a: &Value, b: &Value) -> Ordering {
    match ty {
        Some(t) if t.is_numeric() => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
        Some(SfType::DateTime) => parse_datetime(a.as_str().unwrap_or_default())
            .cmp(&parse_datetime(b.as_str().unwrap_or_default())),
        Some(SfType::Boolean) => a.as_bool().cmp(&b.as_bool()),
        // Ids order by their characters, case and all (base-62 order).
        Some(SfType::Id | SfType::Reference) => text(a).cmp(&text(b)),
        _ => {
            let (x, y) = (text(a).to_lowercase(), text(b).to_lowercase());
            x.cmp(&y)
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A literal as milliseconds for date-time comparisons (dates at midnight UTC).
fn literal_ms(l: &Literal, now: i64) -> Option<i64> {
    let midnight = |ms: i64| ms - ms.rem_euclid(86_400_000);
    match l {
        Literal::DateTime(ms) => Some(*ms),
        Literal::Date(d) => d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis()),
        Literal::Today => Some(midnight(now)),
        Literal::LastNDays(n) => Some(midnight(now) - i64::from(*n) * 86_400_000),
        _ => None,
    }
}

fn eval(org: &Org, object: &ObjectDef, record: &Record, e: &Expr, now: i64) -> bool {
    match e {
        Expr::And(a, b) => eval(org, object, record, a, now) && eval(org, object, record, b, now),
        Expr::Or(a, b) => eval(org, object, record, a, now) || eval(org, object, record, b, now),
        Expr::Not(a) => !eval(org, object, record, a, now),
        Expr::Cmp { field, op, value } => {
            let (ty, actual) = value_at(org, object, record, field);
            compare(ty, &actual, *op, value, now)
        }
        Expr::In {
            field,
            negated,
            values,
        } => {
            let (ty, actual) = value_at(org, object, record, field);
            let hit = values.iter().any(|v| compare(ty, &actual, Op::Eq, v, now));
            hit != *negated
        }
        Expr::Includes {
            field,
            negated,
            values,
        } => {
            let (_, actual) = value_at(org, object, record, field);
            let have: Vec<String> = text(&actual)
                .split(';')
                .map(|s| s.trim().to_lowercase())
                .collect();
            // Each value may itself be `a;b`: all of those must be present.
            let hit = values.iter().any(|v| {
                v.split(';')
                    .all(|part| have.contains(&part.trim().to_lowercase()))
            });
            hit != *negated
        }
    }
}

fn compare(ty: Option<SfType>, actual: &Value, op: Op, literal: &Literal, now: i64) -> bool {
    if matches!(literal, Literal::Null) {
        return match op {
            Op::Eq => actual.is_null(),
            Op::Ne => !actual.is_null(),
            _ => false,
        };
    }
    if actual.is_null() {
        return op == Op::Ne;
    }
    let ord = match (ty, literal) {
        (_, Literal::Bool(b)) => actual.as_bool().map(|a| a.cmp(b)),
        (Some(t), Literal::Num(n)) if t.is_numeric() => {
            actual.as_f64().and_then(|a| a.partial_cmp(n))
        }
        (Some(SfType::DateTime), l) => {
            let a = parse_datetime(actual.as_str().unwrap_or_default());
            match (a, literal_ms(l, now)) {
                // A date literal against a date-time compares by day.
                (Some(a), Some(b)) if matches!(l, Literal::Date(_)) => {
                    Some((a - a.rem_euclid(86_400_000)).cmp(&b))
                }
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => None,
            }
        }
        (Some(SfType::Date), l) => {
            let a = actual
                .as_str()
                .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_millis());
            match (a, literal_ms(l, now)) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => None,
            }
        }
        (_, Literal::Str(s)) if op == Op::Like => return like(&text(actual), s),
        // Ids compare by their characters, case and all, as they order (`Id > '...'
        // ORDER BY Id` pages a table, each record once).
        // A 15-character id names the same record as its 18-character form.
        (Some(SfType::Id | SfType::Reference), Literal::Str(s)) => {
            let long = |x: &str| super::ids::to18(x).unwrap_or_else(|| x.to_owned());
            Some(long(&text(actual)).cmp(&long(s)))
        }
        (_, Literal::Str(s)) => Some(text(actual).to_lowercase().cmp(&s.to_lowercase())),
        (_, Literal::Num(n)) => actual.as_f64().and_then(|a| a.partial_cmp(n)),
        _ => None,
    };
    let Some(ord) = ord else { return false };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Like => false,
    }
}

/// `{"type": "Contact", "url": "/services/data/v59.0/sobjects/Contact/003..."}`, with the
/// version the caller used.
pub fn attributes(object: &str, id: &str) -> Value {
    json!({"type": object, "url": format!("{}/sobjects/{object}/{id}", super::data_path())})
}

/// A record as a query returns it: `attributes`, then the selected fields in order,
/// parent fields nested under their relationship.
pub fn render(org: &Org, object: &ObjectDef, record: &Record, paths: &[String]) -> Value {
    let mut out = Map::new();
    out.insert("attributes".into(), attributes(object.name, &record.id));
    for path in paths {
        insert_path(org, object, record, path, &mut out);
    }
    Value::Object(out)
}

fn insert_path(
    org: &Org,
    object: &ObjectDef,
    record: &Record,
    path: &str,
    out: &mut Map<String, Value>,
) {
    match path.split_once('.') {
        None => {
            if let Some(def) = object.field(path) {
                out.insert(def.name.clone(), org.value(record, def));
            }
        }
        Some((relationship, rest)) => {
            let Some(reference) = object.relationship(relationship) else {
                return;
            };
            let key = reference
                .relationship_name
                .clone()
                .unwrap_or_else(|| relationship.to_owned());
            let parent = record
                .fields
                .get(&reference.name)
                .and_then(Value::as_str)
                .and_then(|id| org.get(id));
            match parent {
                Some((po, pr)) => {
                    let entry = out
                        .entry(key)
                        .or_insert_with(|| json!({"attributes": attributes(po.name, &pr.id)}));
                    if let Value::Object(m) = entry {
                        insert_path(org, po, pr, rest, m);
                    }
                }
                None => {
                    out.insert(key, Value::Null);
                }
            }
        }
    }
}
