//! An inclusion list as a change feed: a record added to the list syncs at the next
//! poll, not at its next edit (the seeds: "any HubSpot contact (new or existing) added
//! to your inclusion list will trigger a sync"). HubSpot sends no webhook for list
//! membership; its join-order listing is read forward from a cursor instead: the token
//! of the last page read (read again each poll, for members joining after it; kept as a
//! `PageMark`, since tokens are opaque and in no order) and the
//! newest join time queued. A record that leaves the list is noticed at its next change
//! (HubSpot keeps no feed of departures): its sync then reads its membership and says
//! `outside_inclusion`.

use super::Pipeline;
use super::poll::{Change, FeedReport, PageMark, PollError, cursor_or_start, move_cursor};
use crate::domain::Side;
use crate::ports::{Cursor, CursorStore, ErrorClass, WorkItem, WorkQueue};

/// Pages (of 250 members) one poll reads of a list it is catching up on (a list read
/// for the first time is walked from its first member).
const PAGES_PER_POLL: usize = 100;

/// The feed of a list's joins.
pub(crate) fn list_feed(list: &str) -> String {
    format!("list:{list}")
}

impl Pipeline {
    /// Queues the records that joined `list` (of the pair's `object`) since its cursor.
    /// The first read starts the cursor now: who was in the list before is the initial
    /// sync's (it lists every record).
    pub(crate) async fn poll_list(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        list: &str,
        object: &str,
        now: i64,
    ) -> Result<FeedReport, PollError> {
        let feed = list_feed(list);
        let Some(from) = cursor_or_start(cursors, &feed, now).await? else {
            return Ok(FeedReport::started(now));
        };
        let mark = PageMark::read(cursors, &feed).await?;
        let mut at = from.at;
        let mut token = mark.token().map(str::to_owned);
        let mut changes = Vec::new();
        for _ in 0..PAGES_PER_POLL {
            let page = match self.hubspot.list_joins(list, token.as_deref()).await {
                Ok(page) => page,
                // A token HubSpot no longer takes (its tokens are opaque): read from the
                // list's first member again; the join times keep old members out.
                Err(e) if token.is_some() && e.class == ErrorClass::RecordLevel => {
                    tracing::warn!(message = "list paging token refused; reading the list from its start", list, error = %e);
                    token = None;
                    continue;
                }
                Err(e) => return Err(PollError::HubSpot(e.to_string())),
            };
            for j in page.joins {
                if j.joined_at < from.at {
                    continue;
                }
                at = at.max(j.joined_at);
                changes.push(Change {
                    at: j.joined_at,
                    item: WorkItem {
                        side: Side::HubSpot,
                        object: object.to_owned(),
                        id: j.record_id,
                        origin: "list".into(),
                        seen: None,
                    },
                });
            }
            match page.next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        let read = changes.len();
        // Joins at the cursor's own millisecond are read again: the seen marks keep
        // them from being queued twice.
        let enqueued = self.enqueue_unseen(queue, &feed, changes).await?;
        let to = Cursor {
            at,
            last_id: String::new(),
        };
        move_cursor(cursors, &feed, &from, &to).await?;
        mark.save(cursors, token.as_deref()).await?;
        Ok(FeedReport {
            read,
            enqueued,
            cursor: at,
        })
    }
}
