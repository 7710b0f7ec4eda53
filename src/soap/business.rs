//! The SOAP form of the lifecycle operations' business content (`crate::message::business`):
//! each is read from the verified operation element, reporting every problem with its path, and
//! written as XML for the outbox.
//!
//! Must never: decide whether the content is allowed (that is the lifecycle's) or touch keys.

use super::xmlread::{read_flat, Flat};
use super::NS;
use crate::message::business::{
    Cancellation, CancellationStatus, DocumentId, Feedback, Lookup, LookupResult, MAX_REASON_CODES, TREATMENT_DECISIONS,
};
use crate::message::{AckError, Outgoing};
use crate::wssec::outbound::xml_escape;

/// The payload of an outgoing request in our vocabulary (the operation element's content after
/// its header).
pub fn payload_xml(outgoing: &Outgoing<'_>) -> String {
    match outgoing {
        Outgoing::Document { lpco_xml, .. } => (*lpco_xml).to_owned(),
        Outgoing::Cancellation(c) => cancellation_xml(c),
        Outgoing::CancellationStatus(s) => cancellation_status_xml(s),
        Outgoing::Feedback(f) => feedback_xml(f),
        Outgoing::Lookup(l) => lookup_xml(l),
    }
}

/// Reads the flat leaves of an operation element, or reports it malformed.
fn flat(xml: &[u8]) -> Result<Flat, Vec<AckError>> {
    read_flat(xml, NS).map_err(|e| {
        vec![{
            // The parser's own message stays in our log: a partner gets a fixed sentence.
            tracing::info!(error = %e, "operation element could not be read");
            AckError::new("MSG-MALFORMED", "the operation element could not be read as XML", "/")
        }]
    })
}

/// Collects mandatory and optional fields under `group`, with checks on length and form.
struct Fields<'f> {
    flat: &'f Flat,
    root: String,
    group: &'static str,
    errors: Vec<AckError>,
}

impl<'f> Fields<'f> {
    fn new(flat: &'f Flat, group: &'static str) -> Self {
        Fields { root: format!("/{}", flat.root), flat, group, errors: Vec::new() }
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.root, self.group)
    }

    /// The field's text; an empty element counts as absent.
    fn optional(&mut self, name: &str, max: usize) -> Option<String> {
        let v = self.flat.get(&format!("{}/{name}", self.group)).filter(|v| !v.is_empty())?.to_owned();
        if v.chars().count() > max {
            let path = self.path(name);
            self.errors.push(AckError::new("MSG-LENGTH", format!("{name} is longer than {max} characters"), path));
            return None;
        }
        Some(v)
    }

    fn required(&mut self, name: &str, max: usize) -> Option<String> {
        let v = self.optional(name, max);
        if v.is_none() && !self.errors.iter().any(|e| e.path == self.path(name)) {
            let path = self.path(name);
            self.errors.push(AckError::new("MSG-MISSING", format!("{}/{name} is mandatory", self.group), path));
        }
        v
    }

    /// A message ID, read as the header's MessageID is (any form `uuid` accepts: upper case,
    /// `urn:uuid:` ...) and given back in the canonical lower-case form our IDs are stored in.
    fn uuid(&mut self, name: &str) -> Option<String> {
        let v = self.required(name, 45)?;
        match uuid::Uuid::parse_str(&v) {
            Ok(id) => Some(id.to_string()),
            Err(_) => {
                let path = self.path(name);
                self.errors.push(AckError::new("MSG-ID-FORMAT", format!("{name} {v:?} is not a UUID"), path));
                None
            }
        }
    }

    fn one_of(&mut self, name: &str, allowed: &[&str]) -> Option<String> {
        let v = self.required(name, 35)?;
        if allowed.contains(&v.as_str()) {
            Some(v)
        } else {
            let path = self.path(name);
            self.errors.push(AckError::new("MSG-CODE", format!("{name} {v:?} is not one of {allowed:?}"), path));
            None
        }
    }

    fn all(&self, name: &str) -> Vec<String> {
        let key = format!("{}/{name}", self.group);
        self.flat.leaves.iter().filter(|(p, _)| *p == key).map(|(_, v)| v.clone()).collect()
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Vec<AckError>> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(self.errors),
        }
    }
}

fn element(name: &str, value: &str) -> String {
    format!("<cc:{name}>{}</cc:{name}>", xml_escape(value))
}

fn optional_element(name: &str, value: Option<&str>) -> String {
    value.map(|v| element(name, v)).unwrap_or_default()
}

impl Cancellation {
    pub const GROUP: &'static str = "Cancellation";

    pub fn read(xml: &[u8]) -> Result<Self, Vec<AckError>> {
        let flat = flat(xml)?;
        let mut f = Fields::new(&flat, Self::GROUP);
        let (issuer, reference) = (f.required("IssuerPartyID", 10), f.required("DocumentReference", 35));
        let reason = f.required("Reason", 512);
        let replacement_reference = f.optional("ReplacementReference", 35);
        let value = match (issuer, reference, reason) {
            (Some(issuer), Some(reference), Some(reason)) => {
                Some(Cancellation { document: DocumentId { issuer, reference }, reason, replacement_reference })
            }
            _ => None,
        };
        f.finish(value)
    }
}

fn cancellation_xml(value: &Cancellation) -> String {
    format!(
        "<cc:Cancellation>{}{}{}{}</cc:Cancellation>",
        element("IssuerPartyID", &value.document.issuer),
        element("DocumentReference", &value.document.reference),
        element("Reason", &value.reason),
        optional_element("ReplacementReference", value.replacement_reference.as_deref()),
    )
}

impl CancellationStatus {
    pub const GROUP: &'static str = "CancellationStatus";

    pub fn read(xml: &[u8]) -> Result<Self, Vec<AckError>> {
        let flat = flat(xml)?;
        let mut f = Fields::new(&flat, Self::GROUP);
        let (issuer, reference) = (f.required("IssuerPartyID", 10), f.required("DocumentReference", 35));
        let answered = f.uuid("CancellationMessageID");
        let status = f.one_of("Status", &["Accepted", "Declined"]);
        let reason = f.optional("Reason", 512);
        let value = match (issuer, reference, answered, status) {
            (Some(issuer), Some(reference), Some(cancellation_message_id), Some(status)) => Some(CancellationStatus {
                document: DocumentId { issuer, reference },
                cancellation_message_id,
                accepted: status == "Accepted",
                reason,
            }),
            _ => None,
        };
        f.finish(value)
    }
}

fn cancellation_status_xml(value: &CancellationStatus) -> String {
    format!(
        "<cc:CancellationStatus>{}{}{}{}{}</cc:CancellationStatus>",
        element("IssuerPartyID", &value.document.issuer),
        element("DocumentReference", &value.document.reference),
        element("CancellationMessageID", &value.cancellation_message_id),
        element("Status", if value.accepted { "Accepted" } else { "Declined" }),
        optional_element("Reason", value.reason.as_deref()),
    )
}

impl Feedback {
    pub const GROUP: &'static str = "Feedback";

    pub fn read(xml: &[u8]) -> Result<Self, Vec<AckError>> {
        let flat = flat(xml)?;
        let mut f = Fields::new(&flat, Self::GROUP);
        let (issuer, reference) = (f.required("IssuerPartyID", 10), f.required("DocumentReference", 35));
        let decision = f.one_of("Decision", &TREATMENT_DECISIONS);
        let declaration_reference = f.optional("DeclarationReference", 70);
        let reason_codes = f.all("ReasonCode");
        if reason_codes.iter().any(|c| c.is_empty() || c.chars().count() > 35) {
            let path = f.path("ReasonCode");
            f.errors.push(AckError::new("MSG-LENGTH", "ReasonCode must be 1 to 35 characters", path));
        }
        if reason_codes.len() > MAX_REASON_CODES {
            let path = f.path("ReasonCode");
            f.errors.push(AckError::new("MSG-LENGTH", format!("at most {MAX_REASON_CODES} ReasonCode elements"), path));
        }
        let remarks = f.optional("Remarks", 512);
        let value = match (issuer, reference, decision) {
            (Some(issuer), Some(reference), Some(decision)) => Some(Feedback {
                document: DocumentId { issuer, reference },
                decision,
                declaration_reference,
                reason_codes,
                remarks,
            }),
            _ => None,
        };
        f.finish(value)
    }
}

fn feedback_xml(value: &Feedback) -> String {
    let codes: String = value.reason_codes.iter().map(|c| element("ReasonCode", c)).collect();
    format!(
        "<cc:Feedback>{}{}{}{}{codes}{}</cc:Feedback>",
        element("IssuerPartyID", &value.document.issuer),
        element("DocumentReference", &value.document.reference),
        element("Decision", &value.decision),
        optional_element("DeclarationReference", value.declaration_reference.as_deref()),
        optional_element("Remarks", value.remarks.as_deref()),
    )
}

impl Lookup {
    pub const GROUP: &'static str = "Lookup";

    pub fn read(xml: &[u8]) -> Result<Self, Vec<AckError>> {
        let flat = flat(xml)?;
        let mut f = Fields::new(&flat, Self::GROUP);
        let (issuer, reference) = (f.required("IssuerPartyID", 10), f.required("DocumentReference", 35));
        let code = f.required("ReferenceCode", 64);
        let value = match (issuer, reference, code) {
            (Some(issuer), Some(reference), Some(reference_code)) => {
                Some(Lookup { document: DocumentId { issuer, reference }, reference_code })
            }
            _ => None,
        };
        f.finish(value)
    }
}

fn lookup_xml(value: &Lookup) -> String {
    format!(
        "<cc:Lookup>{}{}{}</cc:Lookup>",
        element("IssuerPartyID", &value.document.issuer),
        element("DocumentReference", &value.document.reference),
        element("ReferenceCode", &value.reference_code),
    )
}

/// Response element of GetCO: message header (answering the request), the result.
pub fn lookup_response_xml(header_xml: &str, request_id: &str, result: &LookupResult) -> String {
    let content = match result {
        LookupResult::Found { status, lpco_xml } => {
            format!("<cc:Result>Found</cc:Result>{}{lpco_xml}", element("DocumentStatus", status))
        }
        LookupResult::NotFound => "<cc:Result>NotFound</cc:Result>".to_owned(),
    };
    format!(
        "<cc:GetCOResponse xmlns:cc=\"{NS}\">{header_xml}{}{content}</cc:GetCOResponse>",
        element("RequestMessageID", request_id)
    )
}

/// Reads a GetCO response (the verified Body child): the request it answers and the result.
/// `lpco` is the response's `LPCO` part, taken from the verified message.
pub fn read_lookup_response(xml: &[u8], lpco: Option<&[u8]>) -> Result<(String, LookupResult), String> {
    let flat = read_flat(xml, NS)?;
    if flat.root != "GetCOResponse" || flat.root_ns != NS {
        return Err(format!("expected cc:GetCOResponse, got {{{}}}{}", flat.root_ns, flat.root));
    }
    let request = flat.get("RequestMessageID").ok_or("RequestMessageID missing")?.to_owned();
    match flat.get("Result") {
        Some("NotFound") => Ok((request, LookupResult::NotFound)),
        Some("Found") => {
            let status = flat.get("DocumentStatus").ok_or("DocumentStatus missing")?.to_owned();
            let lpco = lpco.ok_or("Found without an LPCO")?;
            let lpco_xml = String::from_utf8(lpco.to_vec()).map_err(|_| "LPCO is not UTF-8")?;
            Ok((request, LookupResult::Found { status, lpco_xml }))
        }
        other => Err(format!("unknown Result {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(op: &str, inner: &str) -> Vec<u8> {
        format!("<cc:{op} xmlns:cc=\"{NS}\"><cc:MessageHeader/>{inner}</cc:{op}>").into_bytes()
    }

    #[test]
    fn cancellation_round_trip() {
        let c = Cancellation {
            document: DocumentId { issuer: "KR".into(), reference: "A&B-1".into() },
            reason: "wrong <consignee>".into(),
            replacement_reference: Some("A-2".into()),
        };
        assert_eq!(Cancellation::read(&wrap("SendCancellationRequest", &cancellation_xml(&c))).unwrap(), c);
    }

    #[test]
    fn feedback_round_trip_and_every_problem() {
        let f = Feedback {
            document: DocumentId { issuer: "KR".into(), reference: "R1".into() },
            decision: "PartiallyGranted".into(),
            declaration_reference: Some("D-9".into()),
            reason_codes: vec!["R01".into(), "R02".into()],
            remarks: None,
        };
        assert_eq!(Feedback::read(&wrap("SendFeedbackRequest", &feedback_xml(&f))).unwrap(), f);
        let bad = wrap(
            "SendFeedbackRequest",
            "<cc:Feedback><cc:IssuerPartyID>KR</cc:IssuerPartyID><cc:Decision>Maybe</cc:Decision></cc:Feedback>",
        );
        let errs = Feedback::read(&bad).unwrap_err();
        let codes: Vec<_> = errs.iter().map(|e| (e.code.as_str(), e.path.as_str())).collect();
        assert_eq!(
            codes,
            [
                ("MSG-MISSING", "/SendFeedbackRequest/Feedback/DocumentReference"),
                ("MSG-CODE", "/SendFeedbackRequest/Feedback/Decision")
            ]
        );
    }

    #[test]
    fn status_and_lookup_round_trip() {
        let s = CancellationStatus {
            document: DocumentId { issuer: "KR".into(), reference: "R1".into() },
            cancellation_message_id: "0b6c1a4e-2f1d-4a39-9d8e-5c7b3a2e1f00".into(),
            accepted: false,
            reason: Some("treatment granted".into()),
        };
        assert_eq!(
            CancellationStatus::read(&wrap("SendCancellationStatusRequest", &cancellation_status_xml(&s))).unwrap(),
            s
        );
        // Another spelling of the same UUID names the same notification; a non-UUID is refused.
        let upper = cancellation_status_xml(&s)
            .replace(&s.cancellation_message_id, "urn:uuid:0B6C1A4E-2F1D-4A39-9D8E-5C7B3A2E1F00");
        assert_eq!(CancellationStatus::read(&wrap("SendCancellationStatusRequest", &upper)).unwrap(), s);
        let bad = cancellation_status_xml(&s).replace(&s.cancellation_message_id, "not-a-uuid");
        let errs = CancellationStatus::read(&wrap("SendCancellationStatusRequest", &bad)).unwrap_err();
        let codes: Vec<_> = errs.iter().map(|e| (e.code.as_str(), e.path.as_str())).collect();
        assert_eq!(
            codes,
            [("MSG-ID-FORMAT", "/SendCancellationStatusRequest/CancellationStatus/CancellationMessageID")]
        );
        let l =
            Lookup { document: DocumentId { issuer: "KR".into(), reference: "R1".into() }, reference_code: "X".into() };
        assert_eq!(Lookup::read(&wrap("GetCORequest", &lookup_xml(&l))).unwrap(), l);
        let r = lookup_response_xml("<cc:MessageHeader/>", "id-1", &LookupResult::NotFound);
        assert_eq!(read_lookup_response(r.as_bytes(), None).unwrap(), ("id-1".to_owned(), LookupResult::NotFound));
    }
}
