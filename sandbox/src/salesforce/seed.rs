//! Loading the shared seed world into the org: owners as users, then the Salesforce
//! side of every company (accounts), person (contacts at companies present in
//! Salesforce, leads otherwise) and deal (opportunities).

use serde_json::{Map, Value, json};

use super::store::{ADMIN_USER, Org};
use crate::seed::World;

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Seeds the org; returns how many records of each object it created.
pub fn seed(org: &mut Org, world: &World, now: i64) -> Value {
    let users: Vec<String> = world
        .owners
        .iter()
        .map(|o| {
            let f = fields(json!({"Username": o.email, "Email": o.email, "FirstName": o.first_name, "LastName": o.last_name, "IsActive": true}));
            org.seed("User", f, now, &ADMIN_USER).unwrap_or_default()
        })
        .collect();
    let owner = |i: usize| users.get(i).cloned().unwrap_or_else(|| ADMIN_USER.clone());
    let mut accounts = std::collections::HashMap::new();
    for (i, c) in world
        .companies
        .iter()
        .enumerate()
        .filter(|(_, c)| c.presence.in_salesforce())
    {
        let f = fields(json!({
            "Name": c.name, "Website": format!("https://www.{}/", c.domain), "Industry": "Technology",
            "NumberOfEmployees": c.employees, "AnnualRevenue": c.annual_revenue, "OwnerId": owner(c.owner),
        }));
        if let Some(id) = org.seed("Account", f, now, &ADMIN_USER) {
            accounts.insert(i, id);
        }
    }
    let (mut contacts, mut leads) = (0, 0);
    let mut contact_ids = std::collections::HashMap::new();
    for (i, p) in world
        .people
        .iter()
        .enumerate()
        .filter(|(_, p)| p.presence.in_salesforce())
    {
        let mut f = fields(json!({
            "FirstName": p.first_name, "LastName": p.last_name, "Phone": p.phone,
            "Title": p.job_title.chars().take(128).collect::<String>(), "OwnerId": owner(p.owner),
        }));
        if let Some(email) = &p.email {
            f.insert("Email".into(), json!(email));
        }
        match accounts.get(&p.company) {
            Some(account) if i % 3 != 0 => {
                f.insert("AccountId".into(), json!(account));
                if let Some(id) = org.seed("Contact", f, now, &ADMIN_USER) {
                    contact_ids.insert(i, id);
                }
                contacts += 1;
            }
            _ => {
                f.insert("Company".into(), json!(world.companies[p.company].name));
                f.insert("Status".into(), json!("Open - Not Contacted"));
                org.seed("Lead", f, now, &ADMIN_USER);
                leads += 1;
            }
        }
    }
    let stages = [
        "Prospecting",
        "Qualification",
        "Proposal/Price Quote",
        "Id. Decision Makers",
        "Negotiation/Review",
        "Closed Won",
        "Closed Lost",
    ];
    let mut opportunities = 0;
    for d in world.deals.iter().filter(|d| d.presence.in_salesforce()) {
        let close = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(d.close_date_ms)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let mut f = fields(json!({
            "Name": d.name, "StageName": stages[d.stage % stages.len()], "CloseDate": close,
            "Amount": d.amount, "OwnerId": owner(d.owner),
        }));
        if let Some(a) = accounts.get(&d.company) {
            f.insert("AccountId".into(), json!(a));
        }
        if let Some(opportunity) = org.seed("Opportunity", f, now, &ADMIN_USER) {
            if let Some(contact) = contact_ids.get(&d.contact) {
                let role = fields(
                    json!({"OpportunityId": opportunity, "ContactId": contact, "Role": "Decision Maker", "IsPrimary": true}),
                );
                org.seed("OpportunityContactRole", role, now, &ADMIN_USER);
            }
            opportunities += 1;
        }
    }
    json!({"accounts": accounts.len(), "contacts": contacts, "leads": leads, "opportunities": opportunities, "users": users.len()})
}
