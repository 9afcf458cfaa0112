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
    let scanned: Box<dyn Iterator<Item = &Record>> =
        match q.filter.as_ref().and_then(|f| narrowed(org, object, f)) {
            Some(candidates) => Box::new(candidates.into_iter()),
            None => Box::new(org.records(object.name)),
        };
    let plan = q.filter.as_ref().map(Plan::of);
    let mut records: Vec<&Record> = scanned
        .filter(|r| include_deleted || r.deleted_ms.is_none())
        .filter(|r| plan.as_ref().is_none_or(|p| eval(org, object, r, p, now)))
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

/// The records a filter can only select from, found by value rather than by reading
/// every record, in id order as a scan finds them: a superset (the filter still decides
/// each), or `None` when no part of the filter narrows. An `Id` compared or listed
/// narrows to those records; a stored text field (email, an external id, a reference)
/// to the records holding the value. Salesforce answers these from its indexes; a scan
/// here made each of the engine's lookups by id or email cost a read of the whole
/// object (170 ms per composite of 25 at 10,000 records).
fn narrowed<'o>(org: &'o Org, object: &ObjectDef, filter: &Expr) -> Option<Vec<&'o Record>> {
    let (field, values): (&str, Vec<&str>) = match filter {
        Expr::And(a, b) => {
            return narrowed(org, object, a).or_else(|| narrowed(org, object, b));
        }
        Expr::Cmp {
            field,
            op: Op::Eq,
            value: Literal::Str(v),
        } => (field, vec![v.as_str()]),
        Expr::In {
            field,
            negated: false,
            values,
        } => {
            let texts: Option<Vec<&str>> = values
                .iter()
                .map(|v| match v {
                    Literal::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            (field, texts?)
        }
        _ => return None,
    };
    let def = object.field(field)?;
    let mut found: Vec<&Record> = if def.name == "Id" {
        values
            .iter()
            .filter_map(|v| super::ids::to18(v))
            .filter_map(|id| org.get(&id))
            .filter(|(o, _)| o.name == object.name)
            .map(|(_, r)| r)
            .collect()
    } else {
        let stored = def.formula.is_none()
            && !SYSTEM_FIELDS.contains(&def.name.as_str())
            && matches!(
                def.ty,
                SfType::String
                    | SfType::Email
                    | SfType::Phone
                    | SfType::Url
                    | SfType::Picklist
                    | SfType::Reference
            );
        if !stored {
            return None;
        }
        values
            .iter()
            .flat_map(|v| {
                // A reference matches in either of its id's forms.
                let keys = match (def.ty, super::ids::to18(v)) {
                    (SfType::Reference, Some(long)) => vec![long[..15].to_owned(), long],
                    _ => vec![(*v).to_owned()],
                };
                keys.into_iter()
                    .flat_map(|key| org.candidates(object.name, &def.name, &key))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found.dedup_by(|a, b| a.id == b.id);
    Some(found)
}

/// Fields the org computes for every record rather than storing them.
const SYSTEM_FIELDS: [&str; 6] = [
    "IsDeleted",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "CreatedById",
    "LastModifiedById",
];

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

fn eval(org: &Org, object: &ObjectDef, record: &Record, plan: &Plan<'_>, now: i64) -> bool {
    Row {
        org,
        object,
        record,
        now,
        values: Vec::new(),
    }
    .eval_plan(plan)
}

/// A filter prepared once for a scan: an `OR` of `field LIKE '%text%'` terms on one
/// field (a company match sends fifty, tried on every Account) is one automaton that
/// reads each value once, instead of each term reading it (most of the scale bench's
/// sandbox CPU).
enum Plan<'e> {
    And(Box<Plan<'e>>, Box<Plan<'e>>),
    Or(Box<Plan<'e>>, Box<Plan<'e>>),
    Not(Box<Plan<'e>>),
    Leaf(&'e Expr),
    AnyLike {
        field: &'e str,
        /// The terms as written, for values the automaton does not take.
        terms: Vec<&'e Expr>,
        matcher: aho_corasick::AhoCorasick,
    },
}

impl<'e> Plan<'e> {
    fn of(e: &'e Expr) -> Plan<'e> {
        if let Some(any) = Plan::any_like(e) {
            return any;
        }
        match e {
            Expr::And(a, b) => Plan::And(Box::new(Plan::of(a)), Box::new(Plan::of(b))),
            Expr::Or(a, b) => Plan::Or(Box::new(Plan::of(a)), Box::new(Plan::of(b))),
            Expr::Not(a) => Plan::Not(Box::new(Plan::of(a))),
            leaf => Plan::Leaf(leaf),
        }
    }

    /// `e` as one automaton, when it is an `OR` of two or more `LIKE '%text%'` terms
    /// on one field, each text ASCII without wildcards.
    fn any_like(e: &'e Expr) -> Option<Plan<'e>> {
        fn terms<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
            match e {
                Expr::Or(a, b) => {
                    terms(a, out);
                    terms(b, out);
                }
                leaf => out.push(leaf),
            }
        }
        let mut leaves = Vec::new();
        terms(e, &mut leaves);
        if leaves.len() < 2 {
            return None;
        }
        let mut field = None;
        let mut texts = Vec::with_capacity(leaves.len());
        for leaf in &leaves {
            let Expr::Cmp {
                field: f,
                op: Op::Like,
                value: Literal::Str(pattern),
            } = leaf
            else {
                return None;
            };
            let text = pattern.strip_prefix('%')?.strip_suffix('%')?;
            if text.is_empty() || !text.is_ascii() || text.contains(['%', '_']) {
                return None;
            }
            if field.is_some_and(|known: &str| known != f) {
                return None;
            }
            field = Some(f.as_str());
            texts.push(text);
        }
        let matcher = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&texts)
            .ok()?;
        Some(Plan::AnyLike {
            field: field?,
            terms: leaves,
            matcher,
        })
    }
}

/// One record a filter is evaluated on, with each field's value looked up once: a
/// company match's fifty `Website LIKE` terms read one value, not fifty copies of it.
struct Row<'a, 'e> {
    org: &'a Org,
    object: &'a ObjectDef,
    record: &'a Record,
    now: i64,
    values: Vec<(&'e str, Option<SfType>, Value)>,
}

impl<'e> Row<'_, 'e> {
    fn value(&mut self, field: &'e str) -> (Option<SfType>, &Value) {
        let n = match self.values.iter().position(|(f, _, _)| *f == field) {
            Some(n) => n,
            None => {
                let (ty, value) = value_at(self.org, self.object, self.record, field);
                self.values.push((field, ty, value));
                self.values.len() - 1
            }
        };
        let (_, ty, value) = &self.values[n];
        (*ty, value)
    }

    fn eval_plan(&mut self, plan: &Plan<'e>) -> bool {
        match plan {
            Plan::And(a, b) => self.eval_plan(a) && self.eval_plan(b),
            Plan::Or(a, b) => self.eval_plan(a) || self.eval_plan(b),
            Plan::Not(a) => !self.eval_plan(a),
            Plan::Leaf(e) => self.eval(e),
            Plan::AnyLike {
                field,
                terms,
                matcher,
            } => {
                match self.value(field) {
                    (_, Value::String(s)) if s.is_ascii() => matcher.is_match(s.as_str()),
                    // Null, other types, or a value whose lowercase the automaton's
                    // ASCII folding does not give: term by term.
                    _ => terms.iter().any(|t| self.eval(t)),
                }
            }
        }
    }

    fn eval(&mut self, e: &'e Expr) -> bool {
        let now = self.now;
        match e {
            Expr::And(a, b) => self.eval(a) && self.eval(b),
            Expr::Or(a, b) => self.eval(a) || self.eval(b),
            Expr::Not(a) => !self.eval(a),
            Expr::Cmp { field, op, value } => {
                let (ty, actual) = self.value(field);
                compare(ty, actual, *op, value, now)
            }
            Expr::In {
                field,
                negated,
                values,
            } => {
                let (ty, actual) = self.value(field);
                let hit = values.iter().any(|v| compare(ty, actual, Op::Eq, v, now));
                hit != *negated
            }
            Expr::Includes {
                field,
                negated,
                values,
            } => {
                let (_, actual) = self.value(field);
                let have: Vec<String> = text(actual)
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
        (_, Literal::Str(s)) if op == Op::Like => {
            return match actual {
                Value::String(a) => like(a, s),
                other => like(&text(other), s),
            };
        }
        // Ids compare by their characters, case and all, as they order (`Id > '...'
        // ORDER BY Id` pages a table, each record once).
        // A 15-character id names the same record as its 18-character form.
        (Some(SfType::Id | SfType::Reference), Literal::Str(s)) => {
            let long = |x: &str| super::ids::to18(x).unwrap_or_else(|| x.to_owned());
            Some(long(&text(actual)).cmp(&long(s)))
        }
        (_, Literal::Str(s)) => {
            let lower = |x: &str| x.chars().flat_map(char::to_lowercase).collect::<Vec<_>>();
            match actual {
                // Without allocating where both are ASCII (`Email IN (...)`, a thousand
                // values tried on every row).
                Value::String(a) if a.is_ascii() && s.is_ascii() => Some(
                    a.bytes()
                        .map(|b| b.to_ascii_lowercase())
                        .cmp(s.bytes().map(|b| b.to_ascii_lowercase())),
                ),
                other => Some(lower(&text(other)).cmp(&lower(s))),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::soql::parse;
    use crate::salesforce::store::{WriteOptions, Writer};

    fn create(org: &mut Org, object: &str, fields: Value, now: i64) -> String {
        let fields = fields.as_object().cloned().unwrap_or_default();
        org.create(
            object,
            &fields,
            now,
            Writer::Integration,
            WriteOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// What a query selects, by reading every record.
    fn scanned(org: &Org, q: &Query, include_deleted: bool) -> Vec<String> {
        let Some(object) = org.object(&q.object) else {
            return Vec::new();
        };
        org.records(object.name)
            .filter(|r| include_deleted || r.deleted_ms.is_none())
            .filter(|r| {
                q.filter
                    .as_ref()
                    .is_none_or(|f| eval(org, object, r, &Plan::Leaf(f), 9))
            })
            .map(|r| r.id.clone())
            .collect()
    }

    /// Queries answered from the value lookups select what a read of every record
    /// does, whatever the case of the value, the form of an id, a value since
    /// changed, a deleted record, or a filter that narrows only in part.
    #[test]
    fn lookups_by_value_select_what_a_scan_does() {
        let mut org = Org::new("00D");
        let acme = create(&mut org, "Account", json!({"Name": "Acme"}), 0);
        let globex = create(&mut org, "Account", json!({"Name": "Globex"}), 0);
        let eva = json!({"LastName": "Éva", "Email": "éva@acme.com", "AccountId": acme, "HubSpot_Contact_Id__c": "101"});
        let eva = create(&mut org, "Contact", eva, 1);
        let bo = json!({"LastName": "Bo", "Email": "bo@acme.com", "AccountId": acme});
        let bo = create(&mut org, "Contact", bo, 2);
        let cy = json!({"LastName": "Cy", "Email": "cy@globex.com", "AccountId": globex});
        let cy = create(&mut org, "Contact", cy, 3);
        for n in 0..20 {
            let other = json!({"LastName": format!("P{n}"), "Email": format!("p{n}@x.com")});
            create(&mut org, "Contact", other, 4);
        }
        let mut queries = vec![
            "SELECT Id FROM Contact WHERE Email IN ('ÉVA@ACME.COM', 'Bo@Acme.com', 'nobody@x.com')"
                .to_owned(),
            format!(
                "SELECT Id FROM Contact WHERE Id IN ('{}', '{cy}', '{acme}')",
                &eva[..15]
            ),
            format!("SELECT Id FROM Contact WHERE AccountId = '{}'", &acme[..15]),
            format!(
                "SELECT Id FROM Contact WHERE AccountId IN ('{acme}', '{globex}') AND Email = 'cy@globex.com'"
            ),
            "SELECT Id FROM Contact WHERE Email = 'bo@acme.com' OR LastName = 'Cy'".to_owned(),
            "SELECT Id FROM Contact WHERE HubSpot_Contact_Id__c IN ('101', '202')".to_owned(),
            "SELECT Id FROM Contact WHERE Email IN ('p3@x.com') AND NOT LastName = 'P3'".to_owned(),
        ];
        let before: Vec<Vec<String>> = queries
            .iter()
            .map(|soql| {
                let q = parse(soql).unwrap_or_else(|e| panic!("{soql}: {e:?}"));
                run(&org, soql, &q, false, 9)
                    .unwrap_or_else(|e| panic!("{soql}: {e:?}"))
                    .ids
            })
            .collect();
        assert_eq!(before[0].len(), 2, "{:?}", before[0]);
        // Values move and records go after the lookups are built.
        let moved =
            json!({"Email": "eva@globex.com", "AccountId": globex, "HubSpot_Contact_Id__c": "202"});
        let moved = moved.as_object().cloned().unwrap_or_default();
        org.update(
            Some("Contact"),
            &eva,
            &moved,
            5,
            Writer::Integration,
            WriteOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        org.delete(&bo, 6, Writer::Integration)
            .unwrap_or_else(|e| panic!("{e:?}"));
        queries.push("SELECT Id FROM Contact WHERE Email = 'eva@globex.com'".to_owned());
        for soql in &queries {
            let q = parse(soql).unwrap_or_else(|e| panic!("{soql}: {e:?}"));
            for include_deleted in [false, true] {
                let found = run(&org, soql, &q, include_deleted, 9)
                    .unwrap_or_else(|e| panic!("{soql}: {e:?}"))
                    .ids;
                assert_eq!(found, scanned(&org, &q, include_deleted), "{soql}");
            }
        }
    }

    /// An `OR` of `LIKE '%text%'` terms (a company match's) is one automaton; what it
    /// selects is what the terms select one by one: case, a null, a value out of ASCII,
    /// and shapes it does not take (another field, a pattern with a wildcard inside).
    #[test]
    fn an_or_of_likes_selects_what_its_terms_do() {
        let mut org = Org::new("00D");
        for (n, website) in [
            json!("https://www.Initech.example/"),
            json!("initech.example.org"),
            json!("https://globex.example"),
            json!(null),
            json!("https://zoë.example/Hooli.example"),
            json!("http://www.umbrella.example"),
        ]
        .into_iter()
        .enumerate()
        {
            let fields = json!({"Name": format!("A{n}"), "Website": website});
            create(&mut org, "Account", fields, n as i64);
        }
        let queries = [
            "SELECT Id FROM Account WHERE (Website LIKE '%initech.example%' OR Website LIKE '%HOOLI.example%' OR Website LIKE '%globex.example%')",
            "SELECT Id FROM Account WHERE (Website LIKE '%initech.example%' OR Website LIKE '%umbrella%') AND Name != 'A1'",
            "SELECT Id FROM Account WHERE Website LIKE '%initech%' OR Name LIKE '%A3%'",
            "SELECT Id FROM Account WHERE Website LIKE '%init_ch%' OR Website LIKE '%globex%'",
            "SELECT Id FROM Account WHERE NOT (Website LIKE '%initech%' OR Website LIKE '%globex%')",
        ];
        let mut automata = 0;
        for soql in queries {
            let q = parse(soql).unwrap_or_else(|e| panic!("{soql}: {e:?}"));
            let plan = q.filter.as_ref().map(Plan::of);
            fn any_like(p: &Plan<'_>) -> bool {
                match p {
                    Plan::AnyLike { .. } => true,
                    Plan::And(a, b) | Plan::Or(a, b) => any_like(a) || any_like(b),
                    Plan::Not(a) => any_like(a),
                    Plan::Leaf(_) => false,
                }
            }
            automata += usize::from(plan.as_ref().is_some_and(any_like));
            let found = run(&org, soql, &q, false, 9)
                .unwrap_or_else(|e| panic!("{soql}: {e:?}"))
                .ids;
            assert_eq!(found, scanned(&org, &q, false), "{soql}");
        }
        assert_eq!(
            automata, 3,
            "the first two queries and the last take the automaton"
        );
    }
}
