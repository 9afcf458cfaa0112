//! The pipeline end to end: both sandboxes and the local runner on loopback, people
//! editing either CRM through the sandboxes' control APIs, assertions on what the CRMs
//! then hold. Each scenario runs twice: with webhooks and outbound messages, and by
//! polling alone.

mod aws;
pub(crate) mod backfill;
mod intake;
pub(crate) mod world;

use crmsync_shared::domain::Side;
use crmsync_shared::domain::config::DEFAULT_TOML;
use crmsync_shared::ports::Outcome;
use serde_json::{Value, json};

use crmsync_shared::pipeline::sabotage::Sabotage;
use world::{SEARCH_LAG_MS, Setup, World};

fn config(replacements: &[(&str, &str)]) -> String {
    let mut text = DEFAULT_TOML.to_owned();
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "the default configuration has no {from:?}"
        );
        text = text.replacen(from, to, 1);
    }
    text
}

async fn world(push: bool, config: String) -> World {
    World::start(Setup {
        config,
        push,
        ..Setup::default()
    })
    .await
}

/// A HubSpot contact (title "Before") synced to its new Lead: (contact id, Lead id).
async fn linked_lead(w: &World, email: &str) -> (String, String) {
    let contact = w
        .hs_create(json!({"email": email, "lastname": "Restored", "jobtitle": "Before"}))
        .await;
    w.sync().await;
    let leads = w.sf_by_email("Lead", email).await;
    assert_eq!(leads.len(), 1, "{leads:?}");
    let lead = leads[0]["Id"].as_str().unwrap_or_default().to_owned();
    (contact, lead)
}

fn prop<'a>(record: &'a Value, name: &str) -> &'a Value {
    &record["properties"][name]
}

/// Runs a scenario with pushes and by polling alone.
macro_rules! both_ways {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn by_push() {
                super::$body(true).await;
            }
            #[tokio::test]
            async fn by_polling() {
                super::$body(false).await;
            }
        }
    };
}

mod activities;
mod campaigns;
mod deals;
mod import;
mod inclusion;
mod lifecycle;
mod merges;
mod model;
mod operate;
mod owners;
mod places;
mod races;
mod restores;
mod tickets;

async fn new_lead_appears_in_hubspot(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    let lead = w
        .sf_create(
            "Lead",
            json!({"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@analytical.example", "Company": "Analytical Engines", "Phone": "+44 20 7946 0001", "Title": "Countess"}),
        )
        .await;
    w.sync().await;
    let c = w
        .hs_contact_by_email("ada@analytical.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(prop(&c, "firstname"), "Ada");
    assert_eq!(prop(&c, "lastname"), "Lovelace");
    assert_eq!(prop(&c, "company"), "Analytical Engines");
    assert_eq!(prop(&c, "phone"), "+44 20 7946 0001");
    assert_eq!(prop(&c, "jobtitle"), "Countess");
    assert_eq!(prop(&c, "salesforceleadid"), &json!(lead));
    assert_eq!(prop(&c, "salesforceobjecttype"), "LEAD");
    assert_eq!(w.hs_contacts().await.len(), 1);
    assert_eq!(
        w.sf_records("Lead").await.len(),
        1,
        "nothing created back in Salesforce"
    );
}
both_ways!(
    a_new_salesforce_lead_appears_in_hubspot,
    new_lead_appears_in_hubspot
);

async fn hubspot_edit_reaches_salesforce(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    let lead = w
        .sf_create(
            "Lead",
            json!({"LastName": "Hopper", "Email": "grace@navy.example", "Company": "Navy"}),
        )
        .await;
    w.sync().await;
    let c = w
        .hs_contact_by_email("grace@navy.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    let id = c["id"].as_str().unwrap_or_default().to_owned();
    w.advance(60_000);
    w.hs_update(
        &id,
        json!({"jobtitle": "Rear Admiral", "phone": "555-0100"}),
    )
    .await;
    w.sync().await;
    let l = w.sf_by_email("Lead", "grace@navy.example").await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["Id"], json!(lead));
    assert_eq!(l[0]["Title"], "Rear Admiral");
    assert_eq!(l[0]["Phone"], "555-0100");
}
both_ways!(
    a_hubspot_edit_reaches_salesforce,
    hubspot_edit_reaches_salesforce
);

async fn contact_becomes_lead_by_default(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    let id = w
        .hs_create(json!({"email": "new@lead.example", "firstname": "New", "lastname": "Lead"}))
        .await;
    w.sync().await;
    let leads = w.sf_by_email("Lead", "new@lead.example").await;
    assert_eq!(leads.len(), 1, "one lead");
    assert_eq!(
        leads[0]["Company"], "[not provided]",
        "Salesforce requires a company"
    );
    assert_eq!(leads[0]["HubSpot_Contact_Id__c"], json!(id));
    assert!(
        w.sf_by_email("Contact", "new@lead.example")
            .await
            .is_empty()
    );
    let c = w
        .hs_contact_by_email("new@lead.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(prop(&c, "salesforceleadid"), &leads[0]["Id"]);
    assert_eq!(prop(&c, "salesforceobjecttype"), "LEAD");
    assert!(
        prop(&c, "company").is_null(),
        "the placeholder company stays in Salesforce"
    );
}
both_ways!(
    a_hubspot_contact_becomes_a_lead_by_default,
    contact_becomes_lead_by_default
);

async fn contact_becomes_contact_per_setting(push: bool) {
    let cfg = config(&[(
        "create_salesforce_as = \"lead\"",
        "create_salesforce_as = \"contact\"",
    )]);
    let w = world(push, cfg).await;
    w.hs_create(json!({"email": "new@contact.example", "lastname": "Contact"}))
        .await;
    w.sync().await;
    let contacts = w.sf_by_email("Contact", "new@contact.example").await;
    assert_eq!(contacts.len(), 1);
    assert!(
        w.sf_by_email("Lead", "new@contact.example")
            .await
            .is_empty()
    );
    let c = w
        .hs_contact_by_email("new@contact.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(prop(&c, "salesforcecontactid"), &contacts[0]["Id"]);
    assert_eq!(prop(&c, "salesforceobjecttype"), "CONTACT");
}
both_ways!(
    a_hubspot_contact_becomes_a_contact_per_setting,
    contact_becomes_contact_per_setting
);

async fn no_email_is_skipped(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    let id = w
        .hs_create(json!({"firstname": "No", "lastname": "Email"}))
        .await;
    w.sync().await;
    assert!(w.sf_records("Lead").await.is_empty());
    assert!(w.sf_records("Contact").await.is_empty());
    let (outcome, code) = w.last_outcome("hubspot", "contacts", &id).await;
    assert_eq!(
        (outcome, code.as_deref()),
        (Outcome::Skipped, Some("no_email"))
    );
}
both_ways!(
    a_contact_without_email_is_skipped_with_that_reason,
    no_email_is_skipped
);

async fn inclusion_filter_holds(push: bool) {
    let cfg = config(&[(
        "on_salesforce_delete = \"do_nothing\"\n",
        "on_salesforce_delete = \"do_nothing\"\n\n[contacts.inclusion]\nfilters = [{ property = \"lifecyclestage\", operator = \"eq\", values = [\"salesqualifiedlead\"] }]\n",
    )]);
    let w = world(push, cfg).await;
    let out = w
        .hs_create(
            json!({"email": "out@filter.example", "lastname": "Out", "lifecyclestage": "lead"}),
        )
        .await;
    w.hs_create(json!({"email": "in@filter.example", "lastname": "In", "lifecyclestage": "salesqualifiedlead"})).await;
    // A Salesforce-created record still creates its HubSpot contact.
    w.sf_create(
        "Lead",
        json!({"LastName": "FromSf", "Email": "sf@filter.example", "Company": "X"}),
    )
    .await;
    w.sync().await;
    assert!(
        w.sf_by_email("Lead", "out@filter.example").await.is_empty(),
        "outside the filter"
    );
    assert_eq!(w.sf_by_email("Lead", "in@filter.example").await.len(), 1);
    assert!(w.hs_contact_by_email("sf@filter.example").await.is_some());
    let (outcome, code) = w.last_outcome("hubspot", "contacts", &out).await;
    assert_eq!(
        (outcome, code.as_deref()),
        (Outcome::Skipped, Some("outside_inclusion"))
    );
}
both_ways!(the_inclusion_filter_holds, inclusion_filter_holds);

async fn directions_and_unless_blank(push: bool) {
    // jobtitle: Salesforce always wins; phone: the default, unless blank.
    let cfg = config(&[(
        "hubspot = \"jobtitle\"\nsalesforce = \"Title\"\nunless_blank = true\n",
        "hubspot = \"jobtitle\"\nsalesforce = \"Title\"\ndirection = \"always_salesforce\"\n",
    )]);
    let w = world(push, cfg).await;
    let lead = w
        .sf_create("Lead", json!({"LastName": "Dir", "Email": "dir@example.org", "Company": "D", "Title": "CTO", "Phone": "111"}))
        .await;
    w.sync().await;
    let c = w
        .hs_contact_by_email("dir@example.org")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    let id = c["id"].as_str().unwrap_or_default().to_owned();
    w.advance(60_000);
    // A HubSpot edit of an always_salesforce field does not flow; a blank phone does
    // not overwrite Salesforce's.
    w.hs_update(&id, json!({"jobtitle": "Intern", "phone": ""}))
        .await;
    w.sync().await;
    let l = &w.sf_by_email("Lead", "dir@example.org").await[0];
    assert_eq!(l["Title"], "CTO");
    assert_eq!(l["Phone"], "111");
    // And Salesforce's value comes back over HubSpot's edit.
    w.advance(60_000);
    w.sf_update("Lead", &lead, json!({"Title": "CEO"})).await;
    w.sync().await;
    let c = w
        .hs_contact_by_email("dir@example.org")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(prop(&c, "jobtitle"), "CEO");
    // The pair's history says what moved, from what to what (on the record whose
    // change brought it: either side, since a poll reads both).
    let mut statuses = Vec::new();
    for (side, object, id) in [
        ("salesforce", "Lead", lead.as_str()),
        ("hubspot", "contacts", id.as_str()),
    ] {
        statuses.extend(w.status(side, object, id).await);
    }
    let s = statuses
        .into_iter()
        .max_by_key(|s| s.last.at)
        .unwrap_or_else(|| panic!("no status"));
    let change = s.last.changes.iter().find(|c| c.field == "jobtitle");
    let change = change.unwrap_or_else(|| panic!("no jobtitle change: {s:?}"));
    assert_eq!((&change.old, &change.new), (&json!("CTO"), &json!("CEO")));
}
both_ways!(
    field_directions_and_unless_blank_hold,
    directions_and_unless_blank
);

async fn validation_error_is_recorded(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    w.post(
        &w.sf_control("/validation-rules"),
        json!({"object": "Lead", "field": "Phone", "when": "blank", "message": "Leads need a phone number"}),
    )
    .await;
    let bad = w
        .hs_create(json!({"email": "nophone@example.org", "lastname": "NoPhone"}))
        .await;
    let good = w
        .hs_create(json!({"email": "phone@example.org", "lastname": "Phone", "phone": "123"}))
        .await;
    w.sync().await;
    assert!(
        w.sf_by_email("Lead", "nophone@example.org")
            .await
            .is_empty()
    );
    assert_eq!(
        w.sf_by_email("Lead", "phone@example.org").await.len(),
        1,
        "the other record synced"
    );
    let s = w
        .status("hubspot", "contacts", &bad)
        .await
        .unwrap_or_else(|| panic!("no status"));
    assert_eq!(s.last.outcome, Outcome::Failed);
    assert_eq!(
        s.last.code.as_deref(),
        Some("FIELD_CUSTOM_VALIDATION_EXCEPTION")
    );
    assert_eq!(s.last.field.as_deref(), Some("Phone"));
    assert!(s.last.message.unwrap_or_default().contains("phone number"));
    let (outcome, _) = w.last_outcome("hubspot", "contacts", &good).await;
    assert_eq!(outcome, Outcome::Synced);
}
both_ways!(
    a_salesforce_validation_error_is_recorded_on_the_record,
    validation_error_is_recorded
);

async fn do_nothing_changes_nothing(push: bool) {
    let cfg = config(&[(
        "on_salesforce_update = \"create_or_update\"",
        "on_salesforce_update = \"do_nothing\"",
    )]);
    let w = world(push, cfg).await;
    let lead = w
        .sf_create(
            "Lead",
            json!({"LastName": "Quiet", "Email": "quiet@example.org", "Company": "Q"}),
        )
        .await;
    w.sync().await;
    assert!(w.hs_contacts().await.is_empty());
    let (outcome, code) = w.last_outcome("salesforce", "Lead", &lead).await;
    assert_eq!(
        (outcome, code.as_deref()),
        (Outcome::Skipped, Some("salesforce_updates_off"))
    );
}
both_ways!(
    a_salesforce_change_with_do_nothing_changes_nothing,
    do_nothing_changes_nothing
);

/// One human edit: exactly one write to the other side, none back, then quiet.
#[tokio::test]
async fn one_edit_makes_one_write_and_no_echo() {
    let w = world(true, DEFAULT_TOML.to_owned()).await;
    let id = w
        .hs_create(json!({"email": "echo@example.org", "lastname": "Echo", "phone": "1"}))
        .await;
    w.settle().await;
    w.advance(60_000);
    let before = w.integration_writes().await;
    w.hs_update(&id, json!({"phone": "2"})).await;
    w.settle().await;
    let after = w.integration_writes().await;
    assert_eq!(after.1 - before.1, 1, "one Salesforce write");
    assert_eq!(after.0 - before.0, 0, "nothing written back to HubSpot");
    // Polling finds the same changes and writes nothing either.
    w.advance(5_000);
    w.poll_and_settle().await;
    assert_eq!(w.integration_writes().await, after, "the pipeline is quiet");
    assert_eq!(
        w.sf_by_email("Lead", "echo@example.org").await[0]["Phone"],
        "2"
    );
}

/// Our own writes come back through both feeds; the poller recognises them from their
/// links (the values last synced, modified no later than that sync) and queues none:
/// no record is read a second time. A person's edit made meanwhile still syncs, from
/// the values the feed read.
///
/// The contacts have an owner known on both sides: a Lead we create without one gets
/// Salesforce's default owner, which the merge first sees (and holds back) on its next
/// read, so that one echo is read once.
#[tokio::test]
async fn the_poller_recognises_our_own_writes_without_reading_them_again() {
    let w = World::start(Setup {
        push: false,
        owners: true,
        ..Setup::default()
    })
    .await;
    let owner = w.owner_pairs().await[0].0.clone();
    for n in 0..20 {
        w.sf_create(
            "Lead",
            json!({"LastName": format!("Lead {n}"), "Email": format!("lead{n}@example.org"), "Company": "Own"}),
        )
        .await;
    }
    let mut contacts = Vec::new();
    for n in 0..20 {
        contacts.push(
            w.hs_create(json!({"email": format!("contact{n}@example.org"), "lastname": "Own", "jobtitle": "Before", "hubspot_owner_id": owner}))
                .await,
        );
    }
    w.sync().await;
    assert_eq!(w.hs_contacts().await.len(), 40);
    assert_eq!(w.sf_records("Lead").await.len(), 40);
    w.advance(1_000);
    w.hs_update(&contacts[0], json!({"jobtitle": "Edited"}))
        .await;
    w.advance(SEARCH_LAG_MS + 1_000);
    let before = w.calls_by_endpoint().await;
    let report = w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
    let feed = |name: &str| report.feeds.get(name).map(|f| (f.read, f.enqueued));
    let (read, queued) = feed("hubspot:contacts").unwrap_or_default();
    assert!(read >= 40, "the feed read our writes: {read}");
    assert_eq!(queued, 1, "only the person's edit is queued");
    let (read, queued) = feed("salesforce:Lead").unwrap_or_default();
    assert!(read >= 20, "the feed read our writes: {read}");
    assert_eq!(queued, 0, "our writes are not queued");
    w.settle().await;
    let after = w.calls_by_endpoint().await;
    let spent = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    // The edit syncs from the feed's own read of the contact; its Lead is read.
    assert_eq!(
        spent("HubSpot POST /crm/v3/objects/contacts/batch/read"),
        0,
        "no contact is read again"
    );
    let title = w.sf_by_email("Lead", "contact0@example.org").await[0]["Title"].clone();
    assert_eq!(title, "Edited");
}

/// A push of our own write often arrives before the batch that made it stored its link,
/// so the intake queues it; the worker then recognises it from what the push saw and
/// the link, and reads nothing. (The references are queued by hand, as such pushes
/// would have been: when a push lands is up to loopback timing.) A push the link
/// cannot vouch for is read.
#[tokio::test]
async fn the_worker_recognises_pushes_of_our_own_writes_without_reading() {
    use crmsync_shared::ports::{Seen, WorkItem, WorkQueue};
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    let lead = w
        .sf_create(
            "Lead",
            json!({"LastName": "Early", "Email": "early@example.org", "Company": "Pushes"}),
        )
        .await;
    w.sync().await;
    let contact = w
        .hs_contact_by_email("early@example.org")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    let contact = contact["id"].as_str().unwrap_or_default().to_owned();
    let row = w.sf_records("Lead").await[0].clone();
    let modified_at = row["LastModifiedDate"]
        .as_str()
        .and_then(crmsync_shared::domain::value::parse_datetime_millis)
        .unwrap_or_default();
    let pushed = |side, object: &str, id: &str, seen| WorkItem {
        side,
        object: object.into(),
        id: id.into(),
        origin: "webhook".into(),
        seen: Some(seen),
    };
    let property = |name: &str, value: &str| Seen::Property {
        name: name.into(),
        value: value.into(),
        at: None,
    };
    let echoes = [
        pushed(Side::HubSpot, "contacts", &contact, Seen::Created),
        pushed(
            Side::HubSpot,
            "contacts",
            &contact,
            property("salesforceleadid", &lead),
        ),
        pushed(
            Side::Salesforce,
            "Lead",
            &lead,
            Seen::Values {
                values: row.as_object().cloned().unwrap_or_default(),
                modified_at,
                whole: false,
                listed_at: None,
                associations: Default::default(),
            },
        ),
    ];
    let reads = || async {
        let calls = w.calls_by_endpoint().await;
        let n = |k: &str| calls.get(k).copied().unwrap_or(0);
        (
            n("HubSpot POST /crm/v3/objects/contacts/batch/read"),
            n("Salesforce POST /services/data/vXX.X/composite/sobjects/Lead"),
        )
    };
    let before = reads().await;
    // The contact's two pushes wait as one reference, carrying both.
    w.runner
        .store
        .send(&echoes)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.settle().await;
    assert_eq!(reads().await, before, "our own writes are not read again");
    let person = pushed(
        Side::HubSpot,
        "contacts",
        &contact,
        property("lastname", "Later"),
    );
    w.runner
        .store
        .send(&[person])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.settle().await;
    assert!(
        reads().await.0 > before.0,
        "a change the link cannot vouch for is read"
    );
}

/// A person's edit right after our write still syncs: echoes are told apart by values,
/// not by a time window.
#[tokio::test]
async fn an_edit_right_after_our_write_still_syncs() {
    let w = world(true, DEFAULT_TOML.to_owned()).await;
    let lead = w
        .sf_create(
            "Lead",
            json!({"LastName": "Fast", "Email": "fast@example.org", "Company": "F"}),
        )
        .await;
    w.settle().await;
    let c = w
        .hs_contact_by_email("fast@example.org")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    let id = c["id"].as_str().unwrap_or_default().to_owned();
    w.advance(300);
    w.hs_update(&id, json!({"lastname": "Faster"})).await;
    w.settle().await;
    let l = w.sf_records("Lead").await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["Id"], json!(lead));
    assert_eq!(l[0]["LastName"], "Faster");
}

/// The dedup key's claim is what keeps concurrent workers from creating one key twice,
/// where neither CRM would refuse the second create: ten domains, each on two HubSpot
/// companies, synced by four workers on four threads that take one record at a time.
/// Each domain becomes one Account; its second company is told which one won.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_workers_create_each_key_once() {
    let (w, companies) = ten_domains_twice(None).await;
    let accounts = w.sf_records("Account").await;
    let names: Vec<&str> = accounts.iter().filter_map(|a| a["Name"].as_str()).collect();
    assert_eq!(accounts.len(), 10, "one Account per domain: {names:?}");
    let mut skipped = 0;
    for id in &companies {
        if let Some(s) = w.status("hubspot", "companies", id).await
            && s.last.code.as_deref() == Some("duplicate_in_salesforce")
        {
            skipped += 1;
        }
    }
    assert_eq!(
        skipped, 10,
        "each domain's second company says which one won"
    );
}

/// The guard above can fail: with the claims switched off, the same run creates some
/// domain's Account twice (a race, so up to three runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_claims_concurrent_workers_create_duplicates() {
    for _ in 0..3 {
        let (w, _) = ten_domains_twice(Some(Sabotage::ClaimsOff)).await;
        if w.sf_records("Account").await.len() > 10 {
            return;
        }
    }
    panic!("three runs without claims made no duplicate: the claims test guards nothing");
}

/// Ten domains, each on two HubSpot companies, polled and drained by four background
/// workers taking one record at a time: the world and the companies.
async fn ten_domains_twice(sabotage: Option<Sabotage>) -> (World, Vec<String>) {
    let w = World::start(Setup {
        config: DEFAULT_TOML.to_owned(),
        push: false,
        workers: 4,
        batch_size: 1,
        sabotage,
        ..Setup::default()
    })
    .await;
    let mut companies = Vec::new();
    for n in 0..10 {
        for twin in 0..2 {
            let id = w
                .hs_create_object(
                    "companies",
                    json!({"name": format!("Co {n}-{twin}"), "domain": format!("co{n}.example")}),
                )
                .await;
            companies.push(id);
        }
    }
    w.advance(1_000);
    w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
    // The background workers drain the queue; retries wait on the clock.
    let started = std::time::Instant::now();
    while w
        .runner
        .store
        .queued()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        > 0
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the workers did not drain the queue"
        );
        w.advance(2_000);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (w, companies)
}

/// Two records with one key in one batch: the claim store lets its owner claim again,
/// so the batch itself keeps them apart (one Account; the other waits and then pairs
/// as a twin).
#[tokio::test]
async fn two_records_with_one_key_in_one_batch_create_once() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    let a = w
        .hs_create_object(
            "companies",
            json!({"name": "Twin A", "domain": "twins.example"}),
        )
        .await;
    let b = w
        .hs_create_object(
            "companies",
            json!({"name": "Twin B", "domain": "twins.example"}),
        )
        .await;
    w.sync().await;
    assert_eq!(w.sf_records("Account").await.len(), 1);
    let codes = [
        w.last_outcome("hubspot", "companies", &a).await.1,
        w.last_outcome("hubspot", "companies", &b).await.1,
    ];
    assert!(
        codes.contains(&Some("duplicate_in_salesforce".to_owned())),
        "{codes:?}"
    );
}

/// Twins: a Contact wins over a Lead with the same email; the lead gets a reason.
#[tokio::test]
async fn a_contact_wins_over_a_lead_with_the_same_email() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    let id = w
        .hs_create(json!({"email": "twin@example.org", "lastname": "Twin"}))
        .await;
    let lead = w
        .sf_create(
            "Lead",
            json!({"LastName": "Twin", "Email": "twin@example.org", "Company": "T"}),
        )
        .await;
    let contact = w
        .sf_create(
            "Contact",
            json!({"LastName": "Twin", "Email": "twin@example.org"}),
        )
        .await;
    w.advance(1_000);
    w.poll_and_settle().await;
    let c = w
        .hs_contact_by_email("twin@example.org")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(c["id"], json!(id));
    assert_eq!(prop(&c, "salesforcecontactid"), &json!(contact));
    assert_eq!(prop(&c, "salesforceobjecttype"), "CONTACT");
    assert_eq!(w.hs_contacts().await.len(), 1);
    let (outcome, code) = w.last_outcome("salesforce", "Lead", &lead).await;
    assert_eq!(
        (outcome, code.as_deref()),
        (Outcome::Skipped, Some("duplicate_in_salesforce"))
    );
}

/// A converted lead hands its HubSpot contact to the contact it became.
#[tokio::test]
async fn lead_conversion_relinks_instead_of_duplicating() {
    let w = world(true, DEFAULT_TOML.to_owned()).await;
    let lead = w
        .sf_create(
            "Lead",
            // With a website: the Account the conversion makes syncs as a company (one
            // without a domain cannot, and its Contact would wait for it).
            json!({"LastName": "Convert", "Email": "convert@example.org", "Company": "C", "Website": "https://convert.example.org"}),
        )
        .await;
    w.settle().await;
    w.advance(60_000);
    let converted = w
        .post(
            &w.sf_control(&format!("/leads/{lead}/convert")),
            json!({"createOpportunity": false}),
        )
        .await;
    let contact = converted["contactId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!contact.is_empty(), "conversion answered {converted}");
    // Pushes, then polls past the feeds' overlap: the conversion's outbound message
    // may be lost (as 5% are), and the poller must find it.
    w.sync().await;
    w.advance(5_000);
    w.poll_and_settle().await;
    let all = w.hs_contacts().await;
    assert_eq!(all.len(), 1, "no duplicate contact");
    assert_eq!(prop(&all[0], "salesforcecontactid"), &json!(contact));
    assert_eq!(prop(&all[0], "salesforceobjecttype"), "CONTACT");
}

/// A Lead converted into an existing Contact that already syncs with another HubSpot
/// contact (Salesforce's conversion dialog offers this): the Lead's link cannot follow
/// (the Contact has its partner), so the Lead says why, and the records worked beside
/// it still sync. Before, the link's conflict failed the whole batch again and again
/// (history 4239: a merge survivor held the Contact; the other records of the batch,
/// a person's own edit among them, never synced).
#[tokio::test]
async fn a_lead_converted_into_a_synced_contact_says_why_and_blocks_no_one() {
    let w = world(true, DEFAULT_TOML.to_owned()).await;
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Kept", "Website": "https://kept.example.org"}),
        )
        .await;
    let contact = w
        .sf_create(
            "Contact",
            json!({"LastName": "Kept", "Email": "kept@kept.example.org", "AccountId": account}),
        )
        .await;
    let lead = w
        .sf_create(
            "Lead",
            json!({"LastName": "Lee", "Email": "lee@example.org", "Company": "L"}),
        )
        .await;
    w.settle().await;
    w.advance(60_000);
    let kept = w
        .hs_contacts()
        .await
        .into_iter()
        .find(|c| prop(c, "email") == "kept@kept.example.org")
        .and_then(|c| c["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("the Contact's HubSpot contact"));
    let converted = w
        .post(
            &w.sf_control(&format!("/leads/{lead}/convert")),
            json!({"contactId": contact, "createOpportunity": false}),
        )
        .await;
    assert_eq!(converted["contactId"], json!(contact), "{converted}");
    w.hs_update(&kept, json!({"firstname": "Edited"})).await;
    w.sync().await;
    w.advance(5_000);
    w.poll_and_settle().await;
    let contacts = w.sf_records("Contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(
        contacts[0]["FirstName"], "Edited",
        "the other record synced"
    );
    let status = w
        .status("salesforce", "Lead", &lead)
        .await
        .unwrap_or_else(|| panic!("the converted Lead has no status"));
    assert_eq!(status.last.outcome, Outcome::Skipped);
    assert_eq!(status.last.code.as_deref(), Some("converted_into_synced"));
    assert_eq!(w.hs_contacts().await.len(), 2, "nothing created or lost");
    w.assert_no_dead_letters().await;
}

/// API cost and latency: one person's edit of a synced contact reaches the other side
/// in the calls a sync needs and no more: the edited record read, the target checked
/// just before the write, the write. The target is not read for the merge: it is taken
/// as last synced, and the check finds a change since; a HubSpot edit's webhook says
/// the value, so its contact is not read either (`pushed.rs`). (Each call is some
/// 50 ms in production.)
#[tokio::test]
async fn one_edit_costs_three_calls() {
    let w = World::start(Setup {
        push: true,
        owners: true,
        ..Setup::default()
    })
    .await;
    // An owner with a user on both sides: an unmatched one is held back, and every
    // later merge of the pair would read field history to time it.
    let (owner, _) = w.owner_pairs().await[0].clone();
    let contact = w
        .hs_create(
            json!({"email": "few@example.org", "lastname": "Few", "hubspot_owner_id": owner}),
        )
        .await;
    w.settle().await;
    w.advance(60_000);
    w.poll_and_settle().await;
    let lead = w.sf_by_email("Lead", "few@example.org").await[0]["Id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for from in [Side::HubSpot, Side::Salesforce] {
        w.advance(60_000);
        let before = w.calls_by_endpoint().await;
        match from {
            Side::HubSpot => {
                w.hs_update(&contact, json!({"jobtitle": "Edited in HubSpot"}))
                    .await
            }
            Side::Salesforce => {
                w.sf_update("Lead", &lead, json!({"Title": "Edited in Salesforce"}))
                    .await
            }
        }
        // Pushes only: the poller's feed reads are not the edit's cost.
        w.settle().await;
        let after = w.calls_by_endpoint().await;
        let spent: Vec<(&String, u64)> = after
            .iter()
            .map(|(k, n)| (k, n - before.get(k).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let total: u64 = spent.iter().map(|(_, n)| n).sum();
        println!("an edit in {from}: {total} calls {spent:?}");
        assert_eq!(total, 3, "an edit in {from}: {spent:?}");
        // The poller then reads the feeds and finds only what the pushes brought (the
        // edit, our write): nothing to queue, so no record is read again.
        w.advance(SEARCH_LAG_MS + 1_000);
        w.poll_and_settle().await;
        let polled = w.calls_by_endpoint().await;
        let reads: Vec<(&String, u64)> = polled
            .iter()
            .map(|(k, n)| (k, n - after.get(k).copied().unwrap_or(0)))
            .filter(|(k, n)| *n > 0 && !k.ends_with("/search") && !k.ends_with("/composite"))
            .collect();
        assert!(
            reads.is_empty(),
            "the poll after an edit in {from} read {reads:?}"
        );
    }
    let leads = w.sf_by_email("Lead", "few@example.org").await;
    assert_eq!(leads[0]["Title"], "Edited in Salesforce");
    let contacts = w.hs_contacts().await;
    assert_eq!(prop(&contacts[0], "jobtitle"), "Edited in Salesforce");
}

/// API cost: 150 new HubSpot contacts reach Salesforce in a handful of batch calls,
/// not one call (or several) per record.
#[tokio::test]
async fn a_batch_of_new_contacts_costs_a_handful_of_calls() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    for n in 0..150 {
        w.hs_create(
            json!({"email": format!("bulk{n}@example.org"), "lastname": format!("Bulk {n}")}),
        )
        .await;
    }
    w.advance(1_000);
    let before = w.integration_calls().await;
    w.poll_and_settle().await;
    let after = w.integration_calls().await;
    let (hubspot, salesforce) = (after.0 - before.0, after.1 - before.1);
    println!("150 contacts: {hubspot} HubSpot calls, {salesforce} Salesforce calls");
    assert_eq!(w.sf_records("Lead").await.len(), 150);
    // Including the one-time reads of field metadata (a describe of each sObject the
    // pair syncs, checked against the mapping) and the backfill's listing of each of
    // the four sObjects the built-in configuration syncs.
    assert!(salesforce <= 10, "{salesforce} Salesforce calls");
    assert!(hubspot <= 12, "{hubspot} HubSpot calls");
}

async fn companies_dedupe_by_domain(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    let account = w
        .sf_create("Account", json!({"Name": "Acme Inc", "Website": "https://www.acme.example/", "Industry": "Technology", "AnnualRevenue": 5000000}))
        .await;
    w.advance(1_000);
    let company = w
        .hs_create_object(
            "companies",
            json!({"name": "Acme", "domain": "acme.example"}),
        )
        .await;
    w.sync().await;
    if !push {
        // The poll saw the Account first: both are one company either way.
        w.advance(1_000);
        w.poll_and_settle().await;
    }
    let accounts = w.sf_records("Account").await;
    assert_eq!(accounts.len(), 1, "no second account: {accounts:?}");
    let companies = w.hs_objects("companies").await;
    assert_eq!(companies.len(), 1, "no second company");
    assert_eq!(companies[0]["id"], json!(company));
    assert_eq!(prop(&companies[0], "salesforceaccountid"), &json!(account));
    assert_eq!(
        prop(&companies[0], "annualrevenue"),
        "5000000",
        "mapped fields flow"
    );
    // HubSpot's industry picklist has no "Technology": held back, the rest synced.
    assert!(prop(&companies[0], "industry").is_null());

    // An Account made in Salesforce alone becomes a HubSpot company.
    w.sf_create(
        "Account",
        json!({"Name": "Globex", "Website": "globex.example"}),
    )
    .await;
    w.sync().await;
    let globex: Vec<Value> = w
        .hs_objects("companies")
        .await
        .into_iter()
        .filter(|c| prop(c, "name") == "Globex")
        .collect();
    assert_eq!(globex.len(), 1);
    // And a HubSpot company without a domain cannot be deduplicated: skipped.
    let nameless = w
        .hs_create_object("companies", json!({"name": "No Domain Ltd"}))
        .await;
    w.sync().await;
    let (outcome, code) = w.last_outcome("hubspot", "companies", &nameless).await;
    assert_eq!(
        (outcome, code.as_deref()),
        (Outcome::Skipped, Some("no_domain"))
    );
    assert_eq!(w.sf_records("Account").await.len(), 2);
}
both_ways!(
    companies_dedupe_by_domain_and_sync_each_way,
    companies_dedupe_by_domain
);

/// Contact.AccountId and the HubSpot contact-company association follow each other.
#[tokio::test]
async fn the_contact_company_association_follows_account_id() {
    let cfg = config(&[(
        "create_salesforce_as = \"lead\"",
        "create_salesforce_as = \"contact\"",
    )]);
    let w = world(false, cfg).await;
    // Salesforce -> HubSpot: a Contact with an Account.
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Initech", "Website": "initech.example"}),
        )
        .await;
    w.sf_create(
        "Contact",
        json!({"LastName": "Lumbergh", "Email": "bill@initech.example", "AccountId": account}),
    )
    .await;
    w.sync().await;
    let company = w
        .hs_objects("companies")
        .await
        .into_iter()
        .find(|c| prop(c, "salesforceaccountid") == &json!(account))
        .unwrap_or_else(|| panic!("no company for the account"));
    let contact = w
        .hs_contact_by_email("bill@initech.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    let contact_id = contact["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        w.hs_associated("contacts", &contact_id, "companies").await,
        vec![company["id"].as_str().unwrap_or_default().to_owned()]
    );

    // HubSpot -> Salesforce: a contact associated with a synced company.
    let peter = w
        .hs_create(json!({"email": "peter@initech.example", "lastname": "Gibbons"}))
        .await;
    let company_id = company["id"].as_str().unwrap_or_default().to_owned();
    w.hs_associate("contacts", &peter, "companies", &company_id)
        .await;
    w.sync().await;
    let contacts = w.sf_by_email("Contact", "peter@initech.example").await;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["AccountId"], json!(account));
}

/// A HubSpot contact that already names its Salesforce record (from HubSpot's own
/// integration, or a state store started afresh) pairs with it, whatever the emails say.
#[tokio::test]
async fn a_contact_naming_its_salesforce_record_pairs_with_it() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    let contact = w
        .sf_create(
            "Contact",
            json!({"LastName": "Old", "Email": "old@example.org"}),
        )
        .await;
    let id = w
        .hs_create(
            json!({"email": "new@example.org", "lastname": "Old", "salesforcecontactid": contact}),
        )
        .await;
    w.advance(1_000);
    w.poll_and_settle().await;
    assert!(
        w.sf_by_email("Lead", "new@example.org").await.is_empty(),
        "no new lead"
    );
    let contacts = w.sf_records("Contact").await;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["HubSpot_Contact_Id__c"], json!(id));
    assert_eq!(w.hs_contacts().await.len(), 1);
}

/// "Delete the HubSpot contact" archives it when its Salesforce record is deleted;
/// "do nothing" (the default) leaves it.
#[tokio::test]
async fn a_salesforce_deletion_follows_the_setting() {
    for (rule, archived) in [("do_nothing", false), ("delete_contact", true)] {
        let cfg = config(&[(
            "on_salesforce_delete = \"do_nothing\"",
            &format!("on_salesforce_delete = \"{rule}\""),
        )]);
        let w = world(false, cfg).await;
        let lead = w
            .sf_create(
                "Lead",
                json!({"LastName": "Del", "Email": "del@example.org", "Company": "D"}),
            )
            .await;
        w.advance(1_000);
        w.poll_and_settle().await;
        assert!(w.hs_contact_by_email("del@example.org").await.is_some());
        let r = w
            .http
            .delete(w.sf_control(&format!("/objects/Lead/{lead}")))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(r.status().is_success());
        w.advance(1_000);
        w.poll_and_settle().await;
        assert_eq!(
            w.hs_contact_by_email("del@example.org").await.is_none(),
            archived,
            "{rule}"
        );
    }
}

async fn hubspot_directions(push: bool) {
    // phone: HubSpot always wins; jobtitle: mapped for reference only.
    let cfg = config(&[
        (
            "hubspot = \"phone\"\nsalesforce = \"Phone\"\nunless_blank = true\n",
            "hubspot = \"phone\"\nsalesforce = \"Phone\"\ndirection = \"always_hubspot\"\n",
        ),
        (
            "hubspot = \"jobtitle\"\nsalesforce = \"Title\"\nunless_blank = true\n",
            "hubspot = \"jobtitle\"\nsalesforce = \"Title\"\ndirection = \"none\"\n",
        ),
    ]);
    let w = world(push, cfg).await;
    let id = w.hs_create(json!({"email": "ah@example.org", "lastname": "AH", "phone": "1", "jobtitle": "HS title"})).await;
    w.sync().await;
    let lead = w.sf_by_email("Lead", "ah@example.org").await;
    assert_eq!(lead[0]["Phone"], "1");
    assert!(lead[0]["Title"].is_null(), "direction none writes nothing");
    let lead_id = lead[0]["Id"].as_str().unwrap_or_default().to_owned();
    w.advance(60_000);
    w.sf_update("Lead", &lead_id, json!({"Phone": "2", "Title": "SF title"}))
        .await;
    w.sync().await;
    let c = w
        .hs_contact_by_email("ah@example.org")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(
        prop(&c, "phone"),
        "1",
        "a Salesforce edit never flows against always_hubspot"
    );
    assert_eq!(prop(&c, "jobtitle"), "HS title");
    let _ = id;
}
both_ways!(always_hubspot_and_none_hold, hubspot_directions);

/// HubSpot refuses a whole batch for one bad input; that record fails alone, with
/// HubSpot's category, and the rest of the batch syncs.
#[tokio::test]
async fn a_hubspot_refusal_of_one_record_does_not_fail_its_batch() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    let a = w
        .sf_create(
            "Lead",
            json!({"LastName": "A", "Email": "a@example.org", "Company": "C"}),
        )
        .await;
    let b = w
        .sf_create(
            "Lead",
            json!({"LastName": "B", "Email": "b@example.org", "Company": "C"}),
        )
        .await;
    w.advance(1_000);
    w.poll_and_settle().await;
    assert_eq!(w.hs_contacts().await.len(), 2);
    w.advance(60_000);
    // A typo gives A the email of B's HubSpot contact; B's phone changes meanwhile.
    w.sf_update("Lead", &a, json!({"Email": "b@example.org"}))
        .await;
    w.sf_update("Lead", &b, json!({"Phone": "555"})).await;
    w.advance(1_000);
    w.poll_and_settle().await;
    let contact_b = w
        .hs_contact_by_email("b@example.org")
        .await
        .unwrap_or_else(|| panic!("no B"));
    assert_eq!(prop(&contact_b, "phone"), "555", "the other record synced");
    // The pair's failure is on its record, by whichever side's change brought it.
    let hubspot_a = w
        .hs_contact_by_email("a@example.org")
        .await
        .unwrap_or_else(|| panic!("A kept its email"));
    let hubspot_a = hubspot_a["id"].as_str().unwrap_or_default().to_owned();
    let mut statuses = Vec::new();
    for (side, object, id) in [
        ("salesforce", "Lead", a.as_str()),
        ("hubspot", "contacts", hubspot_a.as_str()),
    ] {
        statuses.extend(w.status(side, object, id).await);
    }
    let failed = statuses
        .iter()
        .find(|s| s.last.outcome == Outcome::Failed)
        .unwrap_or_else(|| panic!("no failure recorded: {statuses:?}"));
    println!(
        "refused with {:?}: {:?}",
        failed.last.code, failed.last.message
    );
    assert!(failed.last.code.is_some());
}

/// Both sides changed the same field: the more recent change wins by when that field
/// changed (HubSpot's property history, read for this pair only), not by when the
/// record last changed.
#[tokio::test]
async fn a_conflict_goes_to_the_field_changed_last() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    let id = w
        .hs_create(json!({"email": "conflict@example.org", "lastname": "C", "phone": "1"}))
        .await;
    w.advance(1_000);
    w.poll_and_settle().await;
    let lead = w.sf_by_email("Lead", "conflict@example.org").await[0]["Id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    w.advance(60_000);
    w.hs_update(&id, json!({"phone": "hubspot-earlier"})).await;
    w.advance(60_000);
    w.sf_update("Lead", &lead, json!({"Phone": "salesforce-later"}))
        .await;
    w.advance(60_000);
    // A later HubSpot edit of another field makes the HubSpot record the newer one.
    w.hs_update(&id, json!({"jobtitle": "Later edit"})).await;
    w.advance(1_000);
    w.poll_and_settle().await;
    let c = w
        .hs_contact_by_email("conflict@example.org")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(prop(&c, "phone"), "salesforce-later");
    assert_eq!(
        w.sf_by_email("Lead", "conflict@example.org").await[0]["Phone"],
        "salesforce-later"
    );
    assert_eq!(
        w.sf_by_email("Lead", "conflict@example.org").await[0]["Title"],
        "Later edit"
    );
}
