//! The receipt pipeline: untrusted bytes in, a [`VerifiedMessage`] out, or a [`SecurityError`].
//!
//! Order of paranoia: structural limits before parsing; a parse without DTDs, entities or
//! network; our own ID registration (duplicates refused); the security header's shape; decryption
//! with our key and only the allowed algorithms; signature verification with the partner's trusted
//! certificate only; then the check of *what* was signed: the Body the application reads and the
//! Timestamp in force must be the very nodes the signature covers; finally the Timestamp window.
//!
//! Must never: hand out payload bytes that were not covered by a verified signature. Only this
//! module can construct a [`VerifiedMessage`].

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use openssl::sha::sha256;

use super::ffi::{Document, Node, NodeHandle};
use super::limits::{precheck, XmlLimits};
use super::material::{hex, Certificate, KeyPair};
use super::profile::{EncryptionPolicy, Profile, SignaturePolicy};
use super::trust::PartnerTrust;
use super::{ns, SecurityError, SoapVersion};

/// Most `ds:Reference`s a signature may carry (Body, Timestamp, and a few more).
const MAX_REFERENCES: usize = 6;

/// What the receiver expects of a message.
pub struct InboundPolicy<'a> {
    pub limits: XmlLimits,
    /// Our decryption key; `None` if we never accept encrypted messages from this partner.
    pub decryption: Option<&'a KeyPair>,
    /// What the partner's messages must look like (algorithms, references, what is signed,
    /// encryption); its `encryption` set means the Body must be encrypted.
    pub profile: Profile,
    pub trust: &'a PartnerTrust,
    pub now: DateTime<Utc>,
    /// Allowed clock difference for `Created` in the future and `Expires` in the past.
    pub clock_skew: Duration,
    /// Longest accepted `Expires - Created`.
    pub max_ttl: Duration,
    /// Whether the Timestamp must be in force now. Always for requests; not for an
    /// acknowledgement, which the partner returns unchanged when we retry (its freshness is
    /// proven instead by its digest of one of our requests).
    pub require_fresh_timestamp: bool,
}

/// A message whose Body and Timestamp were covered by a verified signature of a trusted
/// certificate. Fields are read-only; it cannot be built outside this module.
#[derive(Debug)]
pub struct VerifiedMessage {
    version: SoapVersion,
    body_child: Vec<u8>,
    operation_ns: String,
    operation: String,
    signer: Certificate,
    parts: Vec<Part>,
    replay_key: String,
    expires: DateTime<Utc>,
    was_encrypted: bool,
}

/// A child element of the operation element, as a standalone XML document (its namespaces
/// declared on itself), so a payload can be bound without knowing the envelope.
#[derive(Debug, Clone)]
pub struct Part {
    pub namespace: String,
    pub local_name: String,
    pub xml: Vec<u8>,
}

impl VerifiedMessage {
    pub fn version(&self) -> SoapVersion {
        self.version
    }
    /// The Body's single child element as a standalone XML document (decrypted, verified).
    pub fn body_child(&self) -> &[u8] {
        &self.body_child
    }
    /// Namespace and local name of the Body's child (the operation element).
    pub fn operation(&self) -> (&str, &str) {
        (&self.operation_ns, &self.operation)
    }
    /// The operation element's child elements, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }
    pub fn signer(&self) -> &Certificate {
        &self.signer
    }
    /// Identifies this signed content for the replay cache: SHA-256 of the signed DigestValues
    /// (which cannot be re-encoded without breaking the signature). The caller scopes it to
    /// the authenticated partner.
    pub fn replay_key(&self) -> &str {
        &self.replay_key
    }
    /// Until when the replay cache must remember [`Self::replay_key`].
    pub fn expires(&self) -> DateTime<Utc> {
        self.expires
    }
    pub fn was_encrypted(&self) -> bool {
        self.was_encrypted
    }
}

/// Runs the whole pipeline. libxml2 work: call it on a blocking thread.
pub fn process(bytes: &[u8], policy: &InboundPolicy<'_>) -> Result<VerifiedMessage, SecurityError> {
    // Whatever an earlier message left in this (reused) thread's library error state is not
    // this message's: libxml2's last error, libxmlsec1's messages, OpenSSL's queue.
    super::ffi::reset_library_errors();
    precheck(bytes, &policy.limits)?;
    let mut doc = Document::parse(bytes)?;
    // SOAP processing rules first (1.1 §4.2.3, 1.2 Part 1 §2.6): a mandatory header block we
    // do not understand means nothing else of the message is processed.
    must_understand(&Envelope::locate(&doc)?)?;
    doc.register_ids()?;

    let plan = read_header(&doc, &policy.profile)?;
    let was_encrypted = match &plan.encryption {
        Some(enc) => {
            let ours = policy
                .decryption
                .ok_or(SecurityError::Algorithm("encrypted message but no decryption key configured".into()))?;
            if !enc.addressed_to(&ours.certificate) {
                return Err(SecurityError::Decrypt(
                    "EncryptedKey is not addressed to our encryption certificate".into(),
                ));
            }
            let private = ours.private_key().map_err(|e| SecurityError::Internal(e.to_string()))?;
            let session = doc.decrypt_key(enc.key, &private, enc.policy.key_transport)?;
            let plaintext = doc.decrypt_data(&enc.data_id, &session, enc.policy.data)?;
            // The plaintext goes through the same structural checks as the message before
            // libxml2 parses it (no DTD, PI or entities; attribute, element and size limits).
            let mut wrapped = Vec::with_capacity(plaintext.len() + 7);
            wrapped.extend_from_slice(b"<x>");
            wrapped.extend_from_slice(&plaintext);
            wrapped.extend_from_slice(b"</x>");
            precheck(&wrapped, &policy.limits)?;
            doc.replace_with_content(&enc.data_id, &plaintext)?;
            let (depth, elements) = doc.shape();
            if depth > policy.limits.max_depth {
                return Err(SecurityError::Limits(super::limits::LimitError::TooDeep(policy.limits.max_depth)));
            }
            if elements > policy.limits.max_elements {
                return Err(SecurityError::Limits(super::limits::LimitError::TooManyElements(
                    policy.limits.max_elements,
                )));
            }
            // Decrypted content may carry IDs of its own: they must not collide either.
            doc.register_ids()?;
            true
        }
        None if policy.profile.encryption.is_some() => return Err(SecurityError::NotEncrypted),
        None => false,
    };

    let signer = Certificate::from_der(&plan.token_der)
        .map_err(|e| SecurityError::UntrustedCertificate(format!("BinarySecurityToken: {e}")))?;
    policy.trust.check(&signer, policy.now)?;
    let public = signer
        .public_key()
        .map_err(|e| SecurityError::UnsupportedToken(format!("the signing certificate's key cannot be used: {e}")))?;
    let uris = doc.verify(plan.signature, &public, &policy.profile.signature)?;

    // What was signed: resolve each reference and compare node identity with the Body and the
    // Timestamp this pipeline will actually use.
    let envelope = Envelope::locate(&doc)?;
    let security = envelope.security()?;
    let timestamp = single_child(&security, ns::WSU, "Timestamp")?;
    let signed: Vec<Node<'_>> = uris
        .iter()
        .map(|u| {
            u.strip_prefix('#')
                .and_then(|id| doc.element_by_id(id))
                .ok_or_else(|| SecurityError::UnexpectedElement(format!("reference {u}")))
        })
        .collect::<Result<_, _>>()?;
    if !signed.iter().any(|n| n.same_node(&envelope.body)) {
        return Err(SecurityError::WrongNodeSigned("the SOAP Body"));
    }
    if !signed.iter().any(|n| n.same_node(&timestamp)) {
        return Err(SecurityError::WrongNodeSigned("the Timestamp"));
    }
    let expires = check_timestamp(&timestamp, policy)?;

    let children = envelope.body.child_elements();
    let [child] = children.as_slice() else {
        return Err(SecurityError::UnexpectedElement(format!(
            "Body must have exactly one element, has {}",
            children.len()
        )));
    };
    if envelope.body.has_significant_text() {
        return Err(SecurityError::UnexpectedElement("text directly in Body".into()));
    }
    // The replay key must not be malleable: SignatureValue is outside what is signed (its
    // base64 text can be re-encoded), but the DigestValues are inside SignedInfo, so any change
    // to them breaks the signature. Same digests from the same signer = the same message.
    let signature = single_child(&security, ns::DS, "Signature")?;
    let signed_info = single_child(&signature, ns::DS, "SignedInfo")?;
    let mut replay_material = Vec::new();
    for reference in signed_info.child_elements().iter().filter(|c| c.is(ns::DS, "Reference")) {
        replay_material.push(0);
        replay_material.extend_from_slice(single_child(reference, ns::DS, "DigestValue")?.text().as_bytes());
    }
    let parts = child
        .child_elements()
        .iter()
        .map(|p| Ok(Part { namespace: p.namespace(), local_name: p.local_name(), xml: p.to_standalone_xml()? }))
        .collect::<Result<Vec<_>, SecurityError>>()?;
    Ok(VerifiedMessage {
        parts,
        version: envelope.version,
        body_child: child.to_standalone_xml()?,
        operation_ns: child.namespace(),
        operation: child.local_name(),
        signer,
        replay_key: hex(&sha256(&replay_material)),
        expires,
        was_encrypted,
    })
}

/// The parts of the envelope the pipeline relies on, located strictly by position.
struct Envelope<'d> {
    version: SoapVersion,
    header: Option<Node<'d>>,
    body: Node<'d>,
}

impl<'d> Envelope<'d> {
    fn locate(doc: &'d Document) -> Result<Self, SecurityError> {
        let root = doc.root().ok_or_else(|| SecurityError::NotSoap("empty document".into()))?;
        let version =
            SoapVersion::from_namespace(&root.namespace()).filter(|_| root.local_name() == "Envelope").ok_or_else(
                || SecurityError::NotSoap(format!("root element is {{{}}}{}", root.namespace(), root.local_name())),
            )?;
        let soap = version.namespace();
        let children = root.child_elements();
        let (header, body) = match children.as_slice() {
            [h, b] if h.is(soap, "Header") && b.is(soap, "Body") => (Some(*h), *b),
            [b] if b.is(soap, "Body") => (None, *b),
            _ => {
                return Err(SecurityError::NotSoap("Envelope must contain an optional Header and then one Body".into()))
            }
        };
        Ok(Envelope { version, header, body })
    }

    /// The one `wsse:Security` header targeted at us: no actor/role, or the one that names us
    /// ([`targets_us`], the same test as for `mustUnderstand`). Headers for other actors or
    /// roles are not ours; two for us are refused (WSS 1.1 §6.1: one per role).
    fn security(&self) -> Result<Node<'d>, SecurityError> {
        let header = self.header.ok_or(SecurityError::MissingSecurity)?;
        let mut found = None;
        for h in header.child_elements() {
            if !h.is(ns::WSSE, "Security") || !targets_us(&h, self.version) {
                continue;
            }
            if found.replace(h).is_some() {
                return Err(SecurityError::UnexpectedElement(
                    "more than one wsse:Security header for this receiver".into(),
                ));
            }
        }
        found.ok_or(SecurityError::MissingSecurity)
    }
}

/// What the header says must be done, read before anything is decrypted or verified.
struct HeaderPlan {
    signature: NodeHandle,
    token_der: Vec<u8>,
    encryption: Option<EncryptionPlan>,
}

struct EncryptionPlan {
    key: NodeHandle,
    /// The profile's encryption, which the EncryptedKey and EncryptedData were checked against.
    policy: EncryptionPolicy,
    data_id: String,
    issuer: String,
    serial: String,
}

impl EncryptionPlan {
    fn addressed_to(&self, cert: &Certificate) -> bool {
        cert.matches_issuer_serial(&self.issuer, &self.serial)
    }
}

fn read_header(doc: &Document, profile: &Profile) -> Result<HeaderPlan, SecurityError> {
    let envelope = Envelope::locate(doc)?;
    let security = envelope.security()?;
    let mut timestamps = 0;
    let mut tokens = Vec::new();
    let mut signatures = Vec::new();
    let mut keys = Vec::new();
    for child in security.child_elements() {
        match (child.namespace().as_str(), child.local_name().as_str()) {
            (ns::WSU, "Timestamp") => timestamps += 1,
            (ns::WSSE, "BinarySecurityToken") => tokens.push(child),
            (ns::DS, "Signature") => signatures.push(child),
            (ns::XENC, "EncryptedKey") => keys.push(child),
            (n, l) => return Err(SecurityError::UnexpectedElement(format!("{{{n}}}{l} in wsse:Security"))),
        }
    }
    if timestamps != 1 {
        return Err(SecurityError::BadTimestamp(format!("expected one wsu:Timestamp, found {timestamps}")));
    }
    let signature = match signatures.as_slice() {
        [s] => *s,
        [] => return Err(SecurityError::Unsigned("no ds:Signature".into())),
        _ => return Err(SecurityError::UnexpectedElement("more than one ds:Signature".into())),
    };
    check_signed_info(&signature, &profile.signature)?;
    let token = token_for(&signature, &tokens)?;
    let token_der = base64::engine::general_purpose::STANDARD
        .decode(token.text().split_whitespace().collect::<String>())
        .map_err(|_| SecurityError::UntrustedCertificate("BinarySecurityToken is not base64".into()))?;
    let encryption = match keys.as_slice() {
        [] => {
            if envelope.body.child_elements().iter().any(|c| c.is(ns::XENC, "EncryptedData")) {
                return Err(SecurityError::EncryptedStructure("EncryptedData without EncryptedKey".into()));
            }
            None
        }
        [k] => match &profile.encryption {
            Some(expected) => Some(encryption_plan(k, &envelope.body, expected)?),
            // Nothing is decrypted for a partner that has no business encrypting to us.
            None => {
                return Err(SecurityError::Algorithm(
                    "encrypted message, but the partner's profile is signed only".into(),
                ))
            }
        },
        _ => return Err(SecurityError::UnexpectedElement("more than one xenc:EncryptedKey".into())),
    };
    Ok(HeaderPlan { signature: signature.handle(), token_der, encryption })
}

/// SignedInfo may use only exclusive C14N, rsa-sha256, sha256 digests and same-document
/// references by bare ID (no XPointer, no empty URI), at most [`MAX_REFERENCES`], each to a
/// different ID and with at most one (exc-c14n) Transform: libxmlsec1 digests every Reference
/// before it checks the SignatureValue, and each extra transform re-parses and
/// re-canonicalises the referenced subtree, so a forged signature could otherwise buy
/// unbounded work.
fn check_signed_info(signature: &Node<'_>, expected: &SignaturePolicy) -> Result<(), SecurityError> {
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
    let mut references = 0;
    let mut referenced = std::collections::HashSet::new();
    for child in signed_info.child_elements() {
        let alg = child.attribute("", "Algorithm").unwrap_or_default();
        match child.local_name().as_str() {
            "CanonicalizationMethod" if alg != expected.c14n.uri() => return Err(SecurityError::Algorithm(alg)),
            "SignatureMethod" if alg != expected.method.uri() => return Err(SecurityError::Algorithm(alg)),
            "CanonicalizationMethod" | "SignatureMethod" => {}
            "Reference" => {
                references += 1;
                let uri = child.attribute("", "URI").unwrap_or_default();
                if !is_bare_id_reference(&uri) {
                    return Err(SecurityError::UnexpectedElement(format!("reference URI {uri:?} (only #id allowed)")));
                }
                if !referenced.insert(uri.clone()) {
                    return Err(SecurityError::UnexpectedElement(format!("two references to {uri:?}")));
                }
                let mut transforms = 0;
                for part in child.child_elements() {
                    match part.local_name().as_str() {
                        "Transforms" => {
                            transforms += 1;
                            let listed = part.child_elements();
                            if transforms > 1 || listed.len() > 1 {
                                return Err(SecurityError::UnexpectedElement(format!(
                                    "reference {uri:?} has more than one transform"
                                )));
                            }
                            for t in listed {
                                let a = t.attribute("", "Algorithm").unwrap_or_default();
                                if a != expected.c14n.uri() {
                                    return Err(SecurityError::Algorithm(a));
                                }
                            }
                        }
                        "DigestMethod" => {
                            let a = part.attribute("", "Algorithm").unwrap_or_default();
                            if a != expected.digest.uri() {
                                return Err(SecurityError::Algorithm(a));
                            }
                        }
                        "DigestValue" => {}
                        other => return Err(SecurityError::UnexpectedElement(format!("ds:{other} in Reference"))),
                    }
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
    Ok(())
}

fn is_bare_id_reference(uri: &str) -> bool {
    uri.strip_prefix('#').is_some_and(|id| {
        let mut chars = id.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    })
}

/// The BinarySecurityToken the signature's KeyInfo points to (by `wsse:Reference`), which must
/// be an X.509 v3 token in this same Security header. Another key reference style or token type
/// is "unsupported", not "untrusted": the partner's stack needs another setting, not another
/// certificate.
fn token_for<'d>(signature: &Node<'d>, tokens: &[Node<'d>]) -> Result<Node<'d>, SecurityError> {
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
        [only] if only.is(ns::WSSE, "Reference") => *only,
        other => {
            let names: Vec<String> = other.iter().map(|c| c.local_name()).collect();
            return Err(SecurityError::UnsupportedToken(format!(
                "signature key reference must be a wsse:Reference to a BinarySecurityToken, is {names:?}"
            )));
        }
    };
    let uri = reference.attribute("", "URI").unwrap_or_default();
    let id =
        uri.strip_prefix('#').ok_or_else(|| SecurityError::UnsupportedToken(format!("token reference {uri:?}")))?;
    let token = tokens.iter().find(|t| t.attribute(ns::WSU, "Id").as_deref() == Some(id)).ok_or_else(|| {
        SecurityError::UnexpectedElement(format!("no BinarySecurityToken with wsu:Id {id} in the Security header"))
    })?;
    let value_type = token.attribute("", "ValueType").unwrap_or_default();
    if value_type != ns::X509V3 {
        return Err(SecurityError::UnsupportedToken(format!("BinarySecurityToken ValueType {value_type:?}")));
    }
    Ok(*token)
}

/// Refuses the message if a header block targeted at us (SOAP 1.1: no `actor` or the `next`
/// actor; 1.2: no `role`, `next` or `ultimateReceiver`) carries `mustUnderstand` true and is
/// not one we understand (`wsse:Security`). Blocks for other actors or roles are not ours.
fn must_understand(envelope: &Envelope<'_>) -> Result<(), SecurityError> {
    let Some(header) = envelope.header else { return Ok(()) };
    let soap = envelope.version.namespace();
    let mut not_understood = Vec::new();
    for block in header.child_elements() {
        // SOAP 1.1 §4.2 and 1.2 §5.2.1: every header block is namespace-qualified.
        if block.namespace().is_empty() {
            return Err(SecurityError::NotSoap(format!("header block {} has no namespace", block.local_name())));
        }
        let mandatory = match block.attribute(soap, "mustUnderstand").as_deref().map(str::trim) {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(SecurityError::NotSoap(format!(
                    "mustUnderstand {other:?} on {} is not a boolean",
                    block.local_name()
                )))
            }
        };
        if !mandatory || !targets_us(&block, envelope.version) {
            continue;
        }
        if block.is(ns::WSSE, "Security") {
            continue;
        }
        not_understood.push((block.namespace(), block.local_name()));
    }
    if not_understood.is_empty() {
        Ok(())
    } else {
        Err(SecurityError::MustUnderstand(not_understood))
    }
}

fn targets_us(block: &Node<'_>, version: SoapVersion) -> bool {
    match version {
        SoapVersion::V11 => block
            .attribute(ns::SOAP11, "actor")
            .is_none_or(|a| a.trim() == "http://schemas.xmlsoap.org/soap/actor/next"),
        SoapVersion::V12 => block.attribute(ns::SOAP12, "role").is_none_or(|r| {
            matches!(
                r.trim(),
                "http://www.w3.org/2003/05/soap-envelope/role/next"
                    | "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver"
            )
        }),
    }
}

fn encryption_plan(
    key: &Node<'_>,
    body: &Node<'_>,
    expected: &EncryptionPolicy,
) -> Result<EncryptionPlan, SecurityError> {
    let method = single_child(key, ns::XENC, "EncryptionMethod")?;
    let alg = method.attribute("", "Algorithm").unwrap_or_default();
    if alg != expected.key_transport.uri() {
        return Err(SecurityError::Algorithm(alg));
    }
    for d in method.child_elements() {
        let a = d.attribute("", "Algorithm").unwrap_or_default();
        if !(d.is(ns::DS, "DigestMethod") && a == expected.key_transport.oaep_digest_uri()) {
            return Err(SecurityError::Algorithm(format!("OAEP parameter {a}")));
        }
    }
    let key_info = single_child(key, ns::DS, "KeyInfo")?;
    let issuer_serial = key_info
        .child_elements()
        .into_iter()
        .find(|c| c.is(ns::WSSE, "SecurityTokenReference"))
        .and_then(|str_| single_child(&str_, ns::DS, "X509Data").ok())
        .and_then(|data| single_child(&data, ns::DS, "X509IssuerSerial").ok())
        .ok_or_else(|| {
            SecurityError::UnsupportedToken(
                "EncryptedKey must reference our certificate by wsse:SecurityTokenReference/ds:X509Data/ds:X509IssuerSerial"
                    .into(),
            )
        })?;
    let issuer = single_child(&issuer_serial, ns::DS, "X509IssuerName")?.text();
    let serial = single_child(&issuer_serial, ns::DS, "X509SerialNumber")?.text();
    let list = single_child(key, ns::XENC, "ReferenceList")?;
    let refs = list.child_elements();
    let [data_ref] = refs.as_slice() else {
        return Err(SecurityError::EncryptedStructure("ReferenceList must name exactly one EncryptedData".into()));
    };
    let uri = data_ref.attribute("", "URI").unwrap_or_default();
    if !data_ref.is(ns::XENC, "DataReference") || !is_bare_id_reference(&uri) {
        return Err(SecurityError::EncryptedStructure(format!("bad DataReference {uri:?}")));
    }
    let data_id = uri[1..].to_owned();
    // The only thing we decrypt is the Body's content, and it must be nothing but that one
    // EncryptedData, of Type Content, AES-256-GCM, with an inline CipherValue.
    let children = body.child_elements();
    let [data] = children.as_slice() else {
        return Err(SecurityError::EncryptedStructure("encrypted Body must hold exactly one EncryptedData".into()));
    };
    if !data.is(ns::XENC, "EncryptedData") || data.attribute("", "Id").as_deref() != Some(data_id.as_str()) {
        return Err(SecurityError::EncryptedStructure(
            "DataReference does not point at the Body's EncryptedData".into(),
        ));
    }
    if data.attribute("", "Type").as_deref() != Some(expected.part.type_uri()) {
        return Err(SecurityError::EncryptedStructure(format!(
            "EncryptedData Type must be {}, is {:?}",
            expected.part.type_uri(),
            data.attribute("", "Type").unwrap_or_default()
        )));
    }
    let data_alg = single_child(data, ns::XENC, "EncryptionMethod")?.attribute("", "Algorithm").unwrap_or_default();
    if data_alg != expected.data.uri() {
        return Err(SecurityError::Algorithm(data_alg));
    }
    single_child(&single_child(data, ns::XENC, "CipherData")?, ns::XENC, "CipherValue")?;
    Ok(EncryptionPlan { key: key.handle(), policy: *expected, data_id, issuer, serial })
}

fn check_timestamp(ts: &Node<'_>, policy: &InboundPolicy<'_>) -> Result<DateTime<Utc>, SecurityError> {
    let parse = |local: &'static str| -> Result<DateTime<Utc>, SecurityError> {
        let text = single_child(ts, ns::WSU, local)?.text();
        DateTime::parse_from_rfc3339(text.trim()).map(|d| d.with_timezone(&Utc)).map_err(|_| {
            SecurityError::BadTimestamp(format!("{local} {text:?} is not an ISO 8601 date-time with offset"))
        })
    };
    let created = parse("Created")?;
    let expires = parse("Expires")?;
    if expires <= created || expires - created > policy.max_ttl {
        return Err(SecurityError::BadTimestamp(format!("lifetime {created} .. {expires}")));
    }
    if !policy.require_fresh_timestamp {
        return Ok(expires);
    }
    if created > policy.now + policy.clock_skew {
        return Err(SecurityError::FutureTimestamp(format!("created {created}, now {}", policy.now)));
    }
    if expires + policy.clock_skew < policy.now {
        return Err(SecurityError::Expired(format!("expired {expires}, now {}", policy.now)));
    }
    Ok(expires)
}

fn single_child<'d>(parent: &Node<'d>, ns_uri: &str, local: &str) -> Result<Node<'d>, SecurityError> {
    let mut matches = parent.child_elements().into_iter().filter(|c| c.is(ns_uri, local));
    match (matches.next(), matches.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(SecurityError::UnexpectedElement(format!("missing {local} in {}", parent.local_name()))),
        (Some(_), Some(_)) => {
            Err(SecurityError::UnexpectedElement(format!("more than one {local} in {}", parent.local_name())))
        }
    }
}
