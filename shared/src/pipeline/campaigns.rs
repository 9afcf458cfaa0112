//! Campaigns: a submission of a HubSpot form that names a Salesforce campaign
//! (`[[campaigns.forms]]`) adds the submitter's synced Lead or Contact to that campaign
//! as a CampaignMember, with the configured status. Submissions enter by the poller's
//! `form:{guid}` feed (HubSpot sends no webhook for them): newest first, read back to
//! the feed's cursor. A member removed in Salesforce stays removed (removal does not
//! sync); an unknown or inactive campaign is a reason on the submission's status.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::lookups::{RETRIED_UNTIL_SYNCED, WAITING_FOR_RELATED, WAITING_PREFIX};
use super::poll::{Change, FeedReport, PollError};
use super::{ItemOutcome, Pipeline};
use crate::domain::Side;
use crate::domain::same_salesforce_id;
use crate::ports::{Cursor, CursorStore, FieldChange, Outcome, StoreError, WorkItem, WorkQueue};

/// The queued object of a form submission.
pub(crate) const FORM_SUBMISSIONS: &str = "form_submissions";
/// Pages (of 50) one poll reads of a form's new submissions.
const PAGES_PER_POLL: usize = 20;

/// The feed of a form's submissions.
pub(crate) fn form_feed(form: &str) -> String {
    format!("form:{form}")
}

/// A submission as a queued reference: the form, the submission and its email (the
/// API reads no submission by id, so the reference carries what the sync needs).
fn reference(form: &str, conversion: &str, email: &str) -> String {
    format!("{form}/{conversion}/{email}")
}

fn parse(id: &str) -> Option<(&str, &str, &str)> {
    let (form, rest) = id.split_once('/')?;
    let (conversion, email) = rest.split_once('/')?;
    (!email.is_empty()).then_some((form, conversion, email))
}

fn soql_ids<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    ids.map(|i| format!("'{}'", i.replace('\'', "")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One submission's person, once found synced.
struct Person {
    sobject: String,
    id: String,
}

impl Pipeline {
    pub(crate) fn is_campaign_item(&self, item: &WorkItem) -> bool {
        self.config.campaigns.enabled
            && item.side == Side::HubSpot
            && item.object == FORM_SUBMISSIONS
    }

    /// Queues a form's submissions made since its cursor. The first read starts the
    /// cursor now: earlier submissions are not replayed.
    pub(crate) async fn poll_form(
        &self,
        cursors: &dyn CursorStore,
        queue: &dyn WorkQueue,
        form: &str,
        now: i64,
    ) -> Result<FeedReport, PollError> {
        let feed = form_feed(form);
        let Some(from) = cursors.cursor(&feed).await? else {
            let start = Cursor {
                at: now,
                last_id: String::new(),
            };
            match cursors.advance(&feed, None, &start).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(FeedReport {
                read: 0,
                enqueued: 0,
                cursor: now,
            });
        };
        let mut changes = Vec::new();
        let mut after: Option<String> = None;
        let mut newest = from.at;
        'pages: for _ in 0..PAGES_PER_POLL {
            let page = self
                .hubspot
                .form_submissions(form, after.as_deref())
                .await
                .map_err(|e| PollError::HubSpot(e.to_string()))?;
            for s in page.submissions {
                // Newest first: one older than the cursor ends the read. Those at the
                // cursor's own millisecond are read again; the seen marks skip them.
                if s.submitted_at < from.at {
                    break 'pages;
                }
                newest = newest.max(s.submitted_at);
                let Some(email) = s.email.filter(|e| !e.trim().is_empty()) else {
                    continue;
                };
                changes.push(Change {
                    at: s.submitted_at,
                    item: WorkItem {
                        side: Side::HubSpot,
                        object: FORM_SUBMISSIONS.into(),
                        id: reference(form, &s.conversion_id, email.trim()),
                        origin: "form".into(),
                    },
                });
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let read = changes.len();
        let enqueued = self.enqueue_unseen(queue, &feed, changes).await?;
        let to = Cursor {
            at: newest,
            last_id: String::new(),
        };
        if to != from {
            match cursors.advance(&feed, Some(&from), &to).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(FeedReport {
            read,
            enqueued,
            cursor: newest,
        })
    }

    /// The batch's form submissions as campaign members: the submitters' contacts read
    /// by email in one call, the campaigns and their existing members in one query
    /// each, the new members created in one Collections call per 200.
    pub(crate) async fn campaign_members(
        &self,
        items: &[WorkItem],
        which: &[usize],
        outcomes: &mut [ItemOutcome],
    ) -> Result<(), String> {
        let now = self.clock.now_ms();
        let settings = &self.config.campaigns;
        let mut wanted: Vec<(usize, &str, String)> = Vec::new();
        for &n in which {
            let item = &items[n];
            let campaign = parse(&item.id)
                .and_then(|(form, _, email)| Some((settings.campaign_of(form)?, email)));
            match campaign {
                Some((campaign, email)) => wanted.push((n, campaign, email.to_lowercase())),
                None => {
                    let message =
                        "its form names no Salesforce campaign in [[campaigns.forms]] (any more)"
                            .to_owned();
                    self.note(
                        item,
                        Side::HubSpot,
                        Outcome::Skipped,
                        Some("campaign_not_configured"),
                        Some(message),
                        now,
                    )
                    .await;
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let mut emails: Vec<String> = wanted.iter().map(|(_, _, e)| e.clone()).collect();
        emails.sort();
        emails.dedup();
        let contacts = self
            .hubspot
            .batch_read("contacts", &emails, &["email"], &[], Some("email"))
            .await
            .map_err(|e| e.to_string())?;
        let mut people: HashMap<String, Person> = HashMap::new();
        for c in &contacts {
            let Some(email) = c.properties.get("email").and_then(Value::as_str) else {
                continue;
            };
            if let Some(l) = self
                .links
                .by_hubspot("contacts", &c.id)
                .await
                .map_err(|e| e.to_string())?
            {
                people.insert(
                    email.to_lowercase(),
                    Person {
                        sobject: l.salesforce_object,
                        id: l.salesforce_id,
                    },
                );
            }
        }
        let mut campaign_ids: Vec<&str> = wanted.iter().map(|(_, c, _)| *c).collect();
        campaign_ids.sort();
        campaign_ids.dedup();
        let campaigns = self
            .salesforce
            .query(
                &format!(
                    "SELECT Id, Name, IsActive FROM Campaign WHERE Id IN ({})",
                    soql_ids(campaign_ids.iter().copied())
                ),
                false,
            )
            .await
            .map_err(|e| e.to_string())?;
        let campaign = |id: &str| {
            campaigns.iter().find(|c| {
                c.get("Id")
                    .and_then(Value::as_str)
                    .is_some_and(|i| same_salesforce_id(i, id))
            })
        };
        let person_ids: Vec<&str> = people.values().map(|p| p.id.as_str()).collect();
        let members = if person_ids.is_empty() {
            Vec::new()
        } else {
            let ids = soql_ids(person_ids.iter().copied());
            self.salesforce
                .query(
                    &format!(
                        "SELECT CampaignId, LeadId, ContactId FROM CampaignMember WHERE CampaignId IN ({}) AND (LeadId IN ({ids}) OR ContactId IN ({ids}))",
                        soql_ids(campaign_ids.iter().copied())
                    ),
                    false,
                )
                .await
                .map_err(|e| e.to_string())?
        };
        let is_member = |campaign_id: &str, person: &str| {
            members.iter().any(|m| {
                let field = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
                same_salesforce_id(field("CampaignId"), campaign_id)
                    && (same_salesforce_id(field("LeadId"), person)
                        || same_salesforce_id(field("ContactId"), person))
            })
        };
        // One new member per (campaign, person), whatever the batch repeats.
        let mut rows: Vec<(String, Map<String, Value>)> = Vec::new();
        let mut row_names: Vec<String> = Vec::new();
        let mut row_of: Vec<(usize, usize)> = Vec::new();
        for (n, campaign_id, email) in &wanted {
            let item = &items[*n];
            let Some(person) = people.get(email) else {
                let message =
                    format!("the contact {email} is not synced yet{RETRIED_UNTIL_SYNCED}");
                self.note(
                    item,
                    Side::HubSpot,
                    Outcome::Skipped,
                    Some(WAITING_FOR_RELATED),
                    Some(message),
                    now,
                )
                .await;
                outcomes[*n] = ItemOutcome::Retry(format!("{WAITING_PREFIX} contacts to sync"));
                continue;
            };
            let Some(c) = campaign(campaign_id) else {
                let message =
                    format!("Salesforce campaign {campaign_id}, named by its form, does not exist");
                self.note(
                    item,
                    Side::HubSpot,
                    Outcome::Skipped,
                    Some("campaign_unknown"),
                    Some(message),
                    now,
                )
                .await;
                continue;
            };
            let name = c.get("Name").and_then(Value::as_str).unwrap_or(campaign_id);
            if c.get("IsActive").and_then(Value::as_bool) != Some(true) {
                let message = format!(
                    "Salesforce campaign {name} is not active: a submission adds members to active campaigns only"
                );
                self.note(
                    item,
                    Side::HubSpot,
                    Outcome::Skipped,
                    Some("campaign_inactive"),
                    Some(message),
                    now,
                )
                .await;
                continue;
            }
            if is_member(campaign_id, &person.id) {
                self.member_noted(item, name, None, now).await;
                continue;
            }
            let person_field = if person.sobject == "Lead" {
                "LeadId"
            } else {
                "ContactId"
            };
            let existing = rows.iter().position(|(_, r)| {
                r.get("CampaignId") == Some(&json!(campaign_id))
                    && r.get(person_field) == Some(&json!(person.id))
            });
            let k = existing.unwrap_or_else(|| {
                let mut row = Map::new();
                row.insert("CampaignId".into(), json!(campaign_id));
                row.insert(person_field.into(), json!(person.id));
                row.insert("Status".into(), json!(settings.member_status));
                rows.push(("CampaignMember".into(), row));
                row_names.push(name.to_owned());
                rows.len() - 1
            });
            row_of.push((*n, k));
        }
        if rows.is_empty() {
            return Ok(());
        }
        let results = self
            .salesforce
            .create(&rows, false)
            .await
            .map_err(|e| e.to_string())?;
        for (n, k) in row_of {
            let item = &items[n];
            let name = row_names[k].clone();
            let status = settings.member_status.as_str();
            outcomes[n] = match results.get(k) {
                Some(r) if r.ok() => {
                    self.member_noted(item, &name, Some(status), now).await;
                    ItemOutcome::Done
                }
                // Joined meanwhile (another worker, a person): a member all the same.
                Some(r) if r.errors.iter().any(|e| e.code == "DUPLICATE_VALUE") => {
                    self.member_noted(item, &name, None, now).await;
                    ItemOutcome::Done
                }
                Some(r) => {
                    self.salesforce_failed(item, Side::HubSpot, r.errors.first().cloned(), now)
                        .await
                }
                None => ItemOutcome::Retry("no result for a campaign member".into()),
            };
        }
        Ok(())
    }

    /// A submission's person is a member of `campaign`: added now with `status`, or
    /// already.
    async fn member_noted(&self, item: &WorkItem, campaign: &str, status: Option<&str>, now: i64) {
        let mut event = self.event(item, Side::HubSpot, Outcome::Synced, now);
        match status {
            Some(s) => event.changes.push(FieldChange {
                field: "CampaignMember".into(),
                old: Value::Null,
                new: json!(format!("{campaign} ({s})")),
            }),
            None => event.message = Some(format!("already a member of {campaign}")),
        }
        self.record(event).await;
    }
}
