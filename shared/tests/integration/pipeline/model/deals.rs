//! Deals in the histories: deals made on either side (with their company), stage
//! changes on both sides close in time (through the default configuration's stage map,
//! where several Salesforce stages are one HubSpot stage), and association changes: a
//! person moves an Opportunity to another Account in Salesforce, or associates a deal
//! with another company in HubSpot.
//!
//! What the engine promises for a lookup and its association (`pipeline/lookups.rs`),
//! checked after each history: the Opportunity's Account is among the deal's HubSpot
//! companies; a deal with a synced company has an Opportunity with an Account; the last
//! Account a person chose in Salesforce stays. Removals are not copied (neither CRM
//! says which side removed), so a HubSpot association added to a deal whose Opportunity
//! already has an Account adds a company in HubSpot only.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::world::World;
use super::{Truth, domain, events_of};

/// Where deals sit in the truth's keys, after every person.
pub(super) const DEAL: usize = 10_000;
/// The stage, as the truth keeps it (beside the people's field indexes).
pub(super) const STAGE: usize = 0;

/// HubSpot's default pipeline's stages.
const HS_STAGES: [&str; 7] = [
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];

/// Salesforce's opportunity stages and the HubSpot stage each is (the default
/// configuration's `to_hubspot` map, written out here as the harness's own truth).
const SF_STAGES: [(&str, &str); 10] = [
    ("Prospecting", "appointmentscheduled"),
    ("Qualification", "qualifiedtobuy"),
    ("Needs Analysis", "qualifiedtobuy"),
    ("Value Proposition", "presentationscheduled"),
    ("Id. Decision Makers", "decisionmakerboughtin"),
    ("Perception Analysis", "decisionmakerboughtin"),
    ("Proposal/Price Quote", "presentationscheduled"),
    ("Negotiation/Review", "contractsent"),
    ("Closed Won", "closedwon"),
    ("Closed Lost", "closedlost"),
];

fn to_hubspot(stage: &str) -> Option<&'static str> {
    SF_STAGES.iter().find(|(s, _)| *s == stage).map(|(_, h)| *h)
}

fn name(d: usize) -> String {
    format!("Deal {d}")
}

/// A stage a person chooses: choice `c` of the side's stages.
pub(super) fn stage(in_salesforce: bool, c: usize) -> &'static str {
    if in_salesforce {
        SF_STAGES[c % SF_STAGES.len()].0
    } else {
        HS_STAGES[c % HS_STAGES.len()]
    }
}

/// Where a deal's records are.
#[derive(Debug, Default, Clone)]
pub(super) struct Deal {
    pub hubspot: Option<Value>,
    pub salesforce: Option<Value>,
}

impl Deal {
    fn hubspot_id(&self) -> Option<&str> {
        self.hubspot.as_ref().and_then(|h| h["id"].as_str())
    }

    fn salesforce_id(&self) -> Option<&str> {
        self.salesforce.as_ref().and_then(|s| s["Id"].as_str())
    }
}

/// Each deal's records, by name; an error when the engine made a second one.
pub(super) async fn deals_now(w: &World, count: usize) -> Result<Vec<Deal>, String> {
    let hubspot = w.hs_objects("deals").await;
    let salesforce = w.sf_records("Opportunity").await;
    let mut deals = Vec::new();
    for d in 0..count {
        let n = name(d);
        let hs: Vec<&Value> = hubspot
            .iter()
            .filter(|h| h["properties"]["dealname"] == json!(n))
            .collect();
        let sf: Vec<&Value> = salesforce
            .iter()
            .filter(|s| s["Name"] == json!(n))
            .collect();
        if hs.len() > 1 || sf.len() > 1 {
            return Err(format!(
                "{n}: {} HubSpot deals, {} Opportunities",
                hs.len(),
                sf.len()
            ));
        }
        deals.push(Deal {
            hubspot: hs.first().map(|v| (*v).clone()),
            salesforce: sf.first().map(|v| (*v).clone()),
        });
    }
    Ok(deals)
}

/// Company `m`'s synced HubSpot company and its Salesforce Account, when synced.
async fn company(w: &World, m: usize) -> Option<(String, String)> {
    let d = domain(m);
    w.hs_objects("companies").await.into_iter().find_map(|c| {
        let p = &c["properties"];
        let on = p["domain"].as_str().is_some_and(|s| s.contains(&d));
        let account = p["salesforceaccountid"].as_str().filter(|a| !a.is_empty());
        match (on, account) {
            (true, Some(a)) => Some((c["id"].as_str()?.to_owned(), a.to_owned())),
            _ => None,
        }
    })
}

/// Deal `d` made by a person in HubSpot (with its company) or in Salesforce (on its
/// Account), once the companies are synced.
pub(super) async fn create(w: &World, d: usize, in_salesforce: bool, m: Option<usize>) {
    let at = match m {
        Some(m) => company(w, m).await,
        None => None,
    };
    if in_salesforce {
        let mut fields = json!({"Name": name(d), "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": 1000 + d});
        if let Some((_, account)) = &at {
            fields["AccountId"] = json!(account);
        }
        w.sf_create("Opportunity", fields).await;
    } else {
        let deal = w
            .hs_create_object(
                "deals",
                json!({"dealname": name(d), "dealstage": "appointmentscheduled", "pipeline": "default", "amount": (1000 + d).to_string(), "closedate": "2026-12-31T00:00:00Z"}),
            )
            .await;
        if let Some((company, _)) = &at {
            w.hs_person_associates("deals", &deal, "companies", company)
                .await;
        }
    }
}

/// A person gives deal `d` another stage on one side. A stage it already has changes
/// nothing (no history, no newer value): not an edit the truth counts.
pub(super) async fn change_stage(
    w: &World,
    truth: &mut Truth,
    d: usize,
    in_salesforce: bool,
    choice: usize,
) -> Result<(), String> {
    let deals = deals_now(w, d + 1).await?;
    let deal = &deals[d];
    let to = stage(in_salesforce, choice);
    if in_salesforce {
        let Some(s) = &deal.salesforce else {
            return Ok(());
        };
        if s["StageName"] == json!(to) {
            return Ok(());
        }
        w.sf_update(
            "Opportunity",
            deal.salesforce_id().unwrap_or_default(),
            json!({"StageName": to}),
        )
        .await;
    } else {
        let Some(h) = &deal.hubspot else {
            return Ok(());
        };
        if h["properties"]["dealstage"] == json!(to) {
            return Ok(());
        }
        w.patch(
            &w.hs_control(&format!(
                "/objects/deals/{}",
                deal.hubspot_id().unwrap_or_default()
            )),
            json!({"properties": {"dealstage": to}}),
        )
        .await;
    }
    truth.edit(w, (DEAL + d, STAGE), to, in_salesforce);
    Ok(())
}

/// A person moves deal `d` to company `m`: in Salesforce, the Opportunity's Account;
/// in HubSpot, one more company associated with the deal.
pub(super) async fn move_to(
    w: &World,
    truth: &mut Truth,
    d: usize,
    in_salesforce: bool,
    m: usize,
) -> Result<(), String> {
    let Some((company, account)) = company(w, m).await else {
        return Ok(());
    };
    let deals = deals_now(w, d + 1).await?;
    let deal = &deals[d];
    if in_salesforce {
        let Some(id) = deal.salesforce_id() else {
            return Ok(());
        };
        let now = deal.salesforce.as_ref().map(|s| &s["AccountId"]);
        if now.is_some_and(|a| a.as_str().is_some_and(|a| same_id(a, &account))) {
            return Ok(());
        }
        w.sf_update("Opportunity", id, json!({"AccountId": account}))
            .await;
        truth.deal_accounts.insert(d, account);
    } else {
        let Some(id) = deal.hubspot_id() else {
            return Ok(());
        };
        // Associated already or not, a person's association costs the engine at
        // most one write (the Account, if it had none).
        w.hs_person_associates("deals", id, "companies", &company)
            .await;
    }
    *truth.edits.entry((DEAL + d, in_salesforce)).or_default() += 1;
    Ok(())
}

fn same_id(a: &str, b: &str) -> bool {
    a.len() >= 15 && b.len() >= 15 && a[..15] == b[..15]
}

/// Invariants 1-3 for deals: one record per side each, the stages agree through the
/// stage map and hold the last stage a person chose, and the Account and the deal's
/// companies agree as the engine promises.
pub(super) async fn check(w: &World, count: usize, truth: &Truth) -> Result<(), String> {
    let deals = deals_now(w, count).await?;
    let companies = w.hs_objects("companies").await;
    let account_of: BTreeMap<String, String> = companies
        .iter()
        .filter_map(|c| {
            let a = c["properties"]["salesforceaccountid"].as_str()?;
            Some((c["id"].as_str()?.to_owned(), a.to_owned()))
        })
        .filter(|(_, a)| !a.is_empty())
        .collect();
    for (d, deal) in deals.iter().enumerate() {
        let (Some(h), Some(s)) = (&deal.hubspot, &deal.salesforce) else {
            return Err(format!(
                "{}: HubSpot deal {:?}, Opportunity {:?}",
                name(d),
                deal.hubspot_id(),
                deal.salesforce_id()
            ));
        };
        let (hs_id, sf_id) = (
            deal.hubspot_id().unwrap_or_default(),
            deal.salesforce_id().unwrap_or_default(),
        );
        let events = || async {
            events_of(
                w,
                &[
                    ("hubspot", "deals", hs_id),
                    ("salesforce", "Opportunity", sf_id),
                ],
            )
            .await
        };
        let hs_stage = h["properties"]["dealstage"].as_str().unwrap_or_default();
        let sf_stage = s["StageName"].as_str().unwrap_or_default();
        // 1: the stages agree through the map.
        if to_hubspot(sf_stage) != Some(hs_stage) {
            return Err(format!(
                "{}: HubSpot stage {hs_stage:?}, Salesforce {sf_stage:?}\n{}",
                name(d),
                events().await
            ));
        }
        // 3: the last stage a person chose holds, on the side it was chosen.
        if let Some((last, _, in_salesforce)) = truth.last.get(&(DEAL + d, STAGE)) {
            let holds = if *in_salesforce { sf_stage } else { hs_stage };
            if holds != last {
                return Err(format!(
                    "{}: the last stage chosen was {last:?} ({:?}), HubSpot holds {hs_stage:?}, Salesforce {sf_stage:?}\n{}",
                    name(d),
                    truth.last.get(&(DEAL + d, STAGE)),
                    events().await
                ));
            }
        }
        // Associations: the Account among the deal's companies; a synced company
        // gives the Opportunity an Account; the last Account chosen stays.
        let associated = w.hs_associated("deals", hs_id, "companies").await;
        let accounts: Vec<&String> = associated
            .iter()
            .filter_map(|c| account_of.get(c))
            .collect();
        let account = s["AccountId"].as_str().unwrap_or_default();
        let fine = if account.is_empty() {
            accounts.is_empty()
        } else {
            accounts.iter().any(|a| same_id(a, account))
        };
        let chosen = truth.deal_accounts.get(&d);
        if !fine || chosen.is_some_and(|c| !same_id(c, account)) {
            return Err(format!(
                "{}: Opportunity's Account {account:?} (last chosen in Salesforce {chosen:?}), the deal's companies {associated:?} (their Accounts {accounts:?})\n{}",
                name(d),
                events().await
            ));
        }
    }
    Ok(())
}

/// Invariant 4 for deals: each deal's record on each side was changed by at most one
/// write per edit on the other side, besides its first sync (and what crashes allow).
pub(super) async fn check_writes(
    w: &World,
    count: usize,
    truth: &Truth,
    hs_writes: &Value,
    sf_writes: &Value,
) -> Result<(), String> {
    for (d, deal) in deals_now(w, count).await?.iter().enumerate() {
        let records = [
            (
                false,
                deal.hubspot_id().map(|id| format!("deals/{id}")),
                hs_writes,
            ),
            (true, deal.salesforce_id().map(str::to_owned), sf_writes),
        ];
        for (to_salesforce, key, writes) in records {
            let Some(key) = key else { continue };
            let log = &writes[key.as_str()];
            let got = super::changing_writes(log);
            let budget = truth.write_budget(DEAL + d, to_salesforce);
            if got > budget {
                return Err(format!(
                    "{}: {key} was changed by {got} writes (at most {budget}): {log}",
                    name(d)
                ));
            }
        }
    }
    Ok(())
}
