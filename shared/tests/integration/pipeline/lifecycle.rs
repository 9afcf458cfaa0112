//! Lifecycle stages from opportunities, by push and by polling: a contact role on an open
//! opportunity makes the HubSpot contact `opportunity`, a won one `customer`, never
//! backwards; no role, no change; with company propagation the company and its other
//! contacts follow. Triggered by the opportunity's and the contact role's changes, not
//! by edits of the contact.

use serde_json::{Value, json};

use super::{config, prop, world};
use crate::pipeline::world::World;

/// The default configuration with lifecycle stages from opportunities on.
fn lifecycle_on(propagate: bool, deals: bool) -> String {
    let deals = if deals {
        Vec::new()
    } else {
        vec![("[deals]\nenabled = true", "[deals]\nenabled = false")]
    };
    format!(
        "{}\n[contacts.lifecycle_from_opportunities]\nenabled = true\npropagate_to_company = {propagate}\n",
        config(&deals)
    )
}

async fn stage(w: &World, object: &str, id: &str) -> Value {
    w.hs_objects(object)
        .await
        .into_iter()
        .find(|c| c["id"] == json!(id))
        .map(|c| prop(&c, "lifecyclestage").clone())
        .unwrap_or_else(|| panic!("no HubSpot {object} {id}"))
}

/// Salesforce Contacts at one Account, synced, each HubSpot contact set to a stage:
/// (HubSpot company, [(Salesforce Contact, HubSpot contact)]).
async fn customers(w: &World, stages: &[&str]) -> (String, Vec<(String, String)>) {
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Pipeline Co", "Website": "pipeline.example"}),
        )
        .await;
    let mut contacts = Vec::new();
    for n in 0..stages.len() {
        let email = format!("person{n}@pipeline.example");
        let id = w
            .sf_create(
                "Contact",
                json!({"LastName": format!("Person {n}"), "Email": email, "AccountId": account}),
            )
            .await;
        contacts.push((id, email));
    }
    w.sync().await;
    let company = w
        .hs_objects("companies")
        .await
        .into_iter()
        .find(|c| prop(c, "domain") == &json!("pipeline.example"))
        .and_then(|c| c["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("the company did not sync"));
    let mut linked = Vec::new();
    for ((sf, email), stage) in contacts.into_iter().zip(stages) {
        let hs = w
            .hs_contact_by_email(&email)
            .await
            .and_then(|c| c["id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("{email} did not sync"));
        w.hs_update(&hs, json!({"lifecyclestage": stage})).await;
        w.hs_associate("contacts", &hs, "companies", &company).await;
        linked.push((sf, hs));
    }
    w.sync().await;
    (company, linked)
}

async fn opportunity(w: &World, stage: &str, roles: &[&str]) -> String {
    let opp = w
        .sf_create(
            "Opportunity",
            json!({"Name": format!("Deal {stage}"), "StageName": stage, "CloseDate": "2026-12-31"}),
        )
        .await;
    for contact in roles {
        w.sf_create(
            "OpportunityContactRole",
            json!({"OpportunityId": opp, "ContactId": contact, "Role": "Decision Maker"}),
        )
        .await;
    }
    opp
}

async fn stages_follow_contact_roles(push: bool, deals: bool) {
    let w = world(push, lifecycle_on(false, deals)).await;
    let (_, people) = customers(&w, &["lead", "lead", "salesqualifiedlead"]).await;
    let [(buyer_sf, buyer), (_, bystander), (loser_sf, loser)] = &people[..] else {
        panic!("three contacts");
    };

    // An open opportunity with a role: opportunity. No role: no change.
    let opp = opportunity(&w, "Prospecting", &[buyer_sf]).await;
    w.advance(60_000);
    w.sync().await;
    assert_eq!(stage(&w, "contacts", buyer).await, json!("opportunity"));
    assert_eq!(stage(&w, "contacts", bystander).await, json!("lead"));

    // Won: customer. A lost one moves nobody.
    w.advance(60_000);
    w.sf_update("Opportunity", &opp, json!({"StageName": "Closed Won"}))
        .await;
    opportunity(&w, "Closed Lost", &[loser_sf]).await;
    w.advance(60_000);
    w.sync().await;
    assert_eq!(stage(&w, "contacts", buyer).await, json!("customer"));
    assert_eq!(
        stage(&w, "contacts", loser).await,
        json!("salesqualifiedlead")
    );

    // Never backwards: a new open opportunity leaves the customer a customer.
    w.advance(60_000);
    opportunity(&w, "Qualification", &[buyer_sf]).await;
    w.advance(60_000);
    w.sync().await;
    assert_eq!(stage(&w, "contacts", buyer).await, json!("customer"));
    assert_eq!(
        stage(&w, "contacts", bystander).await,
        json!("lead"),
        "without propagation the company's other contacts stay"
    );
}

async fn stages_follow_contact_roles_with_deals(push: bool) {
    stages_follow_contact_roles(push, true).await;
}
both_ways!(
    lifecycle_follows_contact_roles,
    stages_follow_contact_roles_with_deals
);

/// Without the deals pair, the opportunities and contact roles are read for the
/// lifecycle alone (their own feeds, which list nothing at the start).
#[tokio::test]
async fn lifecycle_follows_contact_roles_without_deal_sync() {
    stages_follow_contact_roles(false, false).await;
}

/// A contact role added to an opportunity that itself does not change: its own feed
/// triggers the move (Salesforce does not touch the opportunity for a new role).
async fn a_new_role_alone_moves_the_contact(push: bool) {
    let w = world(push, lifecycle_on(false, true)).await;
    let (_, people) = customers(&w, &["lead", "lead", "customer"]).await;
    let opp = opportunity(&w, "Negotiation/Review", &[&people[0].0]).await;
    w.advance(60_000);
    w.sync().await;
    assert_eq!(stage(&w, "contacts", &people[1].1).await, json!("lead"));
    w.advance(60_000);
    w.sf_create(
        "OpportunityContactRole",
        json!({"OpportunityId": opp, "ContactId": people[1].0, "Role": "Influencer"}),
    )
    .await;
    w.advance(60_000);
    w.sync().await;
    assert_eq!(
        stage(&w, "contacts", &people[1].1).await,
        json!("opportunity")
    );

    // Never backwards: a customer with a role on an open opportunity stays a customer.
    w.sf_create(
        "OpportunityContactRole",
        json!({"OpportunityId": opp, "ContactId": people[2].0, "Role": "Other"}),
    )
    .await;
    w.advance(60_000);
    w.sync().await;
    assert_eq!(stage(&w, "contacts", &people[2].1).await, json!("customer"));
}
both_ways!(
    a_contact_role_moves_its_contact,
    a_new_role_alone_moves_the_contact
);

async fn the_company_and_its_contacts_follow(push: bool) {
    let w = world(push, lifecycle_on(true, true)).await;
    let (company, people) = customers(&w, &["lead", "subscriber", "evangelist"]).await;
    let [(buyer_sf, buyer), (_, colleague), (_, fan)] = &people[..] else {
        panic!("three contacts");
    };
    opportunity(&w, "Closed Won", &[buyer_sf]).await;
    w.advance(60_000);
    w.sync().await;
    assert_eq!(stage(&w, "contacts", buyer).await, json!("customer"));
    assert_eq!(stage(&w, "companies", &company).await, json!("customer"));
    assert_eq!(stage(&w, "contacts", colleague).await, json!("customer"));
    assert_eq!(
        stage(&w, "contacts", fan).await,
        json!("evangelist"),
        "never backwards, propagated or not"
    );
}
both_ways!(
    lifecycle_propagates_to_the_company,
    the_company_and_its_contacts_follow
);
