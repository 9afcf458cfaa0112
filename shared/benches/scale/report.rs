//! The run's figures as one Markdown section: printed, and appended to BENCHMARKS.md
//! with the command and the machine that produced them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::Settings;
use super::floor::Floor;
use super::initial::{Calls, Initial};
use super::probe::Probe;
use super::steady::{Phase, percentile};

pub struct Report {
    settings: Settings,
    pub floor: Floor,
    pub initial: Option<Initial>,
    /// The same initial sync on DynamoDB and SQS.
    pub durable: Option<Initial>,
    pub steady: Vec<Phase>,
    pub probe: Option<Probe>,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or_else(String::new, |kib| {
            format!(", {:.1} GiB", kib as f64 / 1024.0 / 1024.0)
        });
    format!("{cpu}, {cores} cores{memory}")
}

fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown commit".into();
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head} (uncommitted changes)")
    } else {
        head
    }
}

fn ratio(ours: f64, floor: f64) -> String {
    if floor > 0.0 {
        format!("{:.1}x", ours / floor)
    } else {
        "-".into()
    }
}

fn ms(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v} ms"))
}

fn endpoints(out: &mut String, crm: &str, calls: &Calls) {
    let mut top: Vec<(&String, &u64)> = calls.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1));
    let _ = writeln!(out, "\n| {crm} endpoint | calls |\n|---|---:|");
    for (endpoint, n) in top {
        let _ = writeln!(out, "| `{endpoint}` | {n} |");
    }
}

impl Report {
    pub fn new(settings: &Settings) -> Report {
        Report {
            settings: settings.clone(),
            floor: Floor::default(),
            initial: None,
            durable: None,
            steady: Vec::new(),
            probe: None,
        }
    }

    pub fn markdown(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## {} · {} · {} people per side\n\n{}\n\n`{}`\n",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            commit(),
            s.people,
            machine(),
            s.command()
        );
        let _ = writeln!(
            out,
            "Sandboxes strict (HubSpot 190 calls per 10 s, search 5/s and its lag, the \
             Salesforce daily allowance), {} ms added per call; {}, batches of {}, \
             polling every {} ms, webhooks and outbound messages on.\n",
            s.latency_ms,
            if s.processes > 1 {
                format!(
                    "{} worker processes as Lambda runs them (one worker each, each with its \
                     own clients and 1/{} of HubSpot's allowance)",
                    s.processes, s.processes
                )
            } else {
                format!("{} workers in one process sharing one client", s.workers)
            },
            s.batch,
            s.poll.as_millis()
        );
        self.initial_sync(&mut out);
        self.durable(&mut out);
        self.steady_state(&mut out);
        if let Some(p) = &self.probe {
            let _ = writeln!(
                out,
                "\n### Worker memory\n\nOne batch of {} references ({} received, a fresh \
                 store, both CRMs listed first): resident {:.1} MiB before the batch, peak \
                 {:.1} MiB.",
                p.batch,
                p.received,
                p.before_kib as f64 / 1024.0,
                p.peak_kib as f64 / 1024.0
            );
        }
        out
    }

    fn initial_sync(&self, out: &mut String) {
        let f = &self.floor;
        let Some(i) = &self.initial else {
            return;
        };
        let hs: u64 = i.hubspot.values().sum();
        let sf: u64 = i.salesforce.values().sum();
        let total = i.total();
        let pairs = total.synced + total.skipped + total.failed;
        let expected = f.pairs();
        let _ = writeln!(
            out,
            "### Initial sync\n\n{} contacts, {} companies, {} deals in HubSpot; {} leads, {} \
             contacts, {} accounts, {} opportunities in Salesforce; {} record pairs when \
             synced.{}\n",
            f.contacts.hubspot,
            f.companies.hubspot,
            f.deals.hubspot,
            f.contacts.salesforce[1],
            f.contacts.salesforce[0],
            f.companies.salesforce[0],
            f.deals.salesforce[0],
            expected,
            if i.converged {
                ""
            } else {
                " **Did not settle before the timeout.**"
            }
        );
        let _ = writeln!(out, "| | crmsync | floor | ratio |\n|---|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| wall time (to the last write) | {:.0} s | {:.0} s | {} |",
            i.seconds,
            f.seconds(),
            ratio(i.seconds, f.seconds())
        );
        let _ = writeln!(
            out,
            "| HubSpot calls | {hs} | {} | {} |",
            f.hubspot_calls,
            ratio(hs as f64, f.hubspot_calls as f64)
        );
        let _ = writeln!(
            out,
            "| Salesforce calls | {sf} | {} | {} |",
            f.salesforce_calls,
            ratio(sf as f64, f.salesforce_calls as f64)
        );
        let _ = writeln!(
            out,
            "| HubSpot calls per record pair | {:.3} | {:.3} | |",
            hs as f64 / expected.max(1) as f64,
            f.hubspot_calls as f64 / expected.max(1) as f64
        );
        // Each side lists its own records: one reference per record is the listing's.
        let records = f.contacts.hubspot
            + f.companies.hubspot
            + f.deals.hubspot
            + f.contacts.salesforce[0]
            + f.contacts.salesforce[1]
            + f.companies.salesforce[0]
            + f.deals.salesforce[0];
        let _ = writeln!(
            out,
            "| queue peak (references waiting or in flight) | {} ({:.2} per record on either side, {:.2} per record pair) | | |",
            i.peak_queue,
            i.peak_queue as f64 / records.max(1) as f64,
            i.peak_queue as f64 / expected.max(1) as f64
        );
        let _ = writeln!(
            out,
            "| HubSpot 429 answers | {} | 0 | |",
            count_by_endpoint(&i.hubspot_429)
        );
        let _ = writeln!(
            out,
            "| records by last outcome | {} synced, {} skipped, {} failed | | |",
            total.synced, total.skipped, total.failed
        );
        let _ = writeln!(out, "\nRecords by object: {}", {
            let parts: Vec<String> = i
                .outcomes
                .iter()
                .map(|(o, c)| format!("{o} {}/{}/{}", c.synced, c.skipped, c.failed))
                .collect();
            format!(
                "{} (synced/skipped/failed; {pairs} in all).",
                parts.join(", ")
            )
        });
        for (object, count, example) in &i.duplicates {
            let _ = writeln!(
                out,
                "HubSpot {object} sharing their key with another: {count}{}",
                if example.is_empty() {
                    ".".to_owned()
                } else {
                    format!(" (for one, {example})")
                }
            );
        }
        if !i.skipped.is_empty() {
            let reasons: Vec<String> = i
                .skipped
                .iter()
                .map(|(c, n, _)| format!("{c} {n}"))
                .collect();
            let _ = writeln!(out, "Skipped by reason: {}.", reasons.join(", "));
            for (code, _, example) in &i.skipped {
                let _ = writeln!(out, "- {code}, for one: {example}");
            }
        }
        for f in &i.failures {
            let _ = writeln!(out, "- failed: {f}");
        }
        let (hs_after, sf_after, seconds) = i.after_last_write;
        let _ = writeln!(
            out,
            "\nCalls are counted to the last write (at the counters' first sample after \
             it, taken each second). From there until the queue was quiet ({seconds:.0} s: \
             references waiting on records that never sync use their retries), polling \
             made {hs_after} HubSpot and {sf_after} Salesforce calls more."
        );
        endpoints(out, "HubSpot", &i.hubspot);
        endpoints(out, "Salesforce", &i.salesforce);
    }

    /// The initial sync on each store, side by side.
    fn durable(&self, out: &mut String) {
        let (Some(embedded), Some(durable)) = (&self.initial, &self.durable) else {
            return;
        };
        let _ = writeln!(
            out,
            "\n### Initial sync by store\n\nThe same sync again on fresh sandboxes, its \
             state in DynamoDB and its queue on SQS (moto's server on this machine, as the \
             Lambda functions use them) instead of the embedded store.\n\n\
             | store | wall time | HubSpot calls | Salesforce calls | queue peak | synced / skipped / failed |\n\
             |---|---:|---:|---:|---:|---|"
        );
        for (name, i) in [("embedded (SQLite)", embedded), ("DynamoDB + SQS", durable)] {
            let t = i.total();
            let _ = writeln!(
                out,
                "| {name} | {:.0} s{} | {} | {} | {} | {} / {} / {} |",
                i.seconds,
                if i.converged { "" } else { " (did not settle)" },
                i.hubspot.values().sum::<u64>(),
                i.salesforce.values().sum::<u64>(),
                i.peak_queue,
                t.synced,
                t.skipped,
                t.failed
            );
        }
    }

    fn steady_state(&self, out: &mut String) {
        if self.steady.is_empty() {
            return;
        }
        let s = &self.settings;
        let _ = writeln!(
            out,
            "\n### Steady state\n\n{} edits per second for {} s per phase, each on a synced \
             contact's job title, half in HubSpot and half in Salesforce; one in 20 edits the \
             same field on both sides at once (no latency measured for those). Latency: from \
             the edit to the other side's write.\n",
            s.edits_per_second, s.steady_seconds
        );
        let _ = writeln!(
            out,
            "| phase | edits | p50 | p95 | p99 | HubSpot→Salesforce p50 | Salesforce→HubSpot p50 | never arrived | writes per edit | echoes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for p in &self.steady {
            let all = p.latencies();
            let sorted = |v: &[i64]| {
                let mut v = v.to_vec();
                v.sort_unstable();
                v
            };
            let _ = writeln!(
                out,
                "| {}{} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
                p.name,
                if p.settled { "" } else { " (did not settle)" },
                p.edits,
                ms(percentile(&all, 50.0)),
                ms(percentile(&all, 95.0)),
                ms(percentile(&all, 99.0)),
                ms(percentile(&sorted(&p.hubspot_to_salesforce), 50.0)),
                ms(percentile(&sorted(&p.salesforce_to_hubspot), 50.0)),
                p.missing,
                p.writes as f64 / (p.edits + p.conflicts).max(1) as f64,
                p.echoes
            );
        }
        // What the stream cost, and where: a call per edit is the budget HubSpot's
        // allowance sets at 20 edits/s (19 calls/s).
        for p in &self.steady {
            let edits = (p.edits + p.conflicts).max(1) as f64;
            let listed = |calls: &super::initial::Calls| {
                let mut v: Vec<(&String, &u64)> = calls.iter().collect();
                v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                v.iter()
                    .map(|(k, n)| format!("`{k}` {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let total = |calls: &super::initial::Calls| calls.values().sum::<u64>();
            let _ = writeln!(
                out,
                "\n{}: {} HubSpot calls ({:.2} per edit; {}), {} Salesforce calls ({:.2} per edit; {}), from the first edit until settled.",
                p.name,
                total(&p.hubspot),
                total(&p.hubspot) as f64 / edits,
                listed(&p.hubspot),
                total(&p.salesforce),
                total(&p.salesforce) as f64 / edits,
                listed(&p.salesforce),
            );
        }
    }
}

/// Appends a section to the benchmark log, creating it with its header.
pub fn append(path: &Path, text: &str) -> Result<(), String> {
    let fresh = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut body = String::new();
    if fresh {
        body.push_str(
            "# Benchmarks\n\nFigures printed by `cargo bench -p crmsync-shared --bench scale` \
             (shared/benches/scale), newest last; each section names its command, commit and \
             machine.\n\n",
        );
    }
    body.push_str(text);
    body.push('\n');
    file.write_all(body.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `3 (POST /crm/v3/objects/contacts/search 2, ...)`, or `0`.
fn count_by_endpoint(calls: &std::collections::BTreeMap<String, u64>) -> String {
    let total: u64 = calls.values().sum();
    if total == 0 {
        return "0".into();
    }
    let each: Vec<String> = calls.iter().map(|(e, n)| format!("`{e}` {n}")).collect();
    format!("{total} ({})", each.join(", "))
}
