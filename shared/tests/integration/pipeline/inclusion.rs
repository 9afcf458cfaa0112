//! Inclusion as the seeds describe it: a contact added to the inclusion list syncs
//! without waiting for an edit, one that leaves stops syncing (its link kept, its status
//! saying why) and syncs again when it rejoins; a record created from Salesforce gets
//! its HubSpot contact whatever the list, and later updates follow the list; a
//! Salesforce filter and a company rule keep records out, each with its reason.

use serde_json::json;

use super::world::{Setup, World};
use super::{config, prop};
use crmsync_shared::ports::Outcome;

const LIST_RULE: (&str, &str) = (
    "on_salesforce_delete = \"do_nothing\"\n",
    "on_salesforce_delete = \"do_nothing\"\n\n[contacts.inclusion]\nlist_id = \"1\"\n",
);

async fn skipped_because(w: &World, side: &str, object: &str, id: &str) -> (String, String) {
    let s = w
        .status(side, object, id)
        .await
        .unwrap_or_else(|| panic!("no status for {side} {object} {id}"));
    assert_eq!(s.last.outcome, Outcome::Skipped, "{:?}", s.last);
    (
        s.last.code.unwrap_or_default(),
        s.last.message.unwrap_or_default(),
    )
}

/// The newest status of a record pair: a poll reads both feeds, so the pair's outcome
/// is noted on the record whose reference came first.
async fn pair_skipped_because(w: &World, hubspot: &str, lead: &str) -> String {
    let hs = w.status("hubspot", "contacts", hubspot).await;
    let sf = w.status("salesforce", "Lead", lead).await;
    let newest = [hs, sf]
        .into_iter()
        .flatten()
        .max_by_key(|s| s.last.at)
        .unwrap_or_else(|| panic!("no status"));
    assert_eq!(newest.last.outcome, Outcome::Skipped, "{:?}", newest.last);
    newest.last.code.unwrap_or_default()
}

async fn list_is_a_change_feed(push: bool) {
    let w = World::start(Setup {
        config: config(&[LIST_RULE]),
        push,
        ..Setup::default()
    })
    .await;
    // The configuration names list 1: the sandbox's first list.
    assert_eq!(w.hs_list("Sync to Salesforce").await, "1");
    let id = w
        .hs_create(
            json!({"email": "joiner@list.example", "lastname": "Joiner", "jobtitle": "Before"}),
        )
        .await;
    w.sync().await;
    assert!(
        w.sf_by_email("Lead", "joiner@list.example")
            .await
            .is_empty()
    );
    let (code, _) = skipped_because(&w, "hubspot", "contacts", &id).await;
    assert_eq!(code, "outside_inclusion");
    // The initial sync's plan says so too.
    let plan = w
        .runner
        .pipeline
        .plan_backfill()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan.pairs["contacts"].get("skip HubSpot record (outside_inclusion)"),
        Some(&1),
        "{plan:?}"
    );

    // Joining the list is the trigger: no edit of the contact's.
    w.advance(60_000);
    w.hs_list_change("1", &[&id], &[]).await;
    w.sync().await;
    let leads = w.sf_by_email("Lead", "joiner@list.example").await;
    assert_eq!(
        leads.len(),
        1,
        "the contact joined the list and did not sync"
    );
    let lead = leads[0]["Id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(leads[0]["Title"], "Before");

    // Leaving: neither side's changes sync; the status says why, and the link stays.
    w.advance(60_000);
    w.hs_list_change("1", &[], &[&id]).await;
    w.hs_update(&id, json!({"jobtitle": "While outside"})).await;
    w.sync().await;
    assert_eq!(
        w.sf_by_email("Lead", "joiner@list.example").await[0]["Title"],
        "Before"
    );
    let (code, message) = skipped_because(&w, "hubspot", "contacts", &id).await;
    assert_eq!(code, "outside_inclusion");
    assert!(message.contains(&lead), "{message}");
    w.advance(60_000);
    w.sf_update("Lead", &lead, json!({"Phone": "+1 555 0100"}))
        .await;
    w.sync().await;
    let c = w
        .hs_contact_by_email("joiner@list.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_ne!(prop(&c, "phone"), "+1 555 0100");

    // Rejoining syncs what changed on both sides while it was outside.
    w.advance(60_000);
    w.hs_list_change("1", &[&id], &[]).await;
    w.sync().await;
    assert_eq!(
        w.sf_by_email("Lead", "joiner@list.example").await[0]["Title"],
        "While outside"
    );
    let c = w
        .hs_contact_by_email("joiner@list.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(prop(&c, "phone"), "+1 555 0100");
    assert_eq!(w.sf_by_email("Lead", "joiner@list.example").await.len(), 1);
    w.assert_no_dead_letters().await;
}
both_ways!(
    a_contact_joining_the_list_syncs_and_leaving_stops_it,
    list_is_a_change_feed
);

async fn created_from_salesforce_then_the_list(push: bool) {
    let w = World::start(Setup {
        config: config(&[LIST_RULE]),
        push,
        ..Setup::default()
    })
    .await;
    assert_eq!(w.hs_list("Sync to Salesforce").await, "1");
    let lead = w
        .sf_create(
            "Lead",
            json!({"LastName": "FromSf", "Email": "fromsf@list.example", "Company": "X", "Title": "First"}),
        )
        .await;
    w.sync().await;
    // The seeds: created in HubSpot even outside the list...
    let c = w
        .hs_contact_by_email("fromsf@list.example")
        .await
        .unwrap_or_else(|| panic!("a new Lead made no contact"));
    assert_eq!(prop(&c, "jobtitle"), "First");
    // ...and its later updates do not sync until it is in the list.
    w.advance(60_000);
    w.sf_update("Lead", &lead, json!({"Title": "Second"})).await;
    w.sync().await;
    let c = w
        .hs_contact_by_email("fromsf@list.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(prop(&c, "jobtitle"), "First");
    let id = c["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        pair_skipped_because(&w, &id, &lead).await,
        "outside_inclusion"
    );
    w.advance(60_000);
    w.hs_list_change("1", &[&id], &[]).await;
    w.sync().await;
    let c = w
        .hs_contact_by_email("fromsf@list.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(prop(&c, "jobtitle"), "Second");

    // A new Lead whose email a HubSpot contact outside the list has: deduplicated into
    // it, not a second contact.
    let outside = w
        .hs_create(json!({"email": "dup@list.example", "lastname": "Outside"}))
        .await;
    w.sync().await;
    w.advance(60_000);
    let dup = w
        .sf_create(
            "Lead",
            json!({"LastName": "Dup", "Email": "dup@list.example", "Company": "X"}),
        )
        .await;
    w.sync().await;
    let c = w
        .hs_contact_by_email("dup@list.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(c["id"], outside.as_str());
    assert_eq!(prop(&c, "salesforceleadid"), dup.as_str());
}
both_ways!(
    a_lead_made_in_salesforce_gets_its_contact_and_then_follows_the_list,
    created_from_salesforce_then_the_list
);

async fn salesforce_filter_and_company_rule(push: bool) {
    let cfg = config(&[
        (
            LIST_RULE.0,
            "on_salesforce_delete = \"do_nothing\"\n\n[contacts.salesforce_inclusion]\nfilters = [{ object = \"Lead\", field = \"Status\", operator = \"in\", values = [\"Open - Not Contacted\", \"Working - Contacted\"] }]\n",
        ),
        (
            "dedup_key = \"domain\"\n",
            "dedup_key = \"domain\"\n\n[companies.inclusion]\nfilters = [{ property = \"hubspot_owner_id\", operator = \"has_property\" }]\n",
        ),
    ]);
    let w = World::start(Setup {
        config: cfg,
        push,
        owners: true,
        ..Setup::default()
    })
    .await;
    let closed = w
        .sf_create(
            "Lead",
            json!({"LastName": "Closed", "Email": "closed@filter.example", "Company": "X", "Status": "Closed - Not Converted"}),
        )
        .await;
    let open = w
        .sf_create(
            "Lead",
            json!({"LastName": "Open", "Email": "open@filter.example", "Company": "X", "Status": "Open - Not Contacted", "Title": "Kept"}),
        )
        .await;
    let (owner, _) = w.owner_pairs().await[0].clone();
    let owned = w
        .hs_create_object(
            "companies",
            json!({"name": "Owned", "domain": "owned.example", "hubspot_owner_id": owner}),
        )
        .await;
    let unowned = w
        .hs_create_object(
            "companies",
            json!({"name": "Unowned", "domain": "unowned.example"}),
        )
        .await;
    w.sync().await;
    assert!(
        w.hs_contact_by_email("closed@filter.example")
            .await
            .is_none()
    );
    let (code, message) = skipped_because(&w, "salesforce", "Lead", &closed).await;
    assert_eq!(code, "outside_salesforce_inclusion");
    assert!(
        message.contains("Status in Open - Not Contacted"),
        "{message}"
    );
    assert!(w.hs_contact_by_email("open@filter.example").await.is_some());
    let accounts: Vec<String> = w
        .sf_records("Account")
        .await
        .iter()
        .filter_map(|a| a["Name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(accounts, vec!["Owned".to_owned()]);
    let (code, _) = skipped_because(&w, "hubspot", "companies", &unowned).await;
    assert_eq!(code, "outside_inclusion");
    assert!(w.status("hubspot", "companies", &owned).await.is_some());

    // A linked Lead that leaves the filter stops syncing.
    w.advance(60_000);
    w.sf_update(
        "Lead",
        &open,
        json!({"Status": "Closed - Not Converted", "Title": "Changed"}),
    )
    .await;
    w.sync().await;
    let c = w
        .hs_contact_by_email("open@filter.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(prop(&c, "jobtitle"), "Kept");
    let contact = c["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        pair_skipped_because(&w, &contact, &open).await,
        "outside_salesforce_inclusion"
    );
}
both_ways!(
    a_salesforce_filter_and_a_company_rule_keep_records_out,
    salesforce_filter_and_company_rule
);
