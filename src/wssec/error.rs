//! Security failures, each with a stable code, the WS-Security fault QName it maps to and who
//! is at fault. The detail string is for our logs and audit records only: a partner gets the
//! code and one fixed sentence per code ([`SecurityError::public_reason`]), never a library
//! message, a configured value or an OpenSSL verification reason.

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
    #[error("mandatory header blocks not understood: {}", .0.iter().map(|(n, l)| format!("{{{n}}}{l}")).collect::<Vec<_>>().join(", "))]
    MustUnderstand(Vec<(String, String)>),
    #[error("security token or key reference not supported: {0}")]
    UnsupportedToken(String),
    #[error("encrypted content is not of the required form: {0}")]
    EncryptedStructure(String),
    /// Under a profile that accepts AES-CBC: the message failed to decrypt or its signature
    /// failed, answered alike (the detail says which, in our log only).
    #[error("decryption or signature check failed: {0}")]
    CheckFailed(String),
    #[error("internal failure: {0}")]
    Internal(String),
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
            SecurityError::MustUnderstand(_) => "MSG-MUST-UNDERSTAND",
            SecurityError::UnsupportedToken(_) => "WSS-UNSUPPORTED-TOKEN",
            SecurityError::EncryptedStructure(_) => "WSS-ENCRYPTED-STRUCTURE",
            SecurityError::CheckFailed(_) => "WSS-CHECK-FAILED",
            SecurityError::Internal(_) => "GW-INTERNAL",
            SecurityError::KeyMaterial(_) => "WSS-KEY",
            SecurityError::Build(_) => "WSS-BUILD",
        }
    }

    /// The WS-Security 1.0 fault code (local part, namespace wsse) for a SOAP Fault.
    pub fn fault_subcode(&self) -> &'static str {
        match self {
            SecurityError::Algorithm(_) => "UnsupportedAlgorithm",
            SecurityError::UnsupportedToken(_) => "UnsupportedSecurityToken",
            SecurityError::UntrustedCertificate(_) => "InvalidSecurityToken",
            SecurityError::SignatureInvalid(_)
            | SecurityError::WrongNodeSigned(_)
            | SecurityError::Decrypt(_)
            | SecurityError::CheckFailed(_) => "FailedCheck",
            SecurityError::Expired(_) | SecurityError::FutureTimestamp(_) => "MessageExpired",
            _ => "InvalidSecurity",
        }
    }

    /// Whether the failure is ours (our key, a context or template we build, a task that
    /// failed): the partner gets a Receiver fault `GW-INTERNAL` and retries, instead of a
    /// Sender fault its gateway would take as a final rejection of the message.
    pub fn is_internal(&self) -> bool {
        matches!(self, SecurityError::KeyMaterial(_) | SecurityError::Build(_) | SecurityError::Internal(_))
    }

    /// Whether a fresh attempt of the same message can succeed: our own failures, a clock or
    /// transit problem with the Timestamp, or certificates out of step between the two gateways
    /// (a key roll-over not yet taken over), which the operators put right.
    pub fn retry_cures(&self) -> bool {
        use SecurityError as E;
        match self {
            E::Expired(_)
            | E::FutureTimestamp(_)
            | E::BadTimestamp(_)
            | E::UntrustedCertificate(_)
            | E::Decrypt(_)
            | E::KeyMaterial(_)
            | E::Build(_)
            // Under CBC a decryption failure (a key roll-over out of step, like `Decrypt`)
            // cannot be told from a bad signature: retried, as `Decrypt` is.
            | E::CheckFailed(_)
            | E::Internal(_) => true,
            E::Limits(_)
            | E::Malformed(_)
            | E::Dtd
            | E::NotSoap(_)
            | E::DuplicateId(_)
            | E::MissingSecurity
            | E::UnexpectedElement(_)
            | E::NotEncrypted
            | E::Algorithm(_)
            | E::Unsigned(_)
            | E::SignatureInvalid(_)
            | E::WrongNodeSigned(_)
            | E::MustUnderstand(_)
            | E::UnsupportedToken(_)
            | E::EncryptedStructure(_) => false,
        }
    }

    /// Whether, under the CBC countermeasures, this failure is answered as
    /// [`SecurityError::CheckFailed`]: everything that could depend on a decrypted plaintext.
    /// The Timestamp (in the clear) and our own failures keep their own answer.
    pub fn cbc_uniform(&self) -> bool {
        !matches!(
            self,
            SecurityError::Expired(_)
                | SecurityError::FutureTimestamp(_)
                | SecurityError::BadTimestamp(_)
                | SecurityError::Internal(_)
                | SecurityError::KeyMaterial(_)
                | SecurityError::Build(_)
        )
    }

    /// One error of every code (details empty), for the registry of refusals.
    pub fn every_kind() -> Vec<SecurityError> {
        use SecurityError as E;
        let s = String::new;
        vec![
            E::Limits(LimitError::TooLarge(0)),
            E::Limits(LimitError::Doctype),
            E::Limits(LimitError::Entity(s())),
            E::Limits(LimitError::Encoding(s())),
            E::Limits(LimitError::Malformed(0, s())),
            E::Limits(LimitError::TooDeep(0)),
            E::Malformed(s()),
            E::Dtd,
            E::NotSoap(s()),
            E::DuplicateId(s()),
            E::MissingSecurity,
            E::UnexpectedElement(s()),
            E::NotEncrypted,
            E::Algorithm(s()),
            E::Decrypt(s()),
            E::Unsigned(s()),
            E::SignatureInvalid(s()),
            E::UntrustedCertificate(s()),
            E::WrongNodeSigned(""),
            E::Expired(s()),
            E::FutureTimestamp(s()),
            E::BadTimestamp(s()),
            E::MustUnderstand(Vec::new()),
            E::UnsupportedToken(s()),
            E::EncryptedStructure(s()),
            E::CheckFailed(s()),
            E::Internal(s()),
            E::KeyMaterial(s()),
            E::Build(s()),
        ]
    }

    /// The code a partner is told: [`Self::code`], or `GW-INTERNAL` for our own failures.
    pub fn public_code(&self) -> &'static str {
        if self.is_internal() {
            "GW-INTERNAL"
        } else {
            self.code()
        }
    }

    /// The one fixed, actionable sentence a partner gets for [`Self::public_code`]: never the
    /// detail (library messages, configured subjects, OpenSSL's reasons), which this request's
    /// log line and audit record carry. Exhaustive, so a new variant needs its own sentence.
    pub fn public_reason(&self) -> &'static str {
        use LimitError as L;
        use SecurityError as E;
        match self {
            E::Limits(L::TooLarge(_)) => "the message is over the size limit",
            E::Limits(L::Doctype) | E::Dtd => "document type declarations are not allowed",
            E::Limits(L::Entity(_)) => "entity references other than the predefined ones are not allowed",
            E::Limits(L::Encoding(_)) => "the message must be encoded in UTF-8",
            E::Limits(L::Malformed(..)) | E::Malformed(_) => "the message is not well-formed XML",
            E::Limits(_) => {
                "the message exceeds a structural limit (depth, attributes, elements) or has a processing instruction"
            }
            E::NotSoap(_) => "not a SOAP 1.1 or 1.2 envelope with an optional Header of qualified blocks and one Body",
            E::DuplicateId(_) => "two elements carry the same ID",
            E::MissingSecurity => "no wsse:Security header for this receiver",
            E::UnexpectedElement(_) => {
                "the security header, signature or Body contains an element or reference that is not allowed"
            }
            E::NotEncrypted => "the Body must be encrypted for this partner",
            E::Algorithm(_) => "an algorithm outside the agreed security profile was used",
            E::Decrypt(_) => "the message could not be decrypted with our key; encrypt to our current encryption certificate",
            E::Unsigned(_) => "the message is not signed",
            E::SignatureInvalid(_) => "the signature does not verify",
            E::UntrustedCertificate(_) => {
                "the signing certificate is not trusted for this partner (not agreed, expired or not yet valid)"
            }
            E::WrongNodeSigned(_) => {
                "the signature must cover the SOAP Body and the Timestamp (and what else the security profile requires)"
            }
            E::Expired(_) => "the Timestamp has expired; check the sender's clock",
            E::FutureTimestamp(_) => "the Timestamp is in the future; check the sender's clock",
            E::BadTimestamp(_) => {
                "the message needs one wsu:Timestamp with Created and Expires within the allowed lifetime"
            }
            E::MustUnderstand(_) => "a header block marked mustUnderstand is not understood by this receiver",
            E::UnsupportedToken(_) => {
                "the security token type or key reference style is not the one agreed in this partner's security profile"
            }
            E::EncryptedStructure(_) => {
                "the encrypted content must be the Body's one xenc:EncryptedData (and, where agreed, the signature), named in the EncryptedKey's ReferenceList"
            }
            E::CheckFailed(_) => "the message could not be decrypted with our key or its signature does not verify",
            E::KeyMaterial(_) | E::Build(_) | E::Internal(_) => INTERNAL_REASON,
        }
    }
}

/// What a partner is told of any failure of ours (`GW-INTERNAL`).
pub const INTERNAL_REASON: &str = "internal error of the receiving gateway; retry later";

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
            F::Key(m) => SecurityError::KeyMaterial(m),
            F::Init(m) | F::Context(m) => SecurityError::Internal(m),
            F::Sign(m) | F::Encrypt(m) => SecurityError::Build(m),
            F::TooLarge => SecurityError::Limits(LimitError::TooLarge(usize::MAX)),
        }
    }
}
