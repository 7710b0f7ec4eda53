//! What we accept from and send to one partner, as data: the signature, digest and
//! canonicalisation algorithms, the key-reference styles, what must be signed, the Timestamp
//! rule, the data-encryption and key-transport algorithms and the form of the encrypted
//! content. [`inbound`](super::inbound) checks a message against a `Profile`,
//! [`outbound`](super::outbound) builds one to it, and [`ffi`](super::ffi) is told the
//! algorithms instead of choosing them.
//!
//! Today every partner has the one profile [`Profile::strict`] (with or without encryption);
//! each enum below has the single value that profile uses, so a new option is a new variant
//! here, its URI, and its libxmlsec1 transform in `ffi`.
//!
//! Must never: allow an algorithm that has no variant here, or make a choice from a message
//! (a profile comes from the partner's configuration only).

use super::ns;

/// `ds:SignatureMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    RsaSha256,
}

/// `ds:DigestMethod` of each Reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha256,
}

/// `ds:CanonicalizationMethod`, and the one Transform of each Reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canonicalization {
    ExclusiveC14n,
}

/// How the signature's `ds:KeyInfo` names the signing certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKeyReference {
    /// `wsse:SecurityTokenReference/wsse:Reference` to an X.509 v3 BinarySecurityToken in the
    /// same Security header.
    BinarySecurityToken,
}

/// `xenc:EncryptionMethod` of the EncryptedData.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataEncryption {
    Aes256Gcm,
}

/// `xenc:EncryptionMethod` of the EncryptedKey (RSA-OAEP with MGF1 and SHA-1 digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTransport {
    RsaOaepMgf1p,
}

/// How the EncryptedKey names the recipient's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptedKeyReference {
    /// `wsse:SecurityTokenReference/ds:X509Data/ds:X509IssuerSerial`.
    IssuerSerial,
}

/// What the EncryptedData replaces: the Body's content (`xenc#Content`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptedPart {
    BodyContent,
}

impl SignatureAlgorithm {
    pub fn uri(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaSha256 => ns::RSA_SHA256,
        }
    }
}

impl DigestAlgorithm {
    pub fn uri(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => ns::SHA256,
        }
    }
}

impl Canonicalization {
    pub fn uri(self) -> &'static str {
        match self {
            Canonicalization::ExclusiveC14n => ns::EXC_C14N,
        }
    }
}

impl DataEncryption {
    pub fn uri(self) -> &'static str {
        match self {
            DataEncryption::Aes256Gcm => ns::AES256_GCM,
        }
    }

    /// Length of the session key in bytes.
    pub fn key_bytes(self) -> usize {
        match self {
            DataEncryption::Aes256Gcm => 32,
        }
    }
}

impl KeyTransport {
    pub fn uri(self) -> &'static str {
        match self {
            KeyTransport::RsaOaepMgf1p => ns::RSA_OAEP_MGF1P,
        }
    }

    /// The OAEP digest (`ds:DigestMethod` inside the EncryptionMethod).
    pub fn oaep_digest_uri(self) -> &'static str {
        match self {
            KeyTransport::RsaOaepMgf1p => ns::SHA1,
        }
    }
}

impl EncryptedPart {
    /// The EncryptedData `Type`.
    pub fn type_uri(self) -> &'static str {
        match self {
            EncryptedPart::BodyContent => ns::ENC_CONTENT,
        }
    }
}

/// The signature a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignaturePolicy {
    pub method: SignatureAlgorithm,
    pub digest: DigestAlgorithm,
    pub c14n: Canonicalization,
    pub key_reference: SignatureKeyReference,
    pub signed_parts: SignedParts,
}

/// What the signature must cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedParts {
    /// The SOAP Body and the Timestamp in use (node identity, not just IDs).
    BodyAndTimestamp,
}

/// The Timestamp rule (its lifetime, clock skew and oldest accepted age are the gateway's
/// `[security]` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampRule {
    /// Exactly one `wsu:Timestamp`, signed; the replay cache keeps a message until it expires.
    RequiredAndSigned,
}

/// How the Body is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptionPolicy {
    pub data: DataEncryption,
    pub key_transport: KeyTransport,
    pub key_reference: EncryptedKeyReference,
    pub part: EncryptedPart,
}

/// Everything one direction of one partner's WS-Security agrees on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub signature: SignaturePolicy,
    pub timestamp: TimestampRule,
    /// `None`: signed only (acknowledgements, and partners whose profile is `sign`).
    pub encryption: Option<EncryptionPolicy>,
}

impl Profile {
    /// Today's profile: exclusive C14N, rsa-sha256, sha256 digests, a BinarySecurityToken
    /// reference, Body and Timestamp signed, a Timestamp required; with `encrypt`, the Body's
    /// content AES-256-GCM under an RSA-OAEP (mgf1p) key named by issuer and serial.
    pub fn strict(encrypt: bool) -> Self {
        Profile {
            signature: SignaturePolicy {
                method: SignatureAlgorithm::RsaSha256,
                digest: DigestAlgorithm::Sha256,
                c14n: Canonicalization::ExclusiveC14n,
                key_reference: SignatureKeyReference::BinarySecurityToken,
                signed_parts: SignedParts::BodyAndTimestamp,
            },
            timestamp: TimestampRule::RequiredAndSigned,
            encryption: encrypt.then_some(EncryptionPolicy {
                data: DataEncryption::Aes256Gcm,
                key_transport: KeyTransport::RsaOaepMgf1p,
                key_reference: EncryptedKeyReference::IssuerSerial,
                part: EncryptedPart::BodyContent,
            }),
        }
    }

    /// The same profile for a message that is signed only (acknowledgements, framework 4.4.3).
    pub fn signed_only(self) -> Self {
        Profile { encryption: None, ..self }
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile::strict(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strict_profile_is_todays_and_acknowledgements_are_signed_only() {
        let p = Profile::strict(true);
        assert_eq!(p.signature.method.uri(), ns::RSA_SHA256);
        assert_eq!(p.signature.digest.uri(), ns::SHA256);
        assert_eq!(p.signature.c14n.uri(), ns::EXC_C14N);
        let e = p.encryption.expect("encrypts");
        assert_eq!((e.data.uri(), e.data.key_bytes()), (ns::AES256_GCM, 32));
        assert_eq!((e.key_transport.uri(), e.key_transport.oaep_digest_uri()), (ns::RSA_OAEP_MGF1P, ns::SHA1));
        assert_eq!(e.part.type_uri(), ns::ENC_CONTENT);
        assert_eq!(p.signed_only(), Profile::strict(false));
        assert_eq!(Profile::default(), Profile::strict(false));
    }
}
