//! Activities end to end: a HubSpot email logged on a synced contact becomes one Task on
//! its Contact and Account, through duplicated webhooks and a worker crash after the
//! write; a Salesforce Task becomes a HubSpot task on the right contact and neither is
//! copied back; an activity whose contact does not sync waits or is skipped, as set.

use serde_json::{Value, json};

use super::world::{Setup, World};
use super::{config, prop};
use crmsync_shared::ports::Outcome;

const ACTIVITIES_OFF: &str = "[activities]\nenabled = false\n";

fn activities(extra: &str) -> String {
    config(&[(
        ACTIVITIES_OFF,
        &format!("[activities]\nenabled = true\nsalesforce_tasks_to_hubspot = true\n{extra}"),
    )])
}

async fn world(push: bool, extra: &str) -> World {
    let w = World::start(Setup {
        config: activities(extra),
        push,
        ..Setup::default()
    })
    .await;
    if push {
        let outbound = w.send_get(&w.sf_control("/outbound")).await;
        let mut objects: Vec<Value> = outbound["objects"].as_array().cloned().unwrap_or_default();
        objects.push(json!("Task"));
        w.put(&w.sf_control("/outbound"), json!({"objects": objects}))
            .await;
    }
    w
}

async fn tasks(w: &World) -> Vec<Value> {
    w.sf_records("Task").await
}

async fn email_becomes_one_task(push: bool) {
    let w = world(push, "").await;
    if push {
        // Every webhook comes twice.
        w.put(&w.hs_control("/webhooks"), json!({"duplicate_rate": 1.0}))
            .await;
    }
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Globex", "Website": "globex.example"}),
        )
        .await;
    let contact = w
        .sf_create(
            "Contact",
            json!({"LastName": "Simpson", "Email": "homer@globex.example", "AccountId": account}),
        )
        .await;
    w.sync().await;
    let c = w
        .hs_contact_by_email("homer@globex.example")
        .await
        .unwrap_or_else(|| panic!("the Contact made no contact"));
    let contact_id = c["id"].as_str().unwrap_or_default().to_owned();

    w.advance(60_000);
    let email = w
        .hs_create_object(
            "emails",
            json!({"hs_email_subject": "Re: your quote", "hs_email_text": "<p>Numbers attached &amp; signed</p>", "hs_timestamp": "2024-05-03T10:00:00.000Z", "hs_email_direction": "EMAIL"}),
        )
        .await;
    w.hs_person_associates("emails", &email, "contacts", &contact_id)
        .await;
    // The worker that writes the Task dies before it can say so: its batch comes back.
    if let Ok(mut armed) = w.runner.pipeline.crash_once.lock() {
        *armed = Some("after_activity_write:emails".into());
    }
    w.sync().await;
    assert!(
        w.runner
            .pipeline
            .crash_once
            .lock()
            .is_ok_and(|a| a.is_none()),
        "the crash never happened"
    );
    let all = tasks(&w).await;
    assert_eq!(all.len(), 1, "one Task, whatever came twice: {all:?}");
    let task = &all[0];
    assert_eq!(task["Subject"], "Re: your quote");
    assert_eq!(task["Description"], "Numbers attached & signed");
    assert_eq!(task["WhoId"], contact.as_str());
    assert_eq!(task["WhatId"], account.as_str());
    assert_eq!(task["HubSpot_Engagement_Id__c"], email.as_str());
    assert_eq!(task["Status"], "Completed");
    // The retry after the crash found its Task, and says the engagement synced.
    let (outcome, code) = w.last_outcome("hubspot", "emails", &email).await;
    assert_eq!((outcome, code), (Outcome::Synced, None));
    // Edited in HubSpot, the same Task follows (an upsert that updates: a field
    // Salesforce takes only on create, such as TaskSubtype, would fail it).
    w.advance(60_000);
    w.patch(
        &w.hs_control(&format!("/objects/emails/{email}")),
        json!({"properties": {"hs_email_subject": "Re: your quote (signed)"}}),
    )
    .await;
    w.sync().await;
    let all = tasks(&w).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["Subject"], "Re: your quote (signed)");
    let (outcome, code) = w.last_outcome("hubspot", "emails", &email).await;
    assert_eq!((outcome, code), (Outcome::Synced, None));
    // The Task is the sync's own: it never comes back as a HubSpot task.
    w.advance(60_000);
    w.sync().await;
    assert!(
        w.hs_objects("tasks").await.is_empty(),
        "the Task came back as a HubSpot task"
    );
    assert_eq!(tasks(&w).await.len(), 1);
    w.assert_no_dead_letters().await;
}
both_ways!(
    an_email_logged_on_a_synced_contact_becomes_one_task,
    email_becomes_one_task
);

async fn salesforce_task_becomes_hubspot_task(push: bool) {
    let w = world(push, "").await;
    let lead = w
        .sf_create(
            "Lead",
            json!({"LastName": "Flanders", "Email": "ned@leftorium.example", "Company": "Leftorium"}),
        )
        .await;
    w.sync().await;
    let c = w
        .hs_contact_by_email("ned@leftorium.example")
        .await
        .unwrap_or_else(|| panic!("the Lead made no contact"));
    let contact_id = c["id"].as_str().unwrap_or_default().to_owned();
    w.advance(60_000);
    let task = w
        .sf_create(
            "Task",
            json!({"Subject": "Call back about left-handed cans", "WhoId": lead, "Priority": "High", "ActivityDate": "2024-05-06"}),
        )
        .await;
    w.sync().await;
    let hs_tasks = w.hs_objects("tasks").await;
    assert_eq!(hs_tasks.len(), 1, "{hs_tasks:?}");
    let t = &hs_tasks[0];
    assert_eq!(
        prop(t, "hs_task_subject"),
        "Call back about left-handed cans"
    );
    assert_eq!(prop(t, "hs_task_priority"), "HIGH");
    assert_eq!(prop(t, "salesforcetaskid"), task.as_str());
    let id = t["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        w.hs_associated("tasks", &id, "contacts").await,
        vec![contact_id]
    );
    // Edited in Salesforce: the same HubSpot task follows; nothing is copied back.
    w.advance(60_000);
    w.sf_update("Task", &task, json!({"Status": "Completed"}))
        .await;
    w.sync().await;
    let hs_tasks = w.hs_objects("tasks").await;
    assert_eq!(hs_tasks.len(), 1);
    assert_eq!(prop(&hs_tasks[0], "hs_task_status"), "COMPLETED");
    assert_eq!(
        tasks(&w).await.len(),
        1,
        "the HubSpot task came back as a Task"
    );
    w.assert_no_dead_letters().await;
}
both_ways!(
    a_salesforce_task_becomes_a_hubspot_task_and_is_not_copied_back,
    salesforce_task_becomes_hubspot_task
);

async fn unsynced_contact_waits_or_is_skipped(skip: bool) {
    let extra = if skip {
        "unsynced_contact = \"skip\"\n"
    } else {
        ""
    };
    let w = world(false, extra).await;
    // The feeds start: activities sync from the first poll on.
    w.sync().await;
    w.advance(60_000);
    // No email: this contact never syncs.
    let contact = w.hs_create(json!({"lastname": "Nobody"})).await;
    let note = w
        .hs_create_object(
            "notes",
            json!({"hs_note_body": "Met at the fair", "hs_timestamp": "2024-05-03T10:00:00.000Z"}),
        )
        .await;
    w.hs_person_associates("notes", &note, "contacts", &contact)
        .await;
    // Past HubSpot's search lag, so that the poll sees the note.
    w.advance(super::world::SEARCH_LAG_MS + 1_000);
    let settled = w.try_poll_and_settle().await;
    assert!(tasks(&w).await.is_empty());
    let (outcome, code) = w.last_outcome("hubspot", "notes", &note).await;
    assert_eq!(outcome, Outcome::Skipped);
    if skip {
        settled.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(code.as_deref(), Some("related_not_synced"));
    } else {
        assert_eq!(code.as_deref(), Some("waiting_for_related"));
    }
}

#[tokio::test]
async fn an_activity_whose_contact_does_not_sync_waits_by_default() {
    unsynced_contact_waits_or_is_skipped(false).await;
}

#[tokio::test]
async fn an_activity_whose_contact_does_not_sync_is_skipped_when_set() {
    unsynced_contact_waits_or_is_skipped(true).await;
}

/// Activities are read and written in batches: 30 calls logged on synced contacts cost
/// one engagement read, one read per related type and one Task upsert.
#[tokio::test]
async fn thirty_calls_cost_a_handful_of_api_calls() {
    let w = world(false, "").await;
    let mut contacts = Vec::new();
    for i in 0..30 {
        contacts.push(
            w.hs_create(
                json!({"email": format!("caller{i}@batch.example"), "lastname": format!("C{i}")}),
            )
            .await,
        );
    }
    w.sync().await;
    w.advance(60_000);
    for c in &contacts {
        let call = w
            .hs_create_object(
                "calls",
                json!({"hs_call_title": "Intro", "hs_timestamp": "2024-05-03T10:00:00.000Z"}),
            )
            .await;
        w.hs_person_associates("calls", &call, "contacts", c).await;
    }
    let before = w.calls_by_endpoint().await;
    w.sync().await;
    let after = w.calls_by_endpoint().await;
    let spent = |endpoint: &str| {
        after
            .iter()
            .filter(|(k, _)| k.contains(endpoint))
            .map(|(k, n)| n - before.get(k).copied().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(tasks(&w).await.len(), 30);
    assert_eq!(spent("calls/batch/read"), 1, "{after:?}");
    assert_eq!(spent("composite/sobjects/Task"), 1, "{after:?}");
    eprintln!(
        "30 calls -> 30 Tasks: HubSpot calls/batch/read {}, associations {}, Salesforce Task upserts {}",
        spent("calls/batch/read"),
        spent("associations/calls"),
        spent("composite/sobjects/Task")
    );
}

/// `marketing_email_events = ["open", "click"]`: a synced contact opening and clicking a
/// marketing email makes two Tasks on its Lead; the send itself makes none (not
/// selected), and reading the events again adds none.
#[tokio::test]
async fn marketing_email_opens_and_clicks_become_tasks() {
    let w = world(false, "marketing_email_events = [\"open\", \"click\"]\n").await;
    w.hs_create(json!({"email": "reader@news.example", "lastname": "Reader"}))
        .await;
    w.sync().await;
    let lead = w.sf_by_email("Lead", "reader@news.example").await;
    assert_eq!(lead.len(), 1);
    w.advance(60_000);
    let sent = w
        .post(
            &w.hs_control("/marketing-emails"),
            json!({"subject": "Spring offers", "recipients": ["reader@news.example"]}),
        )
        .await;
    let campaign = sent["emailCampaignId"].as_u64().unwrap_or_default();
    for kind in ["OPEN", "CLICK"] {
        w.advance(1_000);
        w.post(
            &w.hs_control(&format!("/marketing-emails/{campaign}/events")),
            json!({"recipient": "reader@news.example", "type": kind}),
        )
        .await;
    }
    w.sync().await;
    w.advance(5_000);
    w.sync().await;
    let mut subjects: Vec<String> = tasks(&w)
        .await
        .iter()
        .map(|t| {
            assert_eq!(t["WhoId"], lead[0]["Id"]);
            t["Subject"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        vec![
            "Marketing email clicked: Spring offers".to_owned(),
            "Marketing email opened: Spring offers".to_owned()
        ]
    );
    w.assert_no_dead_letters().await;
}

/// Activities sync from the first poll on, and a reconcile (after a long pause) lists
/// the pairs' records again, never every past activity.
#[tokio::test]
async fn a_reconcile_does_not_copy_past_activities() {
    let w = world(false, "").await;
    let contact = w
        .hs_create(json!({"email": "old@history.example", "lastname": "Old"}))
        .await;
    let call = w
        .hs_create_object(
            "calls",
            json!({"hs_call_title": "Before the sync", "hs_timestamp": "2024-05-01T10:00:00.000Z"}),
        )
        .await;
    w.hs_person_associates("calls", &call, "contacts", &contact)
        .await;
    // Well before the first poll (its feed reads from a little before its cursor).
    w.advance(60_000);
    w.sync().await;
    assert_eq!(w.sf_by_email("Lead", "old@history.example").await.len(), 1);
    assert!(tasks(&w).await.is_empty(), "a past call was copied");
    let resumed = w.resume_after_a_long_pause().await;
    assert!(resumed.reconcile);
    w.sync().await;
    w.sync().await;
    assert!(
        tasks(&w).await.is_empty(),
        "the reconcile copied a past call"
    );
}

/// More marketing email events than one poll reads (20 pages of 1,000): the next poll
/// reads on from where the first stopped, and no event is queued twice or left behind.
#[tokio::test]
async fn a_large_send_is_read_over_several_polls() {
    const RECIPIENTS: usize = 25_000;
    let w = world(false, "marketing_email_events = [\"sent\"]\n").await;
    w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
    w.advance(60_000);
    let recipients: Vec<String> = (0..RECIPIENTS)
        .map(|i| format!("r{i}@list.example"))
        .collect();
    w.post(
        &w.hs_control("/marketing-emails"),
        json!({"subject": "Big send", "recipients": recipients}),
    )
    .await;
    let mut queued = Vec::new();
    for _ in 0..3 {
        w.advance(1_000);
        let report = w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
        queued.push(
            report
                .feeds
                .get("email_events:SENT")
                .map_or(0, |f| f.enqueued),
        );
    }
    assert_eq!(queued, vec![20_000, 5_000, 0], "queued per poll");
}

/// A batch of hundreds of calls on synced Contacts asks Salesforce for their Accounts in
/// queries that fit a URL (Salesforce answers 414 past 16,384 bytes).
#[tokio::test]
async fn a_large_batch_of_activities_reads_accounts_in_queries_that_fit() {
    const PEOPLE: usize = 1_200;
    let w = World::start(Setup {
        config: activities(""),
        push: false,
        settle_batch: 1_000,
        ..Setup::default()
    })
    .await;
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Initech", "Website": "initech.example"}),
        )
        .await;
    let rows: Vec<Value> = (0..PEOPLE)
        .map(|i| json!({"LastName": format!("Worker {i}"), "Email": format!("w{i}@initech.example"), "AccountId": account}))
        .collect();
    w.post(
        &w.sf_control("/objects/Contact/load"),
        json!({"records": rows}),
    )
    .await;
    w.sync().await;
    w.advance(60_000);
    let contacts = w.hs_contacts().await;
    assert_eq!(contacts.len(), PEOPLE);
    for c in &contacts {
        let id = c["id"].as_str().unwrap_or_default();
        let call = w
            .hs_create_object(
                "calls",
                json!({"hs_call_title": "TPS reports", "hs_timestamp": "2024-05-03T10:00:00.000Z"}),
            )
            .await;
        w.hs_person_associates("calls", &call, "contacts", id).await;
    }
    w.sync().await;
    let all = tasks(&w).await;
    assert_eq!(all.len(), PEOPLE);
    assert!(all.iter().all(|t| t["WhatId"] == json!(account)));
    w.assert_no_dead_letters().await;
}
