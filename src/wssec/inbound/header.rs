//! The envelope as the receipt pipeline reads it: the Header and Body located strictly by
//! position, the SOAP `mustUnderstand` rule, the one `wsse:Security` header for us and what it
//! may hold, the Timestamp window, and the WS-Addressing headers.
//!
//! Must never: decide what was signed or decrypt anything (the pipeline does, in order).

use chrono::{DateTime, Utc};

use super::super::ffi::{Document, Node};
use super::super::profile::{Inbound, TimestampRule};
use super::super::{ns, SecurityError, SoapVersion};
use super::InboundPolicy;

/// The parts of the envelope the pipeline relies on, located strictly by position.
pub(super) struct Envelope<'d> {
    pub version: SoapVersion,
    pub header: Option<Node<'d>>,
    pub body: Node<'d>,
}

impl<'d> Envelope<'d> {
    pub fn locate(doc: &'d Document) -> Result<Self, SecurityError> {
        let root = doc.root().ok_or_else(|| SecurityError::NotSoap("empty document".into()))?;
        let version =
            SoapVersion::from_namespace(&root.namespace()).filter(|_| root.local_name() == "Envelope").ok_or_else(
                || SecurityError::NotSoap(format!("root element is {{{}}}{}", root.namespace(), root.local_name())),
            )?;
        let soap = version.namespace();
        let children = root.child_elements();
        let (header, body) = match children.as_slice() {
            [h, b] if h.is(soap, "Header") && b.is(soap, "Body") => (Some(*h), *b),
            [b] if b.is(soap, "Body") => (None, *b),
            _ => {
                return Err(SecurityError::NotSoap("Envelope must contain an optional Header and then one Body".into()))
            }
        };
        Ok(Envelope { version, header, body })
    }

    /// The one `wsse:Security` header targeted at us: no actor/role, or the one that names us
    /// ([`targets_us`], the same test as for `mustUnderstand`). Headers for other actors or
    /// roles are not ours; two for us are refused (WSS 1.1 §6.1: one per role).
    pub fn security(&self) -> Result<Node<'d>, SecurityError> {
        let header = self.header.ok_or(SecurityError::MissingSecurity)?;
        let mut found = None;
        for h in header.child_elements() {
            if !h.is(ns::WSSE, "Security") || !targets_us(&h, self.version) {
                continue;
            }
            if found.replace(h).is_some() {
                return Err(SecurityError::UnexpectedElement(
                    "more than one wsse:Security header for this receiver".into(),
                ));
            }
        }
        found.ok_or(SecurityError::MissingSecurity)
    }

    /// The WS-Addressing header blocks targeted at us, in either namespace.
    pub fn addressing_blocks(&self) -> Vec<Node<'d>> {
        let Some(header) = self.header else { return Vec::new() };
        header.child_elements().into_iter().filter(|b| is_addressing(b) && targets_us(b, self.version)).collect()
    }
}

/// The WS-Addressing headers we understand (both the W3C namespace and the 2004/08 submission).
fn is_addressing(block: &Node<'_>) -> bool {
    let namespace = block.namespace();
    (namespace == ns::WSA || namespace == ns::WSA_2004)
        && matches!(
            block.local_name().as_str(),
            "Action" | "MessageID" | "To" | "ReplyTo" | "RelatesTo" | "From" | "FaultTo"
        )
}

/// Refuses the message if a header block targeted at us (SOAP 1.1: no `actor` or the `next`
/// actor; 1.2: no `role`, `next` or `ultimateReceiver`) carries `mustUnderstand` true and is
/// not one we understand (`wsse:Security`, the WS-Addressing headers). Blocks for other actors
/// or roles are not ours.
pub(super) fn must_understand(envelope: &Envelope<'_>) -> Result<(), SecurityError> {
    let Some(header) = envelope.header else { return Ok(()) };
    let soap = envelope.version.namespace();
    let mut not_understood = Vec::new();
    for block in header.child_elements() {
        // SOAP 1.1 §4.2 and 1.2 §5.2.1: every header block is namespace-qualified.
        if block.namespace().is_empty() {
            return Err(SecurityError::NotSoap(format!("header block {} has no namespace", block.local_name())));
        }
        let mandatory = match block.attribute(soap, "mustUnderstand").as_deref().map(str::trim) {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(SecurityError::NotSoap(format!(
                    "mustUnderstand {other:?} on {} is not a boolean",
                    block.local_name()
                )))
            }
        };
        if !mandatory || !targets_us(&block, envelope.version) {
            continue;
        }
        if block.is(ns::WSSE, "Security") || is_addressing(&block) {
            continue;
        }
        not_understood.push((block.namespace(), block.local_name()));
    }
    if not_understood.is_empty() {
        Ok(())
    } else {
        Err(SecurityError::MustUnderstand(not_understood))
    }
}

pub(super) fn targets_us(block: &Node<'_>, version: SoapVersion) -> bool {
    match version {
        SoapVersion::V11 => block
            .attribute(ns::SOAP11, "actor")
            .is_none_or(|a| a.trim() == "http://schemas.xmlsoap.org/soap/actor/next"),
        SoapVersion::V12 => block.attribute(ns::SOAP12, "role").is_none_or(|r| {
            matches!(
                r.trim(),
                "http://www.w3.org/2003/05/soap-envelope/role/next"
                    | "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver"
            )
        }),
    }
}

/// What the Security header holds, checked against the profile before anything is decrypted
/// or verified.
pub(super) struct Inventory {
    /// `ds:Signature` in the clear (else it must arrive encrypted).
    pub clear_signature: bool,
    pub encrypted_keys: usize,
    /// `xenc:EncryptedData` in the header (an encrypted signature).
    pub header_encrypted_data: usize,
}

/// Reads the children of the Security header: only Timestamp, BinarySecurityToken, Signature,
/// EncryptedKey and, where the profile accepts an encrypted signature, EncryptedData and
/// ReferenceList; the Timestamp count follows the profile's rule; one signature (clear or
/// encrypted), at most one EncryptedKey.
pub(super) fn inventory(security: &Node<'_>, profile: &Inbound) -> Result<Inventory, SecurityError> {
    let encrypted_signature = profile.encryption.as_ref().is_some_and(|e| e.encrypted_signature);
    let (mut timestamps, mut signatures, mut keys, mut data) = (0, 0, 0, 0);
    for child in security.child_elements() {
        match (child.namespace().as_str(), child.local_name().as_str()) {
            (ns::WSU, "Timestamp") => timestamps += 1,
            (ns::WSSE, "BinarySecurityToken") => {}
            (ns::DS, "Signature") => signatures += 1,
            (ns::XENC, "EncryptedKey") => keys += 1,
            (ns::XENC, "EncryptedData") if encrypted_signature => data += 1,
            (n, l) => return Err(SecurityError::UnexpectedElement(format!("{{{n}}}{l} in wsse:Security"))),
        }
    }
    match (profile.timestamp, timestamps) {
        (TimestampRule::Required, 1) | (TimestampRule::Optional, 0 | 1) => {}
        (TimestampRule::Required, n) => {
            return Err(SecurityError::BadTimestamp(format!("expected one wsu:Timestamp, found {n}")))
        }
        (TimestampRule::Optional, n) => {
            return Err(SecurityError::BadTimestamp(format!("expected at most one wsu:Timestamp, found {n}")))
        }
    }
    if keys > 1 {
        return Err(SecurityError::UnexpectedElement("more than one xenc:EncryptedKey".into()));
    }
    if data > 1 {
        return Err(SecurityError::UnexpectedElement("more than one xenc:EncryptedData in wsse:Security".into()));
    }
    match (signatures, data) {
        (1, 0) | (0, 1) => {}
        (0, 0) => return Err(SecurityError::Unsigned("no ds:Signature".into())),
        _ => return Err(SecurityError::UnexpectedElement("more than one ds:Signature".into())),
    }
    Ok(Inventory { clear_signature: signatures == 1, encrypted_keys: keys, header_encrypted_data: data })
}

/// Checks the Timestamp's lifetime and (for requests) window; returns its Expires.
pub(super) fn check_timestamp(ts: &Node<'_>, policy: &InboundPolicy<'_>) -> Result<DateTime<Utc>, SecurityError> {
    let parse = |local: &'static str| -> Result<DateTime<Utc>, SecurityError> {
        let text = single_child(ts, ns::WSU, local)?.text();
        DateTime::parse_from_rfc3339(text.trim()).map(|d| d.with_timezone(&Utc)).map_err(|_| {
            SecurityError::BadTimestamp(format!("{local} {text:?} is not an ISO 8601 date-time with offset"))
        })
    };
    let created = parse("Created")?;
    let expires = parse("Expires")?;
    if expires <= created || expires - created > policy.max_ttl {
        return Err(SecurityError::BadTimestamp(format!("lifetime {created} .. {expires}")));
    }
    if !policy.require_fresh_timestamp {
        return Ok(expires);
    }
    if created > policy.now + policy.clock_skew {
        return Err(SecurityError::FutureTimestamp(format!("created {created}, now {}", policy.now)));
    }
    if expires + policy.clock_skew < policy.now {
        return Err(SecurityError::Expired(format!("expired {expires}, now {}", policy.now)));
    }
    Ok(expires)
}

/// The WS-Addressing headers of a message (each once at most), as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addressing {
    /// The namespace the partner used (answers use the same).
    pub namespace: String,
    pub action: Option<String>,
    pub message_id: Option<String>,
    pub to: Option<String>,
    pub reply_to: Option<String>,
    pub relates_to: Option<String>,
}

/// Reads the WS-Addressing headers targeted at us; `None` when there are none. Both
/// namespaces at once, or a header twice, is refused.
pub(super) fn read_addressing(blocks: &[Node<'_>]) -> Result<Option<Addressing>, SecurityError> {
    let Some(first) = blocks.first() else { return Ok(None) };
    let mut a = Addressing { namespace: first.namespace(), ..Addressing::default() };
    for block in blocks {
        if block.namespace() != a.namespace {
            return Err(SecurityError::UnexpectedElement("WS-Addressing headers in two namespaces".into()));
        }
        let value = match block.local_name().as_str() {
            "ReplyTo" | "From" | "FaultTo" => {
                let address = block.child_elements().into_iter().find(|c| c.local_name() == "Address");
                address.map(|n| n.text().trim().to_owned()).unwrap_or_default()
            }
            _ => block.text().trim().to_owned(),
        };
        let slot = match block.local_name().as_str() {
            "Action" => &mut a.action,
            "MessageID" => &mut a.message_id,
            "To" => &mut a.to,
            "ReplyTo" => &mut a.reply_to,
            "RelatesTo" => &mut a.relates_to,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(SecurityError::UnexpectedElement(format!("wsa:{} twice", block.local_name())));
        }
    }
    Ok(Some(a))
}

pub(super) fn single_child<'d>(parent: &Node<'d>, ns_uri: &str, local: &str) -> Result<Node<'d>, SecurityError> {
    let mut matches = parent.child_elements().into_iter().filter(|c| c.is(ns_uri, local));
    match (matches.next(), matches.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(SecurityError::UnexpectedElement(format!("missing {local} in {}", parent.local_name()))),
        (Some(_), Some(_)) => {
            Err(SecurityError::UnexpectedElement(format!("more than one {local} in {}", parent.local_name())))
        }
    }
}

pub(super) fn is_bare_id_reference(uri: &str) -> bool {
    uri.strip_prefix('#').is_some_and(|id| {
        let mut chars = id.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    })
}
