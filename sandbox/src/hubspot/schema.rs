//! The object types and properties a new portal starts with: HubSpot's standard objects
//! (with the properties crmsync and its tests touch; line items and products with their
//! common ones) and two custom objects.

use super::store::{ObjectKind, PropType, PropertyDef};

/// HubSpot's default deal pipeline (`default`) stages, in order.
pub const DEAL_STAGES: [&str; 7] = [
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];

/// The stages of the portal's second deal pipeline, `enterprise`.
pub const ENTERPRISE_DEAL_STAGES: [&str; 4] =
    ["ent_discovery", "ent_negotiation", "ent_won", "ent_lost"];

pub const LIFECYCLE_STAGES: [&str; 8] = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];

/// The custom objects every portal has: machines, `2-1001` / `p_machines`, and
/// subscriptions, `2-1002` / `p_subscriptions`.
pub const CUSTOM_OBJECT: (&str, &str) = ("p_machines", "2-1001");
pub const SECOND_CUSTOM_OBJECT: (&str, &str) = ("p_subscriptions", "2-1002");

fn prop(name: &str, ty: PropType) -> PropertyDef {
    PropertyDef {
        name: name.into(),
        label: name.replace('_', " "),
        ty,
        options: Vec::new(),
        read_only: false,
        calculated: false,
        unique: false,
    }
}

fn text(names: &[&str]) -> Vec<PropertyDef> {
    names.iter().map(|n| prop(n, PropType::String)).collect()
}

fn enumeration(name: &str, options: &[&str]) -> PropertyDef {
    let mut p = prop(name, PropType::Enumeration);
    p.options = options.iter().map(|o| (*o).to_owned()).collect();
    p
}

fn kind(name: &str, type_id: &str, upper: &str, defaults: &[&'static str]) -> ObjectKind {
    ObjectKind {
        name: name.into(),
        type_id: type_id.into(),
        upper: upper.into(),
        default_properties: defaults.to_vec(),
        modified_property: if name == "contacts" {
            "lastmodifieddate"
        } else {
            "hs_lastmodifieddate"
        },
    }
}

const OBJECT_DEFAULTS: [&str; 3] = ["createdate", "hs_lastmodifieddate", "hs_object_id"];

pub fn standard_objects() -> Vec<(ObjectKind, Vec<PropertyDef>)> {
    let owner = || prop("hubspot_owner_id", PropType::Enumeration);
    let mut contacts = text(&[
        "firstname",
        "lastname",
        "company",
        "jobtitle",
        "address",
        "city",
        "state",
        "zip",
        "country",
        "website",
        "hs_lead_status",
        "salesforceleadid",
        "salesforcecontactid",
        "salesforceobjecttype",
    ]);
    let mut email = prop("email", PropType::String);
    email.unique = true;
    contacts.extend([
        email,
        prop("phone", PropType::Phone),
        enumeration("lifecyclestage", &LIFECYCLE_STAGES),
        owner(),
    ]);
    let mut companies = text(&[
        "name",
        "domain",
        "city",
        "state",
        "country",
        "phone",
        "salesforceaccountid",
    ]);
    companies.extend([
        enumeration(
            "industry",
            &[
                "COMPUTER_SOFTWARE",
                "FINANCIAL_SERVICES",
                "RETAIL",
                "HOSPITAL_HEALTH_CARE",
                "LOGISTICS_AND_SUPPLY_CHAIN",
                "EDUCATION_MANAGEMENT",
            ],
        ),
        prop("annualrevenue", PropType::Number),
        prop("numberofemployees", PropType::Number),
        enumeration("lifecyclestage", &LIFECYCLE_STAGES),
        owner(),
    ]);
    let mut deals = text(&["dealname", "salesforceopportunityid"]);
    deals.extend([
        prop("amount", PropType::Number),
        prop("closedate", PropType::DateTime),
        enumeration("pipeline", &["default", "enterprise"]),
        enumeration(
            "dealstage",
            &[DEAL_STAGES.as_slice(), ENTERPRISE_DEAL_STAGES.as_slice()].concat(),
        ),
        owner(),
    ]);
    let mut tickets = text(&["subject", "content", "salesforcecaseid"]);
    tickets.extend([
        enumeration("hs_pipeline", &["0"]),
        enumeration("hs_pipeline_stage", &["1", "2", "3", "4"]),
        enumeration("hs_ticket_priority", &["LOW", "MEDIUM", "HIGH"]),
        owner(),
    ]);
    let engagement = |names: &[&str]| {
        let mut p = text(names);
        p.push(prop("hs_timestamp", PropType::DateTime));
        p.push(owner());
        p
    };
    let mut calls = engagement(&["hs_call_title", "hs_call_body", "hs_call_status"]);
    calls.push(prop("hs_call_duration", PropType::Number));
    calls.push(enumeration("hs_call_direction", &["INBOUND", "OUTBOUND"]));
    let mut emails = engagement(&["hs_email_subject", "hs_email_text"]);
    emails.push(enumeration(
        "hs_email_direction",
        &["EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"],
    ));
    let mut meetings = engagement(&["hs_meeting_title", "hs_meeting_body", "hs_meeting_outcome"]);
    meetings.push(prop("hs_meeting_start_time", PropType::DateTime));
    meetings.push(prop("hs_meeting_end_time", PropType::DateTime));
    let notes = engagement(&["hs_note_body"]);
    let mut tasks = engagement(&["hs_task_subject", "hs_task_body"]);
    tasks.push(enumeration(
        "hs_task_status",
        &[
            "NOT_STARTED",
            "IN_PROGRESS",
            "WAITING",
            "COMPLETED",
            "DEFERRED",
        ],
    ));
    tasks.push(enumeration("hs_task_priority", &["LOW", "MEDIUM", "HIGH"]));
    // The Salesforce Task a task was made from, as an integration's setup creates it.
    let mut task_id = prop("salesforcetaskid", PropType::String);
    task_id.unique = true;
    tasks.push(task_id);
    let mut line_items = text(&["name", "description", "hs_sku", "hs_product_id"]);
    line_items.push(prop("price", PropType::Number));
    line_items.push(prop("quantity", PropType::Number));
    let mut amount = prop("amount", PropType::Number);
    amount.read_only = true;
    amount.calculated = true;
    line_items.push(amount);
    let mut products = text(&[
        "name",
        "description",
        "hs_sku",
        "hs_recurring_billing_period",
    ]);
    products.push(prop("price", PropType::Number));
    products.push(prop("hs_cost_of_goods_sold", PropType::Number));
    let mut machines = text(&["name", "model", "salesforcemachineid"]);
    let mut serial = prop("serial_number", PropType::String);
    serial.unique = true;
    machines.push(serial);
    machines.push(prop("purchase_date", PropType::Date));
    let mut subscriptions = text(&["name", "plan", "salesforcesubscriptionid"]);
    let mut code = prop("subscription_code", PropType::String);
    code.unique = true;
    subscriptions.push(code);
    subscriptions.push(prop("seats", PropType::Number));
    vec![
        (
            kind(
                "contacts",
                "0-1",
                "CONTACT",
                &[
                    "createdate",
                    "email",
                    "firstname",
                    "hs_object_id",
                    "lastmodifieddate",
                    "lastname",
                ],
            ),
            contacts,
        ),
        (
            kind(
                "companies",
                "0-2",
                "COMPANY",
                &[
                    "createdate",
                    "domain",
                    "hs_lastmodifieddate",
                    "hs_object_id",
                    "name",
                ],
            ),
            companies,
        ),
        (
            kind(
                "deals",
                "0-3",
                "DEAL",
                &[
                    "amount",
                    "closedate",
                    "createdate",
                    "dealname",
                    "dealstage",
                    "hs_lastmodifieddate",
                    "hs_object_id",
                    "pipeline",
                ],
            ),
            deals,
        ),
        (kind("tickets", "0-5", "TICKET", &OBJECT_DEFAULTS), tickets),
        (kind("calls", "0-48", "CALL", &OBJECT_DEFAULTS), calls),
        (kind("emails", "0-49", "EMAIL", &OBJECT_DEFAULTS), emails),
        (
            kind("meetings", "0-47", "MEETING", &OBJECT_DEFAULTS),
            meetings,
        ),
        (kind("notes", "0-46", "NOTE", &OBJECT_DEFAULTS), notes),
        (kind("tasks", "0-27", "TASK", &OBJECT_DEFAULTS), tasks),
        (
            kind(
                "line_items",
                "0-8",
                "LINE_ITEM",
                &[
                    "createdate",
                    "hs_lastmodifieddate",
                    "hs_object_id",
                    "name",
                    "price",
                    "quantity",
                ],
            ),
            line_items,
        ),
        (
            kind(
                "products",
                "0-7",
                "PRODUCT",
                &[
                    "createdate",
                    "description",
                    "hs_lastmodifieddate",
                    "hs_object_id",
                    "name",
                    "price",
                ],
            ),
            products,
        ),
        (
            kind(
                CUSTOM_OBJECT.0,
                CUSTOM_OBJECT.1,
                "P_MACHINES",
                &OBJECT_DEFAULTS,
            ),
            machines,
        ),
        (
            kind(
                SECOND_CUSTOM_OBJECT.0,
                SECOND_CUSTOM_OBJECT.1,
                "P_SUBSCRIPTIONS",
                &OBJECT_DEFAULTS,
            ),
            subscriptions,
        ),
    ]
}
