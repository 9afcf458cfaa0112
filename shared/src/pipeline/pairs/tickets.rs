//! Tickets <-> Cases: what only this pair decides. A ticket made from a Case goes into
//! the configured ticket pipeline, at the stage its status maps to or else the
//! configured first stage (HubSpot needs both on create). Statuses and priorities map
//! through the fields' value maps; one without a counterpart is held back with
//! `value_not_mapped`, never written blank. The Case's contact and account follow the
//! ticket's associations (lookups, `pair.rs`); a contact that syncs with a Lead cannot
//! fill `Case.ContactId` and says so (`related_not_contact`).

use serde_json::{Map, Value, json};

use super::PairHooks;
use crate::domain::config::ValidatedConfig;

pub(super) struct Tickets {
    pipeline: String,
    default_stage: String,
}

impl Tickets {
    pub fn new(config: &ValidatedConfig) -> Self {
        Tickets {
            pipeline: config.tickets.pipeline.clone(),
            default_stage: config.tickets.default_stage.clone(),
        }
    }
}

fn blank(properties: &Map<String, Value>, name: &str) -> bool {
    properties
        .get(name)
        .is_none_or(|v| v.as_str().is_none_or(str::is_empty))
}

impl PairHooks for Tickets {
    fn hubspot_properties(&self) -> Vec<String> {
        vec!["hs_pipeline".into(), "hs_pipeline_stage".into()]
    }

    fn hubspot_create_defaults(&self, properties: &mut Map<String, Value>) {
        if blank(properties, "hs_pipeline") {
            properties.insert("hs_pipeline".into(), json!(self.pipeline));
        }
        if blank(properties, "hs_pipeline_stage") {
            properties.insert("hs_pipeline_stage".into(), json!(self.default_stage));
        }
    }
}
