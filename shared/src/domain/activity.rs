//! HubSpot engagements (calls, emails, meetings, notes, tasks) as Salesforce tasks, and
//! Salesforce tasks as HubSpot tasks.
//!
//! An activity flows from the side it was made on, never back: an engagement becomes
//! one Task (upserted on `HubSpot_Engagement_Id__c`, so a replay never makes a second),
//! hung on the Salesforce lead/contact (`WhoId`) and, where known and allowed, the
//! opportunity or account (`WhatId`); a Salesforce Task becomes one HubSpot task
//! (upserted on `salesforcetaskid`). A Task that carries an engagement id, or a HubSpot
//! task that carries a Task id, was written by the sync and is not copied back. Texts
//! are cut to the Task's field lengths here, so a long email body never fails the
//! record with STRING_TOO_LONG; the cut is reported.

use serde_json::{Map, Value};

use super::config::{ActivityType, MarketingEmailEvent};
use super::value::{FieldType, normalize};

/// `Task.Subject` holds 255 characters.
pub const SUBJECT_MAX: usize = 255;
/// `Task.Description` (Comments) holds 32,000 characters.
pub const DESCRIPTION_MAX: usize = 32_000;

/// The Task field that holds the HubSpot engagement id (an external id: Tasks are
/// upserted on it).
pub const ENGAGEMENT_ID_FIELD: &str = "HubSpot_Engagement_Id__c";
/// The HubSpot task property that holds the Salesforce Task id (unique: HubSpot tasks
/// are upserted on it).
pub const TASK_ID_PROPERTY: &str = "salesforcetaskid";
/// The Task fields a Salesforce Task -> HubSpot task sync reads.
pub const TASK_FIELDS: [&str; 11] = [
    "Id",
    "Subject",
    "Description",
    "Status",
    "Priority",
    "ActivityDate",
    "CreatedDate",
    "WhoId",
    "WhatId",
    "OwnerId",
    ENGAGEMENT_ID_FIELD,
];

/// The engagement type whose HubSpot object is `object`.
pub fn kind_of(object: &str) -> Option<ActivityType> {
    [
        ActivityType::Email,
        ActivityType::Meeting,
        ActivityType::Call,
        ActivityType::Note,
        ActivityType::Task,
    ]
    .into_iter()
    .find(|k| hubspot_object(*k) == object)
}

/// The HubSpot object type of an engagement type (`calls`, `emails`...).
pub fn hubspot_object(kind: ActivityType) -> &'static str {
    match kind {
        ActivityType::Email => "emails",
        ActivityType::Meeting => "meetings",
        ActivityType::Call => "calls",
        ActivityType::Note => "notes",
        ActivityType::Task => "tasks",
    }
}

/// Where the task hangs in Salesforce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskLinks {
    /// The linked lead or contact.
    pub who_id: Option<String>,
    /// The linked account or opportunity.
    pub what_id: Option<String>,
    /// The Salesforce user who owns it.
    pub owner_id: Option<String>,
}

/// A Salesforce Task built from one engagement, and what had to be cut to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPlan {
    pub fields: Map<String, Value>,
    /// Fields whose text was cut to the Task's limit.
    pub truncated: Vec<&'static str>,
}

/// The HubSpot properties each engagement type reads (to request them, nothing more).
pub fn properties(kind: ActivityType) -> &'static [&'static str] {
    match kind {
        ActivityType::Call => &[
            "hs_timestamp",
            "hs_call_title",
            "hs_call_body",
            "hs_call_duration",
            "hs_call_direction",
            "hs_call_status",
        ],
        ActivityType::Email => &[
            "hs_timestamp",
            "hs_email_subject",
            "hs_email_text",
            "hs_email_direction",
        ],
        ActivityType::Meeting => &[
            "hs_timestamp",
            "hs_meeting_title",
            "hs_meeting_body",
            "hs_meeting_start_time",
            "hs_meeting_outcome",
        ],
        ActivityType::Note => &["hs_timestamp", "hs_note_body"],
        ActivityType::Task => &[
            "hs_timestamp",
            "hs_task_subject",
            "hs_task_body",
            "hs_task_status",
            "hs_task_priority",
        ],
    }
}

fn text<'a>(props: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    props
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn cut(s: &str, max: usize) -> (String, bool) {
    match s.char_indices().nth(max) {
        Some((i, _)) => (s[..i].to_owned(), true),
        None => (s.to_owned(), false),
    }
}

/// The HTML HubSpot keeps in bodies, reduced to text: tags dropped, the common
/// entities decoded, `<br>` and `</p>` as line breaks.
fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
        if tag.starts_with("br") || tag == "/p" || tag == "/div" || tag == "/li" {
            out.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim()
        .to_owned()
}

impl TaskLinks {
    /// The Task's `WhoId`, `WhatId` and `OwnerId`, those it has.
    fn write_into(&self, fields: &mut Map<String, Value>) {
        for (key, id) in [
            ("WhoId", &self.who_id),
            ("WhatId", &self.what_id),
            ("OwnerId", &self.owner_id),
        ] {
            if let Some(id) = id {
                fields.insert(key.into(), Value::String(id.clone()));
            }
        }
    }

    /// Where a Task hangs: on its person (`who`: the sObject and id), and on the
    /// opportunity, else the account, it concerns. Salesforce refuses a `WhatId` on a
    /// Task whose `WhoId` is a Lead (a Lead belongs to no account), so a Lead's Task has
    /// none.
    pub fn of(
        who: Option<(&str, &str)>,
        opportunity: Option<&str>,
        account: Option<&str>,
        owner: Option<&str>,
    ) -> TaskLinks {
        let on_lead = who.is_some_and(|(o, _)| o == "Lead");
        TaskLinks {
            who_id: who.map(|(_, id)| id.to_owned()),
            what_id: (!on_lead)
                .then(|| opportunity.or(account).map(str::to_owned))
                .flatten(),
            owner_id: owner.map(str::to_owned),
        }
    }
}

/// The HubSpot task for one Salesforce Task (`row`, with [`TASK_FIELDS`]): its
/// properties, the Task id among them.
pub fn hubspot_task_from_salesforce(
    row: &Map<String, Value>,
    owner: Option<&str>,
) -> Map<String, Value> {
    let mut p = Map::new();
    let subject = text(row, "Subject").unwrap_or("Task");
    p.insert("hs_task_subject".into(), Value::String(subject.to_owned()));
    if let Some(body) = text(row, "Description") {
        p.insert("hs_task_body".into(), Value::String(body.to_owned()));
    }
    let status = match text(row, "Status") {
        Some("Completed") => "COMPLETED",
        Some("In Progress") => "IN_PROGRESS",
        Some("Waiting on someone else") => "WAITING",
        Some("Deferred") => "DEFERRED",
        _ => "NOT_STARTED",
    };
    p.insert("hs_task_status".into(), Value::String(status.into()));
    let priority = match text(row, "Priority") {
        Some("High") => "HIGH",
        Some("Low") => "LOW",
        _ => "MEDIUM",
    };
    p.insert("hs_task_priority".into(), Value::String(priority.into()));
    // HubSpot requires hs_timestamp: the due date, else when the Task was made.
    let when = text(row, "ActivityDate")
        .map(|d| format!("{d}T00:00:00.000Z"))
        .or_else(|| text(row, "CreatedDate").map(str::to_owned));
    if let Some(when) = when {
        p.insert("hs_timestamp".into(), Value::String(when));
    }
    if let Some(owner) = owner {
        p.insert("hubspot_owner_id".into(), Value::String(owner.to_owned()));
    }
    if let Some(id) = text(row, "Id") {
        p.insert(TASK_ID_PROPERTY.into(), Value::String(id.to_owned()));
    }
    p
}

/// The Task id field value of a form submission (its conversion id is unique).
pub fn submission_task_id(conversion_id: &str) -> String {
    format!("form:{conversion_id}")
}

/// The Salesforce Task for a HubSpot form submission: which form, by whom, when.
pub fn task_from_submission(
    form: &str,
    email: &str,
    submitted_at_ms: i64,
    links: &TaskLinks,
) -> TaskPlan {
    let mut fields = Map::new();
    let mut truncated = Vec::new();
    let (subject, was_cut) = cut(&format!("Form submission: {form}"), SUBJECT_MAX);
    if was_cut {
        truncated.push("Subject");
    }
    fields.insert("Subject".into(), Value::String(subject));
    fields.insert(
        "Description".into(),
        Value::String(format!("{email} submitted the HubSpot form {form}.")),
    );
    for (k, v) in [
        ("Type", "Other"),
        ("Status", "Completed"),
        ("Priority", "Normal"),
    ] {
        fields.insert(k.into(), Value::String(v.into()));
    }
    if let Some(day) = chrono::DateTime::from_timestamp_millis(submitted_at_ms) {
        fields.insert(
            "ActivityDate".into(),
            Value::String(day.format("%Y-%m-%d").to_string()),
        );
    }
    links.write_into(&mut fields);
    TaskPlan { fields, truncated }
}

/// The Task id field value of a marketing email event (its event id is unique).
pub fn email_event_task_id(event_id: &str) -> String {
    format!("email:{event_id}")
}

/// The Salesforce Task for a marketing email event: the email, what the recipient did,
/// when.
pub fn task_from_email_event(
    kind: MarketingEmailEvent,
    subject: &str,
    recipient: &str,
    created_ms: i64,
    links: &TaskLinks,
) -> TaskPlan {
    let mut plan = task_from_submission(subject, recipient, created_ms, links);
    let (line, was_cut) = cut(
        &format!("Marketing email {}: {subject}", kind.past_tense()),
        SUBJECT_MAX,
    );
    plan.truncated.retain(|f| *f != "Subject");
    if was_cut {
        plan.truncated.push("Subject");
    }
    plan.fields.insert("Subject".into(), Value::String(line));
    plan.fields.insert(
        "Description".into(),
        Value::String(format!(
            "{recipient} {} the HubSpot marketing email \"{subject}\".",
            kind.past_tense()
        )),
    );
    plan.fields
        .insert("Type".into(), Value::String("Email".into()));
    plan
}

/// The Salesforce Task for one HubSpot engagement.
pub fn task_from_engagement(
    kind: ActivityType,
    props: &Map<String, Value>,
    links: &TaskLinks,
) -> TaskPlan {
    // `Type`, not `TaskSubtype`: Salesforce sets a Task's subtype when it is made and
    // refuses it on update, and a Task is upserted (made or updated in one call).
    let (subject, body, task_type) = match kind {
        ActivityType::Call => (
            text(props, "hs_call_title").unwrap_or("Call"),
            text(props, "hs_call_body"),
            "Call",
        ),
        ActivityType::Email => (
            text(props, "hs_email_subject").unwrap_or("Email"),
            text(props, "hs_email_text"),
            "Email",
        ),
        ActivityType::Meeting => (
            text(props, "hs_meeting_title").unwrap_or("Meeting"),
            text(props, "hs_meeting_body"),
            "Meeting",
        ),
        ActivityType::Note => ("Note", text(props, "hs_note_body"), "Other"),
        ActivityType::Task => (
            text(props, "hs_task_subject").unwrap_or("Task"),
            text(props, "hs_task_body"),
            "Other",
        ),
    };
    let mut fields = Map::new();
    let mut truncated = Vec::new();
    let (subject, was_cut) = cut(subject, SUBJECT_MAX);
    if was_cut {
        truncated.push("Subject");
    }
    fields.insert("Subject".into(), Value::String(subject));
    if let Some(body) = body {
        let (description, was_cut) = cut(&plain_text(body), DESCRIPTION_MAX);
        if was_cut {
            truncated.push("Description");
        }
        fields.insert("Description".into(), Value::String(description));
    }
    fields.insert("Type".into(), Value::String(task_type.into()));
    let when = kind_time(kind, props);
    if let Some(date) = when {
        fields.insert("ActivityDate".into(), Value::String(date));
    }
    let (status, priority) = match kind {
        ActivityType::Task => (
            match text(props, "hs_task_status") {
                Some("COMPLETED") => "Completed",
                Some("IN_PROGRESS") => "In Progress",
                Some("WAITING") => "Waiting on someone else",
                Some("DEFERRED") => "Deferred",
                _ => "Not Started",
            },
            match text(props, "hs_task_priority") {
                Some("HIGH") => "High",
                Some("LOW") => "Low",
                _ => "Normal",
            },
        ),
        // A logged call, email, meeting or note already happened.
        _ => ("Completed", "Normal"),
    };
    fields.insert("Status".into(), Value::String(status.into()));
    fields.insert("Priority".into(), Value::String(priority.into()));
    if kind == ActivityType::Call {
        if let Some(ms) = text(props, "hs_call_duration").and_then(|d| d.parse::<u64>().ok()) {
            fields.insert("CallDurationInSeconds".into(), Value::from(ms / 1000));
        }
        let call_type = match text(props, "hs_call_direction") {
            Some("INBOUND") => Some("Inbound"),
            Some("OUTBOUND") => Some("Outbound"),
            _ => None,
        };
        if let Some(t) = call_type {
            fields.insert("CallType".into(), Value::String(t.into()));
        }
    }
    links.write_into(&mut fields);
    TaskPlan { fields, truncated }
}

/// The task's date: a meeting's start, otherwise the engagement's timestamp.
fn kind_time(kind: ActivityType, props: &Map<String, Value>) -> Option<String> {
    let key = match kind {
        ActivityType::Meeting if props.contains_key("hs_meeting_start_time") => {
            "hs_meeting_start_time"
        }
        _ => "hs_timestamp",
    };
    let raw = props.get(key)?;
    normalize(raw, FieldType::Date)
        .ok()
        .filter(|c| !c.is_blank())
        .map(|c| c.text().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_logged_call_becomes_a_completed_call_task() {
        let links = TaskLinks {
            who_id: Some("003A".into()),
            what_id: Some("001B".into()),
            owner_id: None,
        };
        let plan = task_from_engagement(
            ActivityType::Call,
            &props(json!({
                "hs_call_title": "Discovery call",
                "hs_call_body": "<p>Talked budget &amp; timing</p><br>Next: demo",
                "hs_timestamp": "2024-05-03T15:30:00.000Z",
                "hs_call_duration": "125000",
                "hs_call_direction": "OUTBOUND"
            })),
            &links,
        );
        assert_eq!(
            Value::Object(plan.fields),
            json!({
                "Subject": "Discovery call",
                "Description": "Talked budget & timing\n\nNext: demo",
                "Type": "Call",
                "ActivityDate": "2024-05-03",
                "Status": "Completed",
                "Priority": "Normal",
                "CallDurationInSeconds": 125,
                "CallType": "Outbound",
                "WhoId": "003A",
                "WhatId": "001B"
            })
        );
        assert!(plan.truncated.is_empty());
    }

    #[test]
    fn a_hubspot_task_keeps_its_status_and_priority() {
        let plan = task_from_engagement(
            ActivityType::Task,
            &props(
                json!({"hs_task_subject": "Send contract", "hs_task_status": "NOT_STARTED", "hs_task_priority": "HIGH", "hs_timestamp": "1714752000000"}),
            ),
            &TaskLinks::default(),
        );
        assert_eq!(plan.fields["Status"], "Not Started");
        assert_eq!(plan.fields["Priority"], "High");
        assert_eq!(plan.fields["ActivityDate"], "2024-05-03");
    }

    #[test]
    fn long_texts_are_cut_to_the_task_limits_and_reported() {
        let long = "x".repeat(SUBJECT_MAX + 10);
        let plan = task_from_engagement(
            ActivityType::Email,
            &props(
                json!({"hs_email_subject": long, "hs_email_text": "y".repeat(DESCRIPTION_MAX + 1)}),
            ),
            &TaskLinks::default(),
        );
        assert_eq!(plan.truncated, vec!["Subject", "Description"]);
        assert_eq!(
            plan.fields["Subject"].as_str().map(str::len),
            Some(SUBJECT_MAX)
        );
    }

    #[test]
    fn a_leads_task_has_no_what_and_a_contacts_prefers_the_opportunity() {
        let lead = TaskLinks::of(Some(("Lead", "00QA")), Some("006B"), Some("001C"), None);
        assert_eq!(lead.what_id, None);
        let contact = TaskLinks::of(Some(("Contact", "003A")), Some("006B"), Some("001C"), None);
        assert_eq!(contact.what_id.as_deref(), Some("006B"));
        let company = TaskLinks::of(None, None, Some("001C"), Some("005D"));
        assert_eq!(
            (
                company.who_id,
                company.what_id.as_deref(),
                company.owner_id.as_deref()
            ),
            (None, Some("001C"), Some("005D"))
        );
    }

    #[test]
    fn a_salesforce_task_becomes_a_hubspot_task_naming_it() {
        let p = hubspot_task_from_salesforce(
            &props(
                json!({"Id": "00TA", "Subject": "Call back", "Status": "Completed", "Priority": "High", "ActivityDate": "2024-05-03", "HubSpot_Engagement_Id__c": null}),
            ),
            Some("77"),
        );
        assert_eq!(
            Value::Object(p),
            json!({
                "hs_task_subject": "Call back",
                "hs_task_status": "COMPLETED",
                "hs_task_priority": "HIGH",
                "hs_timestamp": "2024-05-03T00:00:00.000Z",
                "hubspot_owner_id": "77",
                "salesforcetaskid": "00TA"
            })
        );
        assert_eq!(kind_of("emails"), Some(ActivityType::Email));
        assert_eq!(kind_of("contacts"), None);
    }

    #[test]
    fn a_form_submission_is_a_completed_task_on_its_day() {
        let links = TaskLinks::of(Some(("Lead", "00QA")), None, None, None);
        let plan = task_from_submission("Contact us", "a@b.example", 1_714_752_000_000, &links);
        assert_eq!(plan.fields["Subject"], "Form submission: Contact us");
        assert_eq!(plan.fields["ActivityDate"], "2024-05-03");
        assert_eq!(plan.fields["WhoId"], "00QA");
        assert_eq!(plan.fields["Status"], "Completed");
        assert_eq!(submission_task_id("c-1"), "form:c-1");
    }

    #[test]
    fn an_opened_marketing_email_is_an_email_task() {
        let plan = task_from_email_event(
            MarketingEmailEvent::Open,
            "Spring offers",
            "a@b.example",
            1_714_752_000_000,
            &TaskLinks::default(),
        );
        assert_eq!(
            plan.fields["Subject"],
            "Marketing email opened: Spring offers"
        );
        assert_eq!(plan.fields["Type"], "Email");
        assert_eq!(plan.fields["ActivityDate"], "2024-05-03");
        assert_eq!(email_event_task_id("e1"), "email:e1");
    }

    #[test]
    fn a_note_without_a_title_is_called_note() {
        let plan = task_from_engagement(
            ActivityType::Note,
            &props(json!({"hs_note_body": "hi"})),
            &TaskLinks::default(),
        );
        assert_eq!(plan.fields["Subject"], "Note");
        assert_eq!(plan.fields["Type"], "Other");
    }
}
