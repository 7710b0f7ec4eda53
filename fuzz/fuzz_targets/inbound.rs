//! The whole inbound path: bytes -> `wssec::inbound::process` (precheck, libxml2 parse, ID
//! registration, decryption, signature verification) -> for whatever verifies, the message
//! header of the Body child and the CO of an LPCO part, as the SOAP endpoint reads them.
//!
//! Random bytes never carry a valid signature, so an input whose first byte is 0x80..=0xBF (a
//! UTF-8 continuation byte, which no well-formed XML document starts with) is a *splice*: it
//! is applied to a genuine SendCO signed by KR (encrypted for ID, or signed only), see
//! [`splice`]. Such a mutant that still verifies must read back exactly as the original
//! (same operation, header and CO): anything else means content was read that the signature
//! does not cover, and the target panics. Every other input goes to `process` as it is.
//!
//! Key material (a dev PKI for KR and ID) and the two genuine messages are made once and kept
//! in `fuzz/fixture/` (or `$COCONNECT_FUZZ_FIXTURE`), git-ignored, so that a crash file
//! reproduces in a later run on the same machine. Delete that folder for fresh keys.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use coconnect::payload::{parse_co, Lpco, LPCO_NAMESPACE};
use coconnect::soap::messages::request_xml;
use coconnect::soap::{Acknowledgement, MessageHeader, Operation};
use coconnect::wssec::inbound::{process, InboundPolicy, VerifiedMessage};
use coconnect::wssec::limits::XmlLimits;
use coconnect::wssec::material::{Certificate, KeyPair};
use coconnect::wssec::outbound::{secure, OutboundMessage};
use coconnect::wssec::trust::PartnerTrust;
use coconnect::wssec::SoapVersion;
use libfuzzer_sys::fuzz_target;

const EXAMPLE_CO: &str = include_str!("../../examples/co.xml");
const NOW_FILE: &str = "now.txt";
const SIGNED_ENCRYPTED: &str = "sendco.signed-encrypted.xml";
const SIGNED: &str = "sendco.signed.xml";

/// What the application reads from a verified message.
#[derive(Debug, PartialEq)]
struct Reading {
    operation: (String, String),
    header: Result<MessageHeader, Vec<coconnect::soap::AckError>>,
    cos: Vec<Result<Lpco, Vec<String>>>,
}

struct Fixture {
    /// ID's encryption key pair (we are ID, the receiver).
    decryption: KeyPair,
    /// KR's signing certificate, pinned.
    trust: PartnerTrust,
    /// The moment the genuine messages were made: the clock of every check.
    now: DateTime<Utc>,
    /// Genuine SendCOs: [signed and encrypted, signed only].
    genuine: [Vec<u8>; 2],
    /// What both read as.
    expected: Reading,
}

fn fixture_dir() -> PathBuf {
    std::env::var_os("COCONNECT_FUZZ_FIXTURE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixture")))
}

fn pair(dir: &Path, party: &str, encryption: bool) -> KeyPair {
    let f = coconnect::dev_pki::party_files(dir, party);
    let (key, cert) = if encryption { (f.encryption_key, f.encryption_cert) } else { (f.signing_key, f.signing_cert) };
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("fixture: {}: {e}", p.display()));
    KeyPair::from_pem(read(&key), Certificate::from_pem(&read(&cert)).expect("fixture: certificate"))
        .expect("fixture: key pair")
}

/// A dev PKI and the two genuine messages, in a temporary folder.
fn generate(dir: &Path) {
    coconnect::dev_pki::init_dev_pki(dir, &["KR".into(), "ID".into()], false).expect("fixture: dev PKI");
    let kr = pair(dir, "KR", false);
    let id = pair(dir, "ID", true);
    let now = Utc::now();
    // As tests/gateway/common.rs `send_co_body`: the CO as the API re-serialises it.
    let co = parse_co(EXAMPLE_CO).expect("examples/co.xml is valid");
    let co = coconnect::payload::to_xml(&co).expect("CO serialises");
    let header = MessageHeader::new("KR", "ID", uuid::Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef), now);
    let body = request_xml(Operation::SendCo, &header, &co);
    let make = |encrypt_for: Option<&Certificate>| {
        secure(&OutboundMessage {
            version: SoapVersion::V11,
            body_xml: &body,
            signer: &kr,
            encrypt_for,
            now,
            ttl: Duration::minutes(5),
        })
        .expect("fixture: secure")
    };
    std::fs::write(dir.join(SIGNED_ENCRYPTED), make(Some(&id.certificate))).expect("fixture: write");
    std::fs::write(dir.join(SIGNED), make(None)).expect("fixture: write");
    std::fs::write(dir.join(NOW_FILE), now.to_rfc3339_opts(SecondsFormat::Nanos, true)).expect("fixture: write");
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = fixture_dir();
        if !dir.join(NOW_FILE).exists() {
            // Made in a temporary folder beside it, then renamed: a crash half-way leaves
            // nothing, and parallel jobs (-jobs/-fork) keep whichever came first.
            let parent = dir.parent().expect("fixture: parent folder");
            std::fs::create_dir_all(parent).expect("fixture: parent folder");
            let tmp = tempfile::Builder::new().prefix(".fixture-").tempdir_in(parent).expect("fixture: tempdir");
            generate(tmp.path());
            let _ = std::fs::rename(tmp.path(), &dir);
        }
        let now_text = std::fs::read_to_string(dir.join(NOW_FILE)).expect("fixture: now.txt");
        let now = DateTime::parse_from_rfc3339(now_text.trim()).expect("fixture: now.txt").with_timezone(&Utc);
        let kr = pair(&dir, "KR", false);
        let trust = PartnerTrust::new(vec![kr.certificate.clone()], &[], None).expect("fixture: trust");
        let message = |name: &str| std::fs::read(dir.join(name)).expect("fixture: message");
        let mut f = Fixture {
            decryption: pair(&dir, "ID", true),
            trust,
            now,
            genuine: [message(SIGNED_ENCRYPTED), message(SIGNED)],
            expected: Reading { operation: Default::default(), header: Err(vec![]), cos: vec![] },
        };
        let readings: Vec<Reading> = f
            .genuine
            .iter()
            .map(|wire| reading(&process(wire, &policy(&f)).expect("fixture: genuine message must verify")))
            .collect();
        assert!(readings[0].header.is_ok() && readings[0].cos.len() == 1 && readings[0].cos[0].is_ok());
        assert_eq!(readings[0], readings[1], "fixture: both genuine messages must read alike");
        f.expected = readings.into_iter().next().expect("reading");
        f
    })
}

fn policy(f: &Fixture) -> InboundPolicy<'_> {
    InboundPolicy {
        limits: XmlLimits::default(),
        decryption: Some(&f.decryption),
        require_encryption: false,
        trust: &f.trust,
        now: f.now,
        clock_skew: Duration::seconds(60),
        max_ttl: Duration::hours(1),
        require_fresh_timestamp: false,
        replay_retention: chrono::Duration::days(7),
    }
}

/// What the SOAP endpoint reads of a verified message (`check_send_co`): the header of the
/// Body child, each LPCO part as a CO. An acknowledgement is read the same way on the sender.
fn reading(m: &VerifiedMessage) -> Reading {
    let _ = Acknowledgement::read(m.body_child());
    let (ns, local) = m.operation();
    Reading {
        operation: (ns.to_owned(), local.to_owned()),
        header: MessageHeader::read(m.body_child()),
        cos: m
            .parts()
            .iter()
            .filter(|p| p.local_name == "LPCO" && p.namespace == LPCO_NAMESPACE)
            .map(|p| {
                parse_co(&String::from_utf8_lossy(&p.xml))
                    .map_err(|errs| errs.into_iter().map(|e| format!("{} {} {}", e.code, e.path, e.message)).collect())
            })
            .collect(),
    }
}

/// Applies `data` to `base`. `sel` bit 0 picked the base; bits 1-2 pick the edit; `data` is
/// `[offset lo, offset hi, length, patch...]`, the offset scaled to the base's length.
fn splice(base: &[u8], sel: u8, data: &[u8]) -> Vec<u8> {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let at = (usize::from(u16::from_le_bytes([byte(0), byte(1)])) * base.len()) >> 16;
    let len = usize::from(byte(2));
    let patch = data.get(3..).unwrap_or(&[]);
    let mut out = base[..at].to_vec();
    match (sel >> 1) & 3 {
        // Overwrite in place.
        0 => {
            out.extend_from_slice(patch);
            out.extend_from_slice(base.get(at + patch.len()..).unwrap_or(&[]));
        }
        // Insert.
        1 => {
            out.extend_from_slice(patch);
            out.extend_from_slice(&base[at..]);
        }
        // Replace `len` bytes.
        2 => {
            out.extend_from_slice(patch);
            out.extend_from_slice(base.get(at + len..).unwrap_or(&[]));
        }
        // Truncate and append.
        _ => out.extend_from_slice(patch),
    }
    out
}

/// With `COCONNECT_FUZZ_DEBUG` set, each input's outcome is printed (to reproduce a crash file).
fn debug(outcome: &Result<VerifiedMessage, coconnect::wssec::SecurityError>) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("COCONNECT_FUZZ_DEBUG").is_some()) {
        match outcome {
            Ok(m) => eprintln!("inbound: verified {:?}", m.operation()),
            Err(e) => eprintln!("inbound: refused {}: {e}", e.code()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    match data.split_first() {
        Some((&sel, rest)) if sel & 0xC0 == 0x80 => {
            let wire = splice(&f.genuine[usize::from(sel & 1)], sel, rest);
            let outcome = process(&wire, &policy(f));
            debug(&outcome);
            if let Ok(m) = outcome {
                let got = reading(&m);
                assert_eq!(got, f.expected, "a mutant of a genuine message verified but reads differently");
            }
        }
        _ => {
            let outcome = process(data, &policy(f));
            debug(&outcome);
            if let Ok(m) = outcome {
                let _ = reading(&m);
            }
        }
    }
});
