//! The intake over HTTP: forged, stale and malformed pushes get a 4xx and queue
//! nothing; good ones queue their references once.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::world::{API_KEY, Counted, HS_SECRET, ORG, OUTBOUND_TOKEN, Setup, World};
use crmsync_shared::adapters::http::Secret;
use crmsync_shared::pipeline::intake::{Intake, IntakeRequest, IntakeSettings};
use crmsync_shared::ports::{Cursor, CursorStore};

fn sign(secret: &str, uri: &str, body: &str, ts: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    mac.update(format!("POST{uri}{body}{ts}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn post_hubspot(w: &World, body: &str, signature: &str, ts: &str) -> u16 {
    w.http
        .post(format!("{}/webhooks/hubspot", w.runner.url()))
        .header("content-type", "application/json")
        .header("x-hubspot-signature-v3", signature)
        .header("x-hubspot-request-timestamp", ts)
        .body(body.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .status()
        .as_u16()
}

async fn queued(w: &World) -> usize {
    w.runner
        .store
        .queued()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn forged_stale_and_malformed_webhooks_get_4xx_and_queue_nothing() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    let uri = format!("{}/webhooks/hubspot", w.runner.url());
    let body =
        r#"[{"eventId":1,"subscriptionType":"contact.creation","objectId":51,"occurredAt":1}]"#;
    let now = w.clock.now_ms().to_string();

    let forged = sign("not-the-secret", &uri, body, &now);
    assert_eq!(post_hubspot(&w, body, &forged, &now).await, 401);
    let old = (w.clock.now_ms() - 6 * 60_000).to_string();
    let stale = sign(HS_SECRET, &uri, body, &old);
    assert_eq!(post_hubspot(&w, body, &stale, &old).await, 401);
    let tampered = sign(HS_SECRET, &uri, body, &now);
    assert_eq!(
        post_hubspot(&w, &body.replace("51", "52"), &tampered, &now).await,
        401
    );
    let junk = "{\"not\": \"events\"}";
    assert_eq!(
        post_hubspot(&w, junk, &sign(HS_SECRET, &uri, junk, &now), &now).await,
        400
    );
    let huge = format!("[{}]", "1,".repeat(600_000));
    assert_eq!(
        post_hubspot(&w, &huge, &sign(HS_SECRET, &uri, &huge, &now), &now).await,
        413
    );
    assert_eq!(queued(&w).await, 0, "nothing queued");

    // The genuine request queues once; its redelivery queues nothing more.
    let good = sign(HS_SECRET, &uri, body, &now);
    assert_eq!(post_hubspot(&w, body, &good, &now).await, 200);
    assert_eq!(post_hubspot(&w, body, &good, &now).await, 200);
    assert_eq!(queued(&w).await, 1);
}

fn outbound(org: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{org}</OrganizationId><ActionId>04k</ActionId><Notification><Id>04l000000000001AAA</Id><sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>00Q8M000000000AAAA</sf:Id></sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"#
    )
}

async fn post_outbound(w: &World, token: &str, body: &str) -> (u16, String) {
    let r = w
        .http
        .post(format!(
            "{}/webhooks/salesforce?token={token}",
            w.runner.url()
        ))
        .header("content-type", "text/xml")
        .body(body.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn outbound_messages_need_the_token_and_the_org() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    assert_eq!(post_outbound(&w, "wrong", &outbound(ORG)).await.0, 401);
    assert_eq!(
        post_outbound(&w, OUTBOUND_TOKEN, &outbound("00D000000000999AAA"))
            .await
            .0,
        403
    );
    assert_eq!(post_outbound(&w, OUTBOUND_TOKEN, "<not-soap").await.0, 400);
    assert_eq!(queued(&w).await, 0);
    let (status, body) = post_outbound(&w, OUTBOUND_TOKEN, &outbound(ORG)).await;
    assert_eq!(status, 200);
    assert!(body.contains("<Ack>true</Ack>"), "{body}");
    assert_eq!(queued(&w).await, 1);
}

#[tokio::test]
async fn manual_sync_and_health_need_the_key() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    let url = |p: &str| format!("{}{p}", w.runner.url());
    let request = json!({"records": [{"side": "hubspot", "object": "contacts", "id": "1"}]});
    let r = w
        .http
        .post(url("/sync"))
        .json(&request)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);
    let r = w
        .http
        .get(url("/health"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);
    let bad = json!({"records": [{"side": "hubspot", "object": "planets", "id": "1"}]});
    let r = w
        .http
        .post(url("/sync"))
        .bearer_auth(API_KEY)
        .json(&bad)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(queued(&w).await, 0);
    let r = w
        .http
        .post(url("/sync"))
        .bearer_auth(API_KEY)
        .json(&request)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(queued(&w).await, 1);

    // A manual sync of a real contact, then health shows it.
    let id = w
        .hs_create(json!({"email": "manual@example.org", "lastname": "Manual"}))
        .await;
    let request = json!({"records": [{"side": "hubspot", "object": "contacts", "id": id}]});
    let r = w
        .http
        .post(url("/sync"))
        .bearer_auth(API_KEY)
        .json(&request)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 202);
    w.settle().await;
    assert_eq!(w.sf_by_email("Lead", "manual@example.org").await.len(), 1);
    let health: Value = w
        .http
        .get(url("/health"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let flows = health["flows"].as_array().cloned().unwrap_or_default();
    let contacts = flows
        .iter()
        .find(|f| f["pair"] == "contacts" && f["direction"] == "to_salesforce");
    assert_eq!(
        contacts.map(|f| f["records"]["synced"].clone()),
        Some(json!(1)),
        "{health}"
    );
    assert_eq!(health["api"][0]["side"], "hubspot", "{health}");
    assert!(health["api"][0]["calls_24h"].as_u64() > Some(0), "{health}");
    assert_eq!(health["api"][1]["daily_limit"], 100_000, "{health}");
    assert_eq!(
        health["skipped_by_reason"]["deleted_in_hubspot"], 1,
        "{health}"
    );
}

/// A push that could not be queued gets a 5xx, so its sender retries; the retry is not
/// mistaken for a duplicate.
#[tokio::test]
async fn an_enqueue_failure_answers_5xx_and_the_retry_is_queued() {
    use std::sync::Arc;

    use crmsync_shared::adapters::http::Secret;
    use crmsync_shared::pipeline::intake::{Intake, IntakeRequest, IntakeSettings};

    use super::backfill::FlakyQueue;

    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    let store = w.runner.store.clone();
    let settings = IntakeSettings {
        public_url: "https://hooks.example.com/prod".into(),
        hubspot_app_secret: Some(Secret::new(HS_SECRET)),
        salesforce_org_id: Some(ORG.into()),
        salesforce_outbound_token: Some(Secret::new(OUTBOUND_TOKEN)),
        api_key: None,
    };
    let broken = Intake {
        settings: settings.clone(),
        pipeline: w.runner.pipeline.clone(),
        queue: Arc::new(FlakyQueue::new(store.clone(), 0)),
        cursors: store.clone(),
    };
    let working = Intake {
        queue: store.clone(),
        ..broken.clone()
    };
    let body =
        r#"[{"eventId":9,"subscriptionType":"contact.creation","objectId":77,"occurredAt":1}]"#;
    let ts = w.clock.now_ms().to_string();
    let request = IntakeRequest {
        method: "POST".into(),
        path: "/webhooks/hubspot".into(),
        query: None,
        headers: vec![
            (
                "x-hubspot-signature-v3".into(),
                sign(
                    HS_SECRET,
                    "https://hooks.example.com/prod/webhooks/hubspot",
                    body,
                    &ts,
                ),
            ),
            ("x-hubspot-request-timestamp".into(), ts.clone()),
        ],
        body: body.as_bytes().to_vec(),
    };
    assert_eq!(broken.handle(&request).await.status, 503);
    assert_eq!(queued(&w).await, 0);
    assert_eq!(
        working.handle(&request).await.status,
        200,
        "the retry is not dropped as a duplicate"
    );
    assert_eq!(queued(&w).await, 1);

    let outbound_request = IntakeRequest {
        method: "POST".into(),
        path: "/webhooks/salesforce".into(),
        query: Some(format!("token={OUTBOUND_TOKEN}")),
        headers: Vec::new(),
        body: outbound(ORG).into_bytes(),
    };
    let broken = Intake {
        queue: Arc::new(FlakyQueue::new(store.clone(), 0)),
        ..working.clone()
    };
    let answer = broken.handle(&outbound_request).await;
    assert_eq!(answer.status, 503);
    assert!(
        !answer.body.contains("<Ack>true</Ack>"),
        "no Ack before the enqueue"
    );
    assert!(
        working
            .handle(&outbound_request)
            .await
            .body
            .contains("<Ack>true</Ack>")
    );
    assert_eq!(queued(&w).await, 2);
}

#[tokio::test]
async fn a_manual_sync_of_a_hubspot_list_syncs_its_members() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    let a = w
        .hs_create(json!({"email": "list-a@example.org", "lastname": "A"}))
        .await;
    let b = w
        .hs_create(json!({"email": "list-b@example.org", "lastname": "B"}))
        .await;
    w.hs_create(json!({"email": "not-in-list@example.org", "lastname": "C"}))
        .await;
    let token = super::world::HS_TOKEN;
    let list: Value = w
        .http
        .post(format!("{}/crm/v3/lists", w.hs.url()))
        .bearer_auth(token)
        .json(&json!({"name": "To sync", "objectTypeId": "0-1", "processingType": "MANUAL"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let list_id = list["list"]["listId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let r = w
        .http
        .put(format!(
            "{}/crm/v3/lists/{list_id}/memberships/add",
            w.hs.url()
        ))
        .bearer_auth(token)
        .json(&json!([a, b]))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.status().is_success(), "{}", r.status());
    let r = w
        .http
        .post(format!("{}/sync", w.runner.url()))
        .bearer_auth(API_KEY)
        .json(&json!({"hubspot_list": list_id}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 202);
    w.settle().await;
    assert_eq!(
        w.sf_records("Lead").await.len(),
        2,
        "the list's two members, and only them"
    );
}

/// `{"import": "salesforce:Lead"}` on `/sync` starts an import the poller carries out;
/// a target crmsync does not sync is a 400 naming what it does.
#[tokio::test]
async fn a_manual_import_request_is_carried_out_by_the_poller() {
    // Pushes off: the Leads reach HubSpot by the import, not by outbound messages.
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    w.sync().await;
    let rows: Vec<Value> = (0..30)
        .map(|i| json!({"LastName": format!("L{i}"), "Email": format!("asked{i}@import.example"), "Company": "C"}))
        .collect();
    w.post(
        &w.sf_control("/objects/Lead/load"),
        json!({"records": rows}),
    )
    .await;
    // The Lead feed has passed these records (as records an earlier rule kept out are
    // passed): its cursors move beyond the load, so that only the import brings them.
    let store = w.runner.store.as_ref();
    for feed in ["salesforce:Lead", "settled:salesforce:Lead"] {
        let current = store.cursor(feed).await.unwrap_or_else(|e| panic!("{e}"));
        let beyond = Cursor {
            at: w.clock.now_ms() + 3_600_000,
            last_id: String::new(),
        };
        store
            .advance(feed, current.as_ref(), &beyond)
            .await
            .unwrap_or_else(|e| panic!("{feed}: {e}"));
    }
    let ask = |body: Value| {
        w.http
            .post(format!("{}/sync", w.runner.url()))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
    };
    for bad in [
        json!({"import": "salesforce:Nope__c"}),
        json!({"import": "hubspot:contacts"}),
        json!({"import": "salesforce:Lead", "hubspot_list": "1"}),
    ] {
        let r = ask(bad.clone()).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 400, "{bad}");
    }
    let r = ask(json!({"import": "salesforce:Lead"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 202);
    let answer: Value = r.json().await.unwrap_or_default();
    assert_eq!(answer["start"], "started", "{answer}");
    let r = ask(json!({"import": "salesforce:Lead"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answer: Value = r.json().await.unwrap_or_default();
    assert_eq!(answer["start"], "resumed", "{answer}");
    w.advance(1_000);
    w.poll_and_settle().await;
    let imported = w
        .hs_contacts()
        .await
        .iter()
        .filter(|c| {
            c["properties"]["email"]
                .as_str()
                .is_some_and(|e| e.ends_with("@import.example"))
        })
        .count();
    assert_eq!(imported, 30);
    // Listed in full, the import is done: the next request starts a new one.
    let r = ask(json!({"import": "salesforce:Lead"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answer: Value = r.json().await.unwrap_or_default();
    assert_eq!(answer["start"], "started", "{answer}");
}

/// A pushed change the link already holds is not queued: a linked contact's creation,
/// or a property set to the value last synced (our own write, come back: reading it
/// again would find nothing to do). Anything else is queued.
#[tokio::test]
async fn a_webhook_the_link_already_holds_is_not_queued() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    w.sync().await;
    let id = w
        .hs_create(json!({"email": "held@example.org", "firstname": "Ada", "lastname": "Held"}))
        .await;
    w.sync().await;
    let lead = w.sf_by_email("Lead", "held@example.org").await;
    assert_eq!(lead.len(), 1, "synced");
    assert_eq!(queued(&w).await, 0);
    let uri = format!("{}/webhooks/hubspot", w.runner.url());
    let mut event_id = 100;
    let mut post = async |event: Value| {
        event_id += 1;
        let mut event = event;
        event["eventId"] = json!(event_id);
        event["objectId"] = json!(id.parse::<u64>().unwrap_or_default());
        event["occurredAt"] = json!(w.clock.now_ms());
        let body = json!([event]).to_string();
        let now = w.clock.now_ms().to_string();
        let signature = sign(HS_SECRET, &uri, &body, &now);
        assert_eq!(post_hubspot(&w, &body, &signature, &now).await, 200);
        queued(&w).await
    };
    let same = json!({"subscriptionType": "contact.propertyChange", "propertyName": "firstname", "propertyValue": "Ada"});
    assert_eq!(post(same).await, 0, "the value last synced");
    let lead_id = lead[0]["Id"].as_str().unwrap_or_default().to_owned();
    let identity = json!({"subscriptionType": "contact.propertyChange", "propertyName": "salesforceleadid", "propertyValue": lead_id});
    assert_eq!(post(identity).await, 0, "the Salesforce id the link holds");
    let created = json!({"subscriptionType": "contact.creation"});
    assert_eq!(post(created).await, 0, "a linked record's creation");
    let unmapped = json!({"subscriptionType": "contact.propertyChange", "propertyName": "hs_lead_status", "propertyValue": "NEW"});
    assert_eq!(post(unmapped).await, 1, "a property the link does not hold");
    let other = json!({"subscriptionType": "contact.propertyChange", "propertyName": "firstname", "propertyValue": "Grace"});
    assert_eq!(
        post(other).await,
        1,
        "a new value (the record is queued once)"
    );
}

/// A webhook delivery holds up to 100 events, and during a backfill most are our own
/// writes come back. The intake looks up the delivery's links in one call and claims
/// its events' keys in another, not a store round trip per event: the store's lock is
/// shared by every worker (at 30,000 people per side, one lookup per event was 127,000
/// of the run's 560,000 store calls).
#[tokio::test]
async fn a_webhook_deliverys_links_and_event_keys_are_one_store_call_each() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    w.sync().await;
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(
            w.hs_create(json!({"email": format!("batch{n}@example.org"), "firstname": "Ada", "lastname": format!("Batch{n}")}))
                .await,
        );
    }
    w.sync().await;
    assert_eq!(queued(&w).await, 0);
    let links = std::sync::Arc::new(Counted::new(w.runner.pipeline.links.clone()));
    let claims = std::sync::Arc::new(Counted::new(w.runner.pipeline.claims.clone()));
    let mut pipeline = w.runner.pipeline.clone();
    pipeline.links = links.clone();
    pipeline.claims = claims.clone();
    let public_url = "https://intake.example";
    let intake = Intake {
        settings: IntakeSettings {
            public_url: public_url.into(),
            hubspot_app_secret: Some(Secret::new(HS_SECRET)),
            salesforce_org_id: Some(ORG.into()),
            salesforce_outbound_token: Some(Secret::new(OUTBOUND_TOKEN)),
            api_key: Some(Secret::new(API_KEY)),
        },
        pipeline,
        queue: w.runner.store.clone(),
        cursors: w.runner.store.clone(),
    };
    // Each contact: our own write come back (the value last synced), and a new value.
    let mut events = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let object = id.parse::<u64>().unwrap_or_default();
        for (k, value) in [(0, "Ada"), (1, "Grace")] {
            events.push(
                json!({"eventId": 1_000 + 2 * n + k, "subscriptionType": "contact.propertyChange",
                "objectId": object, "propertyName": "firstname", "propertyValue": value,
                "occurredAt": w.clock.now_ms()}),
            );
        }
    }
    let body = Value::from(events).to_string();
    let now = w.clock.now_ms().to_string();
    let uri = format!("{public_url}/webhooks/hubspot");
    let request = IntakeRequest {
        method: "POST".into(),
        path: "/webhooks/hubspot".into(),
        headers: vec![
            (
                "x-hubspot-signature-v3".into(),
                sign(HS_SECRET, &uri, &body, &now),
            ),
            ("x-hubspot-request-timestamp".into(), now),
        ],
        body: body.into_bytes(),
        ..IntakeRequest::default()
    };
    let answer = intake.handle(&request).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(queued(&w).await, 10, "each new value queued, no echo");
    assert_eq!(links.calls(), 1, "the delivery's links, looked up at once");
    assert_eq!(
        claims.calls(),
        2,
        "its new events' keys claimed at once, and its changes marked seen at once"
    );
}
