//! Search, and reading every record changed since a time correctly past HubSpot's
//! 10,000-result cap: windows on the last-modified property (one sort rule: that
//! property, ascending); when a window hits the cap the next one starts at the last
//! timestamp seen (records already read at that timestamp are skipped); a single
//! timestamp holding more than a window is walked by `hs_object_id`. And finding
//! records by any of many values (`search_any`), with the searches waiting at the
//! limiter with it.

use std::collections::{BTreeMap, HashMap, HashSet};

use reqwest::Method;
use serde_json::{Value, json};

use super::objects::{HsRecord, parse_ms, records_of};
use super::{HubSpotClient, HubSpotError, Idempotent, SearchTurn};
use crate::ports::crm::Modified;

/// Records per search page.
pub const SEARCH_PAGE: usize = 200;
/// Results one search can page through.
pub const SEARCH_CAP: usize = 10_000;
/// Values per `IN` filter: HubSpot states no limit; a hundred keeps a filter small.
const IN_VALUES: usize = 100;
/// Filter groups per search, HubSpot's limit (`docs/hubspot-api.md` §search).
const FILTER_GROUPS: usize = 5;

/// The property that says when a record last changed.
pub fn modified_property(object: &str) -> &'static str {
    if object == "contacts" {
        "lastmodifieddate"
    } else {
        "hs_lastmodifieddate"
    }
}

/// One page of search results.
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub total: usize,
    pub records: Vec<HsRecord>,
    pub next_after: Option<usize>,
}

/// Whether a page ended at the cap with more matches left (HubSpot may or may not
/// offer a next page there; either way the window is spent).
fn capped(page: &SearchPage, after: usize) -> bool {
    let reached = after + page.records.len();
    reached >= SEARCH_CAP && page.total > reached
}

/// A property and a value it may hold, as one id of a group of searches
/// (`together.rs`).
fn term(property: &str, value: &str) -> String {
    format!("{property}\u{1f}{value}")
}

fn split_term(term: &str) -> Option<(&str, &str)> {
    term.split_once('\u{1f}')
}

/// The values of `terms` by property (each property an `IN` filter per
/// [`IN_VALUES`] values).
fn by_property(terms: &[String]) -> BTreeMap<&str, Vec<&str>> {
    let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (p, v) in terms.iter().filter_map(|t| split_term(t)) {
        by.entry(p).or_default().push(v);
    }
    by
}

/// Whether one search's filter groups carry `terms`.
fn one_search(terms: &[String]) -> bool {
    let groups: usize = by_property(terms)
        .values()
        .map(|v| v.len().div_ceil(IN_VALUES))
        .sum();
    groups <= FILTER_GROUPS
}

/// The first page's request of a search for `terms`, asking for `properties`.
fn search_body(terms: &[String], properties: &[String]) -> Value {
    let groups: Vec<Value> = by_property(terms)
        .into_iter()
        .flat_map(|(p, values)| {
            values
                .chunks(IN_VALUES)
                .map(|c| json!({"filters": [{"propertyName": p, "operator": "IN", "values": c}]}))
                .collect::<Vec<_>>()
        })
        .collect();
    json!({"filterGroups": groups, "properties": properties, "limit": SEARCH_PAGE})
}

/// `terms` (sorted) in runs that one search each carries.
fn searches_of(terms: &[String]) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut groups) = (0, 0);
    let mut values = 0;
    for (i, t) in terms.iter().enumerate() {
        let property = split_term(t).map(|(p, _)| p);
        let same = i > start && split_term(&terms[i - 1]).map(|(p, _)| p) == property;
        if !same {
            values = 0;
        }
        if values % IN_VALUES == 0 {
            groups += 1;
        }
        if groups > FILTER_GROUPS {
            out.push(&terms[start..i]);
            (start, groups, values) = (i, 1, 0);
        }
        values += 1;
    }
    if start < terms.len() {
        out.push(&terms[start..]);
    }
    out
}

impl HubSpotClient {
    /// Records whose property holds one of the values: `any` as (property, value),
    /// compared without case as HubSpot's `IN` does, each record once, with
    /// `properties`. As many searches as the filter groups take; each goes with the
    /// searches of `object` waiting at the search limiter with it: one call carries
    /// every member's values and each member keeps its own records.
    pub async fn search_any(
        &self,
        object: &str,
        any: &[(String, String)],
        properties: &[String],
    ) -> Result<Vec<HsRecord>, HubSpotError> {
        // HubSpot wants `IN`'s text values in lower case.
        let mut terms: Vec<String> = any
            .iter()
            .map(|(p, v)| term(p, &v.to_lowercase()))
            .collect();
        terms.sort_unstable();
        terms.dedup();
        let mut found: Vec<HsRecord> = Vec::new();
        let mut ids: HashSet<String> = HashSet::new();
        for terms in searches_of(&terms) {
            for r in self.search_together(object, terms, properties).await? {
                if ids.insert(r.id.clone()) {
                    found.push(r);
                }
            }
        }
        Ok(found)
    }

    /// One search's worth of `terms`, with the searches waiting at the limiter.
    async fn search_together(
        &self,
        object: &str,
        terms: &[String],
        properties: &[String],
    ) -> Result<Vec<HsRecord>, HubSpotError> {
        let path = format!("/crm/v3/objects/{object}/search");
        // A record is known as its own by the properties it was found by.
        let mut asks: Vec<String> = properties.to_vec();
        for p in by_property(terms).into_keys() {
            if !asks.iter().any(|a| a == p) {
                asks.push(p.to_owned());
            }
        }
        let answer = self
            .call_together(
                &format!("{path} any"),
                &path,
                &one_search,
                terms,
                &asks,
                search_body,
                async |terms, asks, first| {
                    self.rest_of(&path, search_body(terms, asks), first).await
                },
            )
            .await?;
        let all = &answer.fields;
        let mut records = Vec::new();
        for mut r in records_of(&answer.body)? {
            let mine = terms.iter().filter_map(|t| split_term(t)).any(|(p, v)| {
                r.properties
                    .get(p)
                    .and_then(Value::as_str)
                    .is_some_and(|held| held.to_lowercase() == v)
            });
            if mine {
                // Another member's properties are not this searcher's.
                r.properties
                    .retain(|k, _| properties.contains(k) || !all.contains(k));
                records.push(r);
            }
        }
        Ok(records)
    }

    /// A search's answer with every further page's results added (`body`: its first
    /// page's request).
    async fn rest_of(
        &self,
        path: &str,
        mut body: Value,
        first: Value,
    ) -> Result<Value, HubSpotError> {
        let mut first = first;
        let mut results: Vec<Value> = match first.get_mut("results").map(Value::take) {
            Some(Value::Array(records)) => records,
            _ => Vec::new(),
        };
        let mut next = first
            .pointer("/paging/next/after")
            .and_then(Value::as_str)
            .map(str::to_owned);
        while let Some(after) = next.take() {
            let within = after
                .parse::<usize>()
                .is_ok_and(|a| a + SEARCH_PAGE <= SEARCH_CAP);
            let Some(b) = body.as_object_mut().filter(|_| within) else {
                break;
            };
            b.insert("after".into(), Value::from(after));
            let page = self
                .request(Method::POST, path, &[], Some(&body), Idempotent::Yes)
                .await?;
            results.extend(
                page.body
                    .get("results")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            next = page
                .body
                .pointer("/paging/next/after")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        Ok(json!({ "results": results }))
    }

    /// One search call (`body` as HubSpot's `PublicObjectSearchRequest`): a change
    /// feed's, which yields to the work waiting its turn ([`SearchTurn::Yields`]).
    pub async fn search(&self, object: &str, body: &Value) -> Result<SearchPage, HubSpotError> {
        let answer = self
            .request_with(
                Method::POST,
                &format!("/crm/v3/objects/{object}/search"),
                &[],
                Idempotent::Yes,
                SearchTurn::Yields,
                || Some(std::borrow::Cow::Borrowed(body)),
            )
            .await?;
        let records = answer
            .body
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(HsRecord::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SearchPage {
            total: answer
                .body
                .get("total")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize,
            records,
            next_after: answer
                .body
                .pointer("/paging/next/after")
                .and_then(Value::as_str)
                .and_then(|a| a.parse().ok()),
        })
    }

    /// Every record whose last-modified time is at or after `since_ms` (and before
    /// `until_ms`, when given), however many.
    pub async fn changed_since(
        &self,
        object: &str,
        modified_in: Modified,
        properties: &[&str],
    ) -> Result<Vec<HsRecord>, HubSpotError> {
        let Modified {
            since: since_ms,
            until: until_ms,
            also,
        } = modified_in;
        // The earlier window matters only where it reaches below `since`.
        let also = also.filter(|(a0, a1)| a0 < a1 && *a0 < since_ms);
        let modified = modified_property(object);
        let mut props: Vec<&str> = properties.to_vec();
        for p in [modified, "hs_object_id"] {
            if !props.contains(&p) {
                props.push(p);
            }
        }
        let at = |r: &HsRecord| {
            r.properties
                .get(modified)
                .and_then(Value::as_str)
                .and_then(parse_ms)
        };
        let mut out: Vec<HsRecord> = Vec::new();
        let mut from = also.map_or(since_ms, |(a0, _)| a0.min(since_ms));
        let mut seen_at_from: HashSet<String> = HashSet::new();
        loop {
            let mut after = 0;
            let mut last = from;
            let exhausted = loop {
                let mut filters = vec![
                    json!({"propertyName": modified, "operator": "GTE", "value": from.max(since_ms).to_string()}),
                ];
                if let Some(until) = until_ms {
                    filters.push(json!({"propertyName": modified, "operator": "LT", "value": until.to_string()}));
                }
                // The earlier window, while the walk is still below `since`: a second
                // filter group (HubSpot ORs them), so one call pages through both.
                let mut groups = vec![json!({ "filters": filters })];
                if let Some((a0, a1)) = also
                    && from < since_ms
                {
                    groups.push(json!({"filters": [
                        {"propertyName": modified, "operator": "GTE", "value": from.max(a0).to_string()},
                        {"propertyName": modified, "operator": "LT", "value": a1.to_string()},
                    ]}));
                }
                let body = json!({
                    "filterGroups": groups,
                    "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
                    "properties": props,
                    "limit": SEARCH_PAGE,
                    "after": after.to_string(),
                });
                let page = self.search(object, &body).await?;
                let capped = capped(&page, after);
                for r in page.records {
                    let ts = at(&r).unwrap_or(from);
                    if ts == from && seen_at_from.contains(&r.id) {
                        continue;
                    }
                    last = last.max(ts);
                    out.push(r);
                }
                match page.next_after {
                    Some(a) if a + SEARCH_PAGE <= SEARCH_CAP => after = a,
                    Some(_) => break false,
                    None => break !capped,
                }
            };
            if exhausted {
                break;
            }
            if last == from {
                // One timestamp holds a whole window: walk it by id, then move past it.
                let rest = self.all_at(object, modified, from, &props).await?;
                out.extend(rest.into_iter().filter(|r| !seen_at_from.contains(&r.id)));
                from += 1;
                seen_at_from.clear();
            } else {
                from = last;
                seen_at_from = out
                    .iter()
                    .filter(|r| at(r) == Some(last))
                    .map(|r| r.id.clone())
                    .collect();
            }
        }
        // A record changed while the windows ran can appear twice: keep its last read.
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut unique: Vec<HsRecord> = Vec::with_capacity(out.len());
        for r in out {
            match index.get(&r.id) {
                Some(i) => unique[*i] = r,
                None => {
                    index.insert(r.id.clone(), unique.len());
                    unique.push(r);
                }
            }
        }
        Ok(unique)
    }

    /// Every record modified exactly at `at`, in windows of `hs_object_id`.
    async fn all_at(
        &self,
        object: &str,
        modified: &str,
        at: i64,
        props: &[&str],
    ) -> Result<Vec<HsRecord>, HubSpotError> {
        let mut out = Vec::new();
        let mut last_id: u64 = 0;
        loop {
            let mut after = 0;
            let mut window_last = last_id;
            let exhausted = loop {
                let body = json!({
                    "filterGroups": [{"filters": [
                        {"propertyName": modified, "operator": "EQ", "value": at.to_string()},
                        {"propertyName": "hs_object_id", "operator": "GT", "value": last_id.to_string()},
                    ]}],
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                    "properties": props,
                    "limit": SEARCH_PAGE,
                    "after": after.to_string(),
                });
                let page = self.search(object, &body).await?;
                let capped = capped(&page, after);
                for r in page.records {
                    window_last = window_last.max(r.id.parse().unwrap_or(0));
                    out.push(r);
                }
                match page.next_after {
                    Some(a) if a + SEARCH_PAGE <= SEARCH_CAP => after = a,
                    Some(_) => break false,
                    None => break !capped,
                }
            };
            if exhausted || window_last == last_id {
                return Ok(out);
            }
            last_id = window_last;
        }
    }
}
