//! `crmsync import salesforce:Lead` at the pipeline: 5,000 Leads loaded into Salesforce
//! reach HubSpot by the import alone, through an interruption (the process stops after
//! its first chunk, a worker crashes between its HubSpot write and the link), each once.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::world::{Setup, World};
use crmsync_shared::pipeline::import::ImportStart;

const LEADS: usize = 5_000;

#[tokio::test]
async fn an_import_of_5000_leads_resumes_after_an_interruption_and_creates_no_duplicate() {
    // Pushes off: the Leads must reach HubSpot by the import, not by their outbound
    // messages. Search lag, expiring tokens and rate limits stay on.
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    w.sync().await;
    // A hundred of them are HubSpot contacts already; ten have no email.
    for i in 0..100 {
        w.hs_create(json!({"email": format!("lead{i}@import.example"), "lastname": "Known"}))
            .await;
    }
    let mut rows: Vec<Value> = (0..LEADS)
        .map(|i| json!({"LastName": format!("Lead {i}"), "Email": format!("lead{i}@import.example"), "Company": "Imported"}))
        .collect();
    rows.extend(
        (0..10).map(|i| json!({"LastName": format!("Nameless {i}"), "Company": "Imported"})),
    );
    w.post(
        &w.sf_control("/objects/Lead/load"),
        json!({"records": rows}),
    )
    .await;

    let pipeline = &w.runner.pipeline;
    let store = w.runner.store.as_ref();
    let (start, since) = pipeline
        .start_import(store, "Lead")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(start, ImportStart::Started);
    assert_eq!(
        pipeline
            .import_total("Lead")
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        (LEADS + 10) as u64
    );
    let first = pipeline
        .import_chunk(store, store, "Lead")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(first.queued > 0 && !first.listed_all, "{first:?}");
    // A worker crashes after a HubSpot write, before the link: its batch comes back.
    if let Ok(mut armed) = pipeline.crash_once.lock() {
        *armed = Some("after_crm_write:contacts".into());
    }
    w.settle().await;
    assert!(
        pipeline.crash_once.lock().is_ok_and(|a| a.is_none()),
        "the crash never happened"
    );

    // The process starts again: the import carries on from its checkpoint.
    let (again, at) = pipeline
        .start_import(store, "Lead")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((again, at), (ImportStart::Resumed, since));
    let mut listed = first.queued;
    loop {
        let step = pipeline
            .import_chunk(store, store, "Lead")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        listed += step.queued;
        w.settle().await;
        if step.listed_all {
            break;
        }
    }
    assert_eq!(listed, LEADS + 10, "each Lead listed once");
    w.assert_no_dead_letters().await;

    let contacts = w.hs_contacts().await;
    let emails: Vec<&str> = contacts
        .iter()
        .filter_map(|c| c["properties"]["email"].as_str())
        .filter(|e| e.ends_with("@import.example"))
        .collect();
    let distinct: HashSet<&&str> = emails.iter().collect();
    assert_eq!(
        emails.len(),
        LEADS,
        "a Lead without its contact, or a duplicate"
    );
    assert_eq!(distinct.len(), LEADS);
    let summary = pipeline
        .import_summary("Lead", since)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.records, (LEADS + 10) as u64, "{summary:?}");
    assert_eq!(summary.created, (LEADS - 100) as u64, "{summary:?}");
    assert_eq!(summary.linked, 100, "{summary:?}");
    assert_eq!(summary.skipped.get("no_email"), Some(&10), "{summary:?}");
    assert_eq!(summary.waiting, 0, "{summary:?}");
    pipeline
        .finish_import(store, "Lead")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (next, _) = pipeline
        .start_import(store, "Lead")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next, ImportStart::Started, "a finished import starts over");
}
