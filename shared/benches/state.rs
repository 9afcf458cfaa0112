//! Link lookups and updates on the embedded store (ops/s).
//!
//! `cargo bench -p crmsync-shared --bench state`

use std::sync::Arc;
use std::time::Instant;

use crmsync_shared::adapters::sqlite::SqliteStore;
use crmsync_shared::domain::merge::{LastSynced, SyncedField};
use crmsync_shared::ports::{Link, LinkStore, SystemClock};
use serde_json::json;

const LINKS: usize = 20_000;

fn last_synced() -> LastSynced {
    (0..12)
        .map(|i| {
            (
                format!("prop_{i}"),
                SyncedField {
                    hubspot: json!(format!("value {i}")),
                    salesforce: json!(format!("value {i}")),
                    held: None,
                },
            )
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let path = std::env::temp_dir().join(format!("crmsync-bench-{}.sqlite", std::process::id()));
    let store = match SqliteStore::open(&path, Arc::new(SystemClock), 5) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let template = last_synced();
    let start = Instant::now();
    let mut links = Vec::with_capacity(LINKS);
    for i in 0..LINKS {
        let link = Link {
            pair: "contacts".into(),
            hubspot_id: i.to_string(),
            salesforce_object: "Contact".into(),
            salesforce_id: format!("0038M{i:013}"),
            last_synced: template.clone(),
            synced_at: 0,
            hubspot_read_at: None,
            version: 0,
        };
        match store.create(&link).await {
            Ok(l) => links.push(l),
            Err(e) => eprintln!("create failed: {e}"),
        }
    }
    report("create", start);
    let start = Instant::now();
    for i in 0..LINKS {
        let _ = store.by_hubspot("contacts", &i.to_string()).await;
    }
    report("lookup by HubSpot id", start);
    let start = Instant::now();
    for i in 0..LINKS {
        let _ = store
            .by_salesforce("Contact", &format!("0038M{i:013}"))
            .await;
    }
    report("lookup by Salesforce id", start);
    let start = Instant::now();
    for link in &links {
        let _ = store.update(link).await;
    }
    report("update (versioned)", start);
    let _ = std::fs::remove_file(&path);
}

fn report(what: &str, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{what}: {LINKS} in {secs:.2} s = {:.0} ops/s",
        LINKS as f64 / secs
    );
}
