//! The embedded store through every port's contract suite, plus what only a file
//! shows: queued work survives a restart, visibility runs on the injected clock, a
//! newer schema is refused.

use std::sync::Arc;

use crmsync_shared::adapters::sqlite::SqliteStore;
use crmsync_shared::contract;
use crmsync_shared::ports::{
    ClaimStore, CursorStore, LinkStore, ManualClock, Seen, WorkItem, WorkQueue,
};

fn store() -> SqliteStore {
    SqliteStore::in_memory(Arc::new(ManualClock::at(0)), 5).unwrap_or_else(|e| panic!("{e}"))
}

fn temp_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("crmsync-state-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    dir
}

#[tokio::test]
async fn links_contract() {
    contract::links(&store()).await;
}

#[tokio::test]
async fn links_race_contract() {
    let s: Arc<dyn LinkStore> = Arc::new(store());
    contract::links_race(s).await;
}

#[tokio::test]
async fn cursors_contract() {
    contract::cursors(&store()).await;
    let s: Arc<dyn CursorStore> = Arc::new(store());
    contract::cursors_race(s).await;
}

#[tokio::test]
async fn claims_contract() {
    contract::claims(&store()).await;
    let s: Arc<dyn ClaimStore> = Arc::new(store());
    contract::claims_race(s).await;
}

#[tokio::test]
async fn queue_contract() {
    contract::queue(&store(), 5).await;
}

fn item(id: &str) -> WorkItem {
    WorkItem {
        side: crmsync_shared::domain::Side::Salesforce,
        object: "Lead".into(),
        id: id.into(),
        origin: "outbound".into(),
        seen: None,
    }
}

#[tokio::test]
async fn queued_work_survives_a_restart_and_visibility_follows_the_clock() {
    let path = temp_file("queue.sqlite");
    let clock = ManualClock::at(0);
    {
        let s =
            SqliteStore::open(&path, Arc::new(clock.clone()), 5).unwrap_or_else(|e| panic!("{e}"));
        s.send(&[item("00Q1"), item("00Q2")])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got = s.receive(1, 30_000).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.len(), 1);
        // The process dies here, the first item neither acknowledged nor returned.
    }
    let s = SqliteStore::open(&path, Arc::new(clock.clone()), 5).unwrap_or_else(|e| panic!("{e}"));
    let now = s
        .receive(10, 30_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        now.iter().map(|d| d.item.id.as_str()).collect::<Vec<_>>(),
        vec!["00Q2"]
    );
    clock.advance(30_000);
    let later = s
        .receive(10, 30_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ids: Vec<&str> = later.iter().map(|d| d.item.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec!["00Q1", "00Q2"],
        "both come back once their visibility ends"
    );
    s.retry(&later[0], 5_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.ack(&later[1]).await.unwrap_or_else(|e| panic!("{e}"));
    clock.advance(5_000);
    assert_eq!(
        s.receive(10, 1_000)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        1
    );
    let _ = std::fs::remove_file(&path);
}

/// A backfill, a webhook and a poll naming one record while it waits queue it once;
/// once a worker holds it, a new change queues it again (the worker may have read it
/// before that change).
#[tokio::test]
async fn a_record_already_waiting_is_queued_once() {
    let clock = ManualClock::at(0);
    let s = SqliteStore::in_memory(Arc::new(clock.clone()), 5).unwrap_or_else(|e| panic!("{e}"));
    let ok =
        |r: Result<(), _>| r.unwrap_or_else(|e: crmsync_shared::ports::StoreError| panic!("{e}"));
    ok(s.send_later(&[item("00Q1")], 60_000).await);
    ok(s.send(&[item("00Q1"), item("00Q2"), item("00Q1")]).await);
    let depth = s.depth().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(depth.waiting, 2, "one item per record");
    // The later send made the parked reference visible now.
    let got = s
        .receive(10, 30_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ids: Vec<&str> = got.iter().map(|d| d.item.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec!["00Q1", "00Q2"]);
    ok(s.send(&[item("00Q1")]).await);
    let again = s
        .receive(10, 30_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.len(), 1, "a record in hand is queued again");
    assert_eq!(again[0].receives, 1);
    // A waiting item of another object or side with the same id is its own.
    let other = WorkItem {
        side: crmsync_shared::domain::Side::HubSpot,
        ..item("00Q1")
    };
    ok(s.send(&[other, item("00Q1")]).await);
    assert_eq!(s.depth().await.unwrap_or_else(|e| panic!("{e}")).waiting, 2);
}

/// A waiting reference serves every change queued for its record, and carries what each
/// change's source saw: the same once, two different ones both (the worker takes it as
/// an echo only if both are), and nothing when a change came without it (the worker
/// then reads the record).
#[tokio::test]
async fn a_coalesced_reference_carries_what_each_change_saw() {
    let s = store();
    let ok =
        |r: Result<(), _>| r.unwrap_or_else(|e: crmsync_shared::ports::StoreError| panic!("{e}"));
    let seen = |id: &str, value: &str| WorkItem {
        id: id.into(),
        seen: Some(Seen::Property {
            name: "phone".into(),
            value: value.into(),
            at: None,
        }),
        ..item("00Q1")
    };
    ok(s.send(&[seen("00Q1", "1"), seen("00Q1", "1")]).await);
    ok(s.send(&[seen("00Q2", "1")]).await);
    ok(s.send(&[seen("00Q2", "2")]).await);
    ok(s.send(&[seen("00Q3", "1"), item("00Q3")]).await);
    let mut got = s
        .receive(10, 30_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    got.sort_by(|a, b| a.item.id.cmp(&b.item.id));
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0].item.seen,
        seen("", "1").seen,
        "the same change twice"
    );
    let both = Seen::All {
        claims: vec![
            seen("", "1").seen.unwrap_or(Seen::Created),
            seen("", "2").seen.unwrap_or(Seen::Created),
        ],
    };
    assert_eq!(got[1].item.seen, Some(both), "two changes");
    assert_eq!(got[2].item.seen, None, "a change to read");
}

#[tokio::test]
async fn a_store_from_a_newer_crmsync_is_refused_not_damaged() {
    let path = temp_file("newer.sqlite");
    {
        let conn = rusqlite_connection(&path);
        conn.pragma_update(None, "user_version", 99)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let err = SqliteStore::open(&path, Arc::new(ManualClock::at(0)), 5).err();
    assert!(err.is_some_and(|e| e.to_string().contains("newer crmsync")));
    let _ = std::fs::remove_file(&path);
}

fn rusqlite_connection(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn statuses_and_dedup_contract() {
    contract::statuses(&store()).await;
    contract::dedup_index(&store()).await;
    contract::controls(&store()).await;
    contract::telemetry(&store()).await;
}

/// `crmsync resync` or `retry` runs as a second process on the file `crmsync run`
/// writes: its writes wait for the other's instead of failing with "database is
/// locked" (a transaction that reads first and writes later cannot wait once another
/// writer went between its read and its write).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_file_wait_for_each_other() {
    let path = temp_file("two.sqlite");
    let clock = Arc::new(ManualClock::at(0));
    let open = || SqliteStore::open(&path, clock.clone(), 5).unwrap_or_else(|e| panic!("{e}"));
    let (run, resync) = (open(), open());
    let mut tasks = Vec::new();
    for (n, s) in [run, resync].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let mine = format!("00Q{n}{i:05}");
                s.send(&[item(&mine), item("00Qshared")]).await?;
                for d in s.receive(2, 30_000).await? {
                    s.ack(&d).await?;
                }
            }
            Ok::<_, crmsync_shared::ports::StoreError>(())
        }));
    }
    for t in tasks {
        t.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let _ = std::fs::remove_file(&path);
}
