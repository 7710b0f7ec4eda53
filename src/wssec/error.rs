//! Security failures, each with a stable code and the WS-Security fault QName it maps to.
//! The detail string is for our logs; a partner gets the code and a short reason only.

use super::limits::LimitError;

/// Why an inbound message failed the WS-Security checks (or an outbound one could not be built).
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("XML refused before parsing: {0}")]
    Limits(#[from] LimitError),
    #[error("XML is not well-formed: {0}")]
    Malformed(String),
    #[error("document type declarations are not allowed")]
    Dtd,
    #[error("not a SOAP 1.1 or 1.2 envelope: {0}")]
    NotSoap(String),
    #[error("duplicate ID {0:?}")]
    DuplicateId(String),
    #[error("no wsse:Security header")]
    MissingSecurity,
    #[error("unexpected element in the security header or envelope: {0}")]
    UnexpectedElement(String),
    #[error("message body is not encrypted but the partner profile requires encryption")]
    NotEncrypted,
    #[error("algorithm not allowed: {0}")]
    Algorithm(String),
    #[error("could not decrypt: {0}")]
    Decrypt(String),
    #[error("message is not signed: {0}")]
    Unsigned(String),
    #[error("signature is invalid: {0}")]
    SignatureInvalid(String),
    #[error("signing certificate is not trusted: {0}")]
    UntrustedCertificate(String),
    #[error("signature does not cover {0}")]
    WrongNodeSigned(&'static str),
    #[error("timestamp has expired: {0}")]
    Expired(String),
    #[error("timestamp is in the future: {0}")]
    FutureTimestamp(String),
    #[error("invalid timestamp: {0}")]
    BadTimestamp(String),
    #[error("message replayed (signature seen before)")]
    Replay,
    #[error("key or certificate problem: {0}")]
    KeyMaterial(String),
    #[error("could not build the secured message: {0}")]
    Build(String),
}

impl SecurityError {
    /// Stable error code reported to the partner and in our logs.
    pub fn code(&self) -> &'static str {
        match self {
            SecurityError::Limits(LimitError::TooLarge(_)) => "WSS-TOO-LARGE",
            SecurityError::Limits(LimitError::Doctype) | SecurityError::Dtd => "WSS-DTD",
            SecurityError::Limits(LimitError::Entity(_)) => "WSS-ENTITY",
            SecurityError::Limits(LimitError::Encoding(_)) => "WSS-ENCODING",
            SecurityError::Limits(LimitError::Malformed(..)) | SecurityError::Malformed(_) => "WSS-MALFORMED",
            SecurityError::Limits(_) => "WSS-LIMIT",
            SecurityError::NotSoap(_) => "WSS-NOT-SOAP",
            SecurityError::DuplicateId(_) => "WSS-DUPLICATE-ID",
            SecurityError::MissingSecurity => "WSS-MISSING-SECURITY",
            SecurityError::UnexpectedElement(_) => "WSS-UNEXPECTED-ELEMENT",
            SecurityError::NotEncrypted => "WSS-NOT-ENCRYPTED",
            SecurityError::Algorithm(_) => "WSS-ALGORITHM",
            SecurityError::Decrypt(_) => "WSS-DECRYPT",
            SecurityError::Unsigned(_) => "WSS-UNSIGNED",
            SecurityError::SignatureInvalid(_) => "WSS-SIGNATURE-INVALID",
            SecurityError::UntrustedCertificate(_) => "WSS-UNTRUSTED-CERT",
            SecurityError::WrongNodeSigned(_) => "WSS-WRONG-NODE-SIGNED",
            SecurityError::Expired(_) => "WSS-EXPIRED",
            SecurityError::FutureTimestamp(_) => "WSS-FUTURE-TIMESTAMP",
            SecurityError::BadTimestamp(_) => "WSS-BAD-TIMESTAMP",
            SecurityError::Replay => "WSS-REPLAY",
            SecurityError::KeyMaterial(_) => "WSS-KEY",
            SecurityError::Build(_) => "WSS-BUILD",
        }
    }

    /// The WS-Security 1.0 fault code (local part, namespace wsse) for a SOAP Fault.
    pub fn fault_subcode(&self) -> &'static str {
        match self {
            SecurityError::Algorithm(_) => "UnsupportedAlgorithm",
            SecurityError::UntrustedCertificate(_) => "InvalidSecurityToken",
            SecurityError::SignatureInvalid(_) | SecurityError::WrongNodeSigned(_) | SecurityError::Decrypt(_) => {
                "FailedCheck"
            }
            SecurityError::Expired(_) | SecurityError::FutureTimestamp(_) | SecurityError::Replay => "MessageExpired",
            _ => "InvalidSecurity",
        }
    }

    /// A short reason safe to send to a partner (no key material, no internal detail).
    pub fn public_reason(&self) -> String {
        match self {
            // Internal library messages stay in our logs.
            SecurityError::Decrypt(_) => "the message could not be decrypted".into(),
            SecurityError::SignatureInvalid(_) => "the signature does not verify".into(),
            SecurityError::KeyMaterial(_) | SecurityError::Build(_) => "internal security error".into(),
            other => other.to_string(),
        }
    }
}

impl From<super::ffi::FfiError> for SecurityError {
    fn from(e: super::ffi::FfiError) -> Self {
        use super::ffi::FfiError as F;
        match e {
            F::Malformed(m) => SecurityError::Malformed(m),
            F::Dtd => SecurityError::Dtd,
            F::DuplicateId(id) => SecurityError::DuplicateId(id),
            F::UnknownId(id) => SecurityError::UnexpectedElement(format!("reference to unknown ID {id}")),
            F::Verify(m) => SecurityError::SignatureInvalid(m),
            F::Decrypt(m) => SecurityError::Decrypt(m),
            F::Key(m) | F::Init(m) => SecurityError::KeyMaterial(m),
            F::Sign(m) | F::Encrypt(m) => SecurityError::Build(m),
            F::TooLarge => SecurityError::Limits(LimitError::TooLarge(usize::MAX)),
        }
    }
}
