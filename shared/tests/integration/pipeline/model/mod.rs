//! Randomized histories against the realistic world (a model-based harness).
//!
//! Each history is seeded: people create contacts on either side (some with the same
//! email on both) and HubSpot companies (some twice with one domain), the sync runs, then
//! people edit mapped fields on both sides close in time, convert Leads, delete and
//! restore records, merge contacts in HubSpot, give records other owners, change deals'
//! stages and move deals to other companies on either side (`deals.rs`), make records
//! that cannot sync, while pushes arrive late, twice or
//! never, CRM calls meet 503s, workers crash at every step boundary of a sync, and one to
//! four workers (own tasks on a multi-thread runtime, batches of 1 to 100) work the queue
//! in random slices (a push round, a poll). Then everything goes quiet and the
//! invariants are checked against both sandboxes' state and the store:
//!
//! 1. convergence: every pair agrees on every mapped field;
//! 2. no duplicates made by the engine: one HubSpot contact and one Salesforce person per
//!    email, one Account per company domain;
//! 3. no lost winner: each field holds the value of its last human edit;
//! 4. bounded work: each record was changed by at most one write per human edit on the
//!    other side (counted per record at the sandboxes' `/writes`), besides its first sync
//!    and what conversions, restores and crashes allow; and once every edit is synced,
//!    re-reading the feeds writes nothing (no echo, no ping-pong);
//! 5. nothing silently dropped: every record has its partner, or its status says why.
//!
//! Some edits land in the middle of a sync, between the worker's read and its write
//! (the sandboxes' `person_edit`): in Salesforce right after the read; in HubSpot, where
//! the only read before a write is the check just before it, as that read arrives.
//!
//! `CRMSYNC_MODEL_HISTORIES` (default 200) sets how many run, `CRMSYNC_MODEL_SEED` the
//! first seed, `CRMSYNC_MODEL_WORKERS` (default 4) the most workers per history; a
//! failure prints the seed and the shrunk history, replayed with
//! `CRMSYNC_MODEL_SEED=<seed> CRMSYNC_MODEL_HISTORIES=1 scripts/test.sh` (or the cargo
//! test filter `model::`).

mod deals;

use std::collections::{BTreeMap, BTreeSet};

use crmsync_shared::domain::config::DEFAULT_TOML;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::world::{Setup, World};
use crmsync_shared::pipeline::LOOKUP_SWEEP_INTERVAL_MS;
use crmsync_shared::pipeline::sabotage::Sabotage;
use crmsync_shared::ports::WorkQueue;

/// A mapped field: HubSpot property, Salesforce field (the same on Lead and Contact).
/// Where a worker may crash: every step boundary of a sync that writes.
const BOUNDARIES: [&str; 3] = [
    "after_salesforce_write",
    "after_crm_write",
    "after_link_write",
];

const FIELDS: [(&str, &str); 3] = [
    ("firstname", "FirstName"),
    ("jobtitle", "Title"),
    ("phone", "Phone"),
];

/// The owner, as the truth keeps it (beside the `FIELDS` indexes): the owner's index.
const OWNER: usize = 100;
/// How many of the worlds' owners the histories hand records to.
const OWNERS: usize = 3;

#[derive(Debug, Clone)]
enum Step {
    /// A person edits a field in HubSpot (person n, field k, value).
    EditHubSpot(usize, usize, String),
    EditSalesforce(usize, usize, String),
    /// The clock moves on.
    Advance(i64),
    /// A person's Lead is converted in Salesforce (into a Contact and an Account): the
    /// HubSpot contact must follow the Contact, nothing duplicated.
    Convert(usize),
    /// A new person appears mid-history, in HubSpot, in Salesforce or in both at once
    /// (the same email: they must pair, never duplicate).
    Create {
        n: usize,
        where_: u8,
    },
    /// A record that cannot sync (no email: no dedup key) appears on one side: it must
    /// say why on its status (invariant 5).
    CreateUnsyncable {
        in_salesforce: bool,
    },
    /// The next worker to reach this step boundary of a sync that writes crashes there
    /// (after the Salesforce write, after both writes, after the links), leaving its
    /// batch unacknowledged.
    Crash(usize),
    /// The next calls to a CRM answer 503.
    Outage {
        hubspot: bool,
        calls: u64,
    },
    /// A person's record is deleted on one side (to the recycle bin), the deletion is
    /// synced (the link goes, nothing is deleted on the other side), and the record is
    /// restored and synced: the pair must find itself again, one record per side, and
    /// later edits flow as before. The person's earlier edits are synced first, so that none is
    /// pending while the record is gone (one would make a new partner, and the restore
    /// a duplicate of the person's own making).
    DeleteRestore {
        n: usize,
        in_salesforce: bool,
    },
    /// A person gives a record another owner on one side (one of three owners who
    /// are users on both sides, matched by email): the other side's record follows.
    ChangeOwner {
        n: usize,
        in_salesforce: bool,
        owner: usize,
    },
    /// A person merges person b's HubSpot contact into person a's (both synced): the
    /// merged contact (a new id, a's values, b's where a's are blank) stays synced with
    /// a's Salesforce record; b's Salesforce record stays, unsynced, saying why.
    MergeHubSpot {
        a: usize,
        b: usize,
    },
    /// A person gives deal `d` another stage on one side (choice `stage` of that
    /// side's stages).
    StageDeal {
        d: usize,
        in_salesforce: bool,
        stage: usize,
    },
    /// A person moves deal `d` to company `m`: the Opportunity's Account in
    /// Salesforce, one more associated company in HubSpot.
    MoveDeal {
        d: usize,
        in_salesforce: bool,
        m: usize,
    },
    /// Pushes delivered and worked off, or a poll.
    Settle,
    Poll,
    /// A person edits a field on one side while the pipeline syncs a change of another
    /// field from the other side: the edit lands right after the worker reads the
    /// record (between its read and its write; in HubSpot as its read arrives). `true`:
    /// the edit is in Salesforce.
    EditDuringSync {
        n: usize,
        in_salesforce: bool,
        field: usize,
        value: String,
        other_field: usize,
        other_value: String,
    },
}

impl Step {
    /// The person a step acts on, where it acts on one.
    fn person(&self) -> Option<usize> {
        match self {
            Step::EditHubSpot(n, _, _) | Step::EditSalesforce(n, _, _) | Step::Convert(n) => {
                Some(*n)
            }
            Step::DeleteRestore { n, .. }
            | Step::ChangeOwner { n, .. }
            | Step::EditDuringSync { n, .. } => Some(*n),
            Step::MergeHubSpot { a, .. } => Some(*a),
            _ => None,
        }
    }
}

fn domain(m: usize) -> String {
    format!("co{m}.model.example")
}

fn email(n: usize) -> String {
    format!("person{n}@model.example")
}

fn value(rng: &mut StdRng, field: usize) -> String {
    match field {
        2 => format!("+1 555 {:04}", rng.random_range(0..10_000)),
        _ => format!("v{}", rng.random_range(0..1_000_000)),
    }
}

#[derive(Debug, Clone)]
struct History {
    seed: u64,
    /// People created before the history starts.
    people: usize,
    /// People created during it (numbered after those).
    later: usize,
    /// Where each person starts: HubSpot, Salesforce, or both (same email).
    starts: Vec<u8>,
    steps: Vec<Step>,
    /// Workers working the queue at once, on their own tasks, and their batch size.
    workers: usize,
    batch: usize,
    /// HubSpot companies made before the history starts: per domain, one or two (a
    /// portal with duplicate companies is common). Each domain must end with exactly one
    /// Salesforce Account, however many workers sync its companies at once: only the
    /// engine's claims stand between two workers and a second Account (two different
    /// companies, so no upsert key catches it). Companies are made in HubSpot only: one
    /// made in both CRMs at once can still pair with a new company of our making, since
    /// HubSpot's search does not show the person's company for 2 s (noticed, open).
    companies: Vec<u8>,
    /// Whether the org's duplicate rules block a second Lead with an email (many orgs
    /// only alert, and the API then saves it): off, only our claims stand between two
    /// workers and a duplicate.
    duplicate_rules: bool,
    /// Deals made once the companies are synced: in Salesforce or HubSpot, on a
    /// company or none.
    deals: Vec<(bool, Option<usize>)>,
}

impl History {
    fn generate(seed: u64) -> History {
        let mut rng = StdRng::seed_from_u64(seed);
        // What was added to the histories later draws from its own stream, so that the
        // histories of earlier seeds keep their steps (and their regression tests).
        let mut extra = StdRng::seed_from_u64(seed ^ 0x5EED_E47A);
        let mut owners = StdRng::seed_from_u64(seed ^ 0x0_0E4E);
        let mut merges = StdRng::seed_from_u64(seed ^ 0x3E_4E6E);
        let mut dealing = StdRng::seed_from_u64(seed ^ 0xDEA1_57A6);
        let duplicate_rules = extra.random_bool(0.5);
        let companies: Vec<u8> = (0..extra.random_range(0..4))
            .map(|_| extra.random_range(1..=2))
            .collect();
        let companies_len = companies.len();
        // Drawn whatever the cap, so a seed's history is the same at any cap.
        let workers = rng.random_range(1..=4).min(max_workers());
        let batch = *[1, 3, 10, 100].get(rng.random_range(0..4)).unwrap_or(&100);
        let deals: Vec<(bool, Option<usize>)> = (0..dealing.random_range(0..3))
            .map(|_| {
                let m = dealing.random_range(0..4);
                (dealing.random_bool(0.5), (m < companies_len).then_some(m))
            })
            .collect();
        let people = rng.random_range(2..6);
        let starts = (0..people).map(|_| rng.random_range(0..3)).collect();
        let mut steps = Vec::new();
        let mut later = 0;
        for _ in 0..rng.random_range(4..14) {
            if rng.random_bool(0.05) {
                steps.push(Step::CreateUnsyncable {
                    in_salesforce: rng.random_bool(0.5),
                });
            }
            if extra.random_bool(0.06) {
                steps.push(Step::DeleteRestore {
                    n: extra.random_range(0..people),
                    in_salesforce: extra.random_bool(0.5),
                });
            }
            if merges.random_bool(0.04) {
                steps.push(Step::MergeHubSpot {
                    a: merges.random_range(0..people),
                    b: merges.random_range(0..people),
                });
            }
            if !deals.is_empty() && dealing.random_bool(0.35) {
                let d = dealing.random_range(0..deals.len());
                let in_salesforce = dealing.random_bool(0.5);
                if companies_len > 0 && dealing.random_bool(0.3) {
                    steps.push(Step::MoveDeal {
                        d,
                        in_salesforce,
                        m: dealing.random_range(0..companies_len),
                    });
                } else {
                    steps.push(Step::StageDeal {
                        d,
                        in_salesforce,
                        stage: dealing.random_range(0..10),
                    });
                }
            }
            if owners.random_bool(0.1) {
                steps.push(Step::ChangeOwner {
                    n: owners.random_range(0..people),
                    in_salesforce: owners.random_bool(0.5),
                    owner: owners.random_range(0..OWNERS),
                });
            }
            if rng.random_bool(0.15) {
                steps.push(Step::Create {
                    n: people + later,
                    where_: rng.random_range(0..3),
                });
                later += 1;
            }
            let n = rng.random_range(0..people);
            let k = rng.random_range(0..FIELDS.len());
            let step = match rng.random_range(0..10) {
                0..=2 => Step::EditHubSpot(n, k, value(&mut rng, k)),
                3..=5 => Step::EditSalesforce(n, k, value(&mut rng, k)),
                6 if rng.random_bool(0.3) => Step::Crash(rng.random_range(0..BOUNDARIES.len())),
                6 => Step::Outage {
                    hubspot: rng.random_bool(0.5),
                    calls: rng.random_range(1..3),
                },
                7 if rng.random_bool(0.2) => Step::Convert(n),
                7 => Step::Settle,
                8 if rng.random_bool(0.5) => Step::Poll,
                8 => {
                    // Mostly the same field: the sync would write the very field the
                    // person is editing.
                    let other_field = if rng.random_bool(0.75) {
                        k
                    } else {
                        (k + 1) % FIELDS.len()
                    };
                    Step::EditDuringSync {
                        n,
                        in_salesforce: rng.random_bool(0.5),
                        field: k,
                        value: value(&mut rng, k),
                        other_field,
                        other_value: value(&mut rng, other_field),
                    }
                }
                _ => Step::Advance(rng.random_range(1..1_500)),
            };
            steps.push(step);
            // Edits a moment apart: the later one must win.
            steps.push(Step::Advance(rng.random_range(1..800)));
        }
        History {
            seed,
            people,
            later,
            starts,
            steps,
            workers,
            batch,
            duplicate_rules,
            companies,
            deals,
        }
    }
}

/// The last human edit of each (person, field): its value, when (sandbox clock), and
/// whether it was made in Salesforce. Two edits in the same millisecond are a tie, which
/// the fields' direction (`prefer_salesforce`) gives to Salesforce, so a shrunk history
/// with its pauses taken out still knows the winner.
///
/// It also keeps what bounds the engine's writes (invariant 4): each person's human
/// edits per side, and the events that may each cost a person's records one more write.
#[derive(Default)]
struct Truth {
    last: BTreeMap<(usize, usize), (String, i64, bool)>,
    /// (person, edited in Salesforce) -> human edits.
    edits: BTreeMap<(usize, bool), u64>,
    /// Person -> writes its records may take besides one per edit: a conversion, a
    /// restore (the pair links again).
    allowance: BTreeMap<usize, u64>,
    /// Crashes: each may have every record of its batch written once more.
    crashes: u64,
    /// Deal -> the last Account a person chose for its Opportunity.
    deal_accounts: BTreeMap<usize, String>,
}

impl Truth {
    fn edit(&mut self, w: &World, key: (usize, usize), value: &str, in_salesforce: bool) {
        let at = w.clock.now_ms();
        *self.edits.entry((key.0, in_salesforce)).or_default() += 1;
        let tie_lost = self
            .last
            .get(&key)
            .is_some_and(|(_, when, sf)| *when == at && *sf && !in_salesforce);
        if !tie_lost {
            self.last.insert(key, (value.to_owned(), at, in_salesforce));
        }
    }

    fn last(&self, n: usize, k: usize) -> Option<&str> {
        self.last.get(&(n, k)).map(|(v, _, _)| v.as_str())
    }

    /// The most writes person `n`'s record on one side may take: one for its first sync,
    /// one per human edit on the other side, and what conversions, restores and crashes
    /// allow.
    fn write_budget(&self, n: usize, to_salesforce: bool) -> u64 {
        1 + self.edits.get(&(n, !to_salesforce)).copied().unwrap_or(0)
            + self.allowance.get(&n).copied().unwrap_or(0)
            + self.crashes
    }
}

/// Where a person's records are.
#[derive(Debug, Default, Clone)]
struct Person {
    hubspot: Option<String>,
    salesforce: Option<(String, String)>,
}

async fn people_now(w: &World, count: usize) -> Vec<Person> {
    let contacts = w.hs_contacts().await;
    let mut leads = live_leads(w).await;
    leads.extend(w.sf_records("Contact").await);
    (0..count)
        .map(|n| {
            let e = email(n);
            Person {
                hubspot: contacts
                    .iter()
                    .find(|c| c["properties"]["email"] == json!(e))
                    .and_then(|c| c["id"].as_str().map(str::to_owned)),
                salesforce: leads.iter().find(|r| r["Email"] == json!(e)).and_then(|r| {
                    let object = r["attributes"]["type"].as_str()?.to_owned();
                    Some((object, r["Id"].as_str()?.to_owned()))
                }),
            }
        })
        .collect()
}

/// Leads not converted (a converted Lead keeps its email, but it is not a person any
/// more: its Contact is).
async fn live_leads(w: &World) -> Vec<Value> {
    w.sf_records("Lead")
        .await
        .into_iter()
        .filter(|r| r["IsConverted"] != json!(true))
        .collect()
}

/// Quiet: pushes worked off, polls past the search lag and the feeds' overlap. An
/// error when the pipeline never goes quiet (writes without end).
async fn quiesce(w: &World) -> Result<(), String> {
    w.try_settle().await?;
    for _ in 0..2 {
        w.advance(5_000);
        w.try_poll_and_settle().await?;
    }
    Ok(())
}

/// The end of a history: quiet, then past the lookup sweep, which finds what only a
/// lost webhook told of (an association made in HubSpot; the change feed never shows
/// one).
async fn quiesce_at_last(w: &World) -> Result<(), String> {
    quiesce(w).await?;
    w.advance(LOOKUP_SWEEP_INTERVAL_MS);
    w.try_poll_and_settle().await
}

/// A person `n` created in HubSpot (0), Salesforce (1) or both (2), the same values on
/// both sides.
async fn create(w: &World, n: usize, where_: u8) {
    if where_ != 1 {
        w.hs_create(json!({"email": email(n), "lastname": format!("P{n}"), "firstname": "first"}))
            .await;
    }
    if where_ != 0 {
        w.sf_create(
            "Lead",
            json!({"Email": email(n), "LastName": format!("P{n}"), "FirstName": "first", "Company": "Model"}),
        )
        .await;
    }
}

/// Records that cannot sync, made during a history: (side, object, id).
type Unsyncable = Vec<(&'static str, &'static str, String)>;

async fn create_unsyncable(w: &World, in_salesforce: bool, made: &mut Unsyncable) {
    let n = made.len();
    if in_salesforce {
        let id = w
            .sf_create(
                "Lead",
                json!({"LastName": format!("NoEmail{n}"), "Company": "Model"}),
            )
            .await;
        made.push(("salesforce", "Lead", id));
    } else {
        let id = w
            .hs_create(json!({"lastname": format!("NoEmail{n}")}))
            .await;
        made.push(("hubspot", "contacts", id));
    }
}

async fn run(history: &History, sabotage: Option<Sabotage>) -> Result<(), String> {
    let w = World::start(Setup {
        config: DEFAULT_TOML.to_owned(),
        push: true,
        settle_workers: history.workers,
        settle_batch: history.batch,
        sabotage,
        owners: true,
        ..Setup::default()
    })
    .await;
    let owners = owner_pairs(&w).await?;
    if !history.duplicate_rules {
        w.put(
            &w.sf_control("/settings"),
            json!({"duplicate_rules": false}),
        )
        .await;
    }
    for n in 0..history.people {
        create(&w, n, history.starts[n]).await;
        w.advance(10);
    }
    for (m, copies) in history.companies.iter().enumerate() {
        for copy in 0..*copies {
            w.hs_create_object(
                "companies",
                json!({"name": format!("Company {m}.{copy}"), "domain": domain(m)}),
            )
            .await;
        }
    }
    quiesce(&w).await?;
    let mut truth = Truth::default();
    if !history.deals.is_empty() {
        for (d, (in_salesforce, m)) in history.deals.iter().enumerate() {
            deals::create(&w, d, *in_salesforce, *m).await;
            // A deal made in HubSpot with its company: the Opportunity is made, then
            // its Account set once the company's link is known.
            if !in_salesforce && m.is_some() {
                *truth.allowance.entry(deals::DEAL + d).or_default() += 1;
            }
            w.advance(10);
        }
        quiesce(&w).await?;
    }
    let mut unsyncable = Unsyncable::new();
    let mut people = people_now(&w, history.people).await;
    // People whose HubSpot contact was merged into another's.
    let mut merged: BTreeSet<usize> = BTreeSet::new();
    for step in &history.steps {
        // A merged person's Salesforce record no longer syncs: edits of it are made
        // (the engine must leave them there), nothing else happens to the person.
        match step.person() {
            Some(n) if merged.contains(&n) => {
                if let Step::EditSalesforce(_, k, v) = step
                    && let Some((object, id)) = &people[n].salesforce
                {
                    w.sf_update(object, id, json!({FIELDS[*k].1: v})).await;
                }
                continue;
            }
            _ => {}
        }
        match step {
            Step::MergeHubSpot { a, b } => {
                let (a, b) = (*a, *b);
                let (Some(ha), Some(hb), Some(_), Some(_)) = (
                    &people[a].hubspot,
                    &people[b].hubspot,
                    &people[a].salesforce,
                    &people[b].salesforce,
                ) else {
                    continue;
                };
                if a == b {
                    continue;
                }
                // Their edits synced first: the merge's own effect is what is judged.
                quiesce(&w).await?;
                let before = w
                    .hs_contacts()
                    .await
                    .into_iter()
                    .find(|c| c["id"] == json!(ha))
                    .unwrap_or_default();
                let survivor = w
                    .post(
                        &w.hs_control("/objects/contacts/merge"),
                        json!({"primaryObjectId": ha, "objectIdToMerge": hb}),
                    )
                    .await;
                merged.insert(b);
                truth.last.retain(|(n, _), _| *n != b);
                // b's values that filled a's blanks are the person's merge, now.
                for (k, (property, _)) in FIELDS.iter().enumerate() {
                    let now = &survivor["properties"][*property];
                    if now != &before["properties"][*property]
                        && let Some(v) = now.as_str()
                    {
                        truth.edit(&w, (a, k), v, false);
                    }
                }
                let owner = &survivor["properties"]["hubspot_owner_id"];
                if owner != &before["properties"]["hubspot_owner_id"]
                    && let Some(k) = owners.iter().position(|(h, _)| owner == &json!(h))
                {
                    truth.edit(&w, (a, OWNER), &k.to_string(), false);
                }
                // The survivor is a new record: its link moves, and it is written once.
                *truth.allowance.entry(a).or_default() += 2;
                w.advance(10);
                people = people_now(&w, history.people).await;
            }
            Step::EditHubSpot(n, k, v) => {
                if let Some(id) = &people[*n].hubspot {
                    w.hs_update(id, json!({FIELDS[*k].0: v})).await;
                    truth.edit(&w, (*n, *k), v, false);
                }
            }
            Step::EditSalesforce(n, k, v) => {
                if let Some((object, id)) = &people[*n].salesforce {
                    w.sf_update(object, id, json!({FIELDS[*k].1: v})).await;
                    truth.edit(&w, (*n, *k), v, true);
                }
            }
            Step::Advance(ms) => w.advance(*ms),
            Step::ChangeOwner {
                n,
                in_salesforce,
                owner,
            } => {
                let (hubspot_owner, user) = &owners[*owner];
                // Choosing the owner a record has already changes nothing (no field
                // history, no newer value): not an edit the truth should count.
                let has = if *in_salesforce {
                    let id = people[*n].salesforce.as_ref().map(|(_, id)| id.clone());
                    let object = people[*n].salesforce.as_ref().map(|(o, _)| o.clone());
                    let records = w.sf_records(object.as_deref().unwrap_or("Lead")).await;
                    records
                        .iter()
                        .find(|r| id.as_deref().is_some_and(|id| r["Id"] == json!(id)))
                        .is_some_and(|r| r["OwnerId"] == json!(user))
                } else {
                    w.hs_contacts().await.iter().any(|c| {
                        people[*n]
                            .hubspot
                            .as_deref()
                            .is_some_and(|id| c["id"] == json!(id))
                            && c["properties"]["hubspot_owner_id"] == json!(hubspot_owner)
                    })
                };
                if has {
                    continue;
                }
                if *in_salesforce {
                    if let Some((object, id)) = &people[*n].salesforce {
                        w.sf_update(object, id, json!({"OwnerId": user})).await;
                        truth.edit(&w, (*n, OWNER), &owner.to_string(), true);
                    }
                } else if let Some(id) = &people[*n].hubspot {
                    w.hs_update(id, json!({"hubspot_owner_id": hubspot_owner}))
                        .await;
                    truth.edit(&w, (*n, OWNER), &owner.to_string(), false);
                }
            }
            Step::Create { n, where_ } => create(&w, *n, *where_).await,
            Step::Convert(n) => {
                let Some((object, id)) = &people[*n].salesforce else {
                    continue;
                };
                if object != "Lead" {
                    continue;
                }
                w.post(
                    &w.sf_control(&format!("/leads/{id}/convert")),
                    json!({"createOpportunity": false}),
                )
                .await;
                // The person is a Contact in Salesforce from now on; edits go there.
                people = people_now(&w, history.people).await;
                *truth.allowance.entry(*n).or_default() += 2;
            }
            Step::CreateUnsyncable { in_salesforce } => {
                create_unsyncable(&w, *in_salesforce, &mut unsyncable).await
            }
            Step::Outage { hubspot, calls } => {
                let faults = json!({"faults": [{"status": 503}], "repeat": calls});
                let url = if *hubspot {
                    w.hs_control("/faults")
                } else {
                    w.sf_control("/faults")
                };
                w.post(&url, faults).await;
            }
            Step::Settle => w.try_settle().await?,
            Step::StageDeal {
                d,
                in_salesforce,
                stage,
            } => deals::change_stage(&w, &mut truth, *d, *in_salesforce, *stage).await?,
            Step::MoveDeal {
                d,
                in_salesforce,
                m,
            } => deals::move_to(&w, &mut truth, *d, *in_salesforce, *m).await?,
            Step::DeleteRestore { n, in_salesforce } => {
                let (gone, back) = if *in_salesforce {
                    let Some((object, id)) = &people[*n].salesforce else {
                        continue;
                    };
                    let at = format!("/objects/{object}/{id}");
                    (w.sf_control(&at), w.sf_control(&format!("{at}/undelete")))
                } else {
                    let Some(id) = &people[*n].hubspot else {
                        continue;
                    };
                    let at = format!("/objects/contacts/{id}");
                    (w.hs_control(&at), w.hs_control(&format!("{at}/restore")))
                };
                quiesce(&w).await?;
                w.delete(&gone).await;
                w.advance(1_000);
                w.try_poll_and_settle().await?;
                w.advance(3_000);
                w.try_poll_and_settle().await?;
                // Refused when the engine made the person a new record while this one
                // was gone (a duplicate, once restored): invariant 2.
                let restored = w.http.post(&back).json(&json!({})).send().await;
                match restored {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        let (hs, (object, sf)) = (
                            people[*n].hubspot.clone().unwrap_or_default(),
                            people[*n].salesforce.clone().unwrap_or_default(),
                        );
                        return Err(format!(
                            "{}: the restore was refused ({status} {body}): the sync made a second record while it was gone\n{}",
                            email(*n),
                            sync_events(&w, &hs, &object, &sf).await
                        ));
                    }
                    Err(e) => return Err(format!("restore: {e}")),
                }
                // The next steps' edits race the restore's sync: the pair has no
                // last-synced values then, so field times decide (history 45).
                w.advance(10);
                *truth.allowance.entry(*n).or_default() += 2;
            }
            Step::Crash(at) => {
                truth.crashes += 1;
                if let Ok(mut armed) = w.runner.pipeline.crash_once.lock() {
                    *armed = Some(BOUNDARIES[*at].to_owned());
                }
            }
            Step::EditDuringSync {
                n,
                in_salesforce,
                field,
                value,
                other_field,
                other_value,
            } => {
                let (Some(hs), Some((object, sf))) = (&people[*n].hubspot, &people[*n].salesforce)
                else {
                    continue;
                };
                // The person's edit is armed on one side; a change of another field on
                // the other side sends the worker to read this record, and the edit
                // lands right after that read.
                if *in_salesforce {
                    let edit =
                        json!({"object": object, "id": sf, "fields": {FIELDS[*field].1: value}});
                    w.post(
                        &w.sf_control("/faults"),
                        json!({"faults": [{"person_edit": edit, "after_reads": 1}]}),
                    )
                    .await;
                    w.hs_update(hs, json!({FIELDS[*other_field].0: other_value}))
                        .await;
                } else {
                    // The sync reads a Salesforce change's HubSpot partner only in the
                    // check just before its write (`pushed.rs`): the edit lands as that
                    // read arrives. (Right after it, it would be in the window no
                    // HubSpot API closes: it has no conditional update.)
                    let edit = json!({"object": "contacts", "id": hs, "properties": {FIELDS[*field].0: value}});
                    w.post(
                        &w.hs_control("/faults"),
                        json!({"faults": [{"person_edit": edit, "after_reads": 0}]}),
                    )
                    .await;
                    w.sf_update(object, sf, json!({FIELDS[*other_field].1: other_value}))
                        .await;
                }
                truth.edit(&w, (*n, *other_field), other_value, !*in_salesforce);
                // The person's edit lands later than the change that triggers the sync
                // (at the same millisecond neither is later, and the preferred side wins).
                w.advance(1);
                // Worked off at once, so the edit lands now and later edits stay later.
                w.try_settle().await?;
                w.advance(3_000);
                w.try_poll_and_settle().await?;
                truth.edit(&w, (*n, *field), value, *in_salesforce);
            }
            Step::Poll => {
                w.advance(3_000);
                w.try_poll_and_settle().await?;
            }
        }
    }
    quiesce_at_last(&w).await?;
    check(&w, history, &truth, &owners, &merged).await?;
    deals::check(&w, history.deals.len(), &truth).await?;
    // 5: a record that did not sync says why.
    for (side, object, id) in &unsyncable {
        let code = w.status(side, object, id).await.and_then(|s| s.last.code);
        if code.is_none() {
            return Err(format!(
                "{side} {object} {id} did not sync and its status gives no reason"
            ));
        }
    }
    // 4: bounded work. At most one write that changes a record per human edit on the
    // other side (counted at the sandboxes, per record), besides a record's first sync
    // and what conversions, restores and crashes allow.
    let hs_writes = w.send_get(&w.hs_control("/writes")).await;
    let sf_writes = w.send_get(&w.sf_control("/writes")).await;
    let everyone = history.people + history.later;
    for (n, person) in people_now(&w, everyone).await.iter().enumerate() {
        let records = [
            (
                false,
                person.hubspot.as_ref().map(|id| format!("contacts/{id}")),
                &hs_writes,
            ),
            (
                true,
                person.salesforce.as_ref().map(|(_, id)| id.clone()),
                &sf_writes,
            ),
        ];
        for (to_salesforce, key, writes) in records {
            let Some(key) = key else { continue };
            let log = &writes[key.as_str()];
            let got = changing_writes(log);
            let budget = truth.write_budget(n, to_salesforce);
            if got > budget {
                let (hs, (object, sf)) = (
                    person.hubspot.clone().unwrap_or_default(),
                    person.salesforce.clone().unwrap_or_default(),
                );
                return Err(format!(
                    "{}: {key} was changed by {got} writes, for {} human edits on the other side (at most {budget}): {log}\n{}",
                    email(n),
                    truth.edits.get(&(n, !to_salesforce)).copied().unwrap_or(0),
                    sync_events(&w, &hs, &object, &sf).await
                ));
            }
        }
    }
    deals::check_writes(&w, history.deals.len(), &truth, &hs_writes, &sf_writes).await?;
    // And once every edit is synced, nothing is written any more (no echo, no
    // ping-pong), however often the feeds are read again.
    let before = w.integration_writes().await;
    for _ in 0..2 {
        w.advance(150_000);
        w.try_poll_and_settle().await?;
    }
    let after = w.integration_writes().await;
    if after != before {
        return Err(format!(
            "a quiet system wrote: (HubSpot, Salesforce) write calls {before:?} -> {after:?}"
        ));
    }
    Ok(())
}

/// Writes in a record's `/writes` log that changed a value: two workers that both took
/// a duplicated push of one record may both write its (same) values at once, which
/// costs a call but moves nothing (a waste the queue's coalescing is for), while an echo
/// or a ping-pong changes values back and forth.
fn changing_writes(log: &Value) -> u64 {
    log.as_array().map_or(0, |l| {
        l.iter()
            .filter(|w| w["changed"].as_array().is_some_and(|c| !c.is_empty()))
            .count() as u64
    })
}

/// The worlds' first owners, (HubSpot owner id, Salesforce user id) each.
async fn owner_pairs(w: &World) -> Result<Vec<(String, String)>, String> {
    let pairs = w.owner_pairs().await;
    if pairs.len() < OWNERS {
        return Err(format!(
            "the world has {} owners on both sides",
            pairs.len()
        ));
    }
    Ok(pairs.into_iter().take(OWNERS).collect())
}

async fn check(
    w: &World,
    history: &History,
    truth: &Truth,
    owners: &[(String, String)],
    merged: &BTreeSet<usize>,
) -> Result<(), String> {
    // 2, companies: one Account per domain, and no HubSpot company of our making.
    let accounts = w.sf_records("Account").await;
    let companies = w.hs_objects("companies").await;
    for (m, copies) in history.companies.iter().enumerate() {
        let d = domain(m);
        let on = |v: &Value| v.as_str().is_some_and(|s| s.contains(&d));
        let sf: Vec<&Value> = accounts.iter().filter(|a| on(&a["Website"])).collect();
        let hs: Vec<&Value> = companies
            .iter()
            .filter(|c| on(&c["properties"]["domain"]))
            .collect();
        if sf.len() != 1 || hs.len() != usize::from(*copies) {
            let mut records: Vec<(&str, &str, &str)> = hs
                .iter()
                .map(|c| ("hubspot", "companies", c["id"].as_str().unwrap_or_default()))
                .collect();
            records.extend(sf.iter().map(|a| {
                (
                    "salesforce",
                    "Account",
                    a["Id"].as_str().unwrap_or_default(),
                )
            }));
            return Err(format!(
                "{d}: {} HubSpot companies ({copies} made by people), {} Salesforce Accounts {:?} (HubSpot ids {:?}); sync events:\n{}",
                hs.len(),
                sf.len(),
                sf.iter().map(|a| &a["Id"]).collect::<Vec<_>>(),
                sf.iter()
                    .map(|a| &a["HubSpot_Company_Id__c"])
                    .collect::<Vec<_>>(),
                events_of(w, &records).await
            ));
        }
    }
    let contacts = w.hs_contacts().await;
    let mut people = live_leads(w).await;
    people.extend(w.sf_records("Contact").await);
    for n in 0..history.people + history.later {
        let e = email(n);
        let hs: Vec<&Value> = contacts
            .iter()
            .filter(|c| c["properties"]["email"] == json!(e))
            .collect();
        let sf: Vec<&Value> = people.iter().filter(|r| r["Email"] == json!(e)).collect();
        if merged.contains(&n) {
            // Merged away in HubSpot: no contact of its own; its Salesforce record
            // stays (once) and says why it no longer syncs (2 and 5).
            let (object, id) = sf
                .first()
                .map(|r| {
                    (
                        r["attributes"]["type"].as_str().unwrap_or_default(),
                        r["Id"].as_str().unwrap_or_default(),
                    )
                })
                .unwrap_or_default();
            let code = w
                .status("salesforce", object, id)
                .await
                .and_then(|s| s.last.code);
            if !hs.is_empty() || sf.len() != 1 || code.as_deref() != Some("merged_in_hubspot") {
                return Err(format!(
                    "{e}, merged into another contact in HubSpot: {} HubSpot contacts, {} Salesforce people, status code {code:?}\n{}",
                    hs.len(),
                    sf.len(),
                    events_of(w, &[("salesforce", object, id)]).await
                ));
            }
            continue;
        }
        // 2 and 5: exactly one record on each side.
        if hs.len() != 1 || sf.len() != 1 {
            let id = |r: &Value, k: &str| r[k].as_str().unwrap_or_default().to_owned();
            let hs_id = hs.first().map(|c| id(c, "id")).unwrap_or_default();
            let (object, sf_id) = sf
                .first()
                .map(|r| (id(&r["attributes"], "type"), id(r, "Id")))
                .unwrap_or_default();
            let queue = w.runner.store.queued().await.unwrap_or(0);
            let dead = w.runner.store.dead_letters().await.unwrap_or_default();
            return Err(format!(
                "{e}: {} HubSpot contacts, {} Salesforce people (queued: {queue}, dead letters: {dead:?})\n{}",
                hs.len(),
                sf.len(),
                sync_events(w, &hs_id, &object, &sf_id).await
            ));
        }
        // 1 and 3 for owners: the last owner a person gave either record, on both.
        if let Some(last) = truth.last(n, OWNER) {
            let k: usize = last.parse().unwrap_or_default();
            let h = hs[0]["properties"]["hubspot_owner_id"]
                .as_str()
                .unwrap_or_default();
            let s = sf[0]["OwnerId"].as_str().unwrap_or_default();
            let (want_h, want_s) = &owners[k];
            if h != want_h || !s.starts_with(&want_s[..15.min(want_s.len())]) {
                let (hs_id, sf_id) = (
                    hs[0]["id"].as_str().unwrap_or_default(),
                    sf[0]["Id"].as_str().unwrap_or_default(),
                );
                let object = sf[0]["attributes"]["type"].as_str().unwrap_or("Lead");
                return Err(format!(
                    "{e}: the last owner given was owner {k} ({want_h} / {want_s}, {:?}), HubSpot holds {h:?}, Salesforce {s:?}\n{}",
                    truth.last.get(&(n, OWNER)),
                    sync_events(w, hs_id, object, sf_id).await
                ));
            }
        }
        for (k, (property, field)) in FIELDS.iter().enumerate() {
            let h = hs[0]["properties"][*property].as_str().unwrap_or_default();
            let s = sf[0][*field].as_str().unwrap_or_default();
            // 1: convergence.
            if h != s {
                let why = diagnose(w, hs[0], sf[0], property, field).await;
                return Err(format!(
                    "{e}.{property}: HubSpot {h:?}, Salesforce {s:?}\n{why}"
                ));
            }
            // 3: the last human edit wins.
            if let Some(last) = truth.last(n, k)
                && h != last
            {
                let why = diagnose(w, hs[0], sf[0], property, field).await;
                return Err(format!(
                    "{e}.{property}: the last edit was {last:?} ({:?}), both sides hold {h:?}\n{why}",
                    truth.last.get(&(n, k))
                ));
            }
        }
    }
    Ok(())
}

/// What each side and the engine remember of a field of a pair, for a failure's report:
/// HubSpot's property history, Salesforce's field history and the engine's sync events.
async fn diagnose(w: &World, hs: &Value, sf: &Value, property: &str, field: &str) -> String {
    let hs_id = hs["id"].as_str().unwrap_or_default();
    let sf_id = sf["Id"].as_str().unwrap_or_default();
    let object = sf["attributes"]["type"].as_str().unwrap_or("Lead");
    let url = format!(
        "{}/crm/v3/objects/contacts/{hs_id}?propertiesWithHistory={property}",
        w.hs.url()
    );
    let hubspot: Value = match w
        .http
        .get(url)
        .bearer_auth(super::world::HS_TOKEN)
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(e) => json!(e.to_string()),
    };
    let parent = if object == "Contact" {
        "ContactId"
    } else {
        "LeadId"
    };
    let soql = format!(
        "SELECT Field, OldValue, NewValue, CreatedDate, CreatedById FROM {object}History WHERE {parent} = '{sf_id}' AND Field = '{field}'"
    );
    let salesforce: Value = match w
        .http
        .get(format!("{}/services/data/v65.0/query", w.sf.url()))
        .query(&[("q", soql)])
        .bearer_auth(super::world::SF_TOKEN)
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(e) => json!(e.to_string()),
    };
    let events = sync_events(w, hs_id, object, sf_id).await;
    let p = &hs["properties"];
    format!(
        "HubSpot {property} history: {}\nSalesforce {field} history: {}\nthe contact names Lead {}, Contact {}; merged ids {}\nsync events:\n{events}",
        hubspot["propertiesWithHistory"][property],
        salesforce["records"],
        p["salesforceleadid"],
        p["salesforcecontactid"],
        p["hs_merged_object_ids"]
    )
}

/// The engine's sync events of a pair's two records, a line each.
async fn sync_events(w: &World, hs_id: &str, object: &str, sf_id: &str) -> String {
    events_of(
        w,
        &[
            ("hubspot", "contacts", hs_id),
            ("salesforce", object, sf_id),
        ],
    )
    .await
}

/// The engine's sync events of these records, (side, object, id) each.
async fn events_of(w: &World, records: &[(&str, &str, &str)]) -> String {
    let mut events = String::new();
    for &(side, object, id) in records {
        let history = w.events(side, object, id).await;
        for e in history {
            events.push_str(&format!(
                "  {side} {id} at {}: {} {:?} {:?} {:?} {:?}\n",
                e.at, e.direction, e.outcome, e.code, e.message, e.changes
            ));
        }
    }
    events
}

/// The most workers a history runs at once: `CRMSYNC_MODEL_WORKERS`, 4 by default
/// (each history draws 1 to 4). Several workers found two torn reads (histories 496 and
/// 145, both fixed, `races.rs`); `CRMSYNC_MODEL_WORKERS=1` runs one per history.
fn max_workers() -> usize {
    usize::try_from(env_u64("CRMSYNC_MODEL_WORKERS", 4).clamp(1, 16)).unwrap_or(4)
}

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs histories `seeds`, several at once (each in its own world); the first broken
/// one fails with its seed and steps.
async fn run_all(seeds: std::ops::Range<u64>) {
    if let Some((history, e)) = first_broken(seeds, None).await {
        let seed = history.seed;
        let steps = history.steps.len();
        let (shrunk, e) = shrink(history, None, e).await;
        panic!(
            "history {seed} broke an invariant: {e}\nreplay: CRMSYNC_MODEL_SEED={seed} CRMSYNC_MODEL_HISTORIES=1\nworkers: {}, batch: {}, duplicate rules: {}, companies: {:?}, deals: {:?}, starts: {:?}\nshrunk from {steps} to {} steps: {:#?}",
            shrunk.workers,
            shrunk.batch,
            shrunk.duplicate_rules,
            shrunk.companies,
            shrunk.deals,
            shrunk.starts,
            shrunk.steps.len(),
            shrunk.steps
        );
    }
}

/// A smaller history that still breaks an invariant: steps are taken out one at a time
/// (never a person's creation, which the checks count on) and stay out while the rest
/// still fails. A failure that turns on timing may shrink less; its seed replays the
/// whole history.
async fn shrink(
    mut history: History,
    sabotage: Option<Sabotage>,
    mut error: String,
) -> (History, String) {
    for i in (0..history.steps.len()).rev() {
        if matches!(history.steps[i], Step::Create { .. }) {
            continue;
        }
        let mut smaller = history.clone();
        smaller.steps.remove(i);
        if let Err(e) = run(&smaller, sabotage).await {
            history = smaller;
            error = e;
        }
    }
    (history, error)
}

/// The first history of `seeds` (run several at once, each in its own world) that
/// breaks an invariant, with what it broke.
async fn first_broken(
    seeds: std::ops::Range<u64>,
    sabotage: Option<Sabotage>,
) -> Option<(History, String)> {
    const AT_ONCE: usize = 8;
    let seeds: Vec<u64> = seeds.collect();
    for chunk in seeds.chunks(AT_ONCE) {
        let mut running = tokio::task::JoinSet::new();
        for &seed in chunk {
            running.spawn(async move {
                let history = History::generate(seed);
                run(&history, sabotage).await.map_err(|e| (history, e))
            });
        }
        let mut broken: Option<(History, String)> = None;
        while let Some(done) = running.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err((history, e))) => {
                    if broken.as_ref().is_none_or(|(b, _)| history.seed < b.seed) {
                        broken = Some((history, e));
                    }
                }
                Err(e) => panic!("a history's task failed: {e}"),
            }
        }
        if broken.is_some() {
            return broken;
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_histories_converge_without_duplicates_or_lost_edits() {
    let first = env_u64("CRMSYNC_MODEL_SEED", 1);
    let count = env_u64("CRMSYNC_MODEL_HISTORIES", 200);
    let started = std::time::Instant::now();
    run_all(first..first + count).await;
    println!(
        "{count} random histories from seed {first}: every invariant held ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

/// Found by the harness: a Salesforce record's later edit of one field won the conflict
/// of another field edited earlier there than in HubSpot (the record's modification time
/// stood for every field). Fixed by reading the org's field history.
#[tokio::test]
async fn history_6_a_later_edit_of_another_field_does_not_win_a_conflict() {
    run_all(6..7).await;
}

/// Found by the harness: a converted person's contact merged with another named the
/// converted Lead, not its Contact, and the survivor kept no partner (a duplicate, an
/// owner that never reached Salesforce). Fixed by keeping the merged partner with the
/// survivor's email when it names none of them (`kept_merged_link`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_163_a_converted_persons_merge_keeps_its_contact() {
    run_all(163..164).await;
}

/// Found by the harness: a deal's stage set in Salesforce, then in HubSpot to another
/// stage and back to the one last synced, a moment later: HubSpot's value looked
/// unchanged and Salesforce's earlier change won. Fixed by reading the field's history
/// when the record changed after the last sync (`merge::edited_back`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_174_a_stage_edited_back_after_the_other_sides_change_wins() {
    run_all(174..175).await;
}

/// Found by the harness (10k run, on a change backed out the same day): a converted
/// person's Contact waiting for its Account (skipped: no domain) was no longer retried,
/// and after its HubSpot contact was merged into another person's, that contact ended
/// with the converted person's email. A record waiting for a related record is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_721_a_record_waiting_for_a_skipped_related_record_is_retried() {
    run_all(721..722).await;
}

/// Found by the harness (10k run): a converted Lead's reference followed the conversion
/// and moved its link to the Contact, but with nothing else to write it wrote nothing,
/// not even the Contact's id on the HubSpot contact; after a merge in HubSpot the
/// merged-away person's Contact never said `merged_in_hubspot`. Fixed by marking the
/// work relinked (`follow_conversions`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_8573_a_followed_conversion_writes_the_contacts_id() {
    run_all(8573..8574).await;
}

/// Found by the harness (10k run): two merged contacts' people, one Lead converted
/// into the Contact the merge survivor already synced with. The Lead's link could not
/// follow (the Contact had its partner) and its conflict failed the whole batch, again
/// and again: another person's HubSpot edit in the same batches never reached
/// Salesforce. Now the Lead says `converted_into_synced` and the batch goes on. Timing
/// dependent (about one debug run in two failed before the fix);
/// `pipeline::a_lead_converted_into_a_synced_contact_says_why_and_blocks_no_one` is the
/// deterministic guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_4239_a_lead_converted_into_a_synced_contact_blocks_no_one() {
    run_all(4239..4240).await;
}

/// Found by the harness (10k run, under load): a person's Salesforce title edit, and
/// a second later the engine wrote the older HubSpot title over it. A batch that
/// followed the conversion merged a HubSpot read taken before another worker's write
/// with the link that worker had just stored, and took the stale value for an edit:
/// the guard against a link newer than the records exempted links moved in the batch.
/// Now no link is exempt (the HubSpot record's identity is checked on every write
/// instead). Timing dependent: it did not fail again in 14 replays before the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_704_a_followed_conversion_does_not_write_a_stale_read() {
    run_all(704..705).await;
}

/// The harness can fail: each deliberately broken engine is caught by some history of
/// the first few seeds, by the invariant it breaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_broken_engine_is_caught() {
    // Echoes write HubSpot's values back as they are: people's records never go
    // quiet, and a deal's stage is refused by Salesforce's picklist (which comes first
    // depends on timing).
    for (sabotage, breaks) in [
        (
            Sabotage::EchoSuppressionOff,
            &["quiet", "bad value for restricted picklist"][..],
        ),
        (Sabotage::LinkWriteSkipped, &[""][..]),
        (Sabotage::ReasonNotRecorded, &["gives no reason"][..]),
        (Sabotage::ClaimsOff, &["Salesforce Accounts"][..]),
    ] {
        // Up to 80 seeds: the races a broken claim lets through depend on timing, and a
        // loaded machine (the whole suite at once) needs more histories to meet one. A
        // working engine's histories are searched only until the first catch.
        let found = first_broken(1..81, Some(sabotage)).await;
        let Some((history, e)) = found else {
            panic!("{sabotage:?}: no history of seeds 1-80 noticed");
        };
        assert!(
            breaks.iter().any(|b| e.contains(b)),
            "{sabotage:?}: caught, but as {e}"
        );
        println!("{sabotage:?}: caught by history {}: {e}", history.seed);
        if sabotage == Sabotage::ReasonNotRecorded {
            // And the failure shrinks to the steps that matter.
            let steps = history.steps.len();
            let (shrunk, e) = shrink(history, Some(sabotage), e).await;
            assert!(
                shrunk.steps.len() < steps && breaks.iter().any(|b| e.contains(b)),
                "{sabotage:?}: {steps} steps shrank to {:?} ({e})",
                shrunk.steps
            );
            println!(
                "{sabotage:?}: shrunk from {steps} to {} steps: {:?}",
                shrunk.steps.len(),
                shrunk.steps
            );
        }
    }
}
