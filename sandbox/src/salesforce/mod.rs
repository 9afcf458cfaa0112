//! The simulated Salesforce org: REST API v65.0 (SOQL query/queryAll with cursors,
//! sObject rows and upserts, Collections, updated/deleted, describe, limits), OAuth
//! sessions that expire, the daily API allowance, Salesforce's org rules and error
//! bodies, and a control API under `/_sandbox/salesforce/` that acts as a person.
//!
//! Who calls: the first configured token is the integration user (its calls count
//! against the allowance, its writes carry its user id); other tokens and the control
//! API act as the org's admin.

mod api;
mod bulk;
mod control;
pub mod error;
pub mod ids;
mod oauth;
pub mod outbound;
pub mod places;
pub mod query;
pub mod schema;
pub mod seed;
pub mod soql;
pub mod store;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::clock::Clock;
use crate::hubspot::lock;
use error::{SfError, SfFailure};
use store::{Org, Writer};

/// The API version the sandbox reports as current.
pub const API_VERSION: &str = "65.0";
/// The oldest version the org still serves.
const OLDEST_VERSION: f64 = 20.0;

tokio::task_local! {
    /// The API version of the request being answered (`v59.0`): URLs in answers carry
    /// the version that was called, as Salesforce's do.
    static REQUEST_VERSION: String;
}

/// `/services/data/v59.0`, with the version the caller used.
pub fn data_path() -> String {
    REQUEST_VERSION
        .try_with(|v| format!("/services/data/{v}"))
        .unwrap_or_else(|_| format!("/services/data/v{API_VERSION}"))
}

/// Runs `f` as an answer in API version `version` (`v59.0`).
pub async fn in_version<F: std::future::Future>(version: String, f: F) -> F::Output {
    REQUEST_VERSION.scope(version, f).await
}

/// The version segment of a REST path (`v59.0`), if it names one the org serves.
fn served_version(path: &str) -> Result<Option<String>, SfFailure> {
    let Some(segment) = path
        .strip_prefix("/services/data/")
        .map(|r| r.split('/').next().unwrap_or_default())
    else {
        return Ok(None);
    };
    let newest: f64 = API_VERSION.parse().unwrap_or(65.0);
    let served = segment
        .strip_prefix('v')
        .filter(|n| n.ends_with(".0"))
        .and_then(|n| n.parse::<f64>().ok())
        .is_some_and(|n| (OLDEST_VERSION..=newest).contains(&n));
    if served {
        Ok(Some(segment.to_owned()))
    } else {
        Err(SfFailure::not_found())
    }
}
/// Salesforce's URI length limit.
const URI_MAX: usize = 16_384;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// Accepted access tokens; the first is the integration user's.
    pub tokens: Vec<String>,
    pub org_id: String,
    /// API calls allowed per rolling 24 hours; `None`: unlimited (benchmarks only).
    pub daily_api_limit: Option<u64>,
    /// How long an OAuth-issued session lives.
    pub session_ttl_ms: i64,
    pub latency_ms: u64,
    /// What the token endpoint accepts.
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    /// The connected app's certificate public key (PEM) that JWT bearer assertions must
    /// be signed with; none: the JWT grant is refused.
    pub jwt_public_key: Option<String>,
    /// The records per query page unless `Sforce-Query-Options: batchSize=N` asks less.
    pub batch_size: usize,
    pub outbound: outbound::OutboundSettings,
}

impl Default for SalesforceSettings {
    fn default() -> Self {
        SalesforceSettings {
            tokens: vec!["salesforce-integration-token".into()],
            org_id: "00D8M0000000001AAA".into(),
            daily_api_limit: Some(100_000),
            session_ttl_ms: 2 * 60 * 60 * 1000,
            latency_ms: 0,
            client_id: "salesforce-client-id".into(),
            client_secret: "salesforce-client-secret".into(),
            refresh_token: "salesforce-refresh-token".into(),
            jwt_public_key: None,
            batch_size: 2_000,
            outbound: outbound::OutboundSettings::default(),
        }
    }
}

/// Who made a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Integration,
    Human,
}

impl Caller {
    pub fn writer(self) -> Writer {
        match self {
            Caller::Integration => Writer::Integration,
            Caller::Human => Writer::Human,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Caller::Integration => "integration",
            Caller::Human => "human",
        }
    }
}

/// A fault the next integration calls meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Status(u16),
    /// The next call whose path and query contain the text answers this status (other
    /// calls pass, the fault waits): one failing kind of call, such as a field history
    /// query.
    StatusWhen(u16, String),
    Delay(u64),
    /// The next write fails with UNABLE_TO_LOCK_ROW.
    LockRow,
    /// The next call whose path and query contain the text waits, unanswered, until
    /// the control API releases it: a slow call that lets a test put another client's
    /// calls in between, in a chosen order, without waiting on time.
    HoldWhen(String),
}

/// A person's edit that lands right after the integration's next reads: between a
/// sync's read and its write, where a careless sync loses updates.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEdit {
    pub object: String,
    pub id: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Whether a call only reads: GETs, Composite query batches, Collections retrieves.
fn is_read(method: &axum::http::Method, path: &str) -> bool {
    if method == axum::http::Method::GET {
        return true;
    }
    let after = path.split("/composite").nth(1);
    method == axum::http::Method::POST
        && (after == Some("") || after.is_some_and(|a| a.starts_with("/sobjects/")))
}

/// A query cursor: the matching ids and what to render of them.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub matches: query::Matches,
    pub batch: usize,
    pub expires_ms: i64,
}

#[derive(Debug)]
pub struct Salesforce {
    pub org: Mutex<Org>,
    pub clock: Clock,
    pub settings: Mutex<SalesforceSettings>,
    /// Times of the integration's counted calls in the last 24 hours.
    usage: Mutex<VecDeque<i64>>,
    counters: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    faults: Mutex<VecDeque<Fault>>,
    /// Calls held by `Fault::HoldWhen`: each waits for a permit from `release_held`.
    held: tokio::sync::Semaphore,
    holding: std::sync::atomic::AtomicUsize,
    pending_edits: Mutex<crate::scheduled::AfterReads<PendingEdit>>,
    pub cursors: Mutex<HashMap<String, Cursor>>,
    /// OAuth-issued sessions -> expiry.
    sessions: Mutex<HashMap<String, i64>>,
    revoked: Mutex<HashSet<String>>,
    next_cursor: Mutex<u64>,
    pub outbound: Mutex<outbound::Outbound>,
    pub bulk: Mutex<bulk::BulkJobs>,
}

impl Salesforce {
    pub fn new(settings: SalesforceSettings, clock: Clock) -> Arc<Self> {
        Arc::new(Salesforce {
            org: Mutex::new(Org::new(&settings.org_id)),
            clock,
            settings: Mutex::new(settings),
            usage: Mutex::new(VecDeque::new()),
            counters: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(VecDeque::new()),
            held: tokio::sync::Semaphore::new(0),
            holding: std::sync::atomic::AtomicUsize::new(0),
            pending_edits: Mutex::default(),
            cursors: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashSet::new()),
            next_cursor: Mutex::new(0),
            outbound: Mutex::new(outbound::Outbound::default()),
            bulk: Mutex::default(),
        })
    }

    pub fn counters(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        lock(&self.counters).clone()
    }

    /// Calls the integration made in the last 24 hours (what `api-usage` reports).
    pub fn api_usage(&self) -> usize {
        let now = self.clock.now_ms();
        let mut usage = lock(&self.usage);
        while usage.front().is_some_and(|t| *t <= now - DAY_MS) {
            usage.pop_front();
        }
        usage.len()
    }

    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.faults).extend(faults);
    }

    /// Drops the faults not yet used (an outage that ends): how many there were.
    pub fn clear_faults(&self) -> usize {
        let mut faults = lock(&self.faults);
        let n = faults.len();
        faults.clear();
        n
    }

    /// Faults not yet used, and calls held now.
    pub fn fault_state(&self) -> (usize, usize) {
        (
            lock(&self.faults).len(),
            self.holding.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    /// Lets every held call go on.
    pub fn release_held(&self) -> usize {
        let n = self.holding.load(std::sync::atomic::Ordering::SeqCst);
        self.held.add_permits(n);
        n
    }

    pub fn schedule_edit(&self, after_reads: u32, edit: PendingEdit) {
        lock(&self.pending_edits).schedule(after_reads, edit);
    }

    /// After one of the integration's reads: the edits now due land, as a person's.
    fn after_integration_read(&self) {
        let due = lock(&self.pending_edits).read();
        let now = self.clock.now_ms();
        for e in due {
            let options = store::WriteOptions {
                allow_duplicates: true,
            };
            let result = lock(&self.org).update(
                Some(&e.object),
                &e.id,
                &e.fields,
                now,
                Writer::Human,
                options,
            );
            if let Err(err) = result {
                eprintln!("crmsync-sandbox: a scheduled person's edit failed: {err:?}");
            }
        }
    }

    /// Takes a pending UNABLE_TO_LOCK_ROW fault, if the next fault is one.
    pub fn take_lock_fault(&self) -> bool {
        let mut faults = lock(&self.faults);
        if faults.front() == Some(&Fault::LockRow) {
            faults.pop_front();
            true
        } else {
            false
        }
    }

    pub fn new_cursor(&self, cursor: Cursor) -> String {
        let mut n = lock(&self.next_cursor);
        *n += 1;
        let id = ids::make("01g", *n);
        lock(&self.cursors).insert(id.clone(), cursor);
        id
    }

    pub fn issue_session(&self) -> String {
        let ttl = lock(&self.settings).session_ttl_ms;
        let now = self.clock.now_ms();
        let org = lock(&self.settings).org_id.clone();
        let mut sessions = lock(&self.sessions);
        let token = format!(
            "{}!AQcAQ{:016x}{:04x}",
            &org[..15.min(org.len())],
            now,
            sessions.len()
        );
        sessions.insert(token.clone(), now + ttl);
        token
    }

    /// Ends every session (and refuses the static tokens too) until un-revoked.
    pub fn revoke_all(&self) {
        let tokens: Vec<String> = lock(&self.settings).tokens.clone();
        let mut revoked = lock(&self.revoked);
        revoked.extend(tokens);
        revoked.extend(lock(&self.sessions).keys().cloned());
        lock(&self.sessions).clear();
    }

    fn caller(&self, token: &str) -> Result<Caller, SfFailure> {
        if lock(&self.revoked).contains(token) {
            return Err(SfFailure::invalid_session());
        }
        let tokens = lock(&self.settings).tokens.clone();
        match tokens.iter().position(|t| t == token) {
            Some(0) => Ok(Caller::Integration),
            Some(_) => Ok(Caller::Human),
            None => match lock(&self.sessions).get(token) {
                Some(expiry) if *expiry > self.clock.now_ms() => Ok(Caller::Integration),
                _ => Err(SfFailure::invalid_session()),
            },
        }
    }
}

pub fn router(state: Arc<Salesforce>) -> Router {
    let api = api::routes()
        .merge(bulk::routes())
        .layer(middleware::from_fn_with_state(state.clone(), gate));
    let routes = Router::new()
        .merge(api)
        .merge(api::public_routes())
        .merge(oauth::routes())
        .nest("/_sandbox/salesforce", control::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state);
    // Outside the routes, where axum has set `Allow` on a 405.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::map_response(name_allowed_methods))
}

/// An unknown route: Salesforce's NOT_FOUND body, never an empty 404.
async fn no_route() -> Response {
    SfFailure::not_found().into_response()
}

/// A known route with a method it does not take; the message names the allowed ones
/// once axum has set `Allow` (`name_allowed_methods`).
async fn wrong_method() -> Response {
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}

async fn name_allowed_methods(request_method: axum::http::Method, response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allowed = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .replace(' ', "");
    let mut answer = SfFailure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        SfError::new(
            "METHOD_NOT_ALLOWED",
            format!("HTTP Method '{request_method}' not allowed. Allowed are {allowed}"),
        ),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&allowed) {
        answer.headers_mut().insert("allow", v);
    }
    answer
}

fn endpoint_key(method: &axum::http::Method, path: &str) -> String {
    let shape: Vec<String> = path
        .split('/')
        .map(|seg| {
            if ids::to18(seg).is_some() || seg.starts_with("01g") {
                "{id}".to_owned()
            } else if seg.starts_with('v') && seg[1..].parse::<f64>().is_ok() {
                "vXX.X".to_owned()
            } else {
                seg.to_owned()
            }
        })
        .collect();
    format!("{method} {}", shape.join("/"))
}

/// Every REST call passes here: session check, URI length, the daily allowance,
/// counters, faults, latency, and the `Sforce-Limit-Info` header.
async fn gate(State(sf): State<Arc<Salesforce>>, mut request: Request, next: Next) -> Response {
    let (limit, latency) = {
        let s = lock(&sf.settings);
        (s.daily_api_limit, s.latency_ms)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if request.uri().to_string().len() > URI_MAX {
        return (
            StatusCode::URI_TOO_LONG,
            axum::Json(
                serde_json::json!([{"message": "URI Too Long", "errorCode": "URI_TOO_LONG"}]),
            ),
        )
            .into_response();
    }
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    let caller = match sf.caller(&token) {
        Ok(c) => c,
        Err(f) => return f.into_response(),
    };
    let path = request.uri().path().to_owned();
    *lock(&sf.counters)
        .entry(caller.label().to_owned())
        .or_default()
        .entry(endpoint_key(request.method(), &path))
        .or_default() += 1;
    if caller == Caller::Integration {
        let used = sf.api_usage();
        if limit.is_some_and(|max| used as u64 >= max) {
            let mut f = SfFailure::limit_exceeded();
            f.headers.push((
                "sforce-limit-info",
                format!("api-usage={used}/{}", limit.unwrap_or(0)),
            ));
            return f.into_response();
        }
        lock(&sf.usage).push_back(sf.clock.now_ms());
        let uri = request.uri().to_string();
        let fault = {
            let mut faults = lock(&sf.faults);
            match faults.front() {
                Some(Fault::LockRow) | None => None,
                Some(Fault::StatusWhen(_, text) | Fault::HoldWhen(text))
                    if !uri.contains(text.as_str()) =>
                {
                    None
                }
                Some(_) => faults.pop_front(),
            }
        };
        match fault {
            Some(Fault::Status(code) | Fault::StatusWhen(code, _)) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let error = SfError::new(
                    "SERVER_UNAVAILABLE",
                    "injected by the sandbox's fault control",
                );
                return SfFailure::new(status, error).into_response();
            }
            Some(Fault::Delay(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Some(Fault::HoldWhen(_)) => {
                use std::sync::atomic::Ordering;
                sf.holding.fetch_add(1, Ordering::SeqCst);
                if let Ok(permit) = sf.held.acquire().await {
                    permit.forget();
                }
                sf.holding.fetch_sub(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
    request.extensions_mut().insert(caller);
    let read = is_read(request.method(), &path);
    let version = match served_version(&path) {
        Ok(v) => v.unwrap_or_else(|| format!("v{API_VERSION}")),
        Err(f) => return f.into_response(),
    };
    let mut response = REQUEST_VERSION.scope(version, next.run(request)).await;
    if caller == Caller::Integration && read {
        sf.after_integration_read();
    }
    let max = limit.map_or("unlimited".to_owned(), |m| m.to_string());
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={}/{max}", sf.api_usage())) {
        response.headers_mut().insert("sforce-limit-info", v);
    }
    response
}
