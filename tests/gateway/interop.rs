//! Interoperability with independent WS-Security stacks run as subprocesses: the `xmlsec1` CLI
//! (libxmlsec1), the WSS4J peer (Apache WSS4J 1.6 / Santuario) and the zeep peer (python zeep +
//! python-xmlsec). See tests/interop/README.md. The peers are prepared by tests/interop/setup.sh;
//! without them these tests fail, unless COCONNECT_SKIP_INTEROP=1.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use coconnect::store::messages::{wires, Kind};
use serde_json::Value;
use tokio::process::Command;

use crate::common::*;

pub(crate) const STOREPASS: &str = "changeit";
pub(crate) const WSU: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
pub(crate) const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(crate) const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
/// The WSDL's operations, sorted as zeep lists them.
const OPERATIONS: [&str; 6] =
    ["GetCO", "SendCO", "SendCancellation", "SendCancellationStatus", "SendDO", "SendFeedback"];

pub(crate) fn venv_python() -> PathBuf {
    repo_root().join("target/interop/venv/bin/python")
}

/// True when the peers are installed; panics when they are not, unless COCONNECT_SKIP_INTEROP=1.
pub(crate) fn peers_ready() -> bool {
    let root = repo_root();
    let mut missing = Vec::new();
    if !venv_python().exists() {
        missing.push("target/interop/venv");
    }
    if !root.join("target/interop/wss4j/classes").is_dir() || !root.join("target/interop/wss4j/classpath").exists() {
        missing.push("target/interop/wss4j");
    }
    if std::process::Command::new("xmlsec1").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        missing.push("xmlsec1");
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var("COCONNECT_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("interop peers missing ({}): skipped because COCONNECT_SKIP_INTEROP=1", missing.join(", "));
        return false;
    }
    panic!(
        "interop peers missing ({}): run tests/interop/setup.sh first (or set COCONNECT_SKIP_INTEROP=1)",
        missing.join(", ")
    );
}

/// Runs a peer with a deadline (killed when it passes).
pub(crate) async fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str], timeout_s: u64) -> Output {
    let mut cmd = Command::new(program.as_ref());
    cmd.args(args).current_dir(repo_root()).kill_on_drop(true);
    let what = format!("{} {}", program.as_ref().to_string_lossy(), args.join(" "));
    match tokio::time::timeout(Duration::from_secs(timeout_s), cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("cannot run {what}: {e}"),
        Err(_) => panic!("timed out after {timeout_s} s: {what}"),
    }
}

/// The peer's JSON line (the last line on stdout), with its exit code.
pub(crate) fn peer_json(out: &Output) -> (i32, Value) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
    let json = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!("peer printed no JSON ({e}); stdout: {stdout}; stderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), json)
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) async fn wss4j(args: &[&str]) -> (i32, Value, String) {
    let out = run(repo_root().join("tests/interop/wss4j/run.sh"), args, 120).await;
    let (code, json) = peer_json(&out);
    (code, json, stderr(&out))
}

async fn zeep(args: &[&str]) -> (i32, Value, String) {
    let mut all = vec![repo_root().join("tests/interop/zeep_peer.py").to_string_lossy().into_owned()];
    all.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = run(venv_python(), &refs, 120).await;
    let (code, json) = peer_json(&out);
    (code, json, stderr(&out))
}

/// JKS keystores of the pair's dev PKI (`<dir>/ks/{KR,ID,truststore}.jks`).
pub(crate) async fn keystores(p: &Pair) -> PathBuf {
    let ks = p.dir.path().join("ks");
    let pki = p.dir.path().join("pki");
    let out = run(repo_root().join("tests/interop/make_keystores.sh"), &[s(&pki), s(&ks), STOREPASS], 180).await;
    assert!(out.status.success(), "make_keystores.sh failed: {}", stderr(&out));
    ks
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

pub(crate) fn unique_reference(tag: &str) -> String {
    format!("KR-IOP-{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Submits a CO from KR to ID and waits for the acknowledgement; returns the request KR sent and
/// the acknowledgement it received, exactly as logged.
pub(crate) async fn exchange(p: &Pair, reference: &str) -> (Vec<u8>, Vec<u8>) {
    let (status, body) = p.kr.api("POST", "/api/v1/certificates?partner=ID", &co_with_reference(reference)).await;
    assert_eq!(status, 202, "submission refused: {body}");
    let id = body["id"].as_str().expect("id");
    let message_id = body["message_id"].as_str().expect("message_id");
    p.kr.wait_state(id, "acknowledged").await;
    let mut requests = wires(p.kr.store(), message_id, false, Kind::Request).await.expect("log");
    let mut acks = wires(p.kr.store(), message_id, true, Kind::Acknowledgement).await.expect("log");
    assert_eq!((requests.len(), acks.len()), (1, 1), "one attempt, one acknowledgement");
    (requests.remove(0), acks.remove(0))
}

/// The value of the first `attr="..."` whose value starts with `prefix`.
fn id_with_prefix(xml: &str, prefix: &str) -> String {
    let start = xml.find(&format!("=\"{prefix}")).unwrap_or_else(|| panic!("no id {prefix}… in {xml}")) + 2;
    xml[start..start + xml[start..].find('"').expect("end")].to_owned()
}

/// `examples/soap/SendCO.xml` with a fresh MessageID, the current SentDateTime and another LPCO/ID.
fn example_send_co(reference: &str) -> String {
    let xml = std::fs::read_to_string(repo_root().join("examples/soap/SendCO.xml")).expect("examples/soap/SendCO.xml");
    let replace_between = |xml: &str, open: &str, close: &str, value: &str| {
        let start = xml.find(open).unwrap_or_else(|| panic!("{open} in SendCO.xml")) + open.len();
        let end = start + xml[start..].find(close).expect("close");
        format!("{}{value}{}", &xml[..start], &xml[end..])
    };
    let xml = replace_between(&xml, "<cc:MessageID>", "</cc:MessageID>", &uuid::Uuid::new_v4().to_string());
    let xml = replace_between(
        &xml,
        "<cc:SentDateTime>",
        "</cc:SentDateTime>",
        &now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    // The first <ID> is LPCO/ID (the message header uses cc:MessageID).
    let xml = replace_between(&xml, "<ID>", "</ID>", reference);
    assert!(
        xml.contains(&format!("<LPCO xmlns=\"urn:coconnect:xsd:lpco:1\">\n        <ID>{reference}</ID>")),
        "LPCO/ID replaced"
    );
    xml
}

async fn received(gateway: &Gateway, reference: &str) -> Value {
    let (status, found) =
        gateway.api("GET", &format!("/api/v1/certificates?issuer=KR&reference={reference}"), "").await;
    assert_eq!(status, 200, "{found}");
    found
}

/// `xmlsec1 --verify` with the given certificate, the wsu:Id of the SOAP Body and the Timestamp
/// declared as IDs. Returns (success, output).
async fn xmlsec1_verify(file: &Path, cert: &Path) -> (bool, String) {
    let body = format!("{SOAP11}:Body");
    let ts = format!("{WSU}:Timestamp");
    let out = run(
        "xmlsec1",
        &["--verify", "--pubkey-cert-pem", s(cert), "--id-attr:Id", &body, "--id-attr:Id", &ts, s(file)],
        60,
    )
    .await;
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmlsec1_verifies_and_decrypts_what_we_send() {
    if !peers_ready() {
        return;
    }
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let dir = p.dir.path();
    let pki = dir.join("pki");
    let reference = unique_reference("XMLSEC");
    let (request, ack) = exchange(&p, &reference).await;
    let request = String::from_utf8(request).expect("UTF-8 request");
    assert!(!request.contains(&reference) && !request.contains("SendCORequest"), "the Body content travels encrypted");

    // (a) Decrypt. The EncryptedKey sits in the Security header and points at the EncryptedData
    // (xenc:ReferenceList); xmlsec1 starts at EncryptedData and finds the key through the
    // ds:RetrievalMethod our EncryptedData's KeyInfo carries beside the token reference. The
    // request is decrypted as it was sent.
    let ek = id_with_prefix(&request, "EK-");
    let ed = id_with_prefix(&request, "ED-");
    assert!(
        request.contains(&format!("<xenc:DataReference URI=\"#{ed}\"/>")),
        "EncryptedKey references the EncryptedData"
    );
    assert!(request.contains(&format!("<ds:RetrievalMethod Type=\"{XENC}EncryptedKey\" URI=\"#{ek}\"/>")), "{request}");
    let with_ref = request.clone();
    let encrypted = write(dir, "request-encrypted.xml", with_ref.as_bytes());
    let decrypted = dir.join("request-decrypted.xml");
    let ek_id = format!("{XENC}:EncryptedKey");
    let key = pki.join("ID/encryption.key.pem");
    let out = run(
        "xmlsec1",
        &["--decrypt", "--privkey-pem", s(&key), "--id-attr:Id", &ek_id, "--output", s(&decrypted), s(&encrypted)],
        60,
    )
    .await;
    assert!(out.status.success(), "xmlsec1 --decrypt failed: {}", stderr(&out));
    let plain = std::fs::read_to_string(&decrypted).expect("decrypted");
    assert!(plain.contains(&format!("<ID>{reference}</ID>")) && plain.contains("SendCORequest"), "{plain}");
    assert!(!plain.contains("EncryptedData"), "{plain}");
    // Someone else's key cannot decrypt it.
    let wrong = run(
        "xmlsec1",
        &[
            "--decrypt",
            "--privkey-pem",
            s(&pki.join("KR/encryption.key.pem")),
            "--id-attr:Id",
            &ek_id,
            "--output",
            s(&dir.join("wrong.xml")),
            s(&encrypted),
        ],
        60,
    )
    .await;
    assert!(!wrong.status.success(), "decrypted with KR's key?");

    // (b) The signature of the decrypted message (sign, then encrypt) with KR's signing cert.
    let kr_cert = pki.join("KR/signing.cert.pem");
    let id_cert = pki.join("ID/signing.cert.pem");
    let (ok, log) = xmlsec1_verify(&decrypted, &kr_cert).await;
    assert!(ok && log.contains("SignedInfo References (ok/all): 2/2"), "xmlsec1 --verify of our request: {log}");
    let (ok, log) = xmlsec1_verify(&decrypted, &id_cert).await;
    assert!(!ok, "verified with the wrong certificate: {log}");
    let tampered = write(dir, "request-tampered.xml", plain.replace(&reference, &format!("{reference}X")).as_bytes());
    let (ok, log) = xmlsec1_verify(&tampered, &kr_cert).await;
    assert!(!ok && log.contains("(ok/all): 1/2"), "a changed CO reference must break the Body digest: {log}");

    // ID's acknowledgement, as KR received it, signed with ID's signing key.
    let ack = String::from_utf8(ack).expect("UTF-8 ack");
    assert!(ack.contains("<cc:Status>Accepted</cc:Status>"), "{ack}");
    let ack_file = write(dir, "ack.xml", ack.as_bytes());
    let (ok, log) = xmlsec1_verify(&ack_file, &id_cert).await;
    assert!(
        ok && log.contains("SignedInfo References (ok/all): 2/2"),
        "xmlsec1 --verify of ID's acknowledgement: {log}"
    );
    let ack_tampered = write(
        dir,
        "ack-tampered.xml",
        ack.replace("<cc:Status>Accepted</cc:Status>", "<cc:Status>Rejected</cc:Status>").as_bytes(),
    );
    let (ok, log) = xmlsec1_verify(&ack_tampered, &id_cert).await;
    assert!(!ok, "a changed acknowledgement status must fail: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss4j_processes_what_we_send() {
    if !peers_ready() {
        return;
    }
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let dir = p.dir.path();
    let ks = keystores(&p).await;
    let reference = unique_reference("WSS4J");
    let (request, ack) = exchange(&p, &reference).await;
    let request_file = write(dir, "request.xml", &request);
    let decrypted = dir.join("wss4j-decrypted.xml");
    let (id_jks, kr_jks, trust) = (ks.join("ID.jks"), ks.join("KR.jks"), ks.join("truststore.jks"));

    let (code, r, err) = wss4j(&[
        "process",
        "--keystore",
        s(&id_jks),
        "--storepass",
        STOREPASS,
        "--alias",
        "id-encryption",
        "--trust",
        s(&trust),
        "--in",
        s(&request_file),
        "--out",
        s(&decrypted),
        "--require-encryption",
    ])
    .await;
    assert!(code == 0 && r["ok"] == true, "WSS4J refused our request: {r} {err}");
    for flag in ["bodySigned", "timestampSigned", "encrypted", "bodyEncrypted"] {
        assert_eq!(r[flag], true, "{flag}: {r}");
    }
    assert_eq!(
        (r["bodyChild"].as_str(), r["bodyChildNs"].as_str()),
        (Some("SendCORequest"), Some("urn:coconnect:soap:v1")),
        "{r}"
    );
    assert!(r["signerSubject"].as_str().is_some_and(|s| s.contains("CN=KR signing")), "{r}");
    assert_eq!(r["symmetricAlgorithm"], "http://www.w3.org/2009/xmlenc11#aes256-gcm", "{r}");
    let plain = std::fs::read_to_string(&decrypted).expect("WSS4J output");
    assert!(plain.contains(&format!("<ID>{reference}</ID>")), "{plain}");

    // Negative control: the same message with its SignatureValue altered.
    let text = String::from_utf8(request).expect("UTF-8");
    let at = text.find("<ds:SignatureValue>").expect("SignatureValue") + "<ds:SignatureValue>".len();
    let flipped = if text.as_bytes()[at] == b'A' { "B" } else { "A" };
    let bad =
        write(dir, "request-bad-signature.xml", format!("{}{flipped}{}", &text[..at], &text[at + 1..]).as_bytes());
    let (code, r, _) = wss4j(&[
        "process",
        "--keystore",
        s(&id_jks),
        "--storepass",
        STOREPASS,
        "--alias",
        "id-encryption",
        "--trust",
        s(&trust),
        "--in",
        s(&bad),
    ])
    .await;
    assert!(code == 1 && r["ok"] == false, "WSS4J accepted a broken signature: {r}");

    // ID's acknowledgement (signed only) as KR received it.
    let ack_file = write(dir, "ack.xml", &ack);
    let (code, r, err) = wss4j(&[
        "process",
        "--keystore",
        s(&kr_jks),
        "--storepass",
        STOREPASS,
        "--alias",
        "kr-encryption",
        "--trust",
        s(&trust),
        "--in",
        s(&ack_file),
    ])
    .await;
    assert!(code == 0 && r["ok"] == true, "WSS4J refused ID's acknowledgement: {r} {err}");
    assert_eq!(
        (&r["bodySigned"], &r["timestampSigned"], &r["encrypted"]),
        (&Value::Bool(true), &Value::Bool(true), &Value::Bool(false)),
        "{r}"
    );
    assert_eq!(r["bodyChild"], "Acknowledgement", "{r}");
    assert!(r["signerSubject"].as_str().is_some_and(|s| s.contains("CN=ID signing")), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_accept_what_wss4j_sends() {
    if !peers_ready() {
        return;
    }
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let dir = p.dir.path();
    let ks = keystores(&p).await;
    let (kr_jks, trust) = (ks.join("KR.jks"), ks.join("truststore.jks"));
    let url = p.id.soap_url();
    let pw = p.id.files.inbound_password.clone();
    let send = |input: PathBuf, response: PathBuf, encrypt: bool| {
        let (kr_jks, trust, url, pw) = (kr_jks.clone(), trust.clone(), url.clone(), pw.clone());
        async move {
            let mut args = vec![
                "send",
                "--url",
                &url,
                "--user",
                "KR",
                "--password",
                &pw,
                "--keystore",
                s(&kr_jks),
                "--storepass",
                STOREPASS,
                "--sign-alias",
                "kr-signing",
                "--enc-cert-alias",
                "id-encryption",
                "--trust",
                s(&trust),
                "--in",
                s(&input),
                "--save-response",
                s(&response),
            ];
            if !encrypt {
                args.push("--no-encrypt");
            }
            let (code, r, err) = wss4j(&args).await;
            (code, r, err, std::fs::read_to_string(&response).unwrap_or_default())
        }
    };

    let reference = unique_reference("FROM-WSS4J");
    let input = write(dir, "wss4j-sendco.xml", example_send_co(&reference).as_bytes());
    let (code, r, err, response) = send(input, dir.join("wss4j-response.xml"), true).await;
    assert!(code == 0 && r["ok"] == true, "WSS4J's SendCO was not accepted: {r} {err} {response}");
    assert_eq!(r["httpStatus"], 200, "{r}");
    assert_eq!(r["status"], "Accepted", "{r}");
    assert_eq!(r["responseVerified"], true, "{r}");
    let found = received(&p.id, &reference).await;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(
        (found[0]["state"].as_str(), found[0]["direction"].as_str()),
        (Some("received"), Some("inbound")),
        "{found}"
    );
    let before = stored(p.id.store()).await;

    // Signed but not encrypted, to a partner whose profile is sign-encrypt: refused, nothing stored.
    let reference2 = unique_reference("PLAIN");
    let input = write(dir, "wss4j-sendco-plain.xml", example_send_co(&reference2).as_bytes());
    let (code, r, _, response) = send(input, dir.join("wss4j-response-plain.xml"), false).await;
    assert!(code == 1 && r["ok"] == false, "{r}");
    assert_eq!(r["httpStatus"], 500, "{r} {response}");
    assert!(response.contains("<soap:Fault>"), "{response}");
    assert_eq!(first_code(&response), "WSS-NOT-ENCRYPTED", "{response}");
    assert_eq!(stored(p.id.store()).await, before, "nothing stored for a refused message");
    assert_eq!(received(&p.id, &reference2).await, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_accept_what_zeep_signs() {
    if !peers_ready() {
        return;
    }
    let p = pair("sign", Db::Sqlite).await;
    let dir = p.dir.path();
    let pki = dir.join("pki");
    let reference = unique_reference("FROM-ZEEP");
    let input = write(dir, "zeep-sendco.xml", example_send_co(&reference).as_bytes());
    let wsdl = repo_root().join("wsdl/coconnect.wsdl");
    let (url, pw) = (p.id.soap_url(), p.id.files.inbound_password.clone());
    let (key, cert, ca) = (pki.join("KR/signing.key.pem"), pki.join("KR/signing.cert.pem"), pki.join("ca.cert.pem"));
    let (code, r, err) = zeep(&[
        "send",
        "--wsdl",
        s(&wsdl),
        "--url",
        &url,
        "--user",
        "KR",
        "--password",
        &pw,
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        "--envelope-body",
        s(&input),
        "--response-ca",
        s(&ca),
    ])
    .await;
    assert!(code == 0 && r["ok"] == true, "zeep's SendCO was not accepted: {r} {err}");
    assert_eq!(r["httpStatus"], 200, "{r}");
    assert_eq!(r["status"], "Accepted", "{r}");
    assert_eq!(r["responseVerified"], true, "{r}");
    let found = received(&p.id, &reference).await;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(
        (found[0]["state"].as_str(), found[0]["direction"].as_str()),
        (Some("received"), Some("inbound")),
        "{found}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeep_lists_every_operation() {
    if !peers_ready() {
        return;
    }
    let check = |r: &Value, from: &str| {
        let ops: Vec<&str> =
            r["operations"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        assert_eq!(ops, OPERATIONS, "operations of {from}: {r}");
        let bindings = r["bindings"].as_object().unwrap_or_else(|| panic!("bindings of {from}: {r}"));
        assert!(!bindings.is_empty(), "{r}");
        for (name, ops) in bindings {
            assert_eq!(
                ops.as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>()),
                Some(OPERATIONS.to_vec()),
                "binding {name} of {from}"
            );
        }
    };
    let file = repo_root().join("wsdl/coconnect.wsdl");
    let (code, r, err) = zeep(&["list-operations", s(&file)]).await;
    assert!(code == 0 && r["ok"] == true, "{r} {err}");
    check(&r, "wsdl/coconnect.wsdl");

    // The WSDL as the running gateway serves it (it imports /xsd/... from the same gateway).
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let url = format!("{}?wsdl", p.id.soap_url());
    let (code, r, err) = zeep(&["list-operations", &url]).await;
    assert!(code == 0 && r["ok"] == true, "{r} {err}");
    check(&r, &url);
}
