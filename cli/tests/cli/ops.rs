//! The operator commands as an admin runs them while `crmsync run` works on the same
//! store: status, errors (seeded Salesforce validation failures), a record's card, the
//! dashboard in headless Chromium, pause and resume, resync by code; and the same
//! commands against an AWS deployment on moto's server.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use crmsync_shared::adapters::dynamodb::DynamoStore;
use crmsync_shared::adapters::sqs::SqsQueue;
use crmsync_shared::ports::{ControlStore, Outcome, RecordRef, StatusStore, SyncEvent, WorkQueue};
use serde_json::{Value, json};

use super::run::{
    Sandboxes, call, contacts_with, crmsync_env, eventually, leads_with, sandboxes,
    start_crmsync_polling, temp_store,
};

/// `crmsync ARGS` with the environment of `crmsync run` and `extra` on top.
fn op(s: &Sandboxes, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crmsync"));
    command.args(args);
    crmsync_env(&mut command, s);
    for (k, v) in extra {
        command.env(k, v);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run crmsync: {e}"))
}

fn ok(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn chromium() -> PathBuf {
    let path = std::env::var("CRMSYNC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let path = PathBuf::from(path);
    assert!(
        path.exists(),
        "{} is missing: install Debian's chromium (.ci/run does)",
        path.display()
    );
    path
}

/// Headless Chromium on the dashboard: the page's DOM, and a screenshot at `png`.
fn browse(url: &str, png: &std::path::Path) -> String {
    let profile = std::env::temp_dir().join(format!("crmsync-chromium-{}", std::process::id()));
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ];
    let run = |extra: &[String]| {
        Command::new(chromium())
            .args(flags)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url)
            .output()
            .unwrap_or_else(|e| panic!("cannot run chromium: {e}"))
    };
    let dom = run(&["--dump-dom".to_owned()]);
    // A phone-sized window: the page must read there.
    let shot = run(&[
        format!("--screenshot={}", png.display()),
        "--window-size=412,1600".to_owned(),
    ]);
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

async fn hs_create(s: &Sandboxes, properties: Value) -> String {
    let created = call(
        reqwest::Client::new()
            .post(format!("{}/_sandbox/hubspot/objects/contacts", s.hubspot))
            .json(&json!({ "properties": properties })),
    )
    .await;
    created["id"].as_str().unwrap_or_default().to_owned()
}

fn status_json(s: &Sandboxes, store: &str) -> Value {
    let out = op(s, &["status", "--store", store, "--json"], &[]);
    serde_json::from_str(&ok(&out)).unwrap_or_else(|e| panic!("status --json: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_commands_work_on_a_running_sync() {
    let s = sandboxes();
    let http = reqwest::Client::new();
    // The world as it is: a webhook lost now and then (the poller finds those).
    call(
        http.put(format!("{}/_sandbox/hubspot/webhooks", s.hubspot))
            .json(&json!({"loss_rate": 0.05})),
    )
    .await;
    let store_path = temp_store("ops");
    let store = store_path.display().to_string();
    let (_crmsync, url) = start_crmsync_polling(&s, &store_path, None, "2s");
    super::run::point_pushes_at(&s, &url).await;
    call(
        http.post(format!("{}/_sandbox/salesforce/validation-rules", s.salesforce))
            .json(&json!({"object": "Lead", "field": "Title", "when": {"equals": "Intern"}, "message": "Interns are not leads"})),
    )
    .await;
    let mut interns = Vec::new();
    for n in 0..3 {
        let email = format!("intern{n}@example.org");
        interns.push(
            hs_create(
                &s,
                json!({"email": email, "lastname": "Intern", "jobtitle": "Intern"}),
            )
            .await,
        );
    }
    let ok_id = hs_create(
        &s,
        json!({"email": "boss@example.org", "lastname": "Boss", "jobtitle": "CEO"}),
    )
    .await;
    // Skipped (no email): a reason resync takes as a code too.
    hs_create(&s, json!({"lastname": "Nomail"})).await;
    eventually("three failures and one sync", || async {
        let h = status_json(&s, &store);
        h["failing_by_code"]["FIELD_CUSTOM_VALIDATION_EXCEPTION"] == json!(3)
            && leads_with(&s, "boss@example.org").await.len() == 1
    })
    .await;

    // status: records per pair, the codes with hints, feeds, the queue, API use.
    let text = ok(&op(&s, &["status", "--store", &store], &[]));
    for expected in [
        "syncing (not paused)",
        "contacts",
        "to_salesforce",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "3 records",
        "validation rule",
        "hubspot:contacts",
        "queue:",
        "calls by crmsync in 24 h",
    ] {
        assert!(
            text.contains(expected),
            "status has no {expected:?}:\n{text}"
        );
    }

    // errors: each failing record with its code, field, the CRM's message and a hint.
    let text = ok(&op(&s, &["errors", "--store", &store], &[]));
    assert!(
        text.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION  3 records"),
        "{text}"
    );
    assert!(
        text.contains("fix: the record breaks a Salesforce validation rule"),
        "{text}"
    );
    for id in &interns {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("hubspot:contacts:{id} ")))
            .unwrap_or_else(|| panic!("intern {id} not listed:\n{text}"));
        assert!(
            line.contains("field Title") && line.contains("Interns are not leads"),
            "{line}"
        );
    }
    let only = ok(&op(
        &s,
        &["errors", "--store", &store, "--code", "DUPLICATE_VALUE"],
        &[],
    ));
    assert!(only.contains("no failing records"), "{only}");
    let deals = ok(&op(
        &s,
        &["errors", "--store", &store, "--pair", "deals"],
        &[],
    ));
    assert!(deals.contains("no failing records"), "{deals}");
    let groups: Value = serde_json::from_str(&ok(&op(
        &s,
        &[
            "errors", "--store", &store, "--pair", "contacts", "--json", "--limit", "2",
        ],
        &[],
    )))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(groups[0]["records"], 3, "{groups}");
    assert_eq!(
        groups[0]["failing"].as_array().map(Vec::len),
        Some(2),
        "{groups}"
    );

    // record: the card of a synced record, from either side.
    let lead = leads_with(&s, "boss@example.org").await[0]["Id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let card = ok(&op(
        &s,
        &[
            "record",
            "--store",
            &store,
            &format!("hubspot:contacts:{ok_id}"),
        ],
        &[],
    ));
    assert!(
        card.contains(&format!(
            "linked: hubspot:contacts:{ok_id} <-> salesforce:Lead:{lead}"
        )),
        "{card}"
    );
    assert!(card.contains("status: synced to_salesforce"), "{card}");
    assert!(card.contains("wrote jobtitle"), "{card}");
    let from_salesforce = ok(&op(
        &s,
        &[
            "record",
            "--store",
            &store,
            &format!("salesforce:Lead:{lead}"),
        ],
        &[],
    ));
    assert!(
        from_salesforce.contains(&format!("hubspot:contacts:{ok_id}")),
        "{from_salesforce}"
    );
    let failing = ok(&op(
        &s,
        &[
            "record",
            "--store",
            &store,
            &format!("hubspot:contacts:{}", interns[0]),
        ],
        &[],
    ));
    assert!(
        failing.contains("[FIELD_CUSTOM_VALIDATION_EXCEPTION]") && failing.contains("fix:"),
        "{failing}"
    );
    let bad = op(&s, &["record", "--store", &store, "contacts-101"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("hubspot:OBJECT:ID"));

    // The dashboard: behind the key (a browser gets a login prompt), and in Chromium.
    let refused = http
        .get(format!("{url}/dashboard"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused.status().as_u16(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    let shots: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "target", "screenshots"]
        .iter()
        .collect();
    std::fs::create_dir_all(&shots).unwrap_or_else(|e| panic!("{e}"));
    let png = shots.join("dashboard.png");
    let authed = url.replacen("http://", "http://admin:key@", 1);
    let dom = browse(&format!("{authed}/dashboard"), &png);
    for expected in [
        "SYNCING",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "<b>3</b> records",
        "validation rule",
        &format!("hubspot:contacts:{}", interns[0]),
        "id=\"chart\"",
        "salesforce:Lead",
    ] {
        assert!(
            dom.contains(expected),
            "the dashboard shows no {expected:?}:\n{dom}"
        );
    }
    assert!(
        std::fs::metadata(&png).is_ok_and(|m| m.len() > 1_000),
        "no screenshot at {}",
        png.display()
    );

    // pause: nothing syncs, the status says so; resume catches up.
    let paused = ok(&op(
        &s,
        &["pause", "--store", &store, "--reason", "migration"],
        &[],
    ));
    assert!(paused.contains("paused since"), "{paused}");
    let text = ok(&op(&s, &["status", "--store", &store], &[]));
    assert!(
        text.contains("PAUSED") && text.contains("migration"),
        "{text}"
    );
    call(
        http.patch(format!(
            "{}/_sandbox/hubspot/objects/contacts/{ok_id}",
            s.hubspot
        ))
        .json(&json!({"properties": {"jobtitle": "Chair"}})),
    )
    .await;
    // Three polls' worth of time, on the real clock of the running process.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(
        leads_with(&s, "boss@example.org").await[0]["Title"],
        json!("CEO"),
        "paused"
    );
    let resumed = ok(&op(&s, &["resume", "--store", &store], &[]));
    assert!(resumed.contains("resumed after"), "{resumed}");
    eventually("the edit made while paused", || async {
        leads_with(&s, "boss@example.org").await[0]["Title"] == json!("Chair")
    })
    .await;

    // resync by code, once the admin fixed the cause.
    call(http.delete(format!(
        "{}/_sandbox/salesforce/validation-rules",
        s.salesforce
    )))
    .await;
    let queued = ok(&op(
        &s,
        &[
            "resync",
            "--store",
            &store,
            "--code",
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        ],
        &[],
    ));
    assert!(queued.contains("queued 3 records"), "{queued}");
    let skipped = ok(&op(
        &s,
        &["resync", "--store", &store, "--code", "no_email"],
        &[],
    ));
    assert!(skipped.contains("queued 1 record"), "{skipped}");
    eventually("the interns syncing", || async {
        let h = status_json(&s, &store);
        h["failing_by_code"]
            .as_object()
            .is_some_and(|m| m.is_empty())
            && leads_with(&s, "intern2@example.org").await.len() == 1
    })
    .await;
    // resync a HubSpot list's members.
    let list = call(
        http.post(format!("{}/crm/v3/lists", s.hubspot))
            .bearer_auth("hubspot-integration-token")
            .json(&json!({"name": "Resync", "objectTypeId": "0-1", "processingType": "MANUAL"})),
    )
    .await;
    let list_id = list["list"]["listId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let added = http
        .put(format!(
            "{}/crm/v3/lists/{list_id}/memberships/add",
            s.hubspot
        ))
        .bearer_auth("hubspot-integration-token")
        .json(&json!([ok_id, interns[0]]))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(added.status().is_success(), "{}", added.status());
    let queued = ok(&op(
        &s,
        &["resync", "--store", &store, "--list", &list_id],
        &[],
    ));
    assert!(queued.contains("queued 2 records"), "{queued}");

    let none = op(&s, &["resync", "--store", &store], &[]);
    assert_eq!(
        none.status.code(),
        Some(2),
        "resync needs something to resync"
    );
    assert_eq!(contacts_with(&s, "intern0@example.org").await.len(), 1);
}

fn moto() -> String {
    std::env::var("CRMSYNC_MOTO_URL").unwrap_or_else(|_| {
        panic!("CRMSYNC_MOTO_URL is not set: run the tests with scripts/test.sh, which starts moto's server")
    })
}

/// The same commands against an AWS deployment: the state in DynamoDB and the queue on
/// SQS (moto's server), found through the standard credential chain and the stack's
/// table and queue.
#[tokio::test(flavor = "multi_thread")]
async fn operator_commands_work_against_aws() {
    let s = sandboxes();
    let moto = moto();
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await;
    let suffix = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let table = format!("crmsync-cli-{suffix}");
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    DynamoStore::create_table(&dynamodb, &table)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let queue = SqsQueue::create(
        &aws_sdk_sqs::Client::new(&aws),
        &format!("crmsync-cli-{suffix}"),
        5,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(DynamoStore::new(dynamodb, table.clone()));
    // What the worker functions recorded: one failure.
    let failed = SyncEvent {
        record: RecordRef {
            side: "hubspot".into(),
            object: "contacts".into(),
            id: "901".into(),
        },
        direction: "to_salesforce".into(),
        outcome: Outcome::Failed,
        code: Some("REQUIRED_FIELD_MISSING".into()),
        message: Some("Required fields are missing: [Company]".into()),
        field: Some("Company".into()),
        changes: Vec::new(),
        held_back: Vec::new(),
        linked: None,
        at: 1_700_000_000_000,
    };
    store
        .record(&failed, 86_400_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let dlq = queue.dead_letter_url().unwrap_or_default().to_owned();
    let env = [
        ("CRMSYNC_AWS_ENDPOINT", moto.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let aws_args = |command: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = command.iter().map(|s| (*s).to_owned()).collect();
        args.extend([
            "--aws".to_owned(),
            "--table".to_owned(),
            table.clone(),
            "--queue-url".to_owned(),
            queue.url().to_owned(),
            "--dead-letter-url".to_owned(),
            dlq.clone(),
        ]);
        args
    };
    let run = |command: &[&str]| {
        let args = aws_args(command);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        op(&s, &refs, &env)
    };

    let text = ok(&run(&["status"]));
    assert!(
        text.contains("REQUIRED_FIELD_MISSING") && text.contains("queue: 0 waiting"),
        "{text}"
    );
    let text = ok(&run(&["errors"]));
    assert!(
        text.contains("hubspot:contacts:901  field Company  Required fields are missing"),
        "{text}"
    );
    let card = ok(&run(&["record", "hubspot:contacts:901"]));
    assert!(
        card.contains("status: failed to_salesforce [REQUIRED_FIELD_MISSING]"),
        "{card}"
    );

    ok(&run(&["pause", "--reason", "upgrade"]));
    let (controls, _) = store.controls().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        controls.paused.map(|p| p.reason),
        Some(Some("upgrade".to_owned()))
    );
    let queued = ok(&run(&[
        "resync",
        "--code",
        "REQUIRED_FIELD_MISSING",
        "hubspot:contacts:902",
    ]));
    assert!(
        queued.contains("queued 2 records") && queued.contains("paused"),
        "{queued}"
    );
    let mut ids = Vec::new();
    for _ in 0..5 {
        for d in queue.receive(10, 0).await.unwrap_or_else(|e| panic!("{e}")) {
            ids.push(d.item.id.clone());
            queue.ack(&d).await.unwrap_or_else(|e| panic!("{e}"));
        }
    }
    ids.sort();
    assert_eq!(ids, vec!["901".to_owned(), "902".to_owned()]);
    let resumed = ok(&run(&["resume"]));
    assert!(resumed.contains("resumed after"), "{resumed}");
    let (controls, _) = store.controls().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(controls.paused.is_none());

    // Without a table it names what is missing.
    let bare = op(&s, &["status", "--aws"], &env);
    assert_eq!(bare.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("CRMSYNC_TABLE"));
}

/// `crmsync backfill` on a terminal: a bar per object with its rate and time left,
/// then a summary per object; everything listed is synced.
#[tokio::test(flavor = "multi_thread")]
async fn backfill_shows_progress_per_object() {
    let s = sandboxes();
    let http = reqwest::Client::new();
    for crm in ["hubspot", "salesforce"] {
        let base = if crm == "hubspot" {
            &s.hubspot
        } else {
            &s.salesforce
        };
        call(
            http.post(format!("{base}/_sandbox/{crm}/seed"))
                .json(&json!({"seed": 5, "records": 400, "overlap": 0.5})),
        )
        .await;
    }
    let store = temp_store("backfill").display().to_string();
    // `script` gives the command a terminal, where indicatif draws.
    let line = format!(
        "{} backfill --store {}",
        env!("CARGO_BIN_EXE_crmsync"),
        store
    );
    let mut command = Command::new("script");
    command.args(["-qec", &line, "/dev/null"]);
    crmsync_env(&mut command, &s);
    command.env("PATH", std::env::var("PATH").unwrap_or_default());
    command.env("TERM", "xterm");
    let text = ok(&command
        .output()
        .unwrap_or_else(|e| panic!("cannot run script: {e}")));
    for expected in ["contacts [", "Lead [", "/s", " left"] {
        assert!(
            text.contains(expected),
            "no {expected:?} in the progress:\n{text}"
        );
    }
    let summary = text
        .lines()
        .find(|l| l.starts_with("contacts: "))
        .unwrap_or_else(|| panic!("no summary for contacts:\n{text}"));
    let numbers: Vec<u64> = summary
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        numbers.len() >= 2 && numbers[0] > 100 && numbers[0] == numbers[1],
        "{summary}"
    );
    let h = status_json(&s, &store);
    assert!(h["flows"].as_array().is_some_and(|f| !f.is_empty()), "{h}");
    assert_eq!(h["queue"]["waiting"], 0, "{h}");
}

/// `crmsync import salesforce:Lead`: stopped after its first chunk, it carries on when
/// run again, draws its bar on a terminal, and ends with what each Lead became; every
/// Lead has one contact. (A crash between a HubSpot write and its link, at 5,000 Leads:
/// `pipeline::import`, where the queue's minute of visibility is the test's clock.)
#[tokio::test(flavor = "multi_thread")]
async fn import_resumes_after_interruptions_and_summarizes() {
    const LEADS: usize = 2_500;
    let s = sandboxes();
    let http = reqwest::Client::new();
    let rows: Vec<Value> = (0..LEADS)
        .map(|i| json!({"LastName": format!("Imported {i}"), "Email": format!("imported{i}@import.example"), "Company": "Imported"}))
        .collect();
    call(
        http.post(format!(
            "{}/_sandbox/salesforce/objects/Lead/load",
            s.salesforce
        ))
        .json(&json!({"records": rows})),
    )
    .await;
    let store = temp_store("import").display().to_string();
    let args = ["import", "salesforce:Lead", "--store", store.as_str()];
    let out = op(
        &s,
        &args,
        &[("CRMSYNC_FAILPOINT", "after_import_chunk:Lead")],
    );
    assert!(
        !out.status.success(),
        "did not stop after its first chunk: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let bad = op(
        &s,
        &["import", "salesforce:Nope__c", "--store", &store],
        &[],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not synced by any enabled pair"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // `script` gives the command a terminal, where indicatif draws.
    let line = format!(
        "{} import salesforce:Lead --store {store}",
        env!("CARGO_BIN_EXE_crmsync")
    );
    let mut command = Command::new("script");
    command.args(["-qec", &line, "/dev/null"]);
    crmsync_env(&mut command, &s);
    command.env("PATH", std::env::var("PATH").unwrap_or_default());
    command.env("TERM", "xterm");
    let text = ok(&command
        .output()
        .unwrap_or_else(|e| panic!("cannot run script: {e}")));
    for expected in [
        "resuming the import",
        "Lead [",
        " left",
        "imported salesforce:Lead",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    let count = |what: &str| -> u64 {
        text.lines()
            .find(|l| l.trim_end().ends_with(what))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {what:?} in:\n{text}"))
    };
    assert_eq!(count("created in HubSpot"), LEADS as u64, "{text}");
    assert_eq!(count("linked with an existing HubSpot record"), 0, "{text}");
    let contacts =
        super::run::records(&s.hubspot, "/_sandbox/hubspot/objects/contacts", "results").await;
    let mut emails: Vec<&str> = contacts
        .iter()
        .filter_map(|c| c["properties"]["email"].as_str())
        .filter(|e| e.ends_with("@import.example"))
        .collect();
    emails.sort_unstable();
    emails.dedup();
    assert_eq!(emails.len(), LEADS);
    assert_eq!(
        contacts.len(),
        LEADS,
        "a Lead with two contacts, or a contact from nowhere"
    );
}
