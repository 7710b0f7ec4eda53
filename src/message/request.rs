//! A partner's request as the flows take it, whatever binding carried it: the operation, its
//! header, its typed content, and the evidence the store keeps of it. A binding builds one from
//! a message whose security it has verified (the SOAP binding: `soap::request`); nothing
//! below the binding sees an envelope.
//!
//! Must never: be built from bytes whose signature was not verified.

use bytes::Bytes;

use super::business::{Cancellation, CancellationStatus, Feedback, Lookup};
use super::{AckError, MessageHeader, Operation};
use crate::payload::{DocumentKind, Lpco, ValidationError};

/// A verified request from a partner.
#[derive(Debug)]
pub struct InboundRequest {
    pub operation: Operation,
    pub header: MessageHeader,
    pub content: Content,
    pub evidence: Evidence,
}

/// What the request carries, read into types; content that could not be read is kept as its
/// errors, so that the request is still answered (a Rejected acknowledgement) and remembered
/// under its message ID.
#[derive(Debug)]
pub enum Content {
    /// SendCO, SendDO: the one document, as the `LPCO` element's XML (standalone, its
    /// namespaces declared on itself), and that XML read into the model and validated as a
    /// document of `kind` ([`crate::payload::parse_document`]), or every fault found.
    Document {
        kind: DocumentKind,
        lpco_xml: String,
        read: Result<Box<Lpco>, Vec<ValidationError>>,
    },
    Cancellation(Cancellation),
    CancellationStatus(CancellationStatus),
    Feedback(Feedback),
    Lookup(Lookup),
    /// The content could not be read: every problem, with its path.
    Invalid(Vec<AckError>),
}

/// Base64 SHA-256 of the bytes received: what an acknowledgement's `ReceivedMessageDigest`
/// carries.
pub fn wire_digest(wire: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(openssl::sha::sha256(wire))
}

/// What the store keeps to prove what was received, and what idempotency and the
/// acknowledgement are keyed on.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The exact bytes received.
    pub wire: Bytes,
    /// Base64 SHA-256 of [`Self::wire`]: the acknowledgement's `ReceivedMessageDigest`.
    pub wire_digest: String,
    /// Hex SHA-256 of the request's canonical content (the operation element after
    /// decryption): a retry of the same message has the same one, whatever its envelope.
    pub content_sha256: String,
    /// Hex SHA-256 over the signature's digest values, which no re-encoding can change: the
    /// replay cache's key for this signed content.
    pub signature_digest: String,
    /// Subject of the certificate whose signature was verified.
    pub signer: String,
    /// Whether the content arrived encrypted.
    pub was_encrypted: bool,
}
