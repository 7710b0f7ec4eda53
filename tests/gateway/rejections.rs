//! Every refusal of the receipt pipeline, each checked for its error code and for leaving
//! nothing in the receiver's store.

use chrono::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// Posts `wire` as KR to ID and asserts a refusal with `status` and `code`, and an empty store.
async fn refused(p: &Pair, wire: Vec<u8>, status: u16, code: &str) {
    refused_as(p, "KR", &p.id.files.inbound_password, wire, status, code).await;
}

async fn refused_as(p: &Pair, user: &str, password: &str, wire: Vec<u8>, status: u16, code: &str) {
    let (got_status, body) = post_soap(&p.id.soap_url(), user, password, wire).await;
    assert_eq!((got_status, first_code(&body).as_str()), (status, code), "{body}");
    assert!(body.contains("Fault"), "{body}");
    assert_eq!(stored(p.id.store()).await, (0, 0), "a refused message must leave nothing in the store");
}

fn fresh_body() -> String {
    send_co_body(uuid::Uuid::new_v4(), EXAMPLE_CO)
}

#[tokio::test]
async fn tampered_unsigned_untrusted_and_badly_timed_messages_are_refused() {
    let p = pair("sign", Db::Sqlite).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");

    let tampered = String::from_utf8(c.secure(&fresh_body(), false, now())).expect("utf8").replace("KRPUS", "KRINC");
    refused(&p, tampered.into_bytes(), 500, "WSS-SIGNATURE-INVALID").await;

    let unsigned = format!("<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{}</soap:Body></soap:Envelope>", fresh_body());
    refused(&p, unsigned.into_bytes(), 500, "WSS-MISSING-SECURITY").await;

    // A signature by a certificate nobody configured (another CA's "KR").
    let other = tempfile::tempdir().expect("tmp");
    coconnect::dev_pki::init_dev_pki(other.path(), &["KR".into(), "ID".into()], false).expect("pki");
    let stranger = Crafter::new(other.path(), "KR", "ID");
    refused(&p, stranger.secure(&fresh_body(), false, now()), 500, "WSS-UNTRUSTED-CERT").await;

    refused(&p, c.secure(&fresh_body(), false, now() - Duration::minutes(30)), 500, "WSS-EXPIRED").await;
    refused(&p, c.secure(&fresh_body(), false, now() + Duration::minutes(30)), 500, "WSS-FUTURE-TIMESTAMP").await;
}

#[tokio::test]
async fn a_replayed_message_is_refused_and_stored_once() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let wire = c.secure(&fresh_body(), true, now());
    let (status, ack) = post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, wire.clone()).await;
    assert_eq!(status, 200, "{ack}");
    let before = stored(p.id.store()).await;
    let (status, fault) = post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, wire.clone()).await;
    assert_eq!((status, first_code(&fault).as_str()), (500, "WSS-REPLAY"), "{fault}");
    // The SignatureValue is not itself signed: re-wrapping its base64 must not evade the cache.
    let text = String::from_utf8(wire).expect("utf8");
    let start = text.find("<ds:SignatureValue>").expect("sv") + "<ds:SignatureValue>".len();
    let rewrapped = format!("{}\n  {}", &text[..start + 10], &text[start + 10..]);
    let (status, fault) = post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, rewrapped.into_bytes()).await;
    assert_eq!((status, first_code(&fault).as_str()), (500, "WSS-REPLAY"), "{fault}");
    assert_eq!(stored(p.id.store()).await, before);
}

#[tokio::test]
async fn signature_wrapping_and_duplicate_ids_are_refused() {
    let p = pair("sign", Db::Sqlite).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let wire = String::from_utf8(c.secure(&fresh_body(), false, now())).expect("utf8");

    // The signed Body is moved into a header; a forged Body with another ID takes its place.
    let start = wire.find("<soap:Body").expect("body");
    let end = wire.find("</soap:Envelope>").expect("end");
    let signed_body = &wire[start..end];
    let forged =
        signed_body.replace("KRIDCEPA-2025-PUS-000417", "FORGED-000001").replace("wsu:Id=\"Body-", "wsu:Id=\"Forged-");
    let wrapped = format!(
        "{}<w:Wrapper xmlns:w=\"urn:attacker\">{signed_body}</w:Wrapper></soap:Header>{forged}</soap:Envelope>",
        &wire[..wire.find("</soap:Header>").expect("hdr")]
    );
    refused(&p, wrapped.into_bytes(), 500, "WSS-WRONG-NODE-SIGNED").await;

    // Same forgery, but the forged Body keeps the signed Body's ID: duplicate IDs.
    let same_id = signed_body.replace("KRIDCEPA-2025-PUS-000417", "FORGED-000001");
    let dup = format!(
        "{}<w:Wrapper xmlns:w=\"urn:attacker\">{signed_body}</w:Wrapper></soap:Header>{same_id}</soap:Envelope>",
        &wire[..wire.find("</soap:Header>").expect("hdr")]
    );
    refused(&p, dup.into_bytes(), 500, "WSS-DUPLICATE-ID").await;
}

#[tokio::test]
async fn doctype_entities_and_oversize_bodies_are_refused_before_parsing() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let xxe = format!("<?xml version=\"1.0\"?><!DOCTYPE e [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>&x;{}</soap:Body></soap:Envelope>", fresh_body());
    refused(&p, xxe.into_bytes(), 500, "WSS-DTD").await;
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><l>&c;</l>";
    refused(&p, bomb.as_bytes().to_vec(), 500, "WSS-DTD").await;
    let undeclared = "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>&lol;</soap:Body></soap:Envelope>";
    refused(&p, undeclared.as_bytes().to_vec(), 500, "WSS-ENTITY").await;
    refused(&p, b"<soap:Envelope".to_vec(), 500, "WSS-MALFORMED").await;

    // Over-size: the gateway answers 413 from the headers alone, while the client has sent only
    // a few bytes of a declared 100 MB body.
    let mut stream = tokio::net::TcpStream::connect(p.id.files.soap_addr).await.expect("connect");
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("KR:{}", p.id.files.inbound_password),
    );
    let head = format!("POST /soap/v1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: text/xml\r\nContent-Length: 100000000\r\n\r\n<soap:Envelope");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered before the body was sent")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("MSG-TOO-LARGE"), "{answer}");
    assert_eq!(stored(p.id.store()).await, (0, 0));
}

#[tokio::test]
async fn wrong_password_unknown_partner_and_borrowed_identity_are_refused() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let wire = c.secure(&fresh_body(), true, now());
    refused_as(&p, "KR", "not-the-password", wire.clone(), 401, "AUTH-FAILED").await;
    refused_as(&p, "ZZ", &p.id.files.inbound_password, wire.clone(), 401, "AUTH-FAILED").await;
    let (status, body) = {
        let req = hyper::Request::post(p.id.soap_url())
            .header("Content-Type", "text/xml")
            .body(http_body_util::Full::new(bytes::Bytes::from(wire)))
            .expect("req");
        let resp = client().request(req).await.expect("call");
        let status = resp.status().as_u16();
        (
            status,
            String::from_utf8_lossy(&http_body_util::BodyExt::collect(resp.into_body()).await.expect("b").to_bytes())
                .into_owned(),
        )
    };
    assert_eq!((status, first_code(&body).as_str()), (401, "AUTH-MISSING"));

    // KR's credentials and signature, but the message header claims to come from ID.
    let header = coconnect::message::MessageHeader::new("ID", "ID", uuid::Uuid::new_v4(), now());
    let co = coconnect::payload::to_xml(&coconnect::payload::parse_co(EXAMPLE_CO).expect("co")).expect("xml");
    let body = coconnect::soap::messages::request_xml(coconnect::message::Operation::SendCo, &header, &co);
    refused(&p, c.secure(&body, true, now()), 500, "AUTH-PARTY-MISMATCH").await;
}

#[tokio::test]
async fn an_unencrypted_message_is_refused_under_sign_encrypt_and_faults_follow_the_soap_version() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    refused(&p, c.secure(&fresh_body(), false, now()), 500, "WSS-NOT-ENCRYPTED").await;

    let req = hyper::Request::post(p.id.soap_url())
        .header("Content-Type", "application/soap+xml; charset=utf-8")
        .header(
            "Authorization",
            format!(
                "Basic {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("KR:{}", p.id.files.inbound_password)
                )
            ),
        )
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\"><env:Body/></env:Envelope>",
        )))
        .expect("req");
    let resp = client().request(req).await.expect("call");
    assert_eq!(resp.status(), 500);
    assert!(resp.headers()["content-type"].to_str().expect("ct").starts_with("application/soap+xml"));
    let body =
        String::from_utf8_lossy(&http_body_util::BodyExt::collect(resp.into_body()).await.expect("b").to_bytes())
            .into_owned();
    assert!(body.contains("http://www.w3.org/2003/05/soap-envelope") && body.contains("soap:Sender"), "{body}");
    assert_eq!(first_code(&body), "WSS-MISSING-SECURITY");
}

/// The fault's human-readable text (`faultstring`).
fn fault_string(xml: &str) -> String {
    let Some(s) = xml.find("<faultstring>") else { return String::new() };
    let rest = &xml[s + "<faultstring>".len()..];
    rest[..rest.find("</faultstring>").unwrap_or(0)].to_owned()
}

async fn audit_reasons(p: &Pair) -> Vec<String> {
    sqlx::query_scalar("SELECT reason FROM audit_log ORDER BY seq").fetch_all(p.id.store().pool()).await.expect("audit")
}

#[tokio::test]
async fn a_mandatory_header_block_we_do_not_understand_gets_a_must_understand_fault() {
    let p = pair("sign", Db::Sqlite).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let wire = String::from_utf8(c.secure(&fresh_body(), false, now())).expect("utf8");
    let block = "<x:Routing xmlns:x=\"urn:example:routing\" soap:mustUnderstand=\"1\">to ID</x:Routing>";
    let with_block = wire.replacen("<soap:Header>", &format!("<soap:Header>{block}"), 1);
    let (status, fault) =
        post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, with_block.into_bytes()).await;
    assert_eq!((status, first_code(&fault).as_str()), (500, "MSG-MUST-UNDERSTAND"), "{fault}");
    assert!(fault.contains("<faultcode>soap:MustUnderstand</faultcode>"), "{fault}");
    assert_eq!(stored(p.id.store()).await, (0, 0), "nothing of the message is processed");
    // The same block for another actor is not ours: the message is accepted.
    let other_actor = wire.replacen(
        "<soap:Header>",
        "<soap:Header><x:Routing xmlns:x=\"urn:example:routing\" soap:mustUnderstand=\"1\" soap:actor=\"urn:example:hub\">hub</x:Routing>",
        1,
    );
    let (status, ack) = post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, other_actor.into_bytes()).await;
    assert_eq!(status, 200, "{ack}");
}

#[tokio::test]
async fn a_parse_error_of_one_request_never_reaches_another_requests_answer_or_audit_record() {
    let p = pair("sign", Db::Sqlite).await;
    let pw = p.id.files.inbound_password.clone();
    // Alternate a message libxml2 refuses (its error names the element) with bodies that raise
    // no parse error of their own, so that the XML security threads that parsed the first are
    // reused.
    for _ in 0..6 {
        let broken = "<SECRET-OF-THE-FIRST-REQUEST>\u{1}</SECRET-OF-THE-FIRST-REQUEST>";
        let (status, fault) = post_soap(&p.id.soap_url(), "KR", &pw, broken.as_bytes().to_vec()).await;
        assert_eq!((status, first_code(&fault).as_str()), (500, "WSS-MALFORMED"), "{fault}");
        for empty in ["", "  "] {
            let (status, fault) = post_soap(&p.id.soap_url(), "KR", &pw, empty.as_bytes().to_vec()).await;
            assert_eq!(status, 500, "{fault}");
            assert!(!fault.contains("PCDATA") && !fault.contains("SECRET"), "{fault}");
        }
    }
    let reasons = audit_reasons(&p).await;
    assert_eq!(reasons.len(), 18, "{reasons:?}");
    for (i, reason) in reasons.iter().enumerate() {
        if i % 3 != 0 {
            assert!(!reason.contains("PCDATA invalid Char"), "record {i} has another request's error: {reason}");
        }
    }
    assert_eq!(stored(p.id.store()).await, (0, 0));
}

#[tokio::test]
async fn partners_are_told_a_fixed_sentence_and_our_audit_record_keeps_the_detail() {
    let p = pair("sign", Db::Sqlite).await;
    let other = tempfile::tempdir().expect("tmp");
    coconnect::dev_pki::init_dev_pki(other.path(), &["KR".into(), "ID".into()], false).expect("pki");
    let stranger = Crafter::new(other.path(), "KR", "ID");
    let (status, fault) =
        post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, stranger.secure(&fresh_body(), false, now()))
            .await;
    assert_eq!((status, first_code(&fault).as_str()), (500, "WSS-UNTRUSTED-CERT"), "{fault}");
    assert_eq!(
        fault_string(&fault),
        coconnect::wssec::SecurityError::UntrustedCertificate(String::new()).public_reason(),
        "{fault}"
    );
    for internal in ["CN=", "OpenSSL", "subject", "verify error", "libxml"] {
        assert!(!fault.contains(internal), "internal detail {internal:?} sent to the partner: {fault}");
    }
    let reasons = audit_reasons(&p).await;
    assert!(
        reasons.iter().any(|r| r.starts_with("WSS-UNTRUSTED-CERT") && r.contains("CN=")),
        "the audit record keeps the detail: {reasons:?}"
    );
}

/// A weaker preset must not let a wrapping, a replay or an untrusted key through: each attack,
/// under every preset, through the gateway. Under AES-CBC the answer to what depends on the
/// decrypted content is the uniform `WSS-CHECK-FAILED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapping_replay_and_untrusted_keys_are_refused_under_every_preset() {
    use coconnect::wssec::profile::Preset;
    let other = tempfile::tempdir().expect("tmp");
    coconnect::dev_pki::init_dev_pki(other.path(), &["KR".into(), "ID".into()], false).expect("pki");
    for preset in Preset::ALL {
        let encrypt = preset != Preset::Zeep;
        let p = preset_pair(preset, encrypt).await;
        let profile = preset.profile(encrypt);
        let cbc = profile.accepts_cbc();
        let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
        let pw = p.id.files.inbound_password.clone();
        let code_of = |body: &str| first_code(body);

        // Replay: the first copy is stored, the second refused, nothing stored twice.
        let wire = c.secure_as(&fresh_body(), &profile, now());
        let (status, ack) = post_soap(&p.id.soap_url(), "KR", &pw, wire.clone()).await;
        assert_eq!(status, 200, "{preset:?}: {ack}");
        let after_first = stored(p.id.store()).await;
        let (status, fault) = post_soap(&p.id.soap_url(), "KR", &pw, wire).await;
        assert_eq!((status, code_of(&fault).as_str()), (500, "WSS-REPLAY"), "{preset:?}: {fault}");
        assert_eq!(stored(p.id.store()).await, after_first, "{preset:?}: a replay stored something");

        // An untrusted key: another CA's "KR", encrypting to ID's real certificate.
        let stranger = Crafter { recipient: c.recipient.clone(), ..Crafter::new(other.path(), "KR", "ID") };
        let (status, fault) =
            post_soap(&p.id.soap_url(), "KR", &pw, stranger.secure_as(&fresh_body(), &profile, now())).await;
        let expected = if cbc
            && profile.inbound.encryption.as_ref().is_some_and(|e| e.encrypted_signature)
            && profile.outbound.encryption.is_some_and(|e| e.encrypt_signature)
        {
            "WSS-CHECK-FAILED"
        } else {
            "WSS-UNTRUSTED-CERT"
        };
        assert_eq!((status, code_of(&fault).as_str()), (500, expected), "{preset:?}: {fault}");

        // Wrapping: the signed Body moved into a header, a forged one in its place.
        let signed_only = profile.signed_only();
        let wire = String::from_utf8(c.secure_as(&fresh_body(), &signed_only, now())).expect("utf8");
        let start = wire.find("<soap:Body").expect("body");
        let end = wire.find("</soap:Envelope>").expect("end");
        let signed_body = &wire[start..end];
        let forged = signed_body.replace("KRPUS", "KRINC").replace("wsu:Id=\"Body-", "wsu:Id=\"Evil-");
        let wrapped = format!(
            "{}<Wrapper xmlns=\"urn:evil\">{signed_body}</Wrapper></soap:Header>{forged}</soap:Envelope>",
            &wire[..wire.find("</soap:Header>").expect("hdr")]
        );
        let (status, fault) = post_soap(&p.id.soap_url(), "KR", &pw, wrapped.into_bytes()).await;
        let code = code_of(&fault);
        assert_eq!(status, 500, "{preset:?}: {fault}");
        assert!(
            ["WSS-WRONG-NODE-SIGNED", "WSS-NOT-ENCRYPTED", "WSS-CHECK-FAILED"].contains(&code.as_str()),
            "{preset:?}: a wrapped message got {code}: {fault}"
        );
        assert_eq!(stored(p.id.store()).await, after_first, "{preset:?}: an attack stored something");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_operation_is_refused_naming_its_element_with_a_bounded_echo_and_stores_nothing() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let wire = c.secure("<x:Foo xmlns:x=\"urn:x\"/>", true, now());
    let (status, body) = post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, wire).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(first_code(&body), "MSG-UNKNOWN-OPERATION");
    assert!(body.contains("/Envelope/Body/Foo"), "the element's path: {body}");
    assert!(!body.contains("urn:x"), "a fixed sentence: {body}");
    assert_eq!(stored(p.id.store()).await, (0, 0));
    // A very long element name is not sent back whole.
    let long = "F".repeat(20_000);
    let wire = c.secure(&format!("<x:{long} xmlns:x=\"urn:x\"/>"), true, now());
    let (status, body) = post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, wire).await;
    assert_eq!((status, first_code(&body).as_str()), (500, "MSG-UNKNOWN-OPERATION"));
    assert!(body.len() < 5_000, "{} bytes", body.len());
}
