//! Form submissions: a submission of a HubSpot form that names a Salesforce campaign
//! (`[[campaigns.forms]]`) adds the submitter's synced Lead or Contact to that campaign
//! as a CampaignMember, with the configured status; a submission of a form listed in
//! `[activities] form_submissions` becomes a Task on that Lead or Contact. Submissions
//! enter by the poller's `form:{guid}` feed (HubSpot sends no webhook for them): newest
//! first, read back to the feed's cursor. A member removed in Salesforce stays removed
//! (removal does not sync); an unknown or inactive campaign is a reason on the
//! submission's status.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::activities::TaskRow;
use super::poll::{Change, FeedReport, PageMark, PagedRead, PollError, cursor_or_start};
use super::soql::{in_lists, literal_list};
use super::{ItemOutcome, Pipeline};
use crate::domain::Side;
use crate::domain::activity;
use crate::domain::same_salesforce_id;
use crate::ports::{CursorStore, FieldChange, Outcome, WorkItem, WorkQueue};

/// The queued object of a form submission.
pub(crate) const FORM_SUBMISSIONS: &str = "form_submissions";
/// Pages (of 50) one poll reads of a form's new submissions.
const PAGES_PER_POLL: usize = 20;

/// The feed of a form's submissions.
pub(crate) fn form_feed(form: &str) -> String {
    format!("form:{form}")
}

/// A submission as a queued reference: the form, the submission, when, and its email
/// (the API reads no submission by id, so the reference carries what the sync needs).
fn reference(form: &str, conversion: &str, at: i64, email: &str) -> String {
    format!("{form}/{conversion}/{at}/{email}")
}

/// A submission's reference, read back.
struct Submitted<'a> {
    form: &'a str,
    conversion: &'a str,
    at: i64,
    email: String,
}

fn parse(id: &str) -> Option<Submitted<'_>> {
    let (form, rest) = id.split_once('/')?;
    let (conversion, rest) = rest.split_once('/')?;
    let (at, email) = rest.split_once('/')?;
    (!email.is_empty()).then(|| Submitted {
        form,
        conversion,
        at: at.parse().unwrap_or(0),
        email: email.to_lowercase(),
    })
}

/// A person found synced by email: the Salesforce record.
pub(crate) struct Person {
    pub sobject: String,
    pub id: String,
}

impl Pipeline {
    /// Whether a queued reference is a form submission something is done with (on every
    /// reference of every batch: no allocation).
    pub(crate) fn is_submission(&self, item: &WorkItem) -> bool {
        let (campaigns, activities) = (&self.config.campaigns, &self.config.activities);
        item.side == Side::HubSpot
            && item.object == FORM_SUBMISSIONS
            && ((campaigns.enabled && !campaigns.forms.is_empty())
                || (activities.enabled && !activities.form_submissions.is_empty()))
    }

    /// Whether submissions of `form` add campaign members.
    fn names_campaign(&self, form: &str) -> bool {
        let campaigns = &self.config.campaigns;
        campaigns.enabled && campaigns.campaign_of(form).is_some()
    }

    /// Whether submissions of `form` become Tasks.
    fn makes_tasks(&self, form: &str) -> bool {
        let activities = &self.config.activities;
        activities.enabled && activities.form_submissions.iter().any(|f| f == form)
    }

    /// The forms whose submissions the poller reads: those naming a campaign, and
    /// those whose submissions become Tasks.
    pub(crate) fn submission_forms(&self) -> Vec<String> {
        let mut forms: Vec<String> = Vec::new();
        if self.config.campaigns.enabled {
            forms.extend(
                self.config
                    .campaigns
                    .forms
                    .iter()
                    .map(|f| f.form_id.clone()),
            );
        }
        if self.config.activities.enabled {
            forms.extend(self.config.activities.form_submissions.iter().cloned());
        }
        forms.sort();
        forms.dedup();
        forms
    }

    /// The batch's form submissions: campaign members, then Tasks.
    pub(crate) async fn sync_submissions(
        &self,
        items: &[WorkItem],
        which: &[usize],
        outcomes: &mut [ItemOutcome],
    ) -> Result<(), String> {
        let submitted: Vec<(usize, Submitted<'_>)> = which
            .iter()
            .filter_map(|&n| Some((n, parse(&items[n].id)?)))
            .collect();
        let people = self
            .submitters(submitted.iter().map(|(_, s)| s.email.clone()).collect())
            .await?;
        let to_campaigns: Vec<usize> = submitted
            .iter()
            .filter(|(_, s)| self.names_campaign(s.form))
            .map(|(n, _)| *n)
            .collect();
        if !to_campaigns.is_empty() {
            self.campaign_members(items, &to_campaigns, &people, outcomes)
                .await?;
        }
        let to_tasks: Vec<usize> = submitted
            .iter()
            .filter(|(n, s)| outcomes[*n] == ItemOutcome::Done && self.makes_tasks(s.form))
            .map(|(n, _)| *n)
            .collect();
        if !to_tasks.is_empty() {
            self.submission_tasks(items, &to_tasks, &people, outcomes)
                .await?;
        }
        for &n in which {
            let configured = submitted
                .iter()
                .any(|(m, s)| *m == n && (self.names_campaign(s.form) || self.makes_tasks(s.form)));
            if !configured {
                let message = "its form is neither in [[campaigns.forms]] nor in activities.form_submissions (any more)".to_owned();
                self.note(
                    &items[n],
                    Side::HubSpot,
                    Outcome::Skipped,
                    Some("form_not_configured"),
                    Some(message),
                    self.clock.now_ms(),
                )
                .await;
            }
        }
        Ok(())
    }

    /// The synced Lead or Contact of each email (lower-cased), read in one call.
    pub(crate) async fn submitters(
        &self,
        mut emails: Vec<String>,
    ) -> Result<HashMap<String, Person>, String> {
        emails.sort();
        emails.dedup();
        let mut people: HashMap<String, Person> = HashMap::new();
        if emails.is_empty() {
            return Ok(people);
        }
        let contacts = self
            .hubspot
            .batch_read("contacts", &emails, &["email"], &[], Some("email"))
            .await
            .map_err(|e| e.to_string())?;
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
        Ok(people)
    }

    /// Submissions as Tasks on their people, upserted on the submission's id (a form's
    /// name read once per form).
    async fn submission_tasks(
        &self,
        items: &[WorkItem],
        which: &[usize],
        people: &HashMap<String, Person>,
        outcomes: &mut [ItemOutcome],
    ) -> Result<(), String> {
        let now = self.clock.now_ms();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut rows: Vec<TaskRow> = Vec::new();
        for &n in which {
            let Some(s) = parse(&items[n].id) else {
                continue;
            };
            let Some(person) = people.get(&s.email) else {
                let person = format!("the contact {}", s.email);
                outcomes[n] = self
                    .unsynced_person(&items[n], Side::HubSpot, &person, now)
                    .await;
                continue;
            };
            if !names.contains_key(s.form) {
                let name = self
                    .hubspot
                    .form_name(s.form)
                    .await
                    .map_err(|e| e.to_string())?;
                names.insert(s.form.to_owned(), name);
            }
            let form = names.get(s.form).map_or(s.form, String::as_str);
            let links =
                activity::TaskLinks::of(Some((&person.sobject, &person.id)), None, None, None);
            let mut plan = activity::task_from_submission(form, &s.email, s.at, &links);
            plan.fields.insert(
                activity::ENGAGEMENT_ID_FIELD.into(),
                json!(activity::submission_task_id(s.conversion)),
            );
            rows.push(TaskRow {
                items: vec![n],
                fields: plan.fields,
                truncated: plan.truncated,
            });
        }
        self.upsert_tasks(items, rows, FORM_SUBMISSIONS, outcomes)
            .await
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
        let Some(from) = cursor_or_start(cursors, &feed, now).await? else {
            return Ok(FeedReport::started(now));
        };
        // A read that stopped part-way (more new submissions than one poll reads) goes
        // on from its page, and remembers the newest it saw: the cursor moves only once
        // the read reaches the cursor.
        let mark = PageMark::read(cursors, &feed).await?;
        let (mut newest, mut after) = match mark.token().and_then(|t| t.split_once(':')) {
            Some((newest, after)) => (newest.parse().unwrap_or(from.at), Some(after.to_owned())),
            None => (from.at, None),
        };
        let mut changes = Vec::new();
        let mut finished = false;
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
                    finished = true;
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
                        id: reference(form, &s.conversion_id, s.submitted_at, email.trim()),
                        origin: "form".into(),
                        seen: None,
                    },
                });
            }
            match page.next {
                Some(n) => after = Some(n),
                None => {
                    finished = true;
                    break;
                }
            }
        }
        let rest = (!finished).then(|| format!("{newest}:{}", after.unwrap_or_default()));
        let paged = PagedRead {
            from,
            mark,
            changes,
            rest,
            to: newest,
        };
        self.enqueue_paged(cursors, queue, &feed, paged).await
    }

    /// Form submissions as campaign members: the campaigns and their existing members
    /// read in one query each, the new members created in one Collections call per 200.
    async fn campaign_members(
        &self,
        items: &[WorkItem],
        which: &[usize],
        people: &HashMap<String, Person>,
        outcomes: &mut [ItemOutcome],
    ) -> Result<(), String> {
        let now = self.clock.now_ms();
        let settings = &self.config.campaigns;
        let wanted: Vec<(usize, &str, String)> = which
            .iter()
            .filter_map(|&n| {
                let s = parse(&items[n].id)?;
                Some((n, settings.campaign_of(s.form)?, s.email))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut campaign_ids: Vec<&str> = wanted.iter().map(|(_, c, _)| *c).collect();
        campaign_ids.sort();
        campaign_ids.dedup();
        let campaigns = self
            .query_in(&campaign_ids, |list| {
                format!("SELECT Id, Name, IsActive FROM Campaign WHERE Id IN ({list})")
            })
            .await
            .map_err(|e| e.to_string())?;
        let campaign = |id: &str| {
            campaigns.iter().find(|c| {
                c.get("Id")
                    .and_then(Value::as_str)
                    .is_some_and(|i| same_salesforce_id(i, id))
            })
        };
        // Their members among this batch's people, Leads and Contacts apart, every
        // query in one call where they fit.
        let in_campaigns = literal_list(&campaign_ids);
        let mut queries = Vec::new();
        for (sobject, field) in [("Lead", "LeadId"), ("Contact", "ContactId")] {
            let ids: Vec<&str> = people
                .values()
                .filter(|p| p.sobject == sobject)
                .map(|p| p.id.as_str())
                .collect();
            for list in in_lists(&ids) {
                queries.push((
                    String::new(),
                    format!(
                        "SELECT CampaignId, LeadId, ContactId FROM CampaignMember WHERE CampaignId IN ({in_campaigns}) AND {field} IN ({list})"
                    ),
                ));
            }
        }
        let members: Vec<Value> = self
            .query_keyed(queries)
            .await
            .map_err(|e| e.to_string())?
            .into_values()
            .flatten()
            .collect();
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
                let person = format!("the contact {email}");
                outcomes[*n] = self
                    .wait_for_person(item, Side::HubSpot, &person, now)
                    .await;
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
