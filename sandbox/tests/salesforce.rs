//! The Salesforce sandbox over HTTP on loopback, as strict as an org: sessions, SOQL
//! paging, the daily allowance, Collections limits and allOrNone, org rules with
//! Salesforce's error bodies, formulas, lead conversion, replication windows.

use crmsync_sandbox::salesforce::SalesforceSettings;
use crmsync_sandbox::seed::SeedSpec;
use crmsync_sandbox::{Clock, SalesforceSandbox};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "sf-integration";
const HUMAN: &str = "sf-admin";
/// 2024-05-01T00:00:00Z.
const T0: i64 = 1_714_521_600_000;
const V: &str = "/services/data/v65.0";

struct Org {
    sandbox: SalesforceSandbox,
    http: reqwest::Client,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn org(seed: Option<SeedSpec>) -> Org {
    let settings = SalesforceSettings {
        tokens: vec![TOKEN.into(), HUMAN.into()],
        ..SalesforceSettings::default()
    };
    let sandbox = SalesforceSandbox::spawn(settings, Clock::frozen(T0), seed)
        .await
        .unwrap_or_else(|e| panic!("sandbox: {e}"));
    Org {
        sandbox,
        http: reqwest::Client::new(),
    }
}

impl Org {
    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.sandbox.url())
        };
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call(method, &format!("{V}{path}"), body, Some(TOKEN))
            .await
    }

    async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call(method, &format!("/_sandbox/salesforce{path}"), body, None)
            .await
    }

    async fn query(&self, soql: &str) -> Reply {
        let q = serde_urlencoded::to_string([("q", soql)]).unwrap_or_default();
        self.api("GET", &format!("/query?{q}"), None).await
    }

    async fn create(&self, object: &str, fields: Value) -> String {
        let r = self
            .api("POST", &format!("/sobjects/{object}"), Some(fields))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().unwrap_or_default().to_owned()
    }
}

fn first_error(r: &Reply) -> (&str, &str) {
    (
        r.body[0]["errorCode"].as_str().unwrap_or_default(),
        r.body[0]["message"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn sessions_expire_and_refresh_tokens_issue_new_ones() {
    let o = org(None).await;
    let r = o
        .call("GET", &format!("{V}/limits"), None, Some("nope"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    assert_eq!(r.headers["www-authenticate"], "Token");

    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "salesforce-client-id"),
        ("client_secret", "salesforce-client-secret"),
        ("refresh_token", "salesforce-refresh-token"),
    ];
    let r = o
        .send(
            o.http
                .post(format!("{}/services/oauth2/token", o.sandbox.url()))
                .form(&form),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["instance_url"], o.sandbox.url());
    assert!(
        r.body["refresh_token"].is_null(),
        "a refresh grant returns no new refresh token"
    );
    let session = r.body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        o.call("GET", &format!("{V}/limits"), None, Some(&session))
            .await
            .status,
        StatusCode::OK
    );
    o.control("POST", "/clock/advance", Some(json!({"ms": 2 * 3_600_000})))
        .await;
    let r = o
        .call("GET", &format!("{V}/limits"), None, Some(&session))
        .await;
    assert_eq!(first_error(&r).0, "INVALID_SESSION_ID");

    let bad = [
        ("grant_type", "refresh_token"),
        ("client_id", "salesforce-client-id"),
        ("client_secret", "salesforce-client-secret"),
        ("refresh_token", "old"),
    ];
    let r = o
        .send(
            o.http
                .post(format!("{}/services/oauth2/token", o.sandbox.url()))
                .form(&bad),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "invalid_grant");

    o.control("POST", "/sessions/revoke", None).await;
    assert_eq!(
        o.api("GET", "/limits", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn soql_pages_with_next_records_url_and_cursors_expire() {
    let o = org(Some(SeedSpec {
        seed: 2,
        records: 1_500,
        overlap: 0.9,
        deals: None,
    }))
    .await;
    let total = o.query("SELECT COUNT() FROM Contact").await.body["totalSize"]
        .as_u64()
        .unwrap_or(0);
    assert!(total > 400, "{total}");
    let q = serde_urlencoded::to_string([("q", "SELECT Id, Email FROM Contact ORDER BY Id")])
        .unwrap_or_default();
    let first = o
        .send(
            o.http
                .get(format!("{}{V}/query?{q}", o.sandbox.url()))
                .bearer_auth(TOKEN)
                .header("Sforce-Query-Options", "batchSize=200"),
        )
        .await;
    assert_eq!(first.body["done"], false);
    assert_eq!(first.body["totalSize"], total);
    let mut seen: Vec<String> = Vec::new();
    let mut page = first.body.clone();
    loop {
        seen.extend(
            page["records"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["Id"].as_str().map(str::to_owned)),
        );
        assert!(page["records"].as_array().map_or(0, Vec::len) <= 200);
        if page["done"] == true {
            break;
        }
        let next = page["nextRecordsUrl"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(next.starts_with("/services/data/v65.0/query/01g"), "{next}");
        page = o.call("GET", &next, None, Some(TOKEN)).await.body;
    }
    assert_eq!(seen.len() as u64, total);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    let next = first.body["nextRecordsUrl"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    o.control(
        "POST",
        "/clock/advance",
        Some(json!({"ms": 2 * 86_400_000 + 1})),
    )
    .await;
    let r = o.call("GET", &next, None, Some(TOKEN)).await;
    assert_eq!(first_error(&r).0, "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn malformed_and_invalid_queries_get_salesforces_errors() {
    let o = org(None).await;
    let r = o.query("SELECT Id FRM Contact").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        json!([{"message": "unexpected token: 'FRM'", "errorCode": "MALFORMED_QUERY"}])
    );
    let r = o.query("SELECT Bacon__c FROM Account LIMIT 2").await;
    let (code, message) = first_error(&r);
    assert_eq!(code, "INVALID_FIELD");
    assert!(
        message.contains("ERROR at Row:1:Column:8\nNo such column 'Bacon__c' on entity 'Account'."),
        "{message}"
    );
    let r = o.query("SELECT Id FROM Widget__c").await;
    assert_eq!(first_error(&r).0, "INVALID_TYPE");
}

#[tokio::test]
async fn where_clauses_filter_like_salesforce() {
    let o = org(None).await;
    let acme = o
        .create("Account", json!({"Name": "Acme", "NumberOfEmployees": 40}))
        .await;
    o.create(
        "Contact",
        json!({"LastName": "Ng", "Email": "ng@acme.com", "AccountId": acme}),
    )
    .await;
    o.create(
        "Contact",
        json!({"LastName": "Oh", "Email": "oh@other.com"}),
    )
    .await;
    let r = o.query("SELECT Id, LastName, Account.Name, Account.Employee_Band__c FROM Contact WHERE Account.Name = 'ACME' AND Email LIKE '%@acme.com'").await;
    assert_eq!(r.body["totalSize"], 1, "{}", r.body);
    assert_eq!(r.body["records"][0]["Account"]["Employee_Band__c"], "1-50");
    let r = o
        .query("SELECT Id FROM Contact WHERE AccountId = null OR LastName IN ('Ng')")
        .await;
    assert_eq!(r.body["totalSize"], 2);
    let r = o.query("SELECT Id FROM Contact WHERE SystemModstamp >= 2024-05-01T00:00:00Z AND SystemModstamp < 2024-05-02T00:00:00.000+0000").await;
    assert_eq!(r.body["totalSize"], 2);
    let r = o
        .query("SELECT Id FROM Contact WHERE NOT LastName = 'Ng'")
        .await;
    assert_eq!(r.body["totalSize"], 1);
}

#[tokio::test]
async fn a_data_load_pages_by_id_each_record_once() {
    let o = org(None).await;
    let rows: Vec<Value> = (0..700)
        .map(|i| json!({"LastName": format!("Load {i}"), "Company": "Loaded"}))
        .collect();
    let r = o
        .control("POST", "/objects/Lead/load", Some(json!({"records": rows})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["ids"].as_array().map(Vec::len), Some(700));
    // Ids run through digits, upper and lower case: `Id > last` follows `ORDER BY Id`.
    let mut seen = std::collections::HashSet::new();
    let mut last = String::new();
    loop {
        let filter = if last.is_empty() {
            String::new()
        } else {
            format!(" WHERE Id > '{last}'")
        };
        let r = o
            .query(&format!(
                "SELECT Id FROM Lead{filter} ORDER BY Id LIMIT 100"
            ))
            .await;
        let ids: Vec<String> = r.body["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["Id"].as_str().map(str::to_owned))
            .collect();
        for id in &ids {
            assert!(seen.insert(id.clone()), "{id} listed twice");
        }
        match ids.last() {
            Some(l) if ids.len() == 100 => last = l.clone(),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 700);
    // A 15-character id names the same record.
    let first = r.body["ids"][0].as_str().unwrap_or_default().to_owned();
    let short = first.get(..15).unwrap_or_default();
    let found = o
        .query(&format!("SELECT Id FROM Lead WHERE Id IN ('{short}')"))
        .await;
    assert_eq!(found.body["totalSize"], 1, "{}", found.body);
    let r = o
        .control(
            "POST",
            "/objects/Lead/load",
            Some(json!({"records": [{"Company": "No name"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}

#[tokio::test]
async fn a_person_joins_a_campaign_once() {
    let o = org(None).await;
    let campaign = o
        .create("Campaign", json!({"Name": "Webinar", "IsActive": true}))
        .await;
    let lead = o
        .create("Lead", json!({"LastName": "Member", "Company": "C"}))
        .await;
    let member = json!({"CampaignId": campaign, "LeadId": lead, "Status": "Responded"});
    let r = o
        .api("POST", "/sobjects/CampaignMember", Some(member.clone()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = o
        .api("POST", "/sobjects/CampaignMember", Some(member))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(first_error(&r).0, "DUPLICATE_VALUE");
    let r = o
        .api(
            "POST",
            "/sobjects/CampaignMember",
            Some(json!({"CampaignId": campaign, "Status": "Sent"})),
        )
        .await;
    assert_eq!(first_error(&r).0, "REQUIRED_FIELD_MISSING");
}

#[tokio::test]
async fn rows_are_created_read_updated_deleted_and_upserted_by_external_id() {
    let o = org(None).await;
    let id = o
        .create(
            "Contact",
            json!({"LastName": "Rowe", "Email": "rowe@example.com"}),
        )
        .await;
    assert_eq!(id.len(), 18);
    let r = o
        .api(
            "GET",
            &format!("/sobjects/Contact/{id}?fields=LastName,Email,LastModifiedById"),
            None,
        )
        .await;
    assert_eq!(r.body["LastName"], "Rowe");
    assert_eq!(r.body["attributes"]["type"], "Contact");
    let integration_user = r.body["LastModifiedById"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        o.api(
            "PATCH",
            &format!("/sobjects/Contact/{id}"),
            Some(json!({"Title": "CTO"}))
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    o.call(
        "PATCH",
        &format!("{V}/sobjects/Contact/{id}"),
        Some(json!({"Phone": "1"})),
        Some(HUMAN),
    )
    .await;
    let r = o
        .api("GET", &format!("/sobjects/Contact/{}", &id[..15]), None)
        .await;
    assert_eq!(r.body["Title"], "CTO");
    assert_ne!(
        r.body["LastModifiedById"],
        integration_user.as_str(),
        "a person's edit is not the integration's"
    );
    assert_eq!(
        o.api("DELETE", &format!("/sobjects/Contact/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        o.api("GET", &format!("/sobjects/Contact/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = o
        .api(
            "PATCH",
            &format!("/sobjects/Contact/{id}"),
            Some(json!({"Title": "X"})),
        )
        .await;
    assert_eq!(
        (r.status, first_error(&r).0),
        (StatusCode::NOT_FOUND, "ENTITY_IS_DELETED")
    );

    let r = o
        .api(
            "PATCH",
            "/sobjects/Contact/HubSpot_Contact_Id__c/555",
            Some(json!({"LastName": "Upsert"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["created"], true);
    let r = o
        .api(
            "PATCH",
            "/sobjects/Contact/HubSpot_Contact_Id__c/555",
            Some(json!({"Title": "Again"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["created"], false);
    let r = o
        .api("PATCH", "/sobjects/Contact/Nope__c/1", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A scheduled person's edit lands right after the integration's next read (a query, a
/// retrieve), never on a write, and as a person's.
#[tokio::test]
async fn a_scheduled_person_edit_lands_after_the_integrations_next_read() {
    let o = org(None).await;
    let id = o
        .create(
            "Contact",
            json!({"LastName": "Window", "Email": "w@example.com"}),
        )
        .await;
    let r = o
        .control(
            "POST",
            "/faults",
            Some(json!({"faults": [{"person_edit": {"object": "Contact", "id": id, "fields": {"Title": "Person"}}, "after_reads": 1}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let write = o
        .api(
            "PATCH",
            &format!("/sobjects/Contact/{id}"),
            Some(json!({"Phone": "1"})),
        )
        .await;
    assert_eq!(write.status, StatusCode::NO_CONTENT);
    let read = o
        .api("GET", &format!("/sobjects/Contact/{id}?fields=Title"), None)
        .await;
    assert!(
        read.body["Title"].is_null(),
        "the read saw the record before the edit"
    );
    let after = o
        .api(
            "GET",
            &format!("/sobjects/Contact/{id}?fields=Title,LastModifiedById"),
            None,
        )
        .await;
    assert_eq!(after.body["Title"], "Person");
    let bad = o
        .control(
            "POST",
            "/faults",
            Some(json!({"faults": [{"person_edit": {"id": id}}]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// With a skew set, `SystemModstamp` lands before the commit, out of commit order (a
/// long transaction stamps an earlier time than a later, faster one), and never after it.
#[tokio::test]
async fn system_modstamps_can_land_out_of_commit_order() {
    let o = org(None).await;
    let r = o
        .control(
            "PUT",
            "/settings",
            Some(json!({"modstamp_skew_ms": 30_000})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let mut stamps = Vec::new();
    for n in 0..20 {
        let id = o
            .create("Contact", json!({"LastName": format!("Skew {n}")}))
            .await;
        o.control("POST", "/clock/advance", Some(json!({"ms": 1_000})))
            .await;
        let r = o
            .api(
                "GET",
                &format!("/sobjects/Contact/{id}?fields=SystemModstamp,CreatedDate"),
                None,
            )
            .await;
        let stamp = r.body["SystemModstamp"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let created = r.body["CreatedDate"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            stamp <= created,
            "never after the commit: {stamp} > {created}"
        );
        stamps.push(stamp);
    }
    let mut sorted = stamps.clone();
    sorted.sort();
    assert_ne!(stamps, sorted, "some land before an earlier commit");
    let bad = o
        .control("PUT", "/settings", Some(json!({"modstamp_skew_ms": -1})))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// The push channel's imperfections are set through the control API, refused out of
/// range.
#[tokio::test]
async fn outbound_imperfections_are_set_and_checked() {
    let o = org(None).await;
    let r = o
        .control(
            "PUT",
            "/outbound",
            Some(json!({"loss_rate": 0.1, "duplicate_rate": 0.1, "delay_ms_max": 5000})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let bad = o
        .control("PUT", "/outbound", Some(json!({"loss_rate": 2})))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// Field history tracking: each changed field of a tracked object leaves a row in its
/// history object (`LeadHistory`, `OpportunityFieldHistory`, `Machine__History`...),
/// queryable, with the time of the change.
#[tokio::test]
async fn field_changes_leave_history_rows() {
    let o = org(None).await;
    let id = o
        .create(
            "Lead",
            json!({"LastName": "Hist", "Company": "C", "Phone": "1"}),
        )
        .await;
    o.control("POST", "/clock/advance", Some(json!({"ms": 5_000})))
        .await;
    let r = o
        .api(
            "PATCH",
            &format!("/sobjects/Lead/{id}"),
            Some(json!({"Phone": "2", "Title": "CTO"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let q = format!(
        "/query?q=SELECT+LeadId,+Field,+OldValue,+NewValue,+CreatedDate+FROM+LeadHistory+WHERE+LeadId+=+'{id}'+ORDER+BY+Field"
    );
    let r = o.api("GET", &q, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rows = r.body["records"].as_array().cloned().unwrap_or_default();
    let fields: Vec<&str> = rows.iter().filter_map(|x| x["Field"].as_str()).collect();
    assert_eq!(fields, ["Phone", "Title"]);
    assert_eq!(rows[0]["OldValue"], "1");
    assert_eq!(rows[0]["NewValue"], "2");
    assert_eq!(rows[0]["CreatedDate"], "2024-05-01T00:00:05.000+0000");
    let refused = o
        .api("POST", "/sobjects/LeadHistory", Some(json!({"Field": "x"})))
        .await;
    assert!(refused.status.is_client_error(), "history is read-only");
}

/// Only the fields an admin chose keep history (at most 20 per object), and Setup's
/// `FieldDefinition` rows say which: a field that changed without a row may simply
/// not be tracked.
#[tokio::test]
async fn only_tracked_fields_keep_history_and_field_definitions_say_which() {
    let o = org(None).await;
    let tracked_soql = "SELECT QualifiedApiName FROM FieldDefinition WHERE EntityDefinition.QualifiedApiName = 'Lead' AND IsFieldHistoryTracked = true";
    let names = |r: &Reply| -> Vec<String> {
        let mut v: Vec<String> = r.body["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["QualifiedApiName"].as_str().map(str::to_owned))
            .collect();
        v.sort();
        v
    };
    // By default every field a person edits is tracked; system fields never are.
    let all = o.query(tracked_soql).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    let all = names(&all);
    assert!(all.iter().any(|f| f == "Phone") && all.iter().any(|f| f == "Title"));
    assert!(!all.iter().any(|f| f == "LastModifiedDate" || f == "Id"));

    let r = o
        .control(
            "PUT",
            "/settings",
            Some(json!({"history_tracked": {"Lead": ["Phone", "Status"]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(names(&o.query(tracked_soql).await), ["Phone", "Status"]);
    let untracked = o
        .query("SELECT QualifiedApiName, IsFieldHistoryTracked, DataType FROM FieldDefinition WHERE EntityDefinition.QualifiedApiName = 'Lead' AND QualifiedApiName = 'Title'")
        .await;
    assert_eq!(untracked.body["records"][0]["IsFieldHistoryTracked"], false);
    assert_eq!(untracked.body["records"][0]["DataType"], "string");

    let id = o
        .create(
            "Lead",
            json!({"LastName": "Hist", "Company": "C", "Phone": "1"}),
        )
        .await;
    let r = o
        .api(
            "PATCH",
            &format!("/sobjects/Lead/{id}"),
            Some(json!({"Phone": "2", "Title": "CTO"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let rows = o
        .query(&format!(
            "SELECT Field FROM LeadHistory WHERE LeadId = '{id}'"
        ))
        .await;
    let fields: Vec<&str> = rows.body["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["Field"].as_str())
        .collect();
    assert_eq!(fields, ["Phone"], "Title is not tracked");

    // Setup's limits: 20 fields, fields that exist and may be tracked, objects with history.
    let many: Vec<String> = (0..21).map(|i| format!("F{i}")).collect();
    for bad in [
        json!({"Lead": many}),
        json!({"Lead": ["NoSuchField__c"]}),
        json!({"Lead": ["LastModifiedDate"]}),
        json!({"Task": ["Subject"]}),
    ] {
        let r = o
            .control("PUT", "/settings", Some(json!({"history_tracked": bad})))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    assert_eq!(names(&o.query(tracked_soql).await), ["Phone", "Status"]);
}

/// The org's second custom object: a required Name, a unique Code__c, a lookup to
/// Account, and upserts on its HubSpot id.
#[tokio::test]
async fn the_subscription_custom_object_keeps_its_rules() {
    let o = org(None).await;
    let account = o
        .create(
            "Account",
            json!({"Name": "Initech", "Website": "initech.example"}),
        )
        .await;
    let r = o
        .api(
            "PATCH",
            "/sobjects/Subscription__c/HubSpot_Subscription_Id__c/777",
            Some(
                json!({"Name": "Gold", "Code__c": "SUB-1", "Seats__c": 25, "Account__c": account}),
            ),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["created"]),
        (StatusCode::CREATED, &json!(true))
    );
    let r = o
        .api(
            "POST",
            "/sobjects/Subscription__c",
            Some(json!({"Code__c": "SUB-2"})),
        )
        .await;
    assert_eq!(
        (r.status, first_error(&r).0),
        (StatusCode::BAD_REQUEST, "REQUIRED_FIELD_MISSING")
    );
    let r = o
        .api(
            "POST",
            "/sobjects/Subscription__c",
            Some(json!({"Name": "Again", "Code__c": "SUB-1"})),
        )
        .await;
    assert_eq!(first_error(&r).0, "DUPLICATE_VALUE", "{}", r.body);
    let r = o
        .api(
            "GET",
            "/query?q=SELECT+Id,+Account__r.Name+FROM+Subscription__c",
            None,
        )
        .await;
    assert_eq!(
        r.body["records"][0]["Account__r"]["Name"], "Initech",
        "{}",
        r.body
    );
}

#[tokio::test]
async fn collections_hold_200_records_and_all_or_none_rolls_back() {
    let o = org(None).await;
    let many: Vec<Value> = (0..201)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("A{i}")}))
        .collect();
    let r = o
        .api(
            "POST",
            "/composite/sobjects",
            Some(json!({"records": many})),
        )
        .await;
    assert_eq!(
        (r.status, first_error(&r).0),
        (StatusCode::BAD_REQUEST, "EXCEEDED_ID_LIMIT")
    );

    let batch = |all_or_none| {
        json!({"allOrNone": all_or_none, "records": [
            {"attributes": {"type": "Contact"}, "LastName": "One"},
            {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
            {"attributes": {"type": "Account"}, "Name": "Mixed types are fine"},
        ]})
    };
    let r = o
        .api("POST", "/composite/sobjects", Some(batch(true)))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(
        r.body[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        r.body[2]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        o.query("SELECT COUNT() FROM Contact").await.body["totalSize"],
        0,
        "nothing committed"
    );

    let r = o
        .api("POST", "/composite/sobjects", Some(batch(false)))
        .await;
    assert_eq!(r.body[0]["success"], true);
    assert_eq!(r.body[1]["success"], false);
    assert_eq!(r.body[1]["errors"][0]["fields"], json!(["LastName"]));
    assert_eq!(r.body[2]["success"], true);
    let ids: Vec<String> = [&r.body[0], &r.body[2]]
        .iter()
        .filter_map(|x| x["id"].as_str().map(str::to_owned))
        .collect();
    let r = o
        .api(
            "GET",
            &format!(
                "/composite/sobjects/Contact?ids={},{}&fields=Id,LastName",
                ids[0], ids[1]
            ),
            None,
        )
        .await;
    assert_eq!(r.body[0]["LastName"], "One");
    assert!(r.body[1].is_null(), "an id of another type retrieves null");
    let r = o.api("PATCH", "/composite/sobjects", Some(json!({"records": [{"attributes": {"type": "Contact"}, "Id": ids[0], "Title": "T"}]}))).await;
    assert_eq!(r.body[0]["success"], true);
    let r = o.api("PATCH", "/composite/sobjects/Contact/HubSpot_Contact_Id__c", Some(json!({"records": [
        {"attributes": {"type": "Contact"}, "HubSpot_Contact_Id__c": "9", "LastName": "Nine"}
    ]}))).await;
    assert_eq!(r.body[0]["created"], true);
    let r = o
        .api(
            "DELETE",
            &format!("/composite/sobjects?ids={}", ids[0]),
            None,
        )
        .await;
    assert_eq!(r.body[0]["success"], true);
}

#[tokio::test]
async fn the_daily_allowance_is_counted_reported_and_enforced() {
    let o = org(None).await;
    o.control("PUT", "/settings", Some(json!({"daily_api_limit": 3})))
        .await;
    for i in 1..=3 {
        let r = o.api("GET", "/limits", None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.headers["sforce-limit-info"],
            format!("api-usage={i}/3").as_str()
        );
    }
    let r = o.api("GET", "/limits", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    // People are not counted against the integration's allowance.
    assert_eq!(
        o.call("GET", &format!("{V}/limits"), None, Some(HUMAN))
            .await
            .status,
        StatusCode::OK
    );
    o.control("POST", "/clock/advance", Some(json!({"ms": 86_400_000})))
        .await;
    let r = o.api("GET", "/limits", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["DailyApiRequests"],
        json!({"Max": 3, "Remaining": 2})
    );
}

#[tokio::test]
async fn org_rules_answer_with_salesforces_error_bodies() {
    let o = org(None).await;
    let cases = [
        (
            "Lead",
            json!({"FirstName": "No", "Company": "C"}),
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [LastName]",
        ),
        (
            "Contact",
            json!({"LastName": "L", "Title": "x".repeat(129)}),
            "STRING_TOO_LONG",
            "",
        ),
        (
            "Lead",
            json!({"LastName": "L", "Company": "C", "Status": "Nope"}),
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "Status: bad value for restricted picklist field: Nope",
        ),
        (
            "Account",
            json!({"Name": "A", "Employee_Band__c": "big"}),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "",
        ),
        (
            "Contact",
            json!({"LastName": "L", "Shoe_Size__c": 9}),
            "INVALID_FIELD",
            "No such column 'Shoe_Size__c' on sobject of type Contact",
        ),
    ];
    for (object, fields, code, message) in cases {
        let r = o
            .api("POST", &format!("/sobjects/{object}"), Some(fields))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(first_error(&r).0, code, "{}", r.body);
        if !message.is_empty() {
            assert_eq!(first_error(&r).1, message);
        }
    }
    o.create(
        "Contact",
        json!({"LastName": "Dup", "Email": "dup@example.com", "HubSpot_Contact_Id__c": "1"}),
    )
    .await;
    let r = o
        .api(
            "POST",
            "/sobjects/Contact",
            Some(json!({"LastName": "Dup2", "Email": "DUP@example.com"})),
        )
        .await;
    assert_eq!(first_error(&r).0, "DUPLICATES_DETECTED");
    assert!(
        r.body[0]["duplicateResult"]["matchResults"][0]["matchRecords"][0]["record"]["Id"]
            .is_string()
    );
    let allowed = o
        .send(
            o.http
                .post(format!("{}{V}/sobjects/Contact", o.sandbox.url()))
                .bearer_auth(TOKEN)
                .header("Sforce-Duplicate-Rule-Header", "allowSave=true")
                .json(&json!({"LastName": "Dup2", "Email": "dup@example.com"})),
        )
        .await;
    assert_eq!(allowed.status, StatusCode::CREATED);
    let r = o
        .api(
            "POST",
            "/sobjects/Contact",
            Some(json!({"LastName": "X", "HubSpot_Contact_Id__c": "1"})),
        )
        .await;
    assert_eq!(first_error(&r).0, "DUPLICATE_VALUE");

    o.control("POST", "/validation-rules", Some(json!({"object": "Lead", "field": "Phone", "when": "blank", "message": "Leads need a phone number"}))).await;
    let r = o
        .api(
            "POST",
            "/sobjects/Lead",
            Some(json!({"LastName": "L", "Company": "C"})),
        )
        .await;
    assert_eq!(
        first_error(&r),
        (
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "Leads need a phone number"
        )
    );

    let account = o.create("Account", json!({"Name": "Locked"})).await;
    o.control(
        "PUT",
        "/settings",
        Some(json!({"read_only_records": [account]})),
    )
    .await;
    let r = o
        .api(
            "PATCH",
            &format!("/sobjects/Account/{account}"),
            Some(json!({"Name": "X"})),
        )
        .await;
    assert_eq!(first_error(&r).0, "INSUFFICIENT_ACCESS_OR_READONLY");
    o.control("PUT", "/settings", Some(json!({"read_only_records": []})))
        .await;
    o.control(
        "POST",
        "/faults",
        Some(json!({"faults": [{"lock_row": true}]})),
    )
    .await;
    let r = o
        .api(
            "PATCH",
            &format!("/sobjects/Account/{account}"),
            Some(json!({"Name": "X"})),
        )
        .await;
    assert_eq!(first_error(&r).0, "UNABLE_TO_LOCK_ROW");
    assert_eq!(
        o.api(
            "PATCH",
            &format!("/sobjects/Account/{account}"),
            Some(json!({"Name": "X"}))
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );

    // A fault aimed at one kind of call waits for it; the others pass.
    o.control(
        "POST",
        "/faults",
        Some(json!({"faults": [{"status": 503, "when": "AccountHistory"}]})),
    )
    .await;
    let plain = "/query?q=SELECT+Id+FROM+Account";
    assert_eq!(o.api("GET", plain, None).await.status, StatusCode::OK);
    let history = "/query?q=SELECT+AccountId+FROM+AccountHistory";
    assert_eq!(
        o.api("GET", history, None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(o.api("GET", history, None).await.status, StatusCode::OK);

    // A held call waits, unanswered, while other calls pass, until it is released;
    // what it answers is the org as it is at the release.
    o.control(
        "POST",
        "/faults",
        Some(json!({"faults": [{"hold": true, "when": "AccountHistory"}]})),
    )
    .await;
    let held = {
        let request = o
            .http
            .get(format!("{}{V}{history}", o.sandbox.url()))
            .bearer_auth(TOKEN);
        tokio::spawn(async move { request.send().await.map(|r| r.status()) })
    };
    while o.control("GET", "/faults", None).await.body["held"] != json!(1) {
        tokio::task::yield_now().await;
    }
    assert_eq!(o.api("GET", plain, None).await.status, StatusCode::OK);
    assert!(
        !held.is_finished(),
        "the held call was answered before its release"
    );
    let released = o.control("POST", "/faults/release", None).await;
    assert_eq!(released.body["released"], json!(1));
    let answer = held.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.ok(), Some(StatusCode::OK));
    assert_eq!(
        o.control("GET", "/faults", None).await.body,
        json!({"pending": 0, "held": 0})
    );
    // An outage ends when it is cleared: its faults not yet met are dropped.
    o.control(
        "POST",
        "/faults",
        Some(json!({"faults": [{"status": 503}], "repeat": 50})),
    )
    .await;
    let down = o.query("SELECT Id FROM Lead").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    let cleared = o.control("DELETE", "/faults", None).await;
    assert_eq!(cleared.body, json!({"cleared": 49}));
    assert_eq!(o.query("SELECT Id FROM Lead").await.status, StatusCode::OK);
    // A hold names the call it holds.
    let bad = o
        .control("POST", "/faults", Some(json!({"faults": [{"hold": true}]})))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let long = format!(
        "/query?q=SELECT+Id+FROM+Account+WHERE+Name+IN+('{}')",
        "a".repeat(17_000)
    );
    assert_eq!(
        o.api("GET", &long, None).await.status,
        StatusCode::URI_TOO_LONG
    );
}

#[tokio::test]
async fn a_converted_lead_points_at_its_contact_and_refuses_updates() {
    let o = org(None).await;
    let lead = o
        .create(
            "Lead",
            json!({"LastName": "Lee", "Company": "Lee Co", "Email": "lee@leeco.com", "Website": "https://leeco.com"}),
        )
        .await;
    let r = o
        .control(
            "POST",
            &format!("/leads/{lead}/convert"),
            Some(json!({"createOpportunity": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let contact = r.body["contactId"].as_str().unwrap_or_default().to_owned();
    let q = o.query(&format!("SELECT IsConverted, ConvertedContactId, ConvertedAccountId, Status FROM Lead WHERE Id = '{lead}'")).await;
    let row = &q.body["records"][0];
    assert_eq!(row["IsConverted"], true);
    assert_eq!(row["ConvertedContactId"], contact.as_str());
    assert_eq!(row["Status"], "Closed - Converted");
    let r = o
        .api(
            "PATCH",
            &format!("/sobjects/Lead/{lead}"),
            Some(json!({"Phone": "1"})),
        )
        .await;
    assert_eq!(
        first_error(&r),
        (
            "CANNOT_UPDATE_CONVERTED_LEAD",
            "cannot reference converted lead"
        )
    );
    let q = o
        .query(&format!(
            "SELECT Email, Account.Name, Account.Website FROM Contact WHERE Id = '{contact}'"
        ))
        .await;
    assert_eq!(q.body["records"][0]["Account"]["Name"], "Lee Co");
    // The standard mapping: the Lead's website becomes the Account's.
    assert_eq!(
        q.body["records"][0]["Account"]["Website"],
        "https://leeco.com"
    );
}

#[tokio::test]
async fn updated_and_deleted_windows() {
    let o = org(None).await;
    let a = o.create("Account", json!({"Name": "A"})).await;
    o.control("POST", "/clock/advance", Some(json!({"ms": 120_000})))
        .await;
    let b = o.create("Account", json!({"Name": "B"})).await;
    o.api("DELETE", &format!("/sobjects/Account/{a}"), None)
        .await;
    o.control("POST", "/clock/advance", Some(json!({"ms": 120_000})))
        .await;
    let window = |start: &str, end: &str| {
        serde_urlencoded::to_string([("start", start), ("end", end)]).unwrap_or_default()
    };
    let r = o
        .api(
            "GET",
            &format!(
                "/sobjects/Account/updated/?{}",
                window("2024-05-01T00:01:00+00:00", "2024-05-01T00:10:00+00:00")
            ),
            None,
        )
        .await;
    assert_eq!(r.body["ids"], json!([b]));
    assert_eq!(r.body["latestDateCovered"], "2024-05-01T00:04:00.000+0000");
    let r = o
        .api(
            "GET",
            &format!(
                "/sobjects/Account/deleted/?{}",
                window("2024-05-01T00:00:00Z", "2024-05-01T00:10:00Z")
            ),
            None,
        )
        .await;
    assert_eq!(r.body["deletedRecords"][0]["id"], a.as_str());
    let r = o
        .api(
            "GET",
            &format!(
                "/sobjects/Account/updated/?{}",
                window("2024-03-01T00:00:00Z", "2024-05-01T00:10:00Z")
            ),
            None,
        )
        .await;
    assert_eq!(first_error(&r).0, "INVALID_REPLICATION_DATE");
    let r = o.query("SELECT Id, IsDeleted FROM Account").await;
    assert_eq!(r.body["totalSize"], 1);
    let q = serde_urlencoded::to_string([("q", "SELECT Id FROM Account WHERE IsDeleted = true")])
        .unwrap_or_default();
    let r = o.api("GET", &format!("/queryAll?{q}"), None).await;
    assert_eq!(r.body["records"][0]["Id"], a.as_str());
}

#[tokio::test]
async fn describe_reports_formulas_picklists_and_required_fields() {
    let o = org(None).await;
    let r = o.api("GET", "/sobjects/Account/describe", None).await;
    let field = |name: &str| {
        r.body["fields"]
            .as_array()
            .and_then(|f| f.iter().find(|x| x["name"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(field("Employee_Band__c")["calculated"], true);
    assert_eq!(field("Employee_Band__c")["updateable"], false);
    assert_eq!(field("Name")["nillable"], false);
    assert_eq!(field("HubSpot_Company_Id__c")["externalId"], true);
    let r = o.api("GET", "/sobjects/Lead/describe", None).await;
    let status = r.body["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["name"] == "Status"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(status["restrictedPicklist"], true);
    assert_eq!(status["picklistValues"].as_array().map(Vec::len), Some(4));
    let r = o.api("GET", "/sobjects", None).await;
    assert_eq!(r.body["maxBatchSize"], 200);
}

#[tokio::test]
async fn one_composite_call_carries_several_queries() {
    let o = org(None).await;
    o.create("Account", json!({"Name": "A"})).await;
    let before = o.control("GET", "/counters", None).await.body["api_usage"]
        .as_u64()
        .unwrap_or(0);
    let r = o.api("POST", "/composite", Some(json!({"compositeRequest": [
        {"method": "GET", "url": format!("{V}/query?q=SELECT+Id+FROM+Account"), "referenceId": "accounts"},
        {"method": "GET", "url": format!("{V}/query?q=SELECT+Id+FROM+Contact"), "referenceId": "contacts"},
    ]}))).await;
    assert_eq!(r.body["compositeResponse"][0]["body"]["totalSize"], 1);
    assert_eq!(r.body["compositeResponse"][1]["referenceId"], "contacts");
    let after = o.control("GET", "/counters", None).await.body["api_usage"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(after - before, 1, "one API call for the whole composite");
}

mod outbound {
    use super::*;
    use axum::body::Bytes;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::mpsc;

    const ACK: &str = "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>";

    /// An outbound-message endpoint that fails its first `fail_first` messages.
    async fn endpoint(fail_first: usize) -> (String, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let calls = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/webhooks/salesforce",
            axum::routing::post(move |body: Bytes| {
                let (tx, calls) = (tx.clone(), calls.clone());
                async move {
                    let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
                    if calls.fetch_add(1, Ordering::SeqCst) < fail_first {
                        (StatusCode::SERVICE_UNAVAILABLE, String::new())
                    } else {
                        (StatusCode::OK, ACK.to_owned())
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!(
            "http://{}/webhooks/salesforce?token=t",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, rx)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no outbound message within 10 s"))
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn changes_go_out_as_soap_notifications_and_are_retried_until_acked() {
        let o = org(None).await;
        let (url, mut rx) = endpoint(1).await;
        o.control(
            "PUT",
            "/outbound",
            Some(json!({"url": url, "objects": ["Contact"]})),
        )
        .await;
        let id = o
            .create(
                "Contact",
                json!({"LastName": "Out", "Email": "out@example.com"}),
            )
            .await;
        let first = next(&mut rx).await;
        assert!(
            first.contains("<OrganizationId>00D8M0000000001AAA</OrganizationId>"),
            "{first}"
        );
        assert!(first.contains(&format!("<sf:Id>{id}</sf:Id>")));
        assert!(first.contains("<sf:Email>out@example.com</sf:Email>"));
        assert!(first.contains("xsi:type=\"sf:Contact\""));
        // Not acked: retried on the sandbox clock only.
        o.control("POST", "/clock/advance", Some(json!({"ms": 15_000})))
            .await;
        let again = next(&mut rx).await;
        assert_eq!(again, first);
        // Messages go one at a time: once the next one arrives, the Ack of this one
        // has been counted.
        o.create("Contact", json!({"LastName": "Second"})).await;
        assert!(
            next(&mut rx)
                .await
                .contains("<sf:LastName>Second</sf:LastName>")
        );
        let state = o.control("GET", "/outbound", None).await.body;
        assert_eq!(state["failed"], 1);
        assert!(state["delivered"].as_u64() >= Some(1));
    }
}

mod jwt {
    use super::*;
    use base64::Engine;
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};

    const PRIVATE: &str = include_str!("fixtures/jwt-test-key.pem");
    const PUBLIC: &str = include_str!("fixtures/jwt-test-key.pub.pem");

    fn assertion(claims: Value) -> String {
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let signing_input = format!("{}.{}", b64(&json!({"alg": "RS256"})), b64(&claims));
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(PRIVATE).unwrap_or_else(|e| panic!("{e}"));
        let signature = SigningKey::<sha2::Sha256>::new(key).sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    async fn grant(o: &Org, assertion: &str) -> Reply {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ];
        o.send(
            o.http
                .post(format!("{}/services/oauth2/token", o.sandbox.url()))
                .form(&form),
        )
        .await
    }

    #[tokio::test]
    async fn a_signed_assertion_gets_a_session_and_a_forged_one_does_not() {
        let settings = SalesforceSettings {
            tokens: vec![TOKEN.into()],
            jwt_public_key: Some(PUBLIC.into()),
            ..SalesforceSettings::default()
        };
        let sandbox = SalesforceSandbox::spawn(settings, Clock::frozen(T0), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let o = Org {
            sandbox,
            http: reqwest::Client::new(),
        };
        let exp = T0 / 1000 + 120;
        let claims = json!({"iss": "salesforce-client-id", "sub": "integration@crmsync-demo.com", "aud": "https://login.salesforce.com", "exp": exp});
        let r = grant(&o, &assertion(claims.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body["refresh_token"].is_null());
        let session = r.body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            o.call("GET", &format!("{V}/limits"), None, Some(&session))
                .await
                .status,
            StatusCode::OK
        );

        let mut tampered = assertion(claims.clone());
        tampered.insert(tampered.len() / 2, 'x');
        assert_eq!(grant(&o, &tampered).await.body["error"], "invalid_grant");
        let stale = json!({"iss": "salesforce-client-id", "sub": "u", "aud": "https://login.salesforce.com", "exp": T0 / 1000 - 1});
        assert_eq!(
            grant(&o, &assertion(stale)).await.body["error_description"],
            "expired authorization code"
        );
        let wrong_app = json!({"iss": "someone-else", "sub": "u", "aud": "https://login.salesforce.com", "exp": exp});
        assert_eq!(
            grant(&o, &assertion(wrong_app)).await.body["error"],
            "invalid_client_id"
        );
    }
}

#[tokio::test]
async fn the_integrations_writes_are_listed_per_record() {
    let o = org(None).await;
    let id = o
        .create("Lead", json!({"LastName": "Writes", "Company": "Acme"}))
        .await;
    let path = format!("/sobjects/Lead/{id}");
    for _ in 0..2 {
        let r = o.api("PATCH", &path, Some(json!({"Title": "CTO"}))).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    // A person's edit is not the integration's.
    o.control(
        "PATCH",
        &format!("/objects/Lead/{id}"),
        Some(json!({"Phone": "+1 555 0100"})),
    )
    .await;
    let writes = o.control("GET", "/writes", None).await.body;
    let log = writes
        .as_object()
        .and_then(|m| m.iter().find(|(k, _)| k.starts_with(&id[..15])))
        .and_then(|(_, v)| v.as_array().cloned())
        .unwrap_or_default();
    let changed: Vec<&Value> = log.iter().map(|w| &w["changed"]).collect();
    assert_eq!(
        changed,
        vec![&json!(["(created)"]), &json!(["Title"]), &json!([])],
        "{writes}"
    );
}

/// A seeded org's records were last modified well before it started, as an org's are
/// before a sync is set up: a change feed started now reads none of them (stamped at
/// the start, all of them fell in its first read's overlap).
#[tokio::test]
async fn seeded_records_were_modified_before_the_org_started() {
    let o = org(Some(SeedSpec {
        seed: 3,
        records: 200,
        overlap: 0.5,
        deals: None,
    }))
    .await;
    let all = o.query("SELECT COUNT() FROM Contact").await.body["totalSize"]
        .as_u64()
        .unwrap_or(0);
    assert!(all > 0, "{all}");
    // Ten minutes before the start: none is this recent.
    let recent = o
        .query("SELECT COUNT() FROM Contact WHERE SystemModstamp > 2024-04-30T23:50:00Z")
        .await
        .body["totalSize"]
        .as_u64();
    assert_eq!(recent, Some(0));
}
