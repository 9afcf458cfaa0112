//! Connection settings and secrets of the local runner, from the environment only (the
//! configuration file holds no secrets). Every problem names its variable.

use crate::adapters::http::Secret;
use crate::adapters::hubspot::{HubSpotAuth, HubSpotConfig};
use crate::adapters::salesforce::{DEFAULT_LOGIN_URL, SalesforceAuth, SalesforceConfig};
use crate::pipeline::intake::IntakeSettings;

pub const DEFAULT_HUBSPOT_URL: &str = "https://api.hubapi.com";

/// Every variable `crmsync run` reads, with what it is for (printed by `--help` and
/// documented in README).
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "CRMSYNC_HUBSPOT_URL",
        "HubSpot API base URL (default https://api.hubapi.com)",
    ),
    ("CRMSYNC_HUBSPOT_TOKEN", "private app access token"),
    (
        "CRMSYNC_HUBSPOT_CLIENT_ID",
        "OAuth app client id (with the two below, instead of a token)",
    ),
    ("CRMSYNC_HUBSPOT_CLIENT_SECRET", "OAuth app client secret"),
    ("CRMSYNC_HUBSPOT_REFRESH_TOKEN", "OAuth refresh token"),
    (
        "CRMSYNC_HUBSPOT_APP_SECRET",
        "app secret that signs webhooks (v3)",
    ),
    (
        "CRMSYNC_HUBSPOT_PORTAL_ID",
        "the portal (hub) id, for links to records in HubSpot (optional)",
    ),
    ("CRMSYNC_SALESFORCE_URL", "the org's instance URL"),
    (
        "CRMSYNC_SALESFORCE_LOGIN_URL",
        "OAuth host (default https://login.salesforce.com)",
    ),
    (
        "CRMSYNC_SALESFORCE_TOKEN",
        "an access token (cannot be renewed)",
    ),
    (
        "CRMSYNC_SALESFORCE_CLIENT_ID",
        "connected app consumer key (refresh-token or JWT flow)",
    ),
    (
        "CRMSYNC_SALESFORCE_CLIENT_SECRET",
        "connected app secret (refresh-token flow)",
    ),
    (
        "CRMSYNC_SALESFORCE_REFRESH_TOKEN",
        "refresh token (refresh-token flow)",
    ),
    ("CRMSYNC_SALESFORCE_USERNAME", "integration user (JWT flow)"),
    (
        "CRMSYNC_SALESFORCE_PRIVATE_KEY_FILE",
        "PKCS#8 PEM key of the connected app certificate (JWT flow)",
    ),
    (
        "CRMSYNC_SALESFORCE_ORG_ID",
        "the org id outbound messages must carry",
    ),
    (
        "CRMSYNC_SALESFORCE_OUTBOUND_TOKEN",
        "secret in the outbound message URL (?token=)",
    ),
    (
        "CRMSYNC_API_KEY",
        "bearer key for POST /sync, GET /health and GET /dashboard",
    ),
    (
        "CRMSYNC_PUBLIC_URL",
        "the URL the CRMs call (default http://LISTEN_ADDRESS)",
    ),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct EnvError {
    pub variable: &'static str,
    pub message: String,
}

/// What the environment says.
#[derive(Debug, Clone)]
pub struct Connections {
    pub hubspot: HubSpotConfig,
    pub salesforce: SalesforceConfig,
    /// `public_url` is empty when not set: the runner fills in its listen address.
    pub intake: IntakeSettings,
}

fn url(variable: &'static str, value: String) -> Result<String, EnvError> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value.trim_end_matches('/').to_owned())
    } else {
        Err(EnvError {
            variable,
            message: format!("expected an http(s) URL, got {value:?}"),
        })
    }
}

impl Connections {
    /// Reads the variables through `get` (`std::env::var` in the binary). Reports the
    /// first problem, naming the variable and what was expected.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let secret = |name: &str| var(name).map(Secret::new);

        let hubspot_url = url(
            "CRMSYNC_HUBSPOT_URL",
            var("CRMSYNC_HUBSPOT_URL").unwrap_or_else(|| DEFAULT_HUBSPOT_URL.into()),
        )?;
        let hubspot_auth = match (
            secret("CRMSYNC_HUBSPOT_TOKEN"),
            var("CRMSYNC_HUBSPOT_CLIENT_ID"),
            secret("CRMSYNC_HUBSPOT_CLIENT_SECRET"),
            secret("CRMSYNC_HUBSPOT_REFRESH_TOKEN"),
        ) {
            (Some(token), _, _, _) => HubSpotAuth::PrivateApp(token),
            (None, Some(client_id), Some(client_secret), Some(refresh_token)) => {
                HubSpotAuth::OAuth {
                    client_id,
                    client_secret,
                    refresh_token,
                }
            }
            _ => {
                return Err(EnvError {
                    variable: "CRMSYNC_HUBSPOT_TOKEN",
                    message: "expected a private app token, or CRMSYNC_HUBSPOT_CLIENT_ID, \
                              CRMSYNC_HUBSPOT_CLIENT_SECRET and CRMSYNC_HUBSPOT_REFRESH_TOKEN"
                        .into(),
                });
            }
        };

        let instance = var("CRMSYNC_SALESFORCE_URL").ok_or_else(|| EnvError {
            variable: "CRMSYNC_SALESFORCE_URL",
            message: "expected the org's instance URL (https://yourorg.my.salesforce.com)".into(),
        })?;
        let instance = url("CRMSYNC_SALESFORCE_URL", instance)?;
        let login = url(
            "CRMSYNC_SALESFORCE_LOGIN_URL",
            var("CRMSYNC_SALESFORCE_LOGIN_URL").unwrap_or_else(|| DEFAULT_LOGIN_URL.into()),
        )?;
        let client_id = var("CRMSYNC_SALESFORCE_CLIENT_ID");
        let salesforce_auth = if let Some(token) = secret("CRMSYNC_SALESFORCE_TOKEN") {
            SalesforceAuth::AccessToken(token)
        } else if let (Some(client_id), Some(client_secret), Some(refresh_token)) = (
            client_id.clone(),
            secret("CRMSYNC_SALESFORCE_CLIENT_SECRET"),
            secret("CRMSYNC_SALESFORCE_REFRESH_TOKEN"),
        ) {
            SalesforceAuth::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            }
        } else if let (Some(client_id), Some(username), Some(key_file)) = (
            client_id,
            var("CRMSYNC_SALESFORCE_USERNAME"),
            var("CRMSYNC_SALESFORCE_PRIVATE_KEY_FILE"),
        ) {
            let pem = std::fs::read_to_string(&key_file).map_err(|e| EnvError {
                variable: "CRMSYNC_SALESFORCE_PRIVATE_KEY_FILE",
                message: format!("cannot read {key_file}: {e}"),
            })?;
            SalesforceAuth::Jwt {
                client_id,
                username,
                private_key: Secret::new(pem),
            }
        } else {
            return Err(EnvError {
                variable: "CRMSYNC_SALESFORCE_TOKEN",
                message: "expected an access token, or CRMSYNC_SALESFORCE_CLIENT_ID with \
                          CRMSYNC_SALESFORCE_CLIENT_SECRET and CRMSYNC_SALESFORCE_REFRESH_TOKEN, \
                          or with CRMSYNC_SALESFORCE_USERNAME and CRMSYNC_SALESFORCE_PRIVATE_KEY_FILE"
                    .into(),
            });
        };

        let public_url = match var("CRMSYNC_PUBLIC_URL") {
            Some(u) => url("CRMSYNC_PUBLIC_URL", u)?,
            None => String::new(),
        };
        let org_id = var("CRMSYNC_SALESFORCE_ORG_ID");
        if let Some(org) = &org_id
            && !(org.len() == 15 || org.len() == 18)
        {
            return Err(EnvError {
                variable: "CRMSYNC_SALESFORCE_ORG_ID",
                message: format!(
                    "expected a 15- or 18-character org id, got {} characters",
                    org.len()
                ),
            });
        }
        let mut salesforce = SalesforceConfig::new(instance, salesforce_auth);
        salesforce.login_url = login;
        Ok(Connections {
            hubspot: HubSpotConfig {
                portal_id: var("CRMSYNC_HUBSPOT_PORTAL_ID"),
                ..HubSpotConfig::new(hubspot_url, hubspot_auth)
            },
            salesforce,
            intake: IntakeSettings {
                public_url,
                hubspot_app_secret: secret("CRMSYNC_HUBSPOT_APP_SECRET"),
                salesforce_org_id: org_id,
                salesforce_outbound_token: secret("CRMSYNC_SALESFORCE_OUTBOUND_TOKEN"),
                api_key: secret("CRMSYNC_API_KEY"),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn problems_name_their_variable() {
        let e = Connections::from_env(env(&[])).err();
        assert_eq!(e.map(|e| e.variable), Some("CRMSYNC_HUBSPOT_TOKEN"));
        let e = Connections::from_env(env(&[("CRMSYNC_HUBSPOT_TOKEN", "t")])).err();
        assert_eq!(e.map(|e| e.variable), Some("CRMSYNC_SALESFORCE_URL"));
        let e = Connections::from_env(env(&[
            ("CRMSYNC_HUBSPOT_TOKEN", "t"),
            ("CRMSYNC_SALESFORCE_URL", "ftp://x"),
        ]))
        .err();
        assert_eq!(e.map(|e| e.variable), Some("CRMSYNC_SALESFORCE_URL"));
        let e = Connections::from_env(env(&[
            ("CRMSYNC_HUBSPOT_TOKEN", "t"),
            ("CRMSYNC_SALESFORCE_URL", "https://x"),
        ]))
        .err();
        assert_eq!(e.map(|e| e.variable), Some("CRMSYNC_SALESFORCE_TOKEN"));
    }

    #[test]
    fn a_complete_environment_reads() {
        let c = Connections::from_env(env(&[
            ("CRMSYNC_HUBSPOT_URL", "http://127.0.0.1:1/"),
            ("CRMSYNC_HUBSPOT_TOKEN", "hs-token"),
            ("CRMSYNC_SALESFORCE_URL", "http://127.0.0.1:2"),
            ("CRMSYNC_SALESFORCE_TOKEN", "sf-token"),
            ("CRMSYNC_SALESFORCE_ORG_ID", "00D8M0000000001AAA"),
            ("CRMSYNC_API_KEY", "key"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.hubspot.base_url, "http://127.0.0.1:1");
        assert!(c.intake.public_url.is_empty());
        assert!(
            !format!("{c:?}").contains("hs-token"),
            "secrets never show in Debug"
        );
    }
}
