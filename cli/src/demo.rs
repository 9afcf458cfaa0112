//! `crmsync demo`: the whole product on one machine, with no credentials. Starts both
//! CRM sandboxes with seeded, overlapping data, runs the initial sync through the local
//! pipeline on an embedded store, then a stream of edits by people on either side with
//! webhooks and outbound messages on, and prints sync health.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crmsync_sandbox::hubspot::HubSpotSettings;
use crmsync_sandbox::salesforce::SalesforceSettings;
use crmsync_sandbox::seed::SeedSpec;
use crmsync_sandbox::{Clock, HubSpotSandbox, SalesforceSandbox};
use crmsync_shared::adapters::http::Secret;
use crmsync_shared::adapters::hubspot::{HubSpotAuth, HubSpotClient, HubSpotConfig};
use crmsync_shared::adapters::salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use crmsync_shared::adapters::sqlite::SqliteStore;
use crmsync_shared::domain::config::SyncConfig;
use crmsync_shared::local::{DEFAULT_BATCH_SIZE, LocalRunner, RunOptions};
use crmsync_shared::pipeline::Pipeline;
use crmsync_shared::pipeline::health;
use crmsync_shared::pipeline::intake::IntakeSettings;
use serde_json::{Value, json};

use crate::CliError;

const HS_TOKEN: &str = "demo-hubspot-integration";
const HS_PERSON: &str = "demo-hubspot-person";
const HS_SECRET: &str = "demo-app-secret";
const SF_TOKEN: &str = "demo-salesforce-integration";
const SF_ADMIN: &str = "demo-salesforce-admin";
const OUTBOUND_TOKEN: &str = "demo-outbound-token";
const ORG: &str = "00D8M0000000001AAA";
/// People in the seeded CRMs (half of them on both sides).
const PEOPLE: usize = 300;
/// Edits in the live phase.
const EDITS: usize = 5;
const WAIT: Duration = Duration::from_secs(15);

/// The sandbox clock as the pipeline's clock: one time for everything.
#[derive(Debug)]
struct SandboxClock(Clock);

impl crmsync_shared::ports::Clock for SandboxClock {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
}

fn fail(what: &str) -> impl Fn(String) -> CliError + '_ {
    move |e| CliError::Setup(format!("demo: {what}: {e}"))
}

struct Demo {
    hs: HubSpotSandbox,
    sf: SalesforceSandbox,
    runner: LocalRunner,
    http: reqwest::Client,
}

impl Demo {
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let r = request
            .send()
            .await
            .map_err(|e| fail("sandbox call")(e.to_string()))?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() && status.as_u16() != 404 {
            return Err(fail("sandbox call")(format!("{status} {body}")));
        }
        Ok(body)
    }

    fn hs(&self, path: &str) -> String {
        format!("{}{path}", self.hs.url())
    }

    fn sf(&self, path: &str) -> String {
        format!("{}{path}", self.sf.url())
    }

    /// A person's view of a HubSpot contact, by email.
    async fn hubspot_contact(&self, email: &str) -> Result<Option<Value>, CliError> {
        let body = json!({"idProperty": "email", "properties": ["email", "phone", "jobtitle", "salesforceleadid"], "inputs": [{"id": email}]});
        let v = self
            .call(
                self.http
                    .post(self.hs("/crm/v3/objects/contacts/batch/read"))
                    .bearer_auth(HS_PERSON)
                    .json(&body),
            )
            .await?;
        Ok(v["results"].as_array().and_then(|a| a.first()).cloned())
    }

    /// The admin's view of a Salesforce lead, by email.
    async fn salesforce_lead(&self, email: &str) -> Result<Option<Value>, CliError> {
        let soql = format!("SELECT Id, Email, Phone, Title FROM Lead WHERE Email = '{email}'");
        let v = self
            .call(
                self.http
                    .get(self.sf("/services/data/v65.0/query"))
                    .bearer_auth(SF_ADMIN)
                    .query(&[("q", soql)]),
            )
            .await?;
        Ok(v["records"].as_array().and_then(|a| a.first()).cloned())
    }

    async fn until<F, Fut>(&self, check: F) -> Result<Option<Duration>, CliError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<bool, CliError>>,
    {
        let started = Instant::now();
        while started.elapsed() < WAIT {
            if check().await? {
                return Ok(Some(started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(None)
    }

    async fn quiet(&self) -> Result<(), CliError> {
        let mut calm = 0;
        let started = Instant::now();
        while calm < 5 && started.elapsed() < Duration::from_secs(40) {
            let queued = self
                .runner
                .store
                .queued()
                .await
                .map_err(|e| fail("store")(e.to_string()))?;
            calm = if queued == 0 { calm + 1 } else { 0 };
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

pub async fn run() -> Result<(), CliError> {
    let started = Instant::now();
    let clock = Clock::running();
    let hs_settings = HubSpotSettings {
        tokens: vec![HS_TOKEN.into(), HS_PERSON.into()],
        ..HubSpotSettings::default()
    };
    let sf_settings = SalesforceSettings {
        tokens: vec![SF_TOKEN.into(), SF_ADMIN.into()],
        ..SalesforceSettings::default()
    };
    let seed = SeedSpec {
        seed: 7,
        records: PEOPLE,
        overlap: 0.5,
        deals: None,
    };
    let hs = HubSpotSandbox::spawn(hs_settings, clock.clone(), Some(seed))
        .await
        .map_err(|e| fail("HubSpot sandbox")(e.to_string()))?;
    let sf = SalesforceSandbox::spawn(sf_settings, clock.clone(), Some(seed))
        .await
        .map_err(|e| fail("Salesforce sandbox")(e.to_string()))?;
    println!(
        "HubSpot sandbox    {}  ({PEOPLE} people seeded across both CRMs, half on both sides)",
        hs.url()
    );
    println!("Salesforce sandbox {}", sf.url());

    let hubspot = HubSpotClient::new(HubSpotConfig::new(
        hs.url(),
        HubSpotAuth::PrivateApp(Secret::new(HS_TOKEN)),
    ))
    .map_err(|e| fail("HubSpot client")(e.to_string()))?;
    let salesforce = SalesforceClient::new(SalesforceConfig::new(
        sf.url(),
        SalesforceAuth::AccessToken(Secret::new(SF_TOKEN)),
    ))
    .map_err(|e| fail("Salesforce client")(e.to_string()))?;
    let ours: Arc<dyn crmsync_shared::ports::Clock> = Arc::new(SandboxClock(clock.clone()));
    let store = Arc::new(
        SqliteStore::in_memory(ours.clone(), 8).map_err(|e| fail("store")(e.to_string()))?,
    );
    let mut pipeline = Pipeline::new(
        SyncConfig::builtin(),
        Arc::new(hubspot),
        Arc::new(salesforce),
        store.clone(),
        ours,
        "demo",
    );
    pipeline.load_owners().await.map_err(fail("owners"))?;
    pipeline
        .load_object_types()
        .await
        .map_err(fail("custom object types"))?;
    let intake = IntakeSettings {
        public_url: String::new(),
        hubspot_app_secret: Some(Secret::new(HS_SECRET)),
        salesforce_org_id: Some(ORG.into()),
        salesforce_outbound_token: Some(Secret::new(OUTBOUND_TOKEN)),
        api_key: None,
    };
    let options = RunOptions {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        poll_interval: Some(Duration::from_secs(2)),
        workers: crmsync_shared::local::DEFAULT_WORKERS,
        batch_size: DEFAULT_BATCH_SIZE,
    };
    let runner = LocalRunner::start(pipeline, intake, store, options)
        .await
        .map_err(|e| fail("runner")(e.to_string()))?;
    let demo = Demo {
        hs,
        sf,
        runner,
        http: reqwest::Client::new(),
    };
    println!(
        "crmsync listening  {}  (webhooks and outbound messages go here)",
        demo.runner.url()
    );

    // A Salesforce validation rule some HubSpot contacts will break.
    let rule = json!({"object": "Lead", "field": "Title", "when": {"equals": "Intern"}, "message": "Interns are not leads"});
    demo.call(
        demo.http
            .post(demo.sf("/_sandbox/salesforce/validation-rules"))
            .json(&rule),
    )
    .await?;
    for n in 0..3 {
        let p = json!({"properties": {"email": format!("intern{n}@demo.example"), "lastname": format!("Intern {n}"), "jobtitle": "Intern"}});
        demo.call(
            demo.http
                .post(demo.hs("/_sandbox/hubspot/objects/contacts"))
                .json(&p),
        )
        .await?;
    }
    let hook = json!({"target_url": format!("{}/webhooks/hubspot", demo.runner.url()), "app_secret": HS_SECRET});
    demo.call(
        demo.http
            .put(demo.hs("/_sandbox/hubspot/webhooks"))
            .json(&hook),
    )
    .await?;
    let outbound =
        json!({"url": format!("{}/webhooks/salesforce?token={OUTBOUND_TOKEN}", demo.runner.url())});
    demo.call(
        demo.http
            .put(demo.sf("/_sandbox/salesforce/outbound"))
            .json(&outbound),
    )
    .await?;

    println!("\n== Initial sync");
    let t = Instant::now();
    // The first poll (on empty cursors) queues everything; the workers drain it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    demo.quiet().await?;
    println!("   done in {:.1}s", t.elapsed().as_secs_f64());

    println!("\n== Edits by people, synced by webhooks and outbound messages");
    let mut latencies: Vec<Duration> = Vec::new();
    let mut missed = 0;
    let mut note = |what: String, took: Option<Duration>| match took {
        Some(d) => {
            println!("   {what:<58} synced in {:>5} ms", d.as_millis());
            latencies.push(d);
        }
        None => {
            println!("   {what:<58} NOT synced within {}s", WAIT.as_secs());
            missed += 1;
        }
    };
    for n in 0..EDITS {
        let email = format!("new{n}@hubspot-side.example");
        let p = json!({"properties": {"email": email, "firstname": "New", "lastname": format!("HubSpot {n}"), "phone": "+1 555 0100"}});
        demo.call(
            demo.http
                .post(demo.hs("/_sandbox/hubspot/objects/contacts"))
                .json(&p),
        )
        .await?;
        let took = demo
            .until(|| async { Ok(demo.salesforce_lead(&email).await?.is_some()) })
            .await?;
        note(
            format!("HubSpot: new contact {email} -> Salesforce lead"),
            took,
        );
    }
    for n in 0..EDITS {
        let email = format!("new{n}@salesforce-side.example");
        let f =
            json!({"LastName": format!("Salesforce {n}"), "Email": email, "Company": "Demo Co"});
        demo.call(
            demo.http
                .post(demo.sf("/_sandbox/salesforce/objects/Lead"))
                .json(&f),
        )
        .await?;
        let took = demo
            .until(|| async { Ok(demo.hubspot_contact(&email).await?.is_some()) })
            .await?;
        note(
            format!("Salesforce: new lead {email} -> HubSpot contact"),
            took,
        );
    }
    for n in 0..EDITS {
        let email = format!("new{n}@hubspot-side.example");
        let Some(c) = demo.hubspot_contact(&email).await? else {
            continue;
        };
        let id = c["id"].as_str().unwrap_or_default().to_owned();
        let phone = format!("+1 555 01{n:02}");
        let p = json!({"properties": {"phone": phone}});
        demo.call(
            demo.http
                .patch(demo.hs(&format!("/_sandbox/hubspot/objects/contacts/{id}")))
                .json(&p),
        )
        .await?;
        let took = demo
            .until(|| async {
                Ok(demo
                    .salesforce_lead(&email)
                    .await?
                    .is_some_and(|l| l["Phone"] == json!(phone)))
            })
            .await?;
        note(format!("HubSpot: phone of {email} -> Salesforce"), took);
    }
    for n in 0..EDITS {
        let email = format!("new{n}@salesforce-side.example");
        let Some(l) = demo.salesforce_lead(&email).await? else {
            continue;
        };
        let id = l["Id"].as_str().unwrap_or_default().to_owned();
        let title = format!("Director {n}");
        let f = json!({"Title": title});
        demo.call(
            demo.http
                .patch(demo.sf(&format!("/_sandbox/salesforce/objects/Lead/{id}")))
                .json(&f),
        )
        .await?;
        let took = demo
            .until(|| async {
                Ok(demo
                    .hubspot_contact(&email)
                    .await?
                    .is_some_and(|c| c["properties"]["jobtitle"] == json!(title)))
            })
            .await?;
        note(format!("Salesforce: title of {email} -> HubSpot"), took);
    }
    demo.quiet().await?;

    println!("\n== Sync health");
    let health = health::report(
        &demo.runner.pipeline,
        demo.runner.store.as_ref(),
        Some(demo.runner.store.as_ref()),
    )
    .await
    .map_err(|e| fail("health")(e.to_string()))?;
    for line in crate::ops::status_text(&health).lines() {
        println!("   {line}");
    }
    for f in health.failing.iter().take(3) {
        println!(
            "     e.g. {} [{}] field {}: {}",
            f.record,
            f.code.as_deref().unwrap_or("-"),
            f.field.as_deref().unwrap_or("-"),
            f.message.as_deref().unwrap_or("-")
        );
    }
    let hs_calls = demo
        .call(demo.http.get(demo.hs("/_sandbox/hubspot/counters")))
        .await?;
    let sf_calls = demo
        .call(demo.http.get(demo.sf("/_sandbox/salesforce/counters")))
        .await?;
    let sum = |v: &Value| -> u64 {
        v.as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    };
    println!(
        "   API calls by crmsync: HubSpot {}, Salesforce {} (for {PEOPLE} seeded people, {} edits, echoes and polls every 2s)",
        sum(&hs_calls["integration"]),
        sum(&sf_calls["calls"]["integration"]),
        EDITS * 4
    );
    latencies.sort();
    if let (Some(first), Some(last)) = (latencies.first(), latencies.last()) {
        let median = latencies[latencies.len() / 2];
        println!(
            "   edit-to-sync latency: median {} ms, min {} ms, max {} ms over {} edits",
            median.as_millis(),
            first.as_millis(),
            last.as_millis(),
            latencies.len()
        );
    }
    println!(
        "\nDemo finished in {:.1}s.",
        started.elapsed().as_secs_f64()
    );
    demo.runner.stop().await;
    if missed > 0 {
        return Err(CliError::Setup(format!(
            "demo: {missed} edits did not sync"
        )));
    }
    Ok(())
}
