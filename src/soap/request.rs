//! A verified SOAP request turned into the binding-neutral [`InboundRequest`] the flows take:
//! the operation from the Body's element, the message header, the operation's content read
//! into types, and the evidence the store keeps.
//!
//! Must never: be handed bytes whose security was not verified (it takes a
//! [`VerifiedMessage`], which only `wssec::inbound` builds), or decide anything about the
//! content beyond reading it.

use bytes::Bytes;

use crate::message::business::{Cancellation, CancellationStatus, Feedback, Lookup};
use crate::message::request::{wire_digest, Content, Evidence, InboundRequest};
use crate::message::{AckError, MessageHeader, Operation};
use crate::payload::{DocumentKind, LPCO_NAMESPACE};
use crate::wssec::inbound::VerifiedMessage;
use crate::wssec::material::hex;

/// Why a verified message is not a request the flows can take.
#[derive(Debug)]
pub enum Unreadable {
    /// The Body's element is no operation of this service.
    UnknownOperation { namespace: String, name: String },
    /// The message header is missing or invalid: without a message ID there is nothing to key
    /// idempotency on. Every problem, with its path.
    Header { operation: Operation, errors: Vec<AckError> },
}

/// Reads `verified` (which arrived as `wire`) into a request.
pub fn read(verified: &VerifiedMessage, wire: Bytes) -> Result<InboundRequest, Unreadable> {
    let (namespace, name) = verified.operation();
    let Some(operation) = Operation::from_request_element(namespace, name) else {
        return Err(Unreadable::UnknownOperation { namespace: namespace.to_owned(), name: name.to_owned() });
    };
    let body = verified.body_child();
    let header = MessageHeader::read(body).map_err(|errors| Unreadable::Header { operation, errors })?;
    let content = match operation {
        Operation::SendCo => document(verified, DocumentKind::Co, operation),
        Operation::SendDo => document(verified, DocumentKind::Do, operation),
        Operation::SendCancellation => Cancellation::read(body).map_or_else(Content::Invalid, Content::Cancellation),
        Operation::SendCancellationStatus => {
            CancellationStatus::read(body).map_or_else(Content::Invalid, Content::CancellationStatus)
        }
        Operation::SendFeedback => Feedback::read(body).map_or_else(Content::Invalid, Content::Feedback),
        Operation::GetCo => Lookup::read(body).map_or_else(Content::Invalid, Content::Lookup),
    };
    let evidence = Evidence {
        wire_digest: wire_digest(&wire),
        wire,
        content_sha256: hex(&openssl::sha::sha256(body)),
        signature_digest: verified.replay_key().to_owned(),
        signer: verified.signer().subject.clone(),
        was_encrypted: verified.was_encrypted(),
    };
    Ok(InboundRequest { operation, header, content, evidence })
}

/// SendCO / SendDO: exactly one `LPCO` element.
fn document(verified: &VerifiedMessage, kind: DocumentKind, operation: Operation) -> Content {
    let op_name = operation.request_element();
    let lpcos: Vec<_> =
        verified.parts().iter().filter(|p| p.local_name == "LPCO" && p.namespace == LPCO_NAMESPACE).collect();
    match lpcos.as_slice() {
        [lpco] => {
            // Read into the model with the rest of the request: the receive pipeline runs this on
            // the XML security thread that verified the message, so that this CPU work (yaserde's
            // reader, about 0.4 ms for a 7 KB CO) stays off the async workers.
            let lpco_xml = String::from_utf8_lossy(&lpco.xml).into_owned();
            let read = crate::payload::parse_document(&lpco_xml, kind).map(Box::new);
            Content::Document { kind, lpco_xml, read }
        }
        _ => Content::Invalid(vec![AckError::new(
            "MSG-MISSING",
            format!("{op_name} must contain exactly one LPCO"),
            format!("/{op_name}/LPCO"),
        )]),
    }
}
