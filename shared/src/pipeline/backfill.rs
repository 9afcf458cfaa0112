//! The initial sync, planned without writing: what a first run would create, link and
//! update on each side, for every enabled pair. Both sides are read in bulk and
//! matched in memory as the sync matches them (links, the Salesforce id a HubSpot
//! record names, then the pair's dedup key, best first by the pair's rank).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::Pipeline;
use super::pairs::{PairRun, Verdict};
use super::work::{Record, Work};
use crate::domain::Side;

/// Per object pair: what would happen, by kind, with counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BackfillPlan {
    /// `contacts` -> `create in Salesforce as Lead` -> 12, ...
    pub pairs: BTreeMap<String, BTreeMap<String, u64>>,
}

impl BackfillPlan {
    fn add(&mut self, pair: &str, what: impl Into<String>) {
        *self
            .pairs
            .entry(pair.to_owned())
            .or_default()
            .entry(what.into())
            .or_default() += 1;
    }
}

impl Pipeline {
    /// Reads both CRMs and reports what a first sync would do. Writes nothing.
    pub async fn plan_backfill(&self) -> Result<BackfillPlan, String> {
        let mut plan = BackfillPlan::default();
        for run in self.pairs.iter() {
            plan.pairs.entry(run.spec.name.clone()).or_default();
            self.plan_pair(run, &mut plan).await?;
        }
        Ok(plan)
    }

    async fn plan_pair(&self, run: &PairRun, plan: &mut BackfillPlan) -> Result<(), String> {
        let spec = &run.spec;
        let pair = spec.name.as_str();
        let props = self.pair_properties(run);
        let refs: Vec<&str> = props.iter().map(String::as_str).collect();
        // Listed, as the backfill lists them: search lags writes and stops at 10,000.
        let mut hubspot = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, next) = self
                .hubspot
                .list_page(&spec.hubspot_object, &refs, &[], false, after.as_deref())
                .await
                .map_err(|e| format!("HubSpot {}: {e}", spec.hubspot_object))?;
            hubspot.extend(page);
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        // Salesforce records by key (best first) and by id.
        let mut by_key: HashMap<String, Record> = HashMap::new();
        let mut by_id: HashMap<String, Record> = HashMap::new();
        for sobject in &spec.sobjects {
            let fields = self.pair_fields(run, sobject).join(", ");
            let filter = run
                .hooks
                .match_filter(sobject)
                .map(|f| format!(" WHERE {f}"))
                .unwrap_or_default();
            let rows = self
                .salesforce
                .query(&format!("SELECT {fields} FROM {sobject}{filter}"), false)
                .await
                .map_err(|e| format!("Salesforce {sobject}: {e}"))?;
            for row in rows.into_iter().filter_map(|r| r.as_object().cloned()) {
                let record = Record::new(sobject, row);
                by_id.insert(short(&record.id()), record.clone());
                let Some(key) = spec
                    .match_key
                    .as_ref()
                    .and_then(|k| k.of_salesforce(&record.row))
                else {
                    continue;
                };
                let better = by_key
                    .get(&key)
                    .is_none_or(|o| run.hooks.rank(&record) > run.hooks.rank(o));
                let loser = if better {
                    by_key.insert(key, record)
                } else {
                    Some(record)
                };
                if let Some(l) = loser {
                    by_id.remove(&short(&l.id()));
                    plan.add(
                        pair,
                        format!("skip Salesforce {} (duplicate key)", l.object),
                    );
                }
            }
        }
        // An inclusion list is read whole here: a plan reads everything once anyway.
        let members: Option<HashSet<String>> = match spec.inclusion.list() {
            Some(list) => Some(
                self.hubspot
                    .list_members(list)
                    .await
                    .map_err(|e| format!("HubSpot list {list}: {e}"))?
                    .into_iter()
                    .collect(),
            ),
            None => None,
        };
        let mut matched: HashSet<String> = HashSet::new();
        for h in &hubspot {
            if self
                .links
                .by_hubspot(pair, &h.id)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                plan.add(pair, "update (already linked)");
                continue;
            }
            let named = spec.sobjects.iter().find_map(|o| {
                let property = spec.salesforce_id_property(o)?;
                let id = h.properties.get(property).and_then(Value::as_str)?;
                by_id.get(&short(id))
            });
            let key = spec
                .match_key
                .as_ref()
                .and_then(|k| k.of_hubspot(&h.properties));
            let found = named.or_else(|| key.as_ref().and_then(|k| by_key.get(k)));
            if let Some(s) = found {
                plan.add(pair, format!("link with Salesforce {}", s.object));
                matched.insert(short(&s.id()));
                continue;
            }
            if let (Some(k), None) = (&spec.match_key, &key) {
                plan.add(
                    pair,
                    format!("skip HubSpot record ({})", k.kind.missing_code()),
                );
                continue;
            }
            let work = Work {
                hubspot: Some(h.clone()),
                origin: Some(Side::HubSpot),
                in_list: members.as_ref().map(|m| m.contains(&h.id)),
                ..Work::default()
            };
            match run.admit(&work) {
                Verdict::Skip { code, .. } => {
                    plan.add(pair, format!("skip HubSpot record ({code})"))
                }
                Verdict::Go => plan.add(
                    pair,
                    format!(
                        "create in Salesforce as {}",
                        run.hooks.create_as(spec, &work)
                    ),
                ),
            }
        }
        for s in by_id.values() {
            if matched.contains(&short(&s.id())) {
                continue;
            }
            if self
                .links
                .by_salesforce(&s.object, &s.id())
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                continue;
            }
            if let (Some(k), None) = (
                &spec.match_key,
                spec.match_key
                    .as_ref()
                    .and_then(|k| k.of_salesforce(&s.row)),
            ) {
                plan.add(
                    pair,
                    format!("skip Salesforce {} ({})", s.object, k.kind.missing_code()),
                );
                continue;
            }
            let work = Work {
                salesforce: Some(s.clone()),
                origin: Some(Side::Salesforce),
                ..Work::default()
            };
            match run.admit(&work) {
                Verdict::Skip { code, .. } => {
                    plan.add(pair, format!("skip Salesforce {} ({code})", s.object))
                }
                Verdict::Go => plan.add(
                    pair,
                    format!("create in HubSpot from Salesforce {}", s.object),
                ),
            }
        }
        Ok(())
    }
}

fn short(id: &str) -> String {
    id.get(..15).unwrap_or(id).to_owned()
}
