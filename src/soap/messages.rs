//! The SOAP binding of the message vocabulary (`crate::message`): the request element and
//! SOAPAction of each operation, the message header and the acknowledgement as
//! `urn:coconnect:soap:v1` XML, read and written.

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::xmlread::read_flat;
use super::NS;
use crate::message::{AckError, AckStatus, Acknowledgement, MessageHeader, Operation, Outgoing};
use crate::wssec::outbound::xml_escape;

/// The SOAP binding of the operations: SOAPAction, and the request element in our namespace.
impl Operation {
    pub fn soap_action(self) -> String {
        format!("{NS}/{}", self.name())
    }

    pub fn from_request_element(ns: &str, local: &str) -> Option<Self> {
        (ns == NS).then(|| Self::ALL.into_iter().find(|o| o.request_element() == local)).flatten()
    }
}

/// The SOAP binding of the message header.
impl MessageHeader {
    /// Reads the `cc:MessageHeader` of a request or acknowledgement element, reporting every
    /// problem with its path.
    pub fn read(body_child: &[u8]) -> Result<Self, Vec<AckError>> {
        let flat = read_flat(body_child, NS).map_err(|e| {
            vec![{
                // The parser's own message stays in our log: a partner gets a fixed sentence.
                tracing::info!(error = %e, "operation element could not be read");
                AckError::new("MSG-MALFORMED", "the operation element could not be read as XML", "/")
            }]
        })?;
        let root = format!("/{}", flat.root);
        let mut errors = Vec::new();
        let mut field = |name: &str| -> Option<String> {
            let v = flat.get(&format!("MessageHeader/{name}")).map(str::to_owned);
            if v.is_none() {
                errors.push(AckError::new(
                    "MSG-MISSING",
                    format!("MessageHeader/{name} is mandatory"),
                    format!("{root}/MessageHeader/{name}"),
                ));
            }
            v
        };
        let (id, sent, sender, receiver) =
            (field("MessageID"), field("SentDateTime"), field("SenderPartyID"), field("ReceiverPartyID"));
        let message_id = id.and_then(|v| match Uuid::parse_str(&v) {
            Ok(u) => Some(u),
            Err(_) => {
                errors.push(AckError::new(
                    "MSG-ID-FORMAT",
                    format!("MessageID {v:?} is not a UUID"),
                    format!("{root}/MessageHeader/MessageID"),
                ));
                None
            }
        });
        let sent = sent.and_then(|v| match DateTime::parse_from_rfc3339(&v) {
            Ok(d) => Some(d),
            Err(_) => {
                errors.push(AckError::new(
                    "MSG-DATETIME",
                    format!("SentDateTime {v:?} is not a date-time with offset"),
                    format!("{root}/MessageHeader/SentDateTime"),
                ));
                None
            }
        });
        match (message_id, sent, sender, receiver) {
            (Some(message_id), Some(sent), Some(sender), Some(receiver)) if errors.is_empty() => {
                Ok(MessageHeader { message_id, sent, sender, receiver })
            }
            _ => Err(errors),
        }
    }

    pub fn to_xml(&self) -> String {
        format!(
            "<cc:MessageHeader><cc:MessageID>{}</cc:MessageID><cc:SentDateTime>{}</cc:SentDateTime><cc:SenderPartyID>{}</cc:SenderPartyID><cc:ReceiverPartyID>{}</cc:ReceiverPartyID></cc:MessageHeader>",
            self.message_id,
            self.sent.to_rfc3339_opts(SecondsFormat::Millis, true),
            xml_escape(&self.sender),
            xml_escape(&self.receiver)
        )
    }
}

/// A new request from `from` to `to` carrying `outgoing`: its message ID and the operation
/// element (header and payload, in our vocabulary; security and envelope are added when it is
/// sent).
pub fn new_request(from: &str, to: &str, outgoing: &Outgoing<'_>, now: DateTime<Utc>) -> (Uuid, String) {
    let message_id = Uuid::new_v4();
    let header = MessageHeader::new(from, to, message_id, now);
    (message_id, request_xml(outgoing.operation(), &header, &super::business::payload_xml(outgoing)))
}

/// Builds a request element: header plus the operation's payload (already serialised XML).
pub fn request_xml(op: Operation, header: &MessageHeader, payload_xml: &str) -> String {
    format!("<cc:{el} xmlns:cc=\"{NS}\">{}{payload_xml}</cc:{el}>", header.to_xml(), el = op.request_element())
}

impl Acknowledgement {
    pub fn to_xml(&self) -> String {
        let status = match self.status {
            AckStatus::Accepted => "Accepted",
            AckStatus::Rejected => "Rejected",
        };
        let errors: String = self
            .errors
            .iter()
            .map(|e| {
                format!(
                    "<cc:Error><cc:Code>{}</cc:Code><cc:Description>{}</cc:Description><cc:Path>{}</cc:Path></cc:Error>",
                    xml_escape(&e.code),
                    xml_escape(&e.description),
                    xml_escape(&e.path)
                )
            })
            .collect();
        format!(
            "<cc:Acknowledgement xmlns:cc=\"{NS}\">{}<cc:ReceivedMessageID>{}</cc:ReceivedMessageID><cc:ReceiptDateTime>{}</cc:ReceiptDateTime><cc:ReceivedMessageDigest Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\">{}</cc:ReceivedMessageDigest><cc:Status>{status}</cc:Status>{errors}</cc:Acknowledgement>",
            self.header.to_xml(),
            xml_escape(&self.received_message_id),
            self.receipt.to_rfc3339_opts(SecondsFormat::Millis, true),
            self.received_digest,
        )
    }

    /// Reads an acknowledgement element (the verified Body child of a response).
    pub fn read(xml: &[u8]) -> Result<Self, String> {
        let flat = read_flat(xml, NS)?;
        if flat.root != "Acknowledgement" || flat.root_ns != NS {
            return Err(format!("expected cc:Acknowledgement, got {{{}}}{}", flat.root_ns, flat.root));
        }
        let header = MessageHeader::read(xml).map_err(|e| format!("{e:?}"))?;
        let get = |p: &str| flat.get(p).map(str::to_owned).ok_or_else(|| format!("Acknowledgement/{p} missing"));
        let status = match get("Status")?.as_str() {
            "Accepted" => AckStatus::Accepted,
            "Rejected" => AckStatus::Rejected,
            other => return Err(format!("unknown status {other:?}")),
        };
        let receipt =
            DateTime::parse_from_rfc3339(&get("ReceiptDateTime")?).map_err(|e| e.to_string())?.with_timezone(&Utc);
        // Errors come as consecutive Code/Description/Path leaves.
        let mut errors = Vec::new();
        for (path, value) in &flat.leaves {
            match path.as_str() {
                "Error/Code" => errors.push(AckError::new(value, "", "")),
                "Error/Description" => {
                    if let Some(e) = errors.last_mut() {
                        e.description = value.clone();
                    }
                }
                "Error/Path" => {
                    if let Some(e) = errors.last_mut() {
                        e.path = value.clone();
                    }
                }
                _ => {}
            }
        }
        Ok(Acknowledgement {
            header,
            received_message_id: get("ReceivedMessageID")?,
            receipt,
            received_digest: get("ReceivedMessageDigest")?,
            status,
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgement_round_trip() {
        let ack = Acknowledgement {
            header: MessageHeader::new("ID", "KR", Uuid::new_v4(), Utc::now()),
            received_message_id: Uuid::new_v4().to_string(),
            receipt: DateTime::parse_from_rfc3339("2026-11-25T01:00:01.000Z").unwrap().with_timezone(&Utc),
            received_digest: "abc=".into(),
            status: AckStatus::Rejected,
            errors: vec![AckError::new("CO-COUNTRY", "XX <bad>", "/LPCO/a"), AckError::new("CO-HS", "h", "/LPCO/b")],
        };
        let mut back = Acknowledgement::read(ack.to_xml().as_bytes()).unwrap();
        back.header.sent = ack.header.sent;
        assert_eq!(back.header.message_id, ack.header.message_id);
        assert_eq!(back.errors, ack.errors);
        assert_eq!(back.status, AckStatus::Rejected);
    }

    #[test]
    fn header_reports_every_problem() {
        let xml = format!("<cc:SendCORequest xmlns:cc=\"{NS}\"><cc:MessageHeader><cc:MessageID>nope</cc:MessageID><cc:SentDateTime>2026-01-01T00:00:00</cc:SentDateTime><cc:SenderPartyID>KR</cc:SenderPartyID></cc:MessageHeader></cc:SendCORequest>");
        let errs = MessageHeader::read(xml.as_bytes()).unwrap_err();
        let codes: Vec<_> = errs.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["MSG-MISSING", "MSG-ID-FORMAT", "MSG-DATETIME"]);
        assert_eq!(errs[0].path, "/SendCORequest/MessageHeader/ReceiverPartyID");
    }
}
