//! The operator commands: status, errors, record, resync, pause, resume. Each finds the
//! state as `crmsync run` does (the same `--store`, `--config` and `CRMSYNC_*`
//! environment), or the AWS deployment's with `--aws`, and works while the sync runs.

use std::path::PathBuf;
use std::sync::Arc;

use crmsync_shared::aws::Deployment;
use crmsync_shared::domain::Side;
use crmsync_shared::pipeline::Pipeline;
use crmsync_shared::pipeline::dashboard::duration;
use crmsync_shared::pipeline::health::{self, ErrorGroup, Health};
use crmsync_shared::ports::{
    CursorStore, Link, Outcome, RecordRef, RecordStatus, StoreError, SyncEvent, WorkItem, WorkQueue,
};
use serde::Serialize;

use crate::{CliError, config_or_builtin, run};

/// Where the state is: the embedded store (default) or the AWS deployment.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The sync configuration (default: the built-in one; with --aws, CRMSYNC_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The embedded store's file.
    #[arg(long, default_value = "crmsync.db")]
    store: PathBuf,
    /// The AWS deployment: DynamoDB and SQS through the standard AWS credential chain.
    #[arg(long)]
    aws: bool,
    /// With --aws: the stack's state table (its StateTableName output; default
    /// CRMSYNC_TABLE).
    #[arg(long, requires = "aws")]
    table: Option<String>,
    /// With --aws: the stack's work queue (its WorkQueueUrl output; default
    /// CRMSYNC_QUEUE_URL).
    #[arg(long, requires = "aws")]
    queue_url: Option<String>,
    /// With --aws: its dead-letter queue (DeadLetterQueueUrl; default
    /// CRMSYNC_DEAD_LETTER_URL).
    #[arg(long, requires = "aws")]
    dead_letter_url: Option<String>,
}

/// The pipeline and the stores a command works on.
pub struct Connected {
    pub pipeline: Pipeline,
    pub cursors: Arc<dyn CursorStore>,
    pub queue: Arc<dyn WorkQueue>,
}

fn state(e: StoreError) -> CliError {
    CliError::Setup(format!("state store: {e}"))
}

pub async fn connect(target: &Target) -> Result<Connected, CliError> {
    if !target.aws {
        let config = config_or_builtin(target.config.clone())?;
        let (pipeline, store, _) = run::connect(config, &target.store).await?;
        return Ok(Connected {
            pipeline,
            cursors: store.clone(),
            queue: store,
        });
    }
    let config_text = match &target.config {
        Some(path) => Some(crate::read(path)?),
        None => None,
    };
    let flags = [
        ("CRMSYNC_TABLE", target.table.clone()),
        ("CRMSYNC_QUEUE_URL", target.queue_url.clone()),
        ("CRMSYNC_DEAD_LETTER_URL", target.dead_letter_url.clone()),
        ("CRMSYNC_CONFIG", config_text),
    ];
    let get = |k: &str| {
        flags
            .iter()
            .find(|(name, _)| *name == k)
            .and_then(|(_, v)| v.clone())
            .or_else(|| std::env::var(k).ok())
    };
    let worker = format!("cli-{}", std::process::id());
    let d = Deployment::from_env(get, worker)
        .await
        .map_err(|e| CliError::Setup(e.to_string()))?;
    Ok(Connected {
        pipeline: d.pipeline,
        cursors: d.store,
        queue: d.queue,
    })
}

fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `2026-11-30T12:00:05.000Z`.
fn time(ms: i64) -> String {
    crmsync_shared::domain::value::iso_millis(ms)
}

/// Sync health as text: what `crmsync status` and the demo print.
pub fn status_text(h: &Health) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    match &h.paused {
        Some(p) => line(format!(
            "PAUSED since {} by {}{} ({} ago): nothing syncs, changes wait in the queue; `crmsync resume` catches up",
            time(p.since),
            p.by,
            p.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
            duration(h.at - p.since)
        )),
        None => line("syncing (not paused)".into()),
    }
    for b in &h.broken_fields {
        line(format!(
            "BROKEN MAPPING  {}: {} since {}; that field is paused, the pair syncs its other fields (restore it or remove it from the mapping, then `crmsync resume`)",
            b.pair,
            b.message,
            time(b.since)
        ));
    }
    line(String::new());
    line(format!(
        "{:<14} {:<14} {:<14} {:>8} {:>8} {:>8}",
        "pair", "object", "direction", "synced", "skipped", "failing"
    ));
    for f in &h.flows {
        line(format!(
            "{:<14} {:<14} {:<14} {:>8} {:>8} {:>8}",
            f.pair, f.object, f.direction, f.records.synced, f.records.skipped, f.records.failed
        ));
    }
    if h.flows.is_empty() {
        line("(no record synced yet)".into());
    }
    for (title, map) in [
        ("failing", &h.failing_by_code),
        ("skipped", &h.skipped_by_reason),
        ("held back", &h.held_back_by_reason),
    ] {
        if map.is_empty() {
            continue;
        }
        line(String::new());
        line(format!("{title}, by code:"));
        for (code, n) in map {
            let hint = health::fix_hint(code)
                .map(|h| format!("  ({h})"))
                .unwrap_or_default();
            line(format!("  {code:<40} {n:>6} records{hint}"));
        }
    }
    line(String::new());
    line("feeds:".into());
    for f in &h.feeds {
        line(format!(
            "  {:<34} last read {:<24} lag {}",
            f.feed,
            f.last_poll.map(time).unwrap_or_else(|| "never".into()),
            f.lag_ms.map(duration).unwrap_or_else(|| "-".into())
        ));
    }
    if let Some(q) = h.queue {
        line(format!(
            "queue: {} waiting, {} in progress, {} dead-lettered",
            q.waiting, q.in_flight, q.dead
        ));
    }
    line("API use:".into());
    for a in &h.api {
        let allowance = match (a.daily_used, a.daily_limit) {
            (Some(used), Some(limit)) if limit > 0 => format!(
                "{used} of {limit} today ({:.1}%, all apps, as last reported)",
                used as f64 * 100.0 / limit as f64
            ),
            _ => "daily allowance not reported".into(),
        };
        line(format!(
            "  {:<11} {:>7} calls by crmsync in 24 h; {allowance}",
            a.side.as_str(),
            a.calls_24h
        ));
    }
    out
}

pub async fn status(target: &Target, json: bool) -> Result<(), CliError> {
    let c = connect(target).await?;
    let h = health::report(&c.pipeline, c.cursors.as_ref(), Some(c.queue.as_ref()))
        .await
        .map_err(state)?;
    if json {
        return print_json(&h);
    }
    print!("{}", status_text(&h));
    Ok(())
}

pub async fn errors(
    target: &Target,
    code: Option<&str>,
    pair: Option<&str>,
    limit: usize,
    json: bool,
) -> Result<(), CliError> {
    let c = connect(target).await?;
    let groups: Vec<ErrorGroup> = health::errors(&c.pipeline, code, pair, limit)
        .await
        .map_err(state)?;
    if json {
        return print_json(&groups);
    }
    if groups.is_empty() {
        println!("no failing records");
        return Ok(());
    }
    for g in &groups {
        println!("{}  {} records", g.code, g.records);
        if let Some(hint) = g.hint {
            println!("  fix: {hint}");
        }
        for r in &g.failing {
            println!(
                "  {}  field {}  {}  ({} attempts since {}){}",
                r.record,
                r.field.as_deref().unwrap_or("-"),
                r.message.as_deref().unwrap_or("-"),
                r.attempts,
                time(r.since),
                r.url
                    .as_deref()
                    .map(|u| format!("  {u}"))
                    .unwrap_or_default()
            );
        }
        if (g.failing.len() as u64) < g.records {
            println!(
                "  ... {} more (--limit to see them)",
                g.records - g.failing.len() as u64
            );
        }
    }
    Ok(())
}

/// `hubspot:contacts:101`, `salesforce:Lead:00Q...`.
pub fn parse_record(text: &str) -> Result<(Side, String, String), CliError> {
    let bad = || {
        CliError::Usage(format!(
            "expected a record as hubspot:OBJECT:ID or salesforce:SOBJECT:ID, got {text:?}"
        ))
    };
    let mut parts = text.splitn(3, ':');
    let (side, object, id) = (parts.next(), parts.next(), parts.next());
    let side = side.and_then(Side::from_name).ok_or_else(bad)?;
    match (object, id) {
        (Some(o), Some(i)) if !o.is_empty() && !i.is_empty() => {
            Ok((side, o.to_owned(), i.to_owned()))
        }
        _ => Err(bad()),
    }
}

/// A record's sync card.
#[derive(Debug, Serialize)]
struct Card {
    record: String,
    pair: Option<String>,
    url: Option<String>,
    link: Option<LinkView>,
    status: Option<RecordStatus>,
    /// The linked record's own status, on the other side.
    other_status: Option<RecordStatus>,
    /// The last outcomes of both records, newest first.
    history: Vec<SyncEvent>,
    /// Field by field: what both sides last agreed on.
    agreed: Vec<(String, serde_json::Value, serde_json::Value)>,
}

#[derive(Debug, Serialize)]
struct LinkView {
    hubspot: String,
    salesforce: String,
    last_synced_at: i64,
    version: u64,
    hubspot_url: Option<String>,
    salesforce_url: Option<String>,
}

pub async fn record(target: &Target, which: &str, json: bool) -> Result<(), CliError> {
    let (side, object, id) = parse_record(which)?;
    let c = connect(target).await?;
    let p = &c.pipeline;
    let pair = p.pair_of_record(side.as_str(), &object);
    let link: Option<Link> = match side {
        Side::HubSpot => match &pair {
            Some(pair) => p.links.by_hubspot(pair, &id).await.map_err(state)?,
            None => None,
        },
        Side::Salesforce => p.links.by_salesforce(&object, &id).await.map_err(state)?,
    };
    let this = RecordRef {
        side: side.as_str().to_owned(),
        object: object.clone(),
        id: id.clone(),
    };
    let now = p.clock.now_ms();
    let status = p.status.status(&this).await.map_err(state)?;
    let mut history = p.status.history(&this, now).await.map_err(state)?;
    let mut other_status = None;
    let view = link.as_ref().map(|l| {
        let hubspot_object = p
            .hubspot_object_of(&l.pair)
            .unwrap_or_else(|| object.clone());
        (
            RecordRef {
                side: "hubspot".into(),
                object: hubspot_object,
                id: l.hubspot_id.clone(),
            },
            RecordRef {
                side: "salesforce".into(),
                object: l.salesforce_object.clone(),
                id: l.salesforce_id.clone(),
            },
        )
    });
    if let Some((hs, sf)) = &view {
        let other = if side == Side::HubSpot { sf } else { hs };
        other_status = p.status.status(other).await.map_err(state)?;
        history.extend(p.status.history(other, now).await.map_err(state)?);
    }
    history.sort_by_key(|e| std::cmp::Reverse(e.at));
    history.truncate(20);
    let card = Card {
        record: which.to_owned(),
        url: p.record_url(side.as_str(), &object, &id),
        pair,
        link: link
            .as_ref()
            .zip(view.as_ref())
            .map(|(l, (hs, sf))| LinkView {
                hubspot: health::record_key(&hs.side, &hs.object, &hs.id),
                salesforce: health::record_key(&sf.side, &sf.object, &sf.id),
                last_synced_at: l.synced_at,
                version: l.version,
                hubspot_url: p.record_url("hubspot", &hs.object, &hs.id),
                salesforce_url: p.record_url("salesforce", &sf.object, &sf.id),
            }),
        agreed: link
            .as_ref()
            .map(|l| {
                l.last_synced
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.hubspot.clone(), v.salesforce.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        status,
        other_status,
        history,
    };
    if json {
        return print_json(&card);
    }
    print_card(&card);
    Ok(())
}

fn print_card(card: &Card) {
    println!(
        "{}  (pair {})",
        card.record,
        card.pair.as_deref().unwrap_or("none: not a synced object")
    );
    if let Some(url) = &card.url {
        println!("  open: {url}");
    }
    match &card.link {
        Some(l) => {
            println!(
                "  linked: {} <-> {}  (last synced {}, version {})",
                l.hubspot,
                l.salesforce,
                time(l.last_synced_at),
                l.version
            );
        }
        None => println!("  not linked to a record on the other side"),
    }
    for (label, status) in [("status", &card.status), ("other side", &card.other_status)] {
        if let Some(s) = status {
            println!(
                "  {label}: {} {}{} at {} ({} attempts)",
                s.last.outcome.as_str(),
                s.last.direction,
                s.last
                    .code
                    .as_deref()
                    .map(|c| format!(" [{c}]"))
                    .unwrap_or_default(),
                time(s.last.at),
                s.attempts
            );
            if let Some(m) = &s.last.message {
                println!("    {m}");
            }
            if let Some(hint) = s.last.code.as_deref().and_then(health::fix_hint) {
                println!("    fix: {hint}");
            }
        }
    }
    if !card.agreed.is_empty() {
        println!("  fields, as both sides last agreed (HubSpot | Salesforce):");
        for (field, hs, sf) in &card.agreed {
            // A lookup's entry: its HubSpot association and its Salesforce field.
            let field = match field.strip_prefix(crmsync_shared::domain::merge::LOOKUP_PREFIX) {
                Some(lookup) => format!("{lookup} (lookup)"),
                None => field.clone(),
            };
            println!("    {field:<28} {hs} | {sf}");
        }
    }
    if !card.history.is_empty() {
        println!("  last outcomes, newest first:");
    }
    for e in &card.history {
        println!(
            "    {}  {} {}:{} {}{}",
            time(e.at),
            e.outcome.as_str(),
            e.record.side,
            e.record.id,
            e.direction,
            e.code
                .as_deref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default()
        );
        if let Some(linked) = e.linked {
            println!("      {}", linked.describe());
        }
        for ch in &e.changes {
            println!("      wrote {}: {} -> {}", ch.field, ch.old, ch.new);
        }
        for hb in &e.held_back {
            println!(
                "      held back {}: {}{}",
                hb.field,
                hb.reason,
                hb.detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            );
        }
        if e.outcome != Outcome::Synced
            && let Some(m) = &e.message
        {
            println!("      {m}");
        }
    }
}

/// What to sync again.
pub struct Resync {
    pub records: Vec<String>,
    pub hubspot_list: Option<String>,
    pub code: Option<String>,
}

pub async fn resync(target: &Target, what: Resync) -> Result<(), CliError> {
    let c = connect(target).await?;
    let p = &c.pipeline;
    let mut items: Vec<WorkItem> = Vec::new();
    for r in &what.records {
        let (side, object, id) = parse_record(r)?;
        if p.pair_of_record(side.as_str(), &object).is_none() {
            return Err(CliError::Usage(format!(
                "{r}: crmsync does not sync {object} (not an enabled pair's object)"
            )));
        }
        items.push(WorkItem {
            side,
            object,
            id,
            origin: "manual".into(),
            seen: None,
        });
    }
    if let Some(list) = &what.hubspot_list {
        let members = p
            .list_items(list)
            .await
            .map_err(|e| CliError::Setup(format!("HubSpot list {list}: {e}")))?;
        items.extend(members);
    }
    if let Some(code) = &what.code {
        // A code names failing records (a CRM's error) or skipped ones (a reason such
        // as `waiting_for_related`).
        let mut coded = p
            .status
            .by_outcome(Outcome::Failed, Some(code), 1_000_000)
            .await
            .map_err(state)?;
        coded.extend(
            p.status
                .by_outcome(Outcome::Skipped, Some(code), 1_000_000)
                .await
                .map_err(state)?,
        );
        for s in coded {
            let r = &s.last.record;
            if let Some(side) = Side::from_name(&r.side) {
                items.push(WorkItem {
                    side,
                    object: r.object.clone(),
                    id: r.id.clone(),
                    origin: "manual".into(),
                    seen: None,
                });
            }
        }
    }
    if items.is_empty() {
        println!("nothing to resync");
        return Ok(());
    }
    for chunk in items.chunks(500) {
        c.queue.send(chunk).await.map_err(state)?;
    }
    let paused = p.controls().await.map_err(state)?.paused.is_some();
    println!(
        "queued {} records{}",
        items.len(),
        if paused {
            " (the sync is paused: they sync on `crmsync resume`)"
        } else {
            ""
        }
    );
    Ok(())
}

pub async fn pause(target: &Target, reason: Option<String>) -> Result<(), CliError> {
    let c = connect(target).await?;
    let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let controls = c.pipeline.pause(&by, reason).await.map_err(state)?;
    if let Some(p) = controls.paused {
        println!(
            "paused since {} by {}: nothing syncs; webhooks and changes wait in the queue, nothing is dead-lettered",
            time(p.since),
            p.by
        );
    }
    Ok(())
}

pub async fn resume(target: &Target) -> Result<(), CliError> {
    let c = connect(target).await?;
    let resumed = c.pipeline.resume().await.map_err(state)?;
    match resumed.paused_for_ms {
        None => println!("not paused; broken fields will be checked again"),
        Some(ms) if resumed.reconcile => println!(
            "resumed after {}: longer than Salesforce keeps deleted records (15 days), so every record is listed and reconciled again",
            duration(ms)
        ),
        Some(ms) => println!(
            "resumed after {}: catching up from the cursors",
            duration(ms)
        ),
    }
    Ok(())
}
