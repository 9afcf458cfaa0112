//! Which records of a pair sync, as the seeds describe it: only HubSpot records inside
//! the inclusion list (or filter) sync to Salesforce; a Salesforce record without a link
//! still creates (or finds) its HubSpot record whatever the HubSpot rule, but once
//! linked, a record outside the rule syncs neither way; its link stays, and it syncs
//! again when it is inside. A Salesforce filter keeps records of an sObject out of
//! HubSpot, and a linked one that leaves it stops syncing the same way.

use super::Verdict;
use crate::domain::Side;
use crate::domain::pair::PairSpec;
use crate::pipeline::work::Work;

pub(crate) const OUTSIDE_INCLUSION: &str = "outside_inclusion";
pub(crate) const OUTSIDE_SALESFORCE_INCLUSION: &str = "outside_salesforce_inclusion";

pub(super) fn verdict(spec: &PairSpec, work: &Work) -> Verdict {
    let rules = &spec.inclusion;
    let link = work.link.as_ref();
    let new_from_salesforce =
        link.is_none() && work.origin == Some(Side::Salesforce) && work.salesforce.is_some();
    if let Some(h) = &work.hubspot
        && !new_from_salesforce
        && rules.hubspot.admits(&h.properties).or(work.in_list) == Some(false)
    {
        let message = match link {
            Some(l) => format!(
                "outside {}: its changes no longer sync either way; its link to Salesforce {} {} stays, and it syncs again once it is inside",
                rules.hubspot, l.salesforce_object, l.salesforce_id
            ),
            None => format!("outside {}: it does not sync to Salesforce", rules.hubspot),
        };
        return Verdict::Skip {
            code: OUTSIDE_INCLUSION,
            message: Some(message),
        };
    }
    if let Some(s) = &work.salesforce
        && !rules.admits_salesforce(&s.object, &s.row)
    {
        let rest = if link.is_some() {
            "its changes no longer sync either way; its link stays, and it syncs again once it is inside"
        } else {
            "it does not sync to HubSpot"
        };
        return Verdict::Skip {
            code: OUTSIDE_SALESFORCE_INCLUSION,
            message: Some(format!(
                "outside the Salesforce inclusion filter ({}): {rest}",
                rules.describe_salesforce(&s.object)
            )),
        };
    }
    Verdict::Go
}
