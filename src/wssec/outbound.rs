//! Builds secured SOAP envelopes: `wsse:Security` (mustUnderstand) with `wsu:Timestamp`, an X.509
//! `BinarySecurityToken` and a `ds:Signature` over the Body and the Timestamp; then, when a
//! recipient is given, the Body content encrypted (sign, then encrypt).
//!
//! Must never: read inbound results or reuse a Timestamp/signature: every call is a new message
//! on the wire, even for a retry of the same business message.

use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};

use super::ffi::Document;
use super::material::{Certificate, KeyPair};
use super::profile::{EncryptionPolicy, Profile};
use super::{ns, SecurityError, SoapVersion};

/// What to secure and how.
pub struct OutboundMessage<'a> {
    pub version: SoapVersion,
    /// The Body's single child element, serialised, with its own namespace declarations.
    pub body_xml: &'a str,
    pub signer: &'a KeyPair,
    /// The partner's encryption certificate; `None` sends signed only (acknowledgements and
    /// partners whose profile is `sign`).
    pub encrypt_for: Option<&'a Certificate>,
    /// The algorithms and forms agreed with the partner; with `encrypt_for`, its encryption
    /// part must be set.
    pub profile: &'a Profile,
    pub now: DateTime<Utc>,
    pub ttl: Duration,
}

/// Builds, signs and (optionally) encrypts the envelope. Runs libxml2 work: call it on a
/// blocking thread.
pub fn secure(msg: &OutboundMessage<'_>) -> Result<Vec<u8>, SecurityError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let encryption = match (msg.encrypt_for, msg.profile.encryption) {
        (Some(recipient), Some(policy)) => Some((recipient, policy)),
        (None, _) => None,
        (Some(_), None) => {
            return Err(SecurityError::Internal("a recipient to encrypt to, but no encryption in the profile".into()))
        }
    };
    let template = envelope_template(msg, encryption, &id);
    let mut doc = Document::parse(template.as_bytes())?;
    doc.register_ids()?;
    doc.sign(&format!("SIG-{id}"), &*msg.signer.private_key()?, &msg.profile.signature)?;
    if let Some((recipient, policy)) = encryption {
        doc.encrypt_content(
            &format!("Body-{id}"),
            &format!("ED-{id}"),
            &format!("EK-{id}"),
            &*recipient.public_key()?,
            &policy,
        )?;
    }
    Ok(doc.to_bytes())
}

fn envelope_template(
    msg: &OutboundMessage<'_>,
    encryption: Option<(&Certificate, EncryptionPolicy)>,
    id: &str,
) -> String {
    let signature = &msg.profile.signature;
    let created = msg.now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let expires = (msg.now + msg.ttl).to_rfc3339_opts(SecondsFormat::Millis, true);
    let bst = base64::engine::general_purpose::STANDARD.encode(msg.signer.certificate.der.as_slice());
    let must_understand = match msg.version {
        SoapVersion::V11 => "1",
        SoapVersion::V12 => "true",
    };
    let encrypted_key = encryption.map(|(cert, policy)| encrypted_key_template(cert, &policy, id)).unwrap_or_default();
    let reference = |uri: &str| {
        format!(
            r##"<ds:Reference URI="#{uri}"><ds:Transforms><ds:Transform Algorithm="{c14n}"/></ds:Transforms><ds:DigestMethod Algorithm="{sha256}"/><ds:DigestValue></ds:DigestValue></ds:Reference>"##,
            c14n = signature.c14n.uri(),
            sha256 = signature.digest.uri()
        )
    };
    format!(
        concat!(
            r#"<soap:Envelope xmlns:soap="{soap}">"#,
            r#"<soap:Header><wsse:Security xmlns:wsse="{wsse}" xmlns:wsu="{wsu}" soap:mustUnderstand="{mu}">"#,
            r#"<wsu:Timestamp wsu:Id="TS-{id}"><wsu:Created>{created}</wsu:Created><wsu:Expires>{expires}</wsu:Expires></wsu:Timestamp>"#,
            r#"<wsse:BinarySecurityToken EncodingType="{b64}" ValueType="{x509}" wsu:Id="X509-{id}">{bst}</wsse:BinarySecurityToken>"#,
            "{encrypted_key}",
            r#"<ds:Signature xmlns:ds="{ds}" Id="SIG-{id}"><ds:SignedInfo>"#,
            r#"<ds:CanonicalizationMethod Algorithm="{c14n}"/><ds:SignatureMethod Algorithm="{rsa}"/>"#,
            "{ref_ts}{ref_body}",
            r#"</ds:SignedInfo><ds:SignatureValue></ds:SignatureValue>"#,
            r##"<ds:KeyInfo><wsse:SecurityTokenReference><wsse:Reference URI="#X509-{id}" ValueType="{x509}"/></wsse:SecurityTokenReference></ds:KeyInfo>"##,
            r#"</ds:Signature></wsse:Security></soap:Header>"#,
            r#"<soap:Body xmlns:wsu="{wsu}" wsu:Id="Body-{id}">{body}</soap:Body></soap:Envelope>"#
        ),
        soap = msg.version.namespace(),
        wsse = ns::WSSE,
        wsu = ns::WSU,
        mu = must_understand,
        id = id,
        created = created,
        expires = expires,
        b64 = ns::BASE64_BINARY,
        x509 = ns::X509V3,
        bst = bst,
        encrypted_key = encrypted_key,
        ds = ns::DS,
        c14n = signature.c14n.uri(),
        rsa = signature.method.uri(),
        ref_ts = reference(&format!("TS-{id}")),
        ref_body = reference(&format!("Body-{id}")),
        body = msg.body_xml,
    )
}

fn encrypted_key_template(cert: &Certificate, policy: &EncryptionPolicy, id: &str) -> String {
    format!(
        concat!(
            r#"<xenc:EncryptedKey xmlns:xenc="{xenc}" Id="EK-{id}">"#,
            r#"<xenc:EncryptionMethod Algorithm="{oaep}"><ds:DigestMethod xmlns:ds="{ds}" Algorithm="{sha1}"/></xenc:EncryptionMethod>"#,
            r#"<ds:KeyInfo xmlns:ds="{ds}"><wsse:SecurityTokenReference><ds:X509Data><ds:X509IssuerSerial>"#,
            r#"<ds:X509IssuerName>{issuer}</ds:X509IssuerName><ds:X509SerialNumber>{serial}</ds:X509SerialNumber>"#,
            r#"</ds:X509IssuerSerial></ds:X509Data></wsse:SecurityTokenReference></ds:KeyInfo>"#,
            r#"<xenc:CipherData><xenc:CipherValue></xenc:CipherValue></xenc:CipherData>"#,
            r##"<xenc:ReferenceList><xenc:DataReference URI="#ED-{id}"/></xenc:ReferenceList>"##,
            r#"</xenc:EncryptedKey>"#
        ),
        xenc = ns::XENC,
        id = id,
        oaep = policy.key_transport.uri(),
        ds = ns::DS,
        sha1 = policy.key_transport.oaep_digest_uri(),
        issuer = xml_escape(&cert.issuer_rfc2253),
        serial = cert.serial_decimal,
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
