//! A one-time import of one Salesforce object's records into HubSpot (`crmsync import
//! salesforce:Lead`, or `{"import": "salesforce:Lead"}` on the intake's `/sync`): every
//! record is listed by id in chunks, queued and synced as any change would be (created
//! in HubSpot, or linked to the record its key finds, or updated when linked already;
//! the pair's rules and reasons apply). The listing is checkpointed after each chunk, so
//! an interrupted import resumes where it stopped, and a sync never creates twice (the
//! create upserts on the record's id, under a claim, before its link is stored).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Pipeline;
use super::poll::{BACKFILL_DONE, PollError};
use crate::ports::{Cursor, CursorStore, Linking, Outcome, StoreError, WorkQueue};

/// Where the imports of `sobject` stand: cursors only move forward, so `at` counts
/// (twice the import's number, plus one once it is done) and `last_id` holds when the
/// import began (ms).
fn state_key(sobject: &str) -> String {
    format!("import:{sobject}")
}

/// One import's state, as its cursor holds it.
#[derive(Debug, Clone, Copy)]
struct ImportState {
    number: i64,
    done: bool,
    since: i64,
}

impl ImportState {
    fn of(c: &Cursor) -> ImportState {
        ImportState {
            number: c.at / 2,
            done: c.at % 2 == 1,
            since: c.last_id.parse().unwrap_or(0),
        }
    }
}

/// The listing checkpoint of import `number` of `sobject`, as the backfill's.
fn listing_key(sobject: &str, number: i64) -> String {
    format!("import{number}|backfill:salesforce:{sobject}")
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "expected salesforce:<sObject> (the Salesforce object whose records to import into HubSpot), got {0:?}"
    )]
    Malformed(String),
    #[error("{0} is not synced by any enabled pair (synced: {1})")]
    NotSynced(String, String),
    #[error("state: {0}")]
    State(#[from] StoreError),
    #[error(transparent)]
    Poll(#[from] PollError),
}

/// Whether an import began now or carries on one under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStart {
    Started,
    Resumed,
}

/// One chunk of an import's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportStep {
    pub queued: usize,
    /// The listing is done: every record is queued.
    pub listed_all: bool,
}

/// What an import did, per record, as their statuses say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub records: u64,
    /// A HubSpot record made for it.
    pub created: u64,
    /// Linked with the HubSpot record its key found.
    pub linked: u64,
    /// Linked before the import: updated, or already alike.
    pub already_linked: u64,
    /// Skipped, by reason (`outside_salesforce_inclusion`, `no_email`...).
    pub skipped: BTreeMap<String, u64>,
    /// Failing, by the CRM's code.
    pub failed: BTreeMap<String, u64>,
    /// Not synced yet (waiting for a retry).
    pub waiting: u64,
}

impl Pipeline {
    /// The sObject `target` (`salesforce:Lead`) names, if an enabled pair syncs it.
    pub fn import_target(&self, target: &str) -> Result<String, ImportError> {
        let sobject = target
            .strip_prefix("salesforce:")
            .filter(|o| !o.is_empty() && o.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| ImportError::Malformed(target.to_owned()))?;
        if self.pairs.iter().any(|p| p.spec.syncs(sobject)) {
            return Ok(sobject.to_owned());
        }
        let synced: Vec<String> = self
            .pairs
            .iter()
            .flat_map(|p| p.spec.sobjects.iter().map(|o| format!("salesforce:{o}")))
            .collect();
        Err(ImportError::NotSynced(
            sobject.to_owned(),
            synced.join(", "),
        ))
    }

    /// Starts an import of `sobject`, or finds the one under way (which carries on from
    /// its checkpoint, its records already queued still in the queue); when it began.
    /// One that finished starts over, as a new import.
    pub async fn start_import(
        &self,
        cursors: &dyn CursorStore,
        sobject: &str,
    ) -> Result<(ImportStart, i64), ImportError> {
        let key = state_key(sobject);
        let current = cursors.cursor(&key).await?;
        let state = current.as_ref().map(ImportState::of);
        if let Some(s) = state.filter(|s| !s.done) {
            return Ok((ImportStart::Resumed, s.since));
        }
        let now = self.clock.now_ms();
        let number = state.map_or(1, |s| s.number + 1);
        let started = Cursor {
            at: 2 * number,
            last_id: now.to_string(),
        };
        match cursors.advance(&key, current.as_ref(), &started).await {
            Ok(()) => {}
            // Another process started one just now: that is the one under way.
            Err(StoreError::Conflict(_)) => {
                let since = cursors
                    .cursor(&key)
                    .await?
                    .map_or(now, |c| ImportState::of(&c).since);
                return Ok((ImportStart::Resumed, since));
            }
            Err(e) => return Err(e.into()),
        }
        let start = Cursor {
            at: 0,
            last_id: String::new(),
        };
        match cursors
            .advance(&listing_key(sobject, number), None, &start)
            .await
        {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok((ImportStart::Started, now)),
            Err(e) => Err(e.into()),
        }
    }

    /// The listing checkpoint of the import of `sobject` under way, if one is.
    async fn running_import(
        &self,
        cursors: &dyn CursorStore,
        sobject: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(cursors
            .cursor(&state_key(sobject))
            .await?
            .map(|c| ImportState::of(&c))
            .filter(|s| !s.done)
            .map(|s| listing_key(sobject, s.number)))
    }

    /// Marks the import of `sobject` done: the next one starts over.
    pub async fn finish_import(
        &self,
        cursors: &dyn CursorStore,
        sobject: &str,
    ) -> Result<(), StoreError> {
        let key = state_key(sobject);
        let Some(current) = cursors.cursor(&key).await? else {
            return Ok(());
        };
        if ImportState::of(&current).done {
            return Ok(());
        }
        let done = Cursor {
            at: current.at + 1,
            last_id: current.last_id.clone(),
        };
        match cursors.advance(&key, Some(&current), &done).await {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Lists and queues the next chunk of an import under way, then checkpoints it.
    pub async fn import_chunk(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        sobject: &str,
    ) -> Result<ImportStep, ImportError> {
        let nothing = ImportStep {
            queued: 0,
            listed_all: true,
        };
        let Some(key) = self.running_import(cursors, sobject).await? else {
            return Ok(nothing);
        };
        let Some(at) = cursors
            .cursor(&key)
            .await?
            .filter(|c| c.at != BACKFILL_DONE)
        else {
            return Ok(nothing);
        };
        let (queued, _) = self.listing_chunk(cursors, queue, &key, &at).await?;
        self.failpoint(&format!("after_import_chunk:{sobject}"));
        let listed_all = cursors
            .cursor(&key)
            .await?
            .is_none_or(|c| c.at == BACKFILL_DONE);
        Ok(ImportStep { queued, listed_all })
    }

    /// The poller's share of an import under way: chunks within its time budget, and
    /// the import marked done once everything is listed (its records are queued).
    pub(crate) async fn continue_import(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        sobject: &str,
        budget: super::poll::Budget<'_>,
    ) -> Result<usize, PollError> {
        let Some(key) = self.running_import(cursors, sobject).await? else {
            return Ok(0);
        };
        let queued = self.backfill(cursors, queue, &key, budget).await?;
        if cursors
            .cursor(&key)
            .await?
            .is_some_and(|c| c.at == BACKFILL_DONE)
        {
            self.finish_import(cursors, sobject).await?;
        }
        Ok(queued)
    }

    /// How many records of `sobject` an import lists (one call).
    pub async fn import_total(&self, sobject: &str) -> Result<u64, ImportError> {
        let filter = self
            .listing_filter(sobject)
            .map(|f| format!(" WHERE {f}"))
            .unwrap_or_default();
        Ok(self
            .salesforce
            .count(&format!("SELECT COUNT() FROM {sobject}{filter}"))
            .await
            .map_err(|e| PollError::Salesforce(e.to_string()))?)
    }

    /// Every record of `sobject` (listed again, one call per 2,000), by what its status
    /// says since the import began (`since`).
    pub async fn import_summary(
        &self,
        sobject: &str,
        since: i64,
    ) -> Result<ImportSummary, ImportError> {
        let feed = format!("salesforce:{sobject}");
        let mut summary = ImportSummary::default();
        let mut last = String::new();
        loop {
            let (items, next) = self.backfill_chunk(&feed, &last, "import", false).await?;
            for item in &items {
                summary.records += 1;
                let record = super::record_ref(item);
                let Some(status) = self.status.status(&record).await? else {
                    summary.waiting += 1;
                    continue;
                };
                let e = &status.last;
                let code = e.code.clone().unwrap_or_default();
                match e.outcome {
                    Outcome::Synced if e.at < since => summary.already_linked += 1,
                    Outcome::Synced => match e.linked {
                        Some(Linking::CreatedInHubSpot) => summary.created += 1,
                        Some(Linking::Matched) | Some(Linking::CreatedInSalesforce) => {
                            summary.linked += 1
                        }
                        None => summary.already_linked += 1,
                    },
                    Outcome::Skipped => *summary.skipped.entry(code).or_default() += 1,
                    Outcome::Failed => *summary.failed.entry(code).or_default() += 1,
                }
            }
            match next {
                Some(n) => last = n,
                None => return Ok(summary),
            }
        }
    }
}
