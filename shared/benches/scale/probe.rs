//! The worker's peak memory for one batch: a child process (this bench, run again with
//! `SCALE_PROBE_*` set) builds the pipeline, lists both sandboxes into its queue and
//! syncs one batch of the first references, then reports its peak resident set. The
//! sandboxes live in the parent, so the figure is the engine's alone.

use serde_json::{Value, json};

use crmsync_sandbox::seed::SeedSpec;
use crmsync_shared::pipeline::worker;

use super::{Sandboxes, Settings};

const HUBSPOT: &str = "SCALE_PROBE_HUBSPOT";
const SALESFORCE: &str = "SCALE_PROBE_SALESFORCE";
const BATCH: &str = "SCALE_PROBE_BATCH";

#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub batch: usize,
    /// References the batch held.
    pub received: u64,
    /// Resident set before the batch (after the listing) and at its peak, in KiB.
    pub before_kib: u64,
    pub peak_kib: u64,
}

pub fn is_child() -> bool {
    std::env::var_os(HUBSPOT).is_some()
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub async fn child() -> Result<(), String> {
    let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
    let batch: usize = var(BATCH)?
        .parse()
        .map_err(|_| format!("{BATCH} is not a number"))?;
    let state = super::State::embedded()?;
    let pipeline = super::pipeline(var(HUBSPOT)?, var(SALESFORCE)?, &state, 1).await?;
    let (queue, cursors) = (state.queue(), state.cursors());
    pipeline
        .poll(cursors.as_ref(), queue.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    let (before, _) = memory();
    let round = worker::run_once(&pipeline, queue.as_ref(), batch)
        .await
        .map_err(|e| e.to_string())?;
    let (_, peak) = memory();
    println!(
        "{}",
        json!({"received": round.received, "before_kib": before, "peak_kib": peak})
    );
    Ok(())
}

/// Runs the child against fresh sandboxes seeded for one batch.
pub async fn measure(settings: &Settings) -> Result<Probe, String> {
    let seed = SeedSpec {
        seed: 5,
        records: settings.probe_batch * 3 / 2,
        overlap: 1.0 / 3.0,
        deals: None,
    };
    let s = Sandboxes::start(0, seed).await?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    eprintln!("memory probe: one batch of {}...", settings.probe_batch);
    let mut command = std::process::Command::new(exe);
    command
        .env(HUBSPOT, s.hs.url())
        .env(SALESFORCE, s.sf.url())
        .env(BATCH, settings.probe_batch.to_string());
    // The sandboxes keep serving on the runtime while this thread waits.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "the probe failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).map_err(|e| format!("probe said {line:?}: {e}"))?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    Ok(Probe {
        batch: settings.probe_batch,
        received: n("received"),
        before_kib: n("before_kib"),
        peak_kib: n("peak_kib"),
    })
}
