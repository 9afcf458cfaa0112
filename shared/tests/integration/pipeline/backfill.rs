//! The initial sync: listing every record in checkpointed chunks that resume where a
//! crash left them (re-queuing a little, skipping nothing), the dry run, and the
//! hourly sweep for HubSpot deletions that no webhook reported.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use crmsync_shared::adapters::sqlite::SqliteStore;
use crmsync_shared::domain::Side;
use crmsync_shared::pipeline::poll::{
    BACKLOG, HUBSPOT_SETTLE_MS, SALESFORCE_OVERLAP_MS, SALESFORCE_SETTLE_MS, SWEEP_INTERVAL_MS,
};
use crmsync_shared::ports::{Delivery, Outcome, QueueDepth, StoreError, WorkItem, WorkQueue};
use serde_json::{Value, json};

use super::world;
use super::world::{Setup, World};
use crmsync_shared::domain::config::DEFAULT_TOML;
use crmsync_shared::pipeline::worker;

/// A queue that fails one send (a crash or an SQS outage mid-backfill): its
/// `fail_at`-th, or with `fail_listing_of` set the first that holds that CRM's listed
/// references. It remembers every item it took (the store coalesces what waits twice;
/// what was sent shows what a resumed backfill re-queued).
pub(super) struct FlakyQueue {
    pub inner: Arc<SqliteStore>,
    pub sends: AtomicUsize,
    pub fail_at: usize,
    pub fail_listing_of: Option<Side>,
    pub failed: std::sync::atomic::AtomicBool,
    pub sent: std::sync::Mutex<Vec<WorkItem>>,
}

impl FlakyQueue {
    pub fn new(inner: Arc<SqliteStore>, fail_at: usize) -> Self {
        FlakyQueue {
            inner,
            sends: AtomicUsize::new(0),
            fail_at,
            fail_listing_of: None,
            failed: std::sync::atomic::AtomicBool::new(false),
            sent: std::sync::Mutex::default(),
        }
    }
}

#[async_trait]
impl WorkQueue for FlakyQueue {
    async fn send(&self, items: &[WorkItem]) -> Result<(), StoreError> {
        let n = self.sends.fetch_add(1, Ordering::SeqCst);
        let fails = match self.fail_listing_of {
            None => n == self.fail_at,
            Some(side) => {
                items
                    .iter()
                    .any(|i| i.side == side && i.origin == "backfill")
                    && !self.failed.swap(true, Ordering::SeqCst)
            }
        };
        if fails {
            return Err(StoreError::Unavailable("queue down".into()));
        }
        self.inner.send(items).await?;
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(items);
        Ok(())
    }
    async fn receive(&self, max: usize, visibility_ms: i64) -> Result<Vec<Delivery>, StoreError> {
        self.inner.receive(max, visibility_ms).await
    }
    async fn ack(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.inner.ack(delivery).await
    }
    async fn retry(&self, delivery: &Delivery, delay_ms: i64) -> Result<(), StoreError> {
        self.inner.retry(delivery, delay_ms).await
    }
    async fn dead_letters(&self) -> Result<Vec<WorkItem>, StoreError> {
        self.inner.dead_letters().await
    }
    async fn send_later(&self, items: &[WorkItem], delay_ms: i64) -> Result<(), StoreError> {
        self.inner.send_later(items, delay_ms).await
    }
    async fn depth(&self) -> Result<QueueDepth, StoreError> {
        self.inner.depth().await
    }
    async fn max_receives(&self) -> Result<Option<u32>, StoreError> {
        self.inner.max_receives().await
    }
}

#[tokio::test]
async fn an_interrupted_backfill_resumes_at_its_checkpoint_and_skips_nothing() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    w.post(
        &w.hs_control("/seed"),
        json!({"seed": 3, "records": 4000, "overlap": 0.5}),
    )
    .await;
    w.post(
        &w.sf_control("/seed"),
        json!({"seed": 3, "records": 4000, "overlap": 0.5}),
    )
    .await;
    let hubspot: HashSet<String> = w
        .hs_contacts()
        .await
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    assert!(
        hubspot.len() > 2_500,
        "more than one chunk, the second over one send: {}",
        hubspot.len()
    );
    // Sends of 500: the companies' chunk, the contacts' first chunk (4 sends), then
    // the first send of their second chunk; the one after it fails, mid-chunk.
    let companies = w.hs_objects("companies").await.len();
    let fail_at = companies.div_ceil(500) + 4 + 1;

    let store = w.runner.store.clone();
    let flaky = FlakyQueue::new(store.clone(), fail_at);
    let pipeline = &w.runner.pipeline;
    assert!(
        pipeline.poll(store.as_ref(), &flaky).await.is_err(),
        "the contacts' second chunk fails"
    );
    let after_crash = store.queued().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        after_crash >= 2_500,
        "what went out before the crash stays queued: {after_crash}"
    );
    // The same queue again: its one failure is spent.
    let report = pipeline
        .poll(store.as_ref(), &flaky)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let resumed = report.enqueued();
    let deliveries = store
        .receive(100_000, 60_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let queued: HashSet<String> = deliveries
        .iter()
        .filter(|d| {
            d.item.side == crmsync_shared::domain::Side::HubSpot && d.item.object == "contacts"
        })
        .map(|d| d.item.id.clone())
        .collect();
    assert!(
        hubspot.is_subset(&queued),
        "the backfill queued every HubSpot contact"
    );
    let total = deliveries.len();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut twice: Vec<(String, String)> = Vec::new();
    // The backfill's own references, as sent (the change feeds also re-read what
    // changed in their overlap window, here every seeded record: that is not the
    // backfill's).
    let sent = flaky.sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for item in sent.iter().filter(|i| i.origin == "backfill") {
        let key = (item.object.clone(), item.id.clone());
        if !seen.insert(key.clone()) {
            twice.push(key);
        }
    }
    println!(
        "backfill: {after_crash} queued before the crash, {resumed} after; {total} in all, {} backfill references twice",
        twice.len()
    );
    // Resuming re-queued the chunk in flight when the queue failed (part of it had
    // gone out), at most one chunk, and nothing of a chunk checkpointed before (the
    // companies', the contacts' first).
    assert!(!twice.is_empty(), "the crash came mid-chunk");
    assert!(twice.len() <= 2_000, "{} re-queued", twice.len());
    assert!(
        twice.iter().all(|(object, _)| object == "contacts"),
        "the companies' chunk was checkpointed before the crash"
    );
}

/// A record the initial sync listed is not queued again by the feeds' later reads: the
/// settled reads start with the feed (a Lead re-read after its HubSpot contact was
/// deleted would make the contact again: history 253).
#[tokio::test]
async fn what_the_backfill_listed_the_settled_reads_leave_alone() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    let lead = w
        .sf_create(
            "Lead",
            json!({"LastName": "Early", "Email": "early@example.org", "Company": "X"}),
        )
        .await;
    // Older than the feeds' overlap when they start.
    w.advance(20_000);
    w.sync().await;
    let mut queued_again = 0;
    for _ in 0..8 {
        w.advance(20_000);
        w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
        let got = w
            .runner
            .store
            .receive(1_000, 60_000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        queued_again += got.iter().filter(|d| d.item.id == lead).count();
        for d in &got {
            w.runner
                .store
                .ack(d)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    assert_eq!(queued_again, 0, "the Lead was queued again");
}

#[tokio::test]
async fn the_dry_run_plans_and_writes_nothing() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    w.hs_create(json!({"email": "both@example.org", "lastname": "Both"}))
        .await;
    w.hs_create(json!({"email": "hs-only@example.org", "lastname": "HubSpot"}))
        .await;
    w.hs_create(json!({"lastname": "No Email"})).await;
    w.sf_create(
        "Contact",
        json!({"LastName": "Both", "Email": "both@example.org"}),
    )
    .await;
    w.sf_create(
        "Lead",
        json!({"LastName": "Lead", "Email": "sf-only@example.org", "Company": "X"}),
    )
    .await;
    let before = w.integration_writes().await;
    let plan = w
        .runner
        .pipeline
        .plan_backfill()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let contacts = &plan.pairs["contacts"];
    assert_eq!(contacts["link with Salesforce Contact"], 1);
    assert_eq!(contacts["create in Salesforce as Lead"], 1);
    assert_eq!(contacts["create in HubSpot from Salesforce Lead"], 1);
    assert_eq!(contacts["skip HubSpot record (no_email)"], 1);
    // Every enabled pair is planned, even with nothing to do.
    assert!(plan.pairs.contains_key("companies") && plan.pairs.contains_key("deals"));
    assert_eq!(w.integration_writes().await, before, "nothing written");
}

#[tokio::test]
async fn the_hourly_sweep_drops_links_of_records_deleted_without_a_webhook() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    let id = w
        .hs_create(json!({"email": "gone@example.org", "lastname": "Gone"}))
        .await;
    w.advance(1_000);
    w.poll_and_settle().await;
    let links = &w.runner.pipeline.links;
    assert!(
        links
            .by_hubspot("contacts", &id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some()
    );
    let r = w
        .http
        .delete(w.hs_control(&format!("/objects/contacts/{id}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.status().is_success());
    w.advance(SWEEP_INTERVAL_MS);
    w.poll_and_settle().await;
    assert!(
        links
            .by_hubspot("contacts", &id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
    let (outcome, code) = w.last_outcome("hubspot", "contacts", &id).await;
    assert_eq!(
        (outcome, code.as_deref()),
        (Outcome::Skipped, Some("deleted_in_hubspot"))
    );
    assert_eq!(
        w.sf_records("Lead").await.len(),
        1,
        "nothing deleted in Salesforce"
    );
}

/// A worker batch of 1,400 references, 700 pairs matched by email (a batch that fills
/// the APIs' batches): its SOQL `IN` lists are cut under Salesforce's 16,384-byte URL
/// limit, which one list of 700 Lead ids passes (the sandbox answers 414, as
/// Salesforce does).
#[tokio::test]
async fn a_batch_of_700_pairs_syncs_whole() {
    let w = World::start(Setup {
        push: false,
        settle_batch: 2_000,
        ..Setup::default()
    })
    .await;
    for n in 0..700 {
        let email = format!("batch{n}@example.org");
        w.hs_create(json!({"email": email, "firstname": "Hub"}))
            .await;
        w.sf_create(
            "Lead",
            json!({"LastName": format!("Batch {n}"), "Email": email, "Company": "Big Batch"}),
        )
        .await;
    }
    w.sync().await;
    w.assert_no_dead_letters().await;
    let hubspot: HashSet<String> = w
        .hs_contacts()
        .await
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    // Each Lead learns its contact's id and first name, after one check of all 700
    // (`Id IN (...)`) that nobody edited them since they were read.
    let leads = w.sf_records("Lead").await;
    let synced = leads
        .iter()
        .filter(|l| {
            l["FirstName"] == json!("Hub")
                && l["HubSpot_Contact_Id__c"]
                    .as_str()
                    .is_some_and(|id| hubspot.contains(id))
        })
        .count();
    assert_eq!((hubspot.len(), synced), (700, 700));
}

/// The initial sync reads each record once: the listing's pages carry every property
/// and field the pairs read, and the worker syncs from them. Contacts only in HubSpot
/// and Leads only in Salesforce: no listed contact is read again by id, no listed Lead
/// is retrieved again, and a contact learning its new Lead's id is not read first.
#[tokio::test]
async fn an_initial_sync_reads_each_record_once() {
    let w = World::start(Setup {
        push: false,
        settle_batch: 1_000,
        ..Setup::default()
    })
    .await;
    for n in 0..250 {
        w.hs_create(json!({"email": format!("listed{n}@example.org"), "lastname": "Hub"}))
            .await;
        w.sf_create(
            "Lead",
            json!({"LastName": format!("Listed {n}"), "Email": format!("lead{n}@example.org"), "Company": "Listed"}),
        )
        .await;
    }
    w.sync().await;
    w.assert_no_dead_letters().await;
    assert_eq!(w.hs_contacts().await.len(), 500);
    assert_eq!(w.sf_records("Lead").await.len(), 500);
    let calls = w.calls_by_endpoint().await;
    let n = |k: &str| calls.get(k).copied().unwrap_or(0);
    assert_eq!(n("HubSpot GET /crm/v3/objects/contacts"), 3, "the listing");
    // No listed contact is read again, nor checked before it learns its Lead's id (the
    // sync's own property); no Lead's contact is looked for by email: its create is one
    // HubSpot refuses for an email it has (100 a call).
    assert_eq!(
        n("HubSpot POST /crm/v3/objects/contacts/batch/read"),
        0,
        "{calls:#?}"
    );
    assert_eq!(
        n("HubSpot POST /crm/v3/objects/contacts/batch/create"),
        3,
        "{calls:#?}"
    );
    assert_eq!(
        n("Salesforce POST /services/data/vXX.X/composite/sobjects/Lead"),
        0,
        "no Lead retrieved again"
    );
    // Contacts the sync creates (here from Salesforce Contacts, whose account is a
    // lookup) have no associations to read for it.
    let associations = "HubSpot POST /crm/v4/associations/contacts/companies/batch/read";
    let before = n(associations);
    for n in 0..20 {
        w.sf_create(
            "Contact",
            json!({"LastName": format!("Later {n}"), "Email": format!("later{n}@example.org")}),
        )
        .await;
    }
    w.sync().await;
    assert_eq!(w.hs_contacts().await.len(), 520);
    let calls = w.calls_by_endpoint().await;
    assert_eq!(
        calls.get(associations).copied().unwrap_or(0),
        before,
        "{calls:#?}"
    );
}

/// In an initial sync, a record listed before its pair synced (its partner's reference
/// came first, found it by email and synced both) has nothing left to sync: its own
/// listed reference costs no read on either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_listed_before_its_pair_synced_costs_no_read() {
    let w = World::start(Setup {
        push: false,
        // The contacts' references (listed first) fill the first batch; the Leads'
        // come in the next, after the pairs synced.
        settle_batch: 60,
        ..Setup::default()
    })
    .await;
    for n in 0..60 {
        let email = format!("both{n}@example.org");
        // The Leads learn a first name (so what they were listed with is not what
        // synced); the contacts only learn their Leads' ids (no check before).
        let name = format!("Both {n}");
        w.hs_create(
            json!({"email": email, "firstname": "Hub", "lastname": name, "company": "Both"}),
        )
        .await;
        w.sf_create(
            "Lead",
            json!({"LastName": name, "Email": email, "Company": "Both"}),
        )
        .await;
    }
    w.sync().await;
    w.assert_no_dead_letters().await;
    assert_eq!(w.hs_contacts().await.len(), 60);
    assert_eq!(w.sf_records("Lead").await.len(), 60);
    let calls = w.calls_by_endpoint().await;
    let n = |k: &str| calls.get(k).copied().unwrap_or(0);
    assert_eq!(
        n("HubSpot POST /crm/v3/objects/contacts/batch/read"),
        0,
        "{calls:#?}"
    );
    assert_eq!(
        n("Salesforce POST /services/data/vXX.X/composite/sobjects/Lead"),
        0,
        "{calls:#?}"
    );
}

/// Found by the scale bench (30,000 people): the feeds paged through the initial sync's
/// own writes for a minute at a time, and the listing waited behind them, the workers
/// idle. The listings and the feeds run at once: a listing goes on while a feed's read
/// fails (here Salesforce's feed call, after a reconcile asked to list every record).
#[tokio::test]
async fn a_listing_does_not_wait_for_the_feeds() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    for n in 0..3 {
        w.sf_create(
            "Lead",
            json!({"Email": format!("listed{n}@example.org"), "LastName": "Listed", "Company": "Acme"}),
        )
        .await;
    }
    w.sync().await;
    let resumed = w.resume_after_a_long_pause().await;
    assert!(resumed.reconcile, "a reconcile lists every record again");
    // The feeds' changes come in one Composite call; the listings are queries.
    w.post(
        &w.sf_control("/faults"),
        json!({"faults": [{"status": 503, "when": "/composite"}], "repeat": 1_000}),
    )
    .await;
    let polled = w.runner.poll_now().await;
    assert!(polled.is_err(), "the feeds' read failed: {polled:?}");
    let depth = w.queue_depth().await;
    assert!(
        depth.waiting >= 3,
        "the Leads were listed meanwhile: {depth:?}"
    );
}

/// A HubSpot feed polled every second under a stream of changes reads each change a
/// few times (from the cursor while new, and once more when older than the search
/// index's lag), not at every poll for as long as it is within the lag: at one poll a
/// second that was five or six reads of every change, most of an initial sync's
/// HubSpot feed calls.
#[tokio::test]
async fn a_busy_feed_polled_every_second_reads_each_change_a_few_times() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    let mut contacts = Vec::new();
    for n in 0..200 {
        contacts.push(
            w.hs_create(json!({"email": format!("busy{n}@example.org"), "lastname": "Busy"}))
                .await,
        );
    }
    w.sync().await;
    // Past the feed's reads of the sync's own writes.
    for _ in 0..6 {
        w.advance(1_000);
        w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
    }
    let feed = "hubspot:contacts";
    let mut read = 0;
    let mut changes = 0;
    for second in 0..10 {
        // Twenty other contacts each second.
        for id in &contacts[second * 20..(second + 1) * 20] {
            w.hs_update(id, json!({"jobtitle": format!("T{second}")}))
                .await;
            changes += 1;
        }
        w.advance(1_000);
        let polled = w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
        read += polled.feeds.get(feed).map_or(0, |f| f.read);
    }
    // Until the last changes are older than the lag.
    for _ in 0..6 {
        w.advance(1_000);
        let polled = w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
        read += polled.feeds.get(feed).map_or(0, |f| f.read);
    }
    assert!(
        read >= changes && read <= changes * 7 / 2,
        "{read} reads of {changes} changes"
    );
}

/// The initial sync follows what the listing shows of each record's associations: HubSpot
/// contacts associated with a company fill their Contacts' Account in Salesforce, and
/// no association is read to do it (the listing's pages carry them).
#[tokio::test]
async fn an_initial_sync_follows_listed_associations_without_reading_them() {
    let w = World::start(Setup {
        push: false,
        settle_batch: 1_000,
        ..Setup::default()
    })
    .await;
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Initech", "Website": "initech.example"}),
        )
        .await;
    let company = w
        .hs_create_object(
            "companies",
            json!({"name": "Initech", "domain": "initech.example"}),
        )
        .await;
    for n in 0..20 {
        let email = format!("staff{n}@initech.example");
        let contact = w
            .hs_create(json!({"email": email, "lastname": format!("Staff {n}")}))
            .await;
        w.hs_person_associates("contacts", &contact, "companies", &company)
            .await;
        w.sf_create(
            "Contact",
            json!({"LastName": format!("Staff {n}"), "Email": email}),
        )
        .await;
    }
    let read = "HubSpot POST /crm/v4/associations/contacts/companies/batch/read";
    let before = w.calls_by_endpoint().await.get(read).copied().unwrap_or(0);
    w.sync().await;
    w.assert_no_dead_letters().await;
    let contacts = w.sf_records("Contact").await;
    assert_eq!(contacts.len(), 20);
    for c in &contacts {
        assert_eq!(c["AccountId"], json!(account), "{c}");
    }
    let calls = w.calls_by_endpoint().await;
    assert_eq!(
        calls.get(read).copied().unwrap_or(0) - before,
        0,
        "{calls:#?}"
    );
}

/// Polls `polls` times, the clock moved on `every_ms` before each: what `feed` read at
/// each poll.
async fn feed_reads(w: &World, feed: &str, polls: i64, every_ms: i64) -> Vec<usize> {
    let mut reads = Vec::new();
    for _ in 0..polls {
        w.advance(every_ms);
        let polled = w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
        reads.push(polled.feeds.get(feed).map_or(0, |f| f.read));
    }
    reads
}

/// A backlog: [`BACKLOG`] references to records the workers have not got to yet.
async fn queue_backlog(w: &World, side: Side, object: &str, id: impl Fn(usize) -> String) {
    let backlog: Vec<WorkItem> = (0..BACKLOG as usize)
        .map(|n| WorkItem {
            side,
            object: object.into(),
            id: id(n),
            origin: "backfill".into(),
            seen: None,
        })
        .collect();
    w.runner
        .store
        .send(&backlog)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Behind a backlog of queued work, HubSpot's feed reads a change once, when its window
/// has settled, and not while it is fresh or just past the search index's lag: a
/// reference queued then would wait behind the backlog anyway, and an initial sync's
/// feeds page through every one of its own writes (read at each poll, the lagged
/// windows were a search per feed and poll, and a second read of each write).
#[tokio::test]
async fn behind_a_backlog_a_change_is_read_once_when_settled() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    let mut contacts = Vec::new();
    for n in 0..20 {
        contacts.push(
            w.hs_create(json!({"email": format!("behind{n}@example.org"), "lastname": "Behind"}))
                .await,
        );
    }
    w.sync().await;
    let feed = "hubspot:contacts";
    feed_reads(&w, feed, 6, 1_000).await;
    queue_backlog(&w, Side::Salesforce, "Lead", |n| format!("00Q8M{n:013}")).await;
    for id in &contacts {
        w.hs_update(id, json!({"jobtitle": "Later"})).await;
    }
    // Past the settled read's delay and its step, a poll every 5 s.
    let reads = feed_reads(&w, feed, (HUBSPOT_SETTLE_MS + 60_000) / 5_000, 5_000).await;
    let before_settled = (HUBSPOT_SETTLE_MS / 5_000) as usize;
    assert_eq!(
        reads[..before_settled].iter().sum::<usize>(),
        0,
        "read before it settled: {reads:?}"
    );
    assert_eq!(
        reads.iter().sum::<usize>(),
        contacts.len(),
        "each change once: {reads:?}"
    );
}

/// Behind a backlog, Salesforce's feed reads a change once while it is fresh and once
/// when its window has settled, not again at every poll of its overlap (at a poll a
/// second the overlap read each of an initial sync's own writes a dozen times).
#[tokio::test]
async fn behind_a_backlog_a_salesforce_change_is_read_fresh_once() {
    let w = world(false, DEFAULT_TOML.to_owned()).await;
    let mut leads = Vec::new();
    for n in 0..20 {
        leads.push(
            w.sf_create(
                "Lead",
                json!({"LastName": format!("Behind {n}"), "Email": format!("sfbehind{n}@example.org"), "Company": "Behind"}),
            )
            .await,
        );
    }
    w.sync().await;
    let feed = "salesforce:Lead";
    feed_reads(&w, feed, 12, 1_000).await;
    queue_backlog(&w, Side::HubSpot, "contacts", |n| format!("9{n:09}")).await;
    w.advance(1_000);
    for id in &leads {
        w.sf_update("Lead", id, json!({"Title": "Later"})).await;
    }
    // A poll a second, past the settled read's delay and its step.
    let reads = feed_reads(&w, feed, (SALESFORCE_SETTLE_MS + 40_000) / 1_000, 1_000).await;
    // The newest change is read again at each poll until the overlap has passed it
    // (the cursor stops at it: one more row a poll).
    let boundary = (SALESFORCE_OVERLAP_MS / 1_000) as usize;
    let read = reads.iter().sum::<usize>();
    assert!(
        (2 * leads.len()..=2 * leads.len() + boundary).contains(&read),
        "each change fresh once and settled once: {reads:?}"
    );
}

/// Found by the scale bench (100,000 people): HubSpot's listing runs first, and by the
/// time Salesforce's is read most of its records have synced with their HubSpot
/// partners, the listing showing our own write of each (the partner's id). Those are
/// not queued (60,000 references a worker would only find to be echoes); a record the
/// sync has not touched is.
#[tokio::test]
async fn the_listing_does_not_queue_records_synced_before_it_read_them() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    let mut matched = HashSet::new();
    for n in 0..30 {
        let email = format!("both{n}@example.org");
        w.hs_create(json!({"email": email, "lastname": format!("Both {n}")}))
            .await;
        matched.insert(
            w.sf_create(
                "Lead",
                json!({"LastName": format!("Both {n}"), "Email": email, "Company": "Both"}),
            )
            .await,
        );
    }
    let mut alone = HashSet::new();
    for n in 0..5 {
        alone.insert(
            w.sf_create(
                "Lead",
                json!({"LastName": format!("Alone {n}"), "Email": format!("alone{n}@example.org"), "Company": "Alone"}),
            )
            .await,
        );
    }
    w.advance(1_000);
    let store = w.runner.store.clone();
    let queue = FlakyQueue {
        fail_listing_of: Some(Side::Salesforce),
        ..FlakyQueue::new(store.clone(), 0)
    };
    let pipeline = &w.runner.pipeline;
    assert!(
        pipeline.poll(store.as_ref(), &queue).await.is_err(),
        "the Salesforce listing is refused once"
    );
    // The HubSpot contacts sync: each finds its Lead by email and writes its id there.
    w.settle().await;
    assert!(
        w.sf_records("Lead")
            .await
            .iter()
            .filter(|l| l["HubSpot_Contact_Id__c"].is_string())
            .count()
            >= 30
    );
    w.advance(1_000);
    pipeline
        .poll(store.as_ref(), &queue)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let listed: HashSet<String> = queue
        .sent
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|i| i.side == Side::Salesforce && i.origin == "backfill")
        .map(|i| i.id.clone())
        .collect();
    assert!(alone.is_subset(&listed), "{listed:?}");
    assert!(listed.is_disjoint(&matched), "{listed:?}");
    w.settle().await;
    w.assert_no_dead_letters().await;
    assert_eq!(w.hs_contacts().await.len(), 35);
}

/// A HubSpot record about to be written over is read once for the check that nobody
/// edited it since it was read, while the Salesforce writes are in flight; learning its
/// partner's id as well (added after that read was planned) costs no second read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_checked_before_its_update_is_read_once() {
    let w = World::start(Setup {
        push: false,
        settle_batch: 60,
        ..Setup::default()
    })
    .await;
    for n in 0..60 {
        let email = format!("checked{n}@example.org");
        let name = format!("Checked {n}");
        // The contacts learn a job title (checked first) and their Leads' ids.
        w.hs_create(json!({"email": email, "lastname": name})).await;
        w.sf_create(
            "Lead",
            json!({"LastName": name, "Email": email, "Company": "Checked", "Title": "Buyer"}),
        )
        .await;
    }
    w.sync().await;
    w.assert_no_dead_letters().await;
    let titled = w
        .hs_contacts()
        .await
        .iter()
        .filter(|c| c["properties"]["jobtitle"] == json!("Buyer"))
        .count();
    assert_eq!(titled, 60);
    let calls = w.calls_by_endpoint().await;
    let n = |k: &str| calls.get(k).copied().unwrap_or(0);
    assert_eq!(
        n("HubSpot POST /crm/v3/objects/contacts/batch/read"),
        1,
        "{calls:#?}"
    );
}

/// An initial sync's Salesforce-only Accounts are looked for in HubSpot by domain
/// before they are created there: a search holds five `IN` groups of 100 values (a
/// domain is two: with and without `www.`), so 300 Accounts are two searches, not six.
#[tokio::test]
async fn salesforce_only_companies_are_looked_for_250_domains_a_search() {
    let w = World::start(Setup {
        push: false,
        settle_batch: 1_000,
        ..Setup::default()
    })
    .await;
    for n in 0..300 {
        w.sf_create(
            "Account",
            json!({"Name": format!("Only {n}"), "Website": format!("https://only{n}.example/")}),
        )
        .await;
    }
    let before = w.calls_by_endpoint().await;
    w.sync().await;
    w.assert_no_dead_letters().await;
    let calls = w.calls_by_endpoint().await;
    let spent = |k: &str| calls.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    assert_eq!(
        spent("HubSpot POST /crm/v3/objects/companies/batch/create"),
        3
    );
    assert_eq!(
        spent("HubSpot POST /crm/v3/objects/companies/search"),
        2,
        "{calls:#?}"
    );
}

/// A worker's batch looks its records' links up together (here with the echo check),
/// and the links of what their lookups point at (a contact's Account) together: the
/// embedded store's one connection is shared by every worker, and a round trip per
/// record held it for much of an initial sync.
#[tokio::test]
async fn a_batch_reads_and_stores_its_links_claims_and_statuses_together() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    let account = w
        .sf_create(
            "Account",
            json!({"Name": "Acme Together", "Website": "https://together.example"}),
        )
        .await;
    w.sync().await;
    for n in 0..10 {
        w.sf_create(
            "Contact",
            json!({"LastName": format!("Together{n}"), "Email": format!("p{n}@together.example"), "AccountId": account}),
        )
        .await;
    }
    w.advance(1_000);
    w.runner.poll_now().await.unwrap_or_else(|e| panic!("{e}"));
    let links = Arc::new(world::Counted::new(w.runner.pipeline.links.clone()));
    let claims = Arc::new(world::Counted::new(w.runner.pipeline.claims.clone()));
    let statuses = Arc::new(world::Counted::new(w.runner.pipeline.status.clone()));
    let mut pipeline = w.runner.pipeline.clone();
    pipeline.links = links.clone();
    pipeline.claims = claims.clone();
    pipeline.status = statuses.clone();
    let round = worker::run_once(&pipeline, w.runner.store.as_ref(), 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(round.received, 10, "the ten contacts, in one batch");
    w.settle().await;
    assert_eq!(w.hs_contacts().await.len(), 10, "each made in HubSpot");
    let calls = links.by_method();
    assert_eq!(
        calls.get("by_salesforce"),
        None,
        "ten contacts' links and their Account's, not one lookup each: {calls:?}"
    );
    // Stored together too: the ten new links, then the Account each one records
    // (read and written again), the emails' claims and the ten statuses.
    for one_each in ["create", "update", "by_hubspot"] {
        assert_eq!(calls.get(one_each), None, "{one_each} per link: {calls:?}");
    }
    assert_eq!(calls.get("create_all"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("update_all"), Some(&1), "{calls:?}");
    let claimed = claims.by_method();
    assert_eq!(claimed.get("claim"), None, "a claim per email: {claimed:?}");
    assert_eq!(claimed.get("claim_all"), Some(&1), "{claimed:?}");
    assert_eq!(claimed.get("release_all"), Some(&1), "{claimed:?}");
    let recorded = statuses.by_method();
    assert_eq!(
        recorded.get("record"),
        None,
        "a status per record: {recorded:?}"
    );
    assert_eq!(recorded.get("record_all"), Some(&1), "{recorded:?}");
    for c in w.sf_records("Contact").await {
        let id = c["Id"].as_str().unwrap_or_default();
        let link = w
            .runner
            .pipeline
            .links
            .by_salesforce("Contact", id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("Contact {id} not linked"));
        assert!(
            link.last_synced.lookup("AccountId").is_some(),
            "{id}'s Account recorded on its link: {link:?}"
        );
        assert_eq!(
            w.last_outcome("salesforce", "Contact", id).await.0,
            Outcome::Synced
        );
    }

    // Asked for by hand (`POST /sync`), the references say nothing of what their
    // source saw: no echo check brings their links, matching looks them up, together.
    let contacts = w.sf_records("Contact").await;
    let records: Vec<Value> = contacts
        .iter()
        .filter_map(|c| c["Id"].as_str())
        .map(|id| json!({"side": "salesforce", "object": "Contact", "id": id}))
        .collect();
    assert_eq!(records.len(), 10);
    let r = w
        .http
        .post(format!("{}/sync", w.runner.url()))
        .bearer_auth(world::API_KEY)
        .json(&json!({ "records": records }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 202);
    let links = Arc::new(world::Counted::new(w.runner.pipeline.links.clone()));
    pipeline.links = links.clone();
    let round = worker::run_once(&pipeline, w.runner.store.as_ref(), 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(round.received, 10, "the ten contacts again, in one batch");
    let calls = links.by_method();
    assert_eq!(
        calls.get("by_salesforce"),
        None,
        "ten linked contacts' links, not one lookup each: {calls:?}"
    );
}

/// A batch's lookups look before they write: the contacts' Accounts not synced yet sync
/// first, and then every contact's company association is made in one call, from the
/// associations read once (applied before its targets synced, a pass associated twice
/// and read the associations again: ~200 of HubSpot's calls at 100,000 people per side).
#[tokio::test]
async fn a_batchs_lookups_associate_in_one_call_once_their_targets_synced() {
    let w = World::start(Setup {
        push: false,
        ..Setup::default()
    })
    .await;
    let synced_account = w
        .sf_create(
            "Account",
            json!({"Name": "Acme One", "Website": "https://one.example"}),
        )
        .await;
    let company = w
        .hs_create_object(
            "companies",
            json!({"name": "Acme One", "domain": "one.example"}),
        )
        .await;
    w.sync().await;
    let new_account = w
        .sf_create(
            "Account",
            json!({"Name": "Acme Two", "Website": "https://two.example"}),
        )
        .await;
    let mut refs = Vec::new();
    let mut contacts = Vec::new();
    for (n, account) in [(1, &synced_account), (2, &new_account)] {
        let email = format!("p{n}@acme.example");
        contacts.push(
            w.hs_create(json!({"email": email, "lastname": format!("P{n}")}))
                .await,
        );
        let id = w
            .sf_create(
                "Contact",
                json!({"LastName": format!("P{n}"), "Email": email, "AccountId": account}),
            )
            .await;
        refs.push(json!({"side": "salesforce", "object": "Contact", "id": id}));
    }
    w.advance(1_000);
    let r = w
        .http
        .post(format!("{}/sync", w.runner.url()))
        .bearer_auth(world::API_KEY)
        .json(&json!({ "records": refs }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 202);
    let before = w.calls_by_endpoint().await;
    let round = worker::run_once(&w.runner.pipeline, w.runner.store.as_ref(), 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(round.received, 2, "the two contacts, in one batch");
    let after = w.calls_by_endpoint().await;
    let made = |endpoint: &str| {
        after.get(endpoint).copied().unwrap_or(0) - before.get(endpoint).copied().unwrap_or(0)
    };
    let associate = "HubSpot POST /crm/v4/associations/contacts/companies/batch/associate/default";
    let read = "HubSpot POST /crm/v4/associations/contacts/companies/batch/read";
    assert_eq!(
        (made(associate), made(read)),
        (1, 1),
        "associated once, read once: {after:?}"
    );
    assert_eq!(
        w.hs_associated("contacts", &contacts[0], "companies").await,
        vec![company]
    );
    let two = w
        .runner
        .pipeline
        .links
        .by_salesforce("Account", &new_account)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|l| l.hubspot_id)
        .unwrap_or_else(|| panic!("Account {new_account} not synced"));
    assert_eq!(
        w.hs_associated("contacts", &contacts[1], "companies").await,
        vec![two]
    );
}
