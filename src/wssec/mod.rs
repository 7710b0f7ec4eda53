//! WS-Security 1.1, X.509 token profile, over SOAP 1.1/1.2 envelopes.
//!
//! Owns: building secured envelopes ([`outbound`]), the receipt pipeline that turns untrusted
//! bytes into a [`inbound::VerifiedMessage`] ([`inbound`]), certificate trust ([`trust`]), key
//! material ([`material`]) and the fault codes of security failures ([`error`]). All libxml2 and
//! libxmlsec1 access goes through [`ffi`], the only module with `unsafe`.
//!
//! Must never: read the payload's business content, touch the database (the replay cache is the
//! caller's, fed with [`inbound::VerifiedMessage::replay_key`]), or decide which partner a
//! request comes from (the caller passes the partner's trust settings in).

pub mod error;
pub(crate) mod ffi;
pub mod inbound;
pub mod limits;
pub mod material;
pub mod outbound;
pub mod profile;
pub mod threads;
pub mod trust;

pub use error::SecurityError;
pub use profile::Profile;
pub use threads::Precedence;

/// Runs XML security work (libxml2, libxmlsec1) on one of the XML security threads
/// ([`threads`]), work in progress before new work (`precedence`): libxml documents are neither
/// `Send` nor to be held across an `.await`, and the work is CPU-bound. The one entry point
/// every async caller uses; a task that fails is our own failure.
pub async fn on_xml_security_thread<T, F>(precedence: Precedence, work: F) -> Result<T, SecurityError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SecurityError> + Send + 'static,
{
    threads::run(precedence, work).await
}

/// Namespace and algorithm URIs of the profile.
pub mod ns {
    pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
    pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
    pub const WSSE: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
    pub const WSU: &str = super::ffi::NS_WSU;
    pub const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
    pub const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
    pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
    pub const WSSE11: &str = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd";
    pub const C14N11: &str = "http://www.w3.org/2006/12/xml-c14n11";
    pub const C14N10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
    pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
    pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    pub const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
    pub const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
    pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
    pub const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
    pub const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";
    pub const AES128_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
    pub const AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
    pub const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
    pub const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
    pub const ENC_CONTENT: &str = "http://www.w3.org/2001/04/xmlenc#Content";
    pub const ENC_ELEMENT: &str = "http://www.w3.org/2001/04/xmlenc#Element";
    pub const ENC_KEY_TYPE: &str = "http://www.w3.org/2001/04/xmlenc#EncryptedKey";
    pub const X509V3: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3";
    pub const X509_PKIPATH: &str =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509PKIPathv1";
    pub const X509_SKI: &str =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier";
    pub const THUMBPRINT_SHA1: &str =
        "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1";
    pub const ENCRYPTED_KEY_TOKEN: &str =
        "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#EncryptedKey";
    pub const BASE64_BINARY: &str =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";
    /// WS-Addressing 1.0 (W3C), and the 2004/08 submission WCF and older stacks use.
    pub const WSA: &str = "http://www.w3.org/2005/08/addressing";
    pub const WSA_2004: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
}

/// SOAP version of an envelope; faults and `mustUnderstand` are written to match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapVersion {
    V11,
    V12,
}

impl SoapVersion {
    pub fn namespace(self) -> &'static str {
        match self {
            SoapVersion::V11 => ns::SOAP11,
            SoapVersion::V12 => ns::SOAP12,
        }
    }

    pub fn from_namespace(uri: &str) -> Option<Self> {
        match uri {
            ns::SOAP11 => Some(SoapVersion::V11),
            ns::SOAP12 => Some(SoapVersion::V12),
            _ => None,
        }
    }

    /// HTTP content type of a message in this version.
    pub fn content_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml; charset=utf-8",
            SoapVersion::V12 => "application/soap+xml; charset=utf-8",
        }
    }
}

#[cfg(test)]
mod tests;
