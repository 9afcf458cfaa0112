//! Marketing email events (`[activities] marketing_email_events`): a marketing email
//! sent to, opened or clicked by a synced contact becomes a Task on its Lead or Contact
//! ("Marketing email opened: <subject>"), upserted on `email:<event id>`. HubSpot sends
//! no webhook for these: the poller reads the Email Events API per event type, from
//! its first poll on, a little before its cursor (events can be recorded late); a
//! window with more events than one poll reads is finished by the next polls.

use std::collections::HashMap;

use serde_json::json;

use super::activities::TaskRow;
use super::poll::{Change, FeedReport, PageMark, PagedRead, PollError, cursor_or_start};
use super::{ItemOutcome, Pipeline};
use crate::domain::Side;
use crate::domain::activity::{
    ENGAGEMENT_ID_FIELD, TaskLinks, email_event_task_id, task_from_email_event,
};
use crate::domain::config::MarketingEmailEvent;
use crate::ports::{CursorStore, WorkItem, WorkQueue};

/// The queued object of a marketing email event.
pub(crate) const EMAIL_EVENTS: &str = "email_events";
/// How far before its cursor a read starts.
const OVERLAP_MS: i64 = 10_000;
/// Pages (of 1,000) one poll reads of a type's new events.
const PAGES_PER_POLL: usize = 20;

/// The feed of one event type.
pub(crate) fn email_feed(kind: MarketingEmailEvent) -> String {
    format!("email_events:{}", kind.api_name())
}

/// An event as a queued reference: it, when, what, which email, to whom (the API reads
/// events by time, so the reference carries what the sync needs).
fn reference(e: &crate::ports::EmailEvent) -> String {
    format!(
        "{}/{}/{}/{}/{}",
        e.id,
        e.created,
        e.kind,
        e.campaign_id.as_deref().unwrap_or(""),
        e.recipient.to_lowercase()
    )
}

struct Event<'a> {
    id: &'a str,
    created: i64,
    kind: MarketingEmailEvent,
    campaign: &'a str,
    recipient: &'a str,
}

fn parse(id: &str) -> Option<Event<'_>> {
    let mut parts = id.splitn(5, '/');
    let event = Event {
        id: parts.next()?,
        created: parts.next()?.parse().ok()?,
        kind: MarketingEmailEvent::from_api_name(parts.next()?)?,
        campaign: parts.next()?,
        recipient: parts.next()?,
    };
    (!event.recipient.is_empty()).then_some(event)
}

impl Pipeline {
    pub(crate) fn is_email_event(&self, item: &WorkItem) -> bool {
        item.side == Side::HubSpot
            && item.object == EMAIL_EVENTS
            && self.config.activities.enabled
            && !self.config.activities.marketing_email_events.is_empty()
    }

    /// The event types whose events become Tasks.
    pub(crate) fn email_event_kinds(&self) -> Vec<MarketingEmailEvent> {
        let a = &self.config.activities;
        if a.enabled {
            a.marketing_email_events.clone()
        } else {
            Vec::new()
        }
    }

    /// Queues one event type's events since its cursor.
    pub(crate) async fn poll_email_kind(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        feed: &str,
        kind: MarketingEmailEvent,
        now: i64,
    ) -> Result<FeedReport, PollError> {
        let Some(from) = cursor_or_start(cursors, feed, now).await? else {
            return Ok(FeedReport::started(now));
        };
        let since = (from.at - OVERLAP_MS).max(0);
        // A window read part-way by an earlier poll goes on where it stopped, to the
        // same end: the cursor moves only once a window is read to its end.
        let mark = PageMark::read(cursors, feed).await?;
        let (until, mut offset) = match mark.token().and_then(|t| t.split_once(':')) {
            Some((until, offset)) => (
                until.parse().unwrap_or(now),
                Some(offset.to_owned()).filter(|o| !o.is_empty()),
            ),
            None => (now, None),
        };
        let mut changes = Vec::new();
        let mut newest = from.at;
        let mut finished = false;
        for _ in 0..PAGES_PER_POLL {
            let page = self
                .hubspot
                .email_events(kind.api_name(), since, until, offset.as_deref())
                .await
                .map_err(|e| PollError::HubSpot(e.to_string()))?;
            for e in &page.events {
                newest = newest.max(e.created);
                changes.push(Change {
                    at: e.created,
                    item: WorkItem {
                        side: Side::HubSpot,
                        object: EMAIL_EVENTS.into(),
                        id: reference(e),
                        origin: "poll".into(),
                        seen: None,
                    },
                });
            }
            match page.next {
                Some(n) => offset = Some(n),
                None => {
                    finished = true;
                    break;
                }
            }
        }
        // The overlap reads some events again: the seen marks skip them. A quiet feed
        // moves on too, to the start of its overlap.
        let rest = (!finished).then(|| format!("{until}:{}", offset.unwrap_or_default()));
        let paged = PagedRead {
            from,
            mark,
            changes,
            rest,
            to: newest.max(until - OVERLAP_MS),
        };
        self.enqueue_paged(cursors, queue, feed, paged).await
    }

    /// The batch's marketing email events as Tasks: the recipients' people read in one
    /// call, each email's subject once, the Tasks upserted in one Collections call per
    /// 200.
    pub(crate) async fn email_event_tasks(
        &self,
        items: &[WorkItem],
        which: &[usize],
        outcomes: &mut [ItemOutcome],
    ) -> Result<(), String> {
        let now = self.clock.now_ms();
        let events: Vec<(usize, Event<'_>)> = which
            .iter()
            .filter_map(|&n| Some((n, parse(&items[n].id)?)))
            .collect();
        let people = self
            .submitters(events.iter().map(|(_, e)| e.recipient.to_owned()).collect())
            .await?;
        let mut subjects: HashMap<&str, String> = HashMap::new();
        let mut rows: Vec<TaskRow> = Vec::new();
        for (n, e) in &events {
            let item = &items[*n];
            let Some(person) = people.get(e.recipient) else {
                let person = format!("the contact {}", e.recipient);
                outcomes[*n] = self
                    .unsynced_person(item, Side::HubSpot, &person, now)
                    .await;
                continue;
            };
            if !subjects.contains_key(e.campaign) {
                let subject = if e.campaign.is_empty() {
                    "a marketing email".to_owned()
                } else {
                    self.hubspot
                        .email_subject(e.campaign)
                        .await
                        .map_err(|err| err.to_string())?
                };
                subjects.insert(e.campaign, subject);
            }
            let subject = subjects.get(e.campaign).map_or("", String::as_str);
            let links = TaskLinks::of(Some((&person.sobject, &person.id)), None, None, None);
            let mut plan = task_from_email_event(e.kind, subject, e.recipient, e.created, &links);
            plan.fields
                .insert(ENGAGEMENT_ID_FIELD.into(), json!(email_event_task_id(e.id)));
            rows.push(TaskRow {
                items: vec![*n],
                fields: plan.fields,
                truncated: plan.truncated,
            });
        }
        self.upsert_tasks(items, rows, EMAIL_EVENTS, outcomes).await
    }
}
