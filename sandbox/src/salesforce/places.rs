//! The org's State and Country/Territory picklists (Setup > State and Country/Territory
//! Picklists): every country and state with its ISO code and label, active or not. A
//! new org has Salesforce's standard values: the ISO 3166 countries, and states for the
//! countries Salesforce ships them for. Admins customize them (add a state or country,
//! relabel one, deactivate one) through the control API, as they would in Setup; what
//! writes accept and what describe lists then follow the org's values.
//!
//! Describe lists each address's `CountryCode` with the active countries and its
//! `StateCode` as a dependent picklist: `controllerName` is the country code field and
//! each state's `validFor` is a base64 bitmap over the countries' positions (bit 7 of
//! byte 0 is the first country), as Salesforce's describe does.

use base64::Engine;
use serde_json::{Value, json};

/// The countries Salesforce ships states and provinces for.
const WITH_STATES: [&str; 9] = ["US", "CA", "AU", "BR", "CN", "IN", "IE", "IT", "MX"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub code: String,
    pub label: String,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct Places {
    pub countries: Vec<Place>,
    /// (country code, state).
    pub states: Vec<(String, Place)>,
}

/// Salesforce's standard label of a country, where it differs from ISO's short name.
fn standard_label(c: &rust_iso3166::CountryCode) -> String {
    match c.alpha2 {
        "US" => "United States".into(),
        "GB" => "United Kingdom".into(),
        _ => c.name.split('[').next().unwrap_or(c.name).trim().to_owned(),
    }
}

impl Places {
    /// Salesforce's standard values.
    pub fn standard() -> Self {
        let countries = rust_iso3166::ALL
            .iter()
            .map(|c| Place {
                code: c.alpha2.to_owned(),
                label: standard_label(c),
                active: true,
            })
            .collect();
        let states = WITH_STATES
            .iter()
            .filter_map(|code| rust_iso3166::from_alpha2(code))
            .flat_map(|c| {
                c.subdivisions()
                    .unwrap_or_default()
                    .iter()
                    .map(move |s| {
                        (
                            c.alpha2.to_owned(),
                            Place {
                                code: s.region_code.to_owned(),
                                label: s.name.to_owned(),
                                active: true,
                            },
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Places { countries, states }
    }

    /// An active country named by its code or its label.
    pub fn country(&self, text: &str) -> Option<&Place> {
        let text = text.trim();
        self.countries.iter().find(|c| {
            c.active && (c.code.eq_ignore_ascii_case(text) || c.label.eq_ignore_ascii_case(text))
        })
    }

    /// An active state of an active country, named by its code or its label.
    pub fn state(&self, country: &str, text: &str) -> Option<&Place> {
        let text = text.trim();
        let country = self.country(country)?;
        self.states
            .iter()
            .filter(|(c, s)| *c == country.code && s.active)
            .map(|(_, s)| s)
            .find(|s| s.code.eq_ignore_ascii_case(text) || s.label.eq_ignore_ascii_case(text))
    }

    /// An active country by its exact code (what a code field must hold).
    pub fn country_by_code(&self, code: &str) -> Option<&Place> {
        self.country(code).filter(|c| c.code == code)
    }

    /// An active state of a country by its exact code.
    pub fn state_by_code(&self, country: &str, code: &str) -> Option<&Place> {
        self.state(country, code).filter(|s| s.code == code)
    }

    /// Adds a country, or relabels / (de)activates the one with its code.
    pub fn set_country(&mut self, place: Place) {
        match self.countries.iter_mut().find(|c| c.code == place.code) {
            Some(c) => *c = place,
            None => self.countries.push(place),
        }
    }

    /// Adds a state to a country, or relabels / (de)activates the one with its code.
    pub fn set_state(&mut self, country: &str, place: Place) {
        match self
            .states
            .iter_mut()
            .find(|(c, s)| c == country && s.code == place.code)
        {
            Some((_, s)) => *s = place,
            None => self.states.push((country.to_owned(), place)),
        }
    }

    fn active_countries(&self) -> impl Iterator<Item = &Place> {
        self.countries.iter().filter(|c| c.active)
    }

    /// A country code field's `picklistValues`.
    pub fn country_values(&self) -> Vec<Value> {
        self.active_countries()
            .map(|c| json!({"active": true, "defaultValue": false, "label": c.label, "validFor": null, "value": c.code}))
            .collect()
    }

    /// A state code field's `picklistValues`, each valid for its country.
    pub fn state_values(&self) -> Vec<Value> {
        let countries: Vec<&str> = self.active_countries().map(|c| c.code.as_str()).collect();
        let bytes = countries.len().div_ceil(8);
        self.states
            .iter()
            .filter(|(_, s)| s.active)
            .filter_map(|(country, s)| {
                let at = countries.iter().position(|c| c == country)?;
                let mut bits = vec![0u8; bytes];
                bits[at / 8] |= 0x80 >> (at % 8);
                let valid_for = base64::engine::general_purpose::STANDARD.encode(bits);
                Some(json!({"active": true, "defaultValue": false, "label": s.label, "validFor": valid_for, "value": s.code}))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_values_and_customizations() {
        let mut p = Places::standard();
        assert_eq!(
            p.country("united states").map(|c| c.code.as_str()),
            Some("US")
        );
        assert_eq!(
            p.state("US", "California").map(|s| s.code.as_str()),
            Some("CA")
        );
        assert!(
            p.state("DE", "Bayern").is_none(),
            "no German states by default"
        );
        p.set_state(
            "GB",
            Place {
                code: "SCT".into(),
                label: "Scotland".into(),
                active: true,
            },
        );
        p.set_country(Place {
            code: "FR".into(),
            label: "France".into(),
            active: false,
        });
        assert_eq!(
            p.state("GB", "scotland").map(|s| s.code.as_str()),
            Some("SCT")
        );
        assert!(p.country("France").is_none(), "inactive");
    }

    #[test]
    fn states_are_valid_for_their_country_alone() {
        let p = Places::standard();
        let countries: Vec<&str> = p.active_countries().map(|c| c.code.as_str()).collect();
        let us = countries
            .iter()
            .position(|c| *c == "US")
            .unwrap_or(usize::MAX);
        let values = p.state_values();
        let ca = values
            .iter()
            .find(|v| v["label"] == "California")
            .unwrap_or_else(|| panic!("California"));
        let bits = base64::engine::general_purpose::STANDARD
            .decode(ca["validFor"].as_str().unwrap_or_default())
            .unwrap_or_default();
        let set: Vec<usize> = (0..bits.len() * 8)
            .filter(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0)
            .collect();
        assert_eq!(set, vec![us]);
    }
}
