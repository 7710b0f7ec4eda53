//! The signature of an inbound message before it is verified: the shape of `ds:Signature` and
//! `ds:SignedInfo` against the profile (which algorithms, transforms and references), and the
//! signer's certificate from the key reference the profile allows: a token or key identifier
//! that carries the certificate (then checked against the partner's trust), or a reference
//! that only names one (issuer and serial, SKI, thumbprint: then only the partner's pinned
//! certificates can be named).
//!
//! Must never: take a key from a message without checking the certificate against the
//! partner's trust, or resolve a naming reference against anything but pinned certificates.

use std::collections::HashSet;

use base64::Engine;

use super::super::material::{der_sequence_elements, Certificate};
use super::super::profile::{
    Canonicalization, DigestAlgorithm, ReferenceTransforms, SignatureAccept, SignatureAlgorithm, SignatureKeyReference,
};
use super::super::trust::PartnerTrust;
use super::super::{ns, SecurityError};
use super::header::{is_bare_id_reference, single_child};
use crate::wssec::ffi::Node;

/// Most `ds:Reference`s a signature may carry (Body, Timestamp, token, WS-Addressing headers).
const MAX_REFERENCES: usize = 10;

/// The algorithms a checked SignedInfo uses (each allowed by the profile): exactly these are
/// enabled in libxmlsec1 for its verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UsedAlgorithms {
    pub c14n: Vec<Canonicalization>,
    pub method: SignatureAlgorithm,
    pub digests: Vec<DigestAlgorithm>,
    pub enveloped: bool,
}

/// SignedInfo may use only the profile's canonicalisation, signature and digest algorithms and
/// same-document references by bare ID (no XPointer, no empty URI), at most
/// [`MAX_REFERENCES`], each to a different ID and with the profile's transforms only (one
/// canonicalisation, or `enveloped-signature` then one where allowed): libxmlsec1 digests every
/// Reference before it checks the SignatureValue, and each extra transform re-parses and
/// re-canonicalises the referenced subtree, so a forged signature could otherwise buy
/// unbounded work.
pub(super) fn check_signed_info(
    signature: &Node<'_>,
    expected: &SignatureAccept,
) -> Result<UsedAlgorithms, SecurityError> {
    // Exactly SignedInfo, SignatureValue, KeyInfo: no ds:Object (and so no Manifest).
    let children: Vec<String> =
        signature
            .child_elements()
            .iter()
            .map(|c| {
                if c.namespace() == ns::DS {
                    c.local_name()
                } else {
                    format!("{{{}}}{}", c.namespace(), c.local_name())
                }
            })
            .collect();
    if children != ["SignedInfo", "SignatureValue", "KeyInfo"] {
        return Err(SecurityError::UnexpectedElement(format!(
            "ds:Signature must contain SignedInfo, SignatureValue, KeyInfo; has {children:?}"
        )));
    }
    let signed_info = single_child(signature, ns::DS, "SignedInfo")?;
    let c14n_of = |uri: &str| Canonicalization::ALL.into_iter().find(|c| c.uri() == uri && expected.c14n.contains(c));
    let mut used_c14n = Vec::new();
    let mut method = None;
    let mut digests = Vec::new();
    let mut enveloped = false;
    let mut references = 0;
    let mut referenced = HashSet::new();
    for child in signed_info.child_elements() {
        if child.namespace() != ns::DS {
            return Err(SecurityError::UnexpectedElement(format!("{} in SignedInfo", child.local_name())));
        }
        let alg = child.attribute("", "Algorithm").unwrap_or_default();
        match child.local_name().as_str() {
            "CanonicalizationMethod" => {
                let c = c14n_of(&alg).ok_or(SecurityError::Algorithm(alg))?;
                used_c14n.push(c);
            }
            "SignatureMethod" => {
                let m = SignatureAlgorithm::ALL
                    .into_iter()
                    .find(|m| m.uri() == alg && expected.methods.contains(m))
                    .ok_or(SecurityError::Algorithm(alg))?;
                if method.replace(m).is_some() {
                    return Err(SecurityError::UnexpectedElement("two ds:SignatureMethod".into()));
                }
            }
            "Reference" => {
                references += 1;
                let uri = child.attribute("", "URI").unwrap_or_default();
                if !is_bare_id_reference(&uri) {
                    return Err(SecurityError::UnexpectedElement(format!("reference URI {uri:?} (only #id allowed)")));
                }
                if !referenced.insert(uri.clone()) {
                    return Err(SecurityError::UnexpectedElement(format!("two references to {uri:?}")));
                }
                let mut transforms_seen = 0;
                for part in child.child_elements() {
                    match part.local_name().as_str() {
                        "Transforms" => {
                            transforms_seen += 1;
                            let listed: Vec<String> = part
                                .child_elements()
                                .iter()
                                .map(|t| t.attribute("", "Algorithm").unwrap_or_default())
                                .collect();
                            let (shape, c14n) = match listed.as_slice() {
                                [c] => (ReferenceTransforms::C14n, c),
                                [e, c] if e == ns::ENVELOPED => (ReferenceTransforms::EnvelopedThenC14n, c),
                                _ => {
                                    return Err(SecurityError::UnexpectedElement(format!(
                                        "reference {uri:?} has transforms {listed:?}"
                                    )))
                                }
                            };
                            if transforms_seen > 1 || !expected.transforms.contains(&shape) {
                                return Err(SecurityError::UnexpectedElement(format!(
                                    "reference {uri:?} has transforms {listed:?}"
                                )));
                            }
                            let c = c14n_of(c14n).ok_or_else(|| SecurityError::Algorithm(c14n.clone()))?;
                            used_c14n.push(c);
                            enveloped |= shape == ReferenceTransforms::EnvelopedThenC14n;
                        }
                        "DigestMethod" => {
                            let a = part.attribute("", "Algorithm").unwrap_or_default();
                            let d = DigestAlgorithm::ALL
                                .into_iter()
                                .find(|d| d.uri() == a && expected.digests.contains(d))
                                .ok_or(SecurityError::Algorithm(a))?;
                            digests.push(d);
                        }
                        "DigestValue" => {}
                        other => return Err(SecurityError::UnexpectedElement(format!("ds:{other} in Reference"))),
                    }
                }
                if transforms_seen == 0 {
                    return Err(SecurityError::UnexpectedElement(format!("reference {uri:?} has no transform")));
                }
            }
            other => return Err(SecurityError::UnexpectedElement(format!("ds:{other} in SignedInfo"))),
        }
    }
    if references == 0 || references > MAX_REFERENCES {
        return Err(SecurityError::UnexpectedElement(format!(
            "{references} references (1 to {MAX_REFERENCES} allowed)"
        )));
    }
    let method = method.ok_or_else(|| SecurityError::UnexpectedElement("no ds:SignatureMethod".into()))?;
    used_c14n.dedup();
    digests.dedup();
    Ok(UsedAlgorithms { c14n: used_c14n, method, digests, enveloped })
}

/// The signer: its certificate, the intermediates an `X509PKIPathv1` token brought, the token
/// element the signature referenced (when it references one), and the style used.
pub(super) struct Signer<'d> {
    pub certificate: Certificate,
    pub intermediates: Vec<Certificate>,
    pub token: Option<Node<'d>>,
}

/// How the signature's KeyInfo names its certificate, or `UnsupportedToken` when the style is
/// not one the partner's profile accepts (the partner's stack needs another setting, not
/// another certificate).
pub(super) fn signer<'d>(
    signature: &Node<'d>,
    security: &Node<'d>,
    allowed: &[SignatureKeyReference],
    trust: &PartnerTrust,
) -> Result<Signer<'d>, SecurityError> {
    let key_info = single_child(signature, ns::DS, "KeyInfo")?;
    let str_ = match key_info.child_elements().as_slice() {
        [only] if only.is(ns::WSSE, "SecurityTokenReference") => *only,
        other => {
            let names: Vec<String> = other.iter().map(|c| c.local_name()).collect();
            return Err(SecurityError::UnsupportedToken(format!(
                "signature KeyInfo must be one wsse:SecurityTokenReference, has {names:?}"
            )));
        }
    };
    let reference = match str_.child_elements().as_slice() {
        [only] => *only,
        other => {
            let names: Vec<String> = other.iter().map(|c| c.local_name()).collect();
            return Err(SecurityError::UnsupportedToken(format!("SecurityTokenReference holds {names:?}")));
        }
    };
    let style = reference_style(&reference)?;
    if !allowed.contains(&style) {
        return Err(SecurityError::UnsupportedToken(format!(
            "signature key reference {} is not in the partner's profile",
            style.name()
        )));
    }
    match style {
        SignatureKeyReference::BinarySecurityToken | SignatureKeyReference::PkiPath => {
            let token = referenced_token(&reference, security)?;
            let value_type = token.attribute("", "ValueType").unwrap_or_default();
            let der = base64_text(&token.text(), "BinarySecurityToken")?;
            let (certificate, intermediates) = match (style, value_type.as_str()) {
                (SignatureKeyReference::BinarySecurityToken, ns::X509V3) => (certificate(&der)?, Vec::new()),
                (SignatureKeyReference::PkiPath, ns::X509_PKIPATH) => pki_path(&der)?,
                _ => {
                    return Err(SecurityError::UnsupportedToken(format!(
                        "BinarySecurityToken ValueType {value_type:?}"
                    )))
                }
            };
            Ok(Signer { certificate, intermediates, token: Some(token) })
        }
        SignatureKeyReference::X509KeyIdentifier => {
            let der = base64_text(&reference.text(), "KeyIdentifier")?;
            Ok(Signer { certificate: certificate(&der)?, intermediates: Vec::new(), token: None })
        }
        SignatureKeyReference::IssuerSerial => {
            let (issuer, serial) = issuer_serial(&reference)?;
            pinned(trust, |c| c.matches_issuer_serial(&issuer, &serial), "issuer and serial")
        }
        SignatureKeyReference::SubjectKeyIdentifier => {
            let ski = base64_text(&reference.text(), "KeyIdentifier")?;
            pinned(trust, |c| c.subject_key_identifier == ski, "subject key identifier")
        }
        SignatureKeyReference::Thumbprint => {
            let sha1 = base64_text(&reference.text(), "KeyIdentifier")?;
            pinned(trust, |c| c.thumbprint_sha1.as_slice() == sha1.as_slice(), "thumbprint")
        }
    }
}

/// Which style a SecurityTokenReference's one child is.
fn reference_style(reference: &Node<'_>) -> Result<SignatureKeyReference, SecurityError> {
    let value_type = reference.attribute("", "ValueType").unwrap_or_default();
    if reference.is(ns::WSSE, "Reference") {
        return Ok(if value_type == ns::X509_PKIPATH {
            SignatureKeyReference::PkiPath
        } else {
            SignatureKeyReference::BinarySecurityToken
        });
    }
    if reference.is(ns::DS, "X509Data") {
        return Ok(SignatureKeyReference::IssuerSerial);
    }
    if reference.is(ns::WSSE, "KeyIdentifier") {
        let encoding = reference.attribute("", "EncodingType");
        if encoding.as_deref().is_some_and(|e| e != ns::BASE64_BINARY) {
            return Err(SecurityError::UnsupportedToken(format!("KeyIdentifier EncodingType {encoding:?}")));
        }
        return match value_type.as_str() {
            ns::X509V3 => Ok(SignatureKeyReference::X509KeyIdentifier),
            ns::X509_SKI => Ok(SignatureKeyReference::SubjectKeyIdentifier),
            ns::THUMBPRINT_SHA1 => Ok(SignatureKeyReference::Thumbprint),
            other => Err(SecurityError::UnsupportedToken(format!("KeyIdentifier ValueType {other:?}"))),
        };
    }
    Err(SecurityError::UnsupportedToken(format!(
        "key reference {{{}}}{}",
        reference.namespace(),
        reference.local_name()
    )))
}

/// The BinarySecurityToken a `wsse:Reference` points to, in this same Security header.
pub(super) fn referenced_token<'d>(reference: &Node<'d>, security: &Node<'d>) -> Result<Node<'d>, SecurityError> {
    let uri = reference.attribute("", "URI").unwrap_or_default();
    let id =
        uri.strip_prefix('#').ok_or_else(|| SecurityError::UnsupportedToken(format!("token reference {uri:?}")))?;
    security
        .child_elements()
        .into_iter()
        .find(|t| t.is(ns::WSSE, "BinarySecurityToken") && t.attribute(ns::WSU, "Id").as_deref() == Some(id))
        .ok_or_else(|| {
            SecurityError::UnexpectedElement(format!("no BinarySecurityToken with wsu:Id {id} in the Security header"))
        })
}

/// `ds:X509Data/ds:X509IssuerSerial` under `x509_data`: the issuer and serial as written.
pub(super) fn issuer_serial(x509_data: &Node<'_>) -> Result<(String, String), SecurityError> {
    let pair = single_child(x509_data, ns::DS, "X509IssuerSerial")
        .map_err(|_| SecurityError::UnsupportedToken("ds:X509Data without one ds:X509IssuerSerial".into()))?;
    let issuer = single_child(&pair, ns::DS, "X509IssuerName")?.text();
    let serial = single_child(&pair, ns::DS, "X509SerialNumber")?.text();
    Ok((issuer, serial))
}

pub(super) fn base64_text(text: &str, what: &str) -> Result<Vec<u8>, SecurityError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.split_whitespace().collect::<String>())
        .map_err(|_| SecurityError::UnsupportedToken(format!("{what} is not base64")))
}

fn certificate(der: &[u8]) -> Result<Certificate, SecurityError> {
    Certificate::from_der_cached(der)
        .map_err(|e| SecurityError::UntrustedCertificate(format!("token certificate: {e}")))
}

/// An `X509PKIPathv1` token (RFC 2459 `SEQUENCE OF Certificate`, trust anchor side first): the
/// signer is the last certificate; the others are offered as intermediates for the chain.
fn pki_path(der: &[u8]) -> Result<(Certificate, Vec<Certificate>), SecurityError> {
    let elements = der_sequence_elements(der)
        .ok_or_else(|| SecurityError::UntrustedCertificate("X509PKIPathv1 token is not a DER sequence".into()))?;
    let mut certs = elements.into_iter().map(certificate).collect::<Result<Vec<_>, _>>()?;
    let signer = certs.pop().ok_or_else(|| SecurityError::UntrustedCertificate("empty X509PKIPathv1 token".into()))?;
    Ok((signer, certs))
}

fn pinned<'d>(
    trust: &PartnerTrust,
    names: impl Fn(&Certificate) -> bool,
    what: &str,
) -> Result<Signer<'d>, SecurityError> {
    trust.pinned(names).map(|c| Signer { certificate: c.clone(), intermediates: Vec::new(), token: None }).ok_or_else(
        || SecurityError::UntrustedCertificate(format!("the {what} names none of the partner's pinned certificates")),
    )
}
