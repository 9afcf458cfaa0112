//! Steady state: people edit synced contacts on both sides at a steady rate (now and
//! then the same field on both sides at once), first with webhooks and outbound
//! messages on, then with polling alone. For each edit, the time until the other side's
//! record took the value (its write in the sandbox's write log), and the writes the
//! stream cost in all: an echo is a write back onto the record a person just edited.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

use super::initial::Running;

use super::initial::{Calls, calls_between, calls_of, pushes, settle};
use super::{Control, Sandboxes, Settings};

/// Every this many edits, a person on each side edits the same field at once.
const CONFLICT_EVERY: usize = 20;

/// One synced contact.
#[derive(Debug, Clone)]
struct Pair {
    hubspot: String,
    contact: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    HubSpot,
    Salesforce,
}

#[derive(Debug, Clone)]
struct Edit {
    at: i64,
    from: From,
    pair: usize,
    /// Edited on both sides at once: one side wins, so no latency is measured.
    conflict: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Phase {
    pub name: &'static str,
    pub edits: usize,
    pub conflicts: usize,
    /// Milliseconds from a HubSpot edit to its Salesforce write, and back.
    pub hubspot_to_salesforce: Vec<i64>,
    pub salesforce_to_hubspot: Vec<i64>,
    /// Edits whose value never reached the other side.
    pub missing: usize,
    /// The integration's writes during the phase, and those onto a just-edited record.
    pub writes: usize,
    pub echoes: usize,
    pub settled: bool,
    /// The integration's calls from the stream's start until it settled, by endpoint.
    pub hubspot: Calls,
    pub salesforce: Calls,
}

impl Phase {
    pub fn latencies(&self) -> Vec<i64> {
        let mut all: Vec<i64> = self
            .hubspot_to_salesforce
            .iter()
            .chain(&self.salesforce_to_hubspot)
            .copied()
            .collect();
        all.sort_unstable();
        all
    }
}

/// The value at a percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

async fn synced_pairs(s: &Sandboxes, want: usize) -> Result<Vec<Pair>, String> {
    let dump = s
        .api
        .salesforce(Method::GET, "/objects/Contact", None)
        .await?;
    let mut pairs: Vec<Pair> = dump["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["IsDeleted"] != json!(true))
        .filter_map(|r| {
            Some(Pair {
                hubspot: r["HubSpot_Contact_Id__c"].as_str()?.to_owned(),
                contact: r["Id"].as_str()?.to_owned(),
            })
        })
        .collect();
    // Each edit takes a contact of its own (a write is attributed to one edit): say so
    // before a phase runs, not when the stream runs out.
    if pairs.len() < want {
        return Err(format!(
            "the steady state needs {want} synced Salesforce Contacts (edits per second x \
             SCALE_STEADY_SECONDS x 2 phases) and {} synced: fewer seconds, or more people",
            pairs.len()
        ));
    }
    pairs.truncate(want);
    Ok(pairs)
}

async fn edit(api: &Control, from: From, pair: &Pair, value: &str) -> Result<(), String> {
    match from {
        From::HubSpot => {
            let path = format!("/objects/contacts/{}", pair.hubspot);
            let body = json!({"properties": {"jobtitle": value}});
            api.hubspot(Method::PATCH, &path, Some(body)).await
        }
        From::Salesforce => {
            let path = format!("/objects/Contact/{}", pair.contact);
            let body = json!({"Title": value});
            api.salesforce(Method::PATCH, &path, Some(body)).await
        }
    }
    .map(|_| ())
}

/// `(at, changed)` of the integration's writes on one record.
fn writes_on<'a>(log: &'a Value, key: &str) -> impl Iterator<Item = (i64, Vec<&'a str>)> + 'a {
    log.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|w| {
            let at = w["at"].as_i64().unwrap_or(0);
            let changed = w["changed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            (at, changed)
        })
}

async fn phase(
    name: &'static str,
    settings: &Settings,
    s: &Sandboxes,
    runner: &Running,
    pairs: &[Pair],
    first_pair: usize,
) -> Result<Phase, String> {
    let rate = settings.edits_per_second.max(1);
    let count = (u64::from(rate) * settings.steady_seconds) as usize;
    let mut rng = StdRng::seed_from_u64(first_pair as u64);
    let began = s.clock.now_ms();
    let counted = |hs: &Value, sf: &Value| {
        (
            calls_of(&hs["integration"]),
            calls_of(&sf["calls"]["integration"]),
        )
    };
    let (hs_before, sf_before) = counted(
        &s.api.hubspot(Method::GET, "/counters", None).await?,
        &s.api.salesforce(Method::GET, "/counters", None).await?,
    );
    eprintln!("steady state, {name}: {count} edits at {rate}/s...");
    let mut edits: Vec<Edit> = Vec::with_capacity(count);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        tick.tick().await;
        // Each edit a contact of its own: a write is attributed to one edit.
        let index = first_pair + n;
        let Some(pair) = pairs.get(index).cloned() else {
            return Err(format!(
                "{} synced contacts are too few for the stream",
                pairs.len()
            ));
        };
        let conflict = n % CONFLICT_EVERY == CONFLICT_EVERY - 1;
        let from = if rng.random_bool(0.5) {
            From::HubSpot
        } else {
            From::Salesforce
        };
        let at = s.clock.now_ms();
        edits.push(Edit {
            at,
            from,
            pair: index,
            conflict,
        });
        let api = s.api.clone();
        tasks.spawn(async move {
            edit(&api, from, &pair, &format!("Bench {n}")).await?;
            if conflict {
                let other = match from {
                    From::HubSpot => From::Salesforce,
                    From::Salesforce => From::HubSpot,
                };
                edit(&api, other, &pair, &format!("Bench {n} other")).await?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let settled = settle(
        s,
        runner,
        (settings.poll * 3).max(Duration::from_secs(3)),
        Instant::now() + Duration::from_secs(120),
        |_| {},
    )
    .await?;
    let (hs_after, sf_after) = counted(
        &s.api.hubspot(Method::GET, "/counters", None).await?,
        &s.api.salesforce(Method::GET, "/counters", None).await?,
    );
    let hs_log = s.api.hubspot(Method::GET, "/writes", None).await?;
    let sf_log = s.api.salesforce(Method::GET, "/writes", None).await?;
    let mut result = Phase {
        name,
        edits: edits.len(),
        settled,
        hubspot: calls_between(&hs_before, &hs_after),
        salesforce: calls_between(&sf_before, &sf_after),
        ..Phase::default()
    };
    let mut slow: Vec<(i64, i64, bool)> = Vec::new();
    for e in &edits {
        let pair = &pairs[e.pair];
        let hs_key = format!("contacts/{}", pair.hubspot);
        let (own, other, field) = match e.from {
            From::HubSpot => (hs_key.as_str(), pair.contact.as_str(), "Title"),
            From::Salesforce => (pair.contact.as_str(), hs_key.as_str(), "jobtitle"),
        };
        let (own_log, other_log) = match e.from {
            From::HubSpot => (&hs_log, &sf_log),
            From::Salesforce => (&sf_log, &hs_log),
        };
        if e.conflict {
            result.conflicts += 1;
            continue;
        }
        let arrived = writes_on(other_log, other)
            .filter(|(at, changed)| *at >= e.at && changed.contains(&field))
            .map(|(at, _)| at)
            .min();
        if let Some(at) = arrived {
            slow.push((at - e.at, e.at - began, matches!(e.from, From::HubSpot)));
        }
        match (arrived, e.from) {
            (Some(at), From::HubSpot) => result.hubspot_to_salesforce.push(at - e.at),
            (Some(at), From::Salesforce) => result.salesforce_to_hubspot.push(at - e.at),
            (None, _) => result.missing += 1,
        }
        result.echoes += writes_on(own_log, own)
            .filter(|(at, changed)| *at >= e.at && !changed.is_empty())
            .count();
    }
    slow.sort_unstable();
    // `SCALE_SLOWEST=1`: when the slowest edits were made tells what held them (a
    // stall shared by all, or a few unlucky ones).
    if std::env::var_os("SCALE_SLOWEST").is_some() {
        let slowest: Vec<String> = slow
            .iter()
            .rev()
            .take(15)
            .map(|(ms, at, hs)| {
                let from = if *hs { "HubSpot" } else { "Salesforce" };
                format!("{ms} ms (edit in {from} at {at} ms)")
            })
            .collect();
        eprintln!("{name}, slowest: {}", slowest.join(", "));
    }
    for log in [&hs_log, &sf_log] {
        result.writes += log
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(Value::as_array)
            .flatten()
            .filter(|w| w["at"].as_i64().is_some_and(|at| at >= began))
            .count();
    }
    Ok(result)
}

/// Waits until HubSpot's feeds have made their settled reads (a change read once more
/// two minutes on, for the search index's rare long lags) of everything up to now: the
/// initial sync's last follow-up reads, which page through its own writes. Steady
/// state begins after them.
async fn past_settled_reads(runner: &Running) -> Result<(), String> {
    let now = runner.pipeline.clock.now_ms();
    let deadline = Instant::now() + Duration::from_secs(600);
    eprintln!("waiting for the initial sync's settled reads...");
    loop {
        let mut behind = false;
        for object in ["contacts", "companies", "deals"] {
            let key = format!("settled:hubspot:{object}");
            let mark = runner
                .cursors
                .cursor(&key)
                .await
                .map_err(|e| e.to_string())?;
            behind |= mark.is_none_or(|m| m.at < now);
        }
        if !behind {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the settled reads did not pass the initial sync in 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub async fn run(
    settings: &Settings,
    s: &Sandboxes,
    runner: &Running,
) -> Result<Vec<Phase>, String> {
    let per_phase = (u64::from(settings.edits_per_second) * settings.steady_seconds) as usize;
    let pairs = synced_pairs(s, per_phase * 2).await?;
    past_settled_reads(runner).await?;
    let pushed = phase(
        "webhooks and outbound messages",
        settings,
        s,
        runner,
        &pairs,
        0,
    )
    .await?;
    pushes(s, None).await?;
    let polled = phase("polling alone", settings, s, runner, &pairs, per_phase).await?;
    pushes(s, Some(runner)).await?;
    Ok(vec![pushed, polled])
}
