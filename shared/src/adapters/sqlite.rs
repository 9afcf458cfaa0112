//! The embedded store: every state port and the work queue in one SQLite file (WAL
//! mode), for running without AWS. The queue lives in the same file, so a crash loses
//! no queued work. The schema is versioned: a newer crmsync opens an older file and
//! migrates it forward.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::ports::{
    ClaimStore, Clock, ControlStore, Controls, Counts, Cursor, CursorStore, DedupIndex, Delivery,
    Link, LinkStore, Outcome, QueueDepth, RecordRef, RecordStatus, SeriesPoint, StatusStore,
    StoreError, SyncEvent, TelemetryStore, WorkItem, WorkQueue, bucket_of,
};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 7;

/// How long a released claim is remembered: longer than any batch runs.
const RELEASED_KEPT_MS: i64 = 3_600_000;

/// Statements that take a file from one version to the next; index 0 creates v1.
const MIGRATIONS: [&str; 7] = ["
    CREATE TABLE IF NOT EXISTS links (
        pair TEXT NOT NULL, hubspot_id TEXT NOT NULL,
        salesforce_object TEXT NOT NULL, salesforce_id TEXT NOT NULL,
        last_synced TEXT NOT NULL, synced_at INTEGER NOT NULL, version INTEGER NOT NULL,
        PRIMARY KEY (pair, hubspot_id));
    CREATE UNIQUE INDEX IF NOT EXISTS links_by_salesforce ON links (salesforce_object, salesforce_id);
    CREATE TABLE IF NOT EXISTS cursors (feed TEXT PRIMARY KEY, at INTEGER NOT NULL, last_id TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS events (key TEXT PRIMARY KEY, expires INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, visible_at INTEGER NOT NULL,
        receives INTEGER NOT NULL DEFAULT 0, receipt TEXT, dead INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX IF NOT EXISTS queue_ready ON queue (dead, visible_at);
", "
    CREATE TABLE IF NOT EXISTS status (
        side TEXT NOT NULL, object TEXT NOT NULL, id TEXT NOT NULL,
        outcome TEXT NOT NULL, code TEXT, last_seen INTEGER NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (side, object, id));
    CREATE INDEX IF NOT EXISTS status_by_outcome ON status (outcome, code, last_seen);
    CREATE TABLE IF NOT EXISTS history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, side TEXT NOT NULL, object TEXT NOT NULL, id TEXT NOT NULL,
        at INTEGER NOT NULL, expires INTEGER NOT NULL, data TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS history_by_record ON history (side, object, id, at);
    CREATE TABLE IF NOT EXISTS counts (
        object TEXT NOT NULL, direction TEXT NOT NULL,
        synced INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (object, direction));
    CREATE TABLE IF NOT EXISTS dedup (
        side TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, record_id TEXT NOT NULL,
        PRIMARY KEY (side, kind, key, record_id));
", "
    ALTER TABLE status ADD COLUMN direction TEXT NOT NULL DEFAULT '';
    UPDATE status SET direction = COALESCE(json_extract(data, '$.last.direction'), '');
    CREATE INDEX IF NOT EXISTS status_by_object ON status (object, direction, outcome);
    DROP TABLE IF EXISTS counts;
    CREATE TABLE IF NOT EXISTS controls (
        id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, data TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS series (
        bucket INTEGER NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
        PRIMARY KEY (bucket, name));
    CREATE TABLE IF NOT EXISTS gauges (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
", "
    CREATE INDEX IF NOT EXISTS claims_by_expiry ON claims (expires);
", "
    ALTER TABLE queue ADD COLUMN record TEXT;
    CREATE UNIQUE INDEX IF NOT EXISTS queue_waiting ON queue (record) WHERE receipt IS NULL AND dead = 0;
", "
    CREATE INDEX IF NOT EXISTS queue_worn ON queue (dead, receives);
", "
    ALTER TABLE links ADD COLUMN hubspot_read_at INTEGER;
"];

/// Items received too often go to the dead letters instead of out again: found by their
/// receives, not by reading the row of every item due (each row holds what its source
/// saw of the record: at an initial sync's 200,000 items, pages of them per receive).
const WORN_OUT: &str = "UPDATE queue SET dead = 1 WHERE id IN (
    SELECT id FROM queue INDEXED BY queue_worn WHERE dead = 0 AND receives >= ?2 AND visible_at <= ?1)";

/// The first `?2` items due at `?1`, in the order they came due, as the index holds them:
/// only those rows are read, not every item due sorted.
const RECEIVE: &str = "SELECT id, body, receives FROM queue INDEXED BY queue_ready
    WHERE dead = 0 AND visible_at <= ?1 ORDER BY visible_at, id LIMIT ?2";

/// Items live, in flight (hidden until later, with a receipt) and dead at `?1`, counted on
/// the index: only the items in flight are read, for their receipt.
const DEPTH: &str = "SELECT (SELECT COUNT(*) FROM queue WHERE dead = 0),
    (SELECT COUNT(*) FROM queue WHERE dead = 0 AND visible_at > ?1 AND receipt IS NOT NULL),
    (SELECT COUNT(*) FROM queue WHERE dead = 1)";

/// The default file of the embedded store.
pub const DEFAULT_PATH: &str = "crmsync.sqlite";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
    /// Receives after which a queued item goes to the dead letters.
    max_receives: u32,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// The queue row a receipt (`{id}:{receives}`) names: acks and retries find it by its
/// key (by the receipt alone, each read the whole queue: a second per thousand acks
/// with 30,000 references waiting).
fn queued_id(receipt: &str) -> Result<i64, StoreError> {
    receipt
        .split(':')
        .next()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("a receipt this store did not give: {receipt}")))
}

/// Statements through the connection's cache: parsing SQL anew for each of a
/// backfill's hundreds of thousands of small writes was a tenth of the process's CPU.
trait Cached {
    fn run<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn one<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn run<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn one<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Distinct statements the store runs, with room: each keeps its cached plan.
const STATEMENT_CACHE: usize = 96;

/// A transaction that holds the write lock from its start. One that reads first and
/// writes later cannot wait for the lock once another process (`crmsync resync` beside
/// `crmsync run`) wrote between its read and its write: SQLite answers "database is
/// locked" at once, past the busy timeout.
fn writing(c: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(unavailable)
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl SqliteStore {
    /// Opens (creating or migrating) the store at `path`.
    pub fn open(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
        max_receives: u32,
    ) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        Self::init(conn, clock, max_receives)
    }

    /// A store that lives in memory (tests).
    pub fn in_memory(clock: Arc<dyn Clock>, max_receives: u32) -> Result<Self, StoreError> {
        Self::init(
            Connection::open_in_memory().map_err(unavailable)?,
            clock,
            max_receives,
        )
    }

    fn init(
        mut conn: Connection,
        clock: Arc<dyn Clock>,
        max_receives: u32,
    ) -> Result<Self, StoreError> {
        // First, so that opening waits for another process's write too.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // In memory there is no WAL; the pragma answers "memory" and that is fine.
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
            .map_err(unavailable)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(unavailable)?;
        // Migrated under the write lock: two processes opening an older file at once
        // migrate it once.
        let tx = writing(&mut conn)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(unavailable)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt(format!(
                "the store was written by a newer crmsync (schema {version}; this one knows {SCHEMA_VERSION})"
            )));
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(migration).map_err(unavailable)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            clock,
            max_receives,
        })
    }

    /// `write` of each link (given its last-synced values as stored) with one
    /// statement (`sql`), in one transaction; each answered in order, or each with the
    /// transaction's failure.
    async fn each_link(
        &self,
        links: &[Link],
        sql: String,
        write: fn(&mut rusqlite::CachedStatement<'_>, Link, String) -> Result<Link, StoreError>,
    ) -> Vec<Result<Link, StoreError>> {
        let links = links.to_vec();
        let n = links.len();
        let done = self
            .with(move |c| {
                let tx = writing(c)?;
                let mut answers = Vec::with_capacity(links.len());
                {
                    let mut statement = tx.prepare_cached(&sql).map_err(unavailable)?;
                    for link in links {
                        let answer = serde_json::to_string(&link.last_synced)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))
                            .and_then(|last| write(&mut statement, link, last));
                        answers.push(answer);
                    }
                }
                tx.commit().map_err(unavailable)?;
                Ok(answers)
            })
            .await;
        match done {
            Ok(answers) => answers,
            Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
        }
    }

    /// Runs `f` on the connection off the async threads.
    /// After a restart of the one process that owns this file: items its workers had in
    /// hand go back to the queue at once, and their claims on dedup keys are dropped
    /// (the retry re-claims them), instead of both waiting out their timeouts.
    pub async fn recover_after_restart(&self) -> Result<(usize, usize), StoreError> {
        self.with(|c| {
            let items = c
                .run(
                    "UPDATE queue SET visible_at = 0 WHERE dead = 0 AND receives > 0",
                    [],
                )
                .map_err(unavailable)?;
            let claims = c
                .run("DELETE FROM claims WHERE key NOT LIKE 'event:%'", [])
                .map_err(unavailable)?;
            Ok((items, claims))
        })
        .await
    }

    /// Queued items not yet acknowledged (waiting or being worked on), dead letters
    /// aside: zero means the local pipeline has nothing left to do.
    pub async fn queued(&self) -> Result<usize, StoreError> {
        self.with(|c| {
            c.one("SELECT COUNT(*) FROM queue WHERE dead = 0", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as usize)
            .map_err(unavailable)
        })
        .await
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(unavailable)?
    }
}

fn link_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LinkRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

/// A link's columns as read, in [`LINK_COLUMNS`] order.
type LinkRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
);

fn to_link(r: LinkRow) -> Result<Link, StoreError> {
    let last_synced = serde_json::from_str(&r.4).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Link {
        pair: r.0,
        hubspot_id: r.1,
        salesforce_object: r.2,
        salesforce_id: r.3,
        last_synced,
        synced_at: r.5,
        hubspot_read_at: r.7,
        version: r.6 as u64,
    })
}

/// The links `WHERE {column} IN ids` (`column` is `<first> = ?1 AND <id column>`, the
/// first bound to `first`), in the order of `ids`; `id_of` says which id a link has.
fn links_where(
    c: &mut Connection,
    column: &str,
    first: &str,
    ids: &[String],
    id_of: fn(&Link) -> &String,
) -> Result<Vec<Option<Link>>, StoreError> {
    let mut found: HashMap<String, Link> = HashMap::new();
    // Under SQLite's 999 bound parameters of older builds.
    for chunk in ids.chunks(900) {
        let marks: Vec<String> = (0..chunk.len()).map(|n| format!("?{}", n + 2)).collect();
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE {column} IN ({})",
            marks.join(", ")
        );
        let mut statement = c.prepare_cached(&sql).map_err(unavailable)?;
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&first];
        values.extend(chunk.iter().map(|id| id as &dyn rusqlite::ToSql));
        let rows = statement
            .query_map(values.as_slice(), link_from_row)
            .map_err(unavailable)?;
        for row in rows {
            let link = to_link(row.map_err(unavailable)?)?;
            found.insert(id_of(&link).clone(), link);
        }
    }
    Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
}

const LINK_COLUMNS: &str = "pair, hubspot_id, salesforce_object, salesforce_id, last_synced, synced_at, version, hubspot_read_at";

#[async_trait]
impl LinkStore for SqliteStore {
    async fn by_hubspot(&self, pair: &str, hubspot_id: &str) -> Result<Option<Link>, StoreError> {
        let (pair, id) = (pair.to_owned(), hubspot_id.to_owned());
        self.with(move |c| {
            c.one(
                &format!("SELECT {LINK_COLUMNS} FROM links WHERE pair = ?1 AND hubspot_id = ?2"),
                params![pair, id],
                link_from_row,
            )
            .optional()
            .map_err(unavailable)?
            .map(to_link)
            .transpose()
        })
        .await
    }

    async fn by_salesforce(
        &self,
        salesforce_object: &str,
        salesforce_id: &str,
    ) -> Result<Option<Link>, StoreError> {
        let (object, id) = (salesforce_object.to_owned(), salesforce_id.to_owned());
        self.with(move |c| {
            c.one(
                &format!("SELECT {LINK_COLUMNS} FROM links WHERE salesforce_object = ?1 AND salesforce_id = ?2"),
                params![object, id],
                link_from_row,
            )
            .optional()
            .map_err(unavailable)?
            .map(to_link)
            .transpose()
        })
        .await
    }

    async fn by_hubspot_ids(
        &self,
        pair: &str,
        hubspot_ids: &[String],
    ) -> Result<Vec<Option<Link>>, StoreError> {
        let (pair, ids) = (pair.to_owned(), hubspot_ids.to_vec());
        self.with(move |c| {
            links_where(c, "pair = ?1 AND hubspot_id", &pair, &ids, |l| {
                &l.hubspot_id
            })
        })
        .await
    }

    async fn by_salesforce_ids(
        &self,
        salesforce_object: &str,
        salesforce_ids: &[String],
    ) -> Result<Vec<Option<Link>>, StoreError> {
        let (object, ids) = (salesforce_object.to_owned(), salesforce_ids.to_vec());
        self.with(move |c| {
            links_where(
                c,
                "salesforce_object = ?1 AND salesforce_id",
                &object,
                &ids,
                |l| &l.salesforce_id,
            )
        })
        .await
    }

    async fn create(&self, link: &Link) -> Result<Link, StoreError> {
        let mut created = self.create_all(std::slice::from_ref(link)).await;
        created
            .pop()
            .unwrap_or_else(|| Err(unavailable("no answer for the link")))
    }

    async fn update(&self, link: &Link) -> Result<Link, StoreError> {
        let mut updated = self.update_all(std::slice::from_ref(link)).await;
        updated
            .pop()
            .unwrap_or_else(|| Err(unavailable("no answer for the link")))
    }

    /// One transaction for the batch (a commit per link was most of an initial sync's
    /// store time, and the store's lock is shared by every worker). A refused insert
    /// undoes only itself.
    async fn create_all(&self, links: &[Link]) -> Vec<Result<Link, StoreError>> {
        let sql =
            format!("INSERT INTO links ({LINK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7)");
        self.each_link(links, sql, |insert, link, last| {
            insert
                .execute(params![
                    link.pair,
                    link.hubspot_id,
                    link.salesforce_object,
                    link.salesforce_id,
                    last,
                    link.synced_at,
                    link.hubspot_read_at
                ])
                .map_err(|e| {
                    if is_constraint(&e) {
                        StoreError::Conflict("one side is already linked".into())
                    } else {
                        unavailable(e)
                    }
                })?;
            Ok(Link { version: 1, ..link })
        })
        .await
    }

    async fn update_all(&self, links: &[Link]) -> Vec<Result<Link, StoreError>> {
        let sql = "UPDATE links SET last_synced = ?1, synced_at = ?2, hubspot_read_at = ?6, version = version + 1 WHERE pair = ?3 AND hubspot_id = ?4 AND version = ?5";
        self.each_link(links, sql.into(), |update, link, last| {
            let changed = update
                .execute(params![
                    last,
                    link.synced_at,
                    link.pair,
                    link.hubspot_id,
                    link.version as i64,
                    link.hubspot_read_at
                ])
                .map_err(unavailable)?;
            if changed == 0 {
                return Err(StoreError::Conflict(format!(
                    "link {}:{} changed since version {}",
                    link.pair, link.hubspot_id, link.version
                )));
            }
            Ok(Link {
                version: link.version + 1,
                ..link
            })
        })
        .await
    }

    async fn relink(
        &self,
        link: &Link,
        hubspot_id: &str,
        salesforce_object: &str,
        salesforce_id: &str,
    ) -> Result<Link, StoreError> {
        let old = link.clone();
        let (hs, so, si) = (
            hubspot_id.to_owned(),
            salesforce_object.to_owned(),
            salesforce_id.to_owned(),
        );
        self.with(move |c| {
            let tx = writing(c)?;
            let changed = tx
                .run(
                    "UPDATE links SET hubspot_id = ?1, salesforce_object = ?2, salesforce_id = ?3, version = version + 1 WHERE pair = ?4 AND hubspot_id = ?5 AND version = ?6",
                    params![hs, so, si, old.pair, old.hubspot_id, old.version as i64],
                )
                .map_err(|e| if is_constraint(&e) { StoreError::Conflict(format!("HubSpot {hs} or Salesforce {so} {si} is already linked in another pair of {}", old.pair)) } else { unavailable(e) })?;
            if changed == 0 {
                return Err(StoreError::Conflict(format!("link {}:{} changed since version {}", old.pair, old.hubspot_id, old.version)));
            }
            tx.commit().map_err(unavailable)
        })
        .await?;
        Ok(Link {
            hubspot_id: hubspot_id.to_owned(),
            salesforce_object: salesforce_object.to_owned(),
            salesforce_id: salesforce_id.to_owned(),
            version: link.version + 1,
            ..link.clone()
        })
    }

    async fn remove(&self, link: &Link) -> Result<(), StoreError> {
        let (pair, id) = (link.pair.clone(), link.hubspot_id.clone());
        self.with(move |c| {
            c.run(
                "DELETE FROM links WHERE pair = ?1 AND hubspot_id = ?2",
                params![pair, id],
            )
            .map_err(unavailable)
            .map(|_| ())
        })
        .await
    }
}

#[async_trait]
impl CursorStore for SqliteStore {
    async fn cursor(&self, feed: &str) -> Result<Option<Cursor>, StoreError> {
        let feed = feed.to_owned();
        self.with(move |c| {
            c.one(
                "SELECT at, last_id FROM cursors WHERE feed = ?1",
                params![feed],
                |r| {
                    Ok(Cursor {
                        at: r.get(0)?,
                        last_id: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn advance(
        &self,
        feed: &str,
        from: Option<&Cursor>,
        to: &Cursor,
    ) -> Result<(), StoreError> {
        if from.is_some_and(|f| to <= f) {
            return Err(StoreError::Conflict("a cursor only moves forward".into()));
        }
        let (feed, from, to) = (feed.to_owned(), from.cloned(), to.clone());
        let changed = self
            .with(move |c| {
                match &from {
                    None => c.run(
                        "INSERT INTO cursors (feed, at, last_id) VALUES (?1, ?2, ?3) ON CONFLICT (feed) DO NOTHING",
                        params![feed, to.at, to.last_id],
                    ),
                    Some(f) => c.run(
                        "UPDATE cursors SET at = ?1, last_id = ?2 WHERE feed = ?3 AND at = ?4 AND last_id = ?5",
                        params![to.at, to.last_id, feed, f.at, f.last_id],
                    ),
                }
                .map_err(unavailable)
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::Conflict(
                "the cursor moved since it was read".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl ClaimStore for SqliteStore {
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let taken = self
            .claim_all(&[key.to_owned()], owner, ttl_ms, now)
            .await?;
        Ok(taken.first().copied().unwrap_or(false))
    }

    async fn release(&self, key: &str, owner: &str, now: i64) -> Result<(), StoreError> {
        self.release_all(&[key.to_owned()], owner, now).await
    }

    /// One transaction for all of them (a commit per key was a webhook delivery's
    /// store time, and the store's lock is shared by every worker).
    async fn claim_all(
        &self,
        keys: &[String],
        owner: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let (keys, owner) = (keys.to_vec(), owner.to_owned());
        self.with(move |c| {
            let tx = writing(c)?;
            let mut taken = Vec::with_capacity(keys.len());
            {
                let mut claim = tx
                    .prepare_cached(
                        "INSERT INTO claims (key, owner, expires) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
                         WHERE claims.expires <= ?4 OR claims.owner = excluded.owner",
                    )
                    .map_err(unavailable)?;
                for key in &keys {
                    let changed = claim
                        .execute(params![key, owner, now + ttl_ms, now])
                        .map_err(unavailable)?;
                    taken.push(changed > 0);
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(taken)
        })
        .await
    }

    async fn release_all(&self, keys: &[String], owner: &str, now: i64) -> Result<(), StoreError> {
        let (keys, owner) = (keys.to_vec(), owner.to_owned());
        self.with(move |c| {
            let tx = writing(c)?;
            {
                // Kept until just after now: a claim made under the same or an earlier
                // time is still refused (a batch that began in the release's millisecond
                // may have read before the holder wrote).
                let mut release = tx
                    .prepare_cached("UPDATE claims SET expires = ?3 WHERE key = ?1 AND owner = ?2")
                    .map_err(unavailable)?;
                for key in &keys {
                    release
                        .execute(params![key, owner, now + 1])
                        .map_err(unavailable)?;
                }
            }
            tx.execute(
                "DELETE FROM claims WHERE expires < ?1",
                params![now - RELEASED_KEPT_MS],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn first_sight(
        &self,
        event_key: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let seen = self
            .first_sights(&[event_key.to_owned()], ttl_ms, now)
            .await?;
        Ok(seen.first().copied().unwrap_or(false))
    }

    /// One transaction for the whole page (a commit per key was most of a 100,000
    /// record listing's store time).
    async fn first_sights(
        &self,
        event_keys: &[String],
        ttl_ms: i64,
        now: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let keys = event_keys.to_vec();
        self.with(move |c| {
            let tx = writing(c)?;
            let mut seen = Vec::with_capacity(keys.len());
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO events (key, expires) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE events.expires <= ?3",
                    )
                    .map_err(unavailable)?;
                for key in &keys {
                    let changed = insert
                        .execute(params![key, now + ttl_ms, now])
                        .map_err(unavailable)?;
                    seen.push(changed > 0);
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(seen)
        })
        .await
    }
}

#[async_trait]
impl WorkQueue for SqliteStore {
    async fn send(&self, items: &[WorkItem]) -> Result<(), StoreError> {
        self.send_later(items, 0).await
    }

    /// A record already waiting (never received) is not queued twice: the waiting
    /// item stays where it is, visible at the earlier of the two times. The worker
    /// reads the record when it syncs, so one reference serves every change before it,
    /// and carries what each change's source saw of it (`Seen::merge`).
    async fn send_later(&self, items: &[WorkItem], delay_ms: i64) -> Result<(), StoreError> {
        let rows = items
            .iter()
            .map(|i| {
                let record = format!("{}|{}|{}", i.side.as_str(), i.object, i.id);
                serde_json::to_string(i).map(|body| (record, i.clone(), body))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let at = self.clock.now_ms() + delay_ms.clamp(0, crate::ports::MAX_SEND_DELAY_MS);
        self.with(move |c| {
            let tx = writing(c)?;
            for (record, item, body) in rows {
                let waiting: Option<String> = tx
                    .one(
                        "SELECT body FROM queue WHERE record = ?1 AND receipt IS NULL AND dead = 0",
                        params![record],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(unavailable)?;
                let body = match waiting {
                    None => body,
                    Some(w) if w == body => body,
                    Some(w) => {
                        let waiting: WorkItem = serde_json::from_str(&w)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        let merged = WorkItem {
                            seen: crate::ports::Seen::merge(waiting.seen.clone(), item.seen),
                            ..waiting
                        };
                        serde_json::to_string(&merged)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?
                    }
                };
                tx.run(
                    "INSERT INTO queue (record, body, visible_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (record) WHERE receipt IS NULL AND dead = 0
                     DO UPDATE SET visible_at = MIN(visible_at, excluded.visible_at),
                       body = excluded.body",
                    params![record, body, at],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn depth(&self) -> Result<QueueDepth, StoreError> {
        let now = self.clock.now_ms();
        self.with(move |c| {
            c.one(DEPTH, params![now], |r| {
                let (live, in_flight) = (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?);
                Ok(QueueDepth {
                    waiting: (live - in_flight) as u64,
                    in_flight: in_flight as u64,
                    dead: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(unavailable)
        })
        .await
    }

    async fn receive(&self, max: usize, visibility_ms: i64) -> Result<Vec<Delivery>, StoreError> {
        let now = self.clock.now_ms();
        let max_receives = self.max_receives;
        self.with(move |c| {
            let tx = writing(c)?;
            // Items received too often go to the dead letters instead of out again.
            tx.run(WORN_OUT, params![now, max_receives])
            .map_err(unavailable)?;
            let rows: Vec<(i64, String, i64)> = {
                let mut stmt = tx
                    .prepare(RECEIVE)
                    .map_err(unavailable)?;
                stmt.query_map(params![now, max as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(unavailable)?
                    .collect::<Result<_, _>>()
                    .map_err(unavailable)?
            };
            let mut out = Vec::with_capacity(rows.len());
            for (id, body, receives) in rows {
                let receipt = format!("{id}:{}", receives + 1);
                tx.run(
                    "UPDATE queue SET visible_at = ?1, receives = receives + 1, receipt = ?2 WHERE id = ?3",
                    params![now + visibility_ms, receipt, id],
                )
                .map_err(unavailable)?;
                let item = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push(Delivery { receipt, item, receives: (receives + 1) as u32 });
            }
            tx.commit().map_err(unavailable)?;
            Ok(out)
        })
        .await
    }

    async fn max_receives(&self) -> Result<Option<u32>, StoreError> {
        Ok(Some(self.max_receives))
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let receipt = delivery.receipt.clone();
        let id = queued_id(&receipt)?;
        self.with(move |c| {
            c.run(
                "DELETE FROM queue WHERE id = ?1 AND receipt = ?2",
                params![id, receipt],
            )
            .map_err(unavailable)
            .map(|_| ())
        })
        .await
    }

    async fn ack_all(&self, deliveries: &[&Delivery]) -> Result<(), StoreError> {
        let done: Vec<(i64, String)> = deliveries
            .iter()
            .map(|d| Ok((queued_id(&d.receipt)?, d.receipt.clone())))
            .collect::<Result<_, StoreError>>()?;
        self.with(move |c| {
            let tx = writing(c)?;
            {
                let mut delete = tx
                    .prepare_cached("DELETE FROM queue WHERE id = ?1 AND receipt = ?2")
                    .map_err(unavailable)?;
                for (id, receipt) in &done {
                    delete.execute(params![id, receipt]).map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn retry(&self, delivery: &Delivery, delay_ms: i64) -> Result<(), StoreError> {
        let receipt = delivery.receipt.clone();
        let id = queued_id(&receipt)?;
        let at = self.clock.now_ms() + delay_ms;
        self.with(move |c| {
            c.run(
                "UPDATE queue SET visible_at = ?1 WHERE id = ?2 AND receipt = ?3",
                params![at, id, receipt],
            )
            .map_err(unavailable)
            .map(|_| ())
        })
        .await
    }

    async fn dead_letters(&self) -> Result<Vec<WorkItem>, StoreError> {
        let now = self.clock.now_ms();
        let max_receives = self.max_receives;
        self.with(move |c| {
            c.run(WORN_OUT, params![now, max_receives])
                .map_err(unavailable)?;
            let mut stmt = c
                .prepare("SELECT body FROM queue WHERE dead = 1 ORDER BY id")
                .map_err(unavailable)?;
            let bodies: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .map_err(unavailable)?
                .collect::<Result<_, _>>()
                .map_err(unavailable)?;
            bodies
                .iter()
                .map(|b| serde_json::from_str(b).map_err(|e| StoreError::Corrupt(e.to_string())))
                .collect()
        })
        .await
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A record's stored status.
fn status_in(c: &Connection, r: &RecordRef) -> Result<Option<RecordStatus>, StoreError> {
    let data: Option<String> = c
        .one(
            "SELECT data FROM status WHERE side = ?1 AND object = ?2 AND id = ?3",
            params![r.side, r.object, r.id],
            |row| row.get(0),
        )
        .optional()
        .map_err(unavailable)?;
    data.map(|d| serde_json::from_str(&d).map_err(corrupt))
        .transpose()
}

/// A record's status after `event`, and the event in its history, within `tx`.
fn record_in(
    tx: &rusqlite::Transaction<'_>,
    event: &SyncEvent,
    history_ttl_ms: i64,
) -> Result<RecordStatus, StoreError> {
    let r = &event.record;
    let previous = status_in(tx, r)?;
    let status = RecordStatus::after(previous, event);
    let data = serde_json::to_string(&status).map_err(corrupt)?;
    tx.run(
        "INSERT INTO status (side, object, id, outcome, code, last_seen, data, direction) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (side, object, id) DO UPDATE SET outcome = excluded.outcome, code = excluded.code,
         last_seen = excluded.last_seen, data = excluded.data, direction = excluded.direction",
        params![r.side, r.object, r.id, event.outcome.as_str(), event.code, event.at, data, event.direction],
    )
    .map_err(unavailable)?;
    let history = serde_json::to_string(event).map_err(corrupt)?;
    tx.run(
        "INSERT INTO history (side, object, id, at, expires, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            r.side,
            r.object,
            r.id,
            event.at,
            event.at + history_ttl_ms,
            history
        ],
    )
    .map_err(unavailable)?;
    Ok(status)
}

#[async_trait]
impl StatusStore for SqliteStore {
    async fn record(
        &self,
        event: &SyncEvent,
        history_ttl_ms: i64,
    ) -> Result<RecordStatus, StoreError> {
        let event = event.clone();
        self.with(move |c| {
            let tx = writing(c)?;
            let status = record_in(&tx, &event, history_ttl_ms)?;
            tx.commit().map_err(unavailable)?;
            Ok(status)
        })
        .await
    }

    /// One transaction for the batch's events.
    async fn record_all(
        &self,
        events: &[SyncEvent],
        history_ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let events = events.to_vec();
        self.with(move |c| {
            let tx = writing(c)?;
            for event in &events {
                record_in(&tx, event, history_ttl_ms)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn status(&self, record: &RecordRef) -> Result<Option<RecordStatus>, StoreError> {
        let r = record.clone();
        self.with(move |c| status_in(c, &r)).await
    }

    async fn history(&self, record: &RecordRef, now: i64) -> Result<Vec<SyncEvent>, StoreError> {
        let r = record.clone();
        self.with(move |c| {
            c.run("DELETE FROM history WHERE expires <= ?1", params![now]).map_err(unavailable)?;
            let mut stmt = c
                .prepare("SELECT data FROM history WHERE side = ?1 AND object = ?2 AND id = ?3 ORDER BY at, seq")
                .map_err(unavailable)?;
            let rows: Vec<String> = stmt
                .query_map(params![r.side, r.object, r.id], |row| row.get(0))
                .map_err(unavailable)?
                .collect::<Result<_, _>>()
                .map_err(unavailable)?;
            rows.iter().map(|d| serde_json::from_str(d).map_err(corrupt)).collect()
        })
        .await
    }

    async fn by_outcome(
        &self,
        outcome: Outcome,
        code: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RecordStatus>, StoreError> {
        let code = code.map(str::to_owned);
        self.with(move |c| {
            let mut stmt = c
                .prepare("SELECT data FROM status WHERE outcome = ?1 AND (?2 IS NULL OR code = ?2) ORDER BY last_seen LIMIT ?3")
                .map_err(unavailable)?;
            let rows: Vec<String> = stmt
                .query_map(params![outcome.as_str(), code, limit as i64], |row| row.get(0))
                .map_err(unavailable)?
                .collect::<Result<_, _>>()
                .map_err(unavailable)?;
            rows.iter().map(|d| serde_json::from_str(d).map_err(corrupt)).collect()
        })
        .await
    }

    async fn counts(&self) -> Result<Vec<(String, String, Counts)>, StoreError> {
        self.with(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT object, direction, SUM(outcome = 'synced'), SUM(outcome = 'skipped'), SUM(outcome = 'failed')
                     FROM status GROUP BY object, direction ORDER BY object, direction",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        Counts {
                            synced: row.get::<_, i64>(2)? as u64,
                            skipped: row.get::<_, i64>(3)? as u64,
                            failed: row.get::<_, i64>(4)? as u64,
                        },
                    ))
                })
                .map_err(unavailable)?
                .collect::<Result<_, _>>()
                .map_err(unavailable)?;
            Ok(rows)
        })
        .await
    }

    async fn codes(&self) -> Result<Vec<(Outcome, String, u64)>, StoreError> {
        self.with(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT outcome, code, COUNT(*) FROM status WHERE code IS NOT NULL
                     GROUP BY outcome, code ORDER BY outcome, code",
                )
                .map_err(unavailable)?;
            let rows: Vec<(String, String, i64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(unavailable)?
                .collect::<Result<_, _>>()
                .map_err(unavailable)?;
            Ok(rows
                .into_iter()
                .filter_map(|(o, code, n)| Some((Outcome::from_name(&o)?, code, n as u64)))
                .collect())
        })
        .await
    }
}

#[async_trait]
impl ControlStore for SqliteStore {
    async fn controls(&self) -> Result<(Controls, u64), StoreError> {
        self.with(|c| {
            let row: Option<(i64, String)> = c
                .one("SELECT version, data FROM controls WHERE id = 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(unavailable)?;
            match row {
                None => Ok((Controls::default(), 0)),
                Some((version, data)) => Ok((
                    serde_json::from_str(&data).map_err(corrupt)?,
                    version as u64,
                )),
            }
        })
        .await
    }

    async fn put_controls(&self, controls: &Controls, version: u64) -> Result<u64, StoreError> {
        let data = serde_json::to_string(controls).map_err(corrupt)?;
        let (from, to) = (version as i64, version as i64 + 1);
        self.with(move |c| {
            let changed = if from == 0 {
                c.run(
                    "INSERT INTO controls (id, version, data) VALUES (1, ?1, ?2) ON CONFLICT (id) DO NOTHING",
                    params![to, data],
                )
            } else {
                c.run(
                    "UPDATE controls SET version = ?1, data = ?2 WHERE id = 1 AND version = ?3",
                    params![to, data, from],
                )
            }
            .map_err(unavailable)?;
            if changed == 0 {
                return Err(StoreError::Conflict("the controls changed meanwhile".into()));
            }
            Ok(to as u64)
        })
        .await
    }
}

impl SqliteStore {
    /// Writes values into the bucket of `at`: summed (`add`) or replaced, and then
    /// also as gauges (the latest value of each name).
    async fn write_series(
        &self,
        at: i64,
        values: &[(String, i64)],
        add: bool,
    ) -> Result<(), StoreError> {
        let values = values.to_vec();
        let bucket = bucket_of(at);
        let upsert = if add {
            "INSERT INTO series (bucket, name, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (bucket, name) DO UPDATE SET value = value + excluded.value"
        } else {
            "INSERT INTO series (bucket, name, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (bucket, name) DO UPDATE SET value = excluded.value"
        };
        self.with(move |c| {
            let tx = writing(c)?;
            for (name, value) in values {
                tx.run(upsert, params![bucket, name, value])
                    .map_err(unavailable)?;
                if !add {
                    tx.run(
                        "INSERT INTO gauges (name, value) VALUES (?1, ?2)
                         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                        params![name, value],
                    )
                    .map_err(unavailable)?;
                }
            }
            tx.run(
                "DELETE FROM series WHERE bucket < ?1",
                params![bucket - crate::ports::ops::SERIES_TTL_MS],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl TelemetryStore for SqliteStore {
    async fn add(&self, at: i64, values: &[(String, i64)]) -> Result<(), StoreError> {
        self.write_series(at, values, true).await
    }

    async fn gauge(&self, at: i64, values: &[(String, i64)]) -> Result<(), StoreError> {
        self.write_series(at, values, false).await
    }

    async fn series(&self, since: i64) -> Result<Vec<SeriesPoint>, StoreError> {
        self.with(move |c| {
            let mut stmt = c
                .prepare("SELECT bucket, name, value FROM series WHERE bucket >= ?1 ORDER BY bucket, name")
                .map_err(unavailable)?;
            let rows: Vec<(i64, String, i64)> = stmt
                .query_map(params![bucket_of(since)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(unavailable)?
                .collect::<Result<_, _>>()
                .map_err(unavailable)?;
            let mut out: Vec<SeriesPoint> = Vec::new();
            for (bucket, name, value) in rows {
                if out.last().is_none_or(|p| p.bucket != bucket) {
                    out.push(SeriesPoint { bucket, ..SeriesPoint::default() });
                }
                if let Some(p) = out.last_mut() {
                    p.values.insert(name, value);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn gauges(&self) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        self.with(|c| {
            let mut stmt = c
                .prepare("SELECT name, value FROM gauges")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(unavailable)?
                .collect::<Result<_, _>>()
                .map_err(unavailable)?;
            Ok(rows)
        })
        .await
    }
}

#[async_trait]
impl DedupIndex for SqliteStore {
    async fn put(
        &self,
        side: &str,
        kind: &str,
        key: &str,
        record_id: &str,
    ) -> Result<(), StoreError> {
        let (side, kind, key, id) = (
            side.to_owned(),
            kind.to_owned(),
            key.to_owned(),
            record_id.to_owned(),
        );
        self.with(move |c| {
            c.run(
                "INSERT OR IGNORE INTO dedup (side, kind, key, record_id) VALUES (?1, ?2, ?3, ?4)",
                params![side, kind, key, id],
            )
            .map_err(unavailable)
            .map(|_| ())
        })
        .await
    }

    async fn lookup(&self, side: &str, kind: &str, key: &str) -> Result<Vec<String>, StoreError> {
        let (side, kind, key) = (side.to_owned(), kind.to_owned(), key.to_owned());
        self.with(move |c| {
            let mut stmt = c
                .prepare("SELECT record_id FROM dedup WHERE side = ?1 AND kind = ?2 AND key = ?3 ORDER BY record_id")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![side, kind, key], |row| row.get(0))
                .map_err(unavailable)?
                .collect::<Result<_, _>>()
                .map_err(unavailable)?;
            Ok(rows)
        })
        .await
    }

    async fn remove(
        &self,
        side: &str,
        kind: &str,
        key: &str,
        record_id: &str,
    ) -> Result<(), StoreError> {
        let (side, kind, key, id) = (
            side.to_owned(),
            kind.to_owned(),
            key.to_owned(),
            record_id.to_owned(),
        );
        self.with(move |c| {
            c.run(
                "DELETE FROM dedup WHERE side = ?1 AND kind = ?2 AND key = ?3 AND record_id = ?4",
                params![side, kind, key, id],
            )
            .map_err(unavailable)
            .map(|_| ())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ManualClock;

    /// A receive, the dead letters' sweep and the depth read the queue's indexes, never
    /// every row, nor sort what is due: a row holds what its source saw of the record,
    /// and an initial sync queues 200,000 of them (the scale bench's workers waited on
    /// the store, receive after receive).
    #[tokio::test]
    async fn the_queue_is_read_by_its_indexes() {
        let path = std::env::temp_dir().join(format!("crmsync-plan-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let _store = SqliteStore::open(&path, Arc::new(ManualClock::at(0)), 5)
            .unwrap_or_else(|e| panic!("{e}"));
        let conn = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        // Each with the index that bounds what it reads: the items due, in order; the
        // items received too often; the index alone, to count.
        for (query, index) in [
            (RECEIVE, "INDEX queue_ready"),
            (WORN_OUT, "INDEX queue_worn"),
            (DEPTH, "COVERING INDEX"),
        ] {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
                .unwrap_or_else(|e| panic!("{e}"));
            let arity = stmt.parameter_count();
            let args = [0_i64, 1];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(&args[..arity]), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap_or_else(|e| panic!("{e}"))
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{e}"));
            for step in &plan {
                assert!(
                    !step.contains("TEMP B-TREE") && step != "SCAN queue",
                    "{query}: {plan:?}"
                );
            }
            assert!(plan.iter().any(|s| s.contains(index)), "{query}: {plan:?}");
        }
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn an_older_file_is_migrated_forward_and_keeps_its_data() {
        let path = std::env::temp_dir().join(format!("crmsync-v1-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        {
            let conn = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
            conn.execute_batch(MIGRATIONS[0])
                .unwrap_or_else(|e| panic!("{e}"));
            conn.pragma_update(None, "user_version", 1)
                .unwrap_or_else(|e| panic!("{e}"));
            conn.run(
                "INSERT INTO cursors (feed, at, last_id) VALUES ('hubspot:contacts', 42, 'x')",
                [],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let store = SqliteStore::open(&path, Arc::new(ManualClock::at(0)), 5)
            .unwrap_or_else(|e| panic!("{e}"));
        let cursor = store
            .cursor("hubspot:contacts")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cursor.map(|c| c.at), Some(42));
        assert!(
            store
                .lookup("salesforce", "email", "a@b.co")
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty(),
            "v2 tables exist"
        );
        let version: i64 = store
            .conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(version, SCHEMA_VERSION);
        let _ = std::fs::remove_file(&path);
    }
}
