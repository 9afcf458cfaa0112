//! Deals <-> Opportunities and custom objects, on the one pair flow every pair runs:
//! stage maps both ways, the deal's company and contact roles, unmapped stages, a
//! custom object pair added by configuration alone (and a second one), merges, and
//! the API cost of a batch of deals.

use crmsync_shared::domain::Side;
use crmsync_shared::domain::config::DEFAULT_TOML;
use crmsync_shared::pipeline::{ItemOutcome, LOOKUP_SWEEP_INTERVAL_MS};
use crmsync_shared::ports::{Outcome, Seen, WorkItem};
use serde_json::{Value, json};

use super::world::World;
use super::{config, prop, world};

fn id_of(v: &Value) -> String {
    v["Id"]
        .as_str()
        .or_else(|| v["id"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn as_contacts() -> String {
    config(&[(
        "create_salesforce_as = \"lead\"",
        "create_salesforce_as = \"contact\"",
    )])
}

/// A deal made in HubSpot with its company and contact becomes an Opportunity on the
/// right Account with a contact role (all three new in one sync: the company and the
/// contact are linked first, in the same batch), and a stage change in Salesforce
/// comes back through the stage map.
async fn hubspot_deal_becomes_opportunity(push: bool) {
    let w = world(push, as_contacts()).await;
    let company = w
        .hs_create_object(
            "companies",
            json!({"name": "Acme", "domain": "acme.example"}),
        )
        .await;
    let contact = w
        .hs_create(json!({"email": "ana@acme.example", "lastname": "Ana"}))
        .await;
    let deal = w
        .hs_create_object(
            "deals",
            json!({"dealname": "Acme renewal", "dealstage": "qualifiedtobuy", "pipeline": "default", "amount": "5000", "closedate": "2025-06-30T00:00:00Z"}),
        )
        .await;
    w.hs_associate("deals", &deal, "companies", &company).await;
    w.hs_associate("deals", &deal, "contacts", &contact).await;
    w.sync().await;

    let opportunities = w.sf_records("Opportunity").await;
    assert_eq!(opportunities.len(), 1, "{opportunities:?}");
    let opp = &opportunities[0];
    assert_eq!(opp["Name"], json!("Acme renewal"));
    assert_eq!(opp["StageName"], json!("Qualification"));
    assert_eq!(opp["Amount"].as_f64(), Some(5000.0));
    assert_eq!(opp["CloseDate"], json!("2025-06-30"));
    let accounts = w.sf_records("Account").await;
    assert_eq!(accounts.len(), 1);
    assert_eq!(
        opp["AccountId"],
        json!(id_of(&accounts[0])),
        "on the right Account"
    );
    let sf_contact = id_of(&w.sf_by_email("Contact", "ana@acme.example").await[0]);
    let roles = w.sf_records("OpportunityContactRole").await;
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert_eq!(roles[0]["ContactId"], json!(sf_contact));
    assert_eq!(roles[0]["OpportunityId"], json!(id_of(opp)));
    let deals = w.hs_objects("deals").await;
    assert_eq!(deals.len(), 1);
    assert_eq!(
        prop(&deals[0], "salesforceopportunityid"),
        &json!(id_of(opp))
    );

    w.advance(1_000);
    w.sf_update(
        "Opportunity",
        &id_of(opp),
        json!({"StageName": "Negotiation/Review"}),
    )
    .await;
    w.sync().await;
    let deals = w.hs_objects("deals").await;
    assert_eq!(prop(&deals[0], "dealstage"), "contractsent");
    // Syncing again writes no second role.
    w.advance(1_000);
    w.poll_and_settle().await;
    assert_eq!(w.sf_records("OpportunityContactRole").await.len(), 1);
    assert_eq!(w.sf_records("Opportunity").await.len(), 1);
}
both_ways!(
    a_hubspot_deal_becomes_an_opportunity,
    hubspot_deal_becomes_opportunity
);

/// An Opportunity made in Salesforce becomes a deal in the default pipeline,
/// associated with the company its Account is linked with; a contact role on it
/// becomes a deal-contact association.
async fn opportunity_becomes_deal(push: bool) {
    let w = world(push, as_contacts()).await;
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Globex", "Website": "globex.example"}),
        )
        .await;
    let contact = w
        .sf_create(
            "Contact",
            json!({"LastName": "Hank", "Email": "hank@globex.example", "AccountId": account}),
        )
        .await;
    w.sync().await;
    w.advance(1_000);
    let opp = w
        .sf_create(
            "Opportunity",
            json!({"Name": "Globex pilot", "StageName": "Prospecting", "CloseDate": "2025-07-01", "Amount": 1200, "AccountId": account}),
        )
        .await;
    w.sf_create(
        "OpportunityContactRole",
        json!({"OpportunityId": opp, "ContactId": contact, "Role": "Decision Maker"}),
    )
    .await;
    w.sync().await;
    let deals = w.hs_objects("deals").await;
    assert_eq!(deals.len(), 1, "{deals:?}");
    let deal = &deals[0];
    assert_eq!(prop(deal, "dealname"), "Globex pilot");
    assert_eq!(prop(deal, "dealstage"), "appointmentscheduled");
    assert_eq!(prop(deal, "pipeline"), "default");
    assert_eq!(prop(deal, "salesforceopportunityid"), &json!(opp));
    let deal_id = deal["id"].as_str().unwrap_or_default().to_owned();
    let company = w
        .hs_objects("companies")
        .await
        .into_iter()
        .find(|c| prop(c, "salesforceaccountid") == &json!(account))
        .unwrap_or_else(|| panic!("no company for the account"));
    assert_eq!(
        w.hs_associated("deals", &deal_id, "companies").await,
        vec![company["id"].as_str().unwrap_or_default().to_owned()]
    );
    let hs_contact = w
        .hs_contact_by_email("hank@globex.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(
        w.hs_associated("deals", &deal_id, "contacts").await,
        vec![hs_contact["id"].as_str().unwrap_or_default().to_owned()]
    );
    assert_eq!(
        w.sf_records("OpportunityContactRole").await.len(),
        1,
        "no second role"
    );
}
both_ways!(an_opportunity_becomes_a_deal, opportunity_becomes_deal);

/// A company associated with a deal in HubSpot, its webhook lost: HubSpot's change
/// feed never shows an association, so nothing syncs it until the lookup sweep finds
/// the Opportunity's Account empty and the deal associated; then the Account is set.
#[tokio::test]
async fn an_association_whose_webhook_was_lost_is_found_by_the_lookup_sweep() {
    let w = world(true, DEFAULT_TOML.to_owned()).await;
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Initech", "Website": "initech.example"}),
        )
        .await;
    let opp = w
        .sf_create(
            "Opportunity",
            json!({"Name": "Initech renewal", "StageName": "Prospecting", "CloseDate": "2025-07-01"}),
        )
        .await;
    w.sync().await;
    let deal = w
        .hs_objects("deals")
        .await
        .into_iter()
        .find(|d| prop(d, "salesforceopportunityid") == &json!(opp))
        .unwrap_or_else(|| panic!("no deal"));
    let company = w
        .hs_objects("companies")
        .await
        .into_iter()
        .find(|c| prop(c, "salesforceaccountid") == &json!(account))
        .unwrap_or_else(|| panic!("no company"));
    // Past the feeds' re-reads of the sync's own writes, settled reads included.
    for _ in 0..3 {
        w.advance(300_000);
        w.poll_and_settle().await;
    }
    w.put(&w.hs_control("/webhooks"), json!({"loss_rate": 1.0}))
        .await;
    w.hs_person_associates("deals", &id_of(&deal), "companies", &id_of(&company))
        .await;
    w.sync().await;
    let account_of = |rows: Vec<Value>| {
        rows.into_iter()
            .find(|o| o["Id"] == json!(opp))
            .map(|o| o["AccountId"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        account_of(w.sf_records("Opportunity").await),
        Value::Null,
        "no push and no feed told of the association"
    );
    w.advance(LOOKUP_SWEEP_INTERVAL_MS);
    w.poll_and_settle().await;
    assert_eq!(
        account_of(w.sf_records("Opportunity").await),
        json!(account)
    );
}

/// A stage the pipeline's map lacks is never written blank: a new Opportunity with it
/// is not created in HubSpot, and a linked one syncs its other fields with the stage
/// held back; both say `unmapped_stage`.
async fn unmapped_stage(push: bool) {
    let cfg = config(&[("\"Needs Analysis\" = \"qualifiedtobuy\"\n", "")]);
    let w = world(push, cfg).await;
    let lost = w
        .sf_create(
            "Opportunity",
            json!({"Name": "Odd", "StageName": "Needs Analysis", "CloseDate": "2025-07-01"}),
        )
        .await;
    let fine = w
        .sf_create(
            "Opportunity",
            json!({"Name": "Fine", "StageName": "Prospecting", "CloseDate": "2025-07-01", "Amount": 10}),
        )
        .await;
    w.sync().await;
    let (outcome, code) = w.last_outcome("salesforce", "Opportunity", &lost).await;
    assert_eq!(
        (outcome, code.as_deref()),
        (Outcome::Skipped, Some("unmapped_stage"))
    );
    let deals = w.hs_objects("deals").await;
    assert_eq!(deals.len(), 1, "only the mapped one: {deals:?}");

    w.advance(1_000);
    w.sf_update(
        "Opportunity",
        &fine,
        json!({"StageName": "Needs Analysis", "Amount": 999}),
    )
    .await;
    w.sync().await;
    let deals = w.hs_objects("deals").await;
    assert_eq!(prop(&deals[0], "amount"), "999", "the rest syncs");
    assert_eq!(
        prop(&deals[0], "dealstage"),
        "appointmentscheduled",
        "never blank"
    );
    let (outcome, code) = w.last_outcome("salesforce", "Opportunity", &fine).await;
    assert_eq!(
        (outcome, code.as_deref()),
        (Outcome::Synced, Some("unmapped_stage"))
    );
}
both_ways!(an_unmapped_stage_is_held_back_with_a_reason, unmapped_stage);

/// Named by its fully qualified name; HubSpot's webhooks name it by type id, which
/// crmsync learns from the portal's schemas.
const MACHINES: &str = r#"
[[custom_objects]]
name = "machines"
hubspot_object = "p_machines"
salesforce_object = "Machine__c"
hubspot_id_field = "HubSpot_Machine_Id__c"
salesforce_id_property = "salesforcemachineid"
match_on = { hubspot = "serial_number", salesforce = "Serial_Number__c" }

[[custom_objects.lookups]]
salesforce = "Account__c"
pair = "companies"

[[custom_objects.fields]]
hubspot = "name"
salesforce = "Name"
direction = "two_way"

[[custom_objects.fields]]
hubspot = "serial_number"
salesforce = "Serial_Number__c"
direction = "two_way"

[[custom_objects.fields]]
hubspot = "model"
salesforce = "Model__c"
"#;

/// Named by its object type id.
const SUBSCRIPTIONS: &str = r#"
[[custom_objects]]
name = "subscriptions"
hubspot_object = "2-1002"
salesforce_object = "Subscription__c"
hubspot_id_field = "HubSpot_Subscription_Id__c"
salesforce_id_property = "salesforcesubscriptionid"
match_on = { hubspot = "subscription_code", salesforce = "Code__c" }

[[custom_objects.lookups]]
salesforce = "Account__c"
pair = "companies"

[[custom_objects.fields]]
hubspot = "name"
salesforce = "Name"

[[custom_objects.fields]]
hubspot = "subscription_code"
salesforce = "Code__c"

[[custom_objects.fields]]
hubspot = "seats"
salesforce = "Seats__c"
direction = "two_way"
"#;

async fn custom_world(push: bool, pairs: &[&str]) -> World {
    let w = world(push, format!("{DEFAULT_TOML}{}", pairs.concat())).await;
    if push {
        let objects = json!([
            "Lead",
            "Contact",
            "Account",
            "Opportunity",
            "Machine__c",
            "Subscription__c"
        ]);
        w.put(&w.sf_control("/outbound"), json!({"objects": objects}))
            .await;
    }
    w
}

/// A custom object pair added by configuration alone syncs both ways, with its lookup
/// to an Account following the HubSpot association with the linked company.
async fn custom_object_pair(push: bool) {
    let w = custom_world(push, &[MACHINES]).await;
    let company = w
        .hs_create_object(
            "companies",
            json!({"name": "Initech", "domain": "initech.example"}),
        )
        .await;
    let machine = w
        .hs_create_object(
            "p_machines",
            json!({"name": "Press 1", "serial_number": "SN-1", "model": "M1"}),
        )
        .await;
    w.hs_associate("p_machines", &machine, "companies", &company)
        .await;
    w.sync().await;
    let account = id_of(&w.sf_records("Account").await[0]);
    let machines = w.sf_records("Machine__c").await;
    assert_eq!(machines.len(), 1, "{machines:?}");
    assert_eq!(machines[0]["Name"], json!("Press 1"));
    assert_eq!(machines[0]["Serial_Number__c"], json!("SN-1"));
    assert_eq!(machines[0]["Model__c"], json!("M1"));
    assert_eq!(machines[0]["HubSpot_Machine_Id__c"], json!(machine));
    assert_eq!(
        machines[0]["Account__c"],
        json!(account),
        "the lookup follows"
    );

    w.advance(1_000);
    w.sf_create(
        "Machine__c",
        json!({"Name": "Press 2", "Serial_Number__c": "SN-2", "Model__c": "M2", "Account__c": account}),
    )
    .await;
    w.sync().await;
    let second = w
        .hs_objects("p_machines")
        .await
        .into_iter()
        .find(|m| prop(m, "serial_number") == "SN-2")
        .unwrap_or_else(|| panic!("no HubSpot machine SN-2"));
    let second_id = second["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(prop(&second, "name"), "Press 2");
    assert_eq!(
        w.hs_associated("p_machines", &second_id, "companies").await,
        vec![company]
    );
    assert_eq!(w.hs_objects("p_machines").await.len(), 2);
    assert_eq!(w.sf_records("Machine__c").await.len(), 2);
}
both_ways!(
    a_custom_object_pair_syncs_by_configuration,
    custom_object_pair
);

/// A second custom object pair is configuration too: no Rust code names it.
async fn second_custom_pair(push: bool) {
    let w = custom_world(push, &[MACHINES, SUBSCRIPTIONS]).await;
    w.hs_create_object(
        "p_subscriptions",
        json!({"name": "Gold", "subscription_code": "SUB-1", "seats": "25"}),
    )
    .await;
    w.sf_create(
        "Subscription__c",
        json!({"Name": "Silver", "Code__c": "SUB-2", "Seats__c": 5}),
    )
    .await;
    w.sync().await;
    let rows = w.sf_records("Subscription__c").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let gold = rows
        .iter()
        .find(|r| r["Code__c"] == json!("SUB-1"))
        .unwrap_or_else(|| panic!("no SUB-1"));
    assert_eq!(gold["Seats__c"].as_f64(), Some(25.0));
    let subs = w.hs_objects("p_subscriptions").await;
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert!(
        subs.iter()
            .any(|s| prop(s, "subscription_code") == "SUB-2" && prop(s, "seats") == "5")
    );
}
both_ways!(a_second_custom_pair_needs_no_code, second_custom_pair);

/// Merging two synced HubSpot deals re-links the survivor and creates nothing; the
/// other Opportunity is told why it no longer syncs.
#[tokio::test]
async fn a_hubspot_deal_merge_relinks_and_never_duplicates() {
    let w = world(true, DEFAULT_TOML.to_owned()).await;
    let a = w
        .hs_create_object(
            "deals",
            json!({"dealname": "A", "dealstage": "qualifiedtobuy", "pipeline": "default", "closedate": "2025-06-30T00:00:00Z"}),
        )
        .await;
    let b = w
        .hs_create_object(
            "deals",
            json!({"dealname": "B", "dealstage": "qualifiedtobuy", "pipeline": "default", "closedate": "2025-06-30T00:00:00Z"}),
        )
        .await;
    w.sync().await;
    assert_eq!(w.sf_records("Opportunity").await.len(), 2);
    w.advance(1_000);
    w.post(
        &w.hs_control("/objects/deals/merge"),
        json!({"primaryObjectId": a, "objectIdToMerge": b}),
    )
    .await;
    w.sync().await;
    w.advance(1_000);
    w.poll_and_settle().await;
    let deals = w.hs_objects("deals").await;
    assert_eq!(deals.len(), 1, "one deal after the merge: {deals:?}");
    assert_eq!(
        w.sf_records("Opportunity").await.len(),
        2,
        "nothing created"
    );
    let survivor_opp = prop(&deals[0], "salesforceopportunityid").clone();
    // The other Opportunity changes: no deal is made for it, and it says why.
    let other = w
        .sf_records("Opportunity")
        .await
        .into_iter()
        .map(|o| id_of(&o))
        .find(|id| json!(id) != survivor_opp)
        .unwrap_or_else(|| panic!("no second opportunity"));
    w.advance(1_000);
    w.sf_update("Opportunity", &other, json!({"Amount": 5}))
        .await;
    w.sync().await;
    assert_eq!(w.hs_objects("deals").await.len(), 1, "no duplicate deal");
    let (outcome, code) = w.last_outcome("salesforce", "Opportunity", &other).await;
    assert_eq!(
        (outcome, code.as_deref()),
        (Outcome::Skipped, Some("merged_in_hubspot"))
    );
}

/// API cost: 100 new HubSpot deals reach Salesforce with a handful of calls per side,
/// counted at the sandboxes.
#[tokio::test]
async fn a_hundred_new_deals_cost_a_handful_of_calls() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    for n in 0..100 {
        w.hs_create_object(
            "deals",
            json!({"dealname": format!("Deal {n}"), "dealstage": "appointmentscheduled", "pipeline": "default", "amount": "100", "closedate": "2025-06-30T00:00:00Z"}),
        )
        .await;
    }
    w.advance(1_000);
    let before = w.integration_calls().await;
    w.poll_and_settle().await;
    let after = w.integration_calls().await;
    let (hubspot, salesforce) = (after.0 - before.0, after.1 - before.1);
    println!("100 deals: {hubspot} HubSpot calls, {salesforce} Salesforce calls");
    assert_eq!(w.sf_records("Opportunity").await.len(), 100);
    // Including the first poll's listing of every feed and the field metadata reads.
    assert!(salesforce <= 10, "{salesforce} Salesforce calls");
    assert!(hubspot <= 16, "{hubspot} HubSpot calls");
}

const ENTERPRISE: &str = r#"
[deals.pipelines.enterprise.to_salesforce]
ent_discovery = "Qualification"
ent_negotiation = "Negotiation/Review"
ent_won = "Closed Won"
ent_lost = "Closed Lost"

[deals.pipelines.enterprise.to_hubspot]
"Qualification" = "ent_discovery"
"Negotiation/Review" = "ent_negotiation"
"Closed Won" = "ent_won"
"Closed Lost" = "ent_lost"
"#;

const DEFAULT_TYPE: &str = "012000000000001AAA";
const ENTERPRISE_TYPE: &str = "012000000000002AAA";

/// Where configured, the deal's pipeline follows the Opportunity's record type (a value
/// map), and the stage goes through that pipeline's stage map, both ways.
async fn pipelines_follow_record_types(push: bool) {
    let mapping = format!(
        "[[deals.fields]]\nhubspot = \"pipeline\"\nsalesforce = \"RecordTypeId\"\nvalue_map = {{ default = \"{DEFAULT_TYPE}\", enterprise = \"{ENTERPRISE_TYPE}\" }}\n\n[[deals.fields]]\nhubspot = \"hubspot_owner_id\""
    );
    let cfg = format!(
        "{}{ENTERPRISE}",
        config(&[("[[deals.fields]]\nhubspot = \"hubspot_owner_id\"", &mapping)])
    );
    let w = world(push, cfg).await;
    let opp = w
        .sf_create(
            "Opportunity",
            json!({"Name": "Big", "StageName": "Qualification", "CloseDate": "2025-07-01", "RecordTypeId": ENTERPRISE_TYPE}),
        )
        .await;
    let deal = w
        .hs_create_object(
            "deals",
            json!({"dealname": "Bigger", "pipeline": "enterprise", "dealstage": "ent_won", "closedate": "2025-08-01T00:00:00Z"}),
        )
        .await;
    w.sync().await;
    let deals = w.hs_objects("deals").await;
    let from_sf = deals
        .iter()
        .find(|d| prop(d, "salesforceopportunityid") == &json!(opp))
        .unwrap_or_else(|| panic!("no deal for the opportunity: {deals:?}"));
    assert_eq!(prop(from_sf, "pipeline"), "enterprise");
    assert_eq!(
        prop(from_sf, "dealstage"),
        "ent_discovery",
        "the enterprise stage map"
    );
    let to_sf = w
        .sf_records("Opportunity")
        .await
        .into_iter()
        .find(|o| o["HubSpot_Deal_Id__c"] == json!(deal))
        .unwrap_or_else(|| panic!("no opportunity for the deal"));
    assert_eq!(to_sf["RecordTypeId"], json!(ENTERPRISE_TYPE));
    assert_eq!(to_sf["StageName"], json!("Closed Won"));
}
both_ways!(
    a_deal_pipeline_follows_the_record_type,
    pipelines_follow_record_types
);

/// A deal whose company cannot sync (no domain to deduplicate it by) still syncs its
/// own fields, waits for the company (retried, never failed, and not dead-lettered when
/// the retries run out), and says why.
#[tokio::test]
async fn a_deal_waits_for_a_company_that_cannot_sync_and_says_why() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    let company = w
        .hs_create_object("companies", json!({"name": "Nameless Ltd"}))
        .await;
    let deal = w
        .hs_create_object(
            "deals",
            json!({"dealname": "Waiting", "dealstage": "qualifiedtobuy", "pipeline": "default", "closedate": "2025-06-30T00:00:00Z"}),
        )
        .await;
    w.hs_associate("deals", &deal, "companies", &company).await;
    w.sync().await;
    let opportunities = w.sf_records("Opportunity").await;
    assert_eq!(opportunities.len(), 1, "the deal's own fields sync");
    assert!(opportunities[0]["AccountId"].is_null());
    let status = w
        .status("hubspot", "deals", &deal)
        .await
        .unwrap_or_else(|| panic!("no status"));
    assert_eq!(status.last.outcome, Outcome::Skipped);
    assert_eq!(status.last.code.as_deref(), Some("waiting_for_related"));
    let message = status.last.message.unwrap_or_default();
    assert!(
        message.contains(&company) && message.contains("no_domain"),
        "{message}"
    );
    assert!(message.contains("not retried after"), "{message}");
    w.assert_no_dead_letters().await;
    // The deal's next change tries again, and gives up again saying so once.
    w.advance(1_000);
    w.patch(
        &w.hs_control(&format!("/objects/deals/{deal}")),
        json!({"properties": {"dealname": "Still waiting"}}),
    )
    .await;
    w.advance(1_000);
    w.poll_and_settle().await;
    let again = w
        .status("hubspot", "deals", &deal)
        .await
        .and_then(|s| s.last.message)
        .unwrap_or_default();
    assert_eq!(again.matches("not retried after").count(), 1, "{again}");
    w.assert_no_dead_letters().await;
    let (outcome, code) = w.last_outcome("hubspot", "companies", &company).await;
    assert_eq!(
        (outcome, code.as_deref()),
        (Outcome::Skipped, Some("no_domain"))
    );
}

/// A deal that waited for its company says it synced once the company did: its retry
/// moves no value (the deal's own fields synced the first time) and only fills the
/// lookup, and its status must not keep saying it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_that_waited_for_its_company_says_synced_once_it_is() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    let company = w
        .hs_create_object(
            "companies",
            json!({"name": "Late Ltd", "domain": "late.example"}),
        )
        .await;
    let deal = w
        .hs_create_object(
            "deals",
            json!({"dealname": "Late", "dealstage": "qualifiedtobuy", "pipeline": "default", "closedate": "2025-06-30T00:00:00Z"}),
        )
        .await;
    w.hs_associate("deals", &deal, "companies", &company).await;
    w.advance(1_000);
    w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
    // Salesforce refuses Accounts for now: the company cannot sync, the deal waits.
    w.post(
        &w.sf_control("/faults"),
        json!({"faults": [{"status": 503, "when": "Account"}], "repeat": 1_000}),
    )
    .await;
    w.work_round().await;
    assert_eq!(
        w.sf_records("Opportunity").await.len(),
        1,
        "the deal's own fields sync"
    );
    let (outcome, code) = w.last_outcome("hubspot", "deals", &deal).await;
    assert_eq!(
        (outcome, code.as_deref()),
        (Outcome::Skipped, Some("waiting_for_related"))
    );
    w.delete(&w.sf_control("/faults")).await;
    w.settle().await;
    w.assert_no_dead_letters().await;
    let opportunities = w.sf_records("Opportunity").await;
    assert!(
        !opportunities[0]["AccountId"].is_null(),
        "{opportunities:?}"
    );
    let (outcome, code) = w.last_outcome("hubspot", "deals", &deal).await;
    assert_eq!((outcome, code), (Outcome::Synced, None));
}

/// A Contact at one Account, and another Account to move it to: (account, other,
/// contact).
async fn george_and_two_accounts(w: &World) -> (String, String, String) {
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Vandelay", "Website": "vandelay.example"}),
        )
        .await;
    let other = w
        .sf_create(
            "Account",
            json!({"Name": "Kramerica", "Website": "kramerica.example"}),
        )
        .await;
    let contact = w
        .sf_create(
            "Contact",
            json!({"LastName": "Costanza", "Email": "george@vandelay.example", "AccountId": account}),
        )
        .await;
    (account, other, contact)
}

/// The HubSpot company synced with `account`.
async fn company_of(w: &World, account: &str) -> Value {
    w.hs_objects("companies")
        .await
        .into_iter()
        .find(|c| prop(c, "salesforceaccountid") == &json!(account))
        .unwrap_or_else(|| panic!("no company for {account}"))
}

/// A contact's company is followed after its writes. An edit of a contact's values
/// cannot move its associations: with its Account where the last sync left it, they
/// are not read at all (`lookups.rs`), nor for a contact without an Account whose last
/// sync found it associated with no company; an Account changed in Salesforce moves
/// the contact to its company.
#[tokio::test]
async fn a_contacts_associations_are_read_only_when_they_may_have_moved() {
    let w = world(false, as_contacts()).await;
    let (account, other, contact) = george_and_two_accounts(&w).await;
    w.sf_create(
        "Contact",
        json!({"LastName": "Newman", "Email": "newman@example.org"}),
    )
    .await;
    w.sync().await;
    let hs_of = |email: &'static str| {
        let w = &w;
        async move {
            let c = w
                .hs_contact_by_email(email)
                .await
                .unwrap_or_else(|| panic!("no contact {email}"));
            c["id"].as_str().unwrap_or_default().to_owned()
        }
    };
    let (hs, loner) = (
        hs_of("george@vandelay.example").await,
        hs_of("newman@example.org").await,
    );
    assert_eq!(w.hs_associated("contacts", &hs, "companies").await.len(), 1);
    let read = "HubSpot POST /crm/v4/associations/contacts/companies/batch/read";
    let reads = || async {
        let calls = w.calls_by_endpoint().await;
        calls.get(read).copied().unwrap_or(0)
    };

    w.advance(1_000);
    let before = reads().await;
    w.hs_update(&hs, json!({"jobtitle": "Architect"})).await;
    w.sync().await;
    assert_eq!(reads().await - before, 0, "an edit of values reads none");
    let row = |rows: Vec<Value>| {
        rows.into_iter()
            .find(|r| r["Id"] == json!(contact))
            .unwrap_or_default()
    };
    let george = row(w.sf_records("Contact").await);
    assert_eq!(george["Title"], json!("Architect"));
    assert_eq!(george["AccountId"], json!(account));
    assert_eq!(w.hs_associated("contacts", &hs, "companies").await.len(), 1);

    w.advance(1_000);
    let before = reads().await;
    w.hs_update(&loner, json!({"jobtitle": "Mailman"})).await;
    w.sync().await;
    assert_eq!(
        reads().await - before,
        0,
        "recorded as associated with none: none read"
    );

    w.advance(1_000);
    w.sf_update("Contact", &contact, json!({"AccountId": other}))
        .await;
    w.sync().await;
    let company = company_of(&w, &other).await;
    assert!(
        w.hs_associated("contacts", &hs, "companies")
            .await
            .contains(&id_of(&company)),
        "the contact follows its new Account"
    );
}

/// Our own association writes come back as association webhooks, one per side: the
/// contact's is the association its lookup was last put in step with, the company's
/// one its pair does not follow. Neither costs a read (`echo.rs`); a person's
/// association still syncs (`the_contact_company_association_follows_account_id`).
#[tokio::test]
async fn our_own_associations_come_back_without_a_read() {
    let w = world(true, as_contacts()).await;
    let (_, other, contact) = george_and_two_accounts(&w).await;
    w.sync().await;
    w.advance(1_000);
    let reads = |object: &'static str| {
        let w = &w;
        async move {
            let key = format!("HubSpot POST /crm/v3/objects/{object}/batch/read");
            w.calls_by_endpoint().await.get(&key).copied().unwrap_or(0)
        }
    };
    let before = (reads("contacts").await, reads("companies").await);
    // Salesforce moves the contact: the sync associates it with the other company.
    w.sf_update("Contact", &contact, json!({"AccountId": other}))
        .await;
    w.sync().await;
    let company = company_of(&w, &other).await;
    let hs = w
        .hs_contact_by_email("george@vandelay.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert!(
        w.hs_associated("contacts", &id_of(&hs), "companies")
            .await
            .contains(&id_of(&company))
    );
    let after = (reads("contacts").await, reads("companies").await);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (0, 0),
        "nothing read: the contact is taken as last synced (no property to write), its lookup moved from the one recorded, the associations' webhooks recognised"
    );
}

/// A deal whose company is linked already becomes an Opportunity created on its
/// Account, not updated onto it once linked: that update came back (outbound message,
/// feed, listing) as a change of ours the link did not know, and cost a read of both
/// records for every deal of the scale bench's initial sync. (Webhooks as the world
/// sends them: the deal's creation and its association may come apart, each read.)
#[tokio::test]
async fn a_deal_on_a_linked_company_is_created_on_its_account() {
    let w = world(true, DEFAULT_TOML.to_owned()).await;
    let company = w
        .hs_create_object(
            "companies",
            json!({"name": "Acme", "domain": "acme.example"}),
        )
        .await;
    w.sync().await;
    let account = id_of(&w.sf_records("Account").await[0]);
    w.advance(1_000);
    let before = w.calls_by_endpoint().await;
    let deal = w
        .hs_create_object(
            "deals",
            json!({"dealname": "Acme renewal", "dealstage": "qualifiedtobuy", "pipeline": "default", "amount": "5000", "closedate": "2025-06-30T00:00:00Z"}),
        )
        .await;
    w.hs_associate("deals", &deal, "companies", &company).await;
    w.sync().await;
    let opportunities = w.sf_records("Opportunity").await;
    assert_eq!(opportunities.len(), 1, "{opportunities:?}");
    assert_eq!(opportunities[0]["AccountId"], json!(account));
    assert_eq!(
        w.calls_since(
            &before,
            "Salesforce PATCH /services/data/vXX.X/composite/sobjects"
        )
        .await,
        0,
        "the Opportunity is not updated after its creation"
    );
}

/// A new Salesforce Contact whose Account has not synced yet reaches a worker before
/// the Account's own reference (an initial sync's listing brings Contacts and Accounts
/// in any order): the Account is synced first, so the contact is created associated
/// with its company, and no association is written after (at 100,000 people, ~300
/// associate calls).
#[tokio::test]
async fn a_contact_whose_account_is_not_synced_is_created_with_its_company() {
    let w = world(false, as_contacts()).await;
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Vandelay", "Website": "vandelay.example"}),
        )
        .await;
    let contact = w
        .sf_create(
            "Contact",
            json!({"LastName": "Costanza", "Email": "george@vandelay.example", "AccountId": account}),
        )
        .await;
    let before = w.calls_by_endpoint().await;
    // The Contact's reference alone, as a feed brings it (it says what it saw).
    let item = WorkItem {
        side: Side::Salesforce,
        object: "Contact".into(),
        id: contact,
        origin: "poll".into(),
        seen: Some(Seen::Values {
            values: Default::default(),
            modified_at: 0,
            whole: false,
            listed_at: None,
            associations: Default::default(),
        }),
    };
    let outcomes = w.runner.pipeline.sync_batch(&[item]).await;
    assert_eq!(outcomes, vec![ItemOutcome::Done]);
    let company = company_of(&w, &account).await;
    let hs = w
        .hs_contact_by_email("george@vandelay.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(
        w.hs_associated("contacts", &id_of(&hs), "companies").await,
        vec![id_of(&company)]
    );
    let key = "HubSpot POST /crm/v4/associations/contacts/companies/batch/associate/default";
    assert_eq!(
        w.calls_since(&before, key).await,
        0,
        "no association written after the create"
    );
}

/// A Salesforce Contact whose Account is linked becomes a HubSpot contact created
/// associated with the Account's company (HubSpot's create takes associations): no
/// association is written after it.
#[tokio::test]
async fn a_contact_on_a_linked_account_is_created_with_its_company() {
    let w = world(true, as_contacts()).await;
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Vandelay", "Website": "vandelay.example"}),
        )
        .await;
    w.sync().await;
    let company = company_of(&w, &account).await;
    w.advance(1_000);
    let before = w.calls_by_endpoint().await;
    w.sf_create(
        "Contact",
        json!({"LastName": "Costanza", "Email": "george@vandelay.example", "AccountId": account}),
    )
    .await;
    w.sync().await;
    let hs = w
        .hs_contact_by_email("george@vandelay.example")
        .await
        .unwrap_or_else(|| panic!("no contact"));
    assert_eq!(
        w.hs_associated("contacts", &id_of(&hs), "companies").await,
        vec![id_of(&company)]
    );
    let key = "HubSpot POST /crm/v4/associations/contacts/companies/batch/associate/default";
    assert_eq!(
        w.calls_since(&before, key).await,
        0,
        "no association written after the create"
    );
}
