//! The initial sync: the runner starts on empty state (its first poll lists every record
//! of both CRMs), webhooks and outbound messages on as in production, and the bench
//! watches the queue until everything is synced and nothing moves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crmsync_shared::adapters::http::Secret;
use crmsync_shared::local::{RunOptions, Served};
use crmsync_shared::pipeline::Pipeline;
use crmsync_shared::pipeline::intake::IntakeSettings;
use crmsync_shared::ports::{Counts, CursorStore, Outcome, WorkQueue};

use super::{Sandboxes, Settings, State};

pub const HUBSPOT_APP_SECRET: &str = "hubspot-app-secret";
pub const SALESFORCE_ORG: &str = "00D8M0000000001AAA";
const OUTBOUND_TOKEN: &str = "bench-outbound-token";
/// How often the bench looks at the queue.
const SAMPLE: Duration = Duration::from_millis(250);

/// Calls per endpoint, as a sandbox counted them.
pub type Calls = BTreeMap<String, u64>;

#[derive(Debug, Clone, Default)]
pub struct Initial {
    /// From the runner's start to the last write either CRM took.
    pub seconds: f64,
    pub converged: bool,
    /// Record pairs by their last outcome, per pair.
    pub outcomes: Vec<(String, Counts)>,
    /// Calls to the last write: counted at the first sample of the counters after it
    /// (taken each second).
    pub hubspot: Calls,
    pub salesforce: Calls,
    /// Calls from there until the queue was quiet: polling while the last references
    /// wait on records that never sync, (HubSpot, Salesforce, seconds).
    pub after_last_write: (u64, u64, f64),
    pub hubspot_429: Calls,
    /// References waiting or in flight at the busiest moment.
    pub peak_queue: u64,
    /// A few failed records: what they are and why.
    pub failures: Vec<String>,
    /// Live HubSpot records whose key another live record of theirs also has: companies
    /// by domain, contacts by email (what a duplicate the sync made looks like), with
    /// one such key.
    pub duplicates: Vec<(&'static str, usize, String)>,
    /// Skipped records by their reason's code, with one such record and its message.
    pub skipped: Vec<(String, u64, String)>,
}

impl Initial {
    pub fn total(&self) -> Counts {
        self.outcomes
            .iter()
            .fold(Counts::default(), |mut t, (_, c)| {
                t.synced += c.synced;
                t.skipped += c.skipped;
                t.failed += c.failed;
                t
            })
    }
}

pub fn calls_of(v: &Value) -> Calls {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, n)| n.as_u64().map(|n| (k.clone(), n)))
                .collect()
        })
        .unwrap_or_default()
}

/// Calls counted in `after` and not yet in `before`, by endpoint.
pub fn calls_between(before: &Calls, after: &Calls) -> Calls {
    after
        .iter()
        .map(|(k, n)| {
            (
                k.clone(),
                n.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// With `SCALE_TIMELINE` set: HubSpot's calls in each 2-second window of the initial
/// sync, on stderr, by endpoint (where the run falls below the allowance, and why).
fn timeline(samples: &[(i64, Value, Value)], started_at: i64) {
    let mut last: Option<(i64, Calls)> = None;
    for (at, hs, _) in samples.iter().step_by(2) {
        let calls = calls_of(&hs["integration"]);
        if let Some((from, before)) = &last {
            let mut window: Vec<(String, u64)> =
                calls_between(before, &calls).into_iter().collect();
            window.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
            let total: u64 = window.iter().map(|(_, n)| n).sum();
            let named: Vec<String> = window
                .iter()
                .map(|(k, n)| format!("{n} {}", k.trim_start_matches("POST /crm/")))
                .collect();
            eprintln!(
                "  {:>5.1}s-{:>5.1}s {total:>3} HubSpot calls: {}",
                (from - started_at) as f64 / 1000.0,
                (at - started_at) as f64 / 1000.0,
                named.join(", ")
            );
        }
        last = Some((*at, calls));
    }
}

/// The latest `at` of the integration's writes, after `since`.
pub fn last_write(writes: &Value, since: i64) -> Option<i64> {
    writes
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|w| w.get("at").and_then(Value::as_i64))
        .filter(|at| *at >= since)
        .max()
}

/// Webhook and outbound deliveries not yet made.
async fn pending_pushes(s: &Sandboxes) -> Result<u64, String> {
    let hooks = s.api.hubspot(Method::GET, "/webhooks", None).await?;
    let outbound = s.api.salesforce(Method::GET, "/outbound", None).await?;
    let n = |v: &Value| match v.get("pending") {
        Some(Value::Array(a)) => a.len() as u64,
        Some(v) => v.as_u64().unwrap_or(0),
        None => 0,
    };
    Ok(n(&hooks) + n(&outbound))
}

/// The pipeline running as `crmsync run` runs it (intake, poller, workers), on the
/// embedded store or on DynamoDB and SQS.
pub struct Running {
    pub pipeline: Pipeline,
    pub queue: Arc<dyn WorkQueue>,
    pub cursors: Arc<dyn CursorStore>,
    /// The first takes the pushes and polls; the others only work the queue.
    served: Vec<Served>,
}

impl Running {
    pub fn url(&self) -> String {
        self.served.first().map(Served::url).unwrap_or_default()
    }

    pub async fn stop(self) {
        for s in self.served {
            s.stop().await;
        }
    }
}

/// Points both CRMs' pushes at the runner (or nowhere).
pub async fn pushes(s: &Sandboxes, runner: Option<&Running>) -> Result<(), String> {
    let hook = runner.map(|r| format!("{}/webhooks/hubspot", r.url()));
    s.api
        .hubspot(
            Method::PUT,
            "/webhooks",
            Some(json!({"target_url": hook, "app_secret": HUBSPOT_APP_SECRET})),
        )
        .await?;
    let outbound =
        runner.map(|r| format!("{}/webhooks/salesforce?token={OUTBOUND_TOKEN}", r.url()));
    s.api
        .salesforce(Method::PUT, "/outbound", Some(json!({"url": outbound})))
        .await?;
    Ok(())
}

/// What the bench saw at one look.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// References waiting or in flight.
    pub busy: u64,
    pub dead: u64,
    /// Every feed's initial listing is done.
    pub listed: bool,
    /// Webhook and outbound deliveries not yet made.
    pub pushes: u64,
}

/// Waits until the queue has been empty, and no push pending, for `quiet`; false when
/// `deadline` passed first.
pub async fn settle(
    s: &Sandboxes,
    runner: &Running,
    quiet: Duration,
    deadline: Instant,
    mut look: impl FnMut(Sample),
) -> Result<bool, String> {
    let mut still_since: Option<Instant> = None;
    loop {
        if Instant::now() > deadline {
            return Ok(false);
        }
        let depth = runner.queue.depth().await.map_err(|e| e.to_string())?;
        let listed = runner
            .pipeline
            .listing_done(runner.cursors.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        let sample = Sample {
            busy: depth.waiting + depth.in_flight,
            dead: depth.dead,
            listed,
            pushes: pending_pushes(s).await?,
        };
        look(sample);
        let idle = sample.listed && sample.busy == 0 && sample.pushes == 0;
        match (idle, still_since) {
            (true, Some(t)) if t.elapsed() >= quiet => return Ok(true),
            (true, None) => still_since = Some(Instant::now()),
            (true, Some(_)) => {}
            (false, _) => still_since = None,
        }
        tokio::time::sleep(SAMPLE).await;
    }
}

pub async fn run(
    settings: &Settings,
    s: &Sandboxes,
    state: State,
) -> Result<(Initial, Running), String> {
    let (queue, cursors) = (state.queue(), state.cursors());
    // One process with its workers sharing one client (`crmsync run`), or, as Lambda
    // runs them, processes of one worker each, each with its part of the allowance.
    let (processes, workers) = match settings.processes {
        0 | 1 => (1, settings.workers),
        n => (n, 1),
    };
    let share = u32::try_from(processes).unwrap_or(u32::MAX);
    let started_at = s.clock.now_ms();
    let started = Instant::now();
    let mut served = Vec::new();
    let mut first = None;
    for n in 0..processes {
        let mut pipeline = super::pipeline(s.hs.url(), s.sf.url(), &state, share).await?;
        pipeline.worker = format!("bench-{n}");
        let intake = IntakeSettings {
            public_url: String::new(),
            hubspot_app_secret: Some(Secret::new(HUBSPOT_APP_SECRET)),
            salesforce_org_id: Some(SALESFORCE_ORG.into()),
            salesforce_outbound_token: Some(Secret::new(OUTBOUND_TOKEN)),
            api_key: None,
        };
        let options = RunOptions {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            poll_interval: (n == 0).then_some(settings.poll),
            workers,
            batch_size: settings.batch,
        };
        served.push(
            Served::start(
                pipeline.clone(),
                intake,
                queue.clone(),
                cursors.clone(),
                options,
            )
            .await
            .map_err(|e| e.to_string())?,
        );
        first.get_or_insert(pipeline);
    }
    let runner = Running {
        pipeline: first.ok_or("no process started")?,
        queue,
        cursors,
        served,
    };
    pushes(s, Some(&runner)).await?;
    eprintln!("initial sync running...");
    let mut peak_queue = 0;
    let mut last_report = Instant::now();
    let quiet = (settings.poll * 3).max(Duration::from_secs(3));
    // The counters each second, to count the calls made up to the last write: the
    // queue goes quiet only once references waiting on records that never sync have
    // used their retries, and polling goes on meanwhile.
    let mut samples: Vec<(i64, Value, Value)> = Vec::new();
    let sampler = async {
        loop {
            let at = s.clock.now_ms();
            let hs = s.api.hubspot(Method::GET, "/counters", None).await?;
            let sf = s.api.salesforce(Method::GET, "/counters", None).await?;
            samples.push((at, hs, sf));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        #[allow(unreachable_code)]
        Ok::<(), String>(())
    };
    let settling = settle(s, &runner, quiet, started + settings.timeout, |look| {
        peak_queue = peak_queue.max(look.busy);
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "  {:>5.0}s: {} references queued, {} dead-lettered, listing {}, {} pushes pending",
                started.elapsed().as_secs_f64(),
                look.busy,
                look.dead,
                if look.listed { "done" } else { "under way" },
                look.pushes
            );
            last_report = Instant::now();
        }
    });
    let converged = tokio::select! {
        settled = settling => settled?,
        failed = sampler => return Err(failed.err().unwrap_or_default()),
    };
    let hs_writes = s.api.hubspot(Method::GET, "/writes", None).await?;
    let sf_writes = s.api.salesforce(Method::GET, "/writes", None).await?;
    let last = [
        last_write(&hs_writes, started_at),
        last_write(&sf_writes, started_at),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(started_at);
    let duplicates = duplicates(s).await?;
    let hs_final = s.api.hubspot(Method::GET, "/counters", None).await?;
    let sf_final = s.api.salesforce(Method::GET, "/counters", None).await?;
    if std::env::var_os("SCALE_TIMELINE").is_some() {
        timeline(&samples, started_at);
    }
    let (sampled_at, hs_counters, sf_counters) = samples
        .into_iter()
        .find(|(at, _, _)| *at >= last)
        .unwrap_or((s.clock.now_ms(), hs_final.clone(), sf_final.clone()));
    let total = |v: &Value| calls_of(v).values().sum::<u64>();
    let after_last_write = (
        total(&hs_final["integration"]).saturating_sub(total(&hs_counters["integration"])),
        total(&sf_final["calls"]["integration"])
            .saturating_sub(total(&sf_counters["calls"]["integration"])),
        (s.clock.now_ms() - sampled_at) as f64 / 1000.0,
    );
    let mut outcomes: BTreeMap<String, Counts> = BTreeMap::new();
    for (object, _, c) in runner
        .pipeline
        .status
        .counts()
        .await
        .map_err(|e| e.to_string())?
    {
        let t = outcomes.entry(object).or_default();
        t.synced += c.synced;
        t.skipped += c.skipped;
        t.failed += c.failed;
    }
    let status = &runner.pipeline.status;
    let some = |outcome: Outcome, code: Option<String>, limit: usize| async move {
        let found = status
            .by_outcome(outcome, code.as_deref(), limit)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<Vec<String>, String>(
            found
                .into_iter()
                .map(|s| {
                    format!(
                        "{} {} [{}]: {}",
                        s.last.record.object,
                        s.last.record.id,
                        s.last.code.unwrap_or_default(),
                        s.last.message.unwrap_or_default()
                    )
                })
                .collect(),
        )
    };
    let failures = some(Outcome::Failed, None, 5).await?;
    let mut skipped = Vec::new();
    for (outcome, code, n) in status.codes().await.map_err(|e| e.to_string())? {
        if outcome == Outcome::Skipped {
            let example = some(Outcome::Skipped, Some(code.clone()), 1).await?;
            skipped.push((code, n, example.concat()));
        }
    }
    let initial = Initial {
        duplicates,
        failures,
        skipped,
        seconds: (last - started_at) as f64 / 1000.0,
        converged,
        outcomes: outcomes.into_iter().collect(),
        after_last_write,
        hubspot: calls_of(&hs_counters["integration"]),
        salesforce: calls_of(&sf_counters["calls"]["integration"]),
        hubspot_429: calls_of(&hs_counters["rate_limited"]),
        peak_queue,
    };
    Ok((initial, runner))
}

/// HubSpot companies sharing a domain and contacts sharing an email, among live records
/// (the sandbox's dump): how many records share a key with another, and one such key
/// with the records and the Salesforce ids they name.
async fn duplicates(s: &Sandboxes) -> Result<Vec<(&'static str, usize, String)>, String> {
    let mut out = Vec::new();
    for (object, key) in [("companies", "domain"), ("contacts", "email")] {
        let dump = s
            .api
            .hubspot(Method::GET, &format!("/objects/{object}"), None)
            .await?;
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in dump["results"].as_array().into_iter().flatten() {
            if r["archived"] == Value::Bool(true) {
                continue;
            }
            let Some(k) = r["properties"][key].as_str().filter(|k| !k.is_empty()) else {
                continue;
            };
            let named: Vec<&str> = r["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(name, _)| name.starts_with("salesforce") && name.ends_with("id"))
                .filter_map(|(_, v)| v.as_str())
                .collect();
            let id = r["id"].as_str().unwrap_or_default();
            by_key
                .entry(k.to_lowercase())
                .or_default()
                .push(format!("{id} naming {named:?}"));
        }
        let shared: Vec<(&String, &Vec<String>)> =
            by_key.iter().filter(|(_, ids)| ids.len() > 1).collect();
        let count = shared.iter().map(|(_, ids)| ids.len()).sum();
        let example = shared
            .first()
            .map(|(k, ids)| format!("{k}: {}", ids.join(", ")))
            .unwrap_or_default();
        out.push((object, count, example));
    }
    Ok(out)
}
