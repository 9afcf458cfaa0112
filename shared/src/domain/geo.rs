//! Free-text states and countries <-> Salesforce's State and Country picklists.
//!
//! Salesforce's picklists hold ISO 3166 values: `CountryCode` is ISO 3166-1 alpha-2,
//! `StateCode` the subdivision part of ISO 3166-2 (`US-CA` -> `CA`), and the labels
//! (`Country`, `State`) the standard English names. HubSpot holds whatever people typed.
//! The data comes from the `rust_iso3166` crate; a few everyday aliases and
//! Salesforce's own short labels for the US and the UK are added here.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use rust_iso3166::CountryCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everyday spellings that are not an ISO name or code.
const COUNTRY_ALIASES: [(&str, &str); 24] = [
    ("usa", "US"),
    ("u.s.", "US"),
    ("u.s.a.", "US"),
    ("united states", "US"),
    ("america", "US"),
    ("uk", "GB"),
    ("u.k.", "GB"),
    ("united kingdom", "GB"),
    ("great britain", "GB"),
    ("south korea", "KR"),
    ("korea", "KR"),
    ("north korea", "KP"),
    ("russia", "RU"),
    ("vietnam", "VN"),
    ("iran", "IR"),
    ("syria", "SY"),
    ("laos", "LA"),
    ("bolivia", "BO"),
    ("venezuela", "VE"),
    ("tanzania", "TZ"),
    ("taiwan", "TW"),
    ("czech republic", "CZ"),
    ("holland", "NL"),
    ("turkey", "TR"),
];

/// Salesforce's default labels where they differ from the ISO short name.
const SALESFORCE_LABELS: [(&str, &str); 2] = [("US", "United States"), ("GB", "United Kingdom")];

static COUNTRIES_BY_NAME: LazyLock<HashMap<String, &'static str>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for c in rust_iso3166::ALL {
        map.insert(clean_name(c.name).to_lowercase(), c.alpha2);
        map.insert(c.alpha2.to_lowercase(), c.alpha2);
        map.insert(c.alpha3.to_lowercase(), c.alpha2);
    }
    for (alias, code) in COUNTRY_ALIASES {
        map.insert(alias.to_owned(), code);
    }
    map
});

/// The data set marks some names with footnotes (`Svalbard and Jan Mayen[e]`).
fn clean_name(name: &'static str) -> &'static str {
    name.split('[').next().unwrap_or(name).trim()
}

fn country(code: &str) -> Option<CountryCode> {
    rust_iso3166::from_alpha2(&code.to_ascii_uppercase())
}

/// The ISO 3166-1 alpha-2 code of a country written as a code, a name or an alias.
pub fn country_code(text: &str) -> Option<&'static str> {
    COUNTRIES_BY_NAME
        .get(text.trim().to_lowercase().as_str())
        .copied()
}

/// Salesforce's default label of a country code.
pub fn country_label(code: &str) -> Option<&'static str> {
    let c = country(code)?;
    Some(
        SALESFORCE_LABELS
            .iter()
            .find(|(k, _)| *k == c.alpha2)
            .map(|(_, label)| *label)
            .unwrap_or_else(|| clean_name(c.name)),
    )
}

/// The state code (ISO 3166-2 without the country prefix) of a state written as a code
/// or a name, within a country.
pub fn state_code(country_code: &str, text: &str) -> Option<&'static str> {
    let text = text.trim();
    country(country_code)?
        .subdivisions()?
        .iter()
        .find(|s| s.region_code.eq_ignore_ascii_case(text) || s.name.eq_ignore_ascii_case(text))
        .map(|s| s.region_code)
}

/// The standard name of a state code within a country.
pub fn state_label(country_code: &str, state_code: &str) -> Option<&'static str> {
    country(country_code)?
        .subdivisions()?
        .iter()
        .find(|s| s.region_code.eq_ignore_ascii_case(state_code))
        .map(|s| s.name)
}

/// A country or state as the org's picklist has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub code: String,
    pub label: String,
}

/// The org's own State and Country/Territory picklists (an admin may add, relabel or
/// deactivate values), as describe lists them on an address's `CountryCode` and its
/// dependent `StateCode`. Only active values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceCatalog {
    pub countries: Vec<Place>,
    /// By country code.
    pub states: BTreeMap<String, Vec<Place>>,
}

impl PlaceCatalog {
    /// From a Salesforce describe: the first address whose country and state code fields
    /// list values (every address of an org shares them). `None` when the org's
    /// picklists are off or describe does not say.
    pub fn from_describe(describe: &Value) -> Option<PlaceCatalog> {
        let fields = describe.get("fields")?.as_array()?;
        let field = |name: &str| {
            fields
                .iter()
                .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
        };
        let values = |f: &Value| -> Vec<Value> {
            f.get("picklistValues")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        fields.iter().find_map(|f| {
            let name = f.get("name")?.as_str()?;
            let prefix = name.strip_suffix("CountryCode")?;
            let countries = values(f);
            if countries.is_empty() {
                return None;
            }
            let state_field = field(&format!("{prefix}StateCode"));
            let states = state_field.map(values).unwrap_or_default();
            Some(PlaceCatalog::of_values(&countries, &states))
        })
    }

    /// Countries from the controlling picklist's values (in describe order, which the
    /// states' `validFor` bitmaps index) and states from the dependent one.
    fn of_values(countries: &[Value], states: &[Value]) -> PlaceCatalog {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let active = |v: &Value| v.get("active").and_then(Value::as_bool) != Some(false);
        let place = |v: &Value| {
            let code = text(v, "value")?;
            let label = text(v, "label").unwrap_or_else(|| code.clone());
            Some(Place { code, label })
        };
        let mut catalog = PlaceCatalog {
            countries: countries
                .iter()
                .filter(|v| active(v))
                .filter_map(place)
                .collect(),
            states: BTreeMap::new(),
        };
        let engine = base64::engine::general_purpose::STANDARD;
        for s in states.iter().filter(|v| active(v)) {
            let (Some(state), Some(bits)) = (place(s), text(s, "validFor")) else {
                continue;
            };
            let Ok(bits) = base64::Engine::decode(&engine, bits) else {
                continue;
            };
            for (i, country) in countries.iter().enumerate() {
                let set = bits.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0);
                if let (true, Some(code)) = (set, text(country, "value")) {
                    catalog.states.entry(code).or_default().push(state.clone());
                }
            }
        }
        catalog
    }

    fn find<'a>(places: &'a [Place], text: &str) -> Option<&'a Place> {
        let text = text.trim();
        places
            .iter()
            .find(|p| p.code.eq_ignore_ascii_case(text) || p.label.eq_ignore_ascii_case(text))
    }

    fn country(&self, text: &str) -> Option<&Place> {
        Self::find(&self.countries, text).or_else(|| {
            // Everyday and ISO spellings of a country the org has under its own label.
            let code = country_code(text)?;
            self.countries.iter().find(|p| p.code == code)
        })
    }

    fn state(&self, country: &str, text: &str) -> Option<&Place> {
        let states = self.states.get(country)?;
        Self::find(states, text).or_else(|| {
            let code = state_code(country, text)?;
            states.iter().find(|p| p.code.eq_ignore_ascii_case(code))
        })
    }
}

/// Where a record's places are looked up: ISO 3166 with Salesforce's standard labels,
/// or the org's customized picklists.
#[derive(Debug, Clone, Copy)]
pub enum Places<'a> {
    Standard,
    Org(&'a PlaceCatalog),
}

impl<'a> Places<'a> {
    /// The country code of a country written as a code, a label, a name or an alias.
    pub fn country_code(&self, text: &str) -> Option<&'a str> {
        match *self {
            Places::Standard => country_code(text),
            Places::Org(c) => c.country(text).map(|p| p.code.as_str()),
        }
    }

    /// The picklist's label of a country code.
    pub fn country_label(&self, code: &str) -> Option<&'a str> {
        match *self {
            Places::Standard => country_label(code),
            Places::Org(c) => c
                .countries
                .iter()
                .find(|p| p.code.eq_ignore_ascii_case(code))
                .map(|p| p.label.as_str()),
        }
    }

    /// The state code of a state written as a code or a name, within a country.
    pub fn state_code(&self, country: &str, text: &str) -> Option<&'a str> {
        match *self {
            Places::Standard => state_code(country, text),
            Places::Org(c) => c.state(country, text).map(|p| p.code.as_str()),
        }
    }

    /// The picklist's label of a state code within a country.
    pub fn state_label(&self, country: &str, code: &str) -> Option<&'a str> {
        match *self {
            Places::Standard => state_label(country, code),
            Places::Org(c) => c
                .states
                .get(country)?
                .iter()
                .find(|p| p.code.eq_ignore_ascii_case(code))
                .map(|p| p.label.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_by_code_name_and_alias() {
        for text in [
            "US",
            "usa",
            "United States of America",
            " united states ",
            "USA",
        ] {
            assert_eq!(country_code(text), Some("US"), "{text}");
        }
        assert_eq!(country_code("Germany"), Some("DE"));
        assert_eq!(country_code("DEU"), Some("DE"));
        assert_eq!(country_code("Svalbard and Jan Mayen"), Some("SJ"));
        assert_eq!(country_code("Atlantis"), None);
    }

    #[test]
    fn salesforce_labels() {
        assert_eq!(country_label("US"), Some("United States"));
        assert_eq!(country_label("gb"), Some("United Kingdom"));
        assert_eq!(country_label("DE"), Some("Germany"));
        assert_eq!(country_label("XX"), None);
    }

    #[test]
    fn states_within_their_country() {
        assert_eq!(state_code("US", "California"), Some("CA"));
        assert_eq!(state_code("US", "ca"), Some("CA"));
        assert_eq!(state_code("CA", "Ontario"), Some("ON"));
        assert_eq!(state_code("US", "Ontario"), None);
        assert_eq!(state_label("US", "NY"), Some("New York"));
        assert_eq!(state_label("ZZ", "NY"), None);
    }

    /// A describe of an org whose admin renamed California, added Scotland and Kosovo
    /// and has no France.
    fn customized() -> Value {
        use base64::Engine;
        let countries = ["GB", "US", "XK"];
        let bit = |c: &str| {
            let i = countries.iter().position(|x| *x == c).unwrap_or(0);
            base64::engine::general_purpose::STANDARD.encode([0x80u8 >> i])
        };
        serde_json::json!({"fields": [
            {"name": "MailingCountryCode", "picklistValues": [
                {"value": "GB", "label": "United Kingdom", "active": true},
                {"value": "US", "label": "United States", "active": true},
                {"value": "XK", "label": "Kosovo", "active": true},
                {"value": "FR", "label": "France", "active": false}]},
            {"name": "MailingStateCode", "picklistValues": [
                {"value": "SCT", "label": "Scotland", "active": true, "validFor": bit("GB")},
                {"value": "CA", "label": "Golden State", "active": true, "validFor": bit("US")},
                {"value": "NY", "label": "New York", "active": true, "validFor": bit("US")}]}
        ]})
    }

    #[test]
    fn the_orgs_own_places() {
        let catalog =
            PlaceCatalog::from_describe(&customized()).unwrap_or_else(|| panic!("a catalog"));
        let org = Places::Org(&catalog);
        assert_eq!(org.country_code("kosovo"), Some("XK"));
        assert_eq!(org.country_code("USA"), Some("US"), "aliases still work");
        assert_eq!(org.country_code("France"), None, "inactive");
        assert_eq!(org.country_label("GB"), Some("United Kingdom"));
        assert_eq!(org.state_code("GB", "Scotland"), Some("SCT"));
        assert_eq!(org.state_code("US", "golden state"), Some("CA"));
        assert_eq!(
            org.state_code("US", "California"),
            Some("CA"),
            "ISO name of an org code"
        );
        assert_eq!(
            org.state_code("US", "Texas"),
            None,
            "not in the org's picklist"
        );
        assert_eq!(org.state_label("US", "CA"), Some("Golden State"));
        assert_eq!(Places::Standard.state_label("US", "CA"), Some("California"));
        assert!(PlaceCatalog::from_describe(&serde_json::json!({"fields": [{"name": "MailingCountryCode", "picklistValues": []}]})).is_none());
    }
}
