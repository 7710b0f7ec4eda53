//! `coconnect probe`: a conformance check an IT team runs against a partner's endpoint (or its
//! own) with a security profile, before the first real exchange. It fetches the WSDL, sends a
//! signed (and, under an encrypting profile, encrypted) `GetCO` look-up of a reference that
//! does not exist — answered `NotFound`, nothing stored on either side — and verifies the
//! signed answer, printing each step and, when one fails, what did not match: the key
//! reference style, an algorithm, an unsigned or missing Timestamp, the clocks, the receiver,
//! TLS, the credentials.
//!
//! It uses the gateway's configuration for keys, certificates and credentials, and a preset
//! named on the command line instead of the partner's configured profile: trying another
//! profile needs no change to the configuration.
//!
//! Must never: send anything but the look-up, or report success for an answer that did not
//! verify.

use std::sync::Arc;

use chrono::Utc;
use quick_xml::events::Event;

use crate::cli::say;
use crate::config::Settings;
use crate::message::business::{DocumentId, Lookup, LookupResult};
use crate::message::{Operation, Outgoing};
use crate::wssec::profile::{Preset, Profile};
use crate::wssec::SecurityError;

/// What to probe.
pub struct Probe<'a> {
    pub settings: Settings,
    /// The configured partner whose endpoint, certificates and credentials are used.
    pub partner: &'a str,
    /// Another endpoint than the configured one (e.g. our own gateway, to check it).
    pub endpoint: Option<String>,
    /// The preset to try; the partner's configured profile when `None`.
    pub preset: Option<Preset>,
}

/// Runs the probe, printing each step; `Ok(true)` only when the exchange worked.
pub async fn run(probe: Probe<'_>) -> anyhow::Result<bool> {
    let settings = Arc::new(probe.settings);
    let Some(partner) = settings.partners.get(probe.partner).cloned() else {
        anyhow::bail!("partner {} is not in the configuration", probe.partner);
    };
    let profile = match probe.preset {
        Some(preset) => preset.profile(partner.security.encrypts()),
        None => partner.security.clone(),
    };
    let endpoint = probe.endpoint.clone().unwrap_or_else(|| partner.endpoint.clone());
    step(format!(
        "probing {} at {endpoint} as {} with the {} profile{}",
        partner.party,
        settings.party,
        profile.preset.name(),
        if profile.encrypts() { " (signed and encrypted)" } else { " (signed)" }
    ))?;
    if !profile.weaknesses().is_empty() {
        step(format!("note: this profile uses {}, weaker than strict", profile.weaknesses().join(" and ")))?;
    }
    let client = crate::delivery::PartnerClient::new(settings.delivery.request_timeout.std(), settings.tls.clone());

    // 1. The WSDL.
    match client.get(&partner, &format!("{endpoint}?wsdl")).await {
        Ok((200, wsdl)) => {
            let text = String::from_utf8_lossy(&wsdl);
            let suite = ["Basic256Sha256", "Basic128Sha256", "Basic256", "Basic128"]
                .into_iter()
                .find(|s| text.contains(&format!("<sp:{s}/>")));
            match suite {
                Some(s) => ok(format!(
                    "1. WSDL fetched ({} bytes); its security policy names the algorithm suite {s}",
                    wsdl.len()
                ))?,
                None => ok(format!("1. WSDL fetched ({} bytes); it carries no WS-SecurityPolicy", wsdl.len()))?,
            }
        }
        Ok((status, _)) => warn(format!("1. WSDL: HTTP {status} (not needed for the exchange; going on)"))?,
        Err(e) => {
            fail(format!("1. WSDL: {e}"))?;
            diagnose_transport(&e)?;
            return Ok(false);
        }
    }

    // 2. The signed (and encrypted) look-up.
    let now = Utc::now();
    let message_id = uuid::Uuid::new_v4();
    let lookup = Lookup {
        document: DocumentId {
            issuer: partner.party.clone(),
            reference: format!("PROBE-{}", &message_id.simple().to_string()[..12]),
        },
        reference_code: "PROBE-0000-0000".into(),
    };
    let (message_id, body) =
        crate::soap::messages::new_request(&settings.party, &partner.party, &Outgoing::Lookup(&lookup), now);
    let (s, p, prof) = (settings.clone(), partner.clone(), profile.clone());
    let wire = crate::wssec::on_xml_security_thread(crate::wssec::Precedence::New, move || {
        crate::delivery::secured_request(&s, &p, &prof, Operation::GetCo, &body, now)
    })
    .await;
    let wire = match wire {
        Ok(w) => w,
        Err(e) => {
            fail(format!("2. the look-up could not be secured: {e}"))?;
            return Ok(false);
        }
    };
    ok(format!("2. look-up secured: {}", describe(&observe(&wire))))?;
    let (status, answer) =
        match client.post_to(&partner, &endpoint, Operation::GetCo, profile.outbound.soap_version, wire).await {
            Ok(r) => r,
            Err(e) => {
                fail(format!("3. sending: {e}"))?;
                diagnose_transport(&e)?;
                return Ok(false);
            }
        };
    if status != 200 {
        let fault = crate::soap::fault::read_fault(&answer);
        let code = fault.as_ref().and_then(|f| f.code.clone()).unwrap_or_default();
        fail(format!(
            "3. the partner refused the look-up: HTTP {status}{}",
            fault.as_ref().map(|f| format!(", fault {code}: {}", f.reason)).unwrap_or_default()
        ))?;
        diagnose_refusal(status, &code, &profile)?;
        return Ok(false);
    }
    ok(format!("3. HTTP 200 ({} bytes)", answer.len()))?;

    // 4. The signed answer, checked against the same profile.
    let (s, p, prof) = (settings.clone(), partner.clone(), profile.clone());
    let bytes = answer.clone();
    let verified = crate::wssec::on_xml_security_thread(crate::wssec::Precedence::InProgress, move || {
        let mut policy = s.inbound_policy(&p, crate::config::Expect::LookupResponse, Utc::now());
        policy.profile = prof.inbound;
        crate::wssec::inbound::process(&bytes, &policy)
    })
    .await;
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            fail(format!("4. the answer does not verify: {}: {e}", e.code()))?;
            diagnose_answer(&e, &observe(&answer), &profile)?;
            return Ok(false);
        }
    };
    ok(format!("4. the answer verifies: {}", describe(&observe(&answer))))?;
    let lpco = verified.parts().iter().find(|p| p.local_name == "LPCO").map(|p| p.xml.as_slice());
    match crate::soap::business::read_lookup_response(verified.body_child(), lpco) {
        Ok((answered, LookupResult::NotFound)) if answered == message_id.to_string() => {
            ok("5. the partner answered NotFound to our look-up, as it must: the exchange works".to_owned())?;
            Ok(true)
        }
        Ok((answered, _)) if answered != message_id.to_string() => {
            fail(format!("5. the answer is for another request ({answered})"))?;
            Ok(false)
        }
        Ok(_) => {
            fail("5. the partner returned a CO for a reference that cannot exist".to_owned())?;
            Ok(false)
        }
        Err(e) => {
            fail(format!("5. the answer is not a GetCOResponse: {e}"))?;
            Ok(false)
        }
    }
}

fn step(text: String) -> anyhow::Result<()> {
    say(text).map_err(Into::into)
}
fn ok(text: String) -> anyhow::Result<()> {
    say(format!("ok    {text}")).map_err(Into::into)
}
fn warn(text: String) -> anyhow::Result<()> {
    say(format!("warn  {text}")).map_err(Into::into)
}
fn fail(text: String) -> anyhow::Result<()> {
    say(format!("FAIL  {text}")).map_err(Into::into)
}
fn hint(text: &str) -> anyhow::Result<()> {
    say(format!("      -> {text}")).map_err(Into::into)
}

fn diagnose_transport(error: &str) -> anyhow::Result<()> {
    let lower = error.to_ascii_lowercase();
    if lower.contains("tls") || lower.contains("certificate") || lower.contains("handshake") {
        hint("TLS: check the partner's tls_server_cas and the host name in the endpoint, and that it accepts our [tls] client certificate")
    } else if lower.contains("connect") || lower.contains("refused") {
        hint(
            "the endpoint does not answer: check the URL, the network path and the partner's allow-list of our address",
        )
    } else if lower.contains("no answer within") {
        hint("no answer in time: the endpoint or a proxy in between holds the connection")
    } else {
        Ok(())
    }
}

/// What a refusal of our look-up means, for this profile.
fn diagnose_refusal(status: u16, code: &str, profile: &Profile) -> anyhow::Result<()> {
    let out = &profile.outbound;
    let text = match code {
        "AUTH-MISSING" | "AUTH-MALFORMED" | "AUTH-FAILED" => {
            "credentials: the partner does not accept our outbound_auth user name and password".to_owned()
        }
        "AUTH-SOURCE-ADDRESS" => "source address: the partner does not allow our address".to_owned(),
        "AUTH-TLS-MISMATCH" => "TLS identity: the partner expects another TLS client certificate from us".to_owned(),
        "WSS-ALGORITHM" => format!(
            "algorithm: the partner does not accept one of ours: signature {}, digest {}, c14n {}{}; try the preset of its stack",
            out.signature.method.name(),
            out.signature.digest.name(),
            out.signature.c14n.name(),
            out.encryption.map(|e| format!(", data {}", e.data.name())).unwrap_or_default()
        ),
        "WSS-UNSUPPORTED-TOKEN" => format!(
            "key reference style: the partner does not accept our signature's {}{}",
            out.signature.key_reference.name(),
            out.encryption.map(|e| format!(" or our EncryptedKey's {}", e.key_reference.name())).unwrap_or_default()
        ),
        "WSS-NOT-ENCRYPTED" => "encryption: the partner requires the Body encrypted (profile = \"sign-encrypt\")".to_owned(),
        "WSS-WRONG-NODE-SIGNED" => {
            "signed parts: the partner requires more to be signed (the Timestamp, WS-Addressing headers)".to_owned()
        }
        "WSS-BAD-TIMESTAMP" | "WSS-MISSING-SECURITY" if !out.timestamp => {
            "Timestamp: the partner requires one; this profile sends none".to_owned()
        }
        "WSS-BAD-TIMESTAMP" => "Timestamp: the partner refuses its form or lifetime (timestamp_ttl_seconds)".to_owned(),
        "WSS-EXPIRED" | "WSS-FUTURE-TIMESTAMP" => {
            format!("clocks: the partner's clock and ours differ by more than it allows (our time {})", Utc::now())
        }
        "WSS-UNTRUSTED-CERT" => "trust: the partner does not trust our signing certificate (send it ours, or the CA)".to_owned(),
        "WSS-DECRYPT" => "decryption: the partner cannot decrypt with the key our encryption_cert for it names".to_owned(),
        "WSS-CHECK-FAILED" => {
            "decryption or signature: the partner (under AES-CBC) does not say which; check encryption_cert and algorithms".to_owned()
        }
        "WSS-SIGNATURE-INVALID" => "signature: the partner computed another digest (canonicalisation or transforms differ)".to_owned(),
        "MSG-WRONG-RECEIVER" => "receiver: the partner's party code is not the one we have for it".to_owned(),
        "MSG-RATE-LIMIT" | "GW-BUSY" | "GW-INTERNAL" => "the partner is busy or failed: try again later".to_owned(),
        _ if status == 404 => "the endpoint path is wrong".to_owned(),
        _ if status == 401 || status == 403 => "access refused: credentials, source address or TLS identity".to_owned(),
        _ => return Ok(()),
    };
    hint(&text)
}

/// Why the partner's answer does not verify under this profile: what it sent against what the
/// profile expects.
fn diagnose_answer(e: &SecurityError, seen: &Observed, profile: &Profile) -> anyhow::Result<()> {
    let inbound = &profile.inbound;
    if let Some(m) = &seen.signature_method {
        if !inbound.signature.methods.iter().any(|a| a.uri() == m) {
            let expected: Vec<&str> = inbound.signature.methods.iter().map(|a| a.uri()).collect();
            hint(&format!("algorithm: the partner signs with {m}; the profile accepts {}", expected.join(", ")))?;
        }
    }
    for d in &seen.digests {
        if !inbound.signature.digests.iter().any(|a| a.uri() == d) {
            hint(&format!("algorithm: the partner digests with {d}"))?;
        }
    }
    if let Some(style) = &seen.key_reference {
        if !inbound.signature.key_references.iter().any(|k| k.name() == *style) {
            let expected: Vec<&str> = inbound.signature.key_references.iter().map(|k| k.name()).collect();
            hint(&format!(
                "key reference style: the partner names its certificate by {style}; the profile accepts {}",
                expected.join(", ")
            ))?;
        }
    }
    if !seen.timestamp {
        hint("Timestamp: the answer has none")?;
    }
    if let Some(d) = &seen.data_encryption {
        let accepted = inbound.encryption.as_ref().is_some_and(|e| e.data.iter().any(|a| a.uri() == d));
        if !accepted {
            hint(&format!("encryption: the partner encrypts with {d}, which the profile does not accept"))?;
        }
    }
    if matches!(e, SecurityError::UntrustedCertificate(_)) {
        hint("trust: the partner signs with a certificate that is not pinned nor chains to its trust_anchors")?;
    }
    if matches!(e, SecurityError::Expired(_) | SecurityError::FutureTimestamp(_)) {
        hint("clocks: the partner's Timestamp is outside our window (clock_skew_seconds)")?;
    }
    Ok(())
}

/// What a message shows of its security, read without verifying anything (for diagnosis only).
#[derive(Debug, Default)]
struct Observed {
    signature_method: Option<String>,
    digests: Vec<String>,
    key_reference: Option<&'static str>,
    timestamp: bool,
    data_encryption: Option<String>,
    encrypted_signature: bool,
}

fn observe(bytes: &[u8]) -> Observed {
    let mut seen = Observed::default();
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut in_key_info = false;
    let mut in_signature = 0usize;
    let mut depth_in_security = None::<usize>;
    let mut depth = 0usize;
    loop {
        let event = match reader.read_event() {
            Ok(Event::Eof) | Err(_) => break,
            Ok(e) => e,
        };
        let (start, empty) = match &event {
            Event::Start(s) => (Some(s.clone()), false),
            Event::Empty(s) => (Some(s.clone()), true),
            Event::End(e) => {
                let name = e.local_name();
                if name.as_ref() == b"KeyInfo" {
                    in_key_info = false;
                }
                if name.as_ref() == b"Signature" {
                    in_signature = in_signature.saturating_sub(1);
                }
                if depth_in_security == Some(depth) {
                    depth_in_security = None;
                }
                depth = depth.saturating_sub(1);
                (None, false)
            }
            _ => (None, false),
        };
        let Some(start) = start else { continue };
        if !empty {
            depth += 1;
        }
        let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        let algorithm = start
            .attributes()
            .flatten()
            .find(|a| a.key.local_name().as_ref() == b"Algorithm")
            .map(|a| String::from_utf8_lossy(&a.value).into_owned());
        let value_type = start
            .attributes()
            .flatten()
            .find(|a| a.key.local_name().as_ref() == b"ValueType")
            .map(|a| String::from_utf8_lossy(&a.value).into_owned());
        match local.as_str() {
            "Security" => depth_in_security = Some(depth),
            "Timestamp" if depth_in_security.is_some() => seen.timestamp = true,
            "Signature" if !empty => in_signature += 1,
            "SignatureMethod" => seen.signature_method = algorithm,
            "DigestMethod" if in_signature > 0 => {
                if let Some(a) = algorithm {
                    if !seen.digests.contains(&a) {
                        seen.digests.push(a);
                    }
                }
            }
            "KeyInfo" if in_signature > 0 && !empty => in_key_info = true,
            "Reference" if in_key_info && seen.key_reference.is_none() => {
                seen.key_reference =
                    Some(if value_type.as_deref() == Some(crate::wssec::ns::X509_PKIPATH) { "pkipath" } else { "bst" });
            }
            "X509IssuerSerial" if in_key_info && seen.key_reference.is_none() => {
                seen.key_reference = Some("issuer-serial")
            }
            "KeyIdentifier" if in_key_info && seen.key_reference.is_none() => {
                seen.key_reference = Some(match value_type.as_deref() {
                    Some(crate::wssec::ns::X509_SKI) => "ski",
                    Some(crate::wssec::ns::THUMBPRINT_SHA1) => "thumbprint",
                    _ => "x509-key-identifier",
                })
            }
            "EncryptedData" if depth_in_security.is_some() => {
                seen.encrypted_signature = true;
            }
            "EncryptionMethod" => {
                if let Some(a) = algorithm {
                    if a.contains("aes") && seen.data_encryption.is_none() {
                        seen.data_encryption = Some(a);
                    }
                }
            }
            _ => {}
        }
    }
    seen
}

fn describe(seen: &Observed) -> String {
    let mut parts = Vec::new();
    if let Some(m) = &seen.signature_method {
        parts.push(format!("signature {m}"));
    }
    if !seen.digests.is_empty() {
        parts.push(format!("digest {}", seen.digests.join(", ")));
    }
    if let Some(k) = seen.key_reference {
        parts.push(format!("key reference {k}"));
    }
    parts.push(if seen.timestamp { "Timestamp".to_owned() } else { "no Timestamp".to_owned() });
    if let Some(d) = &seen.data_encryption {
        parts.push(format!("encrypted {d}"));
    }
    if seen.encrypted_signature {
        parts.push("signature encrypted".to_owned());
    }
    parts.join("; ")
}
