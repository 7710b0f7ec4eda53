//! The SOAP layer: the coconnect message vocabulary (`urn:coconnect:soap:v1`), the business
//! content of each operation, acknowledgements (BR.5), SOAP 1.1/1.2 faults and the WSDL served
//! to partners.
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
