//! The Salesforce REST client: access-token, refresh-token and JWT bearer credentials
//! (OAuth against a login URL apart from the instance URL), transparent re-auth on
//! `INVALID_SESSION_ID` (the call is retried once), retries on 5xx, timeouts and
//! `UNABLE_TO_LOCK_ROW`, API usage tracked from `Sforce-Limit-Info` with a ceiling the
//! pipeline can query, and call counters. Queries page through `nextRecordsUrl`;
//! Collections calls are chunked to 200 records (see `collections.rs`).

mod auth;
mod collections;
mod error;
mod port;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::Method;
use serde_json::Value;

pub use collections::RecordResult;
pub use error::{SalesforceError, SfApiError, SfErrorItem, code_class};

use super::http::{
    CallCounter, ErrorClass, Pause, RetryPolicy, Secret, TokioPause, endpoint_key, in_chunks,
};

/// Salesforce's login host.
pub const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";
pub const API_VERSION: &str = "65.0";

#[derive(Debug, Clone)]
pub enum SalesforceAuth {
    /// A session id / access token as is (it cannot be renewed).
    AccessToken(Secret),
    RefreshToken {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
    },
    /// The JWT bearer flow: an assertion signed with the connected app's private key.
    Jwt {
        client_id: String,
        username: String,
        /// PKCS#8 PEM.
        private_key: Secret,
    },
}

#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// The org's instance URL (OAuth answers may replace it).
    pub instance_url: String,
    /// Where OAuth grants go.
    pub login_url: String,
    pub auth: SalesforceAuth,
    pub api_version: String,
    /// Share of the daily allowance after which non-urgent work stops (0.8: 80 %).
    pub budget_ceiling: f64,
    pub retry: RetryPolicy,
    pub timeout: Duration,
}

impl SalesforceConfig {
    pub fn new(instance_url: impl Into<String>, auth: SalesforceAuth) -> Self {
        SalesforceConfig {
            instance_url: instance_url.into().trim_end_matches('/').to_owned(),
            login_url: DEFAULT_LOGIN_URL.into(),
            auth,
            api_version: API_VERSION.into(),
            budget_ceiling: 0.8,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// A session: the access token and the instance it is for.
#[derive(Debug, Clone)]
struct Session {
    token: Secret,
    instance_url: String,
}

#[derive(Debug)]
pub struct SalesforceClient {
    http: reqwest::Client,
    config: SalesforceConfig,
    pause: Arc<dyn Pause>,
    counter: CallCounter,
    session: tokio::sync::Mutex<Option<Session>>,
    /// The last `api-usage=used/max` the org reported.
    usage: Mutex<Option<(u64, u64)>>,
    rng: Mutex<StdRng>,
}

impl SalesforceClient {
    pub fn new(config: SalesforceConfig) -> Result<Self, SalesforceError> {
        Self::with_pause(config, Arc::new(TokioPause))
    }

    pub fn with_pause(
        config: SalesforceConfig,
        pause: Arc<dyn Pause>,
    ) -> Result<Self, SalesforceError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| SalesforceError::Transport(e.to_string()))?;
        let session = match &config.auth {
            SalesforceAuth::AccessToken(t) => Some(Session {
                token: t.clone(),
                instance_url: config.instance_url.clone(),
            }),
            _ => None,
        };
        Ok(SalesforceClient {
            http,
            config,
            pause,
            counter: CallCounter::default(),
            session: tokio::sync::Mutex::new(session),
            usage: Mutex::new(None),
            rng: Mutex::new(StdRng::from_os_rng()),
        })
    }

    pub fn calls(&self) -> &CallCounter {
        &self.counter
    }

    /// The org's last reported API usage: (used, max) in the rolling 24 hours.
    pub fn api_usage(&self) -> Option<(u64, u64)> {
        *self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record in Lightning Experience.
    pub fn record_url(&self, object: &str, id: &str) -> String {
        format!(
            "{}/lightning/r/{object}/{id}/view",
            self.config.instance_url
        )
    }

    /// Whether usage passed the configured ceiling: non-urgent work should stop.
    pub fn over_budget(&self) -> bool {
        self.api_usage().is_some_and(|(used, max)| {
            max > 0 && used as f64 >= max as f64 * self.config.budget_ceiling
        })
    }

    fn note_usage(&self, headers: &reqwest::header::HeaderMap) {
        let parsed = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(',')
                    .find_map(|p| p.trim().strip_prefix("api-usage="))
            })
            .and_then(|u| u.split_once('/'))
            .and_then(|(used, max)| Some((used.trim().parse().ok()?, max.trim().parse().ok()?)));
        if let Some(u) = parsed {
            *self.usage.lock().unwrap_or_else(|p| p.into_inner()) = Some(u);
        }
    }

    /// `/services/data/vXX.X` + `path`.
    fn data_path(&self, path: &str) -> String {
        format!("/services/data/v{}{path}", self.config.api_version)
    }

    async fn session(&self, renew: bool) -> Result<Session, SalesforceError> {
        let mut session = self.session.lock().await;
        if let (Some(s), false) = (session.as_ref(), renew) {
            return Ok(s.clone());
        }
        if matches!(self.config.auth, SalesforceAuth::AccessToken(_)) {
            return session
                .clone()
                .ok_or_else(|| SalesforceError::Auth("no access token".into()));
        }
        let fresh = self.authenticate().await?;
        *session = Some(fresh.clone());
        Ok(fresh)
    }

    /// Sends one REST request: session, counting, usage tracking, re-auth on an expired
    /// session, retries on what is worth retrying. `path` is absolute
    /// (`/services/data/...`).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<Value, SalesforceError> {
        let policy = self.config.retry;
        let key = endpoint_key(&method, path);
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let session = self.session(false).await?;
            tracing::debug!(message = "Salesforce call", endpoint = %key, attempt);
            self.counter.add(&key);
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", session.instance_url))
                .bearer_auth(session.token.expose())
                .query(query);
            if let Some(b) = body {
                req = req.json(b);
            }
            let sent = std::time::Instant::now();
            let answer = req.send().await;
            tracing::debug!(message = "Salesforce answered", endpoint = %key, took_ms = sent.elapsed().as_millis());
            let error = match answer {
                Err(e) => {
                    let safe = e.is_connect() || idempotent;
                    let err = SalesforceError::Transport(e.without_url().to_string());
                    if !safe || attempt >= policy.max_attempts {
                        return Err(err);
                    }
                    err
                }
                Ok(resp) => {
                    self.note_usage(resp.headers());
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    let body: Value = if text.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::Null)
                    };
                    if (200..300).contains(&status) {
                        return Ok(body);
                    }
                    let err = SalesforceError::from_body(status, &body);
                    if err.code() == "INVALID_SESSION_ID"
                        && !renewed
                        && !matches!(self.config.auth, SalesforceAuth::AccessToken(_))
                    {
                        renewed = true;
                        self.session(true).await?;
                        continue;
                    }
                    if err.class() != ErrorClass::Retryable || attempt >= policy.max_attempts {
                        return Err(err);
                    }
                    err
                }
            };
            tracing::warn!(message = "Salesforce call failed; retrying.", endpoint = %key, attempt, error = %error);
            let delay = {
                let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                policy.backoff(attempt, None, &mut *rng)
            };
            self.pause.pause(delay).await;
        }
    }

    /// Every row of a SOQL query, following `nextRecordsUrl` (`all`: `queryAll`,
    /// deleted and merged rows included).
    pub async fn query(&self, soql: &str, all: bool) -> Result<Vec<Value>, SalesforceError> {
        let endpoint = if all { "/queryAll" } else { "/query" };
        let first = self
            .request(
                Method::GET,
                &self.data_path(endpoint),
                &[("q", soql.to_owned())],
                None,
                true,
            )
            .await?;
        self.rest_of_query(first).await
    }

    /// The rows of a first query page and of every page after it.
    pub async fn rest_of_query(&self, first: Value) -> Result<Vec<Value>, SalesforceError> {
        let mut rows = Vec::new();
        let mut page = first;
        loop {
            rows.extend(
                page.get("records")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            let done = page.get("done").and_then(Value::as_bool).unwrap_or(true);
            match (done, page.get("nextRecordsUrl").and_then(Value::as_str)) {
                (false, Some(next)) => {
                    let next = next.to_owned();
                    page = self.request(Method::GET, &next, &[], None, true).await?;
                }
                _ => return Ok(rows),
            }
        }
    }

    /// `SELECT COUNT() ...`.
    pub async fn count(&self, soql: &str) -> Result<u64, SalesforceError> {
        let page = self
            .request(
                Method::GET,
                &self.data_path("/query"),
                &[("q", soql.to_owned())],
                None,
                true,
            )
            .await?;
        Ok(page.get("totalSize").and_then(Value::as_u64).unwrap_or(0))
    }

    /// Several queries in one API call (the Composite resource, ≤ 25): the complete rows
    /// of each, by reference. Extra pages of a large result cost a call each.
    pub async fn composite_queries(
        &self,
        queries: &[(String, String)],
        include_deleted: bool,
    ) -> Result<HashMap<String, Vec<Value>>, SalesforceError> {
        let resource = if include_deleted {
            "/queryAll"
        } else {
            "/query"
        };
        let parts = in_chunks(queries, 25, |chunk| async move {
            let sub: Vec<Value> = chunk
                .iter()
                .map(|(reference, soql)| {
                    let q = serde_urlencoded::to_string([("q", soql)]).unwrap_or_default();
                    serde_json::json!({"method": "GET", "url": format!("{}?{q}", self.data_path(resource)), "referenceId": reference})
                })
                .collect();
            let body = serde_json::json!({"allOrNone": false, "compositeRequest": sub});
            let answer = self
                .request(
                    Method::POST,
                    &self.data_path("/composite"),
                    &[],
                    Some(&body),
                    true,
                )
                .await?;
            let mut out = Vec::with_capacity(chunk.len());
            for r in answer
                .get("compositeResponse")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let reference = r
                    .get("referenceId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let status = r
                    .get("httpStatusCode")
                    .and_then(Value::as_u64)
                    .unwrap_or(500) as u16;
                let body = r.get("body").cloned().unwrap_or(Value::Null);
                if !(200..300).contains(&status) {
                    return Err(SalesforceError::from_body(status, &body));
                }
                out.push((reference, self.rest_of_query(body).await?));
            }
            Ok(out)
        })
        .await?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// Ids changed in `[start, end)` (`sobjects/{type}/updated`), and the time covered.
    pub async fn updated(
        &self,
        object: &str,
        start: &str,
        end: &str,
    ) -> Result<(Vec<String>, String), SalesforceError> {
        let query = [("start", start.to_owned()), ("end", end.to_owned())];
        let v = self
            .request(
                Method::GET,
                &self.data_path(&format!("/sobjects/{object}/updated/")),
                &query,
                None,
                true,
            )
            .await?;
        let ids = v
            .get("ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok((
            ids,
            v.get("latestDateCovered")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ))
    }

    /// Ids deleted in `[start, end)` (`sobjects/{type}/deleted`).
    pub async fn deleted(
        &self,
        object: &str,
        start: &str,
        end: &str,
    ) -> Result<Vec<String>, SalesforceError> {
        let query = [("start", start.to_owned()), ("end", end.to_owned())];
        let v = self
            .request(
                Method::GET,
                &self.data_path(&format!("/sobjects/{object}/deleted/")),
                &query,
                None,
                true,
            )
            .await?;
        Ok(v.get("deletedRecords")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.get("id").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// An object's describe, as the org answers now (the pipeline keeps what it read
    /// and asks again when a field turns out gone).
    pub async fn describe(&self, object: &str) -> Result<Value, SalesforceError> {
        self.request(
            Method::GET,
            &self.data_path(&format!("/sobjects/{object}/describe")),
            &[],
            None,
            true,
        )
        .await
    }

    /// Fails with a budget error when usage is past the ceiling.
    pub fn check_budget(&self) -> Result<(), SalesforceError> {
        match self.api_usage() {
            Some((used, max)) if self.over_budget() => Err(SalesforceError::Budget {
                used,
                max,
                ceiling: (max as f64 * self.config.budget_ceiling) as u64,
            }),
            _ => Ok(()),
        }
    }
}
