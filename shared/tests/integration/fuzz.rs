//! Fuzz targets for every parser of outside input: HubSpot webhook bodies and their
//! signature headers, Salesforce outbound message XML, the CRM answers the clients
//! decode, and the TOML configuration. Each gets arbitrary bytes and mutations of a
//! valid input (the shapes that reach deep into a parser); none may panic, and what
//! parses must make sense. Stable Rust here has no coverage-guided fuzzer, so these are
//! proptest-driven: `CRMSYNC_FUZZ_CASES` (default 256) sets the cases per target, e.g.
//! `CRMSYNC_FUZZ_CASES=2000000` for a long run; failures shrink to a minimal input.

use crmsync_shared::adapters::hubspot::{HsRecord, HubSpotError};
use crmsync_shared::adapters::salesforce::{SalesforceError, SfErrorItem};
use crmsync_shared::domain::config::{DEFAULT_TOML, EXAMPLE_TOML, SyncConfig};
use crmsync_shared::pipeline::intake::{hubspot, salesforce};
use proptest::prelude::*;
use serde_json::Value;

const ORG: &str = "00D8M0000000001AAA";

const WEBHOOK: &str = r#"[{"eventId":3816279341,"subscriptionId":12,"portalId":62515,"appId":1,"occurredAt":1714521600000,"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":100001,"propertyName":"firstname","propertyValue":"Ann","changeSource":"CRM_UI"},{"eventId":3816279342,"subscriptionType":"object.creation","objectTypeId":"2-1001","objectId":"100002","occurredAt":1714521600001},{"eventId":7,"subscriptionType":"contact.merge","objectId":1,"primaryObjectId":2,"mergedObjectIds":[1]}]"#;

const OUTBOUND: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>00D8M0000000001AAA</OrganizationId><ActionId>04k000000000001</ActionId><SessionId xsi:nil="true"/><Notification><Id>04l000000000001AAA</Id><sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>00Q000000000001AAA</sf:Id><sf:Email>a&amp;b@example.com</sf:Email></sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"#;

const RECORD: &str = r#"{"id":"51","properties":{"email":"a@b.c","firstname":null},"propertiesWithHistory":{"firstname":[{"value":"Ann","timestamp":"2024-05-01T00:00:00Z","sourceType":"CRM_UI"}]},"createdAt":"2024-05-01T00:00:00Z","updatedAt":"2024-05-01T00:00:00Z","archived":false}"#;

const SF_ERRORS: &str = r#"[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}]"#;

fn cases() -> u32 {
    std::env::var("CRMSYNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid input, mutated: bytes flipped, inserted, removed, and cut short.
fn mutated(seed: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 0..12);
    (edits, any::<usize>()).prop_map(move |(edits, cut)| {
        let mut bytes = seed.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                2 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {
                    // Splice in a structural character the parser branches on.
                    let specials = b"{}[]\":,<>/&;=\n'\\";
                    bytes.insert(at, specials[usize::from(byte) % specials.len()]);
                }
            }
        }
        if cut % 5 == 0 {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        bytes
    })
}

fn input(seed: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        mutated(seed),
        mutated(seed),
        mutated(seed),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hubspot_webhook_bodies(body in input(WEBHOOK)) {
        if let Ok(events) = hubspot::events(&body) {
            for e in events {
                prop_assert!(!e.item.id.is_empty());
                prop_assert!(!e.item.object.is_empty());
            }
        }
    }

    #[test]
    fn hubspot_webhook_signatures(
        body in input(WEBHOOK),
        signature in proptest::option::of(".{0,100}"),
        timestamp in proptest::option::of("[0-9 +-]{0,24}|.{0,24}"),
    ) {
        let verified = hubspot::verify(
            "secret",
            "POST",
            "https://sync.example.com/webhooks/hubspot",
            &body,
            signature.as_deref(),
            timestamp.as_deref(),
            1_714_521_600_000,
        );
        // Nothing random signs correctly.
        prop_assert!(verified.is_err());
    }

    #[test]
    fn salesforce_outbound_messages(body in input(OUTBOUND)) {
        if let Ok(message) = salesforce::parse(&body, ORG) {
            for (_, item) in message.notifications {
                prop_assert!(!item.id.is_empty());
            }
        }
    }

    #[test]
    fn hubspot_answers(body in input(RECORD), status in 100u16..600) {
        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
            if let Ok(r) = HsRecord::from_json(&v) {
                prop_assert!(r.changed_at().len() <= r.history.len());
            }
            let _ = HubSpotError::from_body(status, &v).class();
        }
    }

    #[test]
    fn salesforce_answers(body in input(SF_ERRORS), status in 100u16..600) {
        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
            let e = SalesforceError::from_body(status, &v);
            let _ = (e.class(), e.code().len());
            if let Some(items) = v.as_array() {
                for i in items {
                    prop_assert!(!SfErrorItem::from_json(i).code.is_empty());
                }
            }
        }
    }

    #[test]
    fn sync_configurations(text in prop_oneof![
        ".{0,400}",
        mutated(DEFAULT_TOML).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        mutated(EXAMPLE_TOML).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]) {
        // A refusal always names where: every problem has a key path or a line.
        if let Err(errors) = SyncConfig::from_toml(&text) {
            prop_assert!(!errors.0.is_empty());
            for e in errors.0 {
                prop_assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
            }
        }
    }
}
