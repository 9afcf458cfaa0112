//! Loading the shared seed world into the portal: owners, then the HubSpot side of every
//! company, contact and deal.

use std::sync::Arc;

use serde_json::{Value, json};

use super::associations::{Associations, default_type};
use super::error::HsError;
use super::schema::DEAL_STAGES;
use super::store::{Portal, Source};
use crate::seed::World;

/// HubSpot owner ids start here; owner `i` of the world is `OWNER_BASE + i`.
pub const OWNER_BASE: u64 = 70_000_001;

/// Property values keyed by the definitions' own names, so a million records share one
/// allocation per property name.
fn checked(
    portal: &Portal,
    type_name: &str,
    pairs: Vec<(&str, String)>,
) -> Vec<(Arc<str>, String)> {
    let objects = portal.objects(type_name).ok();
    pairs
        .into_iter()
        .map(|(k, v)| {
            let key = objects
                .and_then(|o| o.properties.get_key_value(k))
                .map(|(name, _)| name.clone())
                .unwrap_or_else(|| Arc::from(k));
            (key, v)
        })
        .collect()
}

/// Seeds the portal; returns how many records of each type it created.
pub fn seed(
    portal: &mut Portal,
    associations: &mut Associations,
    world: &World,
    now: i64,
) -> Result<Value, HsError> {
    portal.owners = world
        .owners
        .iter()
        .enumerate()
        .map(|(i, o)| {
            json!({
                "id": (OWNER_BASE + i as u64).to_string(),
                "email": o.email,
                "firstName": o.first_name,
                "lastName": o.last_name,
                "userId": 9_000 + i,
                "type": "PERSON",
                "archived": false,
            })
        })
        .collect();
    let owner = |i: usize| (OWNER_BASE + i as u64).to_string();
    let mut companies = 0;
    // World index -> HubSpot id, for associations.
    let mut company_ids = std::collections::HashMap::new();
    let mut contact_ids = std::collections::HashMap::new();
    for (i, c) in world
        .companies
        .iter()
        .enumerate()
        .filter(|(_, c)| c.presence.in_hubspot())
    {
        let props = checked(
            portal,
            "companies",
            vec![
                ("name", c.name.clone()),
                ("domain", c.domain.clone()),
                ("industry", c.industry.to_owned()),
                ("numberofemployees", c.employees.to_string()),
                ("annualrevenue", c.annual_revenue.to_string()),
                ("hubspot_owner_id", owner(c.owner)),
            ],
        );
        company_ids.insert(
            i,
            portal.create_checked("companies", props, now, Source::Import)?,
        );
        companies += 1;
    }
    let mut contacts = 0;
    for (i, p) in world
        .people
        .iter()
        .enumerate()
        .filter(|(_, p)| p.presence.in_hubspot())
    {
        let mut props = vec![
            ("firstname", p.first_name.clone()),
            ("lastname", p.last_name.clone()),
            ("phone", p.phone.clone()),
            ("jobtitle", p.job_title.clone()),
            ("company", world.companies[p.company].name.clone()),
            ("lifecyclestage", p.lifecycle_stage.to_owned()),
            ("hubspot_owner_id", owner(p.owner)),
        ];
        if let Some(email) = &p.email {
            props.push(("email", email.clone()));
        }
        let props = checked(portal, "contacts", props);
        let id = portal.create_checked("contacts", props, now, Source::Import)?;
        contact_ids.insert(i, id);
        if let Some(company) = company_ids.get(&p.company) {
            associations.link(
                ("contacts", id),
                ("companies", *company),
                &primary("contacts", "companies"),
            );
        }
        contacts += 1;
    }
    let mut deals = 0;
    for d in world.deals.iter().filter(|d| d.presence.in_hubspot()) {
        let props = checked(
            portal,
            "deals",
            vec![
                ("dealname", d.name.clone()),
                ("amount", d.amount.to_string()),
                ("closedate", crate::clock::iso(d.close_date_ms)),
                ("pipeline", "default".into()),
                (
                    "dealstage",
                    DEAL_STAGES[d.stage % DEAL_STAGES.len()].to_owned(),
                ),
                ("hubspot_owner_id", owner(d.owner)),
            ],
        );
        let id = portal.create_checked("deals", props, now, Source::Import)?;
        if let Some(company) = company_ids.get(&d.company) {
            associations.link(
                ("deals", id),
                ("companies", *company),
                &primary("deals", "companies"),
            );
        }
        if let Some(contact) = contact_ids.get(&d.contact) {
            associations.link(
                ("deals", id),
                ("contacts", *contact),
                &primary("deals", "contacts"),
            );
        }
        deals += 1;
    }
    portal.index_all();
    Ok(json!({"contacts": contacts, "companies": companies, "deals": deals}))
}

/// The unlabeled type, plus the primary one where the pair has it.
fn primary(from: &str, to: &str) -> Vec<(String, u32)> {
    match default_type(from, to) {
        Some((unlabeled, primary)) => std::iter::once(unlabeled)
            .chain(primary)
            .map(|t| ("HUBSPOT_DEFINED".to_owned(), t))
            .collect(),
        None => Vec::new(),
    }
}
