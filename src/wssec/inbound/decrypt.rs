//! Decryption of an inbound message with our key: the EncryptedKey (its algorithm and the way
//! it names our certificate, both from the partner's profile) and what its ReferenceList names,
//! which may only be the Body's one EncryptedData and, where the profile accepts an encrypted
//! signature, one EncryptedData in the Security header. Each plaintext passes the message's
//! structural precheck before libxml2 parses it in place.
//!
//! Must never: decrypt anything for a partner whose profile does not encrypt, decrypt with a
//! key the message names (only ours, and only when the EncryptedKey names our certificate), or
//! let libxmlsec1 parse a plaintext itself.

use super::super::ffi::{Document, Node, NodeHandle};
use super::super::limits::{precheck, LimitError, XmlLimits};
use super::super::material::{Certificate, KeyPair};
use super::super::profile::{DataEncryption, EncryptedKeyReference, EncryptedPart, EncryptionAccept, KeyTransport};
use super::super::{ns, SecurityError};
use super::header::{is_bare_id_reference, single_child};
use super::signature::{base64_text, issuer_serial, referenced_token};

/// What will be decrypted: the EncryptedKey and the EncryptedData it names.
pub(super) struct Plan {
    key: NodeHandle,
    key_transport: KeyTransport,
    targets: Vec<Target>,
}

struct Target {
    element: NodeHandle,
    data: DataEncryption,
}

impl Plan {
    /// Whether any of the data is AES-CBC (then the CBC countermeasures apply).
    pub fn uses_cbc(&self) -> bool {
        self.targets.iter().any(|t| t.data.is_cbc())
    }
}

/// Where the EncryptedKey is.
pub(super) enum KeyPlace<'d> {
    /// In the Security header, naming what it encrypted in its ReferenceList.
    Header(Node<'d>),
    /// Inside the Body's EncryptedData (its KeyInfo), for that EncryptedData only.
    Embedded(Node<'d>),
}

/// The EncryptedKey embedded in the Body's one EncryptedData, if there is one.
pub(super) fn embedded_key<'d>(body: &Node<'d>) -> Option<Node<'d>> {
    let children = body.child_elements();
    let [data] = children.as_slice() else { return None };
    if !data.is(ns::XENC, "EncryptedData") {
        return None;
    }
    let key_info = data.child_elements().into_iter().find(|c| c.is(ns::DS, "KeyInfo"))?;
    key_info.child_elements().into_iter().find(|c| c.is(ns::XENC, "EncryptedKey"))
}

/// Reads and checks the EncryptedKey against the profile and our certificate.
pub(super) fn plan(
    place: KeyPlace<'_>,
    security: &Node<'_>,
    body: &Node<'_>,
    expected: &EncryptionAccept,
    ours: &Certificate,
) -> Result<Plan, SecurityError> {
    let (key, embedded) = match place {
        KeyPlace::Header(k) => (k, false),
        KeyPlace::Embedded(k) => (k, true),
    };
    let key = &key;
    let method = single_child(key, ns::XENC, "EncryptionMethod")?;
    let alg = method.attribute("", "Algorithm").unwrap_or_default();
    let key_transport = KeyTransport::ALL
        .into_iter()
        .find(|t| t.uri() == alg && expected.key_transport.contains(t))
        .ok_or(SecurityError::Algorithm(alg))?;
    for d in method.child_elements() {
        let a = d.attribute("", "Algorithm").unwrap_or_default();
        if !(d.is(ns::DS, "DigestMethod") && a == key_transport.oaep_digest_uri()) {
            return Err(SecurityError::Algorithm(format!("OAEP parameter {a}")));
        }
    }
    let key_info = single_child(key, ns::DS, "KeyInfo")?;
    let (style, names_us) = recipient(&key_info, security, ours)?;
    if !expected.key_references.contains(&style) {
        return Err(SecurityError::UnsupportedToken(format!(
            "EncryptedKey reference {} is not in the partner's profile",
            style.name()
        )));
    }
    if !names_us {
        return Err(SecurityError::Decrypt("EncryptedKey is not addressed to our encryption certificate".into()));
    }
    let children = body.child_elements();
    let [body_data] = children.as_slice() else {
        return Err(SecurityError::EncryptedStructure("encrypted Body must hold exactly one EncryptedData".into()));
    };
    if !body_data.is(ns::XENC, "EncryptedData") {
        return Err(SecurityError::EncryptedStructure("the encrypted Body's child is not an EncryptedData".into()));
    }
    let parts: Vec<EncryptedPart> = expected.parts.clone();
    if embedded {
        if key.child_elements().iter().any(|c| c.is(ns::XENC, "ReferenceList")) {
            return Err(SecurityError::EncryptedStructure("an embedded EncryptedKey names no other data".into()));
        }
        let target = Target { element: body_data.handle(), data: data_form(body_data, &parts, expected)? };
        return Ok(Plan { key: key.handle(), key_transport, targets: vec![target] });
    }
    let list = single_child(key, ns::XENC, "ReferenceList")?;
    let mut ids = Vec::new();
    for data_ref in list.child_elements() {
        let uri = data_ref.attribute("", "URI").unwrap_or_default();
        if !data_ref.is(ns::XENC, "DataReference") || !is_bare_id_reference(&uri) {
            return Err(SecurityError::EncryptedStructure(format!("bad DataReference {uri:?}")));
        }
        ids.push(uri[1..].to_owned());
    }
    // The Body's content (or its one element) must be nothing but one EncryptedData, named here.
    let body_id = body_data.attribute("", "Id").unwrap_or_default();
    if !ids.contains(&body_id) {
        return Err(SecurityError::EncryptedStructure("no DataReference points at the Body's EncryptedData".into()));
    }
    let mut targets = vec![Target { element: body_data.handle(), data: data_form(body_data, &parts, expected)? }];
    // Anything else named must be the encrypted signature in the Security header.
    let header_data: Vec<Node<'_>> =
        security.child_elements().into_iter().filter(|c| c.is(ns::XENC, "EncryptedData")).collect();
    for id in ids.iter().filter(|id| **id != body_id) {
        let data = header_data
            .iter()
            .find(|d| d.attribute("", "Id").as_deref() == Some(id.as_str()))
            .filter(|_| expected.encrypted_signature)
            .ok_or_else(|| {
                SecurityError::EncryptedStructure(format!("DataReference #{id} names neither the Body nor a signature"))
            })?;
        targets
            .push(Target { element: data.handle(), data: data_form(data, &[EncryptedPart::BodyElement], expected)? });
    }
    if header_data.len() + 1 != targets.len() {
        return Err(SecurityError::EncryptedStructure(
            "an EncryptedData in the header is not named by the EncryptedKey".into(),
        ));
    }
    Ok(Plan { key: key.handle(), key_transport, targets })
}

/// An EncryptedData of one of `parts`' Types, with an allowed algorithm and an inline
/// CipherValue; its algorithm.
fn data_form(
    data: &Node<'_>,
    parts: &[EncryptedPart],
    expected: &EncryptionAccept,
) -> Result<DataEncryption, SecurityError> {
    let type_uri = data.attribute("", "Type").unwrap_or_default();
    if !parts.iter().any(|p| p.type_uri() == type_uri) {
        let allowed: Vec<&str> = parts.iter().map(|p| p.type_uri()).collect();
        return Err(SecurityError::EncryptedStructure(format!(
            "EncryptedData Type must be one of {allowed:?}, is {type_uri:?}"
        )));
    }
    let alg = single_child(data, ns::XENC, "EncryptionMethod")?.attribute("", "Algorithm").unwrap_or_default();
    let algorithm = DataEncryption::ALL
        .into_iter()
        .find(|d| d.uri() == alg && expected.data.contains(d))
        .ok_or(SecurityError::Algorithm(alg))?;
    single_child(&single_child(data, ns::XENC, "CipherData")?, ns::XENC, "CipherValue")?;
    Ok(algorithm)
}

/// How the EncryptedKey's KeyInfo names its recipient, and whether that is our certificate.
fn recipient(
    key_info: &Node<'_>,
    security: &Node<'_>,
    ours: &Certificate,
) -> Result<(EncryptedKeyReference, bool), SecurityError> {
    let children = key_info.child_elements();
    let [only] = children.as_slice() else {
        return Err(SecurityError::UnsupportedToken("EncryptedKey KeyInfo must hold one reference".into()));
    };
    if only.is(ns::DS, "X509Data") {
        // A bare X509Data: the certificate itself (or its issuer and serial).
        if let Ok(cert) = single_child(only, ns::DS, "X509Certificate") {
            let der = base64_text(&cert.text(), "X509Certificate")?;
            return Ok((EncryptedKeyReference::X509Certificate, der == *ours.der));
        }
        let (issuer, serial) = issuer_serial(only)?;
        return Ok((EncryptedKeyReference::X509Certificate, ours.matches_issuer_serial(&issuer, &serial)));
    }
    if !only.is(ns::WSSE, "SecurityTokenReference") {
        return Err(SecurityError::UnsupportedToken(format!("EncryptedKey KeyInfo holds {}", only.local_name())));
    }
    let inner = only.child_elements();
    let [reference] = inner.as_slice() else {
        return Err(SecurityError::UnsupportedToken("SecurityTokenReference must hold one reference".into()));
    };
    if reference.is(ns::DS, "X509Data") {
        let (issuer, serial) = issuer_serial(reference)?;
        return Ok((EncryptedKeyReference::IssuerSerial, ours.matches_issuer_serial(&issuer, &serial)));
    }
    if reference.is(ns::WSSE, "Reference") {
        let token = referenced_token(reference, security)?;
        if token.attribute("", "ValueType").as_deref() != Some(ns::X509V3) {
            return Err(SecurityError::UnsupportedToken("EncryptedKey token is not an X.509 v3 token".into()));
        }
        let der = base64_text(&token.text(), "BinarySecurityToken")?;
        return Ok((EncryptedKeyReference::BinarySecurityToken, der == *ours.der));
    }
    if reference.is(ns::WSSE, "KeyIdentifier") {
        let value = base64_text(&reference.text(), "KeyIdentifier")?;
        return match reference.attribute("", "ValueType").unwrap_or_default().as_str() {
            ns::X509_SKI => Ok((EncryptedKeyReference::SubjectKeyIdentifier, value == ours.subject_key_identifier)),
            ns::THUMBPRINT_SHA1 => Ok((EncryptedKeyReference::Thumbprint, value == ours.thumbprint_sha1)),
            ns::X509V3 => Ok((EncryptedKeyReference::X509KeyIdentifier, value == *ours.der)),
            other => Err(SecurityError::UnsupportedToken(format!("EncryptedKey KeyIdentifier ValueType {other:?}"))),
        };
    }
    Err(SecurityError::UnsupportedToken(format!("EncryptedKey reference {}", reference.local_name())))
}

/// Decrypts what `plan` names with our key, in place. With `cbc_countermeasures`, a key that
/// does not decrypt is replaced by a random one and the work goes on (the data then fails to
/// decrypt or to verify like any forged message): a padding oracle learns nothing from how or
/// when the answer comes.
pub(super) fn decrypt(
    doc: &mut Document,
    plan: &Plan,
    ours: &KeyPair,
    limits: &XmlLimits,
    cbc_countermeasures: bool,
) -> Result<(), SecurityError> {
    let private = ours.private_key().map_err(|e| SecurityError::Internal(e.to_string()))?;
    let first_key_bytes = plan.targets.first().map_or(32, |t| t.data.key_bytes());
    let session = match doc.decrypt_key(plan.key, &private, plan.key_transport) {
        Ok(session) => session,
        Err(e) if cbc_countermeasures => {
            tracing::debug!(error = %e, "key transport failed: going on with a random key (CBC countermeasure)");
            let mut random = vec![0u8; first_key_bytes];
            openssl::rand::rand_bytes(&mut random).map_err(|e| SecurityError::Internal(e.to_string()))?;
            random
        }
        Err(e) => return Err(e.into()),
    };
    for target in &plan.targets {
        let plaintext = doc.decrypt_data(target.element, &session, target.data)?;
        // The plaintext goes through the same structural checks as the message before
        // libxml2 parses it (no DTD, PI or entities; attribute, element and size limits).
        let mut wrapped = Vec::with_capacity(plaintext.len() + 7);
        wrapped.extend_from_slice(b"<x>");
        wrapped.extend_from_slice(&plaintext);
        wrapped.extend_from_slice(b"</x>");
        precheck(&wrapped, limits)?;
        doc.replace_with_content(target.element, &plaintext)?;
        let (depth, elements) = doc.shape();
        if depth > limits.max_depth {
            return Err(SecurityError::Limits(LimitError::TooDeep(limits.max_depth)));
        }
        if elements > limits.max_elements {
            return Err(SecurityError::Limits(LimitError::TooManyElements(limits.max_elements)));
        }
        // Decrypted content may carry IDs of its own: they must not collide either.
        doc.register_ids()?;
    }
    Ok(())
}
