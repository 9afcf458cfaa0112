//! `SalesforceClient` against the Salesforce sandbox: query paging, Collections
//! chunking and per-record results, expired sessions renewed, the daily allowance as a
//! budget stop, locks retried, composite polling, describe caching, the JWT flow.

use std::time::Duration;

use crmsync_sandbox::salesforce::{Fault, SalesforceSettings};
use crmsync_sandbox::seed::SeedSpec;
use crmsync_sandbox::{Clock, SalesforceSandbox};
use crmsync_shared::adapters::http::{ErrorClass, RetryPolicy, Secret};
use crmsync_shared::adapters::salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use serde_json::{Map, Value, json};

use crate::harness::{T0, pause};

const TOKEN: &str = "00D8M0000000001!sf-integration-secret";

async fn org(clock: Clock, seed: Option<SeedSpec>, jwt_key: Option<&str>) -> SalesforceSandbox {
    let settings = SalesforceSettings {
        tokens: vec![TOKEN.into()],
        jwt_public_key: jwt_key.map(str::to_owned),
        ..SalesforceSettings::default()
    };
    SalesforceSandbox::spawn(settings, clock, seed)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn client(s: &SalesforceSandbox, clock: &Clock, auth: SalesforceAuth) -> SalesforceClient {
    let mut config = SalesforceConfig::new(s.url(), auth);
    config.login_url = s.url();
    config.retry = RetryPolicy {
        max_attempts: 5,
        base: Duration::from_millis(100),
        cap: Duration::from_secs(5),
    };
    SalesforceClient::with_pause(config, pause(clock)).unwrap_or_else(|e| panic!("{e}"))
}

fn token_client(s: &SalesforceSandbox, clock: &Clock) -> SalesforceClient {
    client(s, clock, SalesforceAuth::AccessToken(Secret::new(TOKEN)))
}

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[tokio::test]
async fn queries_page_through_every_batch() {
    let clock = Clock::frozen(T0);
    let s = org(
        clock.clone(),
        Some(SeedSpec {
            seed: 5,
            records: 6_000,
            overlap: 0.9,
            deals: None,
        }),
        None,
    )
    .await;
    let c = token_client(&s, &clock);
    let total = c
        .count("SELECT COUNT() FROM Contact")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(total > 2_000, "{total}");
    let rows = c
        .query("SELECT Id, Email FROM Contact", false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len() as u64, total);
    // One call for the count, then one per 2,000 rows.
    assert_eq!(c.calls().total(), 1 + total.div_ceil(2_000));
}

#[tokio::test]
async fn collections_go_200_at_a_time_with_per_record_results() {
    let clock = Clock::frozen(T0);
    let s = org(clock.clone(), None, None).await;
    let c = token_client(&s, &clock);
    let mut rows: Vec<(String, Map<String, Value>)> = (0..250)
        .map(|i| {
            (
                "Account".to_owned(),
                fields(json!({"Name": format!("Acct {i}")})),
            )
        })
        .collect();
    rows[7].1.insert("Name".into(), Value::Null);
    rows[210]
        .1
        .insert("Industry".into(), json!("x".repeat(300)));
    let results = c
        .create(&rows, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(results.len(), 250);
    assert_eq!(c.calls().total(), 2, "250 records are 2 calls");
    assert_eq!(results[7].errors[0].code, "REQUIRED_FIELD_MISSING");
    assert_eq!(results[7].errors[0].fields, vec!["Name"]);
    assert_eq!(results[210].errors[0].code, "STRING_TOO_LONG");
    assert_eq!(results.iter().filter(|r| r.ok()).count(), 248);

    let upserts: Vec<Map<String, Value>> = (0..3)
        .map(|i| fields(json!({"HubSpot_Company_Id__c": format!("h{i}"), "Name": format!("U{i}")})))
        .collect();
    let r = c
        .upsert("Account", "HubSpot_Company_Id__c", &upserts, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.iter().all(|x| x.created == Some(true)));
    let r = c
        .upsert("Account", "HubSpot_Company_Id__c", &upserts, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        r.iter().all(|x| x.created == Some(false)),
        "a retried upsert creates nothing"
    );
    let ids: Vec<String> = r.iter().filter_map(|x| x.id.clone()).collect();
    let fetched = c
        .retrieve("Account", &ids, &["Id", "Name"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fetched.iter().flatten().count(), 3);
}

#[tokio::test]
async fn locked_rows_are_retried_and_an_expired_session_is_renewed() {
    let clock = Clock::frozen(T0);
    let s = org(clock.clone(), None, None).await;
    let c = client(
        &s,
        &clock,
        SalesforceAuth::RefreshToken {
            client_id: "salesforce-client-id".into(),
            client_secret: Secret::new("salesforce-client-secret"),
            refresh_token: Secret::new("salesforce-refresh-token"),
        },
    );
    let created = c
        .create(
            &[("Account".into(), fields(json!({"Name": "Locked"})))],
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = created[0].id.clone().unwrap_or_default();
    s.state.inject([Fault::LockRow]);
    let r = c
        .update(
            &[(
                "Account".into(),
                fields(json!({"Id": id, "Name": "Unlocked"})),
            )],
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r[0].ok(), "{r:?}");
    // Two hours later the session has expired: renewed once, the call goes through.
    clock.advance(2 * 3_600_000 + 1);
    let rows = c
        .query("SELECT Name FROM Account", false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows[0]["Name"], "Unlocked");
    assert_eq!(
        c.calls().snapshot().get("POST /services/oauth2/token"),
        Some(&2)
    );
}

#[tokio::test]
async fn the_daily_allowance_stops_work_as_a_budget_error() {
    let clock = Clock::frozen(T0);
    let s = org(clock.clone(), None, None).await;
    let mut config =
        SalesforceConfig::new(s.url(), SalesforceAuth::AccessToken(Secret::new(TOKEN)));
    config.budget_ceiling = 0.5;
    let c = SalesforceClient::with_pause(config, pause(&clock)).unwrap_or_else(|e| panic!("{e}"));
    crmsync_sandbox::hubspot::lock(&s.state.settings).daily_api_limit = Some(4);
    c.count("SELECT COUNT() FROM Account")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.api_usage(), Some((1, 4)));
    assert!(c.check_budget().is_ok());
    c.count("SELECT COUNT() FROM Account")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.over_budget());
    assert_eq!(
        c.check_budget().err().map(|e| e.class()),
        Some(ErrorClass::Budget)
    );
    for _ in 0..2 {
        let _ = c.count("SELECT COUNT() FROM Account").await;
    }
    let err = c.count("SELECT COUNT() FROM Account").await.err();
    assert_eq!(
        err.as_ref().map(|e| e.code()),
        Some("REQUEST_LIMIT_EXCEEDED")
    );
    assert_eq!(err.map(|e| e.class()), Some(ErrorClass::Budget));
}

#[tokio::test]
async fn one_composite_call_polls_every_object_and_describe_reads_the_org_now() {
    let clock = Clock::frozen(T0);
    let s = org(
        clock.clone(),
        Some(SeedSpec {
            seed: 6,
            records: 200,
            overlap: 0.9,
            deals: None,
        }),
        None,
    )
    .await;
    let c = token_client(&s, &clock);
    let queries: Vec<(String, String)> = ["Lead", "Contact", "Account", "Opportunity"]
        .iter()
        .map(|o| ((*o).to_owned(), format!("SELECT Id, SystemModstamp FROM {o} WHERE SystemModstamp >= 2024-04-30T00:00:00Z ORDER BY SystemModstamp")))
        .collect();
    let results = c
        .composite_queries(&queries, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(results.len(), 4);
    assert!(!results["Contact"].is_empty());
    assert_eq!(c.calls().total(), 1, "four objects polled in one API call");
    // Describe answers what the org has now (the pipeline keeps what it read, for a
    // while): a field an admin deleted is gone from the next describe.
    let d1 = c.describe("Lead").await.unwrap_or_else(|e| panic!("{e}"));
    let has_title = |d: &serde_json::Value| {
        d["fields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["name"] == "Title"))
    };
    assert!(has_title(&d1));
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/_sandbox/salesforce/schema/Lead/fields/Title",
            s.url()
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(deleted.status().is_success());
    let d2 = c.describe("Lead").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!has_title(&d2));
    assert_eq!(c.calls().total(), 3);
    let err = c.query("SELECT Nope__c FROM Lead", false).await.err();
    assert_eq!(err.as_ref().map(|e| e.code()), Some("INVALID_FIELD"));
    assert_eq!(err.map(|e| e.class()), Some(ErrorClass::RecordLevel));
}

#[tokio::test]
async fn the_jwt_bearer_flow_gets_a_session() {
    let clock = Clock::running();
    let public = include_str!("../../../sandbox/tests/fixtures/jwt-test-key.pub.pem");
    let private = include_str!("../../../sandbox/tests/fixtures/jwt-test-key.pem");
    let s = org(clock.clone(), None, Some(public)).await;
    let c = client(
        &s,
        &clock,
        SalesforceAuth::Jwt {
            client_id: "salesforce-client-id".into(),
            username: "integration@crmsync-demo.com".into(),
            private_key: Secret::new(private),
        },
    );
    assert_eq!(
        c.count("SELECT COUNT() FROM Account")
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        0
    );
    let wrong = client(
        &s,
        &clock,
        SalesforceAuth::Jwt {
            client_id: "another-app".into(),
            username: "u".into(),
            private_key: Secret::new(private),
        },
    );
    let err = wrong.count("SELECT COUNT() FROM Account").await.err();
    assert_eq!(err.map(|e| e.class()), Some(ErrorClass::Fatal));
}
