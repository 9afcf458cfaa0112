//! The simulated HubSpot portal: CRM v3 objects, batch calls, search, merges, with
//! HubSpot's auth, limits and error bodies, plus a control API under `/_sandbox/` that
//! acts as a human user, injects faults, reads counters and moves the clock.
//!
//! Who calls: the first configured token is the integration (rate-limited, counted,
//! its writes attributed to the app); every other token and the control API act as a
//! person in the HubSpot UI.

mod api;
pub mod associations;
mod control;
pub mod email_events;
pub mod error;
pub mod forms;
pub mod limits;
pub mod lists;
mod metadata;
pub mod oauth;
pub mod schema;
mod search_request;
mod seed;
pub mod store;
pub mod webhooks;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::clock::Clock;
use error::HsError;
use limits::{Limiter, RateLimits};
use store::{Portal, Source, UI_USER_ID};

/// How a portal is set up.
#[derive(Debug, Clone)]
pub struct HubSpotSettings {
    /// Accepted Bearer tokens; the first is the integration's.
    pub tokens: Vec<String>,
    /// `None`: no rate limits (benchmarks only).
    pub limits: Option<RateLimits>,
    /// How long a write takes to show in search (milliseconds).
    pub search_lag_ms: i64,
    /// Added to every response, to stand in for the network.
    pub latency_ms: u64,
    pub webhooks: webhooks::WebhookSettings,
    /// What the OAuth token endpoint accepts.
    pub oauth: oauth::OAuthApp,
}

impl Default for HubSpotSettings {
    fn default() -> Self {
        HubSpotSettings {
            tokens: vec!["hubspot-integration-token".into()],
            limits: Some(RateLimits::default()),
            search_lag_ms: 2_000,
            latency_ms: 0,
            webhooks: webhooks::WebhookSettings::default(),
            oauth: oauth::OAuthApp::default(),
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
    pub fn source(self) -> Source {
        match self {
            Caller::Integration => Source::Integration,
            Caller::Human => Source::User(UI_USER_ID),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Caller::Integration => "integration",
            Caller::Human => "human",
        }
    }
}

/// A fault the next integration call meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (429 gets HubSpot's rate-limit body, 5xx an error body).
    Status(u16),
    /// Answer after this many extra milliseconds.
    Delay(u64),
    /// Send the headers, then drop the connection mid-body.
    Drop,
}

/// A person's edit that lands right after the integration's next reads: between a
/// sync's read and its write, where a careless sync loses updates.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEdit {
    pub object_type: String,
    pub id: u64,
    pub properties: serde_json::Map<String, serde_json::Value>,
}

/// Calls per caller and endpoint (`POST /crm/v3/objects/contacts/batch/read`), and
/// under [`RATE_LIMITED`] the integration's calls answered 429 by a limit (counted as
/// calls too, as HubSpot counts them).
pub type Counters = BTreeMap<String, BTreeMap<String, u64>>;

/// The counters' key for calls a rate limit refused.
pub const RATE_LIMITED: &str = "rate_limited";

#[derive(Debug)]
pub struct HubSpot {
    pub portal: Mutex<Portal>,
    pub clock: Clock,
    pub settings: Mutex<HubSpotSettings>,
    limiter: Mutex<Limiter>,
    counters: Mutex<Counters>,
    faults: Mutex<VecDeque<Fault>>,
    pending_edits: Mutex<crate::scheduled::AfterReads<PendingEdit>>,
    pub webhooks: Mutex<webhooks::Webhooks>,
    pub associations: Mutex<associations::Associations>,
    pub lists: Mutex<lists::Lists>,
    pub forms: Mutex<forms::Forms>,
    pub email_events: Mutex<email_events::EmailEvents>,
    issued: Mutex<oauth::IssuedTokens>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the sandbox
/// keeps serving rather than failing every later call.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl HubSpot {
    pub fn new(settings: HubSpotSettings, clock: Clock) -> Arc<Self> {
        Arc::new(HubSpot {
            portal: Mutex::new(Portal::new(settings.search_lag_ms)),
            webhooks: Mutex::new(webhooks::Webhooks::new(settings.webhooks.clone())),
            associations: Mutex::new(associations::Associations::default()),
            lists: Mutex::new(lists::Lists::default()),
            forms: Mutex::new(forms::Forms::default()),
            email_events: Mutex::new(email_events::EmailEvents::default()),
            issued: Mutex::new(oauth::IssuedTokens::default()),
            clock,
            settings: Mutex::new(settings),
            limiter: Mutex::new(Limiter::default()),
            counters: Mutex::new(Counters::new()),
            faults: Mutex::new(VecDeque::new()),
            pending_edits: Mutex::default(),
        })
    }

    pub fn counters(&self) -> Counters {
        lock(&self.counters).clone()
    }

    /// Total calls a caller made.
    pub fn calls(&self, caller: Caller) -> u64 {
        lock(&self.counters)
            .get(caller.label())
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.faults).extend(faults);
    }

    pub fn schedule_edit(&self, after_reads: u32, edit: PendingEdit) {
        lock(&self.pending_edits).schedule(after_reads, edit);
    }

    /// As one of the integration's reads arrives: the edits due before it land.
    fn before_integration_read(&self) {
        let due = lock(&self.pending_edits).before_read();
        self.land(due);
    }

    /// After one of the integration's reads: the edits now due land, as a person's.
    fn after_integration_read(&self) {
        let due = lock(&self.pending_edits).read();
        self.land(due);
    }

    fn land(&self, due: Vec<PendingEdit>) {
        let now = self.clock.now_ms();
        for e in due {
            let source = Source::User(UI_USER_ID);
            let result =
                lock(&self.portal).update(&e.object_type, e.id, &e.properties, now, source);
            if let Err(err) = result {
                eprintln!("crmsync-sandbox: a scheduled person's edit failed: {err:?}");
            }
        }
    }
}

/// Whether a call only reads (GET, batch reads, searches).
fn is_read(method: &Method, path: &str) -> bool {
    method == Method::GET || path.ends_with("/batch/read") || path.ends_with("/search")
}

/// The portal's HTTP routes.
pub fn router(state: Arc<HubSpot>) -> Router {
    let api = api::routes()
        .merge(associations::routes())
        .merge(metadata::routes())
        .merge(lists::routes())
        .merge(forms::routes())
        .merge(email_events::routes())
        .layer(middleware::from_fn_with_state(state.clone(), gate));
    Router::new()
        .merge(api)
        .merge(oauth::routes())
        .nest(
            "/_sandbox/hubspot",
            control::routes()
                .merge(forms::control_routes())
                .merge(email_events::control_routes()),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

/// An unknown route: HubSpot's error body, never an empty 404.
async fn no_route() -> Response {
    HsError::new(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        "resource not found",
    )
    .into_response()
}

/// A known route with a method it does not take (axum adds the `Allow` header).
async fn wrong_method(method: Method) -> Response {
    HsError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "VALIDATION_ERROR",
        format!("HTTP {method} is not allowed on this resource"),
    )
    .into_response()
}

/// `/crm/v3/objects/contacts/123` -> `/crm/v3/objects/contacts/{id}`, for counters.
fn endpoint_key(method: &Method, path: &str) -> String {
    let shape: Vec<&str> = path
        .split('/')
        .map(|seg| {
            if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                "{id}"
            } else {
                seg
            }
        })
        .collect();
    format!("{method} {}", shape.join("/"))
}

/// Every API call passes here: authentication, counting, rate limits, injected faults
/// and the simulated network latency.
async fn gate(State(hs): State<Arc<HubSpot>>, mut request: Request, next: Next) -> Response {
    let (tokens, limits, latency) = {
        let s = lock(&hs.settings);
        (s.tokens.clone(), s.limits, s.latency_ms)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let caller = match bearer.and_then(|t| tokens.iter().position(|k| k == t)) {
        Some(0) => Caller::Integration,
        Some(_) => Caller::Human,
        None => {
            let now = hs.clock.now_ms();
            let issued = bearer.map(|t| lock(&hs.issued).check(t, now));
            match issued {
                Some(oauth::TokenState::Valid) => Caller::Integration,
                Some(oauth::TokenState::Expired(at)) => {
                    return HsError::expired((now - at) / 1000, &crate::clock::iso(at))
                        .into_response();
                }
                _ => return HsError::unauthenticated().into_response(),
            }
        }
    };
    let path = request.uri().path().to_owned();
    *lock(&hs.counters)
        .entry(caller.label().to_owned())
        .or_default()
        .entry(endpoint_key(request.method(), &path))
        .or_default() += 1;
    let mut headers = Vec::new();
    if caller == Caller::Integration {
        let fault = lock(&hs.faults).pop_front();
        if let Some(fault) = fault {
            match fault {
                Fault::Status(429) => {
                    return HsError::rate_limited(
                        "TEN_SECONDLY_ROLLING",
                        "You have reached your ten_secondly_rolling limit.",
                    )
                    .into_response();
                }
                Fault::Status(code) => {
                    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
                    return HsError::server_error(status).into_response();
                }
                Fault::Delay(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Fault::Drop => return dropped_connection(),
            }
        }
        if let Some(limits) = limits {
            let search = path.ends_with("/search");
            let admitted = lock(&hs.limiter).admit(&limits, hs.clock.now_ms(), search);
            match admitted {
                Ok(h) => headers = h,
                Err(e) => {
                    *lock(&hs.counters)
                        .entry(RATE_LIMITED.to_owned())
                        .or_default()
                        .entry(endpoint_key(request.method(), &path))
                        .or_default() += 1;
                    return e.into_response();
                }
            }
        }
    }
    request.extensions_mut().insert(caller);
    let read = is_read(request.method(), &path);
    if caller == Caller::Integration && read {
        hs.before_integration_read();
    }
    let mut response = next.run(request).await;
    if caller == Caller::Integration && read {
        hs.after_integration_read();
    }
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

pub use seed::seed as seed_portal;

/// A response whose body fails after the headers: the server drops the connection, and
/// the client sees an incomplete message.
fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other(
            "connection dropped by fault injection",
        ))
    });
    Response::new(axum::body::Body::from_stream(failing))
}
