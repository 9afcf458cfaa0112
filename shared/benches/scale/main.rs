//! The scale benchmark: crmsync's local pipeline against both sandboxes with their real
//! limits on (HubSpot's 190 calls per 10 s and its search limit, search lag, the
//! Salesforce daily allowance) and 50 ms added to every call for the network. Prints one
//! table and appends it to BENCHMARKS.md:
//!
//! - the rate-limit floor of the initial sync (`floor.rs`) and our time and calls as
//!   multiples of it;
//! - the initial sync: wall time, calls per CRM by endpoint, calls per record pair, the
//!   queue's peak, HubSpot's 429s;
//! - steady state (`steady.rs`): a stream of people's edits on both sides, with latency
//!   from edit to the other side's write by webhook/outbound message and by polling
//!   alone, and the writes each edit cost (echoes counted);
//! - the worker's peak memory for one batch (`probe.rs`, a child process);
//! - with `SCALE_MOTO_URL` (moto's server), the same initial sync again on the durable
//!   adapters, DynamoDB and SQS, beside the embedded store's.
//!
//! `cargo bench -p crmsync-shared --bench scale`; sizes and rates from the environment
//! (see `Settings::from_env`).

mod floor;
mod initial;
mod probe;
mod report;
mod steady;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crmsync_sandbox::hubspot::HubSpotSettings;
use crmsync_sandbox::salesforce::SalesforceSettings;
use crmsync_sandbox::seed::SeedSpec;
use crmsync_sandbox::{Clock, HubSpotSandbox, SalesforceSandbox};
use crmsync_shared::adapters::dynamodb::DynamoStore;
use crmsync_shared::adapters::http::Secret;
use crmsync_shared::adapters::hubspot::{HubSpotAuth, HubSpotClient, HubSpotConfig};
use crmsync_shared::adapters::salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use crmsync_shared::adapters::sqlite::SqliteStore;
use crmsync_shared::adapters::sqs::SqsQueue;
use crmsync_shared::domain::config::SyncConfig;
use crmsync_shared::local::RunOptions;
use crmsync_shared::pipeline::Pipeline;
use crmsync_shared::ports::{CursorStore, SystemClock, WorkQueue};

pub const HUBSPOT_TOKEN: &str = "hubspot-integration-token";
pub const SALESFORCE_TOKEN: &str = "salesforce-integration-token";

/// What one run measures, from `SCALE_*` variables.
#[derive(Debug, Clone)]
pub struct Settings {
    /// People per side, half of them on both (`SCALE_PEOPLE`, 100,000); companies and
    /// deals are a fifth of that per side.
    pub people: usize,
    /// Added to every CRM call (`SCALE_LATENCY_MS`, 50).
    pub latency_ms: u64,
    /// Local workers (`SCALE_WORKERS`, `crmsync run`'s default).
    pub workers: usize,
    /// Worker processes as Lambda runs them (`SCALE_PROCESSES`, 1): each with one
    /// worker and its own CRM clients taking `1/n` of HubSpot's allowance, all on one
    /// queue and store. Above 1, `SCALE_WORKERS` is not used.
    pub processes: usize,
    /// References per worker batch (`SCALE_BATCH`, the runner's default).
    pub batch: usize,
    /// Poll interval (`SCALE_POLL_MS`, 1,000: the shortest the queue must cope with).
    pub poll: Duration,
    /// People's edits per second in the steady state (`SCALE_EDITS_PER_SECOND`, 20).
    pub edits_per_second: u32,
    /// How long each steady-state stream runs (`SCALE_STEADY_SECONDS`, 30; 0 skips it).
    pub steady_seconds: u64,
    /// Gives up on the initial sync after this long (`SCALE_TIMEOUT_SECONDS`, 3,600).
    pub timeout: Duration,
    /// The batch the memory probe syncs (`SCALE_PROBE_BATCH`, 1,000; 0 skips it).
    pub probe_batch: usize,
    /// Where the table is appended (`SCALE_OUT`, the workspace's BENCHMARKS.md; `-`:
    /// nowhere).
    pub out: Option<PathBuf>,
    /// moto's server (`SCALE_MOTO_URL`): the initial sync runs again on DynamoDB and
    /// SQS there. Unset: the embedded store alone.
    pub moto: Option<String>,
}

fn var<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace(['_', ','], "")
            .parse()
            .map_err(|_| format!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        let defaults = RunOptions::default();
        let out = match std::env::var("SCALE_OUT") {
            Ok(v) if v == "-" => None,
            Ok(v) => Some(PathBuf::from(v)),
            Err(_) => Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md")),
        };
        Ok(Settings {
            people: var("SCALE_PEOPLE", 100_000)?,
            latency_ms: var("SCALE_LATENCY_MS", 50)?,
            workers: var("SCALE_WORKERS", defaults.workers)?,
            processes: var("SCALE_PROCESSES", 1)?,
            batch: var("SCALE_BATCH", defaults.batch_size)?,
            poll: Duration::from_millis(var("SCALE_POLL_MS", 1_000)?),
            edits_per_second: var("SCALE_EDITS_PER_SECOND", 20)?,
            steady_seconds: var("SCALE_STEADY_SECONDS", 30)?,
            timeout: Duration::from_secs(var("SCALE_TIMEOUT_SECONDS", 3_600)?),
            probe_batch: var("SCALE_PROBE_BATCH", 1_000)?,
            out,
            moto: std::env::var("SCALE_MOTO_URL")
                .ok()
                .filter(|u| !u.is_empty()),
        })
    }

    /// The seed giving `people` per side with half of them on both: of all people, a
    /// third on both sides and a third on each side alone; companies and deals a fifth
    /// of `people` per side (the 100,000 contacts, 20,000 companies and 20,000
    /// deals per side). A deal on both sides is two deals (deals have no key to match).
    pub fn seed(&self) -> SeedSpec {
        SeedSpec {
            seed: 11,
            records: self.people * 3 / 2,
            overlap: 1.0 / 3.0,
            deals: Some(self.people * 3 / 10),
        }
    }

    /// The command that reproduces this run.
    pub fn command(&self) -> String {
        format!(
            "{}SCALE_PEOPLE={} SCALE_LATENCY_MS={} {} SCALE_BATCH={} SCALE_POLL_MS={} \
             SCALE_EDITS_PER_SECOND={} SCALE_STEADY_SECONDS={} cargo bench -p crmsync-shared --bench scale",
            if self.moto.is_some() {
                "SCALE_MOTO_URL=<moto's server> "
            } else {
                ""
            },
            self.people,
            self.latency_ms,
            if self.processes > 1 {
                format!("SCALE_PROCESSES={}", self.processes)
            } else {
                format!("SCALE_WORKERS={}", self.workers)
            },
            self.batch,
            self.poll.as_millis(),
            self.edits_per_second,
            self.steady_seconds
        )
    }
}

/// Both sandboxes, strict, on one running clock.
pub struct Sandboxes {
    pub hs: HubSpotSandbox,
    pub sf: SalesforceSandbox,
    pub clock: Clock,
    pub api: Control,
}

impl Sandboxes {
    pub async fn start(latency_ms: u64, seed: SeedSpec) -> Result<Sandboxes, String> {
        let clock = Clock::running();
        let hs = HubSpotSandbox::spawn(
            HubSpotSettings {
                latency_ms,
                ..HubSpotSettings::default()
            },
            clock.clone(),
            Some(seed),
        )
        .await
        .map_err(|e| e.to_string())?;
        let sf = SalesforceSandbox::spawn(
            SalesforceSettings {
                latency_ms,
                ..SalesforceSettings::default()
            },
            clock.clone(),
            Some(seed),
        )
        .await
        .map_err(|e| e.to_string())?;
        let api = Control {
            http: reqwest::Client::new(),
            hubspot: format!("{}/_sandbox/hubspot", hs.url()),
            salesforce: format!("{}/_sandbox/salesforce", sf.url()),
        };
        Ok(Sandboxes { hs, sf, clock, api })
    }
}

/// The sandboxes' control APIs (acting as people, reading counters and write logs).
#[derive(Debug, Clone)]
pub struct Control {
    http: reqwest::Client,
    hubspot: String,
    salesforce: String,
}

impl Control {
    pub async fn hubspot(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        self.call(method, format!("{}{path}", self.hubspot), body)
            .await
    }

    pub async fn salesforce(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        self.call(method, format!("{}{path}", self.salesforce), body)
            .await
    }

    async fn call(
        &self,
        method: Method,
        url: String,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = self.http.request(method, &url);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{url}: {status} {text}"));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| format!("{url}: {e}"))
    }
}

/// The state every worker of a run shares: the embedded store, or DynamoDB and SQS.
#[derive(Clone)]
pub enum State {
    Embedded(Arc<SqliteStore>),
    Durable(Arc<DynamoStore>, Arc<SqsQueue>),
}

impl State {
    /// `crmsync run`'s embedded store: a fresh file, as `crmsync run` keeps it. (In
    /// memory, SQLite's page cache holds the whole database and every commit walks its
    /// hash table: a quarter of the process's CPU at 100,000 people, a cost the
    /// product's file store does not have.)
    pub fn embedded() -> Result<State, String> {
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("crmsync-bench-{}-{run}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            // Absent is the usual case.
            let _ = std::fs::remove_file(file);
        }
        Ok(State::Embedded(Arc::new(
            SqliteStore::open(&path, Arc::new(SystemClock), 8).map_err(|e| e.to_string())?,
        )))
    }

    /// DynamoDB and SQS as the Lambda deployment uses them, on moto's server at
    /// `endpoint`: a fresh table and queue.
    pub async fn durable(endpoint: &str) -> Result<State, String> {
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "bench", "bench", None, None, "moto",
            ))
            .load()
            .await;
        let name = format!("crmsync-bench-{}", std::process::id());
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        DynamoStore::create_table(&dynamo, &name)
            .await
            .map_err(|e| e.to_string())?;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let queue = SqsQueue::create(&sqs, &name, 5)
            .await
            .map_err(|e| e.to_string())?;
        Ok(State::Durable(
            Arc::new(DynamoStore::new(dynamo, name)),
            Arc::new(queue),
        ))
    }

    pub fn queue(&self) -> Arc<dyn WorkQueue> {
        match self {
            State::Embedded(s) => s.clone(),
            State::Durable(_, q) => q.clone(),
        }
    }

    pub fn cursors(&self) -> Arc<dyn CursorStore> {
        match self {
            State::Embedded(s) => s.clone(),
            State::Durable(d, _) => d.clone(),
        }
    }
}

/// The pipeline as `crmsync run` builds it, on `state`; its HubSpot client takes a
/// `1/share` part of the portal's allowance (a Lambda worker's part of
/// `WorkerMaxConcurrency`).
pub async fn pipeline(
    hubspot_url: String,
    salesforce_url: String,
    state: &State,
    share: u32,
) -> Result<Pipeline, String> {
    let mut hubspot_config = HubSpotConfig::new(
        hubspot_url,
        HubSpotAuth::PrivateApp(Secret::new(HUBSPOT_TOKEN)),
    );
    hubspot_config.concurrency = share.max(1);
    let hubspot = Arc::new(HubSpotClient::new(hubspot_config).map_err(|e| e.to_string())?);
    let salesforce = Arc::new(
        SalesforceClient::new(SalesforceConfig::new(
            salesforce_url,
            SalesforceAuth::AccessToken(Secret::new(SALESFORCE_TOKEN)),
        ))
        .map_err(|e| e.to_string())?,
    );
    let clock: Arc<dyn crmsync_shared::ports::Clock> = Arc::new(SystemClock);
    let config = SyncConfig::builtin();
    let mut pipeline = match state {
        State::Embedded(s) => Pipeline::new(config, hubspot, salesforce, s.clone(), clock, "bench"),
        State::Durable(d, _) => {
            Pipeline::new(config, hubspot, salesforce, d.clone(), clock, "bench")
        }
    };
    pipeline.load_owners().await?;
    pipeline.load_object_types().await?;
    Ok(pipeline)
}

async fn run(settings: Settings) -> Result<(), String> {
    let mut report = report::Report::new(&settings);
    if settings.probe_batch > 0 {
        report.probe = Some(probe::measure(&settings).await?);
    }
    let world = crmsync_sandbox::seed::generate(settings.seed());
    report.floor = floor::Floor::of(&world);
    drop(world);
    eprintln!(
        "seeding {} people per side ({} record pairs when synced)...",
        settings.people,
        report.floor.pairs()
    );
    let sandboxes = Sandboxes::start(settings.latency_ms, settings.seed()).await?;
    let (initial, runner) = initial::run(&settings, &sandboxes, State::embedded()?).await?;
    report.initial = Some(initial);
    if settings.steady_seconds > 0 {
        report.steady = steady::run(&settings, &sandboxes, &runner).await?;
    }
    runner.stop().await;
    drop(sandboxes);
    if let Some(moto) = &settings.moto {
        eprintln!("the same initial sync on DynamoDB and SQS ({moto})...");
        let sandboxes = Sandboxes::start(settings.latency_ms, settings.seed()).await?;
        let state = State::durable(moto).await?;
        let (durable, runner) = initial::run(&settings, &sandboxes, state).await?;
        runner.stop().await;
        report.durable = Some(durable);
    }
    let text = report.markdown();
    println!("{text}");
    if let Some(path) = &settings.out {
        report::append(path, &text)?;
        eprintln!("appended to {}", path.display());
    }
    Ok(())
}

/// Deletes this process's embedded store files ([`State::embedded`]).
fn remove_stores() {
    let prefix = format!("crmsync-bench-{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// mimalloc, not glibc's allocator: see the workspace's Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // The engine's own logs, when asked for (`CRMSYNC_LOG=warn`): quiet by default.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("CRMSYNC_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    if probe::is_child() {
        let result = probe::child().await;
        remove_stores();
        if let Err(e) = result {
            eprintln!("memory probe: {e}");
            std::process::exit(1);
        }
        return;
    }
    let result = match Settings::from_env() {
        Ok(settings) => run(settings).await,
        Err(e) => Err(e),
    };
    remove_stores();
    if let Err(e) = result {
        eprintln!("scale bench: {e}");
        std::process::exit(1);
    }
}
