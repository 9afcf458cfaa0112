//! Operating a running sync: pause and resume as state (nothing queued lost or
//! dead-lettered, a pause longer than Salesforce's deletion history reconciles
//! everything), a mapped field deleted in Salesforce as one error on its pair while the
//! rest syncs, and values held back counted in health.

use std::collections::HashMap;

use crmsync_shared::domain::Side;
use crmsync_shared::domain::config::DEFAULT_TOML;
use crmsync_shared::pipeline::health;
use crmsync_shared::pipeline::worker;
use crmsync_shared::ports::{Outcome, WorkQueue};
use serde_json::json;

use super::prop;
use super::world::{HS_TOKEN, Setup, World};

async fn report(w: &World) -> health::Health {
    let store = w.runner.store.as_ref();
    health::report(&w.runner.pipeline, store, Some(store))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn lead_of(w: &World, email: &str) -> serde_json::Value {
    let leads = w.sf_by_email("Lead", email).await;
    assert_eq!(leads.len(), 1, "one lead for {email}: {leads:?}");
    leads[0].clone()
}

/// A pause as long as 1,000 edits take: webhooks keep arriving and are queued, the
/// workers and the poller keep running and take nothing, nothing is dead-lettered;
/// after resume every edit's last value is on the other side.
#[tokio::test]
async fn a_pause_of_a_thousand_edits_loses_nothing() {
    let w = World::start(Setup::default()).await;
    const PEOPLE: usize = 50;
    let mut contacts = Vec::new();
    for n in 0..PEOPLE {
        let email = format!("paused{n}@example.org");
        let id = w
            .hs_create(
                json!({"email": email, "lastname": format!("Paused {n}"), "jobtitle": "Start"}),
            )
            .await;
        contacts.push((id, email));
    }
    w.sync().await;
    let mut leads = Vec::new();
    for (_, email) in &contacts {
        leads.push(
            lead_of(&w, email).await["Id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }

    let pipeline = &w.runner.pipeline;
    pipeline
        .pause("admin", Some("data migration".into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut titles: HashMap<usize, String> = HashMap::new();
    let mut phones: HashMap<usize, String> = HashMap::new();
    for edit in 0..1_000 {
        let n = edit % PEOPLE;
        if edit % 4 == 3 {
            // A quarter of the edits are made in Salesforce.
            let phone = format!("+1 555 {edit:04}");
            w.sf_update("Lead", &leads[n], json!({"Phone": phone}))
                .await;
            phones.insert(n, phone);
        } else {
            let title = format!("Title {edit}");
            w.hs_update(&contacts[n].0, json!({"jobtitle": title}))
                .await;
            titles.insert(n, title);
        }
        w.advance(1_000);
        if edit % 50 == 49 {
            // The running processes meanwhile: workers and the poller find the sync
            // paused and take nothing, however long it lasts.
            let round = worker::run_once(pipeline, w.runner.store.as_ref(), 100)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(round.paused && round.received == 0, "{round:?}");
            let polled = w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
            assert!(polled.paused);
            w.advance(5 * 60_000);
        }
    }
    w.assert_no_dead_letters().await;
    let depth = w.queue_depth().await;
    assert!(
        depth.waiting > 0,
        "pushes were queued while paused: {depth:?}"
    );
    assert_eq!(depth.in_flight, 0, "nothing was taken while paused");
    let h = report(&w).await;
    assert_eq!(h.paused.as_ref().map(|p| p.by.as_str()), Some("admin"));
    // Nothing moved while paused.
    assert_eq!(lead_of(&w, &contacts[0].1).await["Title"], json!("Start"));

    let resumed = pipeline.resume().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(resumed.paused_for_ms.is_some_and(|ms| ms > 1_000_000));
    assert!(
        !resumed.reconcile,
        "a pause of hours catches up from the cursors"
    );
    w.sync().await;
    for (n, (id, email)) in contacts.iter().enumerate() {
        let lead = lead_of(&w, email).await;
        if let Some(title) = titles.get(&n) {
            assert_eq!(lead["Title"], json!(title), "{email}");
        }
        if let Some(phone) = phones.get(&n) {
            let contact = w
                .hs_contacts()
                .await
                .into_iter()
                .find(|c| c["id"] == json!(id))
                .unwrap_or_else(|| panic!("{email} is gone"));
            assert_eq!(prop(&contact, "phone"), &json!(phone), "{email}");
        }
    }
    w.assert_no_dead_letters().await;
    assert!(report(&w).await.paused.is_none());
}

/// A pause longer than Salesforce keeps deleted records (15 days) resumes with a full
/// reconcile: every record is listed again, not only what the cursors would read.
#[tokio::test]
async fn a_pause_past_the_deletion_window_reconciles_everything() {
    let w = World::start(Setup::default()).await;
    for n in 0..5 {
        w.hs_create(json!({"email": format!("long{n}@example.org"), "lastname": "Long"}))
            .await;
    }
    w.sync().await;
    let pipeline = &w.runner.pipeline;
    let resumed = w.resume_after_a_long_pause().await;
    assert!(resumed.reconcile, "{resumed:?}");
    let polled = w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
    // Nothing changed, yet every lead is listed again, which no cursor read (its
    // overlap re-reads the last change only) would queue. (The feed's overlap and the
    // listing may both queue the last lead, or the queue may take them as one: five at
    // least.)
    let leads = polled
        .feeds
        .get("salesforce:Lead")
        .map_or(0, |f| f.enqueued);
    assert!(leads >= 5, "a reconcile lists every lead: {polled:?}");
    w.settle().await;

    // A short pause catches up from the cursors: nothing changed, nothing queued.
    pipeline
        .pause("admin", None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.advance(60_000);
    let resumed = pipeline.resume().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!resumed.reconcile);
    w.advance(5 * 60_000);
    let polled = w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(polled.enqueued(), 0, "{polled:?}");
}

/// A mapped field an admin deleted in Salesforce: the pair keeps syncing its other
/// fields, health shows one broken mapping on the pair, no record fails and nothing
/// is dead-lettered.
#[tokio::test]
async fn a_field_deleted_in_salesforce_breaks_only_that_field() {
    let w = World::start(Setup::default()).await;
    let id = w
        .hs_create(json!({"email": "gone@example.org", "lastname": "Gone", "jobtitle": "CTO", "phone": "+1 555 0100"}))
        .await;
    w.sync().await;
    assert_eq!(lead_of(&w, "gone@example.org").await["Title"], json!("CTO"));

    let deleted = w
        .http
        .delete(w.sf_control("/schema/Lead/fields/Title"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(deleted.status().is_success());
    w.hs_update(&id, json!({"jobtitle": "CEO", "phone": "+1 555 0199"}))
        .await;
    w.sync().await;

    let lead = lead_of(&w, "gone@example.org").await;
    assert_eq!(lead["Phone"], json!("+1 555 0199"), "the other fields sync");
    let h = report(&w).await;
    assert_eq!(h.broken_fields.len(), 1, "{:?}", h.broken_fields);
    let b = &h.broken_fields[0];
    assert_eq!(
        (b.pair.as_str(), b.object.as_str(), b.field.as_str()),
        ("contacts", "Lead", "Title")
    );
    assert!(h.failing_by_code.is_empty(), "{:?}", h.failing_by_code);
    w.assert_no_dead_letters().await;
    // The HubSpot value stays: a field gone on one side is no blank to copy back.
    let contact = w.hs_contact_by_email("gone@example.org").await;
    assert_eq!(
        contact.as_ref().map(|c| prop(c, "jobtitle").clone()),
        Some(json!("CEO"))
    );

    // A resume checks again: the field is still gone, so it stays broken.
    w.runner
        .pipeline
        .resume()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.hs_update(&id, json!({"phone": "+1 555 0142"})).await;
    w.sync().await;
    assert_eq!(
        lead_of(&w, "gone@example.org").await["Phone"],
        json!("+1 555 0142")
    );
    assert_eq!(report(&w).await.broken_fields.len(), 1);
}

/// A value too long for its Salesforce field is held back, the record still syncs,
/// and health counts it by reason.
#[tokio::test]
async fn held_back_values_show_in_health() {
    let w = World::start(Setup::default()).await;
    let id = w
        .hs_create(
            json!({"email": "long@example.org", "lastname": "Long", "jobtitle": "x".repeat(300)}),
        )
        .await;
    w.sync().await;
    let h = report(&w).await;
    assert_eq!(
        h.held_back_by_reason.get("would_truncate"),
        Some(&1),
        "{h:?}"
    );
    let status = w
        .status("hubspot", "contacts", &id)
        .await
        .unwrap_or_else(|| panic!("no status"));
    assert_eq!(status.last.held_back.len(), 1, "{status:?}");
    assert_eq!(status.last.held_back[0].field, "jobtitle");
}

/// A mapped custom property an admin archived in HubSpot: reads leave it out (it would
/// look blank), so it is found by reading the metadata again; the pair syncs its other
/// fields, the Salesforce value is not blanked, and health names the broken mapping.
#[tokio::test]
async fn a_property_deleted_in_hubspot_breaks_only_that_field() {
    let mut config = DEFAULT_TOML.to_owned();
    config.push_str(
        "\n[[contacts.fields]]\nhubspot = \"favorite_color\"\nsalesforce = { lead = \"Industry\" }\n",
    );
    let w = World::start(Setup {
        config,
        ..Setup::default()
    })
    .await;
    let property = json!({"name": "favorite_color", "label": "Favorite color", "type": "string", "fieldType": "text", "groupName": "contactinformation"});
    let created = w
        .http
        .post(format!("{}/crm/v3/properties/contacts", w.hs.url()))
        .bearer_auth(HS_TOKEN)
        .json(&property)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(created.status().is_success(), "{}", created.status());
    let id = w
        .hs_create(
            json!({"email": "color@example.org", "lastname": "Color", "favorite_color": "Retail"}),
        )
        .await;
    w.sync().await;
    let first = lead_of(&w, "color@example.org").await;
    let status = w.status("hubspot", "contacts", &id).await;
    assert_eq!(first["Industry"], json!("Retail"), "{first} {status:?}");

    let archived = w
        .http
        .delete(format!(
            "{}/crm/v3/properties/contacts/favorite_color",
            w.hs.url()
        ))
        .bearer_auth(HS_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(archived.status().as_u16(), 204);
    // Past the metadata's time to live, a change syncs without the property.
    w.advance(crmsync_shared::pipeline::METADATA_TTL_MS + 1_000);
    w.hs_update(&id, json!({"phone": "+1 555 0177"})).await;
    w.sync().await;
    let lead = lead_of(&w, "color@example.org").await;
    assert_eq!(lead["Phone"], json!("+1 555 0177"));
    assert_eq!(lead["Industry"], json!("Retail"), "not blanked");
    let h = report(&w).await;
    assert!(
        h.broken_fields
            .iter()
            .any(|b| b.side == Side::HubSpot && b.field == "favorite_color"),
        "{:?}",
        h.broken_fields
    );
    assert!(h.failing_by_code.is_empty(), "{:?}", h.failing_by_code);

    // A Salesforce change to the field has nowhere to go, and fails nothing.
    let lead_id = lead["Id"].as_str().unwrap_or_default().to_owned();
    w.sf_update(
        "Lead",
        &lead_id,
        json!({"Industry": "Banking", "Phone": "+1 555 0188"}),
    )
    .await;
    w.sync().await;
    let contact = w.hs_contact_by_email("color@example.org").await;
    assert_eq!(
        contact.as_ref().map(|c| prop(c, "phone").clone()),
        Some(json!("+1 555 0188"))
    );
    assert!(report(&w).await.failing_by_code.is_empty());
    w.assert_no_dead_letters().await;
}

/// A change that meets a passing failure on every attempt (Salesforce down for longer
/// than the queue's five receives) is not dropped silently: its last attempt records
/// why on the record before the reference goes to the dead letters, `crmsync errors`
/// lists it under RETRIES_EXHAUSTED with what to do, and its next sync replaces that.
#[tokio::test]
async fn a_dead_lettered_change_says_why_on_its_record() {
    // By polling, so the change is queued exactly once before the outage.
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    let contact = w
        .hs_create(json!({"email": "dead-lettered@example.org", "lastname": "Down"}))
        .await;
    w.advance(super::world::SEARCH_LAG_MS + 1_000);
    w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
    w.post(
        &w.sf_control("/faults"),
        json!({"faults": [{"status": 503}], "repeat": 100_000}),
    )
    .await;
    w.settle().await;
    let dead = w
        .runner
        .store
        .dead_letters()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        dead.iter().any(|d| d.id == contact),
        "dead-lettered: {dead:?}"
    );
    let status = w
        .status("hubspot", "contacts", &contact)
        .await
        .unwrap_or_else(|| panic!("the dead-lettered contact has no status"));
    assert_eq!(status.last.outcome, Outcome::Failed);
    assert_eq!(status.last.code.as_deref(), Some(health::RETRIES_EXHAUSTED));
    let message = status.last.message.clone().unwrap_or_default();
    assert!(
        message.contains("5 attempts") && message.contains("dead letters"),
        "{message}"
    );
    let groups = health::errors(
        &w.runner.pipeline,
        Some(health::RETRIES_EXHAUSTED),
        None,
        10,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert!(groups[0].hint.is_some());
    assert!(
        groups[0].failing[0].record.ends_with(&contact),
        "{groups:?}"
    );

    // The outage ends; the contact's next change syncs and replaces the failure.
    w.delete(&w.sf_control("/faults")).await;
    w.hs_update(&contact, json!({"jobtitle": "Back"})).await;
    w.sync().await;
    assert_eq!(
        lead_of(&w, "dead-lettered@example.org").await["Title"],
        json!("Back")
    );
    let (outcome, _) = w.last_outcome("hubspot", "contacts", &contact).await;
    assert_eq!(outcome, Outcome::Synced);
}
