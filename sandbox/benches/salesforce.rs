//! Salesforce sandbox throughput, limits off: seeding time and memory, and SOQL paging
//! over loopback HTTP.
//!
//! `cargo bench -p crmsync-sandbox --bench salesforce` (set `SANDBOX_BENCH_RECORDS` to
//! change the seeded size; default 1,500,000 people: about 1,000,000 contacts and
//! 500,000 leads).

use std::time::Instant;

use crmsync_sandbox::salesforce::SalesforceSettings;
use crmsync_sandbox::seed::SeedSpec;
use crmsync_sandbox::{Clock, SalesforceSandbox};
use serde_json::Value;

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
        .unwrap_or(1_500_000);
    let settings = SalesforceSettings {
        tokens: vec!["bench".into()],
        daily_api_limit: None,
        ..SalesforceSettings::default()
    };
    let start = Instant::now();
    let sandbox = match SalesforceSandbox::spawn(
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
    let loaded = start.elapsed().as_secs_f64();
    let (contacts, leads) = {
        let org = crmsync_sandbox::hubspot::lock(&sandbox.state.org);
        (org.count("Contact"), org.count("Lead"))
    };
    println!(
        "seed: {records} people ({contacts} contacts, {leads} leads, plus accounts and opportunities) loaded in {loaded:.2} s; RSS {:.0} MiB",
        rss_mib()
    );

    let http = reqwest::Client::new();
    let base = sandbox.url();
    let q = "SELECT Id, FirstName, LastName, Email, Phone, AccountId, SystemModstamp FROM Contact";
    let mut url = format!(
        "{base}/services/data/v65.0/query?{}",
        serde_urlencoded::to_string([("q", q)]).unwrap_or_default()
    );
    let start = Instant::now();
    let (mut read, mut calls) = (0usize, 0usize);
    let wanted = 200_000.min(contacts);
    while read < wanted {
        let page: Value = match http.get(&url).bearer_auth("bench").send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(e) => {
                eprintln!("query failed: {e}");
                break;
            }
        };
        calls += 1;
        read += page["records"].as_array().map_or(0, Vec::len);
        match page["nextRecordsUrl"].as_str() {
            Some(next) => url = format!("{base}{next}"),
            None => break,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "SOQL paging: {read} contacts in {calls} calls, {elapsed:.2} s = {:.0} records/s (2,000 per page, one client)",
        read as f64 / elapsed
    );
    println!("RSS after: {:.0} MiB", rss_mib());
}
