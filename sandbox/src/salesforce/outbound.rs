//! Outbound messages: every create or update of a configured object becomes a
//! notification; notifications go as SOAP envelopes (up to 100 per message, one object
//! type per message) to the configured URL, carrying the record as it is when sent. A
//! message is delivered when the endpoint answers 200 with `<Ack>true</Ack>`; anything
//! else is retried with doubling delays (up to 2 hours apart) for 24 hours, on the
//! sandbox clock. Delivery is at least once and may repeat a record.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Salesforce;
use super::ids;
use crate::hubspot::lock;

/// Notifications per message.
const PER_MESSAGE: usize = 100;
/// Give up on a message this long after its first attempt.
const GIVE_UP_MS: i64 = 24 * 3_600_000;
const FIRST_RETRY_MS: i64 = 15_000;
const MAX_GAP_MS: i64 = 2 * 3_600_000;
/// How long the sandbox waits for an answer (Salesforce: 60 s).
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// Where messages go; none: nothing is sent.
    pub url: Option<String>,
    /// The objects whose creates and updates send messages.
    pub objects: Vec<String>,
    /// Share of messages never sent (the polling safety net must catch them).
    pub loss_rate: f64,
    /// Share of messages sent twice.
    pub duplicate_rate: f64,
    /// Each message is sent up to this much later (sandbox clock), at random.
    pub delay_ms_max: i64,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        OutboundSettings {
            url: None,
            objects: ["Lead", "Contact", "Account", "Opportunity", "Case"]
                .map(str::to_owned)
                .to_vec(),
            loss_rate: 0.0,
            duplicate_rate: 0.0,
            delay_ms_max: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Message {
    /// (notification id, record id).
    notifications: Vec<(String, String)>,
    first_ms: i64,
    attempts: u32,
    due_ms: i64,
}

#[derive(Debug)]
pub struct Outbound {
    pending: VecDeque<Message>,
    /// Messages taken to send and not yet answered: still pending to anyone watching.
    in_flight: usize,
    next_notification: u64,
    rng: ChaCha8Rng,
    pub delivered: u64,
    pub failed: u64,
    pub abandoned: u64,
    /// Messages lost on purpose (`loss_rate`).
    pub lost: u64,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            pending: VecDeque::new(),
            in_flight: 0,
            next_notification: 0,
            rng: ChaCha8Rng::seed_from_u64(7),
            delivered: 0,
            failed: 0,
            abandoned: 0,
            lost: 0,
        }
    }
}

impl Outbound {
    /// Messages not yet answered: queued, or sent and awaiting their answer.
    pub fn pending(&self) -> usize {
        self.pending.len() + self.in_flight
    }

    /// Takes the messages due at `now` to send.
    fn due(&mut self, now: i64) -> Vec<Message> {
        let (due, later): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|m| m.due_ms <= now);
        self.pending = later.into();
        self.in_flight += due.len();
        due
    }

    /// Records a sent message's answer: delivered, retried later, or given up.
    fn answered(&mut self, mut message: Message, acked: bool, now: i64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if acked {
            self.delivered += 1;
            return;
        }
        self.failed += 1;
        message.attempts += 1;
        let gap = (FIRST_RETRY_MS << (message.attempts - 1).min(20)).min(MAX_GAP_MS);
        if now + gap - message.first_ms > GIVE_UP_MS {
            self.abandoned += 1;
        } else {
            message.due_ms = now + gap;
            self.pending.push_back(message);
        }
    }

    /// Queues a new message as the settings' imperfections say: lost, late or twice.
    fn queue(&mut self, settings: &OutboundSettings, message: Message, now: i64) {
        if self.rng.random_bool(settings.loss_rate.clamp(0.0, 1.0)) {
            self.lost += 1;
            return;
        }
        let copies = if self
            .rng
            .random_bool(settings.duplicate_rate.clamp(0.0, 1.0))
        {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if settings.delay_ms_max > 0 {
                self.rng.random_range(0..=settings.delay_ms_max)
            } else {
                0
            };
            let mut m = message.clone();
            m.due_ms = now + delay;
            self.pending.push_back(m);
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The SOAP envelope of one message, records as they are now.
fn envelope(sf: &Salesforce, org_id: &str, base_url: &str, message: &Message) -> String {
    let org = lock(&sf.org);
    let mut notifications = String::new();
    for (notification, record_id) in &message.notifications {
        let Some((object, record)) = org.get(record_id) else {
            continue;
        };
        let mut fields = format!("<sf:Id>{}</sf:Id>", escape(&record.id));
        for def in &object.fields {
            if def.name == "Id" {
                continue;
            }
            let value = org.value(record, def);
            let text = match &value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            fields.push_str(&format!("<sf:{0}>{1}</sf:{0}>", def.name, escape(&text)));
        }
        notifications.push_str(&format!(
            "<Notification><Id>{notification}</Id><sObject xsi:type=\"sf:{object}\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">{fields}</sObject></Notification>",
            object = object.name
        ));
    }
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">",
            "<soapenv:Body><notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">",
            "<OrganizationId>{org}</OrganizationId><ActionId>{action}</ActionId><SessionId xsi:nil=\"true\"/>",
            "<EnterpriseUrl>{base}/services/Soap/c/65.0/{org15}</EnterpriseUrl><PartnerUrl>{base}/services/Soap/u/65.0/{org15}</PartnerUrl>",
            "{notifications}</notifications></soapenv:Body></soapenv:Envelope>"
        ),
        org = escape(org_id),
        org15 = escape(&org_id[..org_id.len().min(15)]),
        action = ids::make("04k", 1),
        base = escape(base_url),
        notifications = notifications,
    )
}

/// Whether an answer is the outbound-message Ack.
fn is_ack(status: u16, body: &str) -> bool {
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    status == 200 && (compact.contains("<Ack>true</Ack>") || compact.contains(":Ack>true</"))
}

/// Runs deliveries until the sandbox stops. `base_url` is the org's own URL, for the
/// envelope's SOAP endpoints.
pub async fn run(sf: Arc<Salesforce>, base_url: String) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("salesforce sandbox: outbound messages disabled, no HTTP client: {e}");
            return;
        }
    };
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = sf.clock.now_ms();
        let changes = std::mem::take(&mut lock(&sf.org).outbox);
        let (settings, org_id) = {
            let s = lock(&sf.settings);
            (s.outbound.clone(), s.org_id.clone())
        };
        let Some(url) = settings.url.clone() else {
            continue;
        };
        let due: Vec<Message> = {
            let mut out = lock(&sf.outbound);
            for object in &settings.objects {
                let ids: Vec<&String> = changes
                    .iter()
                    .filter(|(o, _)| o == object)
                    .map(|(_, id)| id)
                    .collect();
                for chunk in ids.chunks(PER_MESSAGE) {
                    let notifications = chunk
                        .iter()
                        .map(|id| {
                            out.next_notification += 1;
                            (ids::make("04l", out.next_notification), (*id).clone())
                        })
                        .collect();
                    let message = Message {
                        notifications,
                        first_ms: now,
                        attempts: 0,
                        due_ms: now,
                    };
                    out.queue(&settings, message, now);
                }
            }
            out.due(now)
        };
        for message in due {
            let body = envelope(&sf, &org_id, &base_url, &message);
            let acked = match client
                .post(&url)
                .header("content-type", "text/xml; charset=utf-8")
                .header("soapaction", "\"\"")
                .body(body)
                .send()
                .await
            {
                Ok(r) => {
                    let status = r.status().as_u16();
                    is_ack(status, &r.text().await.unwrap_or_default())
                }
                Err(_) => false,
            };
            lock(&sf.outbound).answered(message, acked, sf.clock.now_ms());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_200_with_a_true_ack_is_an_ack() {
        let ack = "<soapenv:Envelope><soapenv:Body><notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>";
        assert!(is_ack(200, ack));
        assert!(!is_ack(500, ack));
        assert!(!is_ack(200, ""));
        assert!(!is_ack(200, &ack.replace("true", "false")));
    }

    #[test]
    fn messages_are_lost_late_and_duplicated_at_the_set_rates() {
        let settings = OutboundSettings {
            loss_rate: 0.25,
            duplicate_rate: 0.2,
            delay_ms_max: 5_000,
            ..OutboundSettings::default()
        };
        let mut out = Outbound::default();
        for n in 0..400 {
            let message = Message {
                notifications: vec![(format!("n{n}"), format!("r{n}"))],
                first_ms: 0,
                attempts: 0,
                due_ms: 0,
            };
            out.queue(&settings, message, 0);
        }
        assert!(
            (60..=140).contains(&out.lost),
            "about a quarter lost: {}",
            out.lost
        );
        let kept = 400 - out.lost as usize;
        assert!(out.pending() > kept, "some twice");
        assert!(out.pending.iter().all(|m| (0..=5_000).contains(&m.due_ms)));
        assert!(out.pending.iter().any(|m| m.due_ms > 0), "some late");
    }

    /// A test waiting for "nothing pending" must not go on while a message is on the
    /// wire: its notifications are not in the receiver's queue yet.
    #[test]
    fn a_message_is_pending_until_it_is_answered() {
        let mut out = Outbound::default();
        let message = Message {
            notifications: vec![("n".into(), "r".into())],
            first_ms: 0,
            attempts: 0,
            due_ms: 0,
        };
        out.queue(&OutboundSettings::default(), message, 0);
        let sent = out.due(0);
        assert_eq!(sent.len(), 1);
        assert_eq!(out.pending(), 1, "sent, not answered");
        for m in sent {
            out.answered(m, false, 0);
        }
        assert_eq!((out.pending(), out.failed), (1, 1), "retried later");
        assert!(out.due(0).is_empty());
    }

    #[test]
    fn values_are_escaped() {
        assert_eq!(escape("a<b & 'c'"), "a&lt;b &amp; &apos;c&apos;");
    }
}
