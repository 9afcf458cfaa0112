//! Bulk API 2.0 query jobs (`/services/data/vXX.X/jobs/query`): create a job from a
//! SOQL query, read its state, page through its CSV results with `Sforce-Locator`
//! (the literal `null` after the last page) and `Sforce-NumberOfRecords`, abort it,
//! delete it, list jobs. The query runs when the job is created (a snapshot, as
//! Salesforce's are); the job reports `UploadComplete` once, then `JobComplete`.
//! What Bulk queries refuse is refused at creation with a 400: `COUNT()`, compound
//! address fields, fields or objects that do not exist.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};

use super::error::{SfError, SfFailure};
use super::schema::SfType;
use super::soql::Select;
use super::store::sf_datetime;
use super::{Salesforce, query, soql};
use crate::hubspot::lock;

/// Rows per results page unless `maxRecords` asks fewer.
const PAGE_DEFAULT: usize = 10_000;
/// The integration user, who creates every job.
const CREATED_BY: &str = "0058M0000000001QAA";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    UploadComplete,
    JobComplete,
    Aborted,
}

impl JobState {
    fn name(self) -> &'static str {
        match self {
            JobState::UploadComplete => "UploadComplete",
            JobState::JobComplete => "JobComplete",
            JobState::Aborted => "Aborted",
        }
    }
}

#[derive(Debug, Clone)]
struct Job {
    id: String,
    operation: String,
    object: String,
    created_ms: i64,
    modified_ms: i64,
    state: JobState,
    api_version: f64,
    delimiter: (&'static str, char),
    line_ending: &'static str,
    /// The header row and the records' cells, taken when the job was created.
    header: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

/// The org's query jobs.
#[derive(Debug, Default)]
pub struct BulkJobs {
    jobs: Vec<Job>,
    created: u64,
}

pub fn routes() -> Router<Arc<Salesforce>> {
    let v = "/services/data/{version}/jobs/query";
    Router::new()
        .route(v, get(list).post(create))
        .route(
            &format!("{v}/{{id}}"),
            get(status).patch(abort).delete(remove),
        )
        .route(&format!("{v}/{{id}}/results"), get(results))
}

type Reply = Result<Response, SfFailure>;

fn bad(code: &str, message: impl Into<String>) -> SfFailure {
    SfFailure::bad_request(vec![SfError::new(code, message)])
}

/// A JSON request body, or Salesforce's parser error.
fn json_body(bytes: &Bytes) -> Result<Value, SfFailure> {
    serde_json::from_slice(bytes)
        .map_err(|e| bad("JSON_PARSER_ERROR", format!("Invalid JSON: {e}")))
}

/// A job by id, or NOT_FOUND.
fn job_mut<'j>(jobs: &'j mut BulkJobs, id: &str) -> Result<&'j mut Job, SfFailure> {
    jobs.jobs
        .iter_mut()
        .find(|j| j.id == id)
        .ok_or_else(not_found)
}

fn version_number(version: &str) -> f64 {
    version.trim_start_matches('v').parse().unwrap_or(0.0)
}

fn info(job: &Job) -> Value {
    json!({
        "id": job.id,
        "operation": job.operation,
        "object": job.object,
        "createdById": CREATED_BY,
        "createdDate": sf_datetime(job.created_ms),
        "systemModstamp": sf_datetime(job.modified_ms),
        "state": job.state.name(),
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": job.api_version,
        "jobType": "V2Query",
        "lineEnding": job.line_ending,
        "columnDelimiter": job.delimiter.0,
        "numberRecordsProcessed": if job.state == JobState::JobComplete { job.rows.len() } else { 0 },
        "retries": 0,
        "totalProcessingTime": 0,
    })
}

/// A value as a CSV cell: text as is, numbers and booleans as JSON writes them.
fn cell(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

async fn create(
    State(sf): State<Arc<Salesforce>>,
    Path(version): Path<String>,
    bytes: Bytes,
) -> Reply {
    let v = json_body(&bytes)?;
    let text = |k: &str| v.get(k).and_then(Value::as_str);
    let operation = match text("operation") {
        Some(o @ ("query" | "queryAll")) => o.to_owned(),
        other => {
            return Err(bad(
                "INVALIDJOB",
                format!(
                    "InvalidJob : Invalid operation: {}",
                    other.unwrap_or("(none)")
                ),
            ));
        }
    };
    let soql_text =
        text("query").ok_or_else(|| bad("INVALIDJOB", "InvalidJob : query is required"))?;
    if text("contentType").is_some_and(|c| c != "CSV") {
        return Err(bad("INVALIDJOB", "InvalidJob : contentType must be CSV"));
    }
    let delimiter = match text("columnDelimiter").unwrap_or("COMMA") {
        "COMMA" => ("COMMA", ','),
        "TAB" => ("TAB", '\t'),
        "PIPE" => ("PIPE", '|'),
        "SEMICOLON" => ("SEMICOLON", ';'),
        "CARET" => ("CARET", '^'),
        "BACKQUOTE" => ("BACKQUOTE", '`'),
        other => {
            return Err(bad(
                "INVALIDJOB",
                format!("InvalidJob : Invalid column delimiter: {other}"),
            ));
        }
    };
    let line_ending = match text("lineEnding").unwrap_or("LF") {
        "LF" => "LF",
        "CRLF" => "CRLF",
        other => {
            return Err(bad(
                "INVALIDJOB",
                format!("InvalidJob : Invalid line ending: {other}"),
            ));
        }
    };
    let parsed = soql::parse(soql_text).map_err(|e| SfFailure::malformed_query(e.0))?;
    let Select::Fields(paths) = &parsed.select else {
        return Err(bad(
            "API_ERROR",
            "Implementation restriction: aggregate queries are not supported by the Bulk API",
        ));
    };
    let now = sf.clock.now_ms();
    let org = lock(&sf.org);
    let matches = query::run(&org, soql_text, &parsed, operation == "queryAll", now)?;
    let object = org.object(&parsed.object).cloned().ok_or_else(|| {
        bad(
            "INVALID_TYPE",
            format!("sObject type '{}' is not supported.", parsed.object),
        )
    })?;
    let mut rows = Vec::with_capacity(matches.ids.len());
    for id in &matches.ids {
        let Some((o, record)) = org.get(id) else {
            continue;
        };
        let mut row = Vec::with_capacity(paths.len());
        for path in paths {
            let (ty, value) = query::value_at(&org, o, record, path);
            if ty == Some(SfType::Address) {
                return Err(bad(
                    "API_ERROR",
                    "Selecting compound data not supported in Bulk Query",
                ));
            }
            row.push(cell(&value));
        }
        rows.push(row);
    }
    // Also refused with no row to find it in.
    if paths
        .iter()
        .any(|p| object.field(p).is_some_and(|f| f.ty == SfType::Address))
    {
        return Err(bad(
            "API_ERROR",
            "Selecting compound data not supported in Bulk Query",
        ));
    }
    drop(org);
    let job = {
        let mut jobs = lock(&sf.bulk);
        jobs.created += 1;
        let id = format!("7508M{:010}AAA", jobs.created);
        let job = Job {
            id,
            operation,
            object: object.name.to_owned(),
            created_ms: now,
            modified_ms: now,
            state: JobState::UploadComplete,
            api_version: version_number(&version),
            delimiter,
            line_ending,
            header: paths.clone(),
            rows,
        };
        jobs.jobs.push(job.clone());
        job
    };
    Ok(Json(info(&job)).into_response())
}

fn not_found() -> SfFailure {
    SfFailure::new(
        StatusCode::NOT_FOUND,
        SfError::new("NOT_FOUND", "The requested resource does not exist"),
    )
}

/// The job's state as of now: an uploaded query job has run by the time anyone asks.
async fn status(State(sf): State<Arc<Salesforce>>, Path((_, id)): Path<(String, String)>) -> Reply {
    let now = sf.clock.now_ms();
    let mut jobs = lock(&sf.bulk);
    let job = job_mut(&mut jobs, &id)?;
    if job.state == JobState::UploadComplete {
        job.state = JobState::JobComplete;
        job.modified_ms = now;
    }
    Ok(Json(info(job)).into_response())
}

async fn list(State(sf): State<Arc<Salesforce>>) -> Reply {
    let jobs = lock(&sf.bulk);
    let records: Vec<Value> = jobs.jobs.iter().map(info).collect();
    Ok(Json(json!({"done": true, "records": records, "nextRecordsUrl": null})).into_response())
}

async fn abort(
    State(sf): State<Arc<Salesforce>>,
    Path((_, id)): Path<(String, String)>,
    bytes: Bytes,
) -> Reply {
    let v = json_body(&bytes)?;
    if v.get("state").and_then(Value::as_str) != Some("Aborted") {
        return Err(bad(
            "INVALIDJOBSTATE",
            "Only a state of Aborted can be set on a query job",
        ));
    }
    let now = sf.clock.now_ms();
    let mut jobs = lock(&sf.bulk);
    let job = job_mut(&mut jobs, &id)?;
    if job.state != JobState::UploadComplete {
        return Err(bad(
            "INVALIDJOBSTATE",
            format!(
                "Aborting a job in state {} is not allowed",
                job.state.name()
            ),
        ));
    }
    job.state = JobState::Aborted;
    job.modified_ms = now;
    job.rows.clear();
    Ok(Json(info(job)).into_response())
}

async fn remove(State(sf): State<Arc<Salesforce>>, Path((_, id)): Path<(String, String)>) -> Reply {
    let mut jobs = lock(&sf.bulk);
    let at = jobs
        .jobs
        .iter()
        .position(|j| j.id == id)
        .ok_or_else(not_found)?;
    if jobs.jobs[at].state == JobState::UploadComplete {
        return Err(bad(
            "API_ERROR",
            "Error encountered when deleting the job because the job is not terminated",
        ));
    }
    jobs.jobs.remove(at);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A CSV field: quoted, with quotes doubled; an absent value is an empty field.
fn csv_field(value: Option<&str>) -> String {
    match value {
        None => String::new(),
        Some(v) => format!("\"{}\"", v.replace('"', "\"\"")),
    }
}

async fn results(
    State(sf): State<Arc<Salesforce>>,
    Path((_, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()).unwrap_or_default();
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let max = match param("maxRecords") {
        None => PAGE_DEFAULT,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("INVALID_QUERY_LOCATOR", format!("Invalid maxRecords: {m}")))?,
    };
    let start = match param("locator") {
        None | Some("") => 0,
        Some(l) => base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(l)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| bad("INVALID_QUERY_LOCATOR", format!("Invalid locator: {l}")))?,
    };
    let jobs = lock(&sf.bulk);
    let job = jobs
        .jobs
        .iter()
        .find(|j| j.id == id)
        .ok_or_else(not_found)?;
    if job.state != JobState::JobComplete {
        return Err(SfFailure::new(
            StatusCode::PRECONDITION_FAILED,
            SfError::new(
                "JOB_NOT_COMPLETE",
                format!(
                    "can only download query results of successfully completed bulk job with status: JOB_COMPLETE. Current status: {}",
                    job.state.name()
                ),
            ),
        ));
    }
    let end = (start + max).min(job.rows.len());
    let eol = if job.line_ending == "CRLF" {
        "\r\n"
    } else {
        "\n"
    };
    let sep = job.delimiter.1.to_string();
    let mut body = job
        .header
        .iter()
        .map(|h| csv_field(Some(h)))
        .collect::<Vec<_>>()
        .join(&sep);
    body.push_str(eol);
    for row in job.rows.get(start..end).unwrap_or_default() {
        let line: Vec<String> = row.iter().map(|c| csv_field(c.as_deref())).collect();
        body.push_str(&line.join(&sep));
        body.push_str(eol);
    }
    let locator = if end < job.rows.len() {
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(end.to_string())
    } else {
        "null".to_owned()
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv".to_owned()),
            (header::HeaderName::from_static("sforce-locator"), locator),
            (
                header::HeaderName::from_static("sforce-numberofrecords"),
                (end - start.min(end)).to_string(),
            ),
        ],
        body,
    )
        .into_response())
}
