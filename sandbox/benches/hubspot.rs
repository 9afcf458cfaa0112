//! HubSpot sandbox throughput, limits off: how long seeding takes and how fast batch
//! reads and updates go over loopback HTTP.
//!
//! `cargo bench -p crmsync-sandbox --bench hubspot` (set `SANDBOX_BENCH_RECORDS` to
//! change the seeded size; default 1,000,000 people, all of them HubSpot contacts).

use std::time::Instant;

use crmsync_sandbox::seed::{SeedSpec, generate};
use crmsync_sandbox::{Clock, HubSpotSandbox, HubSpotSettings};
use serde_json::{Value, json};

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let records: usize = std::env::var("SANDBOX_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let settings = HubSpotSettings {
        tokens: vec!["bench".into()],
        limits: None,
        search_lag_ms: 0,
        ..HubSpotSettings::default()
    };
    let start = Instant::now();
    let world = generate(SeedSpec {
        seed: 1,
        records,
        overlap: 1.0,
        deals: None,
    });
    let generated = start.elapsed();
    let contacts_in_hubspot = world
        .people
        .iter()
        .filter(|p| p.presence.in_hubspot())
        .count();
    drop(world);
    let start = Instant::now();
    let sandbox = match HubSpotSandbox::spawn(
        settings,
        Clock::running(),
        Some(SeedSpec {
            seed: 1,
            records,
            overlap: 1.0,
            deals: None,
        }),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start the sandbox: {e}");
            std::process::exit(1);
        }
    };
    let seeded = start.elapsed();
    println!(
        "seed: {records} people ({contacts_in_hubspot} HubSpot contacts, plus companies and deals) generated in {:.2} s, loaded in {:.2} s; RSS {:.0} MiB",
        generated.as_secs_f64(),
        seeded.as_secs_f64(),
        rss_mib()
    );

    let ids: Vec<String> = {
        let portal = crmsync_sandbox::hubspot::lock(&sandbox.state.portal);
        match portal.objects("contacts") {
            Ok(o) => o.records.keys().take(20_000).map(u64::to_string).collect(),
            Err(_) => Vec::new(),
        }
    };
    let http = reqwest::Client::new();
    let url = sandbox.url();
    let call = |path: &str, body: Value| {
        http.post(format!("{url}{path}"))
            .bearer_auth("bench")
            .json(&body)
            .send()
    };
    let start = Instant::now();
    let mut read = 0;
    for chunk in ids.chunks(100) {
        let inputs: Vec<Value> = chunk.iter().map(|id| json!({"id": id})).collect();
        match call(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": inputs, "properties": ["email", "firstname", "lastname", "phone"]}),
        )
        .await
        {
            Ok(r) if r.status().is_success() => read += chunk.len(),
            other => eprintln!("batch read failed: {other:?}"),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "batch read: {read} records in {elapsed:.2} s = {:.0} records/s (100 per call, one client)",
        read as f64 / elapsed
    );

    let start = Instant::now();
    let mut updated = 0;
    for (n, chunk) in ids.chunks(100).enumerate() {
        let inputs: Vec<Value> = chunk
            .iter()
            .map(|id| json!({"id": id, "properties": {"jobtitle": format!("Bench {n}")}}))
            .collect();
        match call(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": inputs}),
        )
        .await
        {
            Ok(r) if r.status().is_success() => updated += chunk.len(),
            other => eprintln!("batch update failed: {other:?}"),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "batch update: {updated} records in {elapsed:.2} s = {:.0} records/s (100 per call, one client)",
        updated as f64 / elapsed
    );
    println!("RSS after: {:.0} MiB", rss_mib());
}
