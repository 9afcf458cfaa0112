//! The operator's controls as the pipeline obeys them, and what it reports for sync
//! health over time.
//!
//! - Pause: the flag lives in the state store. Workers stop taking work (the local
//!   runner leaves the queue alone; the Lambda worker parks its batch for later), the
//!   poller stops reading, the intake keeps queueing. Resume catches up from the
//!   cursors, or lists everything again when the pause outlasted Salesforce's change
//!   history.
//! - Broken mappings: a mapped field a CRM no longer has is one error on its pair; the
//!   pair syncs its other fields until the field is back (checked on resume and
//!   whenever the field metadata is read again).
//! - Telemetry: outcomes, API calls and feed lag per time bucket, for the charts,
//!   written once per batch and per poll.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Pipeline;
use super::pairs::PairRun;
use super::poll::PollReport;
use crate::domain::Side;
use crate::ports::{BrokenField, Controls, Pause, StoreError};

/// Salesforce keeps deleted records in the recycle bin (and `queryAll` finds them) for
/// 15 days; a cursor older than that misses deletions.
pub const SALESFORCE_DELETED_WINDOW_MS: i64 = 15 * 86_400_000;
/// `getUpdated` answers for the last 30 days.
pub const SALESFORCE_UPDATED_WINDOW_MS: i64 = 30 * 86_400_000;

/// What a resume did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resumed {
    /// How long the sync was paused (none: it was not).
    pub paused_for_ms: Option<i64>,
    /// The pause outlasted Salesforce's deletion history: every record is listed again.
    pub reconcile: bool,
}

/// What this process already added to the time series: API calls per side and
/// outcomes (from its tally), so that each note adds only what came since.
#[derive(Debug, Default)]
pub struct Noted {
    hubspot: AtomicU64,
    salesforce: AtomicU64,
    synced: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
}

impl Pipeline {
    /// The controls as stored now.
    pub async fn controls(&self) -> Result<Controls, StoreError> {
        Ok(self.control.controls().await?.0)
    }

    /// Applies `change` under the controls' version, again after a conflict.
    pub async fn change_controls(
        &self,
        mut change: impl FnMut(&mut Controls),
    ) -> Result<Controls, StoreError> {
        for _ in 0..10 {
            let (mut controls, version) = self.control.controls().await?;
            change(&mut controls);
            match self.control.put_controls(&controls, version).await {
                Ok(_) => return Ok(controls),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(
            "the controls kept changing; try again".into(),
        ))
    }

    /// Pauses the sync (already paused: unchanged).
    pub async fn pause(&self, by: &str, reason: Option<String>) -> Result<Controls, StoreError> {
        let now = self.clock.now_ms();
        self.change_controls(|c| {
            if c.paused.is_none() {
                c.paused = Some(Pause {
                    since: now,
                    by: by.to_owned(),
                    reason: reason.clone(),
                });
            }
        })
        .await
    }

    /// Resumes the sync. Broken fields are checked again, and a pause longer than
    /// Salesforce keeps deleted records makes the poller list everything again.
    pub async fn resume(&self) -> Result<Resumed, StoreError> {
        let now = self.clock.now_ms();
        let mut resumed = Resumed::default();
        self.change_controls(|c| {
            resumed = Resumed::default();
            if let Some(p) = c.paused.take() {
                let paused_for = (now - p.since).max(0);
                resumed.paused_for_ms = Some(paused_for);
                resumed.reconcile = paused_for > SALESFORCE_DELETED_WINDOW_MS;
            }
            if resumed.reconcile {
                c.reconcile += 1;
            }
            c.broken_fields.clear();
            c.generation += 1;
        })
        .await?;
        Ok(resumed)
    }

    /// The controls for this batch: fields known broken are left out of reads,
    /// writes and merges; a resume makes this process read field metadata again.
    pub async fn load_controls(&self) -> Result<Controls, StoreError> {
        let controls = self.controls().await?;
        if self
            .meta_generation
            .swap(controls.generation, Ordering::SeqCst)
            != controls.generation
        {
            self.metadata.lock().await.clear();
        }
        *self.broken.write().unwrap_or_else(|p| p.into_inner()) = controls.broken_fields.clone();
        Ok(controls)
    }

    /// Whether a mapped field is known gone from its CRM.
    pub(crate) fn is_broken(&self, side: Side, object: &str, field: &str) -> bool {
        self.broken
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|b| b.side == side && b.object == object && b.field.eq_ignore_ascii_case(field))
    }

    /// Compares a pair's mapped fields with both CRMs' field metadata and marks the
    /// ones a CRM no longer has: one error on the pair, the other fields sync on.
    pub(crate) async fn check_mapping(&self, run: &PairRun) {
        let Some(pair) = self.config.pair(&run.spec.name) else {
            return;
        };
        let now = self.clock.now_ms();
        let mut gone: Vec<BrokenField> = Vec::new();
        for sobject in &run.spec.sobjects {
            let meta = self.pair_meta(&run.spec.hubspot_object, sobject).await;
            for f in pair.fields() {
                let hubspot_gone =
                    !meta.hubspot.is_empty() && !meta.hubspot.contains_key(f.hubspot.as_str());
                if hubspot_gone && !gone.iter().any(|b| b.field == f.hubspot) {
                    gone.push(BrokenField {
                        pair: run.spec.name.clone(),
                        side: Side::HubSpot,
                        object: run.spec.hubspot_object.clone(),
                        field: f.hubspot.clone(),
                        message: format!(
                            "HubSpot has no property {} on {} any more",
                            f.hubspot, run.spec.hubspot_object
                        ),
                        since: now,
                    });
                }
                let Some(field) = f.salesforce.on(sobject) else {
                    continue;
                };
                let salesforce_gone = !meta.salesforce.is_empty()
                    && !field.contains('.')
                    && !meta
                        .salesforce
                        .keys()
                        .any(|k| k.eq_ignore_ascii_case(field));
                if salesforce_gone {
                    gone.push(BrokenField {
                        pair: run.spec.name.clone(),
                        side: Side::Salesforce,
                        object: sobject.clone(),
                        field: field.to_owned(),
                        message: format!("Salesforce has no field {field} on {sobject} any more"),
                        since: now,
                    });
                }
            }
        }
        let new: Vec<BrokenField> = gone
            .into_iter()
            .filter(|b| !self.is_broken(b.side, &b.object, &b.field))
            .collect();
        if new.is_empty() {
            return;
        }
        for b in &new {
            tracing::error!(
                message = "a mapped field is gone; the pair syncs its other fields",
                pair = %b.pair, side = %b.side, object = %b.object, field = %b.field
            );
        }
        let marked = self
            .change_controls(|c| {
                for b in &new {
                    if !c.is_broken(b.side, &b.object, &b.field) {
                        c.broken_fields.push(b.clone());
                    }
                }
            })
            .await;
        match marked {
            Ok(c) => *self.broken.write().unwrap_or_else(|p| p.into_inner()) = c.broken_fields,
            Err(e) => {
                tracing::warn!(message = "could not store a broken field", error = %e);
                // Left out of this process's batches all the same.
                self.broken
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(new);
            }
        }
    }

    /// A CRM refused a field it should have: read its metadata again next batch.
    pub(crate) async fn field_refused(&self, what: &str) {
        tracing::warn!(message = "a CRM refused a mapped field; checking the mapping again", error = %what);
        self.metadata.lock().await.clear();
    }

    /// After a poll: when each feed was read, and how stale it had grown since the read
    /// before (the feed lag an admin sees: a stopped poller or a pause grows it).
    pub(crate) async fn note_poll(&self, report: &PollReport) {
        let now = self.clock.now_ms();
        let before = self.telemetry.gauges().await.unwrap_or_default();
        let mut values = Vec::new();
        for feed in report.feeds.keys() {
            if let Some(last) = before.get(&format!("polled_at.{feed}")) {
                values.push((format!("lag.{feed}"), (now - last).max(0)));
            }
            values.push((format!("polled_at.{feed}"), now));
        }
        if let Err(e) = self.telemetry.gauge(now, &values).await {
            tracing::warn!(message = "could not store feed lag", error = %e);
        }
    }

    /// Adds the outcomes and API calls of this process since its last note to the time
    /// series (one write per batch or poll, not one per record), and stores each CRM's
    /// last reported daily use.
    pub async fn note_usage(&self) {
        let now = self.clock.now_ms();
        let delta = |counter: &AtomicU64, total: u64| {
            total.saturating_sub(counter.swap(total, Ordering::SeqCst))
        };
        let n = &self.noted;
        let (synced, skipped, failed) = self.tally.get();
        let counts = [
            (
                "calls.hubspot",
                delta(&n.hubspot, self.hubspot.calls_made()),
            ),
            (
                "calls.salesforce",
                delta(&n.salesforce, self.salesforce.calls_made()),
            ),
            ("synced", delta(&n.synced, synced)),
            ("skipped", delta(&n.skipped, skipped)),
            ("failed", delta(&n.failed, failed)),
        ];
        let counts: Vec<(String, i64)> = counts
            .into_iter()
            .filter(|(_, d)| *d > 0)
            .map(|(k, d)| (k.to_owned(), d as i64))
            .collect();
        if !counts.is_empty()
            && let Err(e) = self.telemetry.add(now, &counts).await
        {
            tracing::warn!(message = "could not count outcomes and API calls", error = %e);
        }
        let mut gauges = Vec::new();
        for (side, usage) in [
            ("hubspot", self.hubspot.daily_usage()),
            ("salesforce", self.salesforce.daily_usage()),
        ] {
            if let Some((used, allowed)) = usage {
                gauges.push((format!("{side}.daily_used"), used as i64));
                gauges.push((format!("{side}.daily_limit"), allowed as i64));
            }
        }
        if !gauges.is_empty()
            && let Err(e) = self.telemetry.gauge(now, &gauges).await
        {
            tracing::warn!(message = "could not store API use", error = %e);
        }
    }
}
