//! Tickets <-> Cases on the pair engine, by push and by polling, with the sandboxes as
//! the world is: a ticket becomes a Case on its contact's Contact and its company's
//! Account with status and priority mapped, a status change comes back, a Case becomes a
//! ticket in the configured pipeline associated like the Case, and a ticket whose
//! contact syncs with a Lead says why the Case has no contact.

use serde_json::{Value, json};

use super::{config, prop, world};
use crate::pipeline::world::World;

fn tickets_on() -> String {
    config(&[("[tickets]\nenabled = false", "[tickets]\nenabled = true")])
}

fn case_of<'a>(cases: &'a [Value], ticket: &str) -> Option<&'a Value> {
    cases
        .iter()
        .find(|c| c["HubSpot_Ticket_Id__c"] == json!(ticket))
}

/// A Salesforce Contact at an Account, synced: (HubSpot contact, company, their
/// Salesforce ids).
async fn synced_customer(w: &World) -> (String, String, String, String) {
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Ticketing Co", "Website": "ticketing.example"}),
        )
        .await;
    let contact = w
        .sf_create(
            "Contact",
            json!({"LastName": "Reporter", "Email": "reporter@ticketing.example", "AccountId": account}),
        )
        .await;
    w.sync().await;
    let hs_contact = w
        .hs_contact_by_email("reporter@ticketing.example")
        .await
        .and_then(|c| c["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("the contact did not sync"));
    let company = w
        .hs_objects("companies")
        .await
        .into_iter()
        .find(|c| prop(c, "domain") == &json!("ticketing.example"))
        .and_then(|c| c["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("the company did not sync"));
    (hs_contact, company, contact, account)
}

async fn ticket_becomes_a_case_and_its_status_comes_back(push: bool) {
    let w = world(push, tickets_on()).await;
    let (hs_contact, company, contact, account) = synced_customer(&w).await;
    let ticket = w
        .hs_create_object(
            "tickets",
            json!({"subject": "Printer on fire", "content": "Third floor", "hs_pipeline": "0",
                   "hs_pipeline_stage": "2", "hs_ticket_priority": "HIGH"}),
        )
        .await;
    w.hs_associate("tickets", &ticket, "contacts", &hs_contact)
        .await;
    w.hs_associate("tickets", &ticket, "companies", &company)
        .await;
    w.sync().await;
    w.sync().await;

    let cases = w.sf_records("Case").await;
    assert_eq!(cases.len(), 1, "one case: {cases:?}");
    let case =
        case_of(&cases, &ticket).unwrap_or_else(|| panic!("no case for {ticket}: {cases:?}"));
    assert_eq!(case["Subject"], json!("Printer on fire"));
    assert_eq!(case["Description"], json!("Third floor"));
    assert_eq!(case["Status"], json!("Working"));
    assert_eq!(case["Priority"], json!("High"));
    assert_eq!(case["ContactId"], json!(contact), "{case}");
    assert_eq!(case["AccountId"], json!(account), "{case}");

    let case_id = case["Id"].as_str().unwrap_or_default().to_owned();
    w.sf_update("Case", &case_id, json!({"Status": "Closed"}))
        .await;
    w.sync().await;
    let back = w
        .hs_objects("tickets")
        .await
        .into_iter()
        .find(|t| t["id"] == json!(ticket))
        .unwrap_or_else(|| panic!("the ticket is gone"));
    assert_eq!(prop(&back, "hs_pipeline_stage"), &json!("4"));
    assert_eq!(prop(&back, "salesforcecaseid"), &json!(case_id));
    assert_eq!(w.sf_records("Case").await.len(), 1, "no second case");
}
both_ways!(
    a_ticket_becomes_a_case_and_its_status_comes_back,
    ticket_becomes_a_case_and_its_status_comes_back
);

async fn case_becomes_a_ticket(push: bool) {
    let w = world(push, tickets_on()).await;
    let (hs_contact, company, contact, account) = synced_customer(&w).await;
    let case = w
        .sf_create(
            "Case",
            json!({"Subject": "Invoice wrong", "Status": "Escalated", "Priority": "Low",
                   "ContactId": contact, "AccountId": account}),
        )
        .await;
    w.sync().await;
    w.sync().await;
    let tickets = w.hs_objects("tickets").await;
    assert_eq!(tickets.len(), 1, "one ticket: {tickets:?}");
    let t = &tickets[0];
    assert_eq!(prop(t, "subject"), &json!("Invoice wrong"));
    assert_eq!(prop(t, "hs_pipeline"), &json!("0"));
    assert_eq!(prop(t, "hs_pipeline_stage"), &json!("3"));
    assert_eq!(prop(t, "hs_ticket_priority"), &json!("LOW"));
    assert_eq!(prop(t, "salesforcecaseid"), &json!(case));
    let id = t["id"].as_str().unwrap_or_default();
    assert_eq!(
        w.hs_associated("tickets", id, "contacts").await,
        vec![hs_contact]
    );
    assert_eq!(
        w.hs_associated("tickets", id, "companies").await,
        vec![company]
    );
}
both_ways!(a_case_becomes_a_ticket, case_becomes_a_ticket);

/// Cases take Contacts: a ticket whose contact syncs with a Lead makes a Case without a
/// contact, and its status says why.
#[tokio::test]
async fn a_ticket_of_a_lead_says_why_its_case_has_no_contact() {
    let w = world(true, tickets_on()).await;
    let person = w
        .hs_create(json!({"email": "lead@ticketing.example", "lastname": "Leadish"}))
        .await;
    w.sync().await;
    assert_eq!(
        w.sf_by_email("Lead", "lead@ticketing.example").await.len(),
        1
    );
    let ticket = w
        .hs_create_object(
            "tickets",
            json!({"subject": "Question", "hs_pipeline": "0", "hs_pipeline_stage": "1"}),
        )
        .await;
    w.hs_associate("tickets", &ticket, "contacts", &person)
        .await;
    w.sync().await;
    w.sync().await;
    let cases = w.sf_records("Case").await;
    let case = case_of(&cases, &ticket).unwrap_or_else(|| panic!("no case: {cases:?}"));
    assert_eq!(case["ContactId"], Value::Null);
    let status = w
        .status("hubspot", "tickets", &ticket)
        .await
        .unwrap_or_else(|| panic!("no status"));
    assert_eq!(
        status.last.code.as_deref(),
        Some("related_not_contact"),
        "{status:?}"
    );
    assert!(
        status
            .last
            .message
            .as_deref()
            .is_some_and(|m| m.contains("Lead")),
        "{status:?}"
    );
}
