//! The seed generator both sandboxes share: the same seed gives the same people,
//! companies, owners and deals, and the two CRMs get overlapping slices of them.
//!
//! Of every person and company, a share (`overlap`, default one half) exists on both
//! sides with the same email / domain, the rest on one side only (alternating). A few
//! carry known problems the demo and tests rely on: every 50th HubSpot-only contact has
//! no email, and every 40th person has a job title longer than Salesforce's 128
//! characters.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FIRST: [&str; 40] = [
    "Ana", "Ben", "Carla", "David", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemal",
    "Lena", "Marco", "Nadia", "Omar", "Paula", "Quentin", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoe", "Aiko", "Bruno", "Chloe", "Diego", "Emma", "Felix", "Giulia",
    "Hana", "Ivan", "Julia", "Kai", "Lucia", "Mateo", "Nora",
];
const LAST: [&str; 40] = [
    "Silva",
    "Novak",
    "Okafor",
    "Schmidt",
    "Yilmaz",
    "Haddad",
    "Kim",
    "Moreau",
    "Costa",
    "Berg",
    "Demir",
    "Fischer",
    "Rossi",
    "Khan",
    "Farouk",
    "Lopez",
    "Martin",
    "Garcia",
    "Larsen",
    "Singh",
    "Ali",
    "Petrova",
    "Chen",
    "Ruiz",
    "Aydin",
    "Walker",
    "Tanaka",
    "Almeida",
    "Dubois",
    "Herrera",
    "Johnson",
    "Weber",
    "Bianchi",
    "Sato",
    "Ivanov",
    "Meyer",
    "Navarro",
    "Romero",
    "Lindqvist",
    "OBrien",
];
const WORDS: [&str; 30] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Oscorp",
    "Aperture",
    "Gringotts",
    "Monarch",
    "Pied",
    "Dunder",
    "Sterling",
    "Prestige",
    "Nakatomi",
    "Massive",
    "Vehement",
    "Blue",
    "Nimbus",
    "Zenith",
    "Orbit",
    "Quantum",
    "Lumen",
    "Vertex",
];
const SUFFIX: [&str; 8] = [
    "Labs",
    "Systems",
    "Group",
    "Works",
    "Analytics",
    "Logistics",
    "Foods",
    "Energy",
];
const TLDS: [&str; 5] = ["com", "io", "co", "net", "de"];
const TITLES: [&str; 8] = [
    "VP Marketing",
    "Head of Sales",
    "CTO",
    "Account Executive",
    "Operations Manager",
    "CFO",
    "Product Lead",
    "Founder",
];
const INDUSTRIES: [&str; 5] = [
    "COMPUTER_SOFTWARE",
    "FINANCIAL_SERVICES",
    "RETAIL",
    "HOSPITAL_HEALTH_CARE",
    "LOGISTICS_AND_SUPPLY_CHAIN",
];

/// Which CRM(s) a seeded entity exists in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Both,
    HubSpotOnly,
    SalesforceOnly,
}

impl Presence {
    pub fn in_hubspot(self) -> bool {
        self != Presence::SalesforceOnly
    }
    pub fn in_salesforce(self) -> bool {
        self != Presence::HubSpotOnly
    }
}

#[derive(Debug, Clone)]
pub struct Person {
    pub first_name: String,
    pub last_name: String,
    /// `None`: a record that must be skipped for having no email.
    pub email: Option<String>,
    pub phone: String,
    pub job_title: String,
    /// Index into `World::companies`.
    pub company: usize,
    /// Index into `World::owners`.
    pub owner: usize,
    pub lifecycle_stage: &'static str,
    pub presence: Presence,
}

#[derive(Debug, Clone)]
pub struct Company {
    pub name: String,
    pub domain: String,
    pub industry: &'static str,
    pub employees: u32,
    pub annual_revenue: u64,
    pub owner: usize,
    pub presence: Presence,
}

#[derive(Debug, Clone)]
pub struct Owner {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct Deal {
    pub name: String,
    pub amount: u64,
    /// Epoch milliseconds, midnight UTC.
    pub close_date_ms: i64,
    /// Index into the default pipeline's stages.
    pub stage: usize,
    pub company: usize,
    pub contact: usize,
    pub owner: usize,
    pub presence: Presence,
}

/// Everything seeded.
#[derive(Debug, Clone)]
pub struct World {
    pub people: Vec<Person>,
    pub companies: Vec<Company>,
    pub owners: Vec<Owner>,
    pub deals: Vec<Deal>,
}

/// How long before a sandbox starts its seeded records were last modified: an org's
/// records exist before a sync is set up, and a change feed started with the sync does
/// not read them as changes just made (stamped at the start, every Salesforce record
/// fell in the first feed read's overlap, and an initial sync took them before the
/// HubSpot listing it is built to take first).
pub const SEEDED_AGO_MS: i64 = 3_600_000;

/// When a sandbox started at `started_ms` stamps its seeded records.
pub fn seeded_at(started_ms: i64) -> i64 {
    (started_ms - SEEDED_AGO_MS).max(0)
}

#[derive(Debug, Clone, Copy)]
pub struct SeedSpec {
    pub seed: u64,
    /// How many people (contacts/leads); companies are a fifth.
    pub records: usize,
    /// The share present on both sides, 0.0..=1.0.
    pub overlap: f64,
    /// How many deals, each on one side, the other or both as `overlap` says (`None`:
    /// a tenth of `records`).
    pub deals: Option<usize>,
}

impl Default for SeedSpec {
    fn default() -> Self {
        SeedSpec {
            seed: 1,
            records: 100,
            overlap: 0.5,
            deals: None,
        }
    }
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn presence(rng: &mut ChaCha8Rng, overlap: f64, i: usize) -> Presence {
    if rng.random_bool(overlap.clamp(0.0, 1.0)) {
        Presence::Both
    } else if i.is_multiple_of(2) {
        Presence::HubSpotOnly
    } else {
        Presence::SalesforceOnly
    }
}

/// Generates the world for a seed. Deterministic: the same spec gives the same world.
pub fn generate(spec: SeedSpec) -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let owners: Vec<Owner> = (0..5)
        .map(|i| {
            let first = FIRST[(i * 7 + 3) % FIRST.len()].to_owned();
            let last = LAST[(i * 11 + 5) % LAST.len()].to_owned();
            let email = format!(
                "{}.{}@crmsync-demo.com",
                first.to_lowercase(),
                last.to_lowercase()
            );
            Owner {
                first_name: first,
                last_name: last,
                email,
            }
        })
        .collect();
    // No records: the owners alone (a portal and an org with their users, nothing else).
    let company_count = if spec.records == 0 {
        0
    } else {
        (spec.records / 5).max(1)
    };
    let companies: Vec<Company> = (0..company_count)
        .map(|i| {
            let word = pick(&mut rng, &WORDS);
            let suffix = pick(&mut rng, &SUFFIX);
            let tld = pick(&mut rng, &TLDS);
            // The index keeps names and domains unique at any size.
            let name = format!("{word} {suffix} {i}");
            let domain = format!("{}{}{i}.{tld}", word.to_lowercase(), suffix.to_lowercase());
            Company {
                name,
                domain,
                industry: pick(&mut rng, &INDUSTRIES),
                employees: rng.random_range(5..5000),
                annual_revenue: rng.random_range(100..50_000) * 1000,
                owner: rng.random_range(0..owners.len()),
                presence: presence(&mut rng, spec.overlap, i),
            }
        })
        .collect();
    let people = (0..spec.records)
        .map(|i| {
            let first = pick(&mut rng, &FIRST).to_owned();
            let last = pick(&mut rng, &LAST).to_owned();
            let company = rng.random_range(0..companies.len());
            let presence = presence(&mut rng, spec.overlap, i);
            let email = format!(
                "{}.{}{i}@{}",
                first.to_lowercase(),
                last.to_lowercase(),
                companies[company].domain
            );
            let email = (!(presence == Presence::HubSpotOnly && i % 50 == 0)).then_some(email);
            let job_title = if i % 40 == 39 {
                format!(
                    "{} and {}",
                    pick(&mut rng, &TITLES),
                    "Interim Regional Coordinator ".repeat(5)
                )
            } else {
                pick(&mut rng, &TITLES).to_owned()
            };
            Person {
                phone: format!("+1 555 {:04}", rng.random_range(0..10_000)),
                first_name: first,
                last_name: last,
                email,
                job_title,
                company,
                owner: rng.random_range(0..owners.len()),
                lifecycle_stage: pick(
                    &mut rng,
                    &[
                        "subscriber",
                        "lead",
                        "marketingqualifiedlead",
                        "salesqualifiedlead",
                    ],
                ),
                presence,
            }
        })
        .collect::<Vec<_>>();
    let deals = (0..spec.deals.unwrap_or(spec.records / 10))
        .map(|i| {
            let company = rng.random_range(0..companies.len());
            Deal {
                name: format!("{} renewal {i}", companies[company].name),
                amount: rng.random_range(1..500) * 1000,
                close_date_ms: 1_735_689_600_000
                    + i64::from(rng.random_range(0..365u32)) * 86_400_000,
                stage: rng.random_range(0..7),
                company,
                contact: rng.random_range(0..people.len().max(1)),
                owner: rng.random_range(0..owners.len()),
                presence: presence(&mut rng, spec.overlap, i),
            }
        })
        .collect();
    World {
        people,
        companies,
        owners,
        deals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deals are a tenth of the people unless the spec says how many (the scale bench
    /// seeds as many per side as companies).
    #[test]
    fn deals_are_as_many_as_the_spec_says() {
        let spec = SeedSpec {
            seed: 3,
            records: 300,
            overlap: 0.5,
            deals: None,
        };
        assert_eq!(generate(spec).deals.len(), 30);
        let many = generate(SeedSpec {
            deals: Some(90),
            ..spec
        });
        assert_eq!(many.deals.len(), 90);
        assert_eq!(many.people.len(), 300, "the people as before");
    }

    #[test]
    fn the_same_seed_gives_the_same_world() {
        let a = generate(SeedSpec {
            seed: 7,
            records: 200,
            overlap: 0.5,
            deals: None,
        });
        let b = generate(SeedSpec {
            seed: 7,
            records: 200,
            overlap: 0.5,
            deals: None,
        });
        let c = generate(SeedSpec {
            seed: 8,
            records: 200,
            overlap: 0.5,
            deals: None,
        });
        let emails = |w: &World| w.people.iter().map(|p| p.email.clone()).collect::<Vec<_>>();
        assert_eq!(emails(&a), emails(&b));
        assert_ne!(emails(&a), emails(&c));
    }

    #[test]
    fn about_the_overlap_share_is_on_both_sides_and_some_have_known_problems() {
        let w = generate(SeedSpec {
            seed: 1,
            records: 1000,
            overlap: 0.5,
            deals: None,
        });
        let both = w
            .people
            .iter()
            .filter(|p| p.presence == Presence::Both)
            .count();
        assert!((400..600).contains(&both), "{both}");
        assert!(w.people.iter().any(|p| p.email.is_none()));
        assert!(w.people.iter().any(|p| p.job_title.len() > 128));
        assert!(
            w.people
                .iter()
                .any(|p| p.presence == Presence::SalesforceOnly)
        );
        let mut emails: Vec<_> = w.people.iter().filter_map(|p| p.email.clone()).collect();
        let n = emails.len();
        emails.sort();
        emails.dedup();
        assert_eq!(emails.len(), n, "emails are unique");
    }
}
