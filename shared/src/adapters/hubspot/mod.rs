//! The HubSpot CRM client: private-app or OAuth credentials, a client-side limiter
//! matched to the portal's burst limit (and search's own), retries with backoff on
//! 429/5xx/timeouts honouring `Retry-After`, call counters, and HubSpot's batch and
//! paging rules built in (see `objects.rs` and `search.rs`).

mod error;
mod objects;
mod port;
mod portal;
mod search;
mod together;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::Method;
use serde_json::{Value, json};

pub use error::{ApiError, HubSpotError};
pub use objects::{BatchOutcome, HsRecord, InputError, NewRecord, default_association};
pub use portal::Owner;
pub use search::{SearchPage, modified_property};

use super::http::{
    CallCounter, ErrorClass, Pause, RateLimiter, RetryPolicy, Secret, TokioPause, Turn,
    endpoint_key,
};

/// HubSpot's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

#[derive(Debug, Clone)]
pub enum HubSpotAuth {
    /// A private app's access token.
    PrivateApp(Secret),
    /// An OAuth app: access tokens are refreshed before they expire.
    OAuth {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
    },
}

#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    pub base_url: String,
    pub auth: HubSpotAuth,
    /// The portal's burst limit per 10 seconds (Professional private app: 190).
    pub burst_per_ten_seconds: u32,
    /// Workers sharing that limit.
    pub concurrency: u32,
    /// Search's own limit per second (5).
    pub search_per_second: u32,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// The portal (hub) id, for links to records in HubSpot's app.
    pub portal_id: Option<String>,
}

impl HubSpotConfig {
    pub fn new(base_url: impl Into<String>, auth: HubSpotAuth) -> Self {
        HubSpotConfig {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            auth,
            burst_per_ten_seconds: 190,
            concurrency: 1,
            search_per_second: 5,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            portal_id: None,
        }
    }
}

/// Whether a request may be sent again after a timeout (its effect may have happened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotent {
    Yes,
    No,
}

/// How a search waits for HubSpot's limits (other calls ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SearchTurn {
    /// A batch's search (matching): in line with the reads, and at the search limit
    /// ahead of the change feeds' searches.
    InLine,
    /// A change feed's search, the safety net under the pushes: it yields to the calls
    /// waiting their turn, for a while (`limiter::YIELD_MS`).
    Yields,
}

#[derive(Debug)]
pub struct HubSpotClient {
    http: reqwest::Client,
    config: HubSpotConfig,
    limiter: RateLimiter,
    search_limiter: RateLimiter,
    pause: Arc<dyn Pause>,
    counter: CallCounter,
    /// OAuth access token and when to refresh it.
    /// The access token and when to refresh it (on the pause's clock, ms).
    token: tokio::sync::Mutex<Option<(Secret, i64)>>,
    rng: Mutex<StdRng>,
    /// The portal's daily allowance as its last answer reported it: (used, allowed).
    /// HubSpot sends it to private apps, not to OAuth apps.
    daily: Mutex<Option<(u64, u64)>>,
    /// Reads of one kind waiting at the limiter, to go as one call.
    together: together::Together,
}

/// A successful answer: status and body (`Null` for 204).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// The object type id of a standard object (`contacts` is `0-1`); a custom object's
/// name is its id already.
pub(crate) fn object_type_id(object: &str) -> &str {
    match object {
        "contacts" => "0-1",
        "companies" => "0-2",
        "deals" => "0-3",
        "tickets" => "0-5",
        other => other,
    }
}

impl HubSpotClient {
    pub fn new(config: HubSpotConfig) -> Result<Self, HubSpotError> {
        Self::with_pause(config, Arc::new(TokioPause))
    }

    pub fn with_pause(config: HubSpotConfig, pause: Arc<dyn Pause>) -> Result<Self, HubSpotError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| HubSpotError::Transport(e.to_string()))?;
        Ok(HubSpotClient {
            limiter: RateLimiter::shared(
                config.burst_per_ten_seconds,
                Duration::from_secs(10),
                config.concurrency,
            ),
            search_limiter: RateLimiter::shared(
                config.search_per_second,
                Duration::from_secs(1),
                config.concurrency,
            ),
            http,
            config,
            pause,
            counter: CallCounter::default(),
            token: tokio::sync::Mutex::new(None),
            rng: Mutex::new(StdRng::from_os_rng()),
            daily: Mutex::new(None),
            together: together::Together::default(),
        })
    }

    /// The record in HubSpot's app, when the portal id is known.
    pub fn record_url(&self, object: &str, id: &str) -> Option<String> {
        let portal = self.config.portal_id.as_deref()?;
        let type_id = object_type_id(object);
        Some(format!(
            "https://app.hubspot.com/contacts/{portal}/record/{type_id}/{id}"
        ))
    }

    /// The portal's daily API use as its last answer reported it: (used, allowed).
    pub fn daily_usage(&self) -> Option<(u64, u64)> {
        *self.daily.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note_daily(&self, headers: &reqwest::header::HeaderMap) {
        let number =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        if let (Some(limit), Some(left)) = (
            number("x-hubspot-ratelimit-daily"),
            number("x-hubspot-ratelimit-daily-remaining"),
        ) {
            *self.daily.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((limit.saturating_sub(left), limit));
        }
    }

    /// Calls made, per endpoint.
    pub fn calls(&self) -> &CallCounter {
        &self.counter
    }

    async fn access_token(&self, force_refresh: bool) -> Result<Secret, HubSpotError> {
        let (client_id, client_secret, refresh_token) = match &self.config.auth {
            HubSpotAuth::PrivateApp(t) => return Ok(t.clone()),
            HubSpotAuth::OAuth {
                client_id,
                client_secret,
                refresh_token,
            } => (client_id, client_secret, refresh_token),
        };
        let mut token = self.token.lock().await;
        if let Some((t, refresh_at)) = token.as_ref()
            && !force_refresh
            && self.pause.now_ms() < *refresh_at
        {
            return Ok(t.clone());
        }
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.expose()),
            ("refresh_token", refresh_token.expose()),
        ];
        self.counter.add("POST /oauth/v1/token");
        let resp = self
            .http
            .post(format!("{}/oauth/v1/token", self.config.base_url))
            .form(&form)
            .send()
            .await
            .map_err(|e| HubSpotError::Transport(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status != 200 {
            return Err(HubSpotError::Auth(
                body.get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("refresh refused")
                    .to_owned(),
            ));
        }
        let access = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| HubSpotError::Decode("token answer without access_token".into()))?;
        let expires_in = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(1800);
        // Refresh a minute early: HubSpot advises refreshing on expiry, not on 401.
        let lifetime = i64::try_from(expires_in.saturating_sub(60)).unwrap_or(0) * 1_000;
        let refresh_at = self.pause.now_ms() + lifetime;
        let secret = Secret::new(access);
        *token = Some((secret.clone(), refresh_at));
        Ok(secret)
    }

    /// Sends one API request with limits, retries and counting.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        idempotent: Idempotent,
    ) -> Result<Answer, HubSpotError> {
        self.request_with(method, path, query, idempotent, SearchTurn::InLine, || {
            body.map(Cow::Borrowed)
        })
        .await
    }

    /// A read of `ids` (at most `cap`, one call's worth) that goes out with the reads
    /// of its `kind` waiting at the limiter with it (`together.rs`). `body_of` makes
    /// the call's body from every member's ids and fields (`fields`: what this read
    /// asks for of each record). The answer: the ids and fields the call asked for,
    /// and its body.
    pub(crate) async fn read_together(
        &self,
        kind: &str,
        path: &str,
        cap: usize,
        ids: &[String],
        fields: &[String],
        body_of: impl Fn(&[String], &[String]) -> Value,
    ) -> together::Shared {
        let fits = |all: &[String]| all.len() <= cap;
        self.call_together(
            kind,
            path,
            &fits,
            ids,
            fields,
            body_of,
            async |_, _, first| Ok(first),
        )
        .await
    }

    /// [`HubSpotClient::read_together`] for calls whose room `fits` says (whether one
    /// call can carry all these ids), and whose answer the leader completes with
    /// `rest` (given every member's ids and fields, as the call asked for them, and its
    /// answer) before its members have it: a search's further pages.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn call_together(
        &self,
        kind: &str,
        path: &str,
        fits: &(dyn Fn(&[String]) -> bool + Sync),
        ids: &[String],
        fields: &[String],
        body_of: impl Fn(&[String], &[String]) -> Value,
        rest: impl AsyncFnOnce(&[String], &[String], Value) -> Result<Value, HubSpotError>,
    ) -> together::Shared {
        let mut rest = Some(rest);
        loop {
            match self.together.join(kind, ids, fields, fits) {
                together::Joined::Member(answer) => match answer.await {
                    Ok(answer) => return answer,
                    // Its leader was given up: read for itself.
                    Err(_) => continue,
                },
                together::Joined::Leader(lead) => {
                    let mut asked = (Vec::new(), Vec::new());
                    let first = self
                        .request_with(
                            Method::POST,
                            path,
                            &[],
                            Idempotent::Yes,
                            SearchTurn::InLine,
                            || {
                                asked = lead.seal();
                                Some(Cow::Owned(body_of(&asked.0, &asked.1)))
                            },
                        )
                        .await;
                    let body = match (first, rest.take()) {
                        (Ok(a), Some(rest)) => rest(&asked.0, &asked.1, a.body).await,
                        (Ok(a), None) => Ok(a.body),
                        (Err(e), _) => Err(e),
                    };
                    let answer = body.map(|body| {
                        let (ids, fields) = std::mem::take(&mut asked);
                        Arc::new(together::Answer { ids, fields, body })
                    });
                    lead.answer(&answer);
                    return answer;
                }
            }
        }
    }

    /// Writes `inputs` (record id, the input as the body lists it) to a batch endpoint
    /// taking `{"inputs": [...]}`, with the writes of its `kind` waiting at the limiter
    /// with it (`together.rs`). Answers the call's ids and body: a member picks its own
    /// records out. A group refused for what an input holds writes each member alone.
    pub(crate) async fn write_together(
        &self,
        kind: &str,
        path: &str,
        cap: usize,
        inputs: &[(String, Value)],
    ) -> together::Shared {
        let alone = || async {
            let ids = inputs.iter().map(|(id, _)| id.clone()).collect();
            let body = json!({"inputs": inputs.iter().map(|(_, i)| i).collect::<Vec<_>>()});
            self.request(Method::POST, path, &[], Some(&body), Idempotent::Yes)
                .await
                .map(|a| {
                    Arc::new(together::Answer {
                        ids,
                        fields: Vec::new(),
                        body: a.body,
                    })
                })
        };
        loop {
            match self.together.join_write(kind, inputs, cap) {
                together::Joined::Member(answer) => match answer.await {
                    Ok(Err(e)) if e.class() == ErrorClass::RecordLevel => return alone().await,
                    Ok(answer) => return answer,
                    Err(_) => continue,
                },
                together::Joined::Leader(lead) => {
                    let mut asked = Vec::new();
                    let mut with_others = false;
                    let answer = self
                        .request_with(
                            Method::POST,
                            path,
                            &[],
                            Idempotent::Yes,
                            SearchTurn::InLine,
                            || {
                                let (ids, all, others) = lead.seal_write();
                                asked = ids;
                                with_others = others;
                                Some(Cow::Owned(json!({ "inputs": all })))
                            },
                        )
                        .await
                        .map(|a| {
                            Arc::new(together::Answer {
                                ids: std::mem::take(&mut asked),
                                fields: Vec::new(),
                                body: a.body,
                            })
                        });
                    lead.answer(&answer);
                    return match answer {
                        Err(e) if with_others && e.class() == ErrorClass::RecordLevel => {
                            alone().await
                        }
                        answer => answer,
                    };
                }
            }
        }
    }

    /// [`HubSpotClient::request`] with a body made when the limiter first admits the
    /// call.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn request_with<'b>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        idempotent: Idempotent,
        search_turn: SearchTurn,
        body_when_admitted: impl FnOnce() -> Option<Cow<'b, Value>>,
    ) -> Result<Answer, HubSpotError> {
        let mut make_body = Some(body_when_admitted);
        let mut body: Option<Cow<'b, Value>> = None;
        let policy = self.config.retry;
        let key = endpoint_key(&method, path);
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let queued = std::time::Instant::now();
            if path.ends_with("/search") {
                match search_turn {
                    SearchTurn::InLine => {
                        RateLimiter::acquire_both_in_turn(
                            &self.search_limiter,
                            &self.limiter,
                            Turn::Other,
                            self.pause.as_ref(),
                        )
                        .await
                    }
                    SearchTurn::Yields => {
                        RateLimiter::acquire_all(
                            &[&self.search_limiter, &self.limiter],
                            self.pause.as_ref(),
                        )
                        .await
                    }
                }
            } else {
                // Reads by id and listings wait in line behind the writes.
                let turn = if method == Method::GET || path.ends_with("/batch/read") {
                    Turn::Other
                } else {
                    Turn::Write
                };
                self.limiter
                    .acquire_in_turn(turn, self.pause.as_ref())
                    .await;
            }
            if let Some(make) = make_body.take() {
                body = make();
            }
            let token = self.access_token(false).await?;
            let waited_ms = queued.elapsed().as_millis() as u64;
            tracing::debug!(message = "HubSpot call", endpoint = %key, attempt, waited_ms);
            self.counter.add(&key);
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.config.base_url))
                .bearer_auth(token.expose())
                .query(query);
            if let Some(b) = &body {
                req = req.json(b.as_ref());
            }
            let sent = std::time::Instant::now();
            let outcome = req.send().await;
            tracing::debug!(message = "HubSpot answered", endpoint = %key, took_ms = sent.elapsed().as_millis());
            let (error, retry_after) = match outcome {
                Err(e) => {
                    // A request that never left may always go again; one that timed out
                    // may have taken effect, so only an idempotent one is retried.
                    let safe = e.is_connect() || idempotent == Idempotent::Yes;
                    let err = HubSpotError::Transport(e.without_url().to_string());
                    if !safe || attempt >= policy.max_attempts {
                        return Err(err);
                    }
                    (err, None)
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    self.note_daily(resp.headers());
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = resp
                        .text()
                        .await
                        .map_err(|e| HubSpotError::Transport(e.without_url().to_string()));
                    let text = match text {
                        Ok(t) => t,
                        Err(e)
                            if attempt < policy.max_attempts && idempotent == Idempotent::Yes =>
                        {
                            self.wait(attempt, None).await;
                            tracing::warn!(message = "HubSpot answer cut off; retrying.", endpoint = %key, attempt);
                            let _ = e;
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let body: Value = if text.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::Null)
                    };
                    if (200..300).contains(&status) {
                        return Ok(Answer { status, body });
                    }
                    let err = HubSpotError::from_body(status, &body);
                    if status == 401
                        && !refreshed
                        && matches!(self.config.auth, HubSpotAuth::OAuth { .. })
                    {
                        refreshed = true;
                        self.access_token(true).await?;
                        continue;
                    }
                    if err.class() != ErrorClass::Retryable || attempt >= policy.max_attempts {
                        return Err(err);
                    }
                    (err, retry_after)
                }
            };
            tracing::warn!(message = "HubSpot call failed; retrying.", endpoint = %key, attempt, error = %error);
            self.wait(attempt, retry_after).await;
        }
    }

    async fn wait(&self, attempt: u32, retry_after: Option<Duration>) {
        let delay = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            self.config.retry.backoff(attempt, retry_after, &mut *rng)
        };
        self.pause.pause(delay).await;
    }
}
