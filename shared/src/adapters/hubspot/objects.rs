//! CRM v3 objects: reads and writes in batches of HubSpot's size (100; 50 with property
//! history), paged lists, and per-input results mapped back to their inputs.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{HubSpotClient, HubSpotError, Idempotent, together};
use crate::adapters::http::in_chunks;

/// Inputs per batch call.
pub const BATCH_MAX: usize = 100;
/// Inputs per batch read that asks for property history.
pub const BATCH_WITH_HISTORY_MAX: usize = 50;
/// Records per list page.
pub const LIST_PAGE_MAX: usize = 100;

pub use crate::ports::crm::{BatchOutcome, HsRecord, InputError, NewRecord};

impl HsRecord {
    pub fn from_json(v: &Value) -> Result<Self, HubSpotError> {
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| HubSpotError::Decode("a record without id".into()))?
            .to_owned();
        let history = v
            .get("propertiesWithHistory")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .map(|(k, entries)| {
                        let list = entries
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|e| {
                                        let value =
                                            e.get("value").and_then(Value::as_str)?.to_owned();
                                        let at = e
                                            .get("timestamp")
                                            .and_then(Value::as_str)
                                            .and_then(parse_ms)?;
                                        Some((value, at))
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        (k.clone(), list)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(HsRecord {
            id,
            properties: v
                .get("properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            history,
            archived: v.get("archived").and_then(Value::as_bool).unwrap_or(false),
            associations: BTreeMap::new(),
            from_link: false,
        })
    }
}

/// A listed record's associations to the `asked` object types, from its v3 block
/// (`{"companies": {"results": [{"id", "type"}]}}`). A type the block leaves out has
/// none, unless the block holds a key this cannot tell apart from it; a type whose
/// answer runs to another page is left out (unknown).
fn listed_associations(v: &Value, asked: &[&str]) -> BTreeMap<String, Vec<String>> {
    let empty = Map::new();
    let block = v
        .get("associations")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    // HubSpot names a custom object's block with spaces for its underscores.
    let names = |a: &str, k: &str| k == a || k == a.replace('_', " ");
    let unnamed = block.keys().any(|k| !asked.iter().any(|a| names(a, k)));
    let mut out = BTreeMap::new();
    for a in asked {
        let Some((_, answer)) = block.iter().find(|(k, _)| names(a, k)) else {
            if !unnamed {
                out.insert((*a).to_owned(), Vec::new());
            }
            continue;
        };
        if answer.pointer("/paging/next").is_some() {
            continue;
        }
        let mut ids: Vec<String> = Vec::new();
        for r in answer
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = match r.get("id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            // One id per associated record, whatever labels it has.
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        out.insert((*a).to_owned(), ids);
    }
    out
}

/// Epoch milliseconds of HubSpot's ISO times (or epoch-millisecond strings).
pub fn parse_ms(s: &str) -> Option<i64> {
    if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        return s.parse().ok();
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn errors_of(body: &Value, key_field: &str) -> Vec<InputError> {
    body.get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|e| {
            let category = e
                .get("category")
                .and_then(Value::as_str)
                .unwrap_or("ERROR")
                .to_owned();
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let keys: Vec<String> = e
                .get("context")
                .and_then(|c| c.get(key_field))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let keys = if keys.is_empty() {
                vec![String::new()]
            } else {
                keys
            };
            keys.into_iter().map(move |key| InputError {
                key,
                category: category.clone(),
                message: message.clone(),
            })
        })
        .collect()
}

/// A batch call's `inputs` naming records by id.
pub(super) fn id_inputs(ids: &[String]) -> Value {
    ids.iter().map(|id| json!({"id": id})).collect()
}

/// A batch read's body: `ids` by HubSpot id, or by the unique `id_property`.
fn read_body(
    properties: &[&str],
    with_history: &[&str],
    id_property: Option<&str>,
    ids: &[String],
) -> Value {
    let mut body = json!({
        "properties": properties,
        "propertiesWithHistory": with_history,
        "inputs": id_inputs(ids),
    });
    if let Some(p) = id_property {
        body["idProperty"] = json!(p);
    }
    body
}

/// A batch write's answer: its records, and its inputs' errors keyed by `key_field`.
fn outcome_of(body: &Value, key_field: &str) -> Result<BatchOutcome, HubSpotError> {
    Ok(BatchOutcome {
        records: records_of(body)?,
        errors: errors_of(body, key_field),
        ..BatchOutcome::default()
    })
}

/// The records of an answer's `results`.
pub(super) fn records_of(body: &Value) -> Result<Vec<HsRecord>, HubSpotError> {
    body.get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(HsRecord::from_json)
        .collect()
}

impl HubSpotClient {
    /// Reads records by id (or by a unique property such as `email`), in calls of 100
    /// (50 with history). Ids HubSpot does not find are left out.
    pub async fn batch_read(
        &self,
        object: &str,
        ids: &[String],
        properties: &[&str],
        with_history: &[&str],
        id_property: Option<&str>,
    ) -> Result<Vec<HsRecord>, HubSpotError> {
        let max = if with_history.is_empty() {
            BATCH_MAX
        } else {
            BATCH_WITH_HISTORY_MAX
        };
        if id_property.is_none() && !ids.is_empty() && ids.len() <= max {
            return self
                .batch_read_together(object, ids, properties, with_history, max)
                .await;
        }
        let pages = in_chunks(ids, max, |chunk| async move {
            let body = read_body(properties, with_history, id_property, chunk);
            let answer = self
                .request(
                    Method::POST,
                    &format!("/crm/v3/objects/{object}/batch/read"),
                    &[],
                    Some(&body),
                    Idempotent::Yes,
                )
                .await?;
            records_of(&answer.body)
        })
        .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// One call's worth of records by id, read with the reads of this object waiting at
    /// the limiter with it (whatever properties they ask for: the call asks for all of
    /// them). Its own records come back, with the properties it asked for, and any the
    /// call answered for an id no member asked for (a merged record answers for the id
    /// it absorbed).
    async fn batch_read_together(
        &self,
        object: &str,
        ids: &[String],
        properties: &[&str],
        with_history: &[&str],
        max: usize,
    ) -> Result<Vec<HsRecord>, HubSpotError> {
        let path = format!("/crm/v3/objects/{object}/batch/read");
        let mut history = with_history.to_vec();
        history.sort_unstable();
        history.dedup();
        let kind = format!("{path} {}", history.join(","));
        let mine: Vec<String> = properties.iter().map(|p| (*p).to_owned()).collect();
        let answer = self
            .read_together(&kind, &path, max, ids, &mine, |all, properties| {
                let properties: Vec<&str> = properties.iter().map(String::as_str).collect();
                read_body(&properties, with_history, None, all)
            })
            .await?;
        let together::Answer {
            ids: asked,
            fields: all,
            body,
        } = answer.as_ref();
        let mut records: Vec<HsRecord> = records_of(body)?
            .into_iter()
            .filter(|r| together::answers(ids, asked, &r.id))
            .collect();
        // Another member's properties are not this reader's: it sees what it would have
        // alone (what it asked for, and what HubSpot returns unasked).
        for r in &mut records {
            r.properties
                .retain(|k, _| mine.contains(k) || !all.contains(k));
        }
        Ok(records)
    }

    /// Updates records by id in calls of 100; inputs HubSpot refuses come back as errors.
    pub async fn batch_update(
        &self,
        object: &str,
        inputs: &[(String, Map<String, Value>)],
    ) -> Result<BatchOutcome, HubSpotError> {
        let input = |(id, p): &(String, Map<String, Value>)| json!({"id": id, "properties": p});
        if !inputs.is_empty() && inputs.len() <= BATCH_MAX {
            // One call's worth: with the updates of this object waiting at the limiter.
            let path = format!("/crm/v3/objects/{object}/batch/update");
            let mine: Vec<(String, Value)> =
                inputs.iter().map(|i| (i.0.clone(), input(i))).collect();
            let ids: Vec<String> = inputs.iter().map(|(id, _)| id.clone()).collect();
            let answer = self.write_together(&path, &path, BATCH_MAX, &mine).await?;
            let together::Answer {
                ids: asked, body, ..
            } = answer.as_ref();
            let mut out = outcome_of(body, "ids")?;
            out.records
                .retain(|r| together::answers(&ids, asked, &r.id));
            out.errors
                .retain(|e| e.key.is_empty() || together::answers(&ids, asked, &e.key));
            return Ok(out);
        }
        let parts = in_chunks(inputs, BATCH_MAX, |chunk| async move {
            let body = json!({"inputs": chunk.iter().map(input).collect::<Vec<_>>()});
            let answer = self
                .request(
                    Method::POST,
                    &format!("/crm/v3/objects/{object}/batch/update"),
                    &[],
                    Some(&body),
                    Idempotent::Yes,
                )
                .await?;
            outcome_of(&answer.body, "ids")
        })
        .await?;
        Ok(BatchOutcome::joined(parts))
    }

    /// Creates or updates records keyed on a unique property (`email` for contacts) in
    /// calls of 100: an existing key updates its record instead of failing the batch or
    /// creating a duplicate, and a retried call creates nothing twice.
    pub async fn batch_upsert(
        &self,
        object: &str,
        id_property: &str,
        inputs: &[(String, Map<String, Value>)],
    ) -> Result<BatchOutcome, HubSpotError> {
        let parts = in_chunks(inputs, BATCH_MAX, |chunk| async move {
            let body = json!({"inputs": chunk
                .iter()
                .map(|(key, p)| json!({"id": key, "idProperty": id_property, "properties": p}))
                .collect::<Vec<_>>()});
            let answer = self
                .request(
                    Method::POST,
                    &format!("/crm/v3/objects/{object}/batch/upsert"),
                    &[],
                    Some(&body),
                    Idempotent::Yes,
                )
                .await?;
            let mut out = BatchOutcome::default();
            for r in answer
                .body
                .get("results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let record = HsRecord::from_json(r)?;
                if r.get("new").and_then(Value::as_bool) == Some(true) {
                    out.created.push(record.id.clone());
                }
                out.records.push(record);
            }
            out.errors = errors_of(&answer.body, "ids");
            Ok::<_, HubSpotError>(out)
        })
        .await?;
        Ok(BatchOutcome::joined(parts))
    }

    /// Creates records in calls of 100, each input carrying a trace id so that one
    /// refused input fails alone (HubSpot reports per input only then), and its
    /// associations inline by their pair's default type ([`default_association`]; the
    /// caller asks only for those). Not retried after a timeout: the caller reads back
    /// by a unique key before creating again.
    pub async fn batch_create(
        &self,
        object: &str,
        inputs: &[NewRecord],
    ) -> Result<BatchOutcome, HubSpotError> {
        let parts = in_chunks(inputs, BATCH_MAX, |chunk| async move {
            let body = json!({"inputs": chunk
                .iter()
                .map(|r| {
                    let associations: Vec<Value> = r
                        .associations
                        .iter()
                        .filter_map(|(to, id)| {
                            let type_id = default_association(object, to)?;
                            Some(json!({"to": {"id": id}, "types": [
                                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}
                            ]}))
                        })
                        .collect();
                    json!({"properties": r.properties, "objectWriteTraceId": r.key, "associations": associations})
                })
                .collect::<Vec<_>>()});
            let answer = self
                .request(
                    Method::POST,
                    &format!("/crm/v3/objects/{object}/batch/create"),
                    &[],
                    Some(&body),
                    Idempotent::No,
                )
                .await?;
            outcome_of(&answer.body, "objectWriteTraceId")
        })
        .await?;
        Ok(BatchOutcome::joined(parts))
    }

    /// Archives records by id in calls of 100.
    pub async fn batch_archive(&self, object: &str, ids: &[String]) -> Result<(), HubSpotError> {
        in_chunks(ids, BATCH_MAX, |chunk| async move {
            let body = json!({"inputs": id_inputs(chunk)});
            self.request(
                Method::POST,
                &format!("/crm/v3/objects/{object}/batch/archive"),
                &[],
                Some(&body),
                Idempotent::Yes,
            )
            .await
        })
        .await?;
        Ok(())
    }

    /// One record by id (`None` when HubSpot has none).
    pub async fn get(
        &self,
        object: &str,
        id: &str,
        properties: &[&str],
    ) -> Result<Option<HsRecord>, HubSpotError> {
        let query = [("properties", properties.join(","))];
        match self
            .request(
                Method::GET,
                &format!("/crm/v3/objects/{object}/{id}"),
                &query,
                None,
                Idempotent::Yes,
            )
            .await
        {
            Ok(a) => HsRecord::from_json(&a.body).map(Some),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every record of a type, page by page (100 per call).
    pub async fn list_all(
        &self,
        object: &str,
        properties: &[&str],
        archived: bool,
    ) -> Result<Vec<HsRecord>, HubSpotError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (records, next) = self
                .list_page(object, properties, &[], archived, after.as_deref())
                .await?;
            out.extend(records);
            match next {
                Some(a) => after = Some(a),
                None => return Ok(out),
            }
        }
    }

    /// One page of a listing (100 records) and the `after` token of the next, if any;
    /// each record with its associations to the `associations` object types.
    pub async fn list_page(
        &self,
        object: &str,
        properties: &[&str],
        associations: &[&str],
        archived: bool,
        after: Option<&str>,
    ) -> Result<(Vec<HsRecord>, Option<String>), HubSpotError> {
        let mut query = vec![
            ("limit", LIST_PAGE_MAX.to_string()),
            ("properties", properties.join(",")),
            ("archived", archived.to_string()),
        ];
        if !associations.is_empty() {
            query.push(("associations", associations.join(",")));
        }
        if let Some(a) = after {
            query.push(("after", a.to_owned()));
        }
        let answer = self
            .request(
                Method::GET,
                &format!("/crm/v3/objects/{object}"),
                &query,
                None,
                Idempotent::Yes,
            )
            .await?;
        let next = answer
            .body
            .pointer("/paging/next/after")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut records = records_of(&answer.body)?;
        if !associations.is_empty() {
            let listed = answer.body.get("results").and_then(Value::as_array);
            for (r, v) in records.iter_mut().zip(listed.into_iter().flatten()) {
                r.associations = listed_associations(v, associations);
            }
        }
        Ok((records, next))
    }
}

/// HubSpot's default (unlabeled) association type from an object type to another, where
/// it is HubSpot-defined (a custom object's are the portal's own).
pub fn default_association(from: &str, to: &str) -> Option<u32> {
    Some(match (from, to) {
        ("contacts", "companies") => 279,
        ("deals", "companies") => 341,
        ("deals", "contacts") => 3,
        ("tickets", "contacts") => 16,
        ("tickets", "companies") => 339,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_records_associations_are_read_from_its_block() {
        let asked = ["companies", "p_machines"];
        let v = json!({"associations": {
            "companies": {"results": [
                {"id": "1", "type": "contact_to_company"},
                {"id": "1", "type": "contact_to_company_unlabeled"},
                {"id": "2", "type": "contact_to_company_unlabeled"}
            ]},
            "p machines": {"results": [{"id": "7", "type": "contact_to_machine"}]}
        }});
        let got = listed_associations(&v, &asked);
        assert_eq!(
            got.get("companies"),
            Some(&vec!["1".to_owned(), "2".to_owned()])
        );
        assert_eq!(got.get("p_machines"), Some(&vec!["7".to_owned()]));
        // No block: none of either.
        let none = listed_associations(&json!({}), &asked);
        assert_eq!(none.get("companies"), Some(&Vec::new()));
        // Paged: unknown. A key it cannot place: what it leaves out is unknown.
        let paged = json!({"associations": {
            "companies": {"results": [{"id": "1"}], "paging": {"next": {"after": "2"}}},
            "2-123": {"results": [{"id": "9"}]}
        }});
        let got = listed_associations(&paged, &asked);
        assert_eq!(got.get("companies"), None);
        assert_eq!(got.get("p_machines"), None);
    }
}
