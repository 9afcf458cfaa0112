//! Free-text states and countries <-> Salesforce's State and Country picklists.
//!
//! Salesforce's picklists hold ISO 3166 values: `CountryCode` is ISO 3166-1 alpha-2,
//! `StateCode` the subdivision part of ISO 3166-2 (`US-CA` -> `CA`), and the labels
//! (`Country`, `State`) the standard English names. HubSpot holds whatever people typed.
//! The data comes from the `rust_iso3166` crate; a few everyday aliases and
//! Salesforce's own short labels for the US and the UK are added here.

use std::collections::HashMap;
use std::sync::LazyLock;

use rust_iso3166::CountryCode;

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
}
