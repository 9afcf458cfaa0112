//! Contract suites: one set of checks per port, run against every adapter (the
//! embedded SQLite store and the AWS ones on moto). Each function takes the port as a
//! trait object and panics on the first broken promise. They write to the store they
//! are given: give them a fresh one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use crate::domain::merge::LastSynced;
use crate::ports::{
    ClaimStore, Cursor, CursorStore, Link, LinkStore, StoreError, WorkItem, WorkQueue,
};

fn link(hubspot_id: &str, salesforce_id: &str) -> Link {
    Link {
        pair: "contacts".into(),
        hubspot_id: hubspot_id.into(),
        salesforce_object: "Lead".into(),
        salesforce_id: salesforce_id.into(),
        last_synced: LastSynced::default(),
        synced_at: 1_000,
        hubspot_read_at: None,
        version: 0,
    }
}

/// A pair links once, is found from both sides, updates optimistically, re-links and
/// goes away.
pub async fn links(store: &dyn LinkStore) {
    assert_eq!(store.by_hubspot("contacts", "101").await.unwrap(), None);
    let created = store.create(&link("101", "00Q1")).await.unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(
        store.by_hubspot("contacts", "101").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.by_salesforce("Lead", "00Q1").await.unwrap(),
        Some(created.clone())
    );
    // Many at once, in the order asked (past a call's hundred keys).
    let mut asked: Vec<String> = (0..250).map(|n| format!("9{n:05}")).collect();
    asked.push("101".into());
    asked.insert(7, "101".into());
    let many = store.by_hubspot_ids("contacts", &asked).await.unwrap();
    assert_eq!(many.len(), asked.len());
    for (id, link) in asked.iter().zip(&many) {
        let expected = (id == "101").then(|| created.clone());
        assert_eq!(link, &expected, "{id}");
    }
    let asked: Vec<String> = ["00Q9", "00Q1"].map(String::from).to_vec();
    assert_eq!(
        store.by_salesforce_ids("Lead", &asked).await.unwrap(),
        vec![None, Some(created.clone())]
    );
    assert_eq!(
        store.by_salesforce_ids("Contact", &asked).await.unwrap(),
        vec![None, None]
    );
    // Neither side may be linked twice.
    assert!(matches!(
        store.create(&link("101", "00Q2")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create(&link("102", "00Q1")).await,
        Err(StoreError::Conflict(_))
    ));

    let mut changed = created.clone();
    changed.synced_at = 2_000;
    changed.hubspot_read_at = Some(1_500);
    let updated = store.update(&changed).await.unwrap();
    assert_eq!(updated.version, 2);
    // An update based on version 1 is stale now.
    assert!(matches!(
        store.update(&changed).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .by_hubspot("contacts", "101")
            .await
            .unwrap()
            .map(|l| (l.synced_at, l.hubspot_read_at)),
        Some((2_000, Some(1_500)))
    );

    // Lead conversion: the link moves to the contact.
    let relinked = store
        .relink(&updated, "101", "Contact", "0031")
        .await
        .unwrap();
    assert_eq!(relinked.version, 3);
    assert_eq!(store.by_salesforce("Lead", "00Q1").await.unwrap(), None);
    assert_eq!(
        store
            .by_salesforce("Contact", "0031")
            .await
            .unwrap()
            .map(|l| l.hubspot_id),
        Some("101".into())
    );
    // A merge in HubSpot: the link moves to the new id.
    let merged = store
        .relink(&relinked, "999", "Contact", "0031")
        .await
        .unwrap();
    assert_eq!(store.by_hubspot("contacts", "101").await.unwrap(), None);
    assert_eq!(
        store
            .by_hubspot("contacts", "999")
            .await
            .unwrap()
            .map(|l| l.version),
        Some(4)
    );
    store.remove(&merged).await.unwrap();
    assert_eq!(store.by_salesforce("Contact", "0031").await.unwrap(), None);

    // A batch's links: each answered on its own, in order; one refused leaves the
    // others created or updated.
    store.create(&link("201", "00Q201")).await.unwrap();
    let batch = [
        link("202", "00Q202"),
        link("201", "00Q299"),
        link("203", "00Q203"),
        link("204", "00Q201"),
    ];
    let created = store.create_all(&batch).await;
    assert_eq!(created.len(), 4);
    assert!(
        matches!(created[1], Err(StoreError::Conflict(_))),
        "{created:?}"
    );
    assert!(
        matches!(created[3], Err(StoreError::Conflict(_))),
        "{created:?}"
    );
    for n in [0, 2] {
        let made = created[n].as_ref().unwrap();
        assert_eq!(made.version, 1);
        assert_eq!(
            store
                .by_hubspot("contacts", &batch[n].hubspot_id)
                .await
                .unwrap()
                .as_ref(),
            Some(made)
        );
    }
    assert_eq!(store.by_salesforce("Lead", "00Q299").await.unwrap(), None);
    assert!(store.create_all(&[]).await.is_empty());
    let stale = created[0].as_ref().unwrap().clone();
    let mut moved = created[2].as_ref().unwrap().clone();
    moved.synced_at = 3_000;
    let first = store.update_all(&[stale.clone(), moved.clone()]).await;
    assert_eq!(
        first
            .iter()
            .map(|r| r.as_ref().map(|l| l.version).ok())
            .collect::<Vec<_>>(),
        vec![Some(2), Some(2)]
    );
    // The first is stale now; the other, at its new version, goes through.
    let again = store
        .update_all(&[stale, first[1].as_ref().unwrap().clone()])
        .await;
    assert!(
        matches!(again[0], Err(StoreError::Conflict(_))),
        "{again:?}"
    );
    assert_eq!(again[1].as_ref().map(|l| l.version).ok(), Some(3));
    assert_eq!(
        store
            .by_hubspot("contacts", "203")
            .await
            .unwrap()
            .map(|l| (l.version, l.synced_at)),
        Some((3, 3_000))
    );
}

/// Sixteen workers link the same pair at once: exactly one link exists afterwards.
pub async fn links_race(store: Arc<dyn LinkStore>) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                // Some racers hold the same HubSpot id with another lead, some the same lead.
                let l = if i % 2 == 0 {
                    link("race-1", "00QRACE")
                } else {
                    link("race-1", &format!("00QR{i}"))
                };
                store.create(&l).await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
    assert!(
        store
            .by_hubspot("contacts", "race-1")
            .await
            .unwrap()
            .is_some()
    );
}

fn at(ms: i64, id: &str) -> Cursor {
    Cursor {
        at: ms,
        last_id: id.into(),
    }
}

/// A cursor starts unset, moves forward only, and only from where it was read.
pub async fn cursors(store: &dyn CursorStore) {
    assert_eq!(store.cursor("hubspot:contacts").await.unwrap(), None);
    store
        .advance("hubspot:contacts", None, &at(10, "a"))
        .await
        .unwrap();
    assert!(matches!(
        store.advance("hubspot:contacts", None, &at(20, "a")).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .advance("hubspot:contacts", Some(&at(10, "a")), &at(10, "b"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .advance("hubspot:contacts", Some(&at(10, "b")), &at(5, "z"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .advance("hubspot:contacts", Some(&at(10, "a")), &at(30, "a"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.cursor("hubspot:contacts").await.unwrap(),
        Some(at(10, "b"))
    );
    assert_eq!(store.cursor("salesforce:Lead").await.unwrap(), None);
}

/// Sixteen pollers advance one cursor at once: it ends at the highest value.
pub async fn cursors_race(store: Arc<dyn CursorStore>) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let target = at(100 + i64::from(i), "x");
                loop {
                    let current = store.cursor("race").await.unwrap();
                    if current.as_ref().is_some_and(|c| *c >= target) {
                        return;
                    }
                    match store.advance("race", current.as_ref(), &target).await {
                        Ok(()) => return,
                        Err(StoreError::Conflict(_)) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.cursor("race").await.unwrap(), Some(at(115, "x")));
}

/// A claim is held by one owner until it expires; an event is new once per TTL.
pub async fn claims(store: &dyn ClaimStore) {
    assert!(
        store
            .claim("email:ana@acme.com", "worker-1", 1_000, 0)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim("email:ana@acme.com", "worker-2", 1_000, 500)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim("email:ana@acme.com", "worker-1", 1_000, 600)
            .await
            .unwrap(),
        "the holder may retry"
    );
    assert!(
        store
            .claim("email:ana@acme.com", "worker-2", 1_000, 2_000)
            .await
            .unwrap(),
        "expired claims are free"
    );
    store
        .release("email:ana@acme.com", "worker-2", 2_100)
        .await
        .unwrap();
    // A batch that began before the release read the CRMs before the holder's writes
    // landed: it must read again, not create a second record from its stale read.
    assert!(
        !store
            .claim("email:ana@acme.com", "worker-3", 1_000, 2_050)
            .await
            .unwrap(),
        "a claim made under a time before the release is refused"
    );
    assert!(
        !store
            .claim("email:ana@acme.com", "worker-3", 1_000, 2_100)
            .await
            .unwrap(),
        "nor one made in the release's millisecond (its reads may be older still)"
    );
    assert!(
        store
            .claim("email:ana@acme.com", "worker-3", 1_000, 2_101)
            .await
            .unwrap(),
        "a batch that began after the release takes it"
    );
    // Someone else's release leaves the holder's claim alone.
    store
        .release("email:ana@acme.com", "worker-2", 2_200)
        .await
        .unwrap();
    assert!(
        !store
            .claim("email:ana@acme.com", "worker-4", 1_000, 2_300)
            .await
            .unwrap(),
        "only the holder releases"
    );
    // Released for all: any later claim takes it (a webhook's redelivery).
    assert!(
        store
            .claim("event:1", "intake-1", 60_000, 10)
            .await
            .unwrap()
    );
    store
        .release("event:1", "intake-1", crate::ports::RELEASED_FOR_ALL)
        .await
        .unwrap();
    assert!(
        store
            .claim("event:1", "intake-2", 60_000, 10)
            .await
            .unwrap()
    );

    // Many keys at once (a webhook delivery's events), in order: a key held by
    // another refused, the holder's own retaken, a key named twice taken by its owner.
    let keys: Vec<String> = ["event:2", "event:1", "event:3", "event:2"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        store
            .claim_all(&keys, "intake-3", 60_000, 20)
            .await
            .unwrap(),
        vec![true, false, true, true]
    );
    assert_eq!(
        store
            .claim_all(&keys[2..], "intake-2", 60_000, 20)
            .await
            .unwrap(),
        vec![false, false]
    );
    store
        .release_all(&keys, "intake-3", crate::ports::RELEASED_FOR_ALL)
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_all(&keys[..3], "intake-2", 60_000, 30)
            .await
            .unwrap(),
        vec![true, true, true],
        "released for all, and event:1 is intake-2's own"
    );

    assert!(
        store
            .first_sight("hubspot:33:25:3816279340:1246965:1462216307945", 60_000, 0)
            .await
            .unwrap()
    );
    assert!(
        !store
            .first_sight("hubspot:33:25:3816279340:1246965:1462216307945", 60_000, 10)
            .await
            .unwrap()
    );
    assert!(
        store
            .first_sight(
                "hubspot:33:25:3816279340:1246965:1462216307945",
                60_000,
                70_000
            )
            .await
            .unwrap()
    );

    // A feed's page at once: in order, a key named twice seen first once, a key seen
    // before not seen first, all of it remembered.
    let page: Vec<String> = ["feed:1:10", "feed:2:10", "feed:1:10"]
        .map(String::from)
        .to_vec();
    store.first_sight("feed:3:10", 60_000, 0).await.unwrap();
    let mut with_old = page.clone();
    with_old.push("feed:3:10".into());
    assert_eq!(
        store.first_sights(&with_old, 60_000, 5).await.unwrap(),
        vec![true, true, false, false]
    );
    assert_eq!(
        store.first_sights(&page, 60_000, 6).await.unwrap(),
        vec![false, false, false]
    );
    assert!(!store.first_sight("feed:2:10", 60_000, 7).await.unwrap());
    assert_eq!(
        store.first_sights(&page, 60_000, 70_000).await.unwrap(),
        vec![true, true, false]
    );
}

/// Sixteen workers claim one dedup key at once: exactly one wins.
pub async fn claims_race(store: Arc<dyn ClaimStore>) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim("domain:acme.com", &format!("worker-{i}"), 60_000, 0)
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

fn item(n: usize) -> WorkItem {
    WorkItem {
        side: crate::domain::Side::HubSpot,
        object: "contacts".into(),
        id: n.to_string(),
        origin: "poll".into(),
        seen: None,
    }
}

/// Items go in and come out; an unacknowledged one comes back once its visibility
/// ends; one that keeps failing ends among the dead letters with its body intact.
/// `max_receives` is what the queue was set up with.
pub async fn queue(queue: &dyn WorkQueue, max_receives: u32) {
    // The worker's last attempt must know it is the last.
    assert_eq!(queue.max_receives().await.unwrap(), Some(max_receives));
    let items: Vec<WorkItem> = (0..25).map(item).collect();
    queue.send(&items).await.unwrap();
    let mut seen = Vec::new();
    // A worker's batch may hold more than SQS gives in one call (10).
    let first = queue.receive(20, 60_000).await.unwrap();
    assert_eq!(first.len(), 20, "a batch of 20 out of 25");
    seen.extend(first.iter().map(|d| d.item.id.clone()));
    queue
        .ack_all(&first.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    let depth = queue.depth().await.unwrap();
    assert_eq!(
        (depth.waiting, depth.in_flight),
        (5, 0),
        "the 20 acknowledged at once are gone"
    );
    while seen.len() < 25 {
        let got = queue.receive(10, 60_000).await.unwrap();
        assert!(!got.is_empty(), "all 25 come out");
        for d in got {
            assert_eq!(d.receives, 1);
            seen.push(d.item.id.clone());
            queue.ack(&d).await.unwrap();
        }
    }
    seen.sort_by_key(|s| s.parse::<usize>().unwrap_or(0));
    assert_eq!(seen, (0..25).map(|n| n.to_string()).collect::<Vec<_>>());
    assert!(
        queue.receive(10, 60_000).await.unwrap().is_empty(),
        "acknowledged items are gone"
    );

    // Not acknowledged, visibility over (zero here): it comes back, counted.
    queue.send(&[item(100)]).await.unwrap();
    let first = queue.receive(1, 0).await.unwrap();
    assert_eq!(first.len(), 1);
    let again = queue.receive(1, 0).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].item, item(100));
    assert_eq!(again[0].receives, 2);
    for _ in 2..max_receives {
        assert_eq!(queue.receive(1, 0).await.unwrap().len(), 1);
    }
    // Received max_receives times and never acknowledged: dead-lettered.
    assert!(queue.receive(1, 0).await.unwrap().is_empty());
    assert_eq!(queue.dead_letters().await.unwrap(), vec![item(100)]);
    assert_eq!(queue.depth().await.unwrap().dead, 1);

    // Parked for later (a paused worker's batch): waiting, not receivable yet, and
    // never received when it comes back.
    queue.send_later(&[item(200)], 60_000).await.unwrap();
    assert!(queue.receive(10, 0).await.unwrap().is_empty());
    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.waiting, depth.in_flight), (1, 0));
}

/// Controls replace each other under a version: a stale writer is refused.
pub async fn controls(store: &dyn ControlStore) {
    let (empty, version) = store.controls().await.unwrap();
    assert_eq!((empty, version), (Controls::default(), 0));
    let paused = Controls {
        paused: Some(Pause {
            since: 5,
            by: "admin".into(),
            reason: Some("migration".into()),
        }),
        ..Controls::default()
    };
    let v1 = store.put_controls(&paused, 0).await.unwrap();
    assert!(matches!(
        store.put_controls(&Controls::default(), 0).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.controls().await.unwrap(), (paused.clone(), v1));
    let mut broken = paused;
    broken.paused = None;
    broken.broken_fields.push(BrokenField {
        pair: "contacts".into(),
        side: Side::Salesforce,
        object: "Contact".into(),
        field: "Title".into(),
        message: "No such column".into(),
        since: 6,
    });
    let v2 = store.put_controls(&broken, v1).await.unwrap();
    assert!(v2 > v1);
    assert!(matches!(
        store.put_controls(&Controls::default(), v1).await,
        Err(StoreError::Conflict(_))
    ));
    let (read, _) = store.controls().await.unwrap();
    assert!(read.is_broken(Side::Salesforce, "Contact", "title"));
    assert!(read.paused.is_none());
}

/// Counters add up per bucket, gauges keep the latest value, names keep any character.
pub async fn telemetry(store: &dyn TelemetryStore) {
    let t0 = 10 * BUCKET_MS + 5;
    let named = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    store
        .add(t0, &named(&[("synced", 2), ("failed", 1)]))
        .await
        .unwrap();
    store.add(t0 + 10, &named(&[("synced", 3)])).await.unwrap();
    store
        .add(t0 + BUCKET_MS, &named(&[("calls.salesforce", 7)]))
        .await
        .unwrap();
    store
        .gauge(t0, &named(&[("lag.salesforce:Lead", 900)]))
        .await
        .unwrap();
    store
        .gauge(t0 + 20, &named(&[("lag.salesforce:Lead", 400)]))
        .await
        .unwrap();
    let series = store.series(t0).await.unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].bucket, 10 * BUCKET_MS);
    assert_eq!(series[0].values.get("synced"), Some(&5));
    assert_eq!(series[0].values.get("failed"), Some(&1));
    assert_eq!(series[0].values.get("lag.salesforce:Lead"), Some(&400));
    assert_eq!(series[1].values.get("calls.salesforce"), Some(&7));
    assert_eq!(store.series(t0 + BUCKET_MS).await.unwrap().len(), 1);
    let gauges = store.gauges().await.unwrap();
    assert_eq!(gauges.get("lag.salesforce:Lead"), Some(&400));
}

use crate::domain::Side;
use crate::ports::{
    BUCKET_MS, BrokenField, ControlStore, Controls, Counts, DedupIndex, Outcome, Pause, RecordRef,
    StatusStore, SyncEvent, TelemetryStore,
};

fn event(id: &str, outcome: Outcome, code: Option<&str>, at: i64) -> SyncEvent {
    SyncEvent {
        record: RecordRef {
            side: "hubspot".into(),
            object: "contacts".into(),
            id: id.into(),
        },
        direction: "to_salesforce".into(),
        outcome,
        code: code.map(str::to_owned),
        message: code.map(|c| format!("{c} happened")),
        field: code.map(|_| "LastName".to_owned()),
        changes: Vec::new(),
        held_back: Vec::new(),
        linked: None,
        at,
    }
}

/// A record's status counts repeated failures, resets on success, is listable by
/// outcome and code; its history keeps every event until the TTL; counts add up.
pub async fn statuses(store: &dyn StatusStore) {
    let ttl = 1_000_000;
    let first = store
        .record(
            &event("1", Outcome::Failed, Some("REQUIRED_FIELD_MISSING"), 10),
            ttl,
        )
        .await
        .unwrap();
    assert_eq!((first.attempts, first.first_seen), (1, 10));
    let again = store
        .record(
            &event("1", Outcome::Failed, Some("REQUIRED_FIELD_MISSING"), 20),
            ttl,
        )
        .await
        .unwrap();
    assert_eq!((again.attempts, again.first_seen), (2, 10));
    store
        .record(
            &event("2", Outcome::Failed, Some("DUPLICATE_VALUE"), 30),
            ttl,
        )
        .await
        .unwrap();
    store
        .record(&event("3", Outcome::Skipped, Some("no_email"), 40), ttl)
        .await
        .unwrap();
    store
        .record(&event("4", Outcome::Synced, None, 50), ttl)
        .await
        .unwrap();

    let failing = store
        .by_outcome(Outcome::Failed, Some("REQUIRED_FIELD_MISSING"), 100)
        .await
        .unwrap();
    assert_eq!(
        failing
            .iter()
            .map(|s| s.last.record.id.as_str())
            .collect::<Vec<_>>(),
        vec!["1"]
    );
    assert_eq!(
        store
            .by_outcome(Outcome::Failed, None, 100)
            .await
            .unwrap()
            .len(),
        2
    );

    let fixed = store
        .record(&event("1", Outcome::Synced, None, 60), ttl)
        .await
        .unwrap();
    assert_eq!((fixed.attempts, fixed.first_seen), (1, 10));
    assert!(
        store
            .by_outcome(Outcome::Failed, Some("REQUIRED_FIELD_MISSING"), 100)
            .await
            .unwrap()
            .is_empty()
    );

    let record = RecordRef {
        side: "hubspot".into(),
        object: "contacts".into(),
        id: "1".into(),
    };
    let history = store.history(&record, 70).await.unwrap();
    assert_eq!(
        history.iter().map(|e| e.at).collect::<Vec<_>>(),
        vec![10, 20, 60]
    );
    assert_eq!(
        store.status(&record).await.unwrap().map(|s| s.last.outcome),
        Some(Outcome::Synced)
    );
    assert!(
        store.history(&record, 70 + ttl).await.unwrap().is_empty(),
        "history expires"
    );

    // A batch's events at once: each record's in the order given.
    store
        .record_all(
            &[
                event("5", Outcome::Failed, Some("DUPLICATE_VALUE"), 61),
                event("6", Outcome::Synced, None, 62),
                event("5", Outcome::Synced, None, 63),
            ],
            ttl,
        )
        .await
        .unwrap();
    let five = RecordRef {
        id: "5".into(),
        ..record.clone()
    };
    assert_eq!(
        store
            .history(&five, 70)
            .await
            .unwrap()
            .iter()
            .map(|e| e.at)
            .collect::<Vec<_>>(),
        vec![61, 63]
    );
    let five = store.status(&five).await.unwrap().unwrap();
    assert_eq!((five.last.outcome, five.first_seen), (Outcome::Synced, 61));
    store.record_all(&[], ttl).await.unwrap();

    let counts = store.counts().await.unwrap();
    assert_eq!(
        counts,
        vec![(
            "contacts".to_owned(),
            "to_salesforce".to_owned(),
            // Records by their last outcome: 1, 4, 5 and 6 synced, 3 skipped, 2
            // failing (1's two failures count once, and not at all since it synced).
            Counts {
                synced: 4,
                skipped: 1,
                failed: 1
            }
        )]
    );
    let mut codes = store.codes().await.unwrap();
    codes.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        codes,
        vec![
            (Outcome::Failed, "DUPLICATE_VALUE".to_owned(), 1),
            (Outcome::Skipped, "no_email".to_owned(), 1)
        ],
        "records by last outcome and code: 1's failures are gone with its success"
    );
}

/// Keys map to the records that hold them, on each side apart.
pub async fn dedup_index(index: &dyn DedupIndex) {
    index
        .put("salesforce", "domain", "acme.com", "001A")
        .await
        .unwrap();
    index
        .put("salesforce", "domain", "acme.com", "001B")
        .await
        .unwrap();
    index
        .put("salesforce", "domain", "acme.com", "001A")
        .await
        .unwrap();
    index
        .put("hubspot", "domain", "acme.com", "5001")
        .await
        .unwrap();
    assert_eq!(
        index
            .lookup("salesforce", "domain", "acme.com")
            .await
            .unwrap(),
        vec!["001A", "001B"]
    );
    assert_eq!(
        index.lookup("hubspot", "domain", "acme.com").await.unwrap(),
        vec!["5001"]
    );
    index
        .remove("salesforce", "domain", "acme.com", "001A")
        .await
        .unwrap();
    assert_eq!(
        index
            .lookup("salesforce", "domain", "acme.com")
            .await
            .unwrap(),
        vec!["001B"]
    );
    assert!(
        index
            .lookup("salesforce", "email", "acme.com")
            .await
            .unwrap()
            .is_empty()
    );
}
