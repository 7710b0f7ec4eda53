//! A partner's WS-Security profile in the configuration (`[partners.security]`): a preset, the
//! options that change it (`[partners.security.inbound]`, `[partners.security.outbound]`), the
//! opt-ins to anything weaker than the strict profile (`allow_weak`), and the partner's own
//! Timestamp lifetime and clock skew. Built once at load into a [`Profile`], every name and
//! combination checked, the error naming its key.
//!
//! Must never: accept an algorithm weaker than the strict profile's without the partner's
//! opt-in, or a reference that names a certificate without pinned certificates to name.

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::wssec::profile::{
    Canonicalization, DataEncryption, DigestAlgorithm, EncryptedKeyReference, EncryptedPart, KeyTransport, Preset,
    Profile, ReferenceTransforms, SignatureAlgorithm, SignatureKeyReference, TimestampRule,
};
use crate::wssec::SoapVersion;

/// `[partners.security]` as written.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPartnerSecurity {
    /// `strict` (default), `wss4j-defaults`, `cxf`, `wcf-basic256sha256`, `wcf-basic256`, `zeep`,
    /// `node-soap`.
    pub preset: Option<String>,
    /// Opt-ins to what is weaker than the strict profile: `sha1` (rsa-sha1, sha1 digests),
    /// `cbc` (AES-CBC, under the CBC countermeasures).
    #[serde(default)]
    pub allow_weak: Vec<String>,
    /// This partner's Timestamp lifetime for what we send; default `[security]`'s.
    pub timestamp_ttl_seconds: Option<i64>,
    /// The clock difference allowed with this partner; default `[security]`'s.
    pub clock_skew_seconds: Option<i64>,
    #[serde(default)]
    pub inbound: RawInboundSecurity,
    #[serde(default)]
    pub outbound: RawOutboundSecurity,
}

/// `[partners.security.inbound]`: replaces the preset's accepted values, key by key.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RawInboundSecurity {
    pub signature_algorithms: Option<Vec<String>>,
    pub digest_algorithms: Option<Vec<String>>,
    pub c14n: Option<Vec<String>>,
    pub transforms: Option<Vec<String>>,
    pub key_references: Option<Vec<String>>,
    /// `required` or `optional`.
    pub timestamp: Option<String>,
    pub timestamp_signed: Option<bool>,
    pub addressing_signed: Option<bool>,
    pub token_signed: Option<bool>,
    pub data_encryption: Option<Vec<String>>,
    pub key_transport: Option<Vec<String>>,
    pub encrypted_key_references: Option<Vec<String>>,
    pub encrypted_parts: Option<Vec<String>>,
    pub encrypted_signature: Option<bool>,
}

/// `[partners.security.outbound]`: replaces the preset's choices, key by key.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RawOutboundSecurity {
    pub signature_algorithm: Option<String>,
    pub digest_algorithm: Option<String>,
    pub c14n: Option<String>,
    pub transforms: Option<String>,
    pub key_reference: Option<String>,
    pub timestamp: Option<bool>,
    pub data_encryption: Option<String>,
    pub key_transport: Option<String>,
    pub encrypted_key_reference: Option<String>,
    pub encrypted_part: Option<String>,
    pub encrypt_signature: Option<bool>,
    /// Give the EncryptedData a KeyInfo naming the EncryptedKey (for xmlsec1, xml-encryption).
    pub encrypted_data_key_info: Option<bool>,
    /// `1.1` or `1.2`.
    pub soap_version: Option<String>,
    pub addressing: Option<bool>,
    pub sign_addressing: Option<bool>,
}

/// What the profile is checked against at load.
pub struct Context<'a> {
    /// `partner XX: security` (error keys start with it).
    pub key: &'a str,
    pub encrypt: bool,
    /// The partner has pinned signing certificates (references that only name a certificate
    /// can resolve).
    pub has_pinned: bool,
    /// Our signing key is an EC key (else RSA).
    pub our_key_is_ec: bool,
}

fn one<T: Copy>(key: &str, value: &str, all: &[T], name: fn(T) -> &'static str) -> Result<T, ConfigError> {
    all.iter().copied().find(|v| name(*v) == value).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
        let extra = if value == "rsa-1_5" { " (RSA PKCS#1 v1.5 key transport is never accepted)" } else { "" };
        invalid(key, format!("{value:?} is not one of {}{extra}", names.join(", ")))
    })
}

fn many<T: Copy + PartialEq>(
    key: &str,
    values: &[String],
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<Vec<T>, ConfigError> {
    if values.is_empty() {
        return Err(invalid(key, "must list at least one value"));
    }
    let mut out = Vec::new();
    for v in values {
        let parsed = one(key, v, all, name)?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// The partner's profile: its preset, then each option written, then the checks.
pub fn build(raw: &RawPartnerSecurity, cx: &Context<'_>) -> Result<Profile, ConfigError> {
    let k = |name: &str| format!("{}.{name}", cx.key);
    let preset = match raw.preset.as_deref() {
        None => Preset::Strict,
        Some(name) => Preset::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
            invalid(k("preset"), format!("{name:?} is not one of {}", names.join(", ")))
        })?,
    };
    let mut p = preset.profile(cx.encrypt);
    apply_inbound(&mut p, &raw.inbound, &|n| k(&format!("inbound.{n}")), cx.encrypt)?;
    apply_outbound(&mut p, &raw.outbound, &|n| k(&format!("outbound.{n}")), cx.encrypt)?;
    check(&p, raw, cx, &k)?;
    Ok(p)
}

fn apply_inbound(
    p: &mut Profile,
    raw: &RawInboundSecurity,
    k: &dyn Fn(&str) -> String,
    encrypt: bool,
) -> Result<(), ConfigError> {
    let sig = &mut p.inbound.signature;
    if let Some(v) = &raw.signature_algorithms {
        sig.methods = many(&k("signature_algorithms"), v, &SignatureAlgorithm::ALL, SignatureAlgorithm::name)?;
    }
    if let Some(v) = &raw.digest_algorithms {
        sig.digests = many(&k("digest_algorithms"), v, &DigestAlgorithm::ALL, DigestAlgorithm::name)?;
    }
    if let Some(v) = &raw.c14n {
        sig.c14n = many(&k("c14n"), v, &Canonicalization::ALL, Canonicalization::name)?;
    }
    if let Some(v) = &raw.transforms {
        sig.transforms = many(&k("transforms"), v, &ReferenceTransforms::ALL, ReferenceTransforms::name)?;
    }
    if let Some(v) = &raw.key_references {
        sig.key_references = many(&k("key_references"), v, &SignatureKeyReference::ALL, SignatureKeyReference::name)?;
    }
    if let Some(v) = raw.timestamp_signed {
        sig.timestamp_signed = v;
    }
    if let Some(v) = raw.addressing_signed {
        sig.addressing_signed = v;
    }
    if let Some(v) = raw.token_signed {
        sig.token_signed = v;
    }
    if let Some(v) = &raw.timestamp {
        p.inbound.timestamp = match v.as_str() {
            "required" => TimestampRule::Required,
            "optional" => TimestampRule::Optional,
            other => return Err(invalid(k("timestamp"), format!("{other:?} is not one of required, optional"))),
        };
    }
    let encryption_keys = [
        ("data_encryption", raw.data_encryption.is_some()),
        ("key_transport", raw.key_transport.is_some()),
        ("encrypted_key_references", raw.encrypted_key_references.is_some()),
        ("encrypted_parts", raw.encrypted_parts.is_some()),
        ("encrypted_signature", raw.encrypted_signature.is_some()),
    ];
    let Some(enc) = p.inbound.encryption.as_mut() else {
        if let Some((name, _)) = encryption_keys.iter().find(|(_, set)| *set) {
            debug_assert!(!encrypt);
            return Err(invalid(k(name), "the partner's profile is sign (nothing is encrypted)"));
        }
        return Ok(());
    };
    if let Some(v) = &raw.data_encryption {
        enc.data = many(&k("data_encryption"), v, &DataEncryption::ALL, DataEncryption::name)?;
    }
    if let Some(v) = &raw.key_transport {
        enc.key_transport = many(&k("key_transport"), v, &KeyTransport::ALL, KeyTransport::name)?;
    }
    if let Some(v) = &raw.encrypted_key_references {
        enc.key_references =
            many(&k("encrypted_key_references"), v, &EncryptedKeyReference::ALL, EncryptedKeyReference::name)?;
    }
    if let Some(v) = &raw.encrypted_parts {
        enc.parts = many(&k("encrypted_parts"), v, &EncryptedPart::ALL, EncryptedPart::name)?;
    }
    if let Some(v) = raw.encrypted_signature {
        enc.encrypted_signature = v;
    }
    Ok(())
}

fn apply_outbound(
    p: &mut Profile,
    raw: &RawOutboundSecurity,
    k: &dyn Fn(&str) -> String,
    encrypt: bool,
) -> Result<(), ConfigError> {
    let sig = &mut p.outbound.signature;
    if let Some(v) = &raw.signature_algorithm {
        sig.method = one(&k("signature_algorithm"), v, &SignatureAlgorithm::ALL, SignatureAlgorithm::name)?;
    }
    if let Some(v) = &raw.digest_algorithm {
        sig.digest = one(&k("digest_algorithm"), v, &DigestAlgorithm::ALL, DigestAlgorithm::name)?;
    }
    if let Some(v) = &raw.c14n {
        sig.c14n = one(&k("c14n"), v, &Canonicalization::ALL, Canonicalization::name)?;
    }
    if let Some(v) = &raw.transforms {
        sig.transforms = one(&k("transforms"), v, &ReferenceTransforms::ALL, ReferenceTransforms::name)?;
    }
    if let Some(v) = &raw.key_reference {
        sig.key_reference = one(&k("key_reference"), v, &SignatureKeyReference::ALL, SignatureKeyReference::name)?;
    }
    if let Some(v) = raw.sign_addressing {
        sig.sign_addressing = v;
    }
    if let Some(v) = raw.timestamp {
        p.outbound.timestamp = v;
    }
    if let Some(v) = raw.addressing {
        p.outbound.addressing = v;
    }
    if let Some(v) = &raw.soap_version {
        p.outbound.soap_version = match v.as_str() {
            "1.1" => SoapVersion::V11,
            "1.2" => SoapVersion::V12,
            other => return Err(invalid(k("soap_version"), format!("{other:?} is not one of 1.1, 1.2"))),
        };
    }
    let encryption_keys = [
        ("data_encryption", raw.data_encryption.is_some()),
        ("key_transport", raw.key_transport.is_some()),
        ("encrypted_key_reference", raw.encrypted_key_reference.is_some()),
        ("encrypted_part", raw.encrypted_part.is_some()),
        ("encrypt_signature", raw.encrypt_signature.is_some()),
        ("encrypted_data_key_info", raw.encrypted_data_key_info.is_some()),
    ];
    let Some(enc) = p.outbound.encryption.as_mut() else {
        if let Some((name, _)) = encryption_keys.iter().find(|(_, set)| *set) {
            debug_assert!(!encrypt);
            return Err(invalid(k(name), "the partner's profile is sign (nothing is encrypted)"));
        }
        return Ok(());
    };
    if let Some(v) = &raw.data_encryption {
        enc.data = one(&k("data_encryption"), v, &DataEncryption::ALL, DataEncryption::name)?;
    }
    if let Some(v) = &raw.key_transport {
        enc.key_transport = one(&k("key_transport"), v, &KeyTransport::ALL, KeyTransport::name)?;
    }
    if let Some(v) = &raw.encrypted_key_reference {
        enc.key_reference =
            one(&k("encrypted_key_reference"), v, &EncryptedKeyReference::ALL, EncryptedKeyReference::name)?;
    }
    if let Some(v) = &raw.encrypted_part {
        enc.part = one(&k("encrypted_part"), v, &EncryptedPart::ALL, EncryptedPart::name)?;
    }
    if let Some(v) = raw.encrypt_signature {
        enc.encrypt_signature = v;
    }
    if let Some(v) = raw.encrypted_data_key_info {
        enc.data_key_info = v;
    }
    Ok(())
}

/// The combinations that cannot work, and the opt-ins to anything weak.
fn check(
    p: &Profile,
    raw: &RawPartnerSecurity,
    cx: &Context<'_>,
    k: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    for name in &raw.allow_weak {
        if !["sha1", "cbc"].contains(&name.as_str()) {
            return Err(invalid(k("allow_weak"), format!("{name:?} is not one of sha1, cbc")));
        }
    }
    let missing: Vec<&str> = p.weaknesses().into_iter().filter(|w| !raw.allow_weak.iter().any(|a| a == w)).collect();
    if !missing.is_empty() {
        let what: Vec<String> = missing
            .iter()
            .map(|w| match *w {
                "sha1" => "rsa-sha1 or sha1 digests".to_owned(),
                _ => "AES-CBC".to_owned(),
            })
            .collect();
        return Err(invalid(
            k("allow_weak"),
            format!(
                "the profile ({}) uses {}, weaker than the strict profile: opt in with allow_weak = [{}]",
                p.preset.name(),
                what.join(" and "),
                missing.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    if !cx.has_pinned && p.inbound.signature.key_references.iter().any(|r| r.carries_no_certificate()) {
        let names: Vec<&str> = p
            .inbound
            .signature
            .key_references
            .iter()
            .filter(|r| r.carries_no_certificate())
            .map(|r| r.name())
            .collect();
        return Err(invalid(
            k("inbound.key_references"),
            format!(
                "{} only name a certificate: they resolve against the partner's pinned signing_certs, and it has none",
                names.join(", ")
            ),
        ));
    }
    if cx.encrypt && !p.encrypts() {
        return Err(invalid(
            k("preset"),
            format!("{} does not encrypt: give the partner profile = \"sign\"", p.preset.name()),
        ));
    }
    let out = &p.outbound.signature;
    if out.key_reference == SignatureKeyReference::PkiPath {
        return Err(invalid(k("outbound.key_reference"), "pkipath is accepted, not sent: choose another"));
    }
    match (out.method == SignatureAlgorithm::EcdsaSha256, cx.our_key_is_ec) {
        (true, false) => {
            return Err(invalid(k("outbound.signature_algorithm"), "ecdsa-sha256 needs an EC signing key"))
        }
        (false, true) => {
            return Err(invalid(
                k("outbound.signature_algorithm"),
                format!("{} needs an RSA signing key", out.method.name()),
            ))
        }
        _ => {}
    }
    if out.sign_addressing && !p.outbound.addressing {
        return Err(invalid(k("outbound.sign_addressing"), "needs outbound.addressing = true"));
    }
    Ok(())
}
