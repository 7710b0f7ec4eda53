//! The receipt pipeline: untrusted bytes in, a [`VerifiedMessage`] out, or a [`SecurityError`].
//!
//! Order of paranoia: structural limits before parsing; a parse without DTDs, entities or
//! network; SOAP `mustUnderstand`; our own ID registration (duplicates refused); the security
//! header's shape against the partner's profile ([`header`]); a signature in the clear checked
//! for its algorithms and key reference before anything costly ([`signature`]); decryption with
//! our key and only the profile's algorithms ([`decrypt`]); the signer's certificate against the
//! partner's trust and the signature verified with it only; then the check of *what* was signed:
//! the Body the application reads, the Timestamp in force and (where the profile says so) the
//! WS-Addressing headers and the token must be the very nodes the signature covers; finally the
//! Timestamp window. Under a profile that accepts AES-CBC, a message that fails to decrypt and
//! one whose signature fails get the same answer (`WSS-CHECK-FAILED`), after the same work.
//!
//! Must never: hand out payload bytes that were not covered by a verified signature. Only this
//! module can construct a [`VerifiedMessage`].

mod decrypt;
mod header;
mod signature;

use chrono::{DateTime, Duration, Utc};
use openssl::sha::sha256;

pub use header::Addressing;

use super::ffi::{Document, Node, SignatureAlgorithms};
use super::limits::{precheck, XmlLimits};
use super::material::{hex, Certificate, KeyPair};
use super::profile::{Inbound, SignatureKeyReference};
use super::trust::PartnerTrust;
use super::{ns, SecurityError, SoapVersion};
use header::{check_timestamp, inventory, must_understand, read_addressing, single_child, Envelope};

/// What the receiver expects of a message.
pub struct InboundPolicy<'a> {
    pub limits: XmlLimits,
    /// Our decryption key; `None` if we never accept encrypted messages from this partner.
    pub decryption: Option<&'a KeyPair>,
    /// What the partner's messages must look like (algorithms, references, what is signed,
    /// the Timestamp rule, encryption); its `encryption` set means the Body must be encrypted.
    pub profile: Inbound,
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
    /// How long the replay cache keeps a message that carries no Timestamp.
    pub replay_retention: Duration,
}

/// A message whose Body (and Timestamp, and whatever else the profile requires) was covered by
/// a verified signature of a trusted certificate. Fields are read-only; it cannot be built
/// outside this module.
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
    timestamped: bool,
    was_encrypted: bool,
    addressing: Option<Addressing>,
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
    /// Until when the replay cache must remember [`Self::replay_key`]: the Timestamp's
    /// Expires, or the replay retention for a message without one.
    pub fn expires(&self) -> DateTime<Utc> {
        self.expires
    }
    /// Whether the message carried a signed (and checked) Timestamp.
    pub fn timestamped(&self) -> bool {
        self.timestamped
    }
    pub fn was_encrypted(&self) -> bool {
        self.was_encrypted
    }
    /// The WS-Addressing headers, when the message had any (signed where the profile says so).
    pub fn addressing(&self) -> Option<&Addressing> {
        self.addressing.as_ref()
    }
}

/// Runs the whole pipeline. libxml2 work: call it on an XML security thread.
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
    let profile = &policy.profile;

    // The header's shape, and a signature in the clear checked before any RSA work.
    let plan = {
        let envelope = Envelope::locate(&doc)?;
        let security = envelope.security()?;
        let found = inventory(&security, profile)?;
        if found.clear_signature {
            let signature = single_child(&security, ns::DS, "Signature")?;
            signature::check_signed_info(&signature, &profile.signature)?;
            let signer = signature::signer(&signature, &security, &profile.signature.key_references, policy.trust)?;
            policy.trust.check_with_chain(&signer.certificate, &signer.intermediates, policy.now)?;
        }
        let embedded = decrypt::embedded_key(&envelope.body);
        match (found.encrypted_keys, embedded, &profile.encryption) {
            (1.., Some(_), _) => {
                return Err(SecurityError::EncryptedStructure(
                    "two EncryptedKeys: in the header and in the Body".into(),
                ))
            }
            (0, None, _) if found.header_encrypted_data > 0 => {
                return Err(SecurityError::EncryptedStructure("EncryptedData without EncryptedKey".into()))
            }
            (0, None, _) if envelope.body.child_elements().iter().any(|c| c.is(ns::XENC, "EncryptedData")) => {
                return Err(SecurityError::EncryptedStructure("EncryptedData without EncryptedKey".into()))
            }
            (0, None, Some(_)) => return Err(SecurityError::NotEncrypted),
            (0, None, None) => None,
            // Nothing is decrypted for a partner that has no business encrypting to us.
            (_, _, None) => {
                return Err(SecurityError::Algorithm(
                    "encrypted message, but the partner's profile is signed only".into(),
                ))
            }
            (_, Some(_), Some(expected)) if !expected.embedded_key => {
                return Err(SecurityError::EncryptedStructure(
                    "the EncryptedKey must be in the Security header, naming the EncryptedData in its ReferenceList"
                        .into(),
                ))
            }
            (_, embedded, Some(expected)) => {
                let ours = policy
                    .decryption
                    .ok_or(SecurityError::Algorithm("encrypted message but no decryption key configured".into()))?;
                let place = match embedded {
                    Some(key) => decrypt::KeyPlace::Embedded(key),
                    None => decrypt::KeyPlace::Header(single_child(&security, ns::XENC, "EncryptedKey")?),
                };
                Some((decrypt::plan(place, &security, &envelope.body, expected, &ours.certificate)?, ours))
            }
        }
    };
    let cbc = plan.as_ref().is_some_and(|(p, _)| p.uses_cbc());
    // Under CBC, a failure to decrypt is held back until the signature was checked too, and
    // then answered exactly like a failed signature.
    let mut held_back = None;
    if let Some((plan, ours)) = &plan {
        if let Err(e) = decrypt::decrypt(&mut doc, plan, ours, &policy.limits, cbc) {
            if !cbc {
                return Err(e);
            }
            held_back = Some(e);
        }
    }
    let verified = verify_and_read(&mut doc, policy, plan.is_some());
    match (cbc, held_back, verified) {
        (false, _, result) => result,
        (true, None, Ok(message)) => Ok(message),
        (true, Some(e), _) => Err(SecurityError::CheckFailed(e.to_string())),
        (true, None, Err(e)) if e.cbc_uniform() => Err(SecurityError::CheckFailed(e.to_string())),
        (true, None, Err(e)) => Err(e),
    }
}

/// After decryption: the signer, the signature, what it covers, the Timestamp, the Body.
fn verify_and_read(
    doc: &mut Document,
    policy: &InboundPolicy<'_>,
    was_encrypted: bool,
) -> Result<VerifiedMessage, SecurityError> {
    let profile = &policy.profile;
    let (signature, used, signer) = {
        let envelope = Envelope::locate(doc)?;
        let security = envelope.security()?;
        // A decrypted signature is in the header now; anything left encrypted there is not.
        if security.child_elements().iter().any(|c| c.is(ns::XENC, "EncryptedData")) {
            return Err(SecurityError::EncryptedStructure("an EncryptedData in the header was not decrypted".into()));
        }
        let signature = single_child(&security, ns::DS, "Signature")?;
        let used = signature::check_signed_info(&signature, &profile.signature)?;
        let signer = signature::signer(&signature, &security, &profile.signature.key_references, policy.trust)?;
        policy.trust.check_with_chain(&signer.certificate, &signer.intermediates, policy.now)?;
        let token = signer.token.map(|t| t.handle());
        (signature.handle(), used, (signer.certificate, token))
    };
    let (certificate, token) = signer;
    let public = certificate
        .public_key()
        .map_err(|e| SecurityError::UnsupportedToken(format!("the signing certificate's key cannot be used: {e}")))?;
    let algorithms = SignatureAlgorithms {
        c14n: &used.c14n,
        methods: std::slice::from_ref(&used.method),
        digests: &used.digests,
        enveloped: used.enveloped,
    };
    let uris = doc.verify(signature, &public, &algorithms)?;

    // What was signed: resolve each reference and compare node identity with the Body, the
    // Timestamp, the addressing headers and the token this pipeline will actually use.
    let envelope = Envelope::locate(doc)?;
    let security = envelope.security()?;
    let signed: Vec<Node<'_>> = uris
        .iter()
        .map(|u| {
            u.strip_prefix('#')
                .and_then(|id| doc.element_by_id(id))
                .ok_or_else(|| SecurityError::UnexpectedElement(format!("reference {u}")))
        })
        .collect::<Result<_, _>>()?;
    let is_signed = |node: &Node<'_>| signed.iter().any(|n| n.same_node(node));
    if !is_signed(&envelope.body) {
        return Err(SecurityError::WrongNodeSigned("the SOAP Body"));
    }
    let timestamp = security.child_elements().into_iter().find(|c| c.is(ns::WSU, "Timestamp"));
    if let Some(ts) = &timestamp {
        if profile.signature.timestamp_signed && !is_signed(ts) {
            return Err(SecurityError::WrongNodeSigned("the Timestamp"));
        }
    }
    let addressing_blocks = envelope.addressing_blocks();
    if profile.signature.addressing_signed && !addressing_blocks.iter().all(&is_signed) {
        return Err(SecurityError::WrongNodeSigned("the WS-Addressing headers"));
    }
    let addressing = read_addressing(&addressing_blocks)?;
    if profile.signature.token_signed {
        let token_node = token.and_then(|t| doc.node(t));
        if !token_node.as_ref().is_some_and(&is_signed) {
            return Err(SecurityError::WrongNodeSigned("the BinarySecurityToken"));
        }
    }
    // Only a signed Timestamp dates the message: an unsigned one (WSS4J's and CXF's default
    // signature covers the Body only) is checked, but the replay cache then keeps the message
    // for the replay retention, as if it had none.
    let timestamp_signed = timestamp.as_ref().is_some_and(is_signed);
    let expires = match &timestamp {
        Some(ts) if timestamp_signed => check_timestamp(ts, policy)?,
        Some(ts) => {
            check_timestamp(ts, policy)?;
            policy.now + policy.replay_retention
        }
        None => policy.now + policy.replay_retention,
    };

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
        signer: certificate,
        replay_key: hex(&sha256(&replay_material)),
        expires,
        timestamped: timestamp_signed,
        was_encrypted,
        addressing,
    })
}

/// Whether `style` names a certificate without carrying it (kept for the profile checks at
/// load: such a profile needs pinned certificates).
pub fn needs_pinned_certificates(styles: &[SignatureKeyReference]) -> bool {
    styles.iter().any(|s| s.carries_no_certificate())
}
