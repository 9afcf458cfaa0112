//! The HubSpot sandbox over HTTP on loopback, as strict as HubSpot: auth, paging, batch
//! limits, 207 partial results, unique emails, search limits and lag, rate limits,
//! merges, history and faults.

use crmsync_sandbox::hubspot::limits::RateLimits;
use crmsync_sandbox::seed::SeedSpec;
use crmsync_sandbox::{Clock, HubSpotSandbox, HubSpotSettings};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "integration-token";
const HUMAN_TOKEN: &str = "someone-else";
/// 2024-05-01T00:00:00Z.
const T0: i64 = 1_714_521_600_000;

struct Portal {
    sandbox: HubSpotSandbox,
    http: reqwest::Client,
}

async fn portal(settings: HubSpotSettings, seed: Option<SeedSpec>) -> Portal {
    let settings = HubSpotSettings {
        tokens: vec![TOKEN.into(), HUMAN_TOKEN.into()],
        ..settings
    };
    let sandbox = HubSpotSandbox::spawn(settings, Clock::frozen(T0), seed)
        .await
        .unwrap_or_else(|e| panic!("sandbox: {e}"));
    Portal {
        sandbox,
        http: reqwest::Client::new(),
    }
}

/// Limits and lag off unless a test is about them.
fn relaxed() -> HubSpotSettings {
    HubSpotSettings {
        limits: None,
        search_lag_ms: 0,
        ..HubSpotSettings::default()
    }
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Portal {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sandbox.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, body, Some(TOKEN)).await
    }

    async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call(method, &format!("/_sandbox/hubspot{path}"), body, None)
            .await
    }

    async fn create_contact(&self, email: &str) -> String {
        let r = self
            .api(
                "POST",
                "/crm/v3/objects/contacts",
                Some(json!({"properties": {"email": email, "firstname": "Ada"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().unwrap_or_default().to_owned()
    }
}

#[tokio::test]
async fn calls_without_a_valid_token_get_hubspots_401() {
    let p = portal(relaxed(), None).await;
    for token in [None, Some("wrong")] {
        let r = p.call("GET", "/crm/v3/objects/contacts", None, token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body["category"], "INVALID_AUTHENTICATION");
        assert_eq!(r.body["status"], "error");
        assert!(
            r.body["correlationId"]
                .as_str()
                .is_some_and(|c| c.len() == 36)
        );
    }
}

#[tokio::test]
async fn a_contact_is_created_read_by_id_or_email_updated_and_keeps_history() {
    let p = portal(relaxed(), None).await;
    let id = p.create_contact("ada@example.com").await;
    let r = p
        .api("GET", &format!("/crm/v3/objects/contacts/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["properties"]["email"], "ada@example.com");
    assert_eq!(r.body["properties"]["hs_object_id"], id.as_str());
    assert_eq!(
        r.body["properties"]["lastmodifieddate"],
        "2024-05-01T00:00:00.000Z"
    );
    assert_eq!(r.body["archived"], false);

    let r = p
        .api(
            "GET",
            "/crm/v3/objects/contacts/ADA@example.com?idProperty=email&properties=firstname",
            None,
        )
        .await;
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["properties"], json!({"firstname": "Ada"}));

    p.control("POST", "/clock/advance", Some(json!({"ms": 60_000})))
        .await;
    let r = p
        .call(
            "PATCH",
            &format!("/crm/v3/objects/contacts/{id}"),
            Some(json!({"properties": {"firstname": "Adaline"}})),
            Some(HUMAN_TOKEN),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = p
        .api(
            "GET",
            &format!("/crm/v3/objects/contacts/{id}?propertiesWithHistory=firstname"),
            None,
        )
        .await;
    let history = &r.body["propertiesWithHistory"]["firstname"];
    assert_eq!(history[0]["value"], "Adaline");
    assert_eq!(history[0]["sourceType"], "CRM_UI");
    assert_eq!(history[0]["timestamp"], "2024-05-01T00:01:00.000Z");
    assert_eq!(history[1]["value"], "Ada");
    assert_eq!(history[1]["sourceType"], "INTEGRATION");
    assert_eq!(r.body["updatedAt"], "2024-05-01T00:01:00.000Z");
}

#[tokio::test]
async fn a_duplicate_email_is_hubspots_409_naming_the_existing_id() {
    let p = portal(relaxed(), None).await;
    let id = p.create_contact("dup@example.com").await;
    let r = p
        .api(
            "POST",
            "/crm/v3/objects/contacts",
            Some(json!({"properties": {"email": "Dup@Example.com"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["category"], "CONFLICT");
    assert_eq!(
        r.body["message"],
        format!("Contact already exists. Existing ID: {id}")
    );
}

#[tokio::test]
async fn invalid_unknown_and_read_only_properties_are_refused_together() {
    let p = portal(relaxed(), None).await;
    let r = p
        .api(
            "POST",
            "/crm/v3/objects/contacts",
            Some(json!({"properties": {"email": "x@example.com", "lifecyclestage": "reports", "description": "x", "hs_object_id": "1"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["category"], "VALIDATION_ERROR");
    let codes: Vec<&str> = r.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["code"].as_str())
        .collect();
    assert_eq!(
        codes,
        vec!["INVALID_OPTION", "PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE"]
    );
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Property values were not valid: ")
    );
}

#[tokio::test]
async fn lists_page_with_after_and_hubspots_page_limit() {
    let p = portal(
        relaxed(),
        Some(SeedSpec {
            seed: 3,
            records: 500,
            overlap: 0.5,
            deals: None,
        }),
    )
    .await;
    let r = p
        .api("GET", "/crm/v3/objects/contacts?limit=101", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let dump = p.control("GET", "/objects/contacts", None).await;
    let total = dump.body["results"].as_array().map_or(0, Vec::len);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/crm/v3/objects/contacts?limit=100&after={a}"),
            None => "/crm/v3/objects/contacts?limit=100".to_owned(),
        };
        let r = p.api("GET", &path, None).await;
        assert_eq!(r.status, StatusCode::OK);
        let page = r.body["results"].as_array().cloned().unwrap_or_default();
        assert!(page.len() <= 100);
        seen.extend(
            page.iter()
                .filter_map(|c| c["id"].as_str().map(str::to_owned)),
        );
        match r.body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    assert!(total > 100);
    assert_eq!(seen.len(), total);
    seen.dedup();
    assert_eq!(seen.len(), total);
}

#[tokio::test]
async fn batches_over_the_input_limit_are_refused() {
    let p = portal(relaxed(), None).await;
    let inputs: Vec<Value> = (0..101).map(|i| json!({"id": i.to_string()})).collect();
    let r = p
        .api(
            "POST",
            "/crm/v3/objects/contacts/batch/read",
            Some(json!({"inputs": inputs})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["message"],
        "The maximum number of inputs supported in a batch is 100. Please reduce the number of items and try again"
    );
    let inputs: Vec<Value> = (0..51).map(|i| json!({"id": i.to_string()})).collect();
    let r = p
        .api(
            "POST",
            "/crm/v3/objects/contacts/batch/read",
            Some(json!({"inputs": inputs, "propertiesWithHistory": ["email"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("is 50")
    );
}

#[tokio::test]
async fn batch_read_reports_missing_ids_in_a_207() {
    let p = portal(relaxed(), None).await;
    let id = p.create_contact("a@example.com").await;
    let r = p
        .api(
            "POST",
            "/crm/v3/objects/contacts/batch/read",
            Some(json!({"properties": ["email"], "inputs": [{"id": id}, {"id": "999"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(r.body["numErrors"], 1);
    assert_eq!(r.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(r.body["errors"][0]["context"]["ids"], json!(["999"]));
    assert_eq!(r.body["results"][0]["properties"]["email"], "a@example.com");
}

#[tokio::test]
async fn a_duplicate_email_fails_a_batch_create_whole_unless_every_input_is_traced() {
    let p = portal(relaxed(), None).await;
    let existing = p.create_contact("taken@example.com").await;
    let batch = json!({"inputs": [
        {"properties": {"email": "new1@example.com"}},
        {"properties": {"email": "taken@example.com"}},
    ]});
    let r = p
        .api("POST", "/crm/v3/objects/contacts/batch/create", Some(batch))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.body["message"],
        format!("Contact already exists. Existing ID: {existing}")
    );
    let r = p
        .api(
            "GET",
            "/crm/v3/objects/contacts/new1@example.com?idProperty=email",
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "nothing of the failed batch was written"
    );

    let traced = json!({"inputs": [
        {"properties": {"email": "new1@example.com"}, "objectWriteTraceId": "a"},
        {"properties": {"email": "taken@example.com"}, "objectWriteTraceId": "b"},
    ]});
    let r = p
        .api(
            "POST",
            "/crm/v3/objects/contacts/batch/create",
            Some(traced),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert_eq!(r.body["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["errors"][0]["category"], "CONFLICT");
    assert_eq!(
        r.body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["b"])
    );
}

/// A create takes the records to associate the new one with (`associations`, by type
/// id), checked with the properties: a type that associates the object with nothing,
/// or a record that does not exist, refuses the whole batch and creates nothing.
#[tokio::test]
async fn a_batch_create_associates_what_its_inputs_name() {
    let p = portal(relaxed(), None).await;
    let r = p
        .api(
            "POST",
            "/crm/v3/objects/companies",
            Some(json!({"properties": {"name": "Acme"}, "associations": []})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let company = r.body["id"].as_str().unwrap_or_default().to_owned();
    let to = |id: &str, type_id: u32| json!([{"to": {"id": id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}]);
    for (associations, why) in [
        (to("999999", 279), "no such company"),
        (to(&company, 9_999), "no such type"),
    ] {
        let batch = json!({"inputs": [
            {"properties": {"email": "ok@example.com"}, "objectWriteTraceId": "a"},
            {"properties": {"email": "bad@example.com"}, "objectWriteTraceId": "b", "associations": associations},
        ]});
        let r = p
            .api("POST", "/crm/v3/objects/contacts/batch/create", Some(batch))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{why}: {}", r.body);
        assert_eq!(r.body["category"], "VALIDATION_ERROR", "{why}");
    }
    let r = p
        .api(
            "GET",
            "/crm/v3/objects/contacts/ok@example.com?idProperty=email",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "nothing was created");

    let batch = json!({"inputs": [
        {"properties": {"email": "ann@example.com"}, "objectWriteTraceId": "a", "associations": to(&company, 279)},
        {"properties": {"email": "bob@example.com"}, "objectWriteTraceId": "b", "associations": []},
    ]});
    let r = p
        .api("POST", "/crm/v3/objects/contacts/batch/create", Some(batch))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id_of = |email: &str| {
        r.body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["properties"]["email"] == email)
            .and_then(|c| c["id"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    for (email, expected) in [("ann@example.com", 1), ("bob@example.com", 0)] {
        let path = format!(
            "/crm/v4/objects/contacts/{}/associations/companies",
            id_of(email)
        );
        let r = p.api("GET", &path, None).await;
        assert_eq!(
            r.body["results"].as_array().map(Vec::len),
            Some(expected),
            "{email}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn batch_upsert_by_email_updates_existing_and_creates_new() {
    let p = portal(relaxed(), None).await;
    let id = p.create_contact("known@example.com").await;
    let r = p
        .api(
            "POST",
            "/crm/v3/objects/contacts/batch/upsert",
            Some(json!({"inputs": [
                {"id": "KNOWN@example.com", "idProperty": "email", "properties": {"lastname": "Known"}},
                {"id": "fresh@example.com", "idProperty": "email", "properties": {"lastname": "Fresh"}},
            ]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let results = r.body["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results[0]["id"], id.as_str());
    assert_eq!(results[0]["new"], false);
    assert_eq!(results[1]["new"], true);
    assert_eq!(results[1]["properties"]["email"], "fresh@example.com");
}

async fn search(p: &Portal, body: Value) -> Reply {
    p.api("POST", "/crm/v3/objects/contacts/search", Some(body))
        .await
}

#[tokio::test]
async fn search_filters_sorts_and_pages() {
    let p = portal(relaxed(), None).await;
    for (i, name) in ["Ana", "Ben", "Carla", "Dan"].iter().enumerate() {
        p.api(
            "POST",
            "/crm/v3/objects/contacts",
            Some(json!({"properties": {"email": format!("{}@acme.com", name.to_lowercase()), "firstname": name, "lifecyclestage": if i % 2 == 0 {"lead"} else {"customer"}}})),
        )
        .await;
    }
    let r = search(&p, json!({"filterGroups": [{"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]}], "properties": ["firstname"]})).await;
    assert_eq!(r.body["total"], 2);
    let r = search(
        &p,
        json!({"filterGroups": [
            {"filters": [{"propertyName": "firstname", "operator": "IN", "values": ["ana", "dan"]}]},
            {"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "carla*"}]}
        ], "sorts": [{"propertyName": "firstname", "direction": "DESCENDING"}], "properties": ["firstname"], "limit": 2}),
    )
    .await;
    assert_eq!(r.body["total"], 3);
    let names: Vec<&str> = r.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["properties"]["firstname"].as_str())
        .collect();
    assert_eq!(names, vec!["Dan", "Carla"]);
    assert_eq!(r.body["paging"]["next"]["after"], "2");
    let r = search(&p, json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": T0.to_string()}, {"propertyName": "phone", "operator": "NOT_HAS_PROPERTY"}]}]})).await;
    assert_eq!(r.body["total"], 4);
}

#[tokio::test]
async fn search_refuses_what_hubspot_refuses() {
    let p = portal(relaxed(), None).await;
    let filter = json!({"propertyName": "email", "operator": "HAS_PROPERTY"});
    let six_groups: Vec<Value> = (0..6).map(|_| json!({"filters": [filter]})).collect();
    let seven_filters = json!([{"filters": vec![filter.clone(); 7]}]);
    let nineteen: Vec<Value> = (0..4)
        .map(|_| json!({"filters": vec![filter.clone(); 5]}))
        .collect();
    for body in [
        json!({"filterGroups": six_groups}),
        json!({"filterGroups": seven_filters}),
        json!({"filterGroups": nineteen}),
        json!({"limit": 201}),
        json!({"sorts": [{"propertyName": "email"}, {"propertyName": "firstname"}]}),
        json!({"after": "9950", "limit": 100}),
    ] {
        let r = search(&p, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body["category"], "VALIDATION_ERROR");
    }
}

#[tokio::test]
async fn search_stops_at_ten_thousand_results() {
    let p = portal(
        relaxed(),
        Some(SeedSpec {
            seed: 5,
            records: 20_500,
            overlap: 0.6,
            deals: None,
        }),
    )
    .await;
    let r = search(&p, json!({"limit": 200, "after": "9800"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["total"].as_u64().unwrap_or(0) > 10_000);
    assert!(
        r.body["paging"].is_null(),
        "no page past 10,000: {}",
        r.body["paging"]
    );
    let r = search(&p, json!({"limit": 1, "after": "10000"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn search_lags_writes_until_the_index_catches_up() {
    let settings = HubSpotSettings {
        limits: None,
        search_lag_ms: 3_000,
        ..HubSpotSettings::default()
    };
    let p = portal(settings, None).await;
    let id = p.create_contact("late@example.com").await;
    let find = json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "late@example.com"}]}]});
    assert_eq!(search(&p, find.clone()).await.body["total"], 0);
    // A direct read sees it at once.
    let r = p
        .api("GET", &format!("/crm/v3/objects/contacts/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    p.control("POST", "/clock/advance", Some(json!({"ms": 3_000})))
        .await;
    assert_eq!(search(&p, find).await.body["total"], 1);
}

#[tokio::test]
async fn the_integration_gets_429_after_its_burst_with_hubspots_headers() {
    let settings = HubSpotSettings {
        limits: Some(RateLimits {
            per_ten_seconds: 5,
            daily: 1_000,
            search_per_second: 5,
        }),
        search_lag_ms: 0,
        ..HubSpotSettings::default()
    };
    let p = portal(settings, None).await;
    for i in 0..5 {
        let r = p.api("GET", "/crm/v3/objects/contacts", None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["x-hubspot-ratelimit-max"], "5");
        assert_eq!(
            r.headers["x-hubspot-ratelimit-remaining"],
            (4 - i).to_string().as_str()
        );
        assert_eq!(
            r.headers["x-hubspot-ratelimit-interval-milliseconds"],
            "10000"
        );
    }
    let r = p.api("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(r.body["errorType"], "RATE_LIMIT");
    assert_eq!(r.headers["x-hubspot-ratelimit-remaining"], "0");
    assert!(r.headers.contains_key("retry-after"));
    // The counters say which calls a limit refused.
    let counters = p.control("GET", "/counters", None).await.body;
    assert_eq!(
        counters["rate_limited"]["GET /crm/v3/objects/contacts"], 1,
        "{counters}"
    );
    // People are not rate-limited.
    let r = p
        .call("GET", "/crm/v3/objects/contacts", None, Some(HUMAN_TOKEN))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    p.control("POST", "/clock/advance", Some(json!({"ms": 10_000})))
        .await;
    assert_eq!(
        p.api("GET", "/crm/v3/objects/contacts", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_merge_gives_a_new_id_and_both_old_ids_still_resolve() {
    let p = portal(relaxed(), None).await;
    let a = p.create_contact("primary@example.com").await;
    let b = p.create_contact("other@example.com").await;
    p.api(
        "PATCH",
        &format!("/crm/v3/objects/contacts/{b}"),
        Some(json!({"properties": {"phone": "+1 555 0100"}})),
    )
    .await;
    let r = p
        .api(
            "POST",
            "/crm/v3/objects/contacts/merge",
            Some(json!({"primaryObjectId": a, "objectIdToMerge": b})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new_id = r.body["id"].as_str().unwrap_or_default().to_owned();
    assert!(new_id != a && new_id != b);
    assert_eq!(
        r.body["properties"]["hs_merged_object_ids"],
        format!("{a};{b}")
    );
    for old in [&a, &b] {
        let r = p
            .api(
                "GET",
                &format!("/crm/v3/objects/contacts/{old}?properties=email,phone"),
                None,
            )
            .await;
        assert_eq!(r.body["id"], new_id.as_str());
        assert_eq!(r.body["properties"]["email"], "primary@example.com");
        assert_eq!(r.body["properties"]["phone"], "+1 555 0100");
    }
}

#[tokio::test]
async fn calls_are_counted_per_caller_and_endpoint_and_faults_hit_the_integration() {
    let p = portal(relaxed(), None).await;
    p.api("GET", "/crm/v3/objects/contacts", None).await;
    p.api(
        "POST",
        "/crm/v3/objects/contacts/batch/read",
        Some(json!({"inputs": []})),
    )
    .await;
    p.call("GET", "/crm/v3/objects/contacts", None, Some(HUMAN_TOKEN))
        .await;
    p.control(
        "POST",
        "/objects/contacts",
        Some(json!({"properties": {"email": "ui@example.com"}})),
    )
    .await;
    let c = p.control("GET", "/counters", None).await.body;
    assert_eq!(c["integration"]["GET /crm/v3/objects/contacts"], 1);
    assert_eq!(
        c["integration"]["POST /crm/v3/objects/contacts/batch/read"],
        1
    );
    assert_eq!(c["human"]["GET /crm/v3/objects/contacts"], 1);

    p.control(
        "POST",
        "/faults",
        Some(json!({"faults": [{"status": 503}, {"status": 429}]})),
    )
    .await;
    assert_eq!(
        p.api("GET", "/crm/v3/objects/contacts", None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let r = p.api("GET", "/crm/v3/objects/contacts", None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["category"], "RATE_LIMITS");
    assert_eq!(
        p.api("GET", "/crm/v3/objects/contacts", None).await.status,
        StatusCode::OK
    );
}

/// A person associates records in the UI (the control API): no API call is counted, an
/// injected fault does not hit it, and the API reads the association as any other.
#[tokio::test]
async fn a_persons_association_is_not_an_api_call() {
    let p = portal(relaxed(), None).await;
    let contact = p.create_contact("linked@example.com").await;
    let company = p
        .control(
            "POST",
            "/objects/companies",
            Some(json!({"properties": {"name": "Linked Co"}})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    p.control(
        "POST",
        "/faults",
        Some(json!({"faults": [{"status": 503}]})),
    )
    .await;
    let before = p.control("GET", "/counters", None).await.body;
    let r = p
        .control(
            "PUT",
            &format!("/objects/contacts/{contact}/associations/companies/{company}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(p.control("GET", "/counters", None).await.body, before);
    // The fault is still armed: it meets the integration's next call.
    let path = format!("/crm/v4/objects/contacts/{contact}/associations/companies");
    assert_eq!(
        p.api("GET", &path, None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let r = p.api("GET", &path, None).await;
    assert_eq!(
        r.body["results"][0]["toObjectId"].as_str(),
        Some(company.as_str()),
        "{}",
        r.body
    );
    // A record that does not exist is a 404, as in the API.
    let r = p
        .control(
            "PUT",
            &format!("/objects/contacts/{contact}/associations/companies/999999"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A scheduled person's edit lands right after the integration's next read (not before,
/// not on a write), as a person's: the window a sync's read-modify-write has. Scheduled
/// after no reads, it lands as the next read arrives.
#[tokio::test]
async fn a_scheduled_person_edit_lands_after_the_integrations_next_read() {
    let p = portal(relaxed(), None).await;
    let id = p.create_contact("window@example.com").await;
    let r = p
        .control(
            "POST",
            "/faults",
            Some(json!({"faults": [{"person_edit": {"object": "contacts", "id": id, "properties": {"firstname": "Person"}}, "after_reads": 2}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let path = format!("/crm/v3/objects/contacts/{id}?properties=firstname");
    let first = p.api("GET", &path, None).await;
    assert_eq!(first.body["properties"]["firstname"], "Ada");
    // A write is not a read: the edit still waits.
    p.api(
        "PATCH",
        &format!("/crm/v3/objects/contacts/{id}"),
        Some(json!({"properties": {"lastname": "Sync"}})),
    )
    .await;
    let second = p.api("GET", &path, None).await;
    assert_eq!(
        second.body["properties"]["firstname"], "Ada",
        "it lands after the read"
    );
    let third = p.api("GET", &path, None).await;
    assert_eq!(third.body["properties"]["firstname"], "Person");
    // After no reads: as the next read arrives, before it is answered.
    p.control(
        "POST",
        "/faults",
        Some(json!({"faults": [{"person_edit": {"object": "contacts", "id": id, "properties": {"firstname": "Now"}}, "after_reads": 0}]})),
    )
    .await;
    let fourth = p.api("GET", &path, None).await;
    assert_eq!(fourth.body["properties"]["firstname"], "Now");
    let bad = p
        .control(
            "POST",
            "/faults",
            Some(json!({"faults": [{"person_edit": {"object": "contacts"}}]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn control_edits_are_a_humans_and_archived_records_leave_reads_and_search() {
    let p = portal(relaxed(), None).await;
    let r = p
        .control(
            "POST",
            "/objects/contacts",
            Some(json!({"properties": {"email": "ui@example.com"}})),
        )
        .await;
    let id = r.body["id"].as_str().unwrap_or_default().to_owned();
    let r = p
        .api(
            "GET",
            &format!("/crm/v3/objects/contacts/{id}?propertiesWithHistory=email"),
            None,
        )
        .await;
    assert_eq!(
        r.body["propertiesWithHistory"]["email"][0]["sourceType"],
        "CRM_UI"
    );
    assert_eq!(
        p.api("DELETE", &format!("/crm/v3/objects/contacts/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        p.api("GET", &format!("/crm/v3/objects/contacts/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = p
        .api(
            "GET",
            &format!("/crm/v3/objects/contacts/{id}?archived=true"),
            None,
        )
        .await;
    assert_eq!(r.body["archived"], true);
    assert!(r.body["archivedAt"].is_string());
    assert_eq!(search(&p, json!({})).await.body["total"], 0);
    // The email is free again.
    p.create_contact("ui@example.com").await;
}

#[tokio::test]
async fn the_seed_is_deterministic_and_custom_objects_answer_by_id_and_name() {
    let a = portal(
        relaxed(),
        Some(SeedSpec {
            seed: 9,
            records: 50,
            overlap: 0.5,
            deals: None,
        }),
    )
    .await;
    let b = portal(
        relaxed(),
        Some(SeedSpec {
            seed: 9,
            records: 50,
            overlap: 0.5,
            deals: None,
        }),
    )
    .await;
    let emails = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["properties"]["email"].to_string())
            .collect()
    };
    let da = a.control("GET", "/objects/contacts", None).await.body;
    let db = b.control("GET", "/objects/contacts", None).await.body;
    assert_eq!(emails(&da), emails(&db));
    let r = a
        .api(
            "POST",
            "/crm/v3/objects/2-1001",
            Some(json!({"properties": {"serial_number": "SN-1", "model": "X"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = a
        .api(
            "GET",
            "/crm/v3/objects/p_machines/SN-1?idProperty=serial_number&properties=model",
            None,
        )
        .await;
    assert_eq!(r.body["properties"]["model"], "X");
    // The second custom object, by id and by name, with its unique code.
    let r = a
        .api(
            "POST",
            "/crm/v3/objects/2-1002",
            Some(json!({"properties": {"name": "Gold", "subscription_code": "SUB-1", "seats": "25"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let again = a
        .api(
            "POST",
            "/crm/v3/objects/p_subscriptions",
            Some(json!({"properties": {"subscription_code": "SUB-1"}})),
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "a unique value: {}",
        again.body
    );
}

/// The schemas API reads the portal's custom objects: type ids, names, properties
/// and association definitions.
#[tokio::test]
async fn schemas_read_the_custom_objects() {
    let p = portal(relaxed(), None).await;
    let r = p.api("GET", "/crm/v3/schemas", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ids: Vec<&str> = r.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["objectTypeId"].as_str())
        .collect();
    assert_eq!(ids, ["2-1001", "2-1002"]);
    let one = p.api("GET", "/crm/v3/schemas/2-1001", None).await;
    assert_eq!(one.body["fullyQualifiedName"], "p_machines");
    let to_companies = one.body["associations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["toObjectTypeId"] == "0-2")
        .map(|a| a["id"].clone());
    assert_eq!(to_companies, Some(json!("711")));
    assert!(
        one.body["properties"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x["name"] == "serial_number"))
    );
    let missing = p.api("GET", "/crm/v3/schemas/contacts", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// Custom objects associate with companies through the type their schema defines,
/// read back in both directions as HubSpot's v4 API answers.
#[tokio::test]
async fn custom_objects_associate_with_companies_both_ways() {
    let p = portal(relaxed(), None).await;
    let machine = p
        .api(
            "POST",
            "/crm/v3/objects/p_machines",
            Some(json!({"properties": {"name": "Press", "serial_number": "SN-9"}})),
        )
        .await;
    let company = p
        .api(
            "POST",
            "/crm/v3/objects/companies",
            Some(json!({"properties": {"name": "Initech", "domain": "initech.example"}})),
        )
        .await;
    let (m, c) = (
        machine.body["id"].as_str().unwrap_or_default().to_owned(),
        company.body["id"].as_str().unwrap_or_default().to_owned(),
    );
    let r = p
        .api(
            "PUT",
            &format!("/crm/v4/objects/p_machines/{m}/associations/default/companies/{c}"),
            None,
        )
        .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.body);
    let back = p
        .api(
            "GET",
            &format!("/crm/v4/objects/companies/{c}/associations/2-1001"),
            None,
        )
        .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert_eq!(
        back.body["results"][0]["toObjectId"]
            .to_string()
            .trim_matches('"'),
        m
    );
    assert_eq!(
        back.body["results"][0]["associationTypes"][0]["typeId"],
        712
    );
}

mod webhooks {
    use super::*;
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::mpsc;

    const SECRET: &str = "app-secret";

    type Received = (HeaderMap, Bytes);

    /// A webhook endpoint that answers 500 to its first `fail_first` requests.
    async fn receiver(fail_first: usize) -> (String, mpsc::UnboundedReceiver<Received>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let calls = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/hooks/hubspot",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let tx = tx.clone();
                let calls = calls.clone();
                async move {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.send((headers, body));
                    if n < fail_first {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!(
            "http://{}/hooks/hubspot",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, rx)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> (HeaderMap, Value, Bytes) {
        let (headers, body) = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no webhook within 10 s"))
            .unwrap_or_else(|| panic!("receiver closed"));
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (headers, json, body)
    }

    async fn hooked(p: &Portal, url: &str) {
        let r = p
            .control(
                "PUT",
                "/webhooks",
                Some(json!({"target_url": url, "app_secret": SECRET, "imperfect": false})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }

    /// The channel's imperfections are set through the control API (a loss rate, a
    /// duplicate rate, a delay), shown in its state, and refused out of range.
    #[tokio::test]
    async fn delivery_imperfections_are_set_and_checked() {
        let p = portal(relaxed(), None).await;
        let r = p
            .control(
                "PUT",
                "/webhooks",
                Some(json!({"loss_rate": 0.1, "duplicate_rate": 0.2, "delay_ms_max": 5000})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let state = p.control("GET", "/webhooks", None).await.body;
        assert_eq!(state["loss_rate"], 0.1);
        assert_eq!(state["delay_ms_max"], 5000);
        let bad = p
            .control("PUT", "/webhooks", Some(json!({"duplicate_rate": -0.5})))
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    }

    /// A record created at `path` arrives as HubSpot's generic `object.creation` event,
    /// naming its object type by `type_id`.
    async fn creation_arrives_as_object_event(path: &str, properties: Value, type_id: &str) {
        let p = portal(relaxed(), None).await;
        let (url, mut rx) = receiver(0).await;
        hooked(&p, &url).await;
        let r = p
            .api("POST", path, Some(json!({"properties": properties})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let id = r.body["id"].as_str().unwrap_or_default().to_owned();
        let (_, events, _) = next(&mut rx).await;
        let e = &events[0];
        assert_eq!(e["subscriptionType"], "object.creation");
        assert_eq!(e["objectTypeId"], type_id);
        assert_eq!(e["objectId"].to_string(), id);
    }

    /// Custom objects' changes arrive as HubSpot's generic `object.*` events, naming
    /// the object type by id.
    #[tokio::test]
    async fn custom_object_changes_arrive_as_object_events_with_their_type_id() {
        creation_arrives_as_object_event(
            "/crm/v3/objects/p_machines",
            json!({"name": "Press", "serial_number": "SN-7"}),
            "2-1001",
        )
        .await;
    }

    /// Engagements too (generic subscriptions): an email logged arrives as an
    /// `object.creation` naming the engagement type's id.
    #[tokio::test]
    async fn engagements_arrive_as_object_events_with_their_type_id() {
        creation_arrives_as_object_event(
            "/crm/v3/objects/emails",
            json!({"hs_email_subject": "Hello", "hs_timestamp": "2024-05-01T00:00:00Z"}),
            "0-49",
        )
        .await;
    }

    #[tokio::test]
    async fn changes_arrive_as_signed_batches_attributed_to_their_source() {
        let p = portal(relaxed(), None).await;
        let (url, mut rx) = receiver(0).await;
        hooked(&p, &url).await;
        let id = p.create_contact("hook@example.com").await;
        let (headers, events, body) = next(&mut rx).await;
        let timestamp = headers["x-hubspot-request-timestamp"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(timestamp, T0.to_string());
        // The documented algorithm: Base64(HMAC-SHA256(secret, method + uri + body + timestamp)).
        let mut mac =
            Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        mac.update(format!("POST{url}").as_bytes());
        mac.update(&body);
        mac.update(timestamp.as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(
            headers["x-hubspot-signature-v3"]
                .to_str()
                .unwrap_or_default(),
            expected
        );
        assert_eq!(events[0]["subscriptionType"], "contact.creation");
        assert_eq!(events[0]["objectId"].to_string(), id);
        assert_eq!(events[0]["changeSource"], "INTEGRATION");
        assert_eq!(events[0]["attemptNumber"], 0);

        p.control(
            "PATCH",
            &format!("/objects/contacts/{id}"),
            Some(json!({"properties": {"firstname": "Hook"}})),
        )
        .await;
        let (_, events, _) = next(&mut rx).await;
        assert_eq!(events[0]["subscriptionType"], "contact.propertyChange");
        assert_eq!(events[0]["propertyName"], "firstname");
        assert_eq!(events[0]["propertyValue"], "Hook");
        assert_eq!(events[0]["changeSource"], "CRM_UI");

        let company = p
            .api(
                "POST",
                "/crm/v3/objects/companies",
                Some(json!({"properties": {"name": "Hooked Co"}})),
            )
            .await
            .body["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (_, events, _) = next(&mut rx).await;
        assert_eq!(events[0]["subscriptionType"], "company.creation");
        p.api(
            "PUT",
            &format!("/crm/v4/objects/contacts/{id}/associations/default/companies/{company}"),
            None,
        )
        .await;
        let (_, events, _) = next(&mut rx).await;
        let kinds: Vec<&str> = events
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["associationType"].as_str())
            .collect();
        assert_eq!(kinds, vec!["CONTACT_TO_COMPANY", "COMPANY_TO_CONTACT"]);
        assert_eq!(events[0]["subscriptionType"], "contact.associationChange");
        assert_eq!(events[0]["associationRemoved"], false);
        // A person's association, in the UI, is heard as theirs.
        let other = p
            .control(
                "POST",
                "/objects/companies",
                Some(json!({"properties": {"name": "Other Co"}})),
            )
            .await
            .body["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let _ = next(&mut rx).await;
        p.control(
            "PUT",
            &format!("/objects/contacts/{id}/associations/companies/{other}"),
            None,
        )
        .await;
        let (_, events, _) = next(&mut rx).await;
        assert_eq!(events[0]["subscriptionType"], "contact.associationChange");
        assert_eq!(events[0]["changeSource"], "CRM_UI");
    }

    #[tokio::test]
    async fn a_failed_delivery_is_retried_until_a_2xx() {
        let p = portal(relaxed(), None).await;
        let (url, mut rx) = receiver(2).await;
        hooked(&p, &url).await;
        p.create_contact("retry@example.com").await;
        let (_, first, _) = next(&mut rx).await;
        assert_eq!(first[0]["attemptNumber"], 0);
        for attempt in 1..=2 {
            // Retries wait on the sandbox clock: nothing comes until it moves.
            p.control("POST", "/clock/advance", Some(json!({"ms": 3_600_000})))
                .await;
            let (_, again, _) = next(&mut rx).await;
            assert_eq!(again[0]["attemptNumber"], attempt);
            assert_eq!(again[0]["eventId"], first[0]["eventId"]);
        }
        let state = p.control("GET", "/webhooks", None).await.body;
        assert_eq!(state["failed"], 2);
        assert_eq!(state["delivered"], 1);
        assert_eq!(state["pending"], 0);
    }
}

#[tokio::test]
async fn oauth_refresh_issues_integration_tokens_that_expire_after_30_minutes() {
    let p = portal(relaxed(), None).await;
    let form = "grant_type=refresh_token&client_id=hubspot-client-id&client_secret=hubspot-client-secret&refresh_token=hubspot-refresh-token";
    let token_call = |body: &'static str| {
        p.http
            .post(format!("{}/oauth/v1/token", p.sandbox.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let r = token_call(form).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap_or_default();
    assert_eq!(v["expires_in"], 1800);
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["refresh_token"], "hubspot-refresh-token");
    let access = v["access_token"].as_str().unwrap_or_default().to_owned();
    let r = p
        .call(
            "POST",
            "/crm/v3/objects/contacts",
            Some(json!({"properties": {"email": "oauth@example.com"}})),
            Some(&access),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let c = p.control("GET", "/counters", None).await.body;
    assert_eq!(
        c["integration"]["POST /crm/v3/objects/contacts"], 1,
        "an OAuth token is the integration"
    );

    p.control(
        "POST",
        "/clock/advance",
        Some(json!({"ms": 30 * 60 * 1000 + 5_000})),
    )
    .await;
    let r = p
        .call("GET", "/crm/v3/objects/contacts", None, Some(&access))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["category"], "EXPIRED_AUTHENTICATION");
    assert_eq!(
        r.body["message"],
        "The OAuth token used to make this call expired 5 second(s) ago."
    );

    let r = token_call("grant_type=refresh_token&client_id=hubspot-client-id&client_secret=hubspot-client-secret&refresh_token=stolen")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap_or_default();
    assert_eq!(v["status"], "BAD_REFRESH_TOKEN");
}

#[tokio::test]
async fn lists_hold_memberships_paged_and_per_record() {
    let p = portal(relaxed(), None).await;
    let r = p
        .api(
            "POST",
            "/crm/v3/lists",
            Some(json!({"name": "Sync me", "objectTypeId": "0-1", "processingType": "MANUAL"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = r.body["list"]["listId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(p.create_contact(&format!("member{i}@example.com")).await);
    }
    let r = p
        .api(
            "PUT",
            &format!("/crm/v3/lists/{list}/memberships/add"),
            Some(json!([ids[0], ids[1], ids[2], "999"])),
        )
        .await;
    assert_eq!(r.body["recordsIdsAdded"].as_array().map(Vec::len), Some(3));
    assert_eq!(r.body["recordIdsMissing"], json!(["999"]));
    let r = p
        .api(
            "GET",
            &format!("/crm/v3/lists/{list}/memberships?limit=2"),
            None,
        )
        .await;
    assert_eq!(r.body["results"].as_array().map(Vec::len), Some(2));
    let after = r.body["paging"]["next"]["after"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let r = p
        .api(
            "GET",
            &format!("/crm/v3/lists/{list}/memberships?limit=2&after={after}"),
            None,
        )
        .await;
    assert_eq!(r.body["results"][0]["recordId"], ids[2].as_str());
    assert!(r.body["paging"].is_null());
    let r = p
        .api(
            "GET",
            &format!("/crm/v3/lists/records/0-1/{}/memberships", ids[1]),
            None,
        )
        .await;
    assert_eq!(r.body["results"][0]["listId"], list.as_str());
    p.api(
        "PUT",
        &format!("/crm/v3/lists/{list}/memberships/remove"),
        Some(json!([ids[1]])),
    )
    .await;
    let r = p
        .api(
            "GET",
            &format!("/crm/v3/lists/records/0-1/{}/memberships", ids[1]),
            None,
        )
        .await;
    assert_eq!(r.body["results"], json!([]));
    let r = p
        .api(
            "GET",
            "/crm/v3/lists/object-type-id/0-1/name/Sync%20me",
            None,
        )
        .await;
    assert_eq!(r.body["list"]["size"], 2);
}

#[tokio::test]
async fn join_order_pages_members_as_they_joined_and_batch_read_answers_per_record() {
    let p = portal(relaxed(), None).await;
    let r = p
        .api(
            "POST",
            "/crm/v3/lists",
            Some(json!({"name": "Feed", "objectTypeId": "0-1", "processingType": "MANUAL"})),
        )
        .await;
    let list = r.body["list"]["listId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(p.create_contact(&format!("joiner{i}@example.com")).await);
    }
    // Joined newest id first, a second apart: join order is not id order.
    for id in ids.iter().rev() {
        let r = p
            .control(
                "PUT",
                &format!("/lists/{list}/memberships"),
                Some(json!({"add": [id]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        p.control("POST", "/clock/advance", Some(json!({"ms": 1000})))
            .await;
    }
    let path = |after: Option<String>| match after {
        Some(a) => format!("/crm/v3/lists/{list}/memberships/join-order?limit=3&after={a}"),
        None => format!("/crm/v3/lists/{list}/memberships/join-order?limit=3"),
    };
    let first = p.api("GET", &path(None), None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let order: Vec<&str> = first.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["recordId"].as_str())
        .collect();
    assert_eq!(
        order,
        vec![ids[3].as_str(), ids[2].as_str(), ids[1].as_str()]
    );
    let after = first.body["paging"]["next"]["after"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // A member before the token leaving does not move the page the token names.
    p.control(
        "PUT",
        &format!("/lists/{list}/memberships"),
        Some(json!({"remove": [ids[3]]})),
    )
    .await;
    let second = p.api("GET", &path(Some(after.clone())), None).await;
    assert_eq!(second.body["results"][0]["recordId"], ids[0].as_str());
    assert!(second.body["results"][0]["membershipTimestamp"].is_string());
    assert!(second.body["paging"].is_null());
    // A member that rejoins joins last.
    p.control(
        "PUT",
        &format!("/lists/{list}/memberships"),
        Some(json!({"add": [ids[3]]})),
    )
    .await;
    let again = p.api("GET", &path(Some(after)), None).await;
    assert_eq!(again.body["results"][1]["recordId"], ids[3].as_str());
    let bad = p.api("GET", &path(Some("nonsense".into())), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let r = p
        .api(
            "GET",
            &format!("/crm/v3/lists/{list}/memberships/join-order?limit=251"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = p
        .api(
            "POST",
            "/crm/v3/lists/records/memberships/batch/read",
            Some(json!({"inputs": [
                {"objectTypeId": "0-1", "recordId": ids[0]},
                {"objectTypeId": "0-1", "recordId": "999"},
            ]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["results"][0]["recordListMemberships"][0]["listId"],
        list.as_str()
    );
    assert_eq!(r.body["results"][1]["recordListMemberships"], json!([]));
    let r = p
        .api(
            "POST",
            "/crm/v3/lists/records/memberships/batch/read",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_form_submission_makes_its_contact_and_reads_back_newest_first() {
    let p = portal(relaxed(), None).await;
    let r = p
        .control("POST", "/forms", Some(json!({"name": "Contact us"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let guid = r.body["guid"].as_str().unwrap_or_default().to_owned();
    for i in 0..3 {
        let r = p
            .control(
                "POST",
                &format!("/forms/{guid}/submit"),
                Some(json!({"values": {"email": "visitor@example.com", "firstname": format!("V{i}")}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        p.control("POST", "/clock/advance", Some(json!({"ms": 1000})))
            .await;
    }
    // One contact, updated by each submission.
    let r = p
        .api(
            "GET",
            "/crm/v3/objects/contacts/visitor@example.com?idProperty=email&properties=firstname",
            None,
        )
        .await;
    assert_eq!(r.body["properties"]["firstname"], "V2", "{}", r.body);
    let path = format!("/form-integrations/v1/submissions/forms/{guid}?limit=2");
    let r = p.api("GET", &path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let first: Vec<i64> = r.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["submittedAt"].as_i64())
        .collect();
    assert_eq!(first.len(), 2);
    assert!(first[0] > first[1], "newest first: {first:?}");
    assert_eq!(r.body["results"][0]["values"][0]["name"], "email");
    let after = r.body["paging"]["next"]["after"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let r = p.api("GET", &format!("{path}&after={after}"), None).await;
    assert_eq!(r.body["results"].as_array().map(Vec::len), Some(1));
    assert!(r.body["paging"].is_null());
    let r = p
        .api(
            "GET",
            &format!("/form-integrations/v1/submissions/forms/{guid}?limit=51"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = p
        .api("GET", "/form-integrations/v1/submissions/forms/nope", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = p
        .control(
            "POST",
            &format!("/forms/{guid}/submit"),
            Some(json!({"values": {"firstname": "No email"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn marketing_email_events_read_by_window_and_type() {
    let p = portal(relaxed(), None).await;
    let r = p
        .control(
            "POST",
            "/marketing-emails",
            Some(json!({"subject": "News", "recipients": ["a@example.com", "b@example.com"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let campaign = r.body["emailCampaignId"].as_u64().unwrap_or_default();
    p.control("POST", "/clock/advance", Some(json!({"ms": 1000})))
        .await;
    let r = p
        .control(
            "POST",
            &format!("/marketing-emails/{campaign}/events"),
            Some(json!({"recipient": "a@example.com", "type": "OPEN"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = p
        .api(
            "GET",
            "/email/public/v1/events?eventType=SENT&limit=1",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["events"][0]["type"], "SENT");
    assert_eq!(r.body["hasMore"], true);
    let offset = r.body["offset"].as_str().unwrap_or_default().to_owned();
    let r = p
        .api(
            "GET",
            &format!("/email/public/v1/events?eventType=SENT&limit=1&offset={offset}"),
            None,
        )
        .await;
    assert_eq!(r.body["events"][0]["recipient"], "b@example.com");
    assert_eq!(r.body["hasMore"], false);
    let opened_at = T0 + 1000;
    let r = p
        .api(
            "GET",
            &format!("/email/public/v1/events?eventType=OPEN&startTimestamp={opened_at}"),
            None,
        )
        .await;
    assert_eq!(r.body["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["events"][0]["emailCampaignId"], campaign);
    let r = p
        .api(
            "GET",
            &format!("/email/public/v1/campaigns/{campaign}"),
            None,
        )
        .await;
    assert_eq!(r.body["subject"], "News");
    let r = p
        .api("GET", "/email/public/v1/events?eventType=NOPE", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = p
        .api("GET", "/email/public/v1/events?limit=1001", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_dropped_connection_fault_leaves_the_client_without_an_answer() {
    let p = portal(relaxed(), None).await;
    p.control("POST", "/faults", Some(json!({"faults": [{"drop": true}]})))
        .await;
    let result = p
        .http
        .get(format!("{}/crm/v3/objects/contacts", p.sandbox.url()))
        .bearer_auth(TOKEN)
        .send()
        .await;
    let failed = match result {
        Err(_) => true,
        Ok(r) => r.text().await.is_err(),
    };
    assert!(failed, "the body must not arrive whole");
    assert_eq!(
        p.api("GET", "/crm/v3/objects/contacts", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_integrations_writes_are_listed_per_record() {
    let p = portal(relaxed(), None).await;
    let id = p.create_contact("writes@example.com").await;
    let path = format!("/crm/v3/objects/contacts/{id}");
    let set = json!({"properties": {"firstname": "Grace"}});
    for _ in 0..2 {
        assert!(
            p.api("PATCH", &path, Some(set.clone()))
                .await
                .status
                .is_success()
        );
    }
    // A person's edit is not the integration's.
    p.control(
        "PATCH",
        &format!("/objects/contacts/{id}"),
        Some(json!({"properties": {"lastname": "Lovelace"}})),
    )
    .await;
    let writes = p.control("GET", "/writes", None).await.body;
    let log = writes[format!("contacts/{id}")]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let changed: Vec<&Value> = log.iter().map(|w| &w["changed"]).collect();
    assert_eq!(
        changed,
        vec![&json!(["(created)"]), &json!(["firstname"]), &json!([])],
        "{writes}"
    );
}
