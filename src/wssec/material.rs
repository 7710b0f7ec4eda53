//! Key material as plain, thread-safe data (PEM/DER bytes), and the per-thread cache that turns
//! it into libxmlsec1 keys on the XML security threads (`super::threads`).
//!
//! Must never: log or format private key bytes (`Debug` is redacted).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, LazyLock, Mutex};

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
    /// SHA-1 of the DER (WS-Security 1.1 `ThumbprintSHA1`).
    pub thumbprint_sha1: [u8; 20],
    /// The Subject Key Identifier: the extension's value, or (without one) the SHA-1 of the
    /// subject public key's bit string (RFC 5280 §4.2.1.2 method 1), as WSS4J and WCF compute it.
    pub subject_key_identifier: Vec<u8>,
    /// Whether the key is an EC key (else RSA): which signature method it can make.
    pub is_ec: bool,
    public_pem: Arc<Vec<u8>>,
    /// The parsed certificate, shared (OpenSSL counts references): parsing it again for each
    /// chain check would cost what the cache below saves.
    x509: X509,
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

    /// [`Self::from_der`] for a certificate a partner sends with every message (a token, a TLS
    /// client certificate): parsed once per process, a copy handed out after that. OpenSSL 3
    /// decodes the public key of each certificate it parses through its provider decoders,
    /// which cost about as much as verifying the message's signature. Only what parsed is
    /// kept, keyed by the exact bytes; whether to trust it is still decided for each message.
    pub fn from_der_cached(der: &[u8]) -> Result<Self, SecurityError> {
        if let Some(c) = lock_parsed().get(der) {
            return Ok(c.clone());
        }
        let parsed = Self::from_der(der)?;
        // A certificate is one or two kilobytes; what is far larger is not kept (a message
        // could otherwise pin megabytes in the cache before its signature is even checked).
        if der.len() > PARSED_MAX_DER {
            return Ok(parsed);
        }
        let mut cache = lock_parsed();
        if cache.len() >= PARSED_CAPACITY {
            cache.clear();
        }
        cache.insert(der.to_vec(), parsed.clone());
        Ok(parsed)
    }

    fn from_x509(x: &X509) -> Result<Self, SecurityError> {
        let err = |e: openssl::error::ErrorStack| SecurityError::KeyMaterial(e.to_string());
        let der = x.to_der().map_err(err)?;
        let serial = x.serial_number().to_bn().and_then(|b| b.to_dec_str().map(|s| s.to_string())).map_err(err)?;
        let fingerprint = x.digest(MessageDigest::sha256()).map_err(err)?;
        let public = x.public_key().map_err(err)?;
        let public_pem = public.public_key_to_pem().map_err(err)?;
        let thumbprint_sha1 = openssl::sha::sha1(&der);
        let subject_key_identifier = match x.subject_key_id() {
            Some(ski) => ski.as_slice().to_vec(),
            None => openssl::sha::sha1(&subject_public_key_bits(&public.public_key_to_der().map_err(err)?)).to_vec(),
        };
        let is_ec = public.id() == openssl::pkey::Id::EC;
        Ok(Certificate {
            thumbprint_sha1,
            subject_key_identifier,
            is_ec,
            der: Arc::new(der),
            subject: rfc2253(x.subject_name()),
            issuer_rfc2253: rfc2253(x.issuer_name()),
            serial_decimal: serial,
            fingerprint_sha256: hex(&fingerprint),
            public_pem: Arc::new(public_pem),
            x509: x.clone(),
        })
    }

    pub fn x509(&self) -> X509 {
        self.x509.clone()
    }

    pub(crate) fn public_key(&self) -> Result<Rc<Key>, SecurityError> {
        cached_key(&self.public_pem, || Key::public_from_pem(&self.public_pem))
    }

    /// True if `issuer`/`serial` (as written by a partner) name this certificate.
    pub fn matches_issuer_serial(&self, issuer: &str, serial: &str) -> bool {
        serial.trim() == self.serial_decimal && normalize_dn(issuer) == normalize_dn(&self.issuer_rfc2253)
    }
}

/// The contents of the BIT STRING of a DER `SubjectPublicKeyInfo` (the key bits the SKI hashes),
/// or the whole input when it does not read as one.
fn subject_public_key_bits(spki: &[u8]) -> Vec<u8> {
    der_children(spki)
        .and_then(|parts| parts.into_iter().nth(1))
        .filter(|(tag, _)| *tag == 0x03)
        .and_then(|(_, bits)| bits.get(1..).map(<[u8]>::to_vec)) // skip the unused-bits byte
        .unwrap_or_else(|| spki.to_vec())
}

/// The (tag, contents) of the elements of a DER SEQUENCE, or `None` if it is not one.
pub(crate) fn der_children(der: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let (tag, contents, rest) = der_element(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let mut left = contents;
    while !left.is_empty() {
        let (tag, body, rest) = der_element(left)?;
        out.push((tag, body));
        left = rest;
    }
    Some(out)
}

/// The elements of a DER SEQUENCE as whole encodings (tag and length included).
pub(crate) fn der_sequence_elements(der: &[u8]) -> Option<Vec<&[u8]>> {
    let (tag, contents, rest) = der_element(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let mut left = contents;
    while !left.is_empty() {
        let (_, body, rest) = der_element(left)?;
        let whole = left.len() - rest.len();
        debug_assert!(whole >= body.len());
        out.push(&left[..whole]);
        left = rest;
    }
    Some(out)
}

/// One DER element: its tag, its contents and what follows it.
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
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
    // RFC 4514: `\,` escapes one character, `\E2\80\94` a byte of the UTF-8 value (what
    // libxmlsec1 and OpenSSL write for non-ASCII text). Bytes are gathered, then read as UTF-8.
    let mut parts = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut chars = dn.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let mut hex = String::new();
            while hex.len() < 2 && chars.peek().is_some_and(|h| h.is_ascii_hexdigit()) {
                hex.push(chars.next().unwrap_or('0'));
            }
            match (hex.len(), u8::from_str_radix(&hex, 16)) {
                (2, Ok(byte)) => current.push(byte),
                _ => {
                    current.extend_from_slice(hex.as_bytes());
                    if hex.is_empty() {
                        if let Some(next) = chars.next() {
                            let mut buf = [0u8; 4];
                            current.extend_from_slice(next.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                }
            }
        } else if c == ',' || c == ';' {
            parts.push(String::from_utf8_lossy(&std::mem::take(&mut current)).into_owned());
        } else {
            let mut buf = [0u8; 4];
            current.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    parts.push(String::from_utf8_lossy(&current).into_owned());
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

/// How many parsed certificates [`Certificate::from_der_cached`] keeps: far more than the
/// certificates of all partners in use; a sender of ever new certificates only empties it.
const PARSED_CAPACITY: usize = 256;

/// The largest certificate [`Certificate::from_der_cached`] keeps (DER bytes).
const PARSED_MAX_DER: usize = 8 * 1024;

static PARSED: LazyLock<Mutex<HashMap<Vec<u8>, Certificate>>> = LazyLock::new(Default::default);

/// The cache of parsed certificates; a panic elsewhere while it was held leaves nothing half
/// written in it (an insert or a clear), so a poisoned lock is used as it is.
fn lock_parsed() -> std::sync::MutexGuard<'static, HashMap<Vec<u8>, Certificate>> {
    PARSED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

thread_local! {
    /// Parsed libxmlsec1 keys of this thread, by SHA-256 of their PEM. Keys are not `Send`; each
    /// XML security thread keeps its own copies so no message pays for PEM parsing.
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
    fn der_sequences_are_split_and_bad_ones_refused() {
        // SEQUENCE { INTEGER 1, BIT STRING 00 ff }
        let seq = [0x30, 0x07, 0x02, 0x01, 0x01, 0x03, 0x02, 0x00, 0xff];
        let parts = der_children(&seq).expect("sequence");
        assert_eq!(parts, vec![(0x02, &[1u8][..]), (0x03, &[0u8, 0xff][..])]);
        assert_eq!(der_sequence_elements(&seq).expect("elements"), vec![&seq[2..5], &seq[5..]]);
        assert_eq!(subject_public_key_bits(&seq), vec![0xff]);
        assert!(der_children(&[0x30, 0x05, 0x02]).is_none(), "length past the end");
        assert!(der_children(&[0x31, 0x00]).is_none(), "not a SEQUENCE");
        assert!(der_children(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }

    /// A fresh self-signed EC certificate, DER.
    fn self_signed_der(cn: &str) -> Vec<u8> {
        use openssl::ec::{EcGroup, EcKey};
        use openssl::pkey::PKey;
        let group = EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).expect("curve");
        let key = PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("pkey");
        let mut name = openssl::x509::X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", cn).expect("cn");
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().expect("builder");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).expect("t")).expect("nb");
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).expect("t")).expect("na");
        b.sign(&key, MessageDigest::sha256()).expect("sign");
        b.build().to_der().expect("der")
    }

    /// One test: the cache is process-wide, and the bound's part empties it.
    #[test]
    fn a_certificate_sent_again_is_not_parsed_again_and_the_cache_stays_bounded() {
        let der = self_signed_der("cache test");
        let first = Certificate::from_der_cached(&der).expect("parsed");
        let again = Certificate::from_der_cached(&der).expect("cached");
        assert!(Arc::ptr_eq(&first.der, &again.der), "the second look-up is the parsed copy");
        assert!(!Arc::ptr_eq(&first.der, &Certificate::from_der(&der).expect("uncached").der));
        assert_eq!(again.subject, "CN=cache test");
        assert_eq!(again.x509().to_der().expect("der"), der, "the kept X509 is this certificate");
        // What does not parse is refused each time, and nothing is kept for it.
        let broken = &der[..der.len() - 1];
        assert!(Certificate::from_der_cached(broken).is_err());
        assert!(!lock_parsed().contains_key(broken));
        for i in 0..PARSED_CAPACITY + 3 {
            Certificate::from_der_cached(&self_signed_der(&format!("bound {i}"))).expect("parsed");
            assert!(lock_parsed().len() <= PARSED_CAPACITY);
        }
    }

    #[test]
    fn dn_comparison_ignores_order_space_and_case() {
        assert_eq!(normalize_dn("CN=Dev CA, O=coconnect"), normalize_dn("o=coconnect,cn=dev ca"));
        assert_ne!(normalize_dn("CN=Dev CA,O=a"), normalize_dn("CN=Dev CA,O=b"));
        assert_eq!(normalize_dn("CN=a\\,b"), vec!["CN=a,b".to_owned()]);
        // Non-ASCII as escaped UTF-8 bytes (libxmlsec1, OpenSSL) or as itself (ours).
        assert_eq!(normalize_dn("O=dev \\E2\\80\\94 x,CN=ca"), normalize_dn("CN=ca,O=dev \u{2014} x"));
    }
}
