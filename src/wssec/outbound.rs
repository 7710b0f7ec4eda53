//! Builds secured SOAP envelopes to a partner's profile (its outbound side): `wsse:Security`
//! (mustUnderstand) with a `wsu:Timestamp` (unless the profile sends none), the signer's
//! certificate named in the profile's key-reference style, and a `ds:Signature` over the Body,
//! the Timestamp and (with WS-Addressing) the addressing headers; then, when a recipient is
//! given, the Body encrypted (sign, then encrypt) and, if the profile says so, the signature
//! too. The EncryptedData carries a `ds:KeyInfo` naming the EncryptedKey, so that tools which
//! decrypt one element at a time (xmlsec1, Santuario) find its key.
//!
//! Must never: read inbound results or reuse a Timestamp/signature: every call is a new message
//! on the wire, even for a retry of the same business message.

use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};

use super::ffi::{Document, EncryptTarget, SignatureAlgorithms};
use super::material::{Certificate, KeyPair};
use super::profile::{
    EncryptedKeyReference, EncryptedPart, Encrypting, Outbound, ReferenceTransforms, SignatureAlgorithm,
    SignatureKeyReference,
};
use super::{ns, SecurityError, SoapVersion};

/// WS-Addressing headers to send (the caller knows the operation and the exchange); each is
/// signed when the profile signs addressing headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressingHeaders {
    /// The WS-Addressing namespace (`ns::WSA`, or `ns::WSA_2004` to answer a partner using it).
    pub namespace: &'static str,
    pub action: String,
    pub message_id: String,
    pub to: Option<String>,
    /// The message this one answers.
    pub relates_to: Option<String>,
    /// `wsa:ReplyTo` with the anonymous address (requests).
    pub reply_to_anonymous: bool,
}

/// What to secure and how.
pub struct OutboundMessage<'a> {
    pub version: SoapVersion,
    /// The Body's single child element, serialised, with its own namespace declarations.
    pub body_xml: &'a str,
    pub signer: &'a KeyPair,
    /// The partner's encryption certificate; `None` sends signed only (acknowledgements and
    /// partners that do not encrypt).
    pub encrypt_for: Option<&'a Certificate>,
    /// The partner profile's outbound side; with `encrypt_for`, its encryption must be set.
    pub profile: &'a Outbound,
    pub addressing: Option<&'a AddressingHeaders>,
    pub now: DateTime<Utc>,
    pub ttl: Duration,
}

/// Builds, signs and (optionally) encrypts the envelope. Runs libxml2 work: call it on a
/// thread off the async workers (an XML security thread).
pub fn secure(msg: &OutboundMessage<'_>) -> Result<Vec<u8>, SecurityError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let encryption = match (msg.encrypt_for, msg.profile.encryption) {
        (Some(recipient), Some(policy)) => Some((recipient, policy)),
        (None, _) => None,
        (Some(_), None) => {
            return Err(SecurityError::Internal("a recipient to encrypt to, but no encryption in the profile".into()))
        }
    };
    let signing = &msg.profile.signature;
    if signing.key_reference == SignatureKeyReference::PkiPath {
        return Err(SecurityError::Build("an X509PKIPathv1 token is not sent; use another key reference".into()));
    }
    let key_is_ec = msg.signer.certificate.is_ec;
    if key_is_ec != (signing.method == SignatureAlgorithm::EcdsaSha256) {
        return Err(SecurityError::KeyMaterial(format!(
            "our signing key cannot make {} signatures",
            signing.method.name()
        )));
    }
    let template = envelope_template(msg, encryption, &id);
    let mut doc = Document::parse(template.as_bytes())?;
    doc.register_ids()?;
    let algorithms = SignatureAlgorithms {
        c14n: std::slice::from_ref(&signing.c14n),
        methods: std::slice::from_ref(&signing.method),
        digests: std::slice::from_ref(&signing.digest),
        enveloped: signing.transforms == ReferenceTransforms::EnvelopedThenC14n,
    };
    doc.sign(&format!("SIG-{id}"), &*msg.signer.private_key()?, &algorithms)?;
    if let Some((recipient, policy)) = encryption {
        let mut session = vec![0u8; policy.data.key_bytes()];
        openssl::rand::rand_bytes(&mut session).map_err(|e| SecurityError::Build(e.to_string()))?;
        let key_info = encrypted_data_key_info(&id);
        let body_id = format!("Body-{id}");
        let body = match policy.part {
            EncryptedPart::BodyContent => EncryptTarget::ContentOf(&body_id),
            EncryptedPart::BodyElement => EncryptTarget::OnlyChildOf(&body_id),
        };
        doc.encrypt_node(body, &format!("ED-{id}"), policy.data, &session)?;
        if policy.data_key_info {
            doc.insert_before(&format!("ED-{id}"), "CipherData", &key_info)?;
        }
        if policy.encrypt_signature {
            doc.encrypt_node(EncryptTarget::Element(&format!("SIG-{id}")), &format!("ES-{id}"), policy.data, &session)?;
            if policy.data_key_info {
                doc.insert_before(&format!("ES-{id}"), "CipherData", &key_info)?;
            }
        }
        doc.transport_key(&format!("EK-{id}"), &*recipient.public_key()?, &session, policy.key_transport)?;
    }
    Ok(doc.to_bytes())
}

/// The EncryptedData's `ds:KeyInfo`: a token reference to the EncryptedKey (WS-Security 1.1,
/// for WS-Security stacks) and a `ds:RetrievalMethod` to it (XML Encryption, for tools that
/// decrypt one EncryptedData at a time: xmlsec1, Santuario).
fn encrypted_data_key_info(id: &str) -> String {
    format!(
        r##"<ds:KeyInfo xmlns:ds="{ds}"><wsse:SecurityTokenReference xmlns:wsse="{wsse}" xmlns:wsse11="{wsse11}" wsse11:TokenType="{token}"><wsse:Reference URI="#EK-{id}"/></wsse:SecurityTokenReference><ds:RetrievalMethod Type="{ek}" URI="#EK-{id}"/></ds:KeyInfo>"##,
        ds = ns::DS,
        wsse = ns::WSSE,
        wsse11 = ns::WSSE11,
        token = ns::ENCRYPTED_KEY_TOKEN,
        ek = ns::ENC_KEY_TYPE,
    )
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A `wsse:KeyIdentifier` of `value_type` carrying `bytes`.
fn key_identifier(value_type: &str, bytes: &[u8]) -> String {
    format!(
        r#"<wsse:KeyIdentifier EncodingType="{b64}" ValueType="{value_type}">{value}</wsse:KeyIdentifier>"#,
        b64 = ns::BASE64_BINARY,
        value = base64(bytes)
    )
}

fn issuer_serial(cert: &Certificate) -> String {
    format!(
        "<ds:X509Data><ds:X509IssuerSerial><ds:X509IssuerName>{}</ds:X509IssuerName><ds:X509SerialNumber>{}</ds:X509SerialNumber></ds:X509IssuerSerial></ds:X509Data>",
        xml_escape(&cert.issuer_rfc2253),
        cert.serial_decimal
    )
}

fn binary_security_token(cert: &Certificate, token_id: &str) -> String {
    format!(
        r#"<wsse:BinarySecurityToken EncodingType="{b64}" ValueType="{x509}" wsu:Id="{token_id}">{value}</wsse:BinarySecurityToken>"#,
        b64 = ns::BASE64_BINARY,
        x509 = ns::X509V3,
        value = base64(&cert.der)
    )
}

fn token_reference(token_id: &str) -> String {
    format!(r##"<wsse:Reference URI="#{token_id}" ValueType="{x509}"/>"##, x509 = ns::X509V3)
}

/// The signature's KeyInfo content (inside a SecurityTokenReference) for `cert`.
fn signer_reference(style: SignatureKeyReference, cert: &Certificate, token_id: &str) -> String {
    match style {
        SignatureKeyReference::BinarySecurityToken | SignatureKeyReference::PkiPath => token_reference(token_id),
        SignatureKeyReference::X509KeyIdentifier => key_identifier(ns::X509V3, &cert.der),
        SignatureKeyReference::IssuerSerial => issuer_serial(cert),
        SignatureKeyReference::SubjectKeyIdentifier => key_identifier(ns::X509_SKI, &cert.subject_key_identifier),
        SignatureKeyReference::Thumbprint => key_identifier(ns::THUMBPRINT_SHA1, &cert.thumbprint_sha1),
    }
}

/// The EncryptedKey's KeyInfo content for the recipient `cert`.
fn recipient_reference(style: EncryptedKeyReference, cert: &Certificate, token_id: &str) -> String {
    let str_ = |inner: String| format!("<wsse:SecurityTokenReference>{inner}</wsse:SecurityTokenReference>");
    match style {
        EncryptedKeyReference::IssuerSerial => str_(issuer_serial(cert)),
        EncryptedKeyReference::SubjectKeyIdentifier => str_(key_identifier(ns::X509_SKI, &cert.subject_key_identifier)),
        EncryptedKeyReference::Thumbprint => str_(key_identifier(ns::THUMBPRINT_SHA1, &cert.thumbprint_sha1)),
        EncryptedKeyReference::X509KeyIdentifier => str_(key_identifier(ns::X509V3, &cert.der)),
        EncryptedKeyReference::BinarySecurityToken => str_(token_reference(token_id)),
        EncryptedKeyReference::X509Certificate => {
            format!("<ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data>", base64(&cert.der))
        }
    }
}

fn addressing_headers(a: &AddressingHeaders, id: &str, must_understand: &str) -> (String, Vec<String>) {
    let mut ids = Vec::new();
    let mut xml = String::new();
    let mut header = |local: &str, content: &str, mandatory: bool| {
        let hid = format!("WSA{}-{id}", ids.len());
        let mu = if mandatory { format!(r#" soap:mustUnderstand="{must_understand}""#) } else { String::new() };
        xml.push_str(&format!(
            r#"<wsa:{local} xmlns:wsa="{ns}" wsu:Id="{hid}"{mu}>{content}</wsa:{local}>"#,
            ns = a.namespace
        ));
        ids.push(hid);
    };
    header("Action", &xml_escape(&a.action), true);
    header("MessageID", &xml_escape(&a.message_id), false);
    if let Some(r) = &a.relates_to {
        header("RelatesTo", &xml_escape(r), false);
    }
    if a.reply_to_anonymous {
        let anonymous = if a.namespace == ns::WSA {
            "http://www.w3.org/2005/08/addressing/anonymous"
        } else {
            "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
        };
        header("ReplyTo", &format!(r#"<wsa:Address>{anonymous}</wsa:Address>"#), false);
    }
    if let Some(to) = &a.to {
        header("To", &xml_escape(to), true);
    }
    (xml, ids)
}

fn envelope_template(msg: &OutboundMessage<'_>, encryption: Option<(&Certificate, Encrypting)>, id: &str) -> String {
    let signing = &msg.profile.signature;
    let must_understand = match msg.version {
        SoapVersion::V11 => "1",
        SoapVersion::V12 => "true",
    };
    let signer = &msg.signer.certificate;
    let signer_token_id = format!("X509-{id}");
    let recipient_token_id = format!("X509R-{id}");
    let timestamp = msg.profile.timestamp.then(|| {
        format!(
            r#"<wsu:Timestamp wsu:Id="TS-{id}"><wsu:Created>{}</wsu:Created><wsu:Expires>{}</wsu:Expires></wsu:Timestamp>"#,
            msg.now.to_rfc3339_opts(SecondsFormat::Millis, true),
            (msg.now + msg.ttl).to_rfc3339_opts(SecondsFormat::Millis, true)
        )
    });
    let (addressing, addressing_ids) = match msg.addressing {
        Some(a) => addressing_headers(a, id, must_understand),
        None => (String::new(), Vec::new()),
    };
    let mut tokens = String::new();
    if signing.key_reference == SignatureKeyReference::BinarySecurityToken {
        tokens.push_str(&binary_security_token(signer, &signer_token_id));
    }
    let mut encrypted_key = String::new();
    if let Some((recipient, policy)) = encryption {
        if policy.key_reference == EncryptedKeyReference::BinarySecurityToken {
            tokens.push_str(&binary_security_token(recipient, &recipient_token_id));
        }
        let mut references = format!(r##"<xenc:DataReference URI="#ED-{id}"/>"##);
        if policy.encrypt_signature {
            references.push_str(&format!(r##"<xenc:DataReference URI="#ES-{id}"/>"##));
        }
        encrypted_key = format!(
            concat!(
                r#"<xenc:EncryptedKey xmlns:xenc="{xenc}" Id="EK-{id}">"#,
                r#"<xenc:EncryptionMethod Algorithm="{oaep}"><ds:DigestMethod xmlns:ds="{ds}" Algorithm="{oaep_digest}"/></xenc:EncryptionMethod>"#,
                r#"<ds:KeyInfo xmlns:ds="{ds}">{reference}</ds:KeyInfo>"#,
                r#"<xenc:CipherData><xenc:CipherValue></xenc:CipherValue></xenc:CipherData>"#,
                r#"<xenc:ReferenceList>{references}</xenc:ReferenceList>"#,
                r#"</xenc:EncryptedKey>"#
            ),
            xenc = ns::XENC,
            id = id,
            oaep = policy.key_transport.uri(),
            ds = ns::DS,
            oaep_digest = policy.key_transport.oaep_digest_uri(),
            reference = recipient_reference(policy.key_reference, recipient, &recipient_token_id),
            references = references,
        );
    }
    let transforms = match signing.transforms {
        ReferenceTransforms::C14n => format!(r#"<ds:Transform Algorithm="{}"/>"#, signing.c14n.uri()),
        ReferenceTransforms::EnvelopedThenC14n => format!(
            r#"<ds:Transform Algorithm="{}"/><ds:Transform Algorithm="{}"/>"#,
            ns::ENVELOPED,
            signing.c14n.uri()
        ),
    };
    let reference = |uri: &str| {
        format!(
            r##"<ds:Reference URI="#{uri}"><ds:Transforms>{transforms}</ds:Transforms><ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue></ds:DigestValue></ds:Reference>"##,
            digest = signing.digest.uri()
        )
    };
    let mut references = String::new();
    if timestamp.is_some() {
        references.push_str(&reference(&format!("TS-{id}")));
    }
    references.push_str(&reference(&format!("Body-{id}")));
    if signing.sign_addressing {
        for header_id in &addressing_ids {
            references.push_str(&reference(header_id));
        }
    }
    format!(
        concat!(
            r#"<soap:Envelope xmlns:soap="{soap}" xmlns:wsu="{wsu}">"#,
            r#"<soap:Header>{addressing}<wsse:Security xmlns:wsse="{wsse}" soap:mustUnderstand="{mu}">"#,
            "{timestamp}{tokens}{encrypted_key}",
            r#"<ds:Signature xmlns:ds="{ds}" Id="SIG-{id}"><ds:SignedInfo>"#,
            r#"<ds:CanonicalizationMethod Algorithm="{c14n}"/><ds:SignatureMethod Algorithm="{method}"/>"#,
            "{references}",
            r#"</ds:SignedInfo><ds:SignatureValue></ds:SignatureValue>"#,
            r#"<ds:KeyInfo><wsse:SecurityTokenReference>{signer_reference}</wsse:SecurityTokenReference></ds:KeyInfo>"#,
            r#"</ds:Signature></wsse:Security></soap:Header>"#,
            r#"<soap:Body wsu:Id="Body-{id}">{body}</soap:Body></soap:Envelope>"#
        ),
        soap = msg.version.namespace(),
        wsse = ns::WSSE,
        wsu = ns::WSU,
        mu = must_understand,
        addressing = addressing,
        timestamp = timestamp.unwrap_or_default(),
        tokens = tokens,
        encrypted_key = encrypted_key,
        ds = ns::DS,
        id = id,
        c14n = signing.c14n.uri(),
        method = signing.method.uri(),
        references = references,
        signer_reference = signer_reference(signing.key_reference, signer, &signer_token_id),
        body = msg.body_xml,
    )
}

/// Escapes text for element content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
