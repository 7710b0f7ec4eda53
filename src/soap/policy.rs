//! A security profile as WS-SecurityPolicy 1.3 (WS-Policy 1.5) for the WSDL: one
//! `sp:AsymmetricBinding` policy attached to each binding, and per operation the parts that are
//! signed and encrypted on input and output, so that a CXF or WCF client can configure itself.
//!
//! What the standard cannot say is said in the policy's own documentation: the algorithm suites
//! of WS-SecurityPolicy name AES-CBC only (no GCM), and name one data-encryption and one
//! signature algorithm where a profile may accept several.
//!
//! Must never: describe something the profile does not accept (the assertions come from the
//! profile itself, never from a fixed text).

use crate::wssec::profile::{
    DigestAlgorithm, EncryptedKeyReference, Profile, SignatureAlgorithm, SignatureKeyReference, TimestampRule,
};

pub const WSP: &str = "http://www.w3.org/ns/ws-policy";
pub const SP: &str = "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702";

/// The ids of the policies [`policies`] writes.
pub const BINDING_POLICY: &str = "CoConnectBindingPolicy";
pub const SIGNED_AND_ENCRYPTED: &str = "CoConnectSignedEncryptedParts";
pub const SIGNED_ONLY: &str = "CoConnectSignedParts";

/// The WS-SecurityPolicy algorithm suite closest to what the profile accepts, and whether it
/// names it exactly.
fn algorithm_suite(p: &Profile) -> (&'static str, bool) {
    let sig = &p.inbound.signature;
    let sha256 = sig.methods.contains(&SignatureAlgorithm::RsaSha256) && sig.digests.contains(&DigestAlgorithm::Sha256);
    let data = p.inbound.encryption.as_ref().map(|e| e.data.clone()).unwrap_or_default();
    let aes128 = !data.is_empty() && data.iter().all(|d| d.key_bytes() == 16);
    let exact = data.iter().all(|d| d.is_cbc())
        && sig.methods.len() == 1
        && sig.digests.len() == 1
        && !sig.methods.contains(&SignatureAlgorithm::EcdsaSha256);
    let suite = match (sha256, aes128) {
        (true, false) => "Basic256Sha256",
        (true, true) => "Basic128Sha256",
        (false, false) => "Basic256",
        (false, true) => "Basic128",
    };
    (suite, exact)
}

/// The policies to place in the WSDL for `profile` (`wsu` and the policy prefixes declared on
/// them).
pub fn policies(profile: &Profile) -> String {
    let (suite, exact) = algorithm_suite(profile);
    let inbound = &profile.inbound;
    let refs = &inbound.signature.key_references;
    let enc_refs = inbound.encryption.as_ref().map(|e| e.key_references.clone()).unwrap_or_default();
    let any = |s: SignatureKeyReference, e: EncryptedKeyReference| refs.contains(&s) || enc_refs.contains(&e);
    let mut wss = Vec::new();
    if any(SignatureKeyReference::X509KeyIdentifier, EncryptedKeyReference::X509KeyIdentifier)
        || any(SignatureKeyReference::SubjectKeyIdentifier, EncryptedKeyReference::SubjectKeyIdentifier)
    {
        wss.push("<sp:MustSupportRefKeyIdentifier/>");
    }
    if any(SignatureKeyReference::IssuerSerial, EncryptedKeyReference::IssuerSerial) {
        wss.push("<sp:MustSupportRefIssuerSerial/>");
    }
    if any(SignatureKeyReference::Thumbprint, EncryptedKeyReference::Thumbprint) {
        wss.push("<sp:MustSupportRefThumbprint/>");
    }
    let encryption = inbound.encryption.as_ref();
    let mut binding = Vec::new();
    binding.push(format!(
        "<sp:InitiatorToken><wsp:Policy><sp:X509Token sp:IncludeToken=\"{SP}/IncludeToken/AlwaysToRecipient\"><wsp:Policy><sp:WssX509V3Token10/></wsp:Policy></sp:X509Token></wsp:Policy></sp:InitiatorToken>"
    ));
    binding.push(format!(
        "<sp:RecipientToken><wsp:Policy><sp:X509Token sp:IncludeToken=\"{SP}/IncludeToken/Never\"><wsp:Policy><sp:WssX509V3Token10/></wsp:Policy></sp:X509Token></wsp:Policy></sp:RecipientToken>"
    ));
    binding.push(format!("<sp:AlgorithmSuite><wsp:Policy><sp:{suite}/></wsp:Policy></sp:AlgorithmSuite>"));
    binding.push("<sp:Layout><wsp:Policy><sp:Lax/></wsp:Policy></sp:Layout>".to_owned());
    if inbound.timestamp == TimestampRule::Required {
        binding.push("<sp:IncludeTimestamp/>".to_owned());
    }
    if encryption.is_some_and(|e| e.encrypted_signature) {
        binding.push("<sp:EncryptSignature/>".to_owned());
    }
    if inbound.signature.token_signed {
        binding.push("<sp:ProtectTokens/>".to_owned());
    }
    binding.push("<sp:OnlySignEntireHeadersAndBody/>".to_owned());
    let mut notes = vec![format!(
        "Security profile {}: signatures {}, digests {}, key references {}.",
        profile.preset.name(),
        inbound.signature.methods.iter().map(|m| m.uri()).collect::<Vec<_>>().join(", "),
        inbound.signature.digests.iter().map(|d| d.uri()).collect::<Vec<_>>().join(", "),
        refs.iter().map(|r| r.name()).collect::<Vec<_>>().join(", "),
    )];
    match encryption {
        Some(e) => notes.push(format!(
            "The Body is encrypted with {} (key transport {}).",
            e.data.iter().map(|d| d.uri()).collect::<Vec<_>>().join(" or "),
            e.key_transport.iter().map(|k| k.uri()).collect::<Vec<_>>().join(", "),
        )),
        None => notes.push("Messages are signed, not encrypted.".to_owned()),
    }
    if !exact {
        notes.push(format!(
            "WS-SecurityPolicy cannot express this exactly: its algorithm suites name AES-CBC only (no AES-GCM) and one algorithm of each kind; {suite} is the nearest suite, the algorithms above are the ones accepted."
        ));
    }
    let addressing = if inbound.signature.addressing_signed {
        format!("<sp:Header Namespace=\"{}\"/>", crate::wssec::ns::WSA)
    } else {
        String::new()
    };
    let signed = format!("<sp:SignedParts><sp:Body/>{addressing}</sp:SignedParts>");
    let encrypted = if encryption.is_some() { "<sp:EncryptedParts><sp:Body/></sp:EncryptedParts>" } else { "" };
    format!(
        concat!(
            "<wsp:Policy xmlns:wsp=\"{wsp}\" xmlns:sp=\"{sp}\" xmlns:wsu=\"{wsu}\" wsu:Id=\"{binding_id}\">",
            "<wsp:ExactlyOne><wsp:All>",
            "<sp:AsymmetricBinding><wsp:Policy>{binding}</wsp:Policy></sp:AsymmetricBinding>",
            "<sp:Wss11><wsp:Policy>{wss}</wsp:Policy></sp:Wss11>",
            "</wsp:All></wsp:ExactlyOne></wsp:Policy>\n",
            "  <wsp:Policy xmlns:wsp=\"{wsp}\" xmlns:sp=\"{sp}\" xmlns:wsu=\"{wsu}\" wsu:Id=\"{both_id}\">",
            "<wsp:ExactlyOne><wsp:All>{signed}{encrypted}</wsp:All></wsp:ExactlyOne></wsp:Policy>\n",
            "  <wsp:Policy xmlns:wsp=\"{wsp}\" xmlns:sp=\"{sp}\" xmlns:wsu=\"{wsu}\" wsu:Id=\"{signed_id}\">",
            "<wsp:ExactlyOne><wsp:All>{signed}</wsp:All></wsp:ExactlyOne></wsp:Policy>\n",
            "  <wsdl:documentation>{notes}</wsdl:documentation>\n"
        ),
        wsp = WSP,
        sp = SP,
        wsu = crate::wssec::ns::WSU,
        binding_id = BINDING_POLICY,
        both_id = SIGNED_AND_ENCRYPTED,
        signed_id = SIGNED_ONLY,
        binding = binding.join(""),
        wss = wss.join(""),
        signed = signed,
        encrypted = encrypted,
        notes = crate::wssec::outbound::xml_escape(&notes.join(" ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wssec::profile::Preset;

    #[test]
    fn every_preset_says_what_it_accepts_and_what_the_standard_cannot() {
        for preset in Preset::ALL {
            for encrypt in [false, true] {
                let p = preset.profile(encrypt);
                let xml = policies(&p);
                assert!(xml.contains("<sp:AsymmetricBinding>"), "{preset:?}");
                assert_eq!(xml.contains("<sp:EncryptedParts>"), p.encrypts(), "{preset:?}");
                assert_eq!(xml.contains("<sp:IncludeTimestamp/>"), p.inbound.timestamp == TimestampRule::Required);
                for m in &p.inbound.signature.methods {
                    assert!(xml.contains(m.uri()), "{preset:?} {m:?}");
                }
            }
        }
        let strict = policies(&Profile::strict(true));
        assert!(strict.contains("<sp:Basic256Sha256/>") && strict.contains("cannot express this exactly"), "{strict}");
        let wcf = policies(&Preset::WcfBasic256.profile(true));
        assert!(wcf.contains("<sp:Basic256/>") && wcf.contains("<sp:EncryptSignature/>"), "{wcf}");
        assert!(!wcf.contains("cannot express"), "Basic256 is exactly the WCF suite: {wcf}");
        assert!(wcf.contains("MustSupportRefKeyIdentifier") && wcf.contains("MustSupportRefThumbprint"));
    }
}
