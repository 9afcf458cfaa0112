//! Webhooks as HubSpot sends them: every change to a contact, company or deal (through
//! the API or the control API) becomes an event; events go in batches of up to 100 as a
//! JSON array, POSTed to the target URL with a v3 signature
//! (`X-HubSpot-Signature-v3` = Base64 HMAC-SHA256 of method + URI + body + timestamp,
//! keyed by the app secret; `X-HubSpot-Request-Timestamp`). A delivery that fails (no
//! connection, no answer in 5 s, any non-2xx) is retried with growing, randomized delays
//! up to 10 times. Like HubSpot, delivery is imperfect unless switched off: now and then a
//! batch arrives twice, or its events in another order.
//!
//! Retries are scheduled on the sandbox clock, so tests advance it instead of waiting.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::store::{APP_ID, ChangeEvent};
use super::{HubSpot, lock};

/// The portal id events carry.
pub const PORTAL_ID: u64 = 62_515;
/// Events per POST.
const BATCH_MAX: usize = 100;
/// Retries after the first attempt.
const RETRIES_MAX: u32 = 10;
/// How long HubSpot waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where events go; none: events are dropped.
    pub target_url: Option<String>,
    /// The app's client secret, which signs every request.
    pub app_secret: String,
    /// Duplicates and re-ordering, as HubSpot does (on by default).
    pub imperfect: bool,
    /// Share of batches never delivered (the polling safety net must catch them).
    pub loss_rate: f64,
    /// Share of batches delivered twice (on top of `imperfect`'s).
    pub duplicate_rate: f64,
    /// Each batch is sent up to this much later (sandbox clock), at random.
    pub delay_ms_max: i64,
    /// Seed of the imperfections and retry jitter.
    pub seed: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            target_url: None,
            app_secret: "hubspot-app-secret".into(),
            imperfect: true,
            loss_rate: 0.0,
            duplicate_rate: 0.0,
            delay_ms_max: 0,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone)]
struct Delivery {
    events: Vec<Value>,
    attempt: u32,
    due_ms: i64,
}

/// Delivery state.
#[derive(Debug)]
pub struct Webhooks {
    pub settings: WebhookSettings,
    pending: VecDeque<Delivery>,
    /// Deliveries taken to send and not yet answered: still pending to anyone watching.
    in_flight: usize,
    rng: ChaCha8Rng,
    next_event_id: u64,
    /// Requests answered 2xx, and requests that failed.
    pub delivered: u64,
    pub failed: u64,
    /// Deliveries dropped after the last retry.
    pub abandoned: u64,
    /// Batches lost on purpose (`loss_rate`).
    pub lost: u64,
}

impl Webhooks {
    pub fn new(settings: WebhookSettings) -> Self {
        Webhooks {
            rng: ChaCha8Rng::seed_from_u64(settings.seed),
            settings,
            pending: VecDeque::new(),
            in_flight: 0,
            next_event_id: 3_816_279_340,
            delivered: 0,
            failed: 0,
            abandoned: 0,
            lost: 0,
        }
    }

    /// Deliveries not yet answered: queued, or sent and awaiting their answer.
    pub fn pending(&self) -> usize {
        self.pending.len() + self.in_flight
    }

    fn event(&mut self, change: &ChangeEvent) -> Value {
        self.next_event_id += 1;
        let subscription = format!("{}.{}", change.object, change.kind);
        let mut e = json!({
            "eventId": self.next_event_id,
            "subscriptionId": subscription_id(&subscription),
            "portalId": PORTAL_ID,
            "appId": APP_ID,
            "occurredAt": change.at_ms,
            "subscriptionType": subscription,
            "eventType": subscription,
            "attemptNumber": 0,
            "objectId": change.object_id,
            "changeSource": change.source.source_type(),
            "sourceId": change.source.source_id(),
        });
        if let Some(type_id) = &change.object_type_id {
            e["objectTypeId"] = json!(type_id);
        }
        if let Some((name, value)) = &change.property {
            e["propertyName"] = json!(name);
            e["propertyValue"] = json!(value);
        }
        if let Some(a) = &change.association {
            e["associationType"] = json!(a.association_type);
            e["fromObjectId"] = json!(a.from_id);
            e["toObjectId"] = json!(a.to_id);
            e["associationRemoved"] = json!(a.removed);
            e["isPrimaryAssociation"] = json!(a.primary);
        }
        if let Some((primary, merged, new_id)) = &change.merge {
            e["primaryObjectId"] = json!(primary);
            e["mergedObjectIds"] = json!(merged);
            e["newObjectId"] = json!(new_id);
            e["numberOfPropertiesMoved"] = json!(0);
        }
        e
    }

    /// Turns new changes into deliveries due now.
    fn enqueue(&mut self, changes: Vec<ChangeEvent>, now: i64) {
        if self.settings.target_url.is_none() {
            return;
        }
        let events: Vec<Value> = changes.iter().map(|c| self.event(c)).collect();
        let s = self.settings.clone();
        for chunk in events.chunks(BATCH_MAX) {
            let mut batch = chunk.to_vec();
            if s.imperfect && batch.len() > 1 && self.rng.random_bool(0.3) {
                batch.reverse();
            }
            if self.rng.random_bool(s.loss_rate.clamp(0.0, 1.0)) {
                self.lost += 1;
                continue;
            }
            let twice = (s.imperfect && self.rng.random_bool(0.1))
                || self.rng.random_bool(s.duplicate_rate.clamp(0.0, 1.0));
            let copies = if twice { 2 } else { 1 };
            for _ in 0..copies {
                let delay = if s.delay_ms_max > 0 {
                    self.rng.random_range(0..=s.delay_ms_max)
                } else {
                    0
                };
                self.pending.push_back(Delivery {
                    events: batch.clone(),
                    attempt: 0,
                    due_ms: now + delay,
                });
            }
        }
    }

    /// Takes the deliveries due at `now`.
    fn due(&mut self, now: i64) -> Vec<Delivery> {
        let (due, later): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|d| d.due_ms <= now);
        self.pending = later.into();
        self.in_flight += due.len();
        due
    }

    /// Records a sent delivery's answer: delivered, or retried later.
    fn answered(&mut self, d: Delivery, ok: bool, now: i64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if ok {
            self.delivered += 1;
        } else {
            self.retry(d, now);
        }
    }

    /// Schedules the next attempt of a failed delivery: delays double from one minute
    /// (plus up to a quarter at random), so ten retries span 17 to 21 hours.
    fn retry(&mut self, mut d: Delivery, now: i64) {
        self.failed += 1;
        if d.attempt >= RETRIES_MAX {
            self.abandoned += 1;
            return;
        }
        d.attempt += 1;
        let base = 60_000i64 * (1i64 << (d.attempt - 1));
        let jitter = self.rng.random_range(0..=base / 4);
        d.due_ms = now + base + jitter;
        for e in &mut d.events {
            e["attemptNumber"] = json!(d.attempt);
        }
        self.pending.push_back(d);
    }
}

fn subscription_id(subscription: &str) -> u64 {
    subscription
        .bytes()
        .fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 1_000
        + 1
}

/// `X-HubSpot-Signature-v3`: Base64(HMAC-SHA256(secret, method + uri + body + timestamp)).
pub fn signature_v3(secret: &str, method: &str, uri: &str, body: &[u8], timestamp: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `X-HubSpot-Signature` v1: hex SHA-256 of secret + body.
pub fn signature_v1(secret: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs deliveries until the sandbox stops: picks up new changes, sends what is due,
/// schedules retries. Polls every 20 ms of real time; due times are on the sandbox clock.
pub async fn run(hs: Arc<HubSpot>) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hubspot sandbox: webhooks disabled, no HTTP client: {e}");
            return;
        }
    };
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = hs.clock.now_ms();
        let changes = std::mem::take(&mut lock(&hs.portal).outbox);
        let (due, target, secret) = {
            let mut w = lock(&hs.webhooks);
            w.enqueue(changes, now);
            (
                w.due(now),
                w.settings.target_url.clone(),
                w.settings.app_secret.clone(),
            )
        };
        let Some(target) = target else { continue };
        for delivery in due {
            let ok = send(
                &client,
                &target,
                &secret,
                &delivery.events,
                hs.clock.now_ms(),
            )
            .await;
            lock(&hs.webhooks).answered(delivery, ok, hs.clock.now_ms());
        }
    }
}

async fn send(
    client: &reqwest::Client,
    target: &str,
    secret: &str,
    events: &[Value],
    now: i64,
) -> bool {
    let body = match serde_json::to_vec(events) {
        Ok(b) => b,
        Err(_) => return false,
    };
    let timestamp = now.to_string();
    let request = client
        .post(target)
        .header("content-type", "application/json")
        .header(
            "x-hubspot-signature-v3",
            signature_v3(secret, "POST", target, &body, &timestamp),
        )
        .header("x-hubspot-request-timestamp", &timestamp)
        .header("x-hubspot-signature", signature_v1(secret, &body))
        .header("x-hubspot-signature-version", "v1")
        .body(body);
    matches!(request.send().await, Ok(r) if r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_signatures_follow_the_documented_algorithm() {
        // HMAC-SHA256("secret", "POSThttps://example.com/hook[]1700000000000"), Base64.
        let sig = signature_v3(
            "secret",
            "POST",
            "https://example.com/hook",
            b"[]",
            "1700000000000",
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap_or_else(|e| panic!("{e}"));
        mac.update(b"POSThttps://example.com/hook[]1700000000000");
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(sig, expected);
        assert_eq!(sig.len(), 44);
    }

    #[test]
    fn retries_grow_and_stop_after_ten() {
        let mut w = Webhooks::new(WebhookSettings {
            target_url: Some("http://127.0.0.1:9/".into()),
            ..WebhookSettings::default()
        });
        let mut d = Delivery {
            events: vec![json!({"attemptNumber": 0})],
            attempt: 0,
            due_ms: 0,
        };
        let mut last_gap = 0;
        for attempt in 1..=RETRIES_MAX {
            w.retry(d.clone(), 0);
            let next = w
                .pending
                .pop_back()
                .unwrap_or_else(|| panic!("retry {attempt} scheduled"));
            assert_eq!(next.attempt, attempt);
            assert_eq!(next.events[0]["attemptNumber"], attempt);
            assert!(next.due_ms >= last_gap, "delays grow");
            last_gap = next.due_ms;
            d = next;
        }
        w.retry(d, 0);
        assert_eq!(w.pending(), 0);
        assert_eq!(w.abandoned, 1);
    }
}

#[cfg(test)]
mod imperfection_tests {
    use super::*;
    use crate::hubspot::store::Source;

    fn change(id: u64) -> ChangeEvent {
        ChangeEvent {
            object: "contact",
            kind: "propertyChange",
            object_id: id,
            property: Some(("firstname".into(), "x".into())),
            merge: None,
            association: None,
            object_type_id: None,
            at_ms: 0,
            source: Source::User(1),
        }
    }

    #[test]
    fn imperfect_delivery_sometimes_duplicates_and_reorders_batches() {
        let mut w = Webhooks::new(WebhookSettings {
            target_url: Some("http://127.0.0.1:9/".into()),
            ..WebhookSettings::default()
        });
        for i in 0..100 {
            w.enqueue(vec![change(i), change(i + 1000)], 0);
        }
        let batches = w.due(0);
        assert!(batches.len() > 100, "some batches were queued twice");
        let reordered = batches
            .iter()
            .filter(|d| {
                d.events[0]["objectId"]
                    .as_u64()
                    .is_some_and(|id| id >= 1000)
            })
            .count();
        assert!(reordered > 0, "some batches arrive in another order");

        let mut exact = Webhooks::new(WebhookSettings {
            target_url: Some("http://127.0.0.1:9/".into()),
            imperfect: false,
            ..WebhookSettings::default()
        });
        for i in 0..100 {
            exact.enqueue(vec![change(i), change(i + 1000)], 0);
        }
        assert_eq!(exact.due(0).len(), 100);
    }

    /// A test waiting for "nothing pending" must not go on while a delivery is on the
    /// wire: its events are not in the receiver's queue yet.
    #[test]
    fn a_delivery_is_pending_until_it_is_answered() {
        let mut w = Webhooks::new(WebhookSettings {
            target_url: Some("http://127.0.0.1:9/".into()),
            imperfect: false,
            ..WebhookSettings::default()
        });
        w.enqueue(vec![change(1)], 0);
        let sent = w.due(0);
        assert_eq!(sent.len(), 1);
        assert_eq!(w.pending(), 1, "sent, not answered");
        for d in sent {
            w.answered(d, true, 0);
        }
        assert_eq!((w.pending(), w.delivered), (0, 1));
    }

    #[test]
    fn batches_are_lost_late_and_duplicated_at_the_set_rates() {
        let mut w = Webhooks::new(WebhookSettings {
            target_url: Some("http://127.0.0.1:9/".into()),
            imperfect: false,
            loss_rate: 0.25,
            duplicate_rate: 0.2,
            delay_ms_max: 5_000,
            ..WebhookSettings::default()
        });
        for i in 0..400 {
            w.enqueue(vec![change(i)], 0);
        }
        assert!(
            (60..=140).contains(&w.lost),
            "about a quarter lost: {}",
            w.lost
        );
        let now = w.due(0);
        let later = w.due(5_000);
        assert!(!later.is_empty(), "some arrive late");
        assert!(later.len() > now.len(), "most arrive later than sent");
        let sent = now.len() + later.len();
        let kept = 400 - w.lost as usize;
        assert!(
            sent > kept,
            "some twice: {sent} deliveries of {kept} batches"
        );
        assert!(w.due(i64::MAX).is_empty(), "none later than the maximum");
    }

    #[test]
    fn a_batch_holds_at_most_100_events() {
        let mut w = Webhooks::new(WebhookSettings {
            target_url: Some("http://127.0.0.1:9/".into()),
            imperfect: false,
            ..WebhookSettings::default()
        });
        w.enqueue((0..250).map(change).collect(), 0);
        let sizes: Vec<usize> = w.due(0).iter().map(|d| d.events.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
    }
}
