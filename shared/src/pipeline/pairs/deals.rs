//! Deals <-> Opportunities: what only this pair decides. A deal made from an
//! Opportunity goes into the configured pipeline; a stage the pipeline's stage map
//! lacks is never written blank: a new record with it is not created, and an existing
//! one syncs its other fields with the stage held back, both with `unmapped_stage`.

use serde_json::{Map, Value, json};

use super::{PairHooks, PlanCheck};
use crate::domain::config::{Transform, ValidatedConfig};
use crate::domain::merge::{MergePlan, Reason};

pub(super) struct Deals {
    default_pipeline: String,
    /// The HubSpot property mapped with `transform = "deal_stage"`.
    stage: Option<String>,
}

impl Deals {
    pub fn new(config: &ValidatedConfig) -> Self {
        Deals {
            default_pipeline: config.deals.default_pipeline.clone(),
            stage: config
                .deals
                .fields
                .iter()
                .find(|f| f.transform == Some(Transform::DealStage))
                .map(|f| f.hubspot.clone()),
        }
    }
}

impl PairHooks for Deals {
    fn hubspot_properties(&self) -> Vec<String> {
        vec!["pipeline".into()]
    }

    fn hubspot_create_defaults(&self, properties: &mut Map<String, Value>) {
        let blank = properties
            .get("pipeline")
            .is_none_or(|p| p.as_str().is_none_or(str::is_empty));
        if blank {
            properties.insert("pipeline".into(), json!(self.default_pipeline));
        }
    }

    fn check_plan(&self, plan: &MergePlan<'_>, creating: bool) -> PlanCheck {
        let Some(stage) = &self.stage else {
            return PlanCheck::Go;
        };
        let unmapped = plan
            .fields
            .iter()
            .find(|f| f.hubspot == stage && f.reason == Reason::ValueNotMapped);
        let Some(f) = unmapped else {
            return PlanCheck::Go;
        };
        let message = format!(
            "the deal stage is not in the pipeline's stage map ({}): add it to deals.pipelines",
            f.detail.clone().unwrap_or_default()
        );
        if creating {
            PlanCheck::Skip {
                code: "unmapped_stage",
                field: stage.clone(),
                message,
            }
        } else {
            PlanCheck::Note {
                code: "unmapped_stage",
                field: stage.clone(),
                message,
            }
        }
    }
}
