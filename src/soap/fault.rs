//! SOAP Faults, written in the version of the request (1.1 `faultcode`/`faultstring`, 1.2
//! `Code/Subcode/Reason`), from a [`crate::refusal::Refusal`]. A fault carries a stable
//! coconnect error code in its detail, and never internal detail: causes are logged, not sent.

use crate::wssec::outbound::xml_escape;
use crate::wssec::{ns as wsns, SoapVersion};

pub use crate::refusal::{FaultSide, SubcodeNs};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub side: FaultSide,
    pub subcode_ns: SubcodeNs,
    pub subcode: String,
    pub reason: String,
    /// Stable coconnect error code (e.g. `WSS-SIGNATURE-INVALID`).
    pub code: String,
    /// The offending element, when known.
    pub element: Option<String>,
    /// Mandatory header blocks not understood (namespace, local name): when not empty, this is
    /// a SOAP `MustUnderstand` fault, and SOAP 1.2 lists them as `NotUnderstood` header blocks.
    pub not_understood: Vec<(String, String)>,
}

impl Fault {
    /// The fault a refusal is answered with: its code, side, subcode, fixed sentence and
    /// element (`crate::refusal` is the one mapping).
    pub fn from_refusal(refusal: &crate::refusal::Refusal) -> Fault {
        let (subcode_ns, subcode) = refusal.subcode();
        Fault {
            side: refusal.fault_side(),
            subcode_ns,
            subcode: subcode.to_owned(),
            reason: refusal.public_reason(),
            code: refusal.code().to_owned(),
            element: refusal.element().map(str::to_owned),
            not_understood: refusal.not_understood().to_vec(),
        }
    }

    pub fn to_envelope(&self, version: SoapVersion) -> String {
        let sub_ns = match self.subcode_ns {
            SubcodeNs::Wsse => wsns::WSSE,
            SubcodeNs::Coconnect => super::NS,
        };
        let element =
            self.element.as_deref().map(|e| format!("<cc:Element>{}</cc:Element>", xml_escape(e))).unwrap_or_default();
        let detail = format!(
            "<cc:FaultDetail xmlns:cc=\"{}\"><cc:Code>{}</cc:Code>{element}</cc:FaultDetail>",
            super::NS,
            xml_escape(&self.code)
        );
        let reason = xml_escape(&self.reason);
        if !self.not_understood.is_empty() {
            return self.must_understand_envelope(version, &reason, &detail);
        }
        match version {
            SoapVersion::V11 => {
                let code = match self.side {
                    FaultSide::Sender => "soap:Client",
                    FaultSide::Receiver => "soap:Server",
                };
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"{}\"><soap:Body><soap:Fault><faultcode xmlns:sub=\"{sub_ns}\">{}</faultcode><faultstring>{reason}</faultstring><detail>{detail}</detail></soap:Fault></soap:Body></soap:Envelope>",
                    wsns::SOAP11,
                    // SOAP 1.1 has no subcodes; WS-Security faults replace faultcode itself.
                    if self.subcode_ns == SubcodeNs::Wsse { format!("sub:{}", self.subcode) } else { code.to_owned() },
                )
            }
            SoapVersion::V12 => {
                let code = match self.side {
                    FaultSide::Sender => "soap:Sender",
                    FaultSide::Receiver => "soap:Receiver",
                };
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"{}\"><soap:Body><soap:Fault><soap:Code><soap:Value>{code}</soap:Value><soap:Subcode><soap:Value xmlns:sub=\"{sub_ns}\">sub:{}</soap:Value></soap:Subcode></soap:Code><soap:Reason><soap:Text xml:lang=\"en\">{reason}</soap:Text></soap:Reason><soap:Detail>{detail}</soap:Detail></soap:Fault></soap:Body></soap:Envelope>",
                    wsns::SOAP12,
                    xml_escape(&self.subcode),
                )
            }
        }
    }
}

impl Fault {
    /// SOAP 1.1 §4.4.1 / SOAP 1.2 Part 1 §5.4.8: the fault code is `MustUnderstand` itself;
    /// SOAP 1.2 names each block in a `NotUnderstood` header block. SOAP 1.1 §4.4 keeps error
    /// information about header entries out of `detail`: our code goes into a header entry.
    fn must_understand_envelope(&self, version: SoapVersion, reason: &str, detail: &str) -> String {
        match version {
            SoapVersion::V11 => format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"{}\"><soap:Header>{detail}</soap:Header><soap:Body><soap:Fault><faultcode>soap:MustUnderstand</faultcode><faultstring>{reason}</faultstring></soap:Fault></soap:Body></soap:Envelope>",
                wsns::SOAP11
            ),
            SoapVersion::V12 => {
                let blocks: String = self
                    .not_understood
                    .iter()
                    .enumerate()
                    .map(|(i, (ns, local))| {
                        let qname = if ns.is_empty() {
                            xml_escape(local)
                        } else {
                            format!("nu{i}:{}\" xmlns:nu{i}=\"{}", xml_escape(local), xml_escape(ns))
                        };
                        format!("<soap:NotUnderstood qname=\"{qname}\"/>")
                    })
                    .collect();
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"{}\"><soap:Header>{blocks}</soap:Header><soap:Body><soap:Fault><soap:Code><soap:Value>soap:MustUnderstand</soap:Value></soap:Code><soap:Reason><soap:Text xml:lang=\"en\">{reason}</soap:Text></soap:Reason><soap:Detail>{detail}</soap:Detail></soap:Fault></soap:Body></soap:Envelope>",
                    wsns::SOAP12
                )
            }
        }
    }
}

/// What a partner's fault told us, read on the sending side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFault {
    pub sender_at_fault: bool,
    pub code: Option<String>,
    pub reason: String,
}

/// Reads a SOAP Fault from a response body (unsigned: faults are not trusted for anything but
/// deciding whether to retry).
pub fn read_fault(bytes: &[u8]) -> Option<ReceivedFault> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !text.contains("Fault") {
        return None;
    }
    let between = |open: &str, close: &str| -> Option<String> {
        let s = text.find(open)? + open.len();
        let s = s + text[s..].find('>')? + 1;
        let e = s + text[s..].find(close)?;
        Some(text[s..e].trim().to_owned())
    };
    let code_text =
        between("<faultcode", "</faultcode>").or_else(|| between("<soap:Value", "</soap:Value>")).unwrap_or_default();
    let sender_at_fault = code_text.ends_with("Client")
        || code_text.ends_with("Sender")
        || (!code_text.ends_with("Server") && !code_text.ends_with("Receiver") && code_text.contains(':'));
    Some(ReceivedFault {
        sender_at_fault,
        code: between("<cc:Code", "</cc:Code>"),
        reason: between("<faultstring", "</faultstring>")
            .or_else(|| between("<soap:Text", "</soap:Text>"))
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(side: FaultSide) -> Fault {
        Fault {
            side,
            subcode_ns: SubcodeNs::Coconnect,
            subcode: "NotSupported".into(),
            reason: "not yet <supported>".into(),
            code: "OP-NOT-SUPPORTED".into(),
            element: Some("/Body/X".into()),
            not_understood: vec![],
        }
    }

    #[test]
    fn faults_in_both_versions_parse_back() {
        for v in [SoapVersion::V11, SoapVersion::V12] {
            let xml = fault(FaultSide::Sender).to_envelope(v);
            let back = read_fault(xml.as_bytes()).unwrap();
            assert!(back.sender_at_fault, "{xml}");
            assert_eq!(back.code.as_deref(), Some("OP-NOT-SUPPORTED"));
            assert_eq!(back.reason, "not yet &lt;supported&gt;");
            assert!(!read_fault(fault(FaultSide::Receiver).to_envelope(v).as_bytes()).unwrap().sender_at_fault);
        }
        assert!(fault(FaultSide::Sender).to_envelope(SoapVersion::V12).contains(wsns::SOAP12));
    }

    #[test]
    fn must_understand_faults_name_the_blocks_in_both_versions() {
        let f = Fault {
            not_understood: vec![("urn:x".into(), "Extension".into()), ("".into(), "Bare".into())],
            code: "MSG-MUST-UNDERSTAND".into(),
            ..fault(FaultSide::Sender)
        };
        let v11 = f.to_envelope(SoapVersion::V11);
        assert!(v11.contains("<faultcode>soap:MustUnderstand</faultcode>"), "{v11}");
        assert!(!v11.contains("<detail>") && v11.contains("<soap:Header><cc:FaultDetail"), "{v11}");
        let v12 = f.to_envelope(SoapVersion::V12);
        assert!(v12.contains("<soap:Value>soap:MustUnderstand</soap:Value>"), "{v12}");
        assert!(v12.contains("<soap:NotUnderstood qname=\"nu0:Extension\" xmlns:nu0=\"urn:x\"/>"), "{v12}");
        assert!(v12.contains("<soap:NotUnderstood qname=\"Bare\"/>"), "{v12}");
        for xml in [v11, v12] {
            let back = read_fault(xml.as_bytes()).expect("fault");
            assert!(back.sender_at_fault, "a MustUnderstand fault is not retried unchanged");
            assert_eq!(back.code.as_deref(), Some("MSG-MUST-UNDERSTAND"));
        }
    }
}
