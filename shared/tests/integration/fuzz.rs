//! Fuzz targets for every parser of outside input: HubSpot webhook bodies and their
//! signature headers, Salesforce outbound message XML, the CRM answers the clients
//! decode, and the TOML configuration, each with the rules of `fuzz_checks.rs`. Here
//! they run on stable Rust: proptest gives each arbitrary bytes and mutations of a valid
//! input (`CRMSYNC_FUZZ_CASES`, default 256 per target; failures shrink), and every
//! input of the committed corpora (`fuzz/corpus/TARGET/`, grown by the coverage-guided
//! runs, `cargo +nightly fuzz run TARGET` in `fuzz/`) is replayed.

use crmsync_shared::domain::config::{DEFAULT_TOML, EXAMPLE_TOML};
use proptest::prelude::*;

use crate::fuzz_checks as checks;

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
        checks::hubspot_webhook(&body);
    }

    #[test]
    fn hubspot_webhook_signatures(
        body in input(WEBHOOK),
        signature in proptest::option::of(".{0,100}"),
        timestamp in proptest::option::of("[0-9 +-]{0,24}|.{0,24}"),
    ) {
        let mut data = body.clone();
        for part in [signature, timestamp].into_iter().flatten() {
            data.push(0);
            data.extend(part.bytes());
        }
        checks::hubspot_signature(&data);
    }

    #[test]
    fn salesforce_outbound_messages(body in input(OUTBOUND)) {
        checks::salesforce_outbound(&body);
    }

    #[test]
    fn hubspot_answers(body in input(RECORD), status in any::<u8>()) {
        checks::crm_answers(&[&[status][..], &body].concat());
    }

    #[test]
    fn salesforce_answers(body in input(SF_ERRORS), status in any::<u8>()) {
        checks::crm_answers(&[&[status][..], &body].concat());
    }

    #[test]
    fn sync_configurations(text in prop_oneof![
        ".{0,400}",
        mutated(DEFAULT_TOML).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        mutated(EXAMPLE_TOML).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]) {
        checks::sync_config(text.as_bytes());
    }
}

/// Every input the coverage-guided runs kept (and the seeds they started from) still
/// passes its target's checks: the corpora are regression inputs.
#[test]
fn the_fuzz_corpora_replay_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, check) in checks::TARGETS {
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten();
        let mut replayed = 0;
        for entry in entries {
            // (A fuzzer running meanwhile may remove inputs it reduced.)
            let Ok(data) = std::fs::read(entry.path()) else {
                continue;
            };
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{target}: {} breaks its checks",
                entry.path().display()
            );
            replayed += 1;
        }
        assert!(replayed > 0, "{target}: an empty corpus");
    }
}
