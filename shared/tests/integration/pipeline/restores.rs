//! Restores, by push and by polling: a record back from either CRM's recycle bin, or a
//! HubSpot contact deleted and made again with its email, finds its partner again; no
//! duplicate on either side.

use serde_json::{Value, json};

use super::{linked_lead, prop, world};
use crate::pipeline::world::World;
use crmsync_shared::domain::config::DEFAULT_TOML;

async fn contacts_with(w: &World, email: &str) -> Vec<Value> {
    w.hs_contacts()
        .await
        .into_iter()
        .filter(|c| prop(c, "email") == &json!(email))
        .collect()
}

async fn post(w: &World, url: String) {
    let r = w
        .http
        .post(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.status().is_success(), "{}", r.status());
}

async fn delete(w: &World, url: String) {
    let r = w
        .http
        .delete(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.status().is_success(), "{}", r.status());
}

async fn undeleted_lead_relinks(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    let email = "undeleted@example.org";
    let (contact, lead) = linked_lead(&w, email).await;
    delete(&w, w.sf_control(&format!("/objects/Lead/{lead}"))).await;
    w.sync().await;
    post(&w, w.sf_control(&format!("/objects/Lead/{lead}/undelete"))).await;
    w.sync().await;
    w.sf_update("Lead", &lead, json!({"Phone": "+1 555 0101"}))
        .await;
    w.sync().await;
    let contacts = contacts_with(&w, email).await;
    assert_eq!(contacts.len(), 1, "no second contact: {contacts:?}");
    assert_eq!(contacts[0]["id"], json!(contact));
    assert_eq!(prop(&contacts[0], "phone"), &json!("+1 555 0101"));
    // And back: the HubSpot side's edits reach the restored Lead.
    w.hs_update(&contact, json!({"jobtitle": "After"})).await;
    w.sync().await;
    let leads = w.sf_by_email("Lead", email).await;
    assert_eq!(leads.len(), 1, "no second lead: {leads:?}");
    assert_eq!(leads[0]["Id"], json!(lead));
    assert_eq!(leads[0]["Title"], json!("After"));
}
both_ways!(
    a_lead_undeleted_in_salesforce_relinks,
    undeleted_lead_relinks
);

async fn restored_contact_relinks(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    let email = "restored@example.org";
    let (contact, lead) = linked_lead(&w, email).await;
    delete(&w, w.hs_control(&format!("/objects/contacts/{contact}"))).await;
    w.sync().await;
    post(
        &w,
        w.hs_control(&format!("/objects/contacts/{contact}/restore")),
    )
    .await;
    w.sync().await;
    w.sf_update("Lead", &lead, json!({"Phone": "+1 555 0102"}))
        .await;
    w.sync().await;
    let contacts = contacts_with(&w, email).await;
    assert_eq!(contacts.len(), 1, "no second contact: {contacts:?}");
    assert_eq!(contacts[0]["id"], json!(contact));
    assert_eq!(prop(&contacts[0], "phone"), &json!("+1 555 0102"));
    let leads = w.sf_by_email("Lead", email).await;
    assert_eq!(leads.len(), 1, "no second lead: {leads:?}");
}
both_ways!(
    a_contact_restored_in_hubspot_relinks,
    restored_contact_relinks
);

async fn recreated_contact_relinks_by_email(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    let email = "recreated@example.org";
    let (contact, lead) = linked_lead(&w, email).await;
    delete(&w, w.hs_control(&format!("/objects/contacts/{contact}"))).await;
    w.sync().await;
    let again = w
        .hs_create(json!({"email": email, "lastname": "Again", "jobtitle": "Returned"}))
        .await;
    assert_ne!(again, contact);
    w.sync().await;
    let leads = w.sf_by_email("Lead", email).await;
    assert_eq!(leads.len(), 1, "no second lead: {leads:?}");
    assert_eq!(leads[0]["Id"], json!(lead));
    assert_eq!(leads[0]["HubSpot_Contact_Id__c"], json!(again));
    let contacts = contacts_with(&w, email).await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(prop(&contacts[0], "salesforceleadid"), &json!(lead));
}
both_ways!(
    a_contact_deleted_and_recreated_relinks_by_email,
    recreated_contact_relinks_by_email
);

/// Found by the convergence harness (history 36): a Lead deleted and restored, then its
/// contact edited in HubSpot before the restore was synced. The pair had lost its link,
/// so its next merge was a first sync, where the preferred side (Salesforce) took every
/// field filled on both: the later HubSpot edit was written over. Records that name each
/// other were synced before: the most recent value wins instead.
async fn edit_after_a_restore_is_kept(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    let email = "edited-after-restore@example.org";
    let (contact, lead) = linked_lead(&w, email).await;
    delete(&w, w.sf_control(&format!("/objects/Lead/{lead}"))).await;
    w.sync().await;
    post(&w, w.sf_control(&format!("/objects/Lead/{lead}/undelete"))).await;
    w.advance(500);
    w.hs_update(&contact, json!({"jobtitle": "Edited after the restore"}))
        .await;
    w.sync().await;
    let leads = w.sf_by_email("Lead", email).await;
    assert_eq!(leads.len(), 1, "no second lead: {leads:?}");
    assert_eq!(leads[0]["Title"], json!("Edited after the restore"));
    let contacts = contacts_with(&w, email).await;
    assert_eq!(
        prop(&contacts[0], "jobtitle"),
        &json!("Edited after the restore")
    );
}
both_ways!(
    an_edit_after_a_restore_is_kept,
    edit_after_a_restore_is_kept
);

/// Found by the convergence harness (history 45): as above, and then a person edits
/// another of the Lead's fields. The Lead's title had not changed since the Lead was
/// made, so it had no field history row, and the Lead's last modification (the later
/// phone edit) stood for it: the older title won over the HubSpot edit. A tracked field
/// without a row dates from the record's creation.
async fn edit_after_a_restore_survives_a_later_edit_of_another_field(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    let email = "edited-then-other-field@example.org";
    let (contact, lead) = linked_lead(&w, email).await;
    delete(&w, w.sf_control(&format!("/objects/Lead/{lead}"))).await;
    w.sync().await;
    post(&w, w.sf_control(&format!("/objects/Lead/{lead}/undelete"))).await;
    w.advance(500);
    w.hs_update(&contact, json!({"jobtitle": "Edited after the restore"}))
        .await;
    w.advance(500);
    w.sf_update("Lead", &lead, json!({"Phone": "+1 555 0145"}))
        .await;
    w.sync().await;
    let leads = w.sf_by_email("Lead", email).await;
    assert_eq!(leads.len(), 1, "no second lead: {leads:?}");
    assert_eq!(leads[0]["Title"], json!("Edited after the restore"));
    let contacts = contacts_with(&w, email).await;
    assert_eq!(
        prop(&contacts[0], "jobtitle"),
        &json!("Edited after the restore")
    );
    assert_eq!(prop(&contacts[0], "phone"), &json!("+1 555 0145"));
}
both_ways!(
    history_45_an_edit_after_a_restore_survives_a_later_edit_of_another_field,
    edit_after_a_restore_survives_a_later_edit_of_another_field
);

/// Found by the harness (history 149): a Lead deleted and restored, then converted
/// before its restore synced, then its contact edited in HubSpot. The HubSpot contact
/// names the Lead, not the Contact it became, so the pair was taken for strangers and
/// the preferred side (Salesforce) took the field: the later HubSpot edit was lost. A
/// contact naming the Lead a Contact was converted from resumes with that Contact.
async fn edit_after_a_restore_and_a_conversion_is_kept(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    let email = "restored-then-converted@example.org";
    let (contact, lead) = linked_lead(&w, email).await;
    delete(&w, w.sf_control(&format!("/objects/Lead/{lead}"))).await;
    w.sync().await;
    post(&w, w.sf_control(&format!("/objects/Lead/{lead}/undelete"))).await;
    w.post(
        &w.sf_control(&format!("/leads/{lead}/convert")),
        json!({"createOpportunity": false}),
    )
    .await;
    w.advance(500);
    w.hs_update(&contact, json!({"jobtitle": "Edited after the conversion"}))
        .await;
    w.sync().await;
    let contacts = w.sf_by_email("Contact", email).await;
    assert_eq!(contacts.len(), 1, "one Contact: {contacts:?}");
    assert_eq!(contacts[0]["Title"], json!("Edited after the conversion"));
    let hubspot = contacts_with(&w, email).await;
    assert_eq!(hubspot.len(), 1, "{hubspot:?}");
    assert_eq!(
        prop(&hubspot[0], "jobtitle"),
        &json!("Edited after the conversion")
    );
}
both_ways!(
    history_149_an_edit_after_a_restore_and_a_conversion_is_kept,
    edit_after_a_restore_and_a_conversion_is_kept
);

/// Found by the harness (history 5285): a HubSpot contact deleted and restored, edited,
/// and only then its Lead converted. The Contact's title (never edited, so without a
/// history row) took the conversion's time and beat the earlier HubSpot edit; it holds
/// the Lead's value, which dates from the Lead's creation.
async fn edit_before_a_conversion_of_a_resumed_pair_is_kept(push: bool) {
    let w = world(push, DEFAULT_TOML.to_owned()).await;
    let email = "restored-edited-converted@example.org";
    let (contact, lead) = linked_lead(&w, email).await;
    delete(&w, w.hs_control(&format!("/objects/contacts/{contact}"))).await;
    w.sync().await;
    post(
        &w,
        w.hs_control(&format!("/objects/contacts/{contact}/restore")),
    )
    .await;
    w.advance(500);
    w.hs_update(
        &contact,
        json!({"jobtitle": "Edited before the conversion"}),
    )
    .await;
    w.advance(500);
    w.post(
        &w.sf_control(&format!("/leads/{lead}/convert")),
        json!({"createOpportunity": false}),
    )
    .await;
    w.sync().await;
    let contacts = w.sf_by_email("Contact", email).await;
    assert_eq!(contacts.len(), 1, "one Contact: {contacts:?}");
    assert_eq!(contacts[0]["Title"], json!("Edited before the conversion"));
    let hubspot = contacts_with(&w, email).await;
    assert_eq!(
        prop(&hubspot[0], "jobtitle"),
        &json!("Edited before the conversion")
    );
}
both_ways!(
    history_5285_an_edit_before_a_resumed_pairs_conversion_is_kept,
    edit_before_a_conversion_of_a_resumed_pair_is_kept
);
