//! The SOAP binding: the message vocabulary of `crate::message` as `urn:coconnect:soap:v1`
//! XML (requests, the business content of each operation, acknowledgements), a verified
//! request read into `message::request::InboundRequest`, SOAP 1.1/1.2 faults from a
//! `Refusal`, the WSDL with its WS-SecurityPolicy, and the evidence cut retention keeps.
//!
//! Owns: reading request elements into typed values and writing acknowledgements and faults.
//! Must never: do cryptography, touch the database or decide business outcomes.

pub mod business;
pub mod evidence;
pub mod fault;
pub mod messages;
pub mod policy;
pub mod request;
pub mod wsdl;
mod xmlread;

/// Namespace of coconnect's SOAP messages.
pub const NS: &str = "urn:coconnect:soap:v1";
