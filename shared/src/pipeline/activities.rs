//! Activities, after the batch's records: HubSpot engagements (calls, emails, meetings,
//! notes, tasks) become Salesforce Tasks, and (a setting) Salesforce Tasks become
//! HubSpot tasks. An engagement enters by a generic `object.*` webhook or the poller's
//! `hubspot:{calls,...}` feed; its Task leaves in one Collections upsert per batch on
//! `HubSpot_Engagement_Id__c` (`engagements_to_tasks`). A Task enters by an outbound
//! message or the `salesforce:Task` feed; its HubSpot task leaves in one batch upsert on
//! `salesforcetaskid` (`tasks_to_hubspot`). Upserts on the other side's id make a
//! replay, a retry or a crash after the write harmless; what the sync wrote carries
//! that id, and is never copied back.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::lookups::{RETRIED_UNTIL_SYNCED, WAITING_FOR_RELATED, WAITING_PREFIX};
use super::{ItemOutcome, Pipeline};
use crate::domain::Side;
use crate::domain::activity::{
    self, ENGAGEMENT_ID_FIELD, TASK_FIELDS, TASK_ID_PROPERTY, TaskLinks, kind_of,
};
use crate::domain::config::UnsyncedRelated;
use crate::ports::{HeldBack, Linking, Outcome, WorkItem};

/// An activity hangs on no synced record (skipped; its next change tries again).
pub(crate) const NO_SYNCED_RECORD: &str = "no_synced_record";
/// Its contact is not synced, and the settings say skip rather than wait.
pub(crate) const RELATED_NOT_SYNCED: &str = "related_not_synced";

/// A Task to upsert, for the queued items it answers, and the fields cut to fit.
pub(crate) struct TaskRow {
    pub items: Vec<usize>,
    pub fields: Map<String, Value>,
    pub truncated: Vec<&'static str>,
}

/// What an activity hangs on, on the side it is written to: the person, the company
/// and the deal, as that side's ids.
#[derive(Debug, Default)]
struct Hung {
    who: Option<(String, String)>,
    account: Option<String>,
    opportunity: Option<String>,
    /// A related person that is not synced yet.
    unsynced: Option<String>,
}

impl Pipeline {
    /// Whether a queued reference is an activity the configuration syncs.
    pub(crate) fn is_activity(&self, item: &WorkItem) -> bool {
        let a = &self.config.activities;
        a.enabled
            && match item.side {
                Side::HubSpot => kind_of(&item.object).is_some_and(|k| a.types.contains(&k)),
                Side::Salesforce => item.object == "Task" && a.salesforce_tasks_to_hubspot,
            }
    }

    /// The HubSpot engagement objects the poller reads, from the time it first does (an
    /// activity syncs from then on: the past is not listed).
    pub(crate) fn activity_hubspot_feeds(&self) -> Vec<String> {
        let a = &self.config.activities;
        if !a.enabled {
            return Vec::new();
        }
        a.types
            .iter()
            .map(|k| activity::hubspot_object(*k).to_owned())
            .collect()
    }

    /// The Salesforce objects read for activities (`Task`, when they sync to HubSpot).
    pub(crate) fn activity_salesforce_feeds(&self) -> Vec<String> {
        let a = &self.config.activities;
        if a.enabled && a.salesforce_tasks_to_hubspot {
            vec!["Task".to_owned()]
        } else {
            Vec::new()
        }
    }

    /// Syncs the activities `which` of `items` (form submissions among them) into
    /// `outcomes`.
    pub(crate) async fn sync_activities(
        &self,
        items: &[WorkItem],
        which: &[usize],
        outcomes: &mut [ItemOutcome],
    ) {
        let (submissions, which): (Vec<usize>, Vec<usize>) =
            which.iter().partition(|&&n| self.is_submission(&items[n]));
        if !submissions.is_empty()
            && let Err(why) = self.sync_submissions(items, &submissions, outcomes).await
        {
            for n in submissions {
                outcomes[n] = ItemOutcome::Retry(why.clone());
            }
        }
        let (email_events, which): (Vec<usize>, Vec<usize>) =
            which.iter().partition(|&&n| self.is_email_event(&items[n]));
        if !email_events.is_empty()
            && let Err(why) = self.email_event_tasks(items, &email_events, outcomes).await
        {
            for n in email_events {
                outcomes[n] = ItemOutcome::Retry(why.clone());
            }
        }
        let (hubspot, salesforce): (Vec<usize>, Vec<usize>) =
            which.iter().partition(|&&n| items[n].side == Side::HubSpot);
        let mut by_object: HashMap<&str, Vec<usize>> = HashMap::new();
        for n in hubspot {
            by_object
                .entry(items[n].object.as_str())
                .or_default()
                .push(n);
        }
        for (object, indexes) in by_object {
            if let Err(why) = self
                .engagements_to_tasks(object, items, &indexes, outcomes)
                .await
            {
                for n in indexes {
                    outcomes[n] = ItemOutcome::Retry(why.clone());
                }
            }
        }
        if !salesforce.is_empty()
            && let Err(why) = self.tasks_to_hubspot(items, &salesforce, outcomes).await
        {
            for n in salesforce {
                outcomes[n] = ItemOutcome::Retry(why.clone());
            }
        }
    }

    /// One engagement type's references: read in one call, their associations in one
    /// call per related type, their Tasks upserted in one Collections call per 200.
    async fn engagements_to_tasks(
        &self,
        object: &str,
        items: &[WorkItem],
        which: &[usize],
        outcomes: &mut [ItemOutcome],
    ) -> Result<(), String> {
        let Some(kind) = kind_of(object) else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let ids = unique_ids(items, which);
        let mut props: Vec<&str> = activity::properties(kind).to_vec();
        props.push("hubspot_owner_id");
        if kind == crate::domain::config::ActivityType::Task {
            props.push(TASK_ID_PROPERTY);
        }
        let records = self
            .hubspot
            .batch_read(object, &ids, &props, &[], None)
            .await
            .map_err(|e| e.to_string())?;
        let mut related: HashMap<&str, HashMap<String, Vec<String>>> = HashMap::new();
        for (target, pair) in [
            ("contacts", "contacts"),
            ("companies", "companies"),
            ("deals", "deals"),
        ] {
            if self.pairs.iter().any(|p| p.spec.name == pair) {
                let found = self
                    .hubspot
                    .associations(object, target, &ids)
                    .await
                    .map_err(|e| e.to_string())?;
                related.insert(target, found.into_iter().collect());
            }
        }
        let mut hangs: Vec<(String, Hung)> = Vec::new();
        for id in &ids {
            let mine = indexes_of(items, which, id);
            let first = &items[mine[0]];
            let Some(record) = records.iter().find(|r| &r.id == id) else {
                let message = format!("HubSpot {object} {id} is gone: deleting it deletes no Task");
                self.note(
                    first,
                    Side::HubSpot,
                    Outcome::Skipped,
                    Some("deleted_in_hubspot"),
                    Some(message),
                    now,
                )
                .await;
                continue;
            };
            // A HubSpot task made from a Salesforce Task: it is that Task already.
            if text(&record.properties, TASK_ID_PROPERTY).is_some() {
                continue;
            }
            let of = |target: &str| {
                related
                    .get(target)
                    .and_then(|m| m.get(id))
                    .cloned()
                    .unwrap_or_default()
            };
            let hung = self
                .hung_in_salesforce(&of("contacts"), &of("companies"), &of("deals"))
                .await
                .map_err(|e| e.to_string())?;
            if let Some(outcome) = self.unhung(first, Side::HubSpot, &hung, now).await {
                for &n in &mine {
                    outcomes[n] = outcome.clone();
                }
                continue;
            }
            hangs.push((id.clone(), hung));
        }
        self.accounts_of_contacts(&mut hangs).await?;
        let mut rows: Vec<TaskRow> = Vec::new();
        for (id, hung) in hangs {
            let Some(record) = records.iter().find(|r| r.id == id) else {
                continue;
            };
            let owner = text(&record.properties, "hubspot_owner_id").and_then(|o| {
                self.owners
                    .salesforce_user(o)
                    .or_else(|| self.owners.default_on(Side::Salesforce))
            });
            let links = TaskLinks::of(
                hung.who.as_ref().map(|(o, i)| (o.as_str(), i.as_str())),
                hung.opportunity.as_deref(),
                hung.account.as_deref(),
                owner,
            );
            let mut plan = activity::task_from_engagement(kind, &record.properties, &links);
            plan.fields
                .insert(ENGAGEMENT_ID_FIELD.into(), Value::String(id.clone()));
            rows.push(TaskRow {
                items: indexes_of(items, which, &id),
                fields: plan.fields,
                truncated: plan.truncated,
            });
        }
        self.upsert_tasks(items, rows, object, outcomes).await
    }

    /// Upserts Tasks on their engagement id (one Collections call per 200) and records
    /// what became of each row's items.
    pub(crate) async fn upsert_tasks(
        &self,
        items: &[WorkItem],
        rows: Vec<TaskRow>,
        what: &str,
        outcomes: &mut [ItemOutcome],
    ) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        // One row per Task: two references to one engagement in a batch would put its
        // id twice in one call, and Salesforce fails both rows.
        let mut merged: Vec<TaskRow> = Vec::new();
        for row in rows {
            let id = row.fields.get(ENGAGEMENT_ID_FIELD).cloned();
            match merged
                .iter_mut()
                .find(|m| m.fields.get(ENGAGEMENT_ID_FIELD) == id.as_ref())
            {
                Some(m) => m.items.extend(row.items),
                None => merged.push(row),
            }
        }
        let rows = merged;
        let fields: Vec<Map<String, Value>> = rows.iter().map(|r| r.fields.clone()).collect();
        let results = self
            .salesforce
            .upsert("Task", ENGAGEMENT_ID_FIELD, &fields, false)
            .await
            .map_err(|e| e.to_string())?;
        self.failpoint(&format!("after_activity_write:{what}"));
        for (k, row) in rows.into_iter().enumerate() {
            let Some(&head) = row.items.first() else {
                continue;
            };
            let first = &items[head];
            let truncated = row.truncated;
            let outcome = match results.get(k) {
                Some(r) if r.ok() => {
                    let mut event = self.event(first, Side::HubSpot, Outcome::Synced, now);
                    event.linked =
                        (r.created == Some(true)).then_some(Linking::CreatedInSalesforce);
                    event.held_back = truncated
                        .iter()
                        .map(|f| HeldBack {
                            field: (*f).to_owned(),
                            reason: "would_truncate".into(),
                            detail: Some(format!("cut to the Task's {f} length")),
                        })
                        .collect();
                    if let Some(h) = event.held_back.first() {
                        event.code = Some(h.reason.clone());
                        event.field = Some(h.field.clone());
                    }
                    self.record(event).await;
                    ItemOutcome::Done
                }
                Some(r) => {
                    self.salesforce_failed(first, Side::HubSpot, r.errors.first().cloned(), now)
                        .await
                }
                None => ItemOutcome::Retry("no result for a Task".into()),
            };
            for n in row.items {
                outcomes[n] = outcome.clone();
            }
        }
        Ok(())
    }

    /// A Task on a Contact, with no company or deal of its own, hangs on the Contact's
    /// Account too, as it would when logged in Salesforce (one query per 200 Contacts).
    async fn accounts_of_contacts(&self, hangs: &mut [(String, Hung)]) -> Result<(), String> {
        let wanted: Vec<&str> = hangs
            .iter()
            .filter(|(_, h)| h.account.is_none() && h.opportunity.is_none())
            .filter_map(|(_, h)| h.who.as_ref().filter(|(o, _)| o == "Contact"))
            .map(|(_, id)| id.as_str())
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let rows = self
            .query_in(&wanted, |list| {
                format!("SELECT Id, AccountId FROM Contact WHERE Id IN ({list})")
            })
            .await
            .map_err(|e| e.to_string())?;
        for (_, h) in hangs.iter_mut() {
            let Some((_, contact)) = h.who.as_ref().filter(|(o, _)| o == "Contact") else {
                continue;
            };
            if h.account.is_some() || h.opportunity.is_some() {
                continue;
            }
            h.account = rows
                .iter()
                .find(|r| {
                    r.get("Id")
                        .and_then(Value::as_str)
                        .is_some_and(|i| crate::domain::same_salesforce_id(i, contact))
                })
                .and_then(|r| r.get("AccountId"))
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        Ok(())
    }

    /// The Salesforce records an engagement's HubSpot contacts, companies and deals are
    /// linked with: the first linked of each.
    async fn hung_in_salesforce(
        &self,
        contacts: &[String],
        companies: &[String],
        deals: &[String],
    ) -> Result<Hung, crate::ports::StoreError> {
        let mut hung = Hung::default();
        for c in contacts {
            match self.links.by_hubspot("contacts", c).await? {
                Some(l) => {
                    hung.who = Some((l.salesforce_object, l.salesforce_id));
                    break;
                }
                None => hung.unsynced = hung.unsynced.or(Some(format!("HubSpot contact {c}"))),
            }
        }
        for c in companies {
            if let Some(l) = self.links.by_hubspot("companies", c).await? {
                hung.account = Some(l.salesforce_id);
                break;
            }
        }
        for d in deals {
            if let Some(l) = self.links.by_hubspot("deals", d).await? {
                hung.opportunity = Some(l.salesforce_id);
                break;
            }
        }
        Ok(hung)
    }

    /// What becomes of an activity with no synced person to hang on: `None` when it
    /// goes on (it has its person, or a company or deal to hang on).
    async fn unhung(
        &self,
        item: &WorkItem,
        from: Side,
        hung: &Hung,
        now: i64,
    ) -> Option<ItemOutcome> {
        if hung.who.is_some() {
            return None;
        }
        if let Some(person) = &hung.unsynced {
            return Some(self.unsynced_person(item, from, person, now).await);
        }
        if hung.account.is_some() || hung.opportunity.is_some() {
            return None;
        }
        let message = "it is on no synced contact, company or deal".to_owned();
        self.note(
            item,
            from,
            Outcome::Skipped,
            Some(NO_SYNCED_RECORD),
            Some(message),
            now,
        )
        .await;
        Some(ItemOutcome::Done)
    }

    /// An activity whose person (`person`, as its status names it) is not synced: it
    /// waits, or is skipped, as `activities.unsynced_contact` says.
    pub(crate) async fn unsynced_person(
        &self,
        item: &WorkItem,
        from: Side,
        person: &str,
        now: i64,
    ) -> ItemOutcome {
        match self.config.activities.unsynced_contact {
            UnsyncedRelated::Wait => self.wait_for_person(item, from, person, now).await,
            UnsyncedRelated::Skip => {
                let message = format!(
                    "{person} is not synced: the activity is skipped (activities.unsynced_contact = \"skip\"); its next change tries again"
                );
                self.note(
                    item,
                    from,
                    Outcome::Skipped,
                    Some(RELATED_NOT_SYNCED),
                    Some(message),
                    now,
                )
                .await;
                ItemOutcome::Done
            }
        }
    }

    /// A reference whose person is not synced yet waits for it: its status says so, and
    /// it is retried.
    pub(crate) async fn wait_for_person(
        &self,
        item: &WorkItem,
        from: Side,
        person: &str,
        now: i64,
    ) -> ItemOutcome {
        let message = format!("{person} is not synced yet{RETRIED_UNTIL_SYNCED}");
        self.note(
            item,
            from,
            Outcome::Skipped,
            Some(WAITING_FOR_RELATED),
            Some(message),
            now,
        )
        .await;
        ItemOutcome::Retry(format!("{WAITING_PREFIX} {} to sync", item.object))
    }

    /// Salesforce Tasks as HubSpot tasks: read in one call, upserted in one batch call
    /// per 100, associated in one call per related type.
    async fn tasks_to_hubspot(
        &self,
        items: &[WorkItem],
        which: &[usize],
        outcomes: &mut [ItemOutcome],
    ) -> Result<(), String> {
        let now = self.clock.now_ms();
        let ids = unique_ids(items, which);
        let rows = self
            .salesforce
            .retrieve("Task", &ids, &TASK_FIELDS)
            .await
            .map_err(|e| e.to_string())?;
        struct Pending {
            id: String,
            properties: Map<String, Value>,
            hung: Hung,
        }
        let mut pending: Vec<Pending> = Vec::new();
        for (id, row) in ids.iter().zip(rows) {
            let mine = indexes_of(items, which, id);
            let first = &items[mine[0]];
            let Some(row) = row.and_then(|r| r.as_object().cloned()) else {
                let message =
                    format!("Salesforce Task {id} is gone: deleting it deletes no HubSpot task");
                self.note(
                    first,
                    Side::Salesforce,
                    Outcome::Skipped,
                    Some("deleted_in_salesforce"),
                    Some(message),
                    now,
                )
                .await;
                continue;
            };
            // A Task made from a HubSpot engagement: it is that engagement already.
            if text(&row, ENGAGEMENT_ID_FIELD).is_some() {
                continue;
            }
            let hung = self
                .hung_in_hubspot(text(&row, "WhoId"), text(&row, "WhatId"))
                .await
                .map_err(|e| e.to_string())?;
            if let Some(outcome) = self.unhung(first, Side::Salesforce, &hung, now).await {
                for n in mine {
                    outcomes[n] = outcome.clone();
                }
                continue;
            }
            let owner = text(&row, "OwnerId").and_then(|o| {
                self.owners
                    .hubspot_owner(o)
                    .or_else(|| self.owners.default_on(Side::HubSpot))
            });
            let properties = activity::hubspot_task_from_salesforce(&row, owner);
            pending.push(Pending {
                id: id.clone(),
                properties,
                hung,
            });
        }
        if pending.is_empty() {
            return Ok(());
        }
        let inputs: Vec<(String, Map<String, Value>)> = pending
            .iter()
            .map(|p| (p.id.clone(), p.properties.clone()))
            .collect();
        let written = self
            .hubspot
            .batch_upsert("tasks", TASK_ID_PROPERTY, &inputs)
            .await
            .map_err(|e| e.to_string())?;
        self.failpoint("after_activity_write:Task");
        let task_of = |id: &str| {
            written.records.iter().find(|r| {
                text(&r.properties, TASK_ID_PROPERTY)
                    .is_some_and(|t| crate::domain::same_salesforce_id(t, id))
            })
        };
        let mut associate: HashMap<&str, Vec<(String, String)>> = HashMap::new();
        for p in &pending {
            let Some(task) = task_of(&p.id) else {
                continue;
            };
            let targets = [
                ("contacts", p.hung.who.as_ref().map(|(_, i)| i.clone())),
                ("companies", p.hung.account.clone()),
                ("deals", p.hung.opportunity.clone()),
            ];
            for (target, hubspot_id) in targets {
                if let Some(h) = hubspot_id {
                    associate
                        .entry(target)
                        .or_default()
                        .push((task.id.clone(), h));
                }
            }
        }
        for (target, pairs) in &associate {
            self.hubspot
                .associate("tasks", target, pairs)
                .await
                .map_err(|e| e.to_string())?;
        }
        for p in pending {
            let mine = indexes_of(items, which, &p.id);
            let first = &items[mine[0]];
            let outcome = match task_of(&p.id) {
                Some(task) => {
                    let mut event = self.event(first, Side::Salesforce, Outcome::Synced, now);
                    event.linked = written
                        .created
                        .contains(&task.id)
                        .then_some(Linking::CreatedInHubSpot);
                    self.record(event).await;
                    ItemOutcome::Done
                }
                None => match written.errors.iter().find(|e| e.key == p.id) {
                    Some(e) => {
                        self.hubspot_failed(first, Side::Salesforce, &e.category, &e.message, now)
                            .await
                    }
                    None => ItemOutcome::Retry("HubSpot returned no task for it".into()),
                },
            };
            for n in mine {
                outcomes[n] = outcome.clone();
            }
        }
        Ok(())
    }

    /// The HubSpot records a Task's `WhoId` and `WhatId` are linked with.
    async fn hung_in_hubspot(
        &self,
        who: Option<&str>,
        what: Option<&str>,
    ) -> Result<Hung, crate::ports::StoreError> {
        let mut hung = Hung::default();
        if let Some(who) = who {
            let sobject = if who.starts_with("00Q") {
                "Lead"
            } else {
                "Contact"
            };
            match self.links.by_salesforce(sobject, who).await? {
                Some(l) => hung.who = Some(("contacts".into(), l.hubspot_id)),
                None => hung.unsynced = Some(format!("Salesforce {sobject} {who}")),
            }
        }
        if let Some(what) = what {
            if what.starts_with("001") {
                hung.account = self
                    .links
                    .by_salesforce("Account", what)
                    .await?
                    .map(|l| l.hubspot_id);
            } else if what.starts_with("006") {
                hung.opportunity = self
                    .links
                    .by_salesforce("Opportunity", what)
                    .await?
                    .map(|l| l.hubspot_id);
            }
        }
        Ok(hung)
    }
}

fn unique_ids(items: &[WorkItem], which: &[usize]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for &n in which {
        if !ids.contains(&items[n].id) {
            ids.push(items[n].id.clone());
        }
    }
    ids
}

fn indexes_of(items: &[WorkItem], which: &[usize], id: &str) -> Vec<usize> {
    which
        .iter()
        .copied()
        .filter(|&n| items[n].id == id)
        .collect()
}

fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}
