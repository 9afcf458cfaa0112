//! Salesforce outbound messages: SOAP notifications of changed records, answered with
//! an `Ack` once their references are safely queued (Salesforce resends until then).

use std::collections::BTreeMap;

use quick_xml::Reader;
use quick_xml::events::Event as Xml;

use crate::ports::WorkItem;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("the body is not a SOAP outbound message: {0}")]
    Malformed(String),
    #[error("the message comes from another organization")]
    WrongOrganization,
}

/// What a message carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub organization_id: String,
    pub notifications: Vec<Notification>,
}

/// One changed record: the notification's id, the record's reference, and the field
/// values the message carries (as text; a field with no value is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub item: WorkItem,
    pub fields: BTreeMap<String, String>,
}

/// The SOAP answer that tells Salesforce the message was received.
pub const ACK: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?>"#,
    r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
    r#"<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">"#,
    r#"<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#
);

/// A SOAP fault: Salesforce keeps the message and retries it.
pub fn fault(message: &str) -> String {
    let text = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
            r#"<soapenv:Body><soapenv:Fault><faultcode>soapenv:Server</faultcode>"#,
            r#"<faultstring>{}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#
        ),
        text
    )
}

fn local(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|b| *b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// Reads a message, and checks it comes from `org_id` (15 or 18 characters).
pub fn parse(body: &[u8], org_id: &str) -> Result<Message, OutboundError> {
    let bad = |e: &dyn std::fmt::Display| OutboundError::Malformed(e.to_string());
    let mut reader = Reader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut message = Message::default();
    let mut notification_id = String::new();
    let mut sobject: Option<String> = None;
    let mut record_id = String::new();
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut text = String::new();
    let mut saw_notifications = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).map_err(|e| bad(&e))? {
            Xml::Start(e) => {
                let name = local(e.name().as_ref()).to_vec();
                if name == b"notifications" {
                    saw_notifications = true;
                }
                if name == b"sObject" {
                    let kind = e
                        .attributes()
                        .filter_map(Result::ok)
                        .find(|a| local(a.key.as_ref()) == b"type")
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                        .ok_or_else(|| bad(&"an sObject without xsi:type"))?;
                    sobject = Some(kind.rsplit(':').next().unwrap_or_default().to_owned());
                    record_id.clear();
                    fields.clear();
                }
                if name == b"Notification" {
                    notification_id.clear();
                }
                text.clear();
                path.push(name);
            }
            Xml::End(e) => {
                let name = local(e.name().as_ref()).to_vec();
                if path.last() != Some(&name) {
                    return Err(bad(&"mismatched tags"));
                }
                let parent = path.iter().rev().nth(1).map(Vec::as_slice);
                match name.as_slice() {
                    b"OrganizationId" => message.organization_id = std::mem::take(&mut text),
                    b"Id" if parent == Some(b"Notification") => {
                        notification_id = std::mem::take(&mut text)
                    }
                    b"Id" if parent == Some(b"sObject") => record_id = std::mem::take(&mut text),
                    field if parent == Some(b"sObject") => {
                        let field = String::from_utf8_lossy(field).into_owned();
                        fields.insert(field, std::mem::take(&mut text));
                    }
                    _ => text.clear(),
                }
                path.pop();
                if name == b"Notification" {
                    let object = sobject
                        .take()
                        .ok_or_else(|| bad(&"a notification without sObject"))?;
                    if record_id.is_empty() {
                        return Err(bad(&"a notification without a record Id"));
                    }
                    message.notifications.push(Notification {
                        id: notification_id.clone(),
                        item: WorkItem {
                            side: crate::domain::Side::Salesforce,
                            object,
                            id: record_id.clone(),
                            origin: "outbound".into(),
                            seen: None,
                        },
                        fields: std::mem::take(&mut fields),
                    });
                }
            }
            // An element's text comes in pieces: plain runs and entity references.
            Xml::Text(t) => text.push_str(&t.decode().map_err(|e| bad(&e))?),
            Xml::GeneralRef(r) => {
                let name = r.decode().map_err(|e| bad(&e))?;
                match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => text.push(c),
                    None => text.push_str(
                        quick_xml::escape::resolve_xml_entity(&name)
                            .ok_or_else(|| bad(&format!("unknown entity &{name};")))?,
                    ),
                }
            }
            Xml::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_notifications || !path.is_empty() {
        return Err(bad(&"no notifications element"));
    }
    if !crate::domain::same_salesforce_id(&message.organization_id, org_id) {
        return Err(OutboundError::WrongOrganization);
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "00D8M0000000001AAA";

    fn message(org: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>{org}</OrganizationId><ActionId>04k000000000001</ActionId><SessionId xsi:nil="true"/>
<Notification><Id>04l000000000001AAA</Id><sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>00Q000000000001AAA</sf:Id><sf:Email>a&amp;b@example.com</sf:Email></sObject></Notification>
<Notification><Id>04l000000000002AAA</Id><sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>003000000000001AAA</sf:Id></sObject></Notification>
</notifications></soapenv:Body></soapenv:Envelope>"#
        )
    }

    #[test]
    fn notifications_become_references() {
        let m = parse(message(ORG).as_bytes(), ORG).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.notifications.len(), 2);
        assert_eq!(m.notifications[0].id, "04l000000000001AAA");
        assert_eq!(m.notifications[0].item.object, "Lead");
        assert_eq!(m.notifications[0].item.id, "00Q000000000001AAA");
        assert_eq!(
            m.notifications[0].fields.get("Email").map(String::as_str),
            Some("a&b@example.com")
        );
        assert_eq!(m.notifications[1].item.object, "Contact");
        assert!(m.notifications[1].fields.is_empty());
    }

    #[test]
    fn other_orgs_and_junk_are_refused() {
        assert_eq!(
            parse(message("00D000000000999AAA").as_bytes(), ORG),
            Err(OutboundError::WrongOrganization)
        );
        assert!(matches!(
            parse(b"<a><b></a>", ORG),
            Err(OutboundError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"{}", ORG),
            Err(OutboundError::Malformed(_))
        ));
        let truncated = message(ORG);
        let cut = &truncated.as_bytes()[..truncated.len() / 2];
        assert!(parse(cut, ORG).is_err());
    }
}
