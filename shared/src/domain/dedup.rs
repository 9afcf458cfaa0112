//! Dedup keys: what makes a HubSpot record and a Salesforce record "the same" before
//! they are linked.
//!
//! Emails: trimmed and lower-cased as a whole. The local part is left alone otherwise
//! (no dropping of dots or `+tags`): `j.doe+crm@acme.com` and `jdoe@acme.com` may be two
//! people, and a false match merges two people's data, which is worse than a duplicate.
//!
//! Company domains: the host of a URL or bare domain, lower-cased, without scheme,
//! user info, port, path, query, fragment, a trailing dot or a leading `www.`
//! (`https://WWW.Acme.com:443/about` -> `acme.com`). Salesforce's `Website` holds whatever
//! people typed, so this is the only way to match it to HubSpot's `domain`.
//!
//! Company names (when the dedup key is the name): lower-cased, punctuation dropped,
//! whitespace collapsed, and one trailing legal form dropped (`Acme, Inc.` -> `acme`).

/// The email dedup key, or `None` when the value is not an address (no sync without one).
pub fn email_key(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace);
    valid.then_some(email)
}

/// The company domain dedup key of a website or domain value.
pub fn domain_key(raw: &str) -> Option<String> {
    let mut s = raw.trim();
    if let Some(i) = s.find("://") {
        s = &s[i + 3..];
    } else if let Some(rest) = s.strip_prefix("//") {
        s = rest;
    }
    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
    s = &s[..end];
    if let Some(i) = s.rfind('@') {
        s = &s[i + 1..];
    }
    if let Some((host, port)) = s.rsplit_once(':')
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        s = host;
    }
    let host = s.trim_end_matches('.').to_lowercase();
    let host = host.strip_prefix("www.").map(str::to_owned).unwrap_or(host);
    let valid = host.contains('.')
        && !host.starts_with('.')
        && !host.contains("..")
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    valid.then_some(host)
}

const LEGAL_FORMS: [&str; 14] = [
    "inc",
    "incorporated",
    "llc",
    "ltd",
    "limited",
    "corp",
    "corporation",
    "co",
    "gmbh",
    "ag",
    "sa",
    "sas",
    "bv",
    "plc",
];

/// The company name dedup key.
pub fn company_name_key(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .to_lowercase();
    let mut words: Vec<&str> = cleaned.split_whitespace().collect();
    if words.len() > 1 && words.last().is_some_and(|w| LEGAL_FORMS.contains(w)) {
        words.pop();
    }
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased_only() {
        assert_eq!(
            email_key("  Ana.Silva+crm@Example.COM "),
            Some("ana.silva+crm@example.com".into())
        );
        assert_eq!(email_key("no-at-sign"), None);
        assert_eq!(email_key("a@b"), None);
        assert_eq!(email_key("a@@b.com"), None);
        assert_eq!(email_key("a b@c.com"), None);
        assert_eq!(email_key(""), None);
    }

    #[test]
    fn domains_lose_scheme_www_path_port_and_case() {
        for raw in [
            "acme.com",
            "https://www.acme.com",
            "HTTP://WWW.ACME.COM:8080/about?x=1#top",
            "www.acme.com/",
            "//acme.com",
            "acme.com.",
            "ftp://user:pw@acme.com",
        ] {
            assert_eq!(domain_key(raw), Some("acme.com".into()), "{raw}");
        }
        assert_eq!(
            domain_key("shop.acme.co.uk"),
            Some("shop.acme.co.uk".into())
        );
        assert_eq!(domain_key("localhost"), None);
        assert_eq!(domain_key("not a domain"), None);
        assert_eq!(domain_key(""), None);
    }

    #[test]
    fn company_names_drop_punctuation_and_one_legal_form() {
        assert_eq!(company_name_key("Acme, Inc."), Some("acme".into()));
        assert_eq!(
            company_name_key("  ACME   Widgets  GmbH "),
            Some("acme widgets".into())
        );
        assert_eq!(company_name_key("Inc"), Some("inc".into()));
        assert_eq!(company_name_key(" -- "), None);
    }
}
