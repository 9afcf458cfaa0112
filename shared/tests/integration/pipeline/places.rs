//! State and Country picklists the org customized (`salesforce_picklists = "customized"`),
//! by push and by polling: the org renamed California, added Kosovo and deactivated
//! Texas. A HubSpot contact's free-text state and country become the org's own labels
//! (and codes); a state the org does not have is held back with a reason while the rest
//! of the record syncs; and a Salesforce value comes back as the org labels it.

use serde_json::json;

use super::{config, prop, world};
use crate::pipeline::world::World;

fn customized() -> String {
    format!(
        "{}\n[contacts.state_country]\nsalesforce_picklists = \"customized\"\nhubspot_values = \"match_salesforce_defaults\"\n",
        config(&[])
    )
}

async fn customize(w: &World) {
    w.put(
        &w.sf_control("/settings"),
        json!({"state_country_picklists": true, "places": {
            "countries": [{"code": "XK", "label": "Kosovo"}],
            "states": [{"country": "US", "code": "CA", "label": "Golden State"},
                       {"country": "US", "code": "TX", "label": "Texas", "active": false}]}}),
    )
    .await;
}

async fn the_orgs_own_places(push: bool) {
    let w = world(push, customized()).await;
    customize(&w).await;
    w.hs_create(json!({"email": "west@places.example", "lastname": "West", "state": "california", "country": "USA"}))
        .await;
    let texan = w
        .hs_create(json!({"email": "lone@places.example", "lastname": "Lone", "firstname": "Star", "state": "Texas", "country": "United States"}))
        .await;
    w.hs_create(json!({"email": "k@places.example", "lastname": "Prishtina", "country": "Kosovo"}))
        .await;
    w.sync().await;

    let west = w.sf_by_email("Lead", "west@places.example").await;
    assert_eq!(west.len(), 1, "{west:?}");
    assert_eq!(west[0]["State"], json!("Golden State"));
    assert_eq!(west[0]["StateCode"], json!("CA"));
    assert_eq!(west[0]["CountryCode"], json!("US"));
    let kosovo = w.sf_by_email("Lead", "k@places.example").await;
    assert_eq!(kosovo[0]["CountryCode"], json!("XK"), "{kosovo:?}");

    // Texas is not in the org's picklist: held back, the rest of the record syncs.
    let lone = w.sf_by_email("Lead", "lone@places.example").await;
    assert_eq!(
        lone.len(),
        1,
        "the record syncs without its state: {lone:?}"
    );
    assert_eq!(lone[0]["FirstName"], json!("Star"));
    assert_eq!(lone[0]["Country"], json!("United States"));
    assert!(lone[0]["State"].is_null(), "{:?}", lone[0]);
    let status = w
        .status("hubspot", "contacts", &texan)
        .await
        .unwrap_or_else(|| panic!("no status"));
    let held = status
        .last
        .held_back
        .iter()
        .find(|h| h.field == "state")
        .unwrap_or_else(|| panic!("state not held back: {:?}", status.last));
    assert_eq!(held.reason, "not_in_picklist");

    // A Salesforce Contact's state code comes back under the org's label.
    w.sf_create(
        "Contact",
        json!({"LastName": "Coast", "Email": "coast@places.example", "MailingCountryCode": "US", "MailingStateCode": "CA"}),
    )
    .await;
    w.sync().await;
    let coast = w
        .hs_contact_by_email("coast@places.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(prop(&coast, "state"), &json!("Golden State"));
    assert_eq!(prop(&coast, "country"), &json!("United States"));
}
both_ways!(customized_state_country_picklists, the_orgs_own_places);
