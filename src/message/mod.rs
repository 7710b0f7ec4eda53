//! The message vocabulary of the framework, independent of any binding: the operations, the
//! header every message carries, the acknowledgement (BR.5) every request gets, the business
//! content of the lifecycle operations ([`business`]), and a partner's request as the flows
//! take it ([`request`]).
//!
//! Owns: these types and the rules on their values (e.g. [`text`]). Their wire form is a
//! binding's: the SOAP binding reads and writes them in `soap::messages` and `soap::business`;
//! a second binding would give them another form and leave everything above unchanged.
//!
//! Must never: know a wire format, a key or the store.

pub mod business;
pub mod request;
pub mod text;

use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use uuid::Uuid;

/// What we send a partner, before a binding gives it its form (`soap::messages::new_request`).
#[derive(Debug, Clone, Copy)]
pub enum Outgoing<'a> {
    /// A CO (`SendCO`) or DO (`SendDO`): the LPCO XML as submitted.
    Document {
        kind: crate::payload::DocumentKind,
        lpco_xml: &'a str,
    },
    Cancellation(&'a business::Cancellation),
    CancellationStatus(&'a business::CancellationStatus),
    Feedback(&'a business::Feedback),
    Lookup(&'a business::Lookup),
}

impl Outgoing<'_> {
    pub fn operation(&self) -> Operation {
        match self {
            Outgoing::Document { kind: crate::payload::DocumentKind::Co, .. } => Operation::SendCo,
            Outgoing::Document { kind: crate::payload::DocumentKind::Do, .. } => Operation::SendDo,
            Outgoing::Cancellation(_) => Operation::SendCancellation,
            Outgoing::CancellationStatus(_) => Operation::SendCancellationStatus,
            Outgoing::Feedback(_) => Operation::SendFeedback,
            Outgoing::Lookup(_) => Operation::GetCo,
        }
    }
}

/// The operations of the framework's data cluster (seed 3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    SendCo,
    SendCancellation,
    SendCancellationStatus,
    SendFeedback,
    /// Annex IV: a declaration of origin by an approved exporter.
    SendDo,
    /// Annex III: look-up of a CO by reference number and reference code.
    GetCo,
}

impl Operation {
    pub const ALL: [Operation; 6] = [
        Operation::SendCo,
        Operation::SendCancellation,
        Operation::SendCancellationStatus,
        Operation::SendFeedback,
        Operation::SendDo,
        Operation::GetCo,
    ];

    /// The name of the request (the element a binding carries it in).
    pub fn request_element(self) -> &'static str {
        match self {
            Operation::SendCo => "SendCORequest",
            Operation::SendCancellation => "SendCancellationRequest",
            Operation::SendCancellationStatus => "SendCancellationStatusRequest",
            Operation::SendFeedback => "SendFeedbackRequest",
            Operation::SendDo => "SendDORequest",
            Operation::GetCo => "GetCORequest",
        }
    }

    /// The operation's name (the WSDL's, and what the outbox stores).
    pub fn name(self) -> &'static str {
        match self {
            Operation::SendCo => "SendCO",
            Operation::SendCancellation => "SendCancellation",
            Operation::SendCancellationStatus => "SendCancellationStatus",
            Operation::SendFeedback => "SendFeedback",
            Operation::SendDo => "SendDO",
            Operation::GetCo => "GetCO",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }
}

/// The header inside every request and acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    pub message_id: Uuid,
    pub sent: DateTime<FixedOffset>,
    pub sender: String,
    pub receiver: String,
}

impl MessageHeader {
    pub fn new(sender: &str, receiver: &str, message_id: Uuid, now: DateTime<Utc>) -> Self {
        MessageHeader { message_id, sent: now.fixed_offset(), sender: sender.to_owned(), receiver: receiver.to_owned() }
    }
}

/// One error in a rejection: stable code, human description, element path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckError {
    pub code: String,
    pub description: String,
    pub path: String,
}

impl AckError {
    pub fn new(code: &str, description: impl Into<String>, path: impl Into<String>) -> Self {
        AckError { code: code.to_owned(), description: description.into(), path: path.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AckStatus {
    Accepted,
    Rejected,
}

/// BR.5: the answer to every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub header: MessageHeader,
    pub received_message_id: String,
    pub receipt: DateTime<Utc>,
    /// Base64 SHA-256 of the exact bytes received.
    pub received_digest: String,
    pub status: AckStatus,
    pub errors: Vec<AckError>,
}
