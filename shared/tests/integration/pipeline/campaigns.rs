//! Campaigns end to end: a HubSpot form that names an active Salesforce campaign adds
//! its submitter's synced Lead as a CampaignMember, once however often they submit; an
//! inactive or unknown campaign is a reason on the submission's status.

use serde_json::{Value, json};

use super::world::{Setup, World};
use crmsync_shared::domain::config::DEFAULT_TOML;
use crmsync_shared::ports::Outcome;

/// The sandboxes' first forms and campaigns, by the ids they hand out in order.
const FORMS: [&str; 3] = [
    "5f1c0001-0000-4000-8000-000000000001",
    "5f1c0002-0000-4000-8000-000000000002",
    "5f1c0003-0000-4000-8000-000000000003",
];
const ACTIVE: &str = "7018M0000000001";
const INACTIVE: &str = "7018M0000000002";
const UNKNOWN: &str = "7018M0000000009";

fn config() -> String {
    format!(
        "{DEFAULT_TOML}\n[campaigns]\nenabled = true\nmember_status = \"Responded\"\nforms = [\n  {{ form_id = \"{}\", salesforce_campaign = \"{ACTIVE}\" }},\n  {{ form_id = \"{}\", salesforce_campaign = \"{INACTIVE}\" }},\n  {{ form_id = \"{}\", salesforce_campaign = \"{UNKNOWN}\" }},\n]\n",
        FORMS[0], FORMS[1], FORMS[2]
    )
}

/// A visitor submits a form: the submission's queued reference.
async fn submit(w: &World, form: &str, email: &str) -> String {
    let r = w
        .post(
            &w.hs_control(&format!("/forms/{form}/submit")),
            json!({"values": {"email": email, "lastname": "Visitor"}}),
        )
        .await;
    let conversion = r["conversionId"].as_str().unwrap_or_default();
    let at = w.clock.now_ms();
    format!("{form}/{conversion}/{at}/{email}")
}

async fn members(w: &World) -> Vec<Value> {
    w.sf_records("CampaignMember").await
}

async fn submission_makes_member(push: bool) {
    let w = World::start(Setup {
        config: config(),
        push,
        ..Setup::default()
    })
    .await;
    let active = w
        .sf_create(
            "Campaign",
            json!({"Name": "Spring webinar", "IsActive": true}),
        )
        .await;
    let inactive = w
        .sf_create("Campaign", json!({"Name": "Old fair", "IsActive": false}))
        .await;
    assert!(active.starts_with(ACTIVE) && inactive.starts_with(INACTIVE));
    for (n, form) in FORMS.iter().enumerate() {
        let r = w
            .post(
                &w.hs_control("/forms"),
                json!({"name": format!("Form {n}")}),
            )
            .await;
        assert_eq!(r["guid"], *form);
    }
    // The feeds start: submissions count from the first poll on.
    w.sync().await;
    w.advance(60_000);

    let first = submit(&w, FORMS[0], "attendee@webinar.example").await;
    w.sync().await;
    let leads = w.sf_by_email("Lead", "attendee@webinar.example").await;
    assert_eq!(leads.len(), 1, "the submitter's contact did not sync");
    let lead = leads[0]["Id"].as_str().unwrap_or_default().to_owned();
    let all = members(&w).await;
    assert_eq!(
        all.len(),
        1,
        "{all:?} {:?}",
        w.status("hubspot", "form_submissions", &first).await
    );
    assert_eq!(all[0]["LeadId"], lead.as_str());
    assert_eq!(all[0]["CampaignId"], active.as_str());
    assert_eq!(all[0]["Status"], "Responded");
    let (outcome, _) = w.last_outcome("hubspot", "form_submissions", &first).await;
    assert_eq!(outcome, Outcome::Synced);

    // Again: still one member.
    w.advance(60_000);
    let again = submit(&w, FORMS[0], "attendee@webinar.example").await;
    w.sync().await;
    assert_eq!(members(&w).await.len(), 1);
    let (outcome, _) = w.last_outcome("hubspot", "form_submissions", &again).await;
    assert_eq!(outcome, Outcome::Synced);

    // An inactive campaign, and one that does not exist: reasons, no member.
    w.advance(60_000);
    let old = submit(&w, FORMS[1], "late@webinar.example").await;
    let gone = submit(&w, FORMS[2], "lost@webinar.example").await;
    w.sync().await;
    assert_eq!(members(&w).await.len(), 1);
    for (id, code) in [(old, "campaign_inactive"), (gone, "campaign_unknown")] {
        let (outcome, got) = w.last_outcome("hubspot", "form_submissions", &id).await;
        assert_eq!((outcome, got.as_deref()), (Outcome::Skipped, Some(code)));
    }
    w.assert_no_dead_letters().await;
}
both_ways!(
    a_form_submission_adds_the_synced_lead_to_its_active_campaign_once,
    submission_makes_member
);

/// A submission of a form listed in `activities.form_submissions` is a Task on the
/// submitter's Lead: one per submission, however often the feed reads it.
#[tokio::test]
async fn a_form_submission_becomes_a_task_on_the_submitters_lead() {
    let config = DEFAULT_TOML.replacen(
        "[activities]\nenabled = false\n",
        &format!(
            "[activities]\nenabled = true\nform_submissions = [\"{}\"]\n",
            FORMS[0]
        ),
        1,
    );
    assert!(config.contains("form_submissions"));
    let w = World::start(Setup {
        config,
        ..Setup::default()
    })
    .await;
    let r = w
        .post(&w.hs_control("/forms"), json!({"name": "Contact us"}))
        .await;
    assert_eq!(r["guid"], FORMS[0]);
    w.sync().await;
    w.advance(60_000);
    let first = submit(&w, FORMS[0], "asker@forms.example").await;
    w.sync().await;
    let leads = w.sf_by_email("Lead", "asker@forms.example").await;
    assert_eq!(leads.len(), 1);
    let tasks = w.sf_records("Task").await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["Subject"], "Form submission: Contact us");
    assert_eq!(tasks[0]["WhoId"], leads[0]["Id"]);
    let conversion = first.split('/').nth(1).unwrap_or_default();
    assert_eq!(
        tasks[0]["HubSpot_Engagement_Id__c"],
        format!("form:{conversion}").as_str()
    );
    let (outcome, _) = w.last_outcome("hubspot", "form_submissions", &first).await;
    assert_eq!(outcome, Outcome::Synced);
    // A second submission is a second activity; reading the feed again adds none.
    w.advance(60_000);
    submit(&w, FORMS[0], "asker@forms.example").await;
    w.sync().await;
    w.advance(60_000);
    w.sync().await;
    assert_eq!(w.sf_records("Task").await.len(), 2);
    w.assert_no_dead_letters().await;
}

/// More new submissions than one poll reads (20 pages of 50, newest first): the next
/// poll goes on from where the first stopped, back to the cursor, none twice.
#[tokio::test]
async fn many_submissions_are_read_over_several_polls() {
    let config = DEFAULT_TOML.replacen(
        "[activities]\nenabled = false\n",
        &format!(
            "[activities]\nenabled = true\nform_submissions = [\"{}\"]\n",
            FORMS[0]
        ),
        1,
    );
    let w = World::start(Setup {
        config,
        push: false,
        ..Setup::default()
    })
    .await;
    w.post(&w.hs_control("/forms"), json!({"name": "Busy form"}))
        .await;
    w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
    w.advance(60_000);
    for i in 0..1_100 {
        submit(&w, FORMS[0], &format!("busy{i}@forms.example")).await;
    }
    let feed = format!("form:{}", FORMS[0]);
    let mut queued = Vec::new();
    for _ in 0..3 {
        w.advance(1_000);
        let report = w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
        queued.push(report.feeds.get(&feed).map_or(0, |f| f.enqueued));
    }
    assert_eq!(queued, vec![1_000, 100, 0], "queued per poll");
}
