//! HubSpot merges of synced contacts: the merged contact (a new id) keeps the partner
//! whose Salesforce id it carries, whichever side's change is worked first; the other
//! contact's Salesforce record stays, unsynced, saying why. Nothing is duplicated and
//! no Salesforce record takes the survivor's email.

use serde_json::json;

use super::prop;
use crate::pipeline::world::{SEARCH_LAG_MS, Setup, World};
use crmsync_shared::pipeline::poll::HUBSPOT_OVERLAP_MS;
use crmsync_shared::ports::{Outcome, RecordStatus};

async fn lead_for(w: &World, email: &str, title: &str) -> (String, String) {
    let contact = w
        .hs_create(json!({"email": email, "lastname": "Merged", "jobtitle": title}))
        .await;
    w.sync().await;
    let leads = w.sf_by_email("Lead", email).await;
    assert_eq!(leads.len(), 1, "{leads:?}");
    (
        contact,
        leads[0]["Id"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A person merges `other` into `primary` in HubSpot; the merged contact's id.
async fn merge(w: &World, primary: &str, other: &str) -> String {
    let survivor = w
        .post(
            &w.hs_control("/objects/contacts/merge"),
            json!({"primaryObjectId": primary, "objectIdToMerge": other}),
        )
        .await;
    let id = survivor["id"].as_str().unwrap_or_default().to_owned();
    assert!(!id.is_empty(), "{survivor}");
    id
}

/// The merged-away contact's Lead says why it no longer syncs; its status.
async fn assert_told_merged(w: &World, lead: &str) -> RecordStatus {
    let status = w
        .status("salesforce", "Lead", lead)
        .await
        .unwrap_or_else(|| panic!("the other Lead has no status"));
    assert_eq!(status.last.outcome, Outcome::Skipped);
    assert_eq!(status.last.code.as_deref(), Some("merged_in_hubspot"));
    status
}

/// Found by the convergence harness (history 62): the merged-away contact's Lead was
/// edited and synced before the survivor was (HubSpot's search had not shown the
/// survivor yet), and the survivor took that Lead as its partner: the survivor's
/// email went to it (refused as a duplicate), and the primary's Lead lost its partner.
#[tokio::test]
async fn history_62_a_merged_away_contacts_lead_worked_first_does_not_take_the_survivor() {
    // By polling, so that the Lead's change is worked before HubSpot's search shows
    // the merged contact (pushes would bring both at once).
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    let (primary, primary_lead) = lead_for(&w, "primary@example.org", "Primary").await;
    let (other, other_lead) = lead_for(&w, "other@example.org", "Other").await;
    let survivor = merge(&w, &primary, &other).await;
    w.sf_update("Lead", &other_lead, json!({"Phone": "+1 555 0062"}))
        .await;
    // The Lead's change alone: the merged contact is not in HubSpot's search yet.
    w.advance(1_000);
    w.poll_and_settle().await;
    w.advance(SEARCH_LAG_MS + 1_000);
    w.poll_and_settle().await;
    w.hs_update(&survivor, json!({"jobtitle": "After the merge"}))
        .await;
    w.sync().await;

    let primary_leads = w.sf_by_email("Lead", "primary@example.org").await;
    assert_eq!(primary_leads.len(), 1, "{primary_leads:?}");
    assert_eq!(primary_leads[0]["Id"], json!(primary_lead));
    assert_eq!(primary_leads[0]["Title"], json!("After the merge"));
    assert_eq!(
        primary_leads[0]["HubSpot_Contact_Id__c"],
        json!(survivor),
        "the primary's Lead is the survivor's partner"
    );
    let other_leads = w.sf_by_email("Lead", "other@example.org").await;
    assert_eq!(other_leads.len(), 1, "{other_leads:?}");
    assert_told_merged(&w, &other_lead).await;
    let contacts = w.hs_contacts().await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(prop(&contacts[0], "email"), &json!("primary@example.org"));
}

/// The survivor worked first (by push, the usual case): the other contact's Lead says
/// why it no longer syncs at once, without waiting for its own next edit.
#[tokio::test]
async fn a_merge_tells_the_other_lead_at_once() {
    let w = World::start(Setup::default()).await;
    let (primary, _) = lead_for(&w, "first@example.org", "First").await;
    let (other, other_lead) = lead_for(&w, "second@example.org", "Second").await;
    merge(&w, &primary, &other).await;
    w.sync().await;
    let status = assert_told_merged(&w, &other_lead).await;
    assert!(
        status
            .last
            .message
            .as_deref()
            .is_some_and(|m| m.contains("merge the two Salesforce records")),
        "{:?}",
        status.last.message
    );
}

/// Found by the convergence harness (history 4 with merges): the primary's Lead was
/// worked first (a Salesforce edit polled before HubSpot's search showed the merged
/// contact) and took the survivor as its partner; the survivor's own change then found
/// it linked, and nothing told the other contact's Lead why it no longer syncs.
#[tokio::test]
async fn history_4_the_other_lead_is_told_when_the_primarys_lead_is_worked_first() {
    // By polling, so that the Lead's change is worked alone (pushes would bring the
    // merged contact at once).
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    let (primary, primary_lead) = lead_for(&w, "primary@example.org", "Primary").await;
    let (other, other_lead) = lead_for(&w, "other@example.org", "Other").await;
    // Past the feeds' overlap: no poll reads the other Lead again by itself.
    for _ in 0..2 {
        w.advance(HUBSPOT_OVERLAP_MS + 1_000);
        w.poll_and_settle().await;
    }
    merge(&w, &primary, &other).await;
    w.sf_update("Lead", &primary_lead, json!({"Phone": "+1 555 0004"}))
        .await;
    w.advance(1_000);
    w.poll_and_settle().await;
    assert_told_merged(&w, &other_lead).await;
    // And it stays so once the survivor's own change is worked.
    w.advance(SEARCH_LAG_MS + 1_000);
    w.poll_and_settle().await;
    assert_told_merged(&w, &other_lead).await;
    let contacts = w.hs_contacts().await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(prop(&contacts[0], "phone"), &json!("+1 555 0004"));
}

/// Found by the convergence harness (history 146): a merged contact deleted in HubSpot
/// and restored from the recycle bin pairs with its Lead again, and later edits flow.
#[tokio::test]
async fn history_146_a_merged_contact_restored_syncs_again() {
    let w = World::start(Setup::default()).await;
    let (primary, primary_lead) = lead_for(&w, "primary@example.org", "Primary").await;
    let (other, _) = lead_for(&w, "other@example.org", "Other").await;
    let survivor = merge(&w, &primary, &other).await;
    w.sync().await;
    w.delete(&w.hs_control(&format!("/objects/contacts/{survivor}")))
        .await;
    w.sync().await;
    w.post(
        &w.hs_control(&format!("/objects/contacts/{survivor}/restore")),
        json!({}),
    )
    .await;
    w.sync().await;
    w.hs_update(&survivor, json!({"jobtitle": "Restored"}))
        .await;
    w.sync().await;
    let leads = w.sf_by_email("Lead", "primary@example.org").await;
    assert_eq!(leads.len(), 1, "{leads:?}");
    assert_eq!(leads[0]["Id"], json!(primary_lead));
    assert_eq!(
        leads[0]["Title"],
        json!("Restored"),
        "{:#?}",
        w.events("hubspot", "contacts", &survivor).await
    );
}

/// A contact whose Lead was converted merged with another: the survivor keeps the
/// converted person's Contact, and the other contact's value it took reaches it (the
/// harness's history 163, `model::history_163_...`, is the timing that once broke it).
#[tokio::test]
async fn a_converted_persons_merge_keeps_the_contact() {
    let w = World::start(Setup::default()).await;
    let (primary, lead) = lead_for(&w, "primary@example.org", "Primary").await;
    w.post(
        &w.sf_control(&format!("/leads/{lead}/convert")),
        json!({"createOpportunity": false}),
    )
    .await;
    w.sync().await;
    let contact = w.sf_by_email("Contact", "primary@example.org").await;
    assert_eq!(contact.len(), 1, "{contact:?}");
    let contact = contact[0]["Id"].as_str().unwrap_or_default().to_owned();
    let other = w
        .hs_create(
            json!({"email": "other@example.org", "lastname": "Merged", "phone": "+1 555 0163"}),
        )
        .await;
    w.sync().await;
    let survivor = merge(&w, &primary, &other).await;
    w.sync().await;
    let contacts = w.sf_by_email("Contact", "primary@example.org").await;
    let events = w.events("hubspot", "contacts", &survivor).await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["Id"], json!(contact));
    assert_eq!(contacts[0]["Phone"], json!("+1 555 0163"), "{events:#?}");
    assert_eq!(
        prop(
            &w.hs_contact_by_email("primary@example.org")
                .await
                .unwrap_or_default(),
            "salesforcecontactid"
        ),
        &json!(contact)
    );
}
