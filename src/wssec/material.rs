//! Key material as plain, thread-safe data (PEM/DER bytes), and the per-thread cache that turns
//! it into libxmlsec1 keys on the blocking threads that do XML security work.
//!
//! Must never: log or format private key bytes (`Debug` is redacted).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::x509::X509;

use super::ffi::Key;
use super::SecurityError;

/// Our own key pair for one purpose (signing, or decrypting what partners encrypt to us).
#[derive(Clone)]
pub struct KeyPair {
    private_pem: Arc<Vec<u8>>,
    pub certificate: Certificate,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("certificate", &self.certificate.subject)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl KeyPair {
    /// Checks that the private key (PEM) belongs to the certificate.
    pub fn from_pem(private_pem: Vec<u8>, certificate: Certificate) -> Result<Self, SecurityError> {
        let private = openssl::pkey::PKey::private_key_from_pem(&private_pem)
            .map_err(|e| SecurityError::KeyMaterial(format!("private key is not PEM: {e}")))?;
        let public = certificate.x509().public_key().map_err(|e| SecurityError::KeyMaterial(e.to_string()))?;
        if !private.public_eq(&public) {
            return Err(SecurityError::KeyMaterial(format!(
                "private key does not belong to certificate {}",
                certificate.subject
            )));
        }
        Ok(KeyPair { private_pem: Arc::new(private_pem), certificate })
    }

    pub(crate) fn private_key(&self) -> Result<Rc<Key>, SecurityError> {
        cached_key(&self.private_pem, || Key::private_from_pem(&self.private_pem))
    }
}

/// An X.509 certificate with the identifiers WS-Security refers to it by.
#[derive(Clone, Debug)]
pub struct Certificate {
    pub der: Arc<Vec<u8>>,
    pub subject: String,
    /// Issuer distinguished name as RFC 2253 text (for `ds:X509IssuerName`).
    pub issuer_rfc2253: String,
    /// Serial number in decimal (for `ds:X509SerialNumber`).
    pub serial_decimal: String,
    /// SHA-256 fingerprint, hex, for pinning and logs.
    pub fingerprint_sha256: String,
    public_pem: Arc<Vec<u8>>,
}

impl Certificate {
    pub fn from_pem(pem: &[u8]) -> Result<Self, SecurityError> {
        let x = X509::from_pem(pem).map_err(|e| SecurityError::KeyMaterial(format!("certificate is not PEM: {e}")))?;
        Self::from_x509(&x)
    }

    pub fn from_der(der: &[u8]) -> Result<Self, SecurityError> {
        let x = X509::from_der(der).map_err(|e| SecurityError::KeyMaterial(format!("certificate is not DER: {e}")))?;
        Self::from_x509(&x)
    }

    fn from_x509(x: &X509) -> Result<Self, SecurityError> {
        let err = |e: openssl::error::ErrorStack| SecurityError::KeyMaterial(e.to_string());
        let der = x.to_der().map_err(err)?;
        let serial = x.serial_number().to_bn().and_then(|b| b.to_dec_str().map(|s| s.to_string())).map_err(err)?;
        let fingerprint = x.digest(MessageDigest::sha256()).map_err(err)?;
        let public_pem = x.public_key().and_then(|k| k.public_key_to_pem()).map_err(err)?;
        Ok(Certificate {
            der: Arc::new(der),
            subject: rfc2253(x.subject_name()),
            issuer_rfc2253: rfc2253(x.issuer_name()),
            serial_decimal: serial,
            fingerprint_sha256: hex(&fingerprint),
            public_pem: Arc::new(public_pem),
        })
    }

    pub fn x509(&self) -> X509 {
        // The DER was produced by openssl from a parsed certificate, so it parses again.
        X509::from_der(&self.der).unwrap_or_else(|_| unreachable!("certificate DER round-trip"))
    }

    pub(crate) fn public_key(&self) -> Result<Rc<Key>, SecurityError> {
        cached_key(&self.public_pem, || Key::public_from_pem(&self.public_pem))
    }

    /// True if `issuer`/`serial` (as written by a partner) name this certificate.
    pub fn matches_issuer_serial(&self, issuer: &str, serial: &str) -> bool {
        serial.trim() == self.serial_decimal && normalize_dn(issuer) == normalize_dn(&self.issuer_rfc2253)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[allow(deprecated)] // as_utf8 is fine for DN attribute text
fn rfc2253(name: &openssl::x509::X509NameRef) -> String {
    let parts: Vec<String> = name
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().map(str::to_owned).unwrap_or_else(|_| e.object().to_string());
            let value = e.data().as_utf8().map(|s| s.to_string()).unwrap_or_default();
            format!("{key}={}", escape_dn_value(&value))
        })
        .collect();
    // RFC 2253 lists the most specific RDN first.
    parts.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || (i == 0 && (c == '#' || c == ' ')) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Order-insensitive, case- and space-insensitive form of a DN, for comparing what different
/// stacks write (`CN=x, O=y` vs `O=y,CN=x`, `emailAddress` vs `E`).
fn normalize_dn(dn: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' || c == ';' {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    let mut parts: Vec<String> = parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or(("", &p));
            let k = match k.trim().to_ascii_uppercase().as_str() {
                "EMAILADDRESS" | "E" => "EMAIL".to_owned(),
                "S" | "STATEORPROVINCENAME" => "ST".to_owned(),
                other => other.to_owned(),
            };
            format!("{k}={}", v.trim().to_lowercase())
        })
        .collect();
    parts.sort();
    parts
}

thread_local! {
    /// Parsed libxmlsec1 keys of this thread, by SHA-256 of their PEM. Keys are not `Send`; each
    /// blocking thread keeps its own copies so no message pays for PEM parsing.
    static KEYS: RefCell<HashMap<[u8; 32], Rc<Key>>> = RefCell::new(HashMap::new());
}

fn cached_key(
    pem: &Arc<Vec<u8>>,
    load: impl FnOnce() -> Result<Key, super::ffi::FfiError>,
) -> Result<Rc<Key>, SecurityError> {
    let id = openssl::sha::sha256(pem);
    if let Some(k) = KEYS.with(|m| m.borrow().get(&id).cloned()) {
        return Ok(k);
    }
    let key = Rc::new(load()?);
    KEYS.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= 64 {
            m.clear();
        }
        m.insert(id, key.clone());
    });
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_comparison_ignores_order_space_and_case() {
        assert_eq!(normalize_dn("CN=Dev CA, O=coconnect"), normalize_dn("o=coconnect,cn=dev ca"));
        assert_ne!(normalize_dn("CN=Dev CA,O=a"), normalize_dn("CN=Dev CA,O=b"));
        assert_eq!(normalize_dn("CN=a\\,b"), vec!["CN=a,b".to_owned()]);
    }
}
