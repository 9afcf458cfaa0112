//! A search request (`PublicObjectSearchRequest`): parsed and checked against HubSpot's
//! limits, then evaluated against the search index's view of each record.

use std::cmp::Ordering;

use serde_json::Value;

use super::api::SEARCH_LIMITS;
use super::error::HsError;
use super::store::{Objects, PropType, Props, Record, parse_time_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    HasProperty,
    NotHasProperty,
    ContainsToken,
    NotContainsToken,
}

#[derive(Debug, Clone)]
struct Filter {
    property: String,
    op: Op,
    value: Option<String>,
    high: Option<String>,
    values: Vec<String>,
    /// `values` in lower case, for `IN` on text: made once per search, not once per
    /// record and value (a search by a hundred domains looks at every company).
    lower: std::collections::HashSet<String>,
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    groups: Vec<Vec<Filter>>,
    sort: Option<(String, bool)>,
    query: Option<String>,
    pub properties: Option<Vec<String>>,
    pub limit: usize,
    pub after: usize,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl SearchRequest {
    pub fn parse(v: &Value) -> Result<Self, HsError> {
        let (limit_max, results_max, groups_max, per_group_max, filters_max) = SEARCH_LIMITS;
        let groups_json = v
            .get("filterGroups")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if groups_json.len() > groups_max {
            return Err(HsError::validation(format!(
                "Too many filter groups: {} (the maximum is {groups_max})",
                groups_json.len()
            )));
        }
        let mut groups = Vec::new();
        let mut total = 0;
        for g in &groups_json {
            let filters = g
                .get("filters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if filters.len() > per_group_max {
                return Err(HsError::validation(format!(
                    "Too many filters in a group: {} (the maximum is {per_group_max})",
                    filters.len()
                )));
            }
            total += filters.len();
            groups.push(
                filters
                    .iter()
                    .map(parse_filter)
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        if total > filters_max {
            return Err(HsError::validation(format!(
                "Too many filters: {total} (the maximum is {filters_max} across all groups)"
            )));
        }
        let sorts = v
            .get("sorts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if sorts.len() > 1 {
            return Err(HsError::validation("Only one sort is supported"));
        }
        let sort = sorts.first().map(|s| match s {
            Value::String(p) => (p.trim_start_matches('-').to_owned(), !p.starts_with('-')),
            other => (
                other
                    .get("propertyName")
                    .and_then(Value::as_str)
                    .unwrap_or("hs_object_id")
                    .to_owned(),
                other.get("direction").and_then(Value::as_str) != Some("DESCENDING"),
            ),
        });
        let query = v.get("query").and_then(Value::as_str).map(str::to_owned);
        if query.as_ref().is_some_and(|q| q.len() > 3_000) {
            return Err(HsError::validation("query must be at most 3000 characters"));
        }
        let limit = match v.get("limit") {
            None | Some(Value::Null) => 10,
            Some(l) => l
                .as_u64()
                .or_else(|| l.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| HsError::validation("limit must be a number"))?
                as usize,
        };
        if limit > limit_max {
            return Err(HsError::validation(format!(
                "limit must be at most {limit_max}, got {limit}"
            )));
        }
        let after = match v.get("after") {
            None | Some(Value::Null) => 0,
            Some(a) => text(a)
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| HsError::validation("after must be a paging offset"))?,
        };
        if after >= results_max || after + limit > results_max {
            return Err(HsError::validation(format!(
                "Paging past {results_max} results is not supported: after {after} + limit {limit}"
            ))
            .with(
                "subCategory",
                Value::String("SEARCH_RESULTS_LIMIT_EXCEEDED".into()),
            ));
        }
        let properties = v.get("properties").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        });
        Ok(SearchRequest {
            groups,
            sort,
            query,
            properties,
            limit,
            after,
        })
    }

    /// Whether a record (as the index sees it) matches: any group, every filter in it.
    pub fn matches(&self, objects: &Objects, record: &Record, props: &Props) -> bool {
        if let Some(q) = &self.query {
            let q = q.to_lowercase();
            let hit = props.values().any(|v| v.to_lowercase().contains(&q));
            if !q.is_empty() && !hit {
                return false;
            }
        }
        self.groups.is_empty()
            || self
                .groups
                .iter()
                .any(|g| g.iter().all(|f| f.matches(objects, record, props)))
    }

    /// The earliest modification time a match can have, when every filter group
    /// bounds the object's modification time from below: only records modified since
    /// then need to be looked at (`Objects::modified_since`). `None`: any record may
    /// match.
    pub fn modified_floor(&self, objects: &Objects) -> Option<i64> {
        let modified = objects.kind.modified_property;
        let floor_of = |group: &Vec<Filter>| {
            group
                .iter()
                .filter(|f| f.property == modified)
                .filter(|f| matches!(f.op, Op::Eq | Op::Gt | Op::Gte | Op::Between))
                .filter_map(|f| parse_time_ms(f.value.as_deref()?))
                .max()
        };
        if self.groups.is_empty() {
            return None;
        }
        self.groups
            .iter()
            .map(floor_of)
            .collect::<Option<Vec<i64>>>()?
            .into_iter()
            .min()
    }

    pub fn sort(&self, objects: &Objects, items: &mut [(&Record, &Props)]) {
        let Some((prop, ascending)) = &self.sort else {
            items.sort_by_key(|(r, _)| r.id);
            return;
        };
        // By the record's own clock, as `value` would write it.
        if prop == objects.kind.modified_property {
            items.sort_by(|(ra, _), (rb, _)| {
                let ord = ra.updated_ms.cmp(&rb.updated_ms);
                let ord = if *ascending { ord } else { ord.reverse() };
                ord.then(ra.id.cmp(&rb.id))
            });
            return;
        }
        let ty = objects.properties.get(prop.as_str()).map(|d| d.ty);
        items.sort_by(|(ra, pa), (rb, pb)| {
            let a = objects.value(ra, pa, prop);
            let b = objects.value(rb, pb, prop);
            let ord = match (a, b) {
                (Some(a), Some(b)) => compare(ty, &a, &b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            let ord = if *ascending { ord } else { ord.reverse() };
            ord.then(ra.id.cmp(&rb.id))
        });
    }
}

fn parse_filter(f: &Value) -> Result<Filter, HsError> {
    let property = f
        .get("propertyName")
        .and_then(Value::as_str)
        .ok_or_else(|| HsError::validation("A filter needs a propertyName"))?
        .to_owned();
    let op = match f.get("operator").and_then(Value::as_str).unwrap_or("EQ") {
        "EQ" => Op::Eq,
        "NEQ" => Op::Neq,
        "LT" => Op::Lt,
        "LTE" => Op::Lte,
        "GT" => Op::Gt,
        "GTE" => Op::Gte,
        "BETWEEN" => Op::Between,
        "IN" => Op::In,
        "NOT_IN" => Op::NotIn,
        "HAS_PROPERTY" => Op::HasProperty,
        "NOT_HAS_PROPERTY" => Op::NotHasProperty,
        "CONTAINS_TOKEN" => Op::ContainsToken,
        "NOT_CONTAINS_TOKEN" => Op::NotContainsToken,
        other => return Err(HsError::validation(format!("Unknown operator {other}"))),
    };
    let value = f.get("value").and_then(text);
    let high = f.get("highValue").and_then(text);
    let values: Vec<String> = f
        .get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(text).collect())
        .unwrap_or_default();
    let needs_value = matches!(
        op,
        Op::Eq
            | Op::Neq
            | Op::Lt
            | Op::Lte
            | Op::Gt
            | Op::Gte
            | Op::ContainsToken
            | Op::NotContainsToken
    );
    if needs_value && value.is_none() {
        return Err(HsError::validation(format!(
            "Operator needs a value for {property}"
        )));
    }
    if op == Op::Between && (value.is_none() || high.is_none()) {
        return Err(HsError::validation(format!(
            "BETWEEN needs value and highValue for {property}"
        )));
    }
    if matches!(op, Op::In | Op::NotIn) && values.is_empty() {
        return Err(HsError::validation(format!(
            "IN and NOT_IN need values for {property}"
        )));
    }
    let lower = values.iter().map(|v| v.to_lowercase()).collect();
    Ok(Filter {
        property,
        op,
        value,
        high,
        values,
        lower,
    })
}

/// Whether `compare` compares values of this type as text, without case.
fn is_text(ty: Option<PropType>) -> bool {
    !matches!(
        ty,
        Some(PropType::Number | PropType::Date | PropType::DateTime | PropType::Enumeration)
    )
}

/// Compares two values as the property's type: numbers and times by value, text without
/// regard to case (enumerations exactly).
fn compare(ty: Option<PropType>, a: &str, b: &str) -> Ordering {
    match ty {
        Some(PropType::Number) => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => a.cmp(b),
        },
        Some(PropType::Date | PropType::DateTime) => match (parse_time_ms(a), parse_time_ms(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => a.cmp(b),
        },
        Some(PropType::Enumeration) => a.cmp(b),
        _ => a.to_lowercase().cmp(&b.to_lowercase()),
    }
}

fn token_match(haystack: &str, pattern: &str) -> bool {
    let pattern = pattern.to_lowercase();
    let tokens = haystack
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '@' && c != '.' && c != '-' && c != '_')
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let whole = haystack.to_lowercase();
    let matches = |t: &str| match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(rest), _) if rest.ends_with('*') => t.contains(rest.trim_end_matches('*')),
        (Some(rest), _) => t.ends_with(rest),
        (None, Some(rest)) => t.starts_with(rest),
        (None, None) => t == pattern,
    };
    matches(&whole) || tokens.iter().any(|t| matches(t))
}

impl Filter {
    /// A filter on the modification time, against the record's own clock: what writing
    /// it out and parsing it back would compare, without doing so for every record a
    /// feed's search looks at (the scale bench's sandbox spent its time there). `None`:
    /// a value that is no time, or an operator on text.
    fn matches_modified(&self, modified: i64) -> Option<bool> {
        let ms = |v: Option<&str>| parse_time_ms(v?);
        let value = || ms(self.value.as_deref());
        let any = || -> Option<bool> {
            let values: Option<Vec<i64>> = self.values.iter().map(|v| parse_time_ms(v)).collect();
            Some(values?.contains(&modified))
        };
        Some(match self.op {
            Op::Eq => modified == value()?,
            Op::Neq => modified != value()?,
            Op::Lt => modified < value()?,
            Op::Lte => modified <= value()?,
            Op::Gt => modified > value()?,
            Op::Gte => modified >= value()?,
            Op::Between => modified >= value()? && modified <= ms(self.high.as_deref())?,
            Op::In => any()?,
            Op::NotIn => !any()?,
            Op::HasProperty => true,
            Op::NotHasProperty => false,
            Op::ContainsToken | Op::NotContainsToken => return None,
        })
    }

    fn matches(&self, objects: &Objects, record: &Record, props: &Props) -> bool {
        if self.property == objects.kind.modified_property
            && let Some(hit) = self.matches_modified(record.updated_ms)
        {
            return hit;
        }
        self.matches_value(objects, record, props)
    }

    /// [`Filter::matches`] on the property's value as the record shows it.
    fn matches_value(&self, objects: &Objects, record: &Record, props: &Props) -> bool {
        let ty = objects.properties.get(self.property.as_str()).map(|d| d.ty);
        let actual = objects.value(record, props, &self.property);
        let Some(actual) = actual.filter(|a| !a.is_empty()) else {
            return matches!(
                self.op,
                Op::NotHasProperty | Op::Neq | Op::NotIn | Op::NotContainsToken
            );
        };
        let cmp = |v: &str| compare(ty, &actual, v);
        let value = self.value.as_deref().unwrap_or_default();
        match self.op {
            Op::Eq => cmp(value) == Ordering::Equal,
            Op::Neq => cmp(value) != Ordering::Equal,
            Op::Lt => cmp(value) == Ordering::Less,
            Op::Lte => cmp(value) != Ordering::Greater,
            Op::Gt => cmp(value) == Ordering::Greater,
            Op::Gte => cmp(value) != Ordering::Less,
            Op::Between => {
                cmp(value) != Ordering::Less
                    && cmp(self.high.as_deref().unwrap_or_default()) != Ordering::Greater
            }
            // Text compares without case (`compare`): one lookup of its lower case.
            Op::In | Op::NotIn if is_text(ty) => {
                self.lower.contains(&actual.to_lowercase()) == (self.op == Op::In)
            }
            Op::In => self.values.iter().any(|v| cmp(v) == Ordering::Equal),
            Op::NotIn => !self.values.iter().any(|v| cmp(v) == Ordering::Equal),
            Op::HasProperty => true,
            Op::NotHasProperty => false,
            Op::ContainsToken => token_match(&actual, value),
            Op::NotContainsToken => !token_match(&actual, value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::store::{Portal, Source};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{Map, json};

    /// The ids of `records` the request matches, in order.
    fn matching<'a>(
        objects: &Objects,
        request: &SearchRequest,
        records: impl Iterator<Item = &'a Record>,
    ) -> Vec<u64> {
        let mut ids: Vec<u64> = records
            .filter(|r| r.archived_ms.is_none())
            .filter(|r| {
                r.indexed
                    .as_deref()
                    .is_some_and(|p| request.matches(objects, r, p))
            })
            .map(|r| r.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// A portal with one contact, created at `at` and in the search index (past its lag).
    fn one_contact(props: Value, at: i64) -> (Portal, u64) {
        let mut portal = Portal::new(500);
        let id = portal
            .create(
                "contacts",
                props.as_object().unwrap_or(&Map::new()),
                at,
                Source::Import,
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
        portal
            .refresh_index("contacts", at + 10_000)
            .unwrap_or_else(|e| panic!("{e:?}"));
        (portal, id)
    }

    /// The contacts, the record `id`, and its properties as the search index holds them.
    fn indexed(portal: &Portal, id: u64) -> (&Objects, &Record, std::sync::Arc<Props>) {
        let objects = portal
            .objects("contacts")
            .unwrap_or_else(|e| panic!("{e:?}"));
        let record = objects
            .records
            .get(&id)
            .unwrap_or_else(|| panic!("no record"));
        let props = record
            .indexed
            .clone()
            .unwrap_or_else(|| panic!("not indexed"));
        (objects, record, props)
    }

    /// A filter on the modification time compared on the record's clock says what the
    /// comparison of its written-out value says, for every operator, in every form a
    /// time is given (epoch ms, ISO 8601, a date).
    #[test]
    fn the_modification_time_compares_as_its_written_value_does() {
        let at = 1_700_000_000_000_i64;
        let (portal, id) = one_contact(json!({"email": "t@example.org"}), at);
        let (objects, record, indexed) = indexed(&portal, id);
        let times = [
            (at - 1).to_string(),
            at.to_string(),
            (at + 1).to_string(),
            "2023-11-14T22:13:20.000Z".to_owned(),
            "2023-11-14T22:13:20Z".to_owned(),
            "2023-11-14".to_owned(),
            "2023-11-15".to_owned(),
            "not a time".to_owned(),
        ];
        let ops = [
            "EQ",
            "NEQ",
            "LT",
            "LTE",
            "GT",
            "GTE",
            "BETWEEN",
            "IN",
            "NOT_IN",
            "HAS_PROPERTY",
            "NOT_HAS_PROPERTY",
        ];
        for op in ops {
            for low in &times {
                for high in &times {
                    let filter = json!({"propertyName": "lastmodifieddate", "operator": op,
                        "value": low, "highValue": high, "values": [low, high]});
                    let request = json!({"filterGroups": [{"filters": [filter]}]});
                    let Ok(request) = SearchRequest::parse(&request) else {
                        continue;
                    };
                    let f = &request.groups[0][0];
                    if let Some(fast) = f.matches_modified(record.updated_ms) {
                        assert_eq!(
                            fast,
                            f.matches_value(objects, record, &indexed),
                            "{op} {low} {high}"
                        );
                    }
                }
            }
        }
    }

    /// `IN` and `NOT_IN` on text say what comparing the value with each listed one says
    /// (without case), on numbers and enumerations too.
    #[test]
    fn in_says_what_comparing_each_value_says() {
        let props =
            json!({"email": "Ann@Example.com", "firstname": "Ann", "hs_lead_status": "NEW"});
        let (portal, id) = one_contact(props, 1_700_000_000_000);
        let (objects, record, indexed) = indexed(&portal, id);
        for property in ["email", "firstname", "hs_lead_status", "hs_object_id"] {
            for values in [
                vec!["ann@example.com"],
                vec!["bob@example.com", "ANN@EXAMPLE.COM"],
                vec!["ann", "Ann", "new"],
                vec!["NEW", "x"],
                vec![&*id.to_string(), "1"],
                vec!["nobody"],
            ] {
                for op in ["IN", "NOT_IN"] {
                    let request = json!({"filterGroups": [{"filters": [
                        {"propertyName": property, "operator": op, "values": values}
                    ]}]});
                    let request =
                        SearchRequest::parse(&request).unwrap_or_else(|e| panic!("{e:?}"));
                    let f = &request.groups[0][0];
                    let ty = objects.properties.get(property).map(|d| d.ty);
                    let actual = objects
                        .value(record, &indexed, property)
                        .unwrap_or_default();
                    let any = values
                        .iter()
                        .any(|v| compare(ty, &actual, v) == Ordering::Equal);
                    assert_eq!(
                        f.matches_value(objects, record, &indexed),
                        any == (op == "IN"),
                        "{property} {op} {values:?}"
                    );
                }
            }
        }
    }

    /// After creates, updates, merges, archives and restores (search lag on), a search
    /// for what changed since a time finds from the modification index exactly what a
    /// scan of every record finds; a request that does not bound the modification
    /// time in every group scans.
    #[test]
    fn searches_by_modification_time_select_what_a_scan_does() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut portal = Portal::new(500);
        let mut now = 1_700_000_000_000_i64;
        let mut ids: Vec<u64> = Vec::new();
        for step in 0..2_000 {
            now += rng.random_range(0..300);
            let pick = |rng: &mut StdRng, ids: &[u64]| ids[rng.random_range(0..ids.len())];
            match rng.random_range(0..10) {
                0..=2 => {
                    let props = json!({"email": format!("p{step}@example.org"), "firstname": "A"});
                    let id = portal
                        .create(
                            "contacts",
                            props.as_object().unwrap_or(&Map::new()),
                            now,
                            Source::Import,
                        )
                        .unwrap_or_else(|e| panic!("{e:?}"));
                    ids.push(id);
                }
                3..=6 if !ids.is_empty() => {
                    let id = pick(&mut rng, &ids);
                    let props = json!({"firstname": format!("N{step}")});
                    let _ = portal.update(
                        "contacts",
                        id,
                        props.as_object().unwrap_or(&Map::new()),
                        now,
                        Source::User(1),
                    );
                }
                7 if ids.len() > 1 => {
                    let (a, b) = (pick(&mut rng, &ids), pick(&mut rng, &ids));
                    if let Ok(id) = portal.merge("contacts", a, b, now, Source::User(1)) {
                        ids.push(id);
                    }
                }
                8 if !ids.is_empty() => {
                    let _ = portal.archive("contacts", pick(&mut rng, &ids), now, Source::User(1));
                }
                9 if !ids.is_empty() => {
                    let _ = portal.restore("contacts", pick(&mut rng, &ids), now, Source::User(1));
                }
                _ => {}
            }
            portal
                .refresh_index("contacts", now)
                .unwrap_or_else(|e| panic!("{e:?}"));
            if step % 50 != 49 {
                continue;
            }
            let objects = portal
                .objects("contacts")
                .unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(
                objects.modified_entries(),
                objects.records.len(),
                "one index entry per record"
            );
            let since = now - rng.random_range(0..20_000);
            let op = ["GTE", "GT", "EQ"][rng.random_range(0..3)];
            let bounded = json!({"filterGroups": [
                {"filters": [{"propertyName": "lastmodifieddate", "operator": op, "value": since.to_string()}]},
                {"filters": [
                    {"propertyName": "lastmodifieddate", "operator": "BETWEEN", "value": (since - 5_000).to_string(), "highValue": now.to_string()},
                    {"propertyName": "firstname", "operator": "HAS_PROPERTY"}
                ]}
            ]});
            let request = SearchRequest::parse(&bounded).unwrap_or_else(|e| panic!("{e:?}"));
            let floor = request.modified_floor(objects);
            assert_eq!(floor, Some(since - 5_000), "the lowest bound of the groups");
            let indexed = objects
                .modified_since(since - 5_000)
                .filter_map(|id| objects.records.get(&id));
            assert_eq!(
                matching(objects, &request, indexed),
                matching(objects, &request, objects.records.values()),
                "step {step}"
            );
            let unbounded = json!({"filterGroups": [
                {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": since.to_string()}]},
                {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "A"}]}
            ]});
            let request = SearchRequest::parse(&unbounded).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(
                request.modified_floor(objects),
                None,
                "a group without a bound"
            );
        }
    }
}
