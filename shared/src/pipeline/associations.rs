//! The contact-company association, kept in step with Salesforce's Contact.AccountId:
//! an Account set in Salesforce associates the HubSpot contact with the linked company;
//! a HubSpot company on a contact whose Salesforce Contact has no Account sets it. One
//! association read and at most one write per side for a whole batch.

use serde_json::{Map, Value, json};

use super::{Pipeline, companies};

/// A synced Contact pair: HubSpot contact id, Salesforce Contact id, its AccountId.
pub(crate) struct ContactAccount {
    pub hubspot_id: String,
    pub salesforce_id: String,
    pub account_id: Option<String>,
}

impl Pipeline {
    pub(crate) async fn sync_contact_companies(&self, pairs: Vec<ContactAccount>) {
        if pairs.is_empty() || !self.config.companies.enabled {
            return;
        }
        if let Err(e) = self.try_sync_contact_companies(&pairs).await {
            // The records themselves synced; the next change of either retries this.
            tracing::warn!(message = "contact-company associations not synced", error = %e);
        }
    }

    async fn try_sync_contact_companies(&self, pairs: &[ContactAccount]) -> Result<(), String> {
        let ids: Vec<String> = pairs.iter().map(|p| p.hubspot_id.clone()).collect();
        let current = self
            .hubspot
            .associations("contacts", "companies", &ids)
            .await
            .map_err(|e| e.to_string())?;
        let mut associate = Vec::new();
        let mut set_account: Vec<(String, Map<String, Value>)> = Vec::new();
        for p in pairs {
            let companies_of: &[String] = current
                .iter()
                .find(|(id, _)| *id == p.hubspot_id)
                .map(|(_, c)| c.as_slice())
                .unwrap_or_default();
            match &p.account_id {
                Some(account) => {
                    let link = self
                        .links
                        .by_salesforce(companies::SOBJECT, account)
                        .await
                        .map_err(|e| e.to_string())?;
                    if let Some(link) = link.filter(|l| !companies_of.contains(&l.hubspot_id)) {
                        associate.push((p.hubspot_id.clone(), link.hubspot_id));
                    }
                }
                None => {
                    for company in companies_of {
                        let link = self
                            .links
                            .by_hubspot(companies::PAIR, company)
                            .await
                            .map_err(|e| e.to_string())?;
                        if let Some(link) = link {
                            let mut row = Map::new();
                            row.insert("Id".into(), json!(p.salesforce_id));
                            row.insert("AccountId".into(), json!(link.salesforce_id));
                            set_account.push(("Contact".into(), row));
                            break;
                        }
                    }
                }
            }
        }
        if !associate.is_empty() {
            self.hubspot
                .associate("contacts", "companies", &associate)
                .await
                .map_err(|e| e.to_string())?;
        }
        if !set_account.is_empty() {
            let results = self
                .salesforce
                .update(&set_account, false)
                .await
                .map_err(|e| e.to_string())?;
            for r in results.iter().filter(|r| !r.ok()) {
                tracing::warn!(message = "Contact.AccountId not set", errors = ?r.errors);
            }
        }
        Ok(())
    }
}
