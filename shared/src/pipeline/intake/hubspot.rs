//! HubSpot webhook requests: the v3 signature and the events they carry.
//!
//! v3: Base64(HMAC-SHA256(app secret, method + URI + body + timestamp)), where the URI is
//! the one HubSpot called (the public URL, not what API Gateway hands the function),
//! and the timestamp is at most five minutes old.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::ports::{Seen, WorkItem};

/// How old a signed request may be.
pub const MAX_AGE_MS: i64 = 5 * 60_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("the request timestamp is not a number of milliseconds")]
    BadTimestamp,
    #[error("the request timestamp is more than five minutes away from now")]
    Stale,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the body is not a JSON array of events: {0}")]
    Malformed(String),
}

/// Checks a request's v3 signature and age.
pub fn verify(
    secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    now_ms: i64,
) -> Result<(), WebhookError> {
    let signature = signature.ok_or(WebhookError::MissingHeader("X-HubSpot-Signature-v3"))?;
    let timestamp = timestamp.ok_or(WebhookError::MissingHeader("X-HubSpot-Request-Timestamp"))?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::BadTimestamp)?;
    if (now_ms - at).abs() > MAX_AGE_MS {
        return Err(WebhookError::Stale);
    }
    let expected = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| WebhookError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| WebhookError::BadSignature)?;
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::BadSignature)
}

/// One event worth queuing, with the id HubSpot gives it (for dedupe). What it says
/// happened to its record, as far as it says, rides on the reference (`item.seen`: a
/// creation, one property's new value, an association made or removed; nothing for a
/// deletion, a merge or a change without its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: String,
    pub item: WorkItem,
    /// When it happened (`occurredAt`, ms): the record's modification time.
    pub at: Option<i64>,
}

fn seen_in(subscription: &str, event: &Value) -> Option<Seen> {
    let text = |k: &str| event.get(k).and_then(Value::as_str);
    match subscription.rsplit('.').next() {
        Some("creation") => Some(Seen::Created),
        Some("propertyChange") => match (text("propertyName"), text("propertyValue")) {
            (Some(name), Some(value)) => Some(Seen::Property {
                name: name.to_owned(),
                value: value.to_owned(),
                at: event.get("occurredAt").and_then(Value::as_i64),
            }),
            _ => None,
        },
        Some("associationChange") => {
            let to = association_target(text("associationType")?)?;
            let to_id = match event.get("toObjectId")? {
                Value::Number(n) => n.to_string(),
                Value::String(s) if !s.is_empty() => s.clone(),
                _ => return None,
            };
            Some(Seen::Association {
                to: to.to_owned(),
                to_id,
                removed: event
                    .get("associationRemoved")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        }
        _ => None,
    }
}

/// The object an association event's type points at (`CONTACT_TO_COMPANY`:
/// `companies`); `None` for types of objects crmsync does not name this way.
fn association_target(kind: &str) -> Option<&'static str> {
    match kind.rsplit_once("_TO_")?.1 {
        "CONTACT" => Some("contacts"),
        "COMPANY" => Some("companies"),
        "DEAL" => Some("deals"),
        "TICKET" => Some("tickets"),
        _ => None,
    }
}

/// The object type an event is about: standard objects by their subscription's name,
/// engagements and custom objects (`object.*` subscriptions) by the type id the event
/// carries.
fn object_of(subscription: &str, event: &Value) -> Option<String> {
    let standard = match subscription.split('.').next()? {
        "contact" => "contacts",
        "company" => "companies",
        "deal" => "deals",
        "ticket" => "tickets",
        "object" => {
            let id = event.get("objectTypeId").and_then(Value::as_str)?;
            // Engagements by their standard type ids (generic subscriptions).
            let engagement = match id {
                "0-48" => Some("calls"),
                "0-49" => Some("emails"),
                "0-47" => Some("meetings"),
                "0-46" => Some("notes"),
                "0-27" => Some("tasks"),
                _ => None,
            };
            if let Some(e) = engagement {
                return Some(e.to_owned());
            }
            return is_custom_type_id(id).then(|| id.to_owned());
        }
        _ => return None,
    };
    Some(standard.to_owned())
}

/// `2-1234567`: the only object type ids `object.*` events name that crmsync syncs.
fn is_custom_type_id(id: &str) -> bool {
    id.strip_prefix("2-")
        .is_some_and(|n| !n.is_empty() && n.len() <= 12 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The events of a webhook body. Events of objects crmsync does not follow are
/// dropped; a body that is not an array of events is refused whole.
pub fn events(body: &[u8]) -> Result<Vec<Event>, WebhookError> {
    let parsed: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let list = parsed
        .as_array()
        .ok_or_else(|| WebhookError::Malformed("expected an array".into()))?;
    let mut out = Vec::new();
    for e in list {
        let subscription = e
            .get("subscriptionType")
            .and_then(Value::as_str)
            .ok_or_else(|| WebhookError::Malformed("an event without subscriptionType".into()))?;
        let id = match e.get("objectId") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(WebhookError::Malformed("an event without objectId".into())),
        };
        let event_id = match e.get("eventId") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => format!(
                "{subscription}:{id}:{}",
                e.get("occurredAt").unwrap_or(&Value::Null)
            ),
        };
        let Some(object) = object_of(subscription, e) else {
            continue;
        };
        out.push(Event {
            event_id,
            at: e.get("occurredAt").and_then(Value::as_i64),
            item: WorkItem {
                side: crate::domain::Side::HubSpot,
                object,
                id,
                origin: "webhook".into(),
                seen: seen_in(subscription, e),
            },
        });
        // A merge: the surviving record is the one to sync.
        if let (Some(primary), Some(last)) = (
            e.get("primaryObjectId").and_then(Value::as_u64),
            out.last_mut(),
        ) {
            last.item.id = primary.to_string();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, uri: &str, body: &[u8], ts: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        mac.update(format!("POST{uri}").as_bytes());
        mac.update(body);
        mac.update(ts.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn an_association_event_says_what_it_associated() {
        let body = br#"[{"eventId":1,"subscriptionType":"contact.associationChange","objectId":7,
            "associationType":"CONTACT_TO_COMPANY","fromObjectId":7,"toObjectId":9,"associationRemoved":false},
            {"eventId":2,"subscriptionType":"company.associationChange","objectId":9,
            "associationType":"COMPANY_TO_CONTACT","fromObjectId":9,"toObjectId":7,"associationRemoved":true},
            {"eventId":3,"subscriptionType":"contact.associationChange","objectId":7,
            "associationType":"CONTACT_TO_P_MACHINE","fromObjectId":7,"toObjectId":5}]"#;
        let parsed = events(body).unwrap_or_else(|e| panic!("{e}"));
        let seen: Vec<Option<Seen>> = parsed.into_iter().map(|e| e.item.seen).collect();
        assert_eq!(
            seen,
            vec![
                Some(Seen::Association {
                    to: "companies".into(),
                    to_id: "9".into(),
                    removed: false
                }),
                Some(Seen::Association {
                    to: "contacts".into(),
                    to_id: "7".into(),
                    removed: true
                }),
                // An object it cannot name: nothing said, the worker reads.
                None,
            ]
        );
    }

    #[test]
    fn engagements_come_by_their_object_type_ids() {
        let body = br#"[{"eventId":1,"subscriptionType":"object.creation","objectTypeId":"0-49","objectId":7},
            {"eventId":2,"subscriptionType":"object.propertyChange","objectTypeId":"0-27","objectId":8},
            {"eventId":3,"subscriptionType":"object.creation","objectTypeId":"0-99","objectId":9}]"#;
        let parsed = events(body).unwrap_or_else(|e| panic!("{e}"));
        let objects: Vec<(&str, &str)> = parsed
            .iter()
            .map(|e| (e.item.object.as_str(), e.item.id.as_str()))
            .collect();
        assert_eq!(objects, vec![("emails", "7"), ("tasks", "8")]);
    }

    #[test]
    fn a_correct_signature_passes_and_everything_else_fails() {
        let uri = "https://hooks.example.com/prod/webhooks/hubspot";
        let body = br#"[{"eventId":1,"subscriptionType":"contact.creation","objectId":51}]"#;
        let now = 1_700_000_000_000;
        let ts = now.to_string();
        let good = sign("secret", uri, body, &ts);
        assert_eq!(
            verify("secret", "POST", uri, body, Some(&good), Some(&ts), now),
            Ok(())
        );
        let other_uri = "https://internal/webhooks/hubspot";
        assert_eq!(
            verify(
                "secret",
                "POST",
                other_uri,
                body,
                Some(&good),
                Some(&ts),
                now
            ),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify("wrong", "POST", uri, body, Some(&good), Some(&ts), now),
            Err(WebhookError::BadSignature)
        );
        let later = now + MAX_AGE_MS + 1;
        assert_eq!(
            verify("secret", "POST", uri, body, Some(&good), Some(&ts), later),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            verify("secret", "POST", uri, body, None, Some(&ts), now),
            Err(WebhookError::MissingHeader("X-HubSpot-Signature-v3"))
        );
        assert_eq!(
            verify("secret", "POST", uri, body, Some("!!"), Some(&ts), now),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn events_become_references_and_junk_is_refused() {
        let body = br#"[{"eventId":7,"subscriptionType":"contact.propertyChange","objectId":51},
                        {"eventId":8,"subscriptionType":"company.creation","objectId":"9"},
                        {"eventId":9,"subscriptionType":"product.creation","objectId":3},
                        {"eventId":10,"subscriptionType":"contact.propertyChange","objectId":51,
                         "propertyName":"firstname","propertyValue":"Ada","occurredAt":1700000000123}]"#;
        let got = events(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].item.object, "contacts");
        assert_eq!(got[0].item.id, "51");
        assert_eq!(got[0].item.seen, None, "a change without its value");
        assert_eq!(got[1].event_id, "8");
        assert_eq!(got[1].item.seen, Some(Seen::Created));
        assert_eq!(
            got[2].item.seen,
            Some(Seen::Property {
                name: "firstname".into(),
                value: "Ada".into(),
                at: Some(1_700_000_000_123),
            })
        );
        assert!(events(b"{}").is_err());
        assert!(events(b"[{\"objectId\": 1}]").is_err());
        assert!(events(b"not json").is_err());
    }
}
