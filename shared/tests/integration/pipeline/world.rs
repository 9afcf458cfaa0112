//! A world for end-to-end tests: both sandboxes on loopback on one frozen clock, the
//! local runner (intake over HTTP, embedded store) between them, and helpers that act
//! as a person in either CRM and read what the CRMs hold.

use std::sync::Arc;
use std::time::Duration;

use crmsync_sandbox::hubspot::HubSpotSettings;
use crmsync_sandbox::salesforce::SalesforceSettings;
use crmsync_sandbox::seed::SeedSpec;
use crmsync_sandbox::{Clock, HubSpotSandbox, SalesforceSandbox};
use crmsync_shared::adapters::http::Secret;
use crmsync_shared::adapters::hubspot::{HubSpotAuth, HubSpotClient, HubSpotConfig};
use crmsync_shared::adapters::salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use crmsync_shared::adapters::sqlite::SqliteStore;
use crmsync_shared::domain::config::SyncConfig;
use crmsync_shared::local::{LocalRunner, RunOptions};
use crmsync_shared::pipeline::intake::IntakeSettings;
use crmsync_shared::pipeline::sabotage::Sabotage;
use crmsync_shared::pipeline::{Pipeline, worker};
use crmsync_shared::ports::{
    ClaimStore, Counts, Link, LinkStore, Outcome, RecordRef, RecordStatus, StatusStore, StoreError,
    SyncEvent, WorkQueue,
};
use serde_json::{Value, json};

use crate::harness::{T0, pause};

pub const HS_TOKEN: &str = "hubspot-integration-token";
pub const HS_SECRET: &str = "hubspot-app-secret";
pub const SF_TOKEN: &str = "salesforce-integration-token";
pub const ORG: &str = "00D8M0000000001AAA";
pub const OUTBOUND_TOKEN: &str = "outbound-secret";
pub const API_KEY: &str = "api-key";

/// The sandbox clock, as the pipeline's clock port.
#[derive(Debug, Clone)]
pub struct SandboxClock(pub Clock);

impl crmsync_shared::ports::Clock for SandboxClock {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
}

pub struct Setup {
    pub config: String,
    /// Webhooks and outbound messages on; off: changes arrive by polling alone.
    pub push: bool,
    /// Background workers (0: only `settle` works the queue, in the test's task).
    pub workers: usize,
    /// References a background worker takes per batch.
    pub batch_size: usize,
    /// The world as it is (the default): HubSpot search lags writes, pushes arrive
    /// late, twice, out of order or never, SystemModstamp lands out of commit order,
    /// and the poller is the safety net under the pushes. Off only in tests that say
    /// why they need perfection.
    pub realistic: bool,
    /// Workers `settle` runs at once, each on its own task (threads, on a multi-thread
    /// runtime), and the references each takes per batch.
    pub settle_workers: usize,
    pub settle_batch: usize,
    /// A guarantee switched off, to show a harness catching it.
    pub sabotage: Option<Sabotage>,
    /// Both CRMs start with the seed world's five owners (HubSpot owners, Salesforce
    /// users, one email each), and nothing else.
    pub owners: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            config: crmsync_shared::domain::config::DEFAULT_TOML.to_owned(),
            push: true,
            workers: 0,
            batch_size: 100,
            realistic: true,
            settle_workers: 1,
            settle_batch: 100,
            sabotage: None,
            owners: false,
        }
    }
}

/// How far behind writes HubSpot's search index is in a realistic world.
pub const SEARCH_LAG_MS: i64 = 2_000;
/// How late a push may arrive in a realistic world.
pub const PUSH_DELAY_MS: i64 = 3_000;

pub struct World {
    pub realistic: bool,
    pub clock: Clock,
    pub hs: HubSpotSandbox,
    pub sf: SalesforceSandbox,
    pub runner: LocalRunner,
    pub http: reqwest::Client,
    pub push: bool,
    settle_workers: usize,
    settle_batch: usize,
}

impl World {
    pub async fn start(setup: Setup) -> World {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let clock = Clock::frozen(T0);
        let hs_settings = HubSpotSettings {
            search_lag_ms: if setup.realistic { SEARCH_LAG_MS } else { 0 },
            ..HubSpotSettings::default()
        };
        let owners = setup.owners.then_some(SeedSpec {
            seed: 1,
            records: 0,
            overlap: 0.0,
            deals: None,
        });
        let hs = HubSpotSandbox::spawn(hs_settings, clock.clone(), owners)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let sf = SalesforceSandbox::spawn(SalesforceSettings::default(), clock.clone(), owners)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // A realistic world's credentials expire: OAuth apps whose access tokens the
        // clients renew (HubSpot's after 30 minutes, Salesforce's sessions after 2
        // hours, both on the sandbox clock).
        let (hubspot_auth, salesforce_auth) = if setup.realistic {
            (
                HubSpotAuth::OAuth {
                    client_id: "hubspot-client-id".into(),
                    client_secret: Secret::new("hubspot-client-secret"),
                    refresh_token: Secret::new("hubspot-refresh-token"),
                },
                SalesforceAuth::RefreshToken {
                    client_id: "salesforce-client-id".into(),
                    client_secret: Secret::new("salesforce-client-secret"),
                    refresh_token: Secret::new("salesforce-refresh-token"),
                },
            )
        } else {
            (
                HubSpotAuth::PrivateApp(Secret::new(HS_TOKEN)),
                SalesforceAuth::AccessToken(Secret::new(SF_TOKEN)),
            )
        };
        let hubspot =
            HubSpotClient::with_pause(HubSpotConfig::new(hs.url(), hubspot_auth), pause(&clock))
                .unwrap_or_else(|e| panic!("{e}"));
        let mut sf_config = SalesforceConfig::new(sf.url(), salesforce_auth);
        sf_config.login_url = sf.url();
        let salesforce = SalesforceClient::with_pause(sf_config, pause(&clock))
            .unwrap_or_else(|e| panic!("{e}"));
        let ours: Arc<dyn crmsync_shared::ports::Clock> = Arc::new(SandboxClock(clock.clone()));
        let store =
            Arc::new(SqliteStore::in_memory(ours.clone(), 5).unwrap_or_else(|e| panic!("{e}")));
        let config = SyncConfig::from_toml(&setup.config).unwrap_or_else(|e| panic!("{e}"));
        let mut pipeline = Pipeline::new(
            config,
            Arc::new(hubspot),
            Arc::new(salesforce),
            store.clone(),
            ours,
            "test",
        );
        pipeline.sabotage = setup.sabotage;
        pipeline
            .load_owners()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        pipeline
            .load_object_types()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let intake = IntakeSettings {
            public_url: String::new(),
            hubspot_app_secret: Some(Secret::new(HS_SECRET)),
            salesforce_org_id: Some(ORG.into()),
            salesforce_outbound_token: Some(Secret::new(OUTBOUND_TOKEN)),
            api_key: Some(Secret::new(API_KEY)),
        };
        let options = RunOptions {
            listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
            poll_interval: None,
            workers: setup.workers,
            batch_size: setup.batch_size,
        };
        let runner = LocalRunner::start(pipeline, intake, store, options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let world = World {
            realistic: setup.realistic,
            clock,
            hs,
            sf,
            runner,
            http: reqwest::Client::new(),
            push: setup.push,
            settle_workers: setup.settle_workers.max(1),
            settle_batch: setup.settle_batch.max(1),
        };
        if setup.push {
            world
                .put(&world.hs_control("/webhooks"), json!({"target_url": format!("{}/webhooks/hubspot", world.runner.url()), "app_secret": HS_SECRET}))
                .await;
            world
                .put(&world.sf_control("/outbound"), json!({"url": format!("{}/webhooks/salesforce?token={OUTBOUND_TOKEN}", world.runner.url())}))
                .await;
        }
        if setup.realistic {
            let imperfect =
                json!({"loss_rate": 0.05, "duplicate_rate": 0.1, "delay_ms_max": PUSH_DELAY_MS});
            world
                .put(&world.hs_control("/webhooks"), imperfect.clone())
                .await;
            world.put(&world.sf_control("/outbound"), imperfect).await;
            world
                .put(
                    &world.sf_control("/settings"),
                    json!({"modstamp_skew_ms": 5_000}),
                )
                .await;
        }
        world
    }

    pub fn hs_control(&self, path: &str) -> String {
        format!("{}/_sandbox/hubspot{path}", self.hs.url())
    }

    pub fn sf_control(&self, path: &str) -> String {
        format!("{}/_sandbox/salesforce{path}", self.sf.url())
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "control call failed: {status} {body}");
        body
    }

    pub async fn send_get(&self, url: &str) -> Value {
        self.send(self.http.get(url)).await
    }

    pub async fn put(&self, url: &str, body: Value) -> Value {
        self.send(self.http.put(url).json(&body)).await
    }

    pub async fn post(&self, url: &str, body: Value) -> Value {
        self.send(self.http.post(url).json(&body)).await
    }

    pub async fn delete(&self, url: &str) -> Value {
        self.send(self.http.delete(url)).await
    }

    pub async fn patch(&self, url: &str, body: Value) -> Value {
        self.send(self.http.patch(url).json(&body)).await
    }

    /// A person creates a HubSpot contact; its id.
    pub async fn hs_create(&self, properties: Value) -> String {
        self.hs_create_object("contacts", properties).await
    }

    /// A person creates a HubSpot record; its id.
    pub async fn hs_create_object(&self, object: &str, properties: Value) -> String {
        let v = self
            .post(
                &self.hs_control(&format!("/objects/{object}")),
                json!({"properties": properties}),
            )
            .await;
        v["id"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no id in {v}"))
    }

    pub async fn hs_update(&self, id: &str, properties: Value) {
        self.patch(
            &self.hs_control(&format!("/objects/contacts/{id}")),
            json!({"properties": properties}),
        )
        .await;
    }

    /// A HubSpot list of contacts, made through the API as an admin would; its id.
    pub async fn hs_list(&self, name: &str) -> String {
        let v = self
            .send(
                self.http
                    .post(format!("{}/crm/v3/lists", self.hs.url()))
                    .bearer_auth(HS_TOKEN)
                    .json(
                        &json!({"name": name, "objectTypeId": "0-1", "processingType": "MANUAL"}),
                    ),
            )
            .await;
        v["list"]["listId"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no list id in {v}"))
    }

    /// A person adds and removes list members in HubSpot's UI.
    pub async fn hs_list_change(&self, list: &str, add: &[&str], remove: &[&str]) {
        self.put(
            &self.hs_control(&format!("/lists/{list}/memberships")),
            json!({"add": add, "remove": remove}),
        )
        .await;
    }

    /// Every HubSpot contact (not archived), with every property.
    pub async fn hs_contacts(&self) -> Vec<Value> {
        self.hs_objects("contacts").await
    }

    /// Every HubSpot record of a type (not archived), with every property.
    pub async fn hs_objects(&self, object: &str) -> Vec<Value> {
        let v = self
            .send(
                self.http
                    .get(self.hs_control(&format!("/objects/{object}"))),
            )
            .await;
        v["results"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["archived"] != json!(true))
            .collect()
    }

    /// A person associates two HubSpot records (v4, the default type).
    pub async fn hs_associate(&self, from: &str, id: &str, to: &str, to_id: &str) {
        let url = format!(
            "{}/crm/v4/objects/{from}/{id}/associations/default/{to}/{to_id}",
            self.hs.url()
        );
        let r = self
            .http
            .put(url)
            .bearer_auth(HS_TOKEN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(r.status().is_success(), "associate: {}", r.status());
    }

    /// A person associates two HubSpot records in the UI (the sandbox's control API:
    /// no API call, no injected fault).
    pub async fn hs_person_associates(&self, from: &str, id: &str, to: &str, to_id: &str) {
        let url = self.hs_control(&format!("/objects/{from}/{id}/associations/{to}/{to_id}"));
        let r = self
            .http
            .put(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(r.status().is_success(), "associate: {}", r.status());
    }

    /// The ids a HubSpot record is associated with, as HubSpot's v4 API reads them.
    pub async fn hs_associated(&self, from: &str, id: &str, to: &str) -> Vec<String> {
        let url = format!(
            "{}/crm/v4/objects/{from}/{id}/associations/{to}",
            self.hs.url()
        );
        let v: Value = self
            .http
            .get(url)
            .bearer_auth(HS_TOKEN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        v["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                r["toObjectId"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| r["toObjectId"].as_u64().map(|n| n.to_string()))
            })
            .collect()
    }

    pub async fn hs_contact_by_email(&self, email: &str) -> Option<Value> {
        self.hs_contacts()
            .await
            .into_iter()
            .find(|r| r["properties"]["email"] == json!(email))
    }

    /// A person creates a Salesforce record; its id.
    pub async fn sf_create(&self, object: &str, fields: Value) -> String {
        let v = self
            .post(&self.sf_control(&format!("/objects/{object}")), fields)
            .await;
        v["Id"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no Id in {v}"))
    }

    pub async fn sf_update(&self, object: &str, id: &str, fields: Value) {
        self.patch(&self.sf_control(&format!("/objects/{object}/{id}")), fields)
            .await;
    }

    /// Every record of an sObject (not deleted), with every field.
    pub async fn sf_records(&self, object: &str) -> Vec<Value> {
        let v = self
            .send(
                self.http
                    .get(self.sf_control(&format!("/objects/{object}"))),
            )
            .await;
        v["records"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["IsDeleted"] != json!(true))
            .collect()
    }

    pub async fn sf_by_email(&self, object: &str, email: &str) -> Vec<Value> {
        self.sf_records(object)
            .await
            .into_iter()
            .filter(|r| r["Email"] == json!(email))
            .collect()
    }

    async fn counters(&self) -> (Value, Value) {
        let hs = self.send(self.http.get(self.hs_control("/counters"))).await;
        let sf = self.send(self.http.get(self.sf_control("/counters"))).await;
        (
            hs["integration"].clone(),
            sf["calls"]["integration"].clone(),
        )
    }

    /// The integration's calls so far by endpoint, each side's endpoints named
    /// `HubSpot ...` and `Salesforce ...`.
    pub async fn calls_by_endpoint(&self) -> std::collections::BTreeMap<String, u64> {
        let (hs, sf) = self.counters().await;
        let mut out = std::collections::BTreeMap::new();
        for (side, v) in [("HubSpot", hs), ("Salesforce", sf)] {
            for (k, n) in v.as_object().into_iter().flatten() {
                out.insert(format!("{side} {k}"), n.as_u64().unwrap_or(0));
            }
        }
        out
    }

    /// The integration's calls to `endpoint` (named as `calls_by_endpoint` names it)
    /// since `before`, a `calls_by_endpoint` taken earlier.
    pub async fn calls_since(
        &self,
        before: &std::collections::BTreeMap<String, u64>,
        endpoint: &str,
    ) -> u64 {
        let now = self.calls_by_endpoint().await;
        now.get(endpoint).copied().unwrap_or(0) - before.get(endpoint).copied().unwrap_or(0)
    }

    /// The integration's calls to each sandbox: (HubSpot, Salesforce).
    pub async fn integration_calls(&self) -> (u64, u64) {
        let (hs, sf) = self.counters().await;
        let sum = |v: &Value| {
            v.as_object()
                .map(|m| m.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0)
        };
        (sum(&hs), sum(&sf))
    }

    /// The integration's writes to each sandbox: (HubSpot, Salesforce).
    pub async fn integration_writes(&self) -> (u64, u64) {
        let (hs, sf) = self.counters().await;
        let count = |v: &Value, write: &dyn Fn(&str) -> bool| {
            v.as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| write(k))
                        .filter_map(|(_, n)| n.as_u64())
                        .sum()
                })
                .unwrap_or(0)
        };
        let hs_write = |k: &str| {
            [
                "/batch/update",
                "/batch/upsert",
                "/batch/create",
                "/batch/archive",
            ]
            .iter()
            .any(|w| k.contains(w))
                || k.starts_with("PATCH")
                || k.starts_with("DELETE")
        };
        let sf_write = |k: &str| {
            k.starts_with("PATCH")
                || k.starts_with("DELETE")
                || (k.starts_with("POST") && k.ends_with("/composite/sobjects"))
        };
        (count(&hs, &hs_write), count(&sf, &sf_write))
    }

    async fn deliveries_pending(&self) -> bool {
        if !self.push {
            return false;
        }
        let hs = self.send(self.http.get(self.hs_control("/webhooks"))).await;
        let sf = self.send(self.http.get(self.sf_control("/outbound"))).await;
        hs["pending"].as_u64().unwrap_or(0) > 0 || sf["pending"].as_u64().unwrap_or(0) > 0
    }

    /// Works until nothing is left: pushes delivered, the queue empty, several times in
    /// a row (our own writes push echoes, which must be worked off too). Waits on
    /// deliveries in flight over loopback, never on time-based behaviour: the clock is
    /// frozen, and moved on when only late pushes or retries are left. Panics after 20
    /// seconds.
    pub async fn settle(&self) {
        self.try_settle().await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`World::settle`], saying so when the pipeline does not go quiet in 20 seconds.
    pub async fn try_settle(&self) -> Result<(), String> {
        let started = std::time::Instant::now();
        let mut quiet = 0;
        while quiet < 4 {
            if started.elapsed() > Duration::from_secs(20) {
                return Err("the pipeline did not go quiet in 20 s (writes without end?)".into());
            }
            let received = self.work_round().await;
            let queued = self
                .runner
                .store
                .queued()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if received == 0 && queued == 0 && !self.deliveries_pending().await {
                quiet += 1;
                tokio::time::sleep(Duration::from_millis(30)).await;
            } else {
                quiet = 0;
                if received == 0 && queued > 0 {
                    // Retries wait on the clock: let their delay pass.
                    self.advance(worker::retry_delay_ms(6));
                } else if received == 0 && self.realistic {
                    // Late pushes are due on the sandbox clock.
                    self.advance(500);
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }
        Ok(())
    }

    /// One batch per settle worker, all at once, each on its own task: how many
    /// references they took.
    pub async fn work_round(&self) -> usize {
        let mut workers = tokio::task::JoinSet::new();
        for n in 0..self.settle_workers {
            let pipeline = self.worker(&format!("settle-{n}"));
            let store = self.runner.store.clone();
            let batch = self.settle_batch;
            workers.spawn(async move {
                worker::run_once(&pipeline, store.as_ref(), batch)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .received
            });
        }
        let mut received = 0;
        while let Some(r) = workers.join_next().await {
            received += match r {
                Ok(n) => n,
                // A worker crashed on purpose (`Pipeline::crash_once`): its batch comes
                // back once its visibility ends.
                Err(e) if e.is_panic() => 1,
                Err(e) => panic!("a worker failed: {e}"),
            };
        }
        received
    }

    /// The pipeline as a worker of its own, as a separate process would be (claims are
    /// owned by the worker that takes them).
    fn worker(&self, name: &str) -> Pipeline {
        let mut pipeline = self.runner.pipeline.clone();
        pipeline.worker = name.to_owned();
        pipeline
    }

    /// Two workers race, one reference each, in a set order: the first is held at its
    /// first Salesforce call whose path and query hold `when` (the sandbox's hold fault)
    /// while the second works its reference to the end; then the first is released and
    /// finishes. How many references the second took.
    pub async fn race_held_at(&self, when: &str) -> usize {
        self.post(
            &self.sf_control("/faults"),
            json!({"faults": [{"hold": true, "when": when}]}),
        )
        .await;
        let first = self.worker("one");
        let store = self.runner.store.clone();
        let first = tokio::spawn(async move { worker::run_once(&first, store.as_ref(), 1).await });
        let mut spins = 0;
        while self.send_get(&self.sf_control("/faults")).await["held"] != json!(1) {
            spins += 1;
            assert!(spins < 10_000, "the first worker never reached {when}");
            tokio::task::yield_now().await;
        }
        let second = worker::run_once(&self.worker("two"), self.runner.store.as_ref(), 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.post(&self.sf_control("/faults/release"), json!({}))
            .await;
        first
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        second.received
    }

    /// Without pushes: poll, then work off what it queued; an error when it does not go
    /// quiet.
    pub async fn try_poll_and_settle(&self) -> Result<(), String> {
        // A poll that fails (faults injected past the client's retries) is tried again
        // a second later, as the runner's next interval would.
        let mut failures = 0;
        while let Err(e) = self.runner.poll_now().await {
            failures += 1;
            if failures == 10 {
                return Err(format!("the poll failed 10 times in a row: {e}"));
            }
            self.advance(1_000);
        }
        self.try_settle().await
    }

    /// Without pushes: poll, then work off what it queued.
    pub async fn poll_and_settle(&self) {
        self.runner
            .poll_now()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.settle().await;
    }

    /// Nothing ended among the dead letters.
    pub async fn assert_no_dead_letters(&self) {
        let dead = self
            .runner
            .store
            .dead_letters()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(dead.is_empty(), "dead-lettered: {dead:?}");
    }

    /// How much work the local queue holds.
    pub async fn queue_depth(&self) -> crmsync_shared::ports::QueueDepth {
        self.runner
            .store
            .depth()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// An admin pauses the sync longer than Salesforce keeps its deletions, then
    /// resumes it: what the resume answered (it asks for a reconcile).
    pub async fn resume_after_a_long_pause(&self) -> crmsync_shared::pipeline::control::Resumed {
        let pipeline = &self.runner.pipeline;
        pipeline
            .pause("admin", None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.advance(crmsync_shared::pipeline::control::SALESFORCE_DELETED_WINDOW_MS + 60_000);
        pipeline.resume().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Moves both sandboxes (and the pipeline) forward in time.
    pub fn advance(&self, ms: i64) {
        self.clock.advance(ms);
    }

    /// The sync: by pushes when they are on, by a poll otherwise.
    pub async fn sync(&self) {
        if self.push && self.realistic {
            // Pushes first; the poller then catches what they lost, once HubSpot's
            // search index shows the changes.
            self.settle().await;
            self.advance(SEARCH_LAG_MS + 1_000);
            self.poll_and_settle().await;
        } else if self.push {
            self.settle().await;
        } else if self.realistic {
            self.advance(SEARCH_LAG_MS + 1_000);
            self.poll_and_settle().await;
        } else {
            self.advance(1_000);
            self.poll_and_settle().await;
        }
    }

    /// The owners who are users on both sides, (HubSpot owner id, Salesforce user id)
    /// each, matched by email as the engine matches them, in email order.
    pub async fn owner_pairs(&self) -> Vec<(String, String)> {
        let owners = self
            .send(
                self.http
                    .get(format!("{}/crm/v3/owners", self.hs.url()))
                    .bearer_auth(HS_TOKEN),
            )
            .await;
        let users = self.sf_records("User").await;
        let mut pairs: Vec<(String, String, String)> = owners["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| {
                let email = o["email"].as_str()?;
                let user = users.iter().find(|u| {
                    u["Email"]
                        .as_str()
                        .is_some_and(|e| e.eq_ignore_ascii_case(email))
                })?;
                Some((
                    email.to_owned(),
                    o["id"].as_str()?.to_owned(),
                    user["Id"].as_str()?.to_owned(),
                ))
            })
            .collect();
        pairs.sort();
        pairs
            .into_iter()
            .map(|(_, hubspot, user)| (hubspot, user))
            .collect()
    }

    /// A record's sync events, oldest first.
    pub async fn events(&self, side: &str, object: &str, id: &str) -> Vec<SyncEvent> {
        let record = record_ref(side, object, id);
        self.runner
            .pipeline
            .status
            .history(&record, self.clock.now_ms())
            .await
            .unwrap_or_default()
    }

    pub async fn status(&self, side: &str, object: &str, id: &str) -> Option<RecordStatus> {
        let record = record_ref(side, object, id);
        self.runner
            .pipeline
            .status
            .status(&record)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn last_outcome(
        &self,
        side: &str,
        object: &str,
        id: &str,
    ) -> (Outcome, Option<String>) {
        let s = self
            .status(side, object, id)
            .await
            .unwrap_or_else(|| panic!("no status for {side} {object} {id}"));
        (s.last.outcome, s.last.code)
    }
}

fn record_ref(side: &str, object: &str, id: &str) -> RecordRef {
    RecordRef {
        side: side.into(),
        object: object.into(),
        id: id.into(),
    }
}

/// A link, claim or status store whose every call is counted, by method.
pub struct Counted<T> {
    inner: T,
    calls: std::sync::Mutex<std::collections::BTreeMap<&'static str, usize>>,
}

impl<T> Counted<T> {
    pub fn new(inner: T) -> Self {
        Counted {
            inner,
            calls: std::sync::Mutex::new(Default::default()),
        }
    }

    fn count(&self, method: &'static str) -> &T {
        *self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(method)
            .or_default() += 1;
        &self.inner
    }

    /// Every call.
    pub fn calls(&self) -> usize {
        self.by_method().values().sum()
    }

    pub fn by_method(&self) -> std::collections::BTreeMap<&'static str, usize> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

type Links = std::sync::Arc<dyn LinkStore>;
type Claims = std::sync::Arc<dyn ClaimStore>;
type Statuses = std::sync::Arc<dyn StatusStore>;

#[async_trait::async_trait]
impl LinkStore for Counted<Links> {
    async fn by_hubspot(&self, pair: &str, id: &str) -> Result<Option<Link>, StoreError> {
        self.count("by_hubspot").by_hubspot(pair, id).await
    }
    async fn by_salesforce(&self, object: &str, id: &str) -> Result<Option<Link>, StoreError> {
        self.count("by_salesforce").by_salesforce(object, id).await
    }
    async fn by_hubspot_ids(
        &self,
        pair: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Link>>, StoreError> {
        self.count("by_hubspot_ids").by_hubspot_ids(pair, ids).await
    }
    async fn by_salesforce_ids(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Link>>, StoreError> {
        self.count("by_salesforce_ids")
            .by_salesforce_ids(object, ids)
            .await
    }
    async fn create(&self, link: &Link) -> Result<Link, StoreError> {
        self.count("create").create(link).await
    }
    async fn update(&self, link: &Link) -> Result<Link, StoreError> {
        self.count("update").update(link).await
    }
    async fn create_all(&self, links: &[Link]) -> Vec<Result<Link, StoreError>> {
        self.count("create_all").create_all(links).await
    }
    async fn update_all(&self, links: &[Link]) -> Vec<Result<Link, StoreError>> {
        self.count("update_all").update_all(links).await
    }
    async fn relink(&self, link: &Link, h: &str, o: &str, s: &str) -> Result<Link, StoreError> {
        self.count("relink").relink(link, h, o, s).await
    }
    async fn remove(&self, link: &Link) -> Result<(), StoreError> {
        self.count("remove").remove(link).await
    }
}

#[async_trait::async_trait]
impl ClaimStore for Counted<Claims> {
    async fn claim(&self, key: &str, owner: &str, ttl: i64, now: i64) -> Result<bool, StoreError> {
        self.count("claim").claim(key, owner, ttl, now).await
    }
    async fn release(&self, key: &str, owner: &str, now: i64) -> Result<(), StoreError> {
        self.count("release").release(key, owner, now).await
    }
    async fn first_sight(&self, key: &str, ttl: i64, now: i64) -> Result<bool, StoreError> {
        self.count("first_sight").first_sight(key, ttl, now).await
    }
    async fn first_sights(
        &self,
        keys: &[String],
        ttl: i64,
        now: i64,
    ) -> Result<Vec<bool>, StoreError> {
        self.count("first_sights")
            .first_sights(keys, ttl, now)
            .await
    }
    async fn claim_all(
        &self,
        keys: &[String],
        owner: &str,
        ttl: i64,
        now: i64,
    ) -> Result<Vec<bool>, StoreError> {
        self.count("claim_all")
            .claim_all(keys, owner, ttl, now)
            .await
    }
    async fn release_all(&self, keys: &[String], owner: &str, now: i64) -> Result<(), StoreError> {
        self.count("release_all")
            .release_all(keys, owner, now)
            .await
    }
}

#[async_trait::async_trait]
impl StatusStore for Counted<Statuses> {
    async fn record(&self, event: &SyncEvent, ttl: i64) -> Result<RecordStatus, StoreError> {
        self.count("record").record(event, ttl).await
    }
    async fn record_all(&self, events: &[SyncEvent], ttl: i64) -> Result<(), StoreError> {
        self.count("record_all").record_all(events, ttl).await
    }
    async fn status(&self, record: &RecordRef) -> Result<Option<RecordStatus>, StoreError> {
        self.count("status").status(record).await
    }
    async fn history(&self, record: &RecordRef, now: i64) -> Result<Vec<SyncEvent>, StoreError> {
        self.count("history").history(record, now).await
    }
    async fn by_outcome(
        &self,
        outcome: Outcome,
        code: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RecordStatus>, StoreError> {
        self.count("by_outcome")
            .by_outcome(outcome, code, limit)
            .await
    }
    async fn counts(&self) -> Result<Vec<(String, String, Counts)>, StoreError> {
        self.count("counts").counts().await
    }
    async fn codes(&self) -> Result<Vec<(Outcome, String, u64)>, StoreError> {
        self.count("codes").codes().await
    }
}
