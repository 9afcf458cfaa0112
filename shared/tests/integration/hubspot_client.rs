//! `HubSpotClient` against the HubSpot sandbox: batch sizes and call counts, paging,
//! reading past the 10,000 search cap, 429s and 5xx absorbed, OAuth expiry survived,
//! per-input errors, and no secret in any log line.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crmsync_sandbox::hubspot::limits::RateLimits;
use crmsync_sandbox::hubspot::{Caller, Fault};
use crmsync_sandbox::seed::{SEEDED_AGO_MS, SeedSpec};
use crmsync_sandbox::{Clock, HubSpotSandbox, HubSpotSettings};
use crmsync_shared::adapters::http::{ErrorClass, RetryPolicy, Secret};
use crmsync_shared::adapters::hubspot::{
    HsRecord, HubSpotAuth, HubSpotClient, HubSpotConfig, HubSpotError, NewRecord,
};
use crmsync_shared::ports::crm::Modified;
use serde_json::{Map, Value, json};

use crate::harness::{T0, pause};

const TOKEN: &str = "pat-na1-integration-secret-token";

async fn sandbox(limits: Option<RateLimits>, seed: Option<SeedSpec>) -> (HubSpotSandbox, Clock) {
    let clock = Clock::frozen(T0);
    let settings = HubSpotSettings {
        tokens: vec![TOKEN.into()],
        limits,
        search_lag_ms: 0,
        ..HubSpotSettings::default()
    };
    let s = HubSpotSandbox::spawn(settings, clock.clone(), seed)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (s, clock)
}

fn client(s: &HubSpotSandbox, clock: &Clock, auth: HubSpotAuth) -> HubSpotClient {
    let mut config = HubSpotConfig::new(s.url(), auth);
    // Above the sandbox's limit, so that the sandbox's 429s really happen.
    config.burst_per_ten_seconds = 10_000;
    config.search_per_second = 10_000;
    config.retry = RetryPolicy {
        max_attempts: 8,
        base: Duration::from_millis(100),
        cap: Duration::from_secs(20),
    };
    HubSpotClient::with_pause(config, pause(clock)).unwrap_or_else(|e| panic!("{e}"))
}

fn private(s: &HubSpotSandbox, clock: &Clock) -> HubSpotClient {
    client(s, clock, HubSpotAuth::PrivateApp(Secret::new(TOKEN)))
}

fn props(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[tokio::test]
async fn batches_are_chunked_to_hubspots_limits_and_each_chunk_is_one_call() {
    let (s, clock) = sandbox(None, None).await;
    let c = private(&s, &clock);
    let inputs: Vec<(String, Map<String, Value>)> = (0..250)
        .map(|i| {
            (
                format!("chunk{i}@example.com"),
                props(json!({"firstname": format!("C{i}")})),
            )
        })
        .collect();
    let outcome = c
        .batch_upsert("contacts", "email", &inputs)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.created.len(), 250);
    assert_eq!(
        s.state.calls(Caller::Integration),
        3,
        "250 upserts are 3 calls"
    );
    let ids: Vec<String> = outcome.records.iter().map(|r| r.id.clone()).collect();
    let read = c
        .batch_read("contacts", &ids, &["email"], &[], None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.len(), 250);
    assert_eq!(s.state.calls(Caller::Integration), 6);
    let with_history = c
        .batch_read("contacts", &ids[..120], &["email"], &["firstname"], None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(with_history.len(), 120);
    assert!(with_history[0].changed_at().contains_key("firstname"));
    assert_eq!(
        s.state.calls(Caller::Integration),
        9,
        "with history, 50 per call"
    );
    assert_eq!(c.calls().total(), 9);
    // Upserting the same keys again creates nothing.
    let again = c
        .batch_upsert("contacts", "email", &inputs[..10])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.created.is_empty());
}

#[tokio::test]
async fn lists_page_through_every_record() {
    let (s, clock) = sandbox(
        None,
        Some(SeedSpec {
            seed: 3,
            records: 500,
            overlap: 0.5,
            deals: None,
        }),
    )
    .await;
    let c = private(&s, &clock);
    let all = c
        .list_all("contacts", &["email"], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let expected = crmsync_sandbox::hubspot::lock(&s.state.portal)
        .objects("contacts")
        .map(|o| o.records.len())
        .unwrap_or(0);
    assert_eq!(all.len(), expected);
    assert_eq!(c.calls().total() as usize, expected.div_ceil(100));
}

#[tokio::test]
async fn changes_are_read_completely_past_the_10000_search_cap() {
    // Seeded records share one timestamp, an hour before the start: the window walks it
    // by id.
    let (s, clock) = sandbox(
        None,
        Some(SeedSpec {
            seed: 4,
            records: 14_000,
            overlap: 0.8,
            deals: None,
        }),
    )
    .await;
    let c = private(&s, &clock);
    let seeded = crmsync_sandbox::hubspot::lock(&s.state.portal)
        .objects("contacts")
        .map(|o| o.records.len())
        .unwrap_or(0);
    assert!(seeded > 10_000, "{seeded}");
    let changed = c
        .changed_since("contacts", since(T0 - SEEDED_AGO_MS), &["email"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(changed.len(), seeded);

    // Then 10,500 changes spread over time: windows move on the timestamp.
    let ids: Vec<String> = changed.iter().map(|r| r.id.clone()).take(10_500).collect();
    for (n, chunk) in ids.chunks(100).enumerate() {
        clock.advance(1_000);
        let inputs: Vec<(String, Map<String, Value>)> = chunk
            .iter()
            .map(|id| (id.clone(), props(json!({"jobtitle": format!("v{n}")}))))
            .collect();
        c.batch_update("contacts", &inputs)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let later = c
        .changed_since("contacts", since(T0 + 1), &["jobtitle"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(later.len(), 10_500);

    // A window with an end: what changed before it, however many.
    let until = T0 + 50_001;
    let modified = |r: &crmsync_shared::ports::HsRecord| {
        r.properties
            .get("lastmodifieddate")
            .and_then(Value::as_str)
            .and_then(crmsync_shared::domain::value::parse_datetime_millis)
            .unwrap_or(0)
    };
    let before = later.iter().filter(|r| modified(r) < until).count();
    assert!(before > 0 && before < later.len(), "{before}");
    let window = c
        .changed_since(
            "contacts",
            Modified {
                until: Some(until),
                ..since(T0 + 1)
            },
            &["jobtitle"],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(window.len(), before);
    assert!(window.iter().all(|r| modified(r) < until));

    // The fresh changes and an earlier window, in the same calls: nothing between.
    let (a0, a1, fresh) = (T0 + 10_001, T0 + 20_001, T0 + 80_001);
    let both = c
        .changed_since(
            "contacts",
            Modified {
                also: Some((a0, a1)),
                ..since(fresh)
            },
            &["jobtitle"],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let wanted = later
        .iter()
        .filter(|r| (a0..a1).contains(&modified(r)) || modified(r) >= fresh)
        .count();
    assert_eq!(wanted, 3_500, "ten changes of 100 in the window, 25 after");
    assert_eq!(both.len(), wanted);
    assert!(
        both.iter()
            .all(|r| (a0..a1).contains(&modified(r)) || modified(r) >= fresh)
    );
}

/// Changes at or after `at`.
fn since(at: i64) -> Modified {
    Modified {
        since: at,
        until: None,
        also: None,
    }
}

#[tokio::test]
async fn bursts_of_429s_are_absorbed_with_no_record_lost() {
    let limits = RateLimits {
        per_ten_seconds: 5,
        daily: 1_000_000,
        search_per_second: 5,
    };
    let (s, clock) = sandbox(Some(limits), None).await;
    let c = private(&s, &clock);
    let inputs: Vec<(String, Map<String, Value>)> = (0..1_200)
        .map(|i| {
            (
                format!("burst{i}@example.com"),
                props(json!({"lastname": "Burst"})),
            )
        })
        .collect();
    let outcome = c
        .batch_upsert("contacts", "email", &inputs)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.created.len(), 1_200);
    assert!(
        c.calls().total() > 12,
        "429s happened and were retried: {}",
        c.calls().total()
    );
    s.state
        .inject([Fault::Status(503), Fault::Status(502), Fault::Status(429)]);
    let read = c
        .batch_read("contacts", &["1".into()], &["email"], &[], None)
        .await;
    assert!(read.is_ok(), "{read:?}");
}

#[tokio::test]
async fn an_expired_oauth_token_is_refreshed_mid_run() {
    let (s, clock) = sandbox(None, None).await;
    let c = client(
        &s,
        &clock,
        HubSpotAuth::OAuth {
            client_id: "hubspot-client-id".into(),
            client_secret: Secret::new("hubspot-client-secret"),
            refresh_token: Secret::new("hubspot-refresh-token"),
        },
    );
    let first = c.list_all("contacts", &["email"], false).await;
    assert!(first.is_ok(), "{first:?}");
    clock.advance(31 * 60 * 1000);
    let second = c.list_all("contacts", &["email"], false).await;
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(c.calls().snapshot().get("POST /oauth/v1/token"), Some(&2));
}

#[tokio::test]
async fn a_refused_input_fails_alone_with_hubspots_category() {
    let (s, clock) = sandbox(None, None).await;
    let c = private(&s, &clock);
    c.batch_upsert(
        "contacts",
        "email",
        &[("taken@example.com".into(), Map::new())],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let outcome = c
        .batch_create(
            "contacts",
            &[
                NewRecord {
                    key: "t-1".into(),
                    properties: props(json!({"email": "new@example.com"})),
                    associations: Vec::new(),
                },
                NewRecord {
                    key: "t-2".into(),
                    properties: props(json!({"email": "taken@example.com"})),
                    associations: Vec::new(),
                },
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.records.len(), 1);
    assert_eq!(outcome.errors.len(), 1);
    assert_eq!(outcome.errors[0].key, "t-2");
    assert_eq!(outcome.errors[0].category, "CONFLICT");
    let err = c
        .batch_update("contacts", &[("1".into(), props(json!({"nope": "x"})))])
        .await
        .err();
    match err {
        Some(e @ HubSpotError::Api(_)) => {
            assert_eq!(e.class(), ErrorClass::RecordLevel);
            assert_eq!(e.code(), "VALIDATION_ERROR");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    let bad_token = client(&s, &clock, HubSpotAuth::PrivateApp(Secret::new("wrong")));
    let err = bad_token.list_all("contacts", &[], false).await.err();
    assert_eq!(err.map(|e| e.class()), Some(ErrorClass::Fatal));
}

/// Collects everything written to the log.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_or_secret_reaches_a_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let limits = RateLimits {
        per_ten_seconds: 2,
        daily: 1_000,
        search_per_second: 5,
    };
    let (s, clock) = sandbox(Some(limits), None).await;
    let c = client(
        &s,
        &clock,
        HubSpotAuth::OAuth {
            client_id: "hubspot-client-id".into(),
            client_secret: Secret::new("hubspot-client-secret"),
            refresh_token: Secret::new("hubspot-refresh-token"),
        },
    );
    s.state.inject([Fault::Status(503)]);
    for _ in 0..5 {
        let _ = c.list_all("contacts", &[], false).await;
    }
    tracing::info!(client = ?c, "client state");

    // The same for Salesforce: a refresh-token session, a retried 503.
    let sf_clock = Clock::frozen(T0);
    let sf = crmsync_sandbox::SalesforceSandbox::spawn(Default::default(), sf_clock.clone(), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut config = crmsync_shared::adapters::salesforce::SalesforceConfig::new(
        sf.url(),
        crmsync_shared::adapters::salesforce::SalesforceAuth::RefreshToken {
            client_id: "salesforce-client-id".into(),
            client_secret: Secret::new("salesforce-client-secret"),
            refresh_token: Secret::new("salesforce-refresh-token"),
        },
    );
    config.login_url = sf.url();
    let sfc = crmsync_shared::adapters::salesforce::SalesforceClient::with_pause(
        config,
        crate::harness::pause(&sf_clock),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    sf.state
        .inject([crmsync_sandbox::salesforce::Fault::Status(503)]);
    let _ = sfc.query("SELECT Id FROM Account", false).await;
    tracing::info!(client = ?sfc, "client state");
    let logged =
        String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(
        logged.contains("Salesforce call failed; retrying"),
        "{logged}"
    );
    for secret in [
        "salesforce-client-secret",
        "salesforce-refresh-token",
        "!AQcAQ",
    ] {
        assert!(!logged.contains(secret), "{secret} leaked: {logged}");
    }
    let text =
        String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(
        text.contains("retrying"),
        "the run logged its retries: {text}"
    );
    for secret in [
        "hubspot-client-secret",
        "hubspot-refresh-token",
        "CIrT",
        "Bearer",
        TOKEN,
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[tokio::test]
async fn owners_lists_associations_properties_and_merges_page_and_work() {
    let (s, clock) = sandbox(
        None,
        Some(SeedSpec {
            seed: 8,
            records: 400,
            overlap: 0.5,
            deals: None,
        }),
    )
    .await;
    let c = private(&s, &clock);
    let owners = c.owners().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(owners.len(), 5);
    assert!(
        owners
            .iter()
            .all(|o| o.email.ends_with("@crmsync-demo.com"))
    );
    let props = c
        .properties("contacts")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(props.iter().any(|p| p["name"] == "email"));
    let def = json!({"name": "salesforceobjecttype2", "label": "SF type", "type": "string", "fieldType": "text", "groupName": "crmsync"});
    assert!(
        c.ensure_property("contacts", &def)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    assert!(
        !c.ensure_property("contacts", &def)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        "idempotent"
    );
    let pipelines = c.pipelines("deals").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pipelines[0]["id"], "default");

    // A list of 300 members reads in two pages.
    let contacts = c
        .list_all("contacts", &["email"], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let members: Vec<String> = contacts.iter().map(|r| r.id.clone()).take(260).collect();
    let list = crmsync_sandbox::hubspot::lock(&s.state.lists)
        .create("Inclusion", "0-1", T0)
        .map(|l| l.id)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let ids: Vec<u64> = members.iter().filter_map(|m| m.parse().ok()).collect();
    crmsync_sandbox::hubspot::lock(&s.state.lists)
        .change(list, &ids, &[], T0)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let before = c.calls().total();
    let read = c
        .list_members(&list.to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.len(), 260);
    assert_eq!(c.calls().total() - before, 2);
    assert_eq!(
        c.lists_of("0-1", &members[0])
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        vec![list.to_string()]
    );
    // The join order reads in pages of 250 with a token to resume from; which of some
    // records are members takes one call per hundred.
    let first = c
        .list_joins(&list.to_string(), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.joins.len(), 250);
    assert_eq!(first.joins[0].joined_at, T0);
    let rest = c
        .list_joins(&list.to_string(), first.next.as_deref())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rest.joins.len(), 10);
    assert!(rest.next.is_none());
    let outsider = contacts
        .get(300)
        .map(|r| r.id.clone())
        .unwrap_or_else(|| panic!("the seed has fewer than 301 contacts"));
    let asked: Vec<String> = members[..150].iter().cloned().chain([outsider]).collect();
    let before = c.calls().total();
    let among = c
        .members_among(&list.to_string(), "contacts", &asked)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(among, members[..150].to_vec());
    assert_eq!(c.calls().total() - before, 2);

    let companies = c
        .list_all("companies", &["name"], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.associate(
        "contacts",
        "companies",
        &[(members[0].clone(), companies[0].id.clone())],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let links = c
        .associations("contacts", "companies", &[members[0].clone()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(links[0].1.contains(&companies[0].id));

    let merged = c
        .merge("contacts", &members[1], &members[2])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(merged.id, members[1]);
    let via_old = c
        .get("contacts", &members[2], &["email"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(via_old.map(|r| r.id), Some(merged.id));
}

/// The pipeline reaches HubSpot through the port; the client is one implementation.
async fn read_through_port(api: &dyn crmsync_shared::ports::HubSpotApi, ids: &[String]) -> usize {
    api.batch_read("contacts", ids, &["email"], &[], None)
        .await
        .map(|r| r.len())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_client_serves_the_hubspot_port() {
    let (s, clock) = sandbox(
        None,
        Some(SeedSpec {
            seed: 9,
            records: 50,
            overlap: 0.5,
            deals: None,
        }),
    )
    .await;
    let c = private(&s, &clock);
    let ids: Vec<String> = c
        .list_all("contacts", &[], false)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(read_through_port(&c, &ids).await, ids.len());
}

/// A client whose limiter is saturated after its first call (20 calls per 10 s, paced
/// half a second apart).
fn saturated(s: &HubSpotSandbox, clock: &Clock) -> HubSpotClient {
    let mut config = HubSpotConfig::new(s.url(), HubSpotAuth::PrivateApp(Secret::new(TOKEN)));
    config.burst_per_ten_seconds = 20;
    HubSpotClient::with_pause(config, pause(clock)).unwrap_or_else(|e| panic!("{e}"))
}

/// A sandbox of 30 seeded contacts (`seed`), a client whose limiter is saturated, and
/// the ids of `n` of the contacts.
async fn saturated_contacts(seed: u64, n: usize) -> (HubSpotSandbox, HubSpotClient, Vec<String>) {
    let (s, clock) = sandbox(
        None,
        Some(SeedSpec {
            seed,
            records: 30,
            overlap: 0.0,
            deals: None,
        }),
    )
    .await;
    let c = saturated(&s, &clock);
    let all = c
        .list_all("contacts", &["email"], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<String> = all.iter().map(|r| r.id.clone()).take(n).collect();
    assert_eq!(ids.len(), n);
    (s, c, ids)
}

/// Workers under a stream of edits each read a record or two, the same way; reads of
/// one kind waiting at the limiter together go out as one call, and each reader gets
/// its own records (counted at the sandbox), whatever properties each asks for.
#[tokio::test]
async fn reads_waiting_at_the_limiter_together_go_as_one_call() {
    let (s, c, ids) = saturated_contacts(5, 12).await;
    let calls = || s.state.calls(Caller::Integration);
    let before = calls();
    let reads = ids.chunks(2).map(|pair| {
        let c = &c;
        async move {
            let read = c
                .batch_read("contacts", pair, &["email", "firstname"], &[], None)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut got: Vec<String> = read.into_iter().map(|r| r.id).collect();
            got.sort_unstable();
            let mut want = pair.to_vec();
            want.sort_unstable();
            assert_eq!(got, want, "each reader gets its own records");
        }
    });
    futures::future::join_all(reads).await;
    assert_eq!(calls() - before, 1, "six reads of one kind are one call");

    let companies = c
        .list_all("companies", &["name"], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let company = companies.first().map(|r| r.id.clone()).unwrap_or_default();
    let pairs: Vec<(String, String)> = ids.iter().map(|id| (id.clone(), company.clone())).collect();
    c.associate("contacts", "companies", &pairs)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = calls();
    let associations = ids.chunks(3).map(|three| {
        let c = &c;
        async move {
            let read = c
                .associations("contacts", "companies", three)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                read.len(),
                3,
                "each reader gets its own records' associations"
            );
            assert!(read.iter().all(|(id, _)| three.contains(id)));
        }
    });
    futures::future::join_all(associations).await;
    assert_eq!(calls() - before, 1, "so are four association reads");

    // The check before a write reads the written properties only, a batch's read all
    // of them: one call asks for both, and each reader sees its own properties.
    let before = calls();
    let (one, other) = tokio::join!(
        c.batch_read("contacts", &ids[..1], &["firstname"], &[], None),
        c.batch_read("contacts", &ids[1..2], &["lastname"], &[], None)
    );
    let has = |r: &Result<Vec<crmsync_shared::ports::HsRecord>, _>, p: &str| {
        r.as_ref()
            .ok()
            .and_then(|r| r.first())
            .is_some_and(|r| r.properties.contains_key(p))
    };
    assert!(has(&one, "firstname") && !has(&one, "lastname"), "{one:?}");
    assert!(
        has(&other, "lastname") && !has(&other, "firstname"),
        "{other:?}"
    );
    assert_eq!(calls() - before, 1, "reads of other properties go together");
}

/// Workers under a stream of edits each update a record or two: updates waiting at the
/// limiter together go out as one call, and each writer gets its own records back. One
/// bad input makes HubSpot refuse the whole call: then each writer writes alone, and
/// the refusal is only the bad input's.
#[tokio::test]
async fn updates_waiting_at_the_limiter_together_go_as_one_call() {
    let (s, c, ids) = saturated_contacts(6, 8).await;
    let calls = || s.state.calls(Caller::Integration);
    let titled = |id: &str, title: &str| {
        let mut p = serde_json::Map::new();
        p.insert("jobtitle".into(), json!(title));
        (id.to_owned(), p)
    };
    let before = calls();
    let updates = ids[..6].chunks(2).map(|pair| {
        let c = &c;
        async move {
            let inputs: Vec<_> = pair
                .iter()
                .map(|id| titled(id, &format!("T{id}")))
                .collect();
            let done = c
                .batch_update("contacts", &inputs)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut got: Vec<String> = done.records.into_iter().map(|r| r.id).collect();
            got.sort_unstable();
            let mut want = pair.to_vec();
            want.sort_unstable();
            assert_eq!(got, want, "each writer gets its own records");
            assert!(done.errors.is_empty(), "{:?}", done.errors);
        }
    });
    futures::future::join_all(updates).await;
    assert_eq!(
        calls() - before,
        1,
        "three updates of one object are one call"
    );
    let read = c
        .batch_read("contacts", &ids[..6], &["jobtitle"], &[], None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for r in &read {
        assert_eq!(r.properties["jobtitle"], json!(format!("T{}", r.id)));
    }

    // A property that does not exist: HubSpot refuses the whole batch.
    let mut bad = serde_json::Map::new();
    bad.insert("no_such_property".into(), json!("x"));
    let (good_input, bad_input) = ([titled(&ids[6], "Good")], [(ids[7].clone(), bad)]);
    let (good, refused) = tokio::join!(
        c.batch_update("contacts", &good_input),
        c.batch_update("contacts", &bad_input),
    );
    let good = good.unwrap_or_else(|e| panic!("the good update is not the bad one's: {e}"));
    assert_eq!(good.records.len(), 1);
    assert!(refused.is_err(), "the bad input is refused: {refused:?}");
    let read = c
        .batch_read("contacts", &ids[6..7], &["jobtitle"], &[], None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read[0].properties["jobtitle"], json!("Good"));
}

/// Each worker's batch associates a few of its contacts with their companies:
/// associations waiting at the limiter together go out as one call. A pair naming a
/// record HubSpot does not have makes it refuse the call: then each caller associates
/// alone, and only the bad pair's caller is refused.
#[tokio::test]
async fn associations_waiting_at_the_limiter_together_go_as_one_call() {
    let (s, c, ids) = saturated_contacts(7, 8).await;
    let calls = || s.state.calls(Caller::Integration);
    let companies = c
        .list_all("companies", &["name"], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let company = companies.first().map(|r| r.id.clone()).unwrap_or_default();
    let before = calls();
    let made = ids[..6].chunks(2).map(|two| {
        let c = &c;
        let pairs: Vec<(String, String)> =
            two.iter().map(|id| (id.clone(), company.clone())).collect();
        async move {
            c.associate("contacts", "companies", &pairs)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    });
    futures::future::join_all(made).await;
    assert_eq!(
        calls() - before,
        1,
        "three batches' associations are one call"
    );
    let read = c
        .associations("contacts", "companies", &ids[..6])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.len(), 6);
    assert!(read.iter().all(|(_, to)| to.contains(&company)), "{read:?}");

    let good = [(ids[6].clone(), company.clone())];
    let bad = [(ids[7].clone(), "999999999".to_owned())];
    let (good, refused) = tokio::join!(
        c.associate("contacts", "companies", &good),
        c.associate("contacts", "companies", &bad),
    );
    good.unwrap_or_else(|e| panic!("the good pair is not the bad one's: {e}"));
    assert!(refused.is_err(), "the bad pair is refused: {refused:?}");
    let read = c
        .associations("contacts", "companies", &ids[6..7])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(read.iter().any(|(_, to)| to.contains(&company)), "{read:?}");
}

/// Batches looking for their Salesforce records' matches search at the same moment;
/// searches waiting at the search limiter together go out as one call (counted at the
/// sandbox), and each batch gets the records its own values found, whatever their case.
#[tokio::test]
async fn searches_waiting_at_the_limiter_together_go_as_one_call() {
    let (s, clock) = sandbox(
        None,
        Some(SeedSpec {
            seed: 9,
            records: 60,
            overlap: 0.0,
            deals: None,
        }),
    )
    .await;
    let c = saturated(&s, &clock);
    let calls = || s.state.calls(Caller::Integration);
    let companies = c
        .list_all("companies", &["domain"], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let domain_of = |r: &HsRecord| {
        r.properties
            .get("domain")
            .and_then(Value::as_str)
            .map(str::to_lowercase)
    };
    let domains: Vec<String> = companies.iter().filter_map(domain_of).take(6).collect();
    assert_eq!(domains.len(), 6, "{companies:?}");
    let before = calls();
    let searches = domains.chunks(2).map(|two| {
        let (c, companies) = (&c, &companies);
        async move {
            let any: Vec<(String, String)> = two
                .iter()
                .map(|d| ("domain".to_owned(), d.to_uppercase()))
                .collect();
            let found = c
                .search_any("companies", &any, &["name".to_owned()])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut got: Vec<String> = found.into_iter().map(|r| r.id).collect();
            got.sort_unstable();
            let mut want: Vec<String> = companies
                .iter()
                .filter(|r| domain_of(r).is_some_and(|d| two.contains(&d)))
                .map(|r| r.id.clone())
                .collect();
            want.sort_unstable();
            assert_eq!(got, want, "each search gets its own records");
        }
    });
    futures::future::join_all(searches).await;
    assert_eq!(calls() - before, 1, "three batches' searches are one call");
}

/// A batch's search (matching) stands in line at HubSpot's search limit, and a change
/// feed's search yields to it: a feed paging through an initial sync's own writes took
/// every search, and the batches waiting on one stalled.
#[tokio::test]
async fn a_change_feeds_search_yields_to_a_batchs() {
    let (s, clock) = sandbox(
        None,
        Some(SeedSpec {
            seed: 13,
            records: 20,
            overlap: 0.0,
            deals: None,
        }),
    )
    .await;
    let mut config = HubSpotConfig::new(s.url(), HubSpotAuth::PrivateApp(Secret::new(TOKEN)));
    config.search_per_second = 1;
    let c = HubSpotClient::with_pause(config, pause(&clock)).unwrap_or_else(|e| panic!("{e}"));
    // The second's search taken: the next two both wait.
    c.search("companies", &json!({"limit": 1}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let order = Mutex::new(Vec::new());
    let batch = async {
        c.search_any(
            "companies",
            &[("domain".to_owned(), "nobody.example".to_owned())],
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        order
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push("batch");
    };
    let feed = async {
        tokio::task::yield_now().await;
        c.search("companies", &json!({"limit": 1}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        order.lock().unwrap_or_else(|p| p.into_inner()).push("feed");
    };
    tokio::join!(batch, feed);
    let order = order.into_inner().unwrap_or_else(|p| p.into_inner());
    assert_eq!(order, ["batch", "feed"]);
}

/// A search for many values on two properties goes in as few calls as HubSpot's five
/// filter groups allow (the sandbox refuses a sixth), and pages through its results.
#[tokio::test]
async fn a_search_for_many_values_fills_its_filter_groups_and_pages_through() {
    let (s, clock) = sandbox(
        None,
        Some(SeedSpec {
            seed: 11,
            records: 600,
            overlap: 0.0,
            deals: None,
        }),
    )
    .await;
    let c = private(&s, &clock);
    let contacts = c
        .list_all("contacts", &["email"], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut any: Vec<(String, String)> = contacts
        .iter()
        .filter_map(|r| r.properties.get("email").and_then(Value::as_str))
        .map(|e| ("email".to_owned(), e.to_owned()))
        .take(250)
        .collect();
    assert_eq!(any.len(), 250);
    any.extend((0..300).map(|i| ("lastname".to_owned(), format!("nobody-{i}"))));
    let before = s.state.calls(Caller::Integration);
    let found = c
        .search_any("contacts", &any, &["email".to_owned()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: std::collections::HashSet<&str> = found.iter().map(|r| r.id.as_str()).collect();
    assert_eq!((found.len(), ids.len()), (250, 250), "every contact, once");
    assert_eq!(
        s.state.calls(Caller::Integration) - before,
        3,
        "550 values in six groups are two searches, the first of two pages"
    );
}
