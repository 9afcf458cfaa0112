//! The rate-limit floor of an initial sync: the fewest API calls the CRMs' batch limits
//! allow for the seeded data, and the time HubSpot's rate limit needs to serve them.
//!
//! What any correct sync must do, and no more: list every record once (HubSpot's list
//! pages hold 100 with their associations, a SOQL page 2,000), create each record the
//! other side lacks (HubSpot batches of 100 with their associations inline, Salesforce
//! Collections of 200 with their lookups inline), and write each side's id onto its
//! partner (crmsync's links are visible in both CRMs: one update per record, batched the
//! same way; a record created from its partner carries the id from the start). A deal's
//! contact roles are one Collections create per 200. Matching needs no calls beyond the
//! listings; history reads, searches and re-reads are all above the floor.

use crmsync_sandbox::seed::{Presence, World};

/// HubSpot's list, batch create and batch update sizes.
const HUBSPOT_BATCH: u64 = 100;
/// Salesforce's SOQL page and Collections sizes.
const SOQL_PAGE: u64 = 2_000;
const COLLECTION: u64 = 200;
/// A Professional private app: 190 calls per rolling 10 seconds.
pub const HUBSPOT_CALLS_PER_SECOND: f64 = 19.0;

/// One pair's records as seeded.
#[derive(Debug, Clone, Copy, Default)]
pub struct PairCounts {
    pub hubspot: u64,
    /// Per Salesforce object listed (contacts: Lead and Contact).
    pub salesforce: [u64; 2],
    /// On both sides and matched by the pair's key.
    pub matched: u64,
    /// Never synced (a contact without an email).
    pub skipped: u64,
}

impl PairCounts {
    fn salesforce_total(&self) -> u64 {
        self.salesforce.iter().sum()
    }

    /// The record pairs a finished sync holds.
    pub fn pairs(&self) -> u64 {
        self.hubspot + self.salesforce_total() - self.matched - self.skipped
    }

    fn hubspot_calls(&self) -> u64 {
        let synced = self.hubspot - self.skipped;
        pages(self.hubspot, HUBSPOT_BATCH)
            + pages(self.salesforce_total() - self.matched, HUBSPOT_BATCH)
            + pages(synced, HUBSPOT_BATCH)
    }

    fn salesforce_calls(&self) -> u64 {
        let synced = self.hubspot - self.skipped;
        self.salesforce
            .iter()
            .map(|n| pages(*n, SOQL_PAGE).max(1))
            .sum::<u64>()
            + pages(synced - self.matched, COLLECTION)
            + pages(self.salesforce_total(), COLLECTION)
    }
}

fn pages(n: u64, size: u64) -> u64 {
    n.div_ceil(size)
}

/// The floor of one initial sync.
#[derive(Debug, Clone, Default)]
pub struct Floor {
    pub contacts: PairCounts,
    pub companies: PairCounts,
    pub deals: PairCounts,
    pub hubspot_calls: u64,
    pub salesforce_calls: u64,
}

impl Floor {
    pub fn of(world: &World) -> Floor {
        let in_hs = |p: Presence| u64::from(p.in_hubspot());
        let in_sf = |p: Presence| u64::from(p.in_salesforce());
        let mut companies = PairCounts::default();
        for c in &world.companies {
            companies.hubspot += in_hs(c.presence);
            companies.salesforce[0] += in_sf(c.presence);
            companies.matched += u64::from(c.presence == Presence::Both);
        }
        // As the Salesforce seed does: a person at a company Salesforce has is a Contact
        // (two in three), the rest are Leads.
        let mut contacts = PairCounts::default();
        for (i, p) in world.people.iter().enumerate() {
            contacts.hubspot += in_hs(p.presence);
            if p.presence.in_salesforce() {
                let account = world.companies[p.company].presence.in_salesforce();
                let slot = usize::from(!(account && i % 3 != 0));
                contacts.salesforce[slot] += 1;
            }
            contacts.matched += u64::from(p.presence == Presence::Both && p.email.is_some());
            contacts.skipped += u64::from(p.presence.in_hubspot() && p.email.is_none());
        }
        // Deals have no match key: each side's deal is created on the other.
        let mut deals = PairCounts::default();
        let mut contact_roles = 0;
        for d in &world.deals {
            deals.hubspot += in_hs(d.presence);
            deals.salesforce[0] += in_sf(d.presence);
            contact_roles += in_hs(d.presence);
        }
        let hubspot_calls =
            contacts.hubspot_calls() + companies.hubspot_calls() + deals.hubspot_calls();
        let salesforce_calls = contacts.salesforce_calls()
            + companies.salesforce_calls()
            + deals.salesforce_calls()
            + pages(contact_roles, COLLECTION);
        Floor {
            contacts,
            companies,
            deals,
            hubspot_calls,
            salesforce_calls,
        }
    }

    /// Record pairs the sync ends with.
    pub fn pairs(&self) -> u64 {
        self.contacts.pairs() + self.companies.pairs() + self.deals.pairs()
    }

    /// Seconds HubSpot's rate limit needs for the floor's calls.
    pub fn seconds(&self) -> f64 {
        self.hubspot_calls as f64 / HUBSPOT_CALLS_PER_SECOND
    }
}
