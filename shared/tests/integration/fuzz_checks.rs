//! What every parser of outside input must hold to, one function per fuzz target: each
//! panics when its input breaks a rule. Used by the proptest targets and the corpus
//! replay here (`fuzz.rs`), and by the coverage-guided targets in `fuzz/` (cargo-fuzz,
//! which includes this file), so the three check the same things.

use crmsync_shared::adapters::hubspot::{HsRecord, HubSpotError};
use crmsync_shared::adapters::salesforce::{SalesforceError, SfErrorItem};
use crmsync_shared::domain::config::SyncConfig;
use crmsync_shared::pipeline::intake::{hubspot, salesforce};
use serde_json::Value;

pub const ORG: &str = "00D8M0000000001AAA";

/// HubSpot webhook bodies: what parses names a record.
pub fn hubspot_webhook(body: &[u8]) {
    if let Ok(events) = hubspot::events(body) {
        for e in events {
            assert!(!e.item.id.is_empty(), "an event without a record id");
            assert!(!e.item.object.is_empty(), "an event without an object");
        }
    }
}

/// HubSpot's v3 signature check: the input is body, signature and timestamp split at
/// the first two NUL bytes. Nothing random verifies.
pub fn hubspot_signature(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == 0);
    let body = parts.next().unwrap_or_default();
    let signature = parts.next().map(String::from_utf8_lossy);
    let timestamp = parts.next().map(String::from_utf8_lossy);
    let verified = hubspot::verify(
        "secret",
        "POST",
        "https://sync.example.com/webhooks/hubspot",
        body,
        signature.as_deref(),
        timestamp.as_deref(),
        1_714_521_600_000,
    );
    assert!(verified.is_err(), "a random signature verified");
}

/// Salesforce outbound message XML: what parses names a record.
pub fn salesforce_outbound(body: &[u8]) {
    if let Ok(message) = salesforce::parse(body, ORG) {
        for n in message.notifications {
            assert!(!n.item.id.is_empty(), "a notification without a record id");
        }
    }
}

/// What the CRM clients decode: HubSpot records (with property history) and error
/// bodies, Salesforce error bodies and record errors. The first byte picks the status.
pub fn crm_answers(data: &[u8]) {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let status = 100 + u16::from(*first) * 2;
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    if let Ok(r) = HsRecord::from_json(&v) {
        assert!(r.changed_at().len() <= r.history.len());
    }
    let _ = HubSpotError::from_body(status, &v).class();
    let e = SalesforceError::from_body(status, &v);
    let _ = (e.class(), e.code().len());
    if let Some(items) = v.as_array() {
        for i in items {
            assert!(
                !SfErrorItem::from_json(i).code.is_empty(),
                "a Salesforce error without a code"
            );
        }
    }
}

/// The TOML configuration: a refusal always names where (a key path or a line).
pub fn sync_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(errors) = SyncConfig::from_toml(&text) {
        assert!(!errors.0.is_empty(), "refused without a problem");
        for e in errors.0 {
            assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
        }
    }
}

/// A target's checks: panics when the input breaks a rule.
pub type Check = fn(&[u8]);

/// Every target by its name in `fuzz/`.
pub const TARGETS: [(&str, Check); 5] = [
    ("hubspot_webhook", hubspot_webhook),
    ("hubspot_signature", hubspot_signature),
    ("salesforce_outbound", salesforce_outbound),
    ("crm_answers", crm_answers),
    ("sync_config", sync_config),
];
