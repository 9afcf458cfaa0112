//! Owners, by push and by polling: a record's owner follows it to the other side,
//! through the owners matched by email (HubSpot owners, Salesforce users); an owner
//! with no match on the other side is held back with a reason and does not block a
//! later owner that matches.

use serde_json::json;

use super::{linked_lead, prop};
use crate::pipeline::world::{Setup, World};

async fn owners_world(push: bool) -> World {
    World::start(Setup {
        push,
        owners: true,
        ..Setup::default()
    })
    .await
}

/// A Lead the org's admin makes (a Salesforce user HubSpot does not know), synced: its
/// id and its HubSpot contact.
async fn lead_by_the_admin(w: &World, email: &str) -> (String, serde_json::Value) {
    let lead = w
        .sf_create(
            "Lead",
            json!({"Email": email, "LastName": "Owned", "Company": "Model"}),
        )
        .await;
    w.sync().await;
    let contact = w
        .hs_contacts()
        .await
        .into_iter()
        .find(|c| prop(c, "email") == &json!(email))
        .unwrap_or_else(|| panic!("no contact for the Lead"));
    (lead, contact)
}

async fn owner_pairs(w: &World) -> Vec<(String, String)> {
    let pairs = w.owner_pairs().await;
    assert!(pairs.len() >= 2, "owners on both sides: {pairs:?}");
    pairs
}

/// A Lead made by a Salesforce user HubSpot does not know (the org's admin): its
/// contact gets no owner, with a reason; then a HubSpot owner given to the contact
/// reaches the Lead, and a Salesforce owner given to the Lead reaches the contact.
async fn owner_changes_follow_after_an_unmatched_owner(push: bool) {
    let w = owners_world(push).await;
    let pairs = owner_pairs(&w).await;
    let email = "owned@example.org";
    let (lead, contact) = lead_by_the_admin(&w, email).await;
    let contact = contact["id"].as_str().unwrap_or_default().to_owned();

    w.advance(1_000);
    w.hs_update(&contact, json!({"hubspot_owner_id": pairs[0].0}))
        .await;
    w.sync().await;
    let leads = w.sf_by_email("Lead", email).await;
    assert_eq!(leads[0]["OwnerId"], json!(pairs[0].1), "{leads:?}");

    w.advance(1_000);
    w.sf_update("Lead", &lead, json!({"OwnerId": pairs[1].1}))
        .await;
    w.sync().await;
    let contacts = w.hs_contacts().await;
    let c = contacts
        .iter()
        .find(|c| c["id"] == json!(contact))
        .unwrap_or_else(|| panic!("contact gone"));
    assert_eq!(prop(c, "hubspot_owner_id"), &json!(pairs[1].0));
}
both_ways!(
    owner_changes_follow_after_an_unmatched_owner_both_ways,
    owner_changes_follow_after_an_unmatched_owner
);

/// `[owners] default_hubspot_owner`: a Lead owned by a Salesforce user HubSpot does not
/// know (the org's admin) gives its contact the default owner instead of none, and the
/// contact's status says the default stands in.
async fn an_unmatched_owner_takes_the_default(push: bool) {
    // The seed world's first owner on both sides (checked below).
    let (hubspot_owner, salesforce_user) = ("70000001", "0058M0000000003QAA");
    let config = crmsync_shared::domain::config::DEFAULT_TOML.replacen(
        "[owners]\nenabled = true",
        &format!(
            "[owners]\nenabled = true\ndefault_hubspot_owner = \"{hubspot_owner}\"\ndefault_salesforce_user = \"{salesforce_user}\""
        ),
        1,
    );
    assert!(
        config.contains("default_hubspot_owner"),
        "no [owners] to extend"
    );
    let w = World::start(Setup {
        push,
        owners: true,
        config,
        ..Setup::default()
    })
    .await;
    let pairs = owner_pairs(&w).await;
    assert!(
        pairs.contains(&(hubspot_owner.to_owned(), salesforce_user.to_owned())),
        "{pairs:?}"
    );
    let email = "defaulted@example.org";
    let (lead, contact) = lead_by_the_admin(&w, email).await;
    assert_eq!(prop(&contact, "hubspot_owner_id"), &json!(hubspot_owner));
    let status = w
        .status("salesforce", "Lead", &lead)
        .await
        .unwrap_or_else(|| panic!("the Lead has no status"));
    assert_eq!(status.last.code.as_deref(), Some("owner_defaulted"));
    let message = status.last.message.unwrap_or_default();
    assert!(message.contains(hubspot_owner), "{message}");
    // The Lead keeps its own owner: the default is written to the other side only.
    let leads = w.sf_by_email("Lead", email).await;
    assert_ne!(leads[0]["OwnerId"], json!(salesforce_user), "{leads:?}");
}
both_ways!(
    an_unmatched_owner_takes_the_default_both_ways,
    an_unmatched_owner_takes_the_default
);

/// Found by the harness (history 698): a Lead the sync made (its owner the integration
/// user, whom HubSpot does not know) deleted and restored, its contact given an owner
/// in HubSpot, then the Lead converted before any of it synced: the owner given in
/// HubSpot reaches the Contact.
async fn an_owner_given_before_a_resumed_conversion_reaches_the_contact(push: bool) {
    let w = owners_world(push).await;
    let pairs = owner_pairs(&w).await;
    let email = "owned-converted@example.org";
    let (contact, lead) = linked_lead(&w, email).await;
    w.delete(&w.sf_control(&format!("/objects/Lead/{lead}")))
        .await;
    w.sync().await;
    w.post(
        &w.sf_control(&format!("/objects/Lead/{lead}/undelete")),
        json!({}),
    )
    .await;
    w.advance(10);
    w.hs_update(&contact, json!({"hubspot_owner_id": pairs[1].0}))
        .await;
    w.advance(10);
    w.post(
        &w.sf_control(&format!("/leads/{lead}/convert")),
        json!({"createOpportunity": false}),
    )
    .await;
    w.sync().await;
    let contacts = w.sf_by_email("Contact", email).await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["OwnerId"], json!(pairs[1].1), "{contacts:?}");
}
both_ways!(
    history_698_an_owner_given_before_a_resumed_conversion_reaches_the_contact,
    an_owner_given_before_a_resumed_conversion_reaches_the_contact
);

/// Found by the harness (history 14): an owner given in HubSpot, then the Lead converted
/// (its Contact keeps the Lead's unmatched owner), and the batch that followed the
/// conversion failed after moving the link. The next batch saw a Contact and no Lead:
/// the Contact's owner took the conversion's time, newer than the HubSpot edit, and
/// won. A Contact's inherited values date from the Lead it was converted from.
async fn an_owner_given_before_a_conversion_survives_a_retried_batch(push: bool) {
    let w = owners_world(push).await;
    let pairs = owner_pairs(&w).await;
    let email = "owned-retried@example.org";
    let (contact, lead) = linked_lead(&w, email).await;
    w.advance(1_000);
    w.hs_update(&contact, json!({"hubspot_owner_id": pairs[0].0}))
        .await;
    w.advance(500);
    w.post(
        &w.sf_control(&format!("/leads/{lead}/convert")),
        json!({"createOpportunity": false}),
    )
    .await;
    // The first batch moves the link to the Contact, then fails reading field history.
    w.post(
        &w.sf_control("/faults"),
        json!({"faults": [{"status": 503, "when": "History"}]}),
    )
    .await;
    w.sync().await;
    let contacts = w.sf_by_email("Contact", email).await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["OwnerId"], json!(pairs[0].1), "{contacts:?}");
}
both_ways!(
    history_14_an_owner_given_before_a_conversion_survives_a_retried_batch,
    an_owner_given_before_a_conversion_survives_a_retried_batch
);
