//! The interoperability matrix (docs/interop.md): each partner stack runs as a real peer process
//! with its own default settings, against a pair of gateways configured with that stack's
//! preset. Four kinds of cell: they sign and we verify, they sign and encrypt and we decrypt
//! (through our SOAP endpoint, as a partner's request), we sign and they verify, we sign and
//! encrypt and they decrypt (our delivered request, as we sent it). A cell that cannot apply
//! says why. The generated table must be the one in docs/interop.md (run with
//! `COCONNECT_WRITE_INTEROP=1` to rewrite it), and every applicable cell must pass.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use coconnect::wssec::profile::Preset;

use crate::common::*;
use crate::interop::{
    exchange, keystores, peer_json, peers_ready, run, s, stderr, unique_reference, venv_python, write, wss4j, SOAP11,
    STOREPASS, WSU, XENC,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    TheySign,
    TheyEncrypt,
    WeSign,
    WeEncrypt,
}

impl Direction {
    const ALL: [Direction; 4] = [Direction::TheySign, Direction::TheyEncrypt, Direction::WeSign, Direction::WeEncrypt];

    fn heading(self) -> &'static str {
        match self {
            Direction::TheySign => "they sign → we verify",
            Direction::TheyEncrypt => "they sign+encrypt → we decrypt+verify",
            Direction::WeSign => "we sign → they verify",
            Direction::WeEncrypt => "we sign+encrypt → they decrypt",
        }
    }
}

enum Outcome {
    Pass,
    Fail(String),
    NotApplicable(&'static str),
}

struct Row {
    stack: &'static str,
    variant: &'static str,
    preset: Preset,
    cells: Vec<(Direction, Outcome)>,
}

/// An unsigned SOAP 1.1 envelope with a fresh SendCO from KR to ID (`reference` its LPCO/ID).
fn unsigned_send_co(reference: &str) -> String {
    let body = send_co_body(uuid::Uuid::new_v4(), &co_with_reference(reference));
    format!("<soap:Envelope xmlns:soap=\"{SOAP11}\"><soap:Header></soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>")
}

/// POSTs a partner's secured request to ID as KR: it must be acknowledged Accepted and the CO
/// stored as received.
async fn we_accept(p: &Pair, secured: Vec<u8>, reference: &str) -> Outcome {
    let (status, answer) = post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, secured).await;
    if status != 200 || !answer.contains("<cc:Status>Accepted</cc:Status>") {
        return Outcome::Fail(format!("HTTP {status}, {} {}", first_code(&answer), short(&answer)));
    }
    let (_, found) = p.id.api("GET", &format!("/api/v1/certificates?issuer=KR&reference={reference}"), "").await;
    if found[0]["state"] != "received" {
        return Outcome::Fail(format!("acknowledged but not stored as received: {found}"));
    }
    Outcome::Pass
}

fn short(text: &str) -> String {
    text.chars().take(300).collect()
}

/// A peer command's verdict: its JSON `ok`, else what it said.
fn verdict(out: &std::process::Output) -> Outcome {
    let (code, json) = peer_json(out);
    if code == 0 && json["ok"] == true {
        Outcome::Pass
    } else {
        Outcome::Fail(format!("{} {}", json["stage"].as_str().unwrap_or(""), json["error"]).trim().to_owned())
    }
}

fn tool_verdict(out: &std::process::Output) -> Outcome {
    if out.status.success() {
        Outcome::Pass
    } else {
        Outcome::Fail(short(&format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out))))
    }
}

struct Keys {
    pki: PathBuf,
    ks: PathBuf,
}

impl Keys {
    async fn of(p: &Pair) -> Self {
        Keys { pki: p.dir.path().join("pki"), ks: keystores(p).await }
    }
    fn file(&self, party: &str, name: &str) -> String {
        self.pki.join(party).join(name).to_string_lossy().into_owned()
    }
    fn jks(&self, name: &str) -> String {
        self.ks.join(name).to_string_lossy().into_owned()
    }
}

/// Our request to ID as KR delivered it (signed, and encrypted under sign-encrypt), in a file.
async fn our_request(p: &Pair, tag: &str) -> PathBuf {
    let (request, _) = exchange(p, &unique_reference(tag)).await;
    write(p.dir.path(), &format!("ours-{tag}.xml"), &request)
}

// ---- WSS4J 1.6 -------------------------------------------------------------------------------

async fn wss4j_signs(p: &Pair, k: &Keys, encrypt: bool, extra: &[&str]) -> Outcome {
    let reference = unique_reference("WSS4J");
    let unsigned = write(p.dir.path(), "wss4j-unsigned.xml", unsigned_send_co(&reference).as_bytes());
    let out_path = p.dir.path().join("wss4j-secured.xml");
    let (ks, trust) = (k.jks("KR.jks"), k.jks("truststore.jks"));
    let mut args = vec![
        "sign-only",
        "--out",
        s(&out_path),
        "--keystore",
        &ks,
        "--storepass",
        STOREPASS,
        "--sign-alias",
        "kr-signing",
        "--enc-cert-alias",
        "id-encryption",
        "--trust",
        &trust,
        "--in",
        s(&unsigned),
    ];
    if !encrypt {
        args.push("--no-encrypt");
    }
    args.extend_from_slice(extra);
    let (code, json, err) = wss4j(&args).await;
    if code != 0 {
        return Outcome::Fail(format!("WSS4J could not secure: {json} {}", short(&err)));
    }
    we_accept(p, std::fs::read(&out_path).expect("secured"), &reference).await
}

async fn wss4j_processes(k: &Keys, file: &Path, encrypted: bool) -> Outcome {
    let (ks, trust) = (k.jks("ID.jks"), k.jks("truststore.jks"));
    let mut args = vec![
        "process",
        "--keystore",
        &ks,
        "--storepass",
        STOREPASS,
        "--alias",
        "id-encryption",
        "--trust",
        &trust,
        "--in",
        s(file),
    ];
    if encrypted {
        args.push("--require-encryption");
    }
    let (code, json, _) = wss4j(&args).await;
    if code == 0 && json["ok"] == true {
        Outcome::Pass
    } else {
        Outcome::Fail(format!("{} {}", json["stage"].as_str().unwrap_or(""), json["error"]))
    }
}

async fn wss4j_rows(rows: &mut Vec<Row>) {
    // Its own defaults, and each key reference style on top of them.
    let (signed, encrypted) =
        (preset_pair(Preset::Wss4jDefaults, false).await, preset_pair(Preset::Wss4jDefaults, true).await);
    let (ks, ke) = (Keys::of(&signed).await, Keys::of(&encrypted).await);
    let defaults = ["--style", "wss4j-defaults"];
    let ours_signed = our_request(&signed, "WSS4JD").await;
    let ours_encrypted = our_request(&encrypted, "WSS4JDE").await;
    rows.push(Row {
        stack: "Apache WSS4J 1.6.19",
        variant: "its defaults: rsa-sha1, sha1, IssuerSerial, Body-only signature, unsigned Timestamp, aes128-cbc",
        preset: Preset::Wss4jDefaults,
        cells: vec![
            (Direction::TheySign, wss4j_signs(&signed, &ks, false, &defaults).await),
            (Direction::TheyEncrypt, wss4j_signs(&encrypted, &ke, true, &defaults).await),
            (Direction::WeSign, wss4j_processes(&ks, &ours_signed, false).await),
            (Direction::WeEncrypt, wss4j_processes(&ke, &ours_encrypted, true).await),
        ],
    });
    for (variant, key_id) in [
        ("defaults with a SubjectKeyIdentifier reference", "ski"),
        ("defaults with a ThumbprintSHA1 reference", "thumbprint"),
        ("defaults with a BinarySecurityToken reference", "bst"),
        ("defaults with an X509v3 KeyIdentifier", "x509"),
    ] {
        let args = ["--style", "wss4j-defaults", "--key-id", key_id, "--enc-key-id", key_id];
        rows.push(Row {
            stack: "Apache WSS4J 1.6.19",
            variant,
            preset: Preset::Wss4jDefaults,
            cells: vec![
                (Direction::TheySign, wss4j_signs(&signed, &ks, false, &args).await),
                (Direction::TheyEncrypt, wss4j_signs(&encrypted, &ke, true, &args).await),
                (
                    Direction::WeSign,
                    Outcome::NotApplicable("what we send does not depend on the partner's reference style"),
                ),
                (Direction::WeEncrypt, Outcome::NotApplicable("as above")),
            ],
        });
    }
    // rsa-sha256, a token reference, a signed Timestamp, AES-256-GCM: how CXF is usually set up.
    let (signed, encrypted) = (preset_pair(Preset::Cxf, false).await, preset_pair(Preset::Cxf, true).await);
    let (ks, ke) = (Keys::of(&signed).await, Keys::of(&encrypted).await);
    let ours_signed = our_request(&signed, "CXF").await;
    let ours_encrypted = our_request(&encrypted, "CXFE").await;
    rows.push(Row {
        stack: "Apache WSS4J 1.6.19",
        variant: "as CXF is usually configured: rsa-sha256, sha256, token reference, signed Timestamp, aes256-gcm",
        preset: Preset::Cxf,
        cells: vec![
            (Direction::TheySign, wss4j_signs(&signed, &ks, false, &[]).await),
            (Direction::TheyEncrypt, wss4j_signs(&encrypted, &ke, true, &[]).await),
            (Direction::WeSign, wss4j_processes(&ks, &ours_signed, false).await),
            (Direction::WeEncrypt, wss4j_processes(&ke, &ours_encrypted, true).await),
        ],
    });
    // The strict profile (ours) read by WSS4J, and WSS4J set to send it.
    let (signed, encrypted) = (preset_pair(Preset::Strict, false).await, preset_pair(Preset::Strict, true).await);
    let (ks, ke) = (Keys::of(&signed).await, Keys::of(&encrypted).await);
    let ours_signed = our_request(&signed, "STRICT").await;
    let ours_encrypted = our_request(&encrypted, "STRICTE").await;
    rows.push(Row {
        stack: "Apache WSS4J 1.6.19",
        variant: "set to the strict profile",
        preset: Preset::Strict,
        cells: vec![
            (Direction::TheySign, wss4j_signs(&signed, &ks, false, &[]).await),
            (Direction::TheyEncrypt, wss4j_signs(&encrypted, &ke, true, &[]).await),
            (Direction::WeSign, wss4j_processes(&ks, &ours_signed, false).await),
            (Direction::WeEncrypt, wss4j_processes(&ke, &ours_encrypted, true).await),
        ],
    });
}

// ---- libxmlsec1 CLI and Apache Santuario C++ -----------------------------------------------------

/// A SendCO envelope with our strict profile's signature template (BinarySecurityToken reference,
/// Body and Timestamp), for a tool that fills in a template: KR's token in it, no values yet.
fn strict_template(k: &Keys, reference: &str) -> String {
    let cert = std::fs::read_to_string(k.file("KR", "signing.cert.pem")).expect("cert");
    let der: String = cert.lines().filter(|l| !l.starts_with("-----")).collect();
    let now = chrono::Utc::now();
    let created = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let expires = (now + chrono::Duration::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = send_co_body(uuid::Uuid::new_v4(), &co_with_reference(reference));
    let reference_of = |id: &str| {
        format!(
            "<ds:Reference URI=\"#{id}\"><ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms><ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue></ds:DigestValue></ds:Reference>"
        )
    };
    format!(
        concat!(
            "<soap:Envelope xmlns:soap=\"{soap}\" xmlns:wsu=\"{wsu}\"><soap:Header>",
            "<wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\" soap:mustUnderstand=\"1\">",
            "<wsu:Timestamp wsu:Id=\"TS-1\"><wsu:Created>{created}</wsu:Created><wsu:Expires>{expires}</wsu:Expires></wsu:Timestamp>",
            "<wsse:BinarySecurityToken EncodingType=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary\" ValueType=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3\" wsu:Id=\"X509-1\">{der}</wsse:BinarySecurityToken>",
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>",
            "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
            "<ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>{ts}{bd}</ds:SignedInfo>",
            "<ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><wsse:SecurityTokenReference><wsse:Reference URI=\"#X509-1\" ValueType=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3\"/></wsse:SecurityTokenReference></ds:KeyInfo></ds:Signature>",
            "</wsse:Security></soap:Header><soap:Body wsu:Id=\"Body-1\">{body}</soap:Body></soap:Envelope>"
        ),
        soap = SOAP11,
        wsu = WSU,
        created = created,
        expires = expires,
        der = der,
        ts = reference_of("TS-1"),
        bd = reference_of("Body-1"),
        body = body,
    )
}

/// The same message with the signature's KeyInfo replaced by the signer's certificate as
/// `ds:X509Data`: for a tool that resolves no WS-Security token reference. KeyInfo is outside
/// SignedInfo: the signed bytes are untouched.
fn with_x509data_key_info(message: &str, cert_pem: &str) -> String {
    let der: String = cert_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let start = message.find("<ds:KeyInfo>").expect("signature KeyInfo");
    let end = start + message[start..].find("</ds:KeyInfo>").expect("end") + "</ds:KeyInfo>".len();
    format!(
        "{}<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{der}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>{}",
        &message[..start],
        &message[end..]
    )
}

async fn libxmlsec1_rows(rows: &mut Vec<Row>) {
    let (signed, encrypted) = (preset_pair(Preset::Strict, false).await, preset_pair(Preset::Strict, true).await);
    let (ks, ke) = (Keys::of(&signed).await, Keys::of(&encrypted).await);
    let body_id = format!("{SOAP11}:Body");
    let ts_id = format!("{WSU}:Timestamp");
    let ek_id = format!("{XENC}:EncryptedKey");

    // xmlsec1 fills in our strict template with KR's key.
    let reference = unique_reference("XMLSEC1");
    let template = write(signed.dir.path(), "xmlsec1-template.xml", strict_template(&ks, &reference).as_bytes());
    let signed_path = signed.dir.path().join("xmlsec1-signed.xml");
    let out = run(
        "xmlsec1",
        &[
            "--sign",
            "--privkey-pem",
            &ks.file("KR", "signing.key.pem"),
            "--id-attr:Id",
            &body_id,
            "--id-attr:Id",
            &ts_id,
            "--output",
            s(&signed_path),
            s(&template),
        ],
        60,
    )
    .await;
    let they_sign = match tool_verdict(&out) {
        Outcome::Pass => we_accept(&signed, std::fs::read(&signed_path).expect("signed"), &reference).await,
        other => other,
    };
    let ours = our_request(&signed, "XMLSEC1").await;
    let we_sign = tool_verdict(
        &run(
            "xmlsec1",
            &[
                "--verify",
                "--pubkey-cert-pem",
                &ks.file("KR", "signing.cert.pem"),
                "--id-attr:Id",
                &body_id,
                "--id-attr:Id",
                &ts_id,
                s(&ours),
            ],
            60,
        )
        .await,
    );
    let ours_encrypted = our_request(&encrypted, "XMLSEC1E").await;
    let decrypted = encrypted.dir.path().join("xmlsec1-decrypted.xml");
    let out = run(
        "xmlsec1",
        &[
            "--decrypt",
            "--privkey-pem",
            &ke.file("ID", "encryption.key.pem"),
            "--id-attr:Id",
            &ek_id,
            "--output",
            s(&decrypted),
            s(&ours_encrypted),
        ],
        60,
    )
    .await;
    let we_encrypt = match tool_verdict(&out) {
        Outcome::Pass if std::fs::read_to_string(&decrypted).is_ok_and(|t| t.contains("SendCORequest")) => {
            Outcome::Pass
        }
        Outcome::Pass => Outcome::Fail("decrypted, but not to our SendCO".into()),
        other => other,
    };
    rows.push(Row {
        stack: "libxmlsec1 1.2.37 (xmlsec1 CLI)",
        variant: "signs our strict template; verifies and decrypts what we send",
        preset: Preset::Strict,
        cells: vec![
            (Direction::TheySign, they_sign),
            (
                Direction::TheyEncrypt,
                Outcome::NotApplicable(
                    "xmlsec1 writes the EncryptedKey inside the EncryptedData, not in a WS-Security header",
                ),
            ),
            (Direction::WeSign, we_sign),
            (Direction::WeEncrypt, we_encrypt),
        ],
    });

    // Santuario C++: xsec-templatesign fills in the template; xsec-checksig verifies ours once the
    // key is given as X509Data; xsec-cipher decrypts ours once the EncryptedKey is moved into the
    // EncryptedData (it reads no RetrievalMethod to a header element): the ciphertexts are ours.
    // xsec-templatesign finds a referenced element only by an attribute typed ID: the
    // template gets an internal DTD saying wsu:Id is one, which is taken off the signed result
    // before it is sent (a DTD is outside every signed element; we refuse messages with one).
    let reference = unique_reference("XSEC");
    let typed = format!(
        "<!DOCTYPE soap:Envelope [<!ATTLIST soap:Body wsu:Id ID #IMPLIED><!ATTLIST wsu:Timestamp wsu:Id ID #IMPLIED>]>{}",
        strict_template(&ks, &reference)
            .replace("<ds:SignatureValue></ds:SignatureValue>", "<ds:SignatureValue>-</ds:SignatureValue>")
            .replace("<ds:DigestValue></ds:DigestValue>", "<ds:DigestValue>-</ds:DigestValue>")
    );
    let template = write(signed.dir.path(), "xsec-template.xml", typed.as_bytes());
    let out = run("xsec-templatesign", &["-r", &ks.file("KR", "signing.key.pem"), "", s(&template)], 60).await;
    let they_sign = match tool_verdict(&out) {
        Outcome::Pass => {
            let signed_text = String::from_utf8_lossy(&out.stdout).into_owned();
            let envelope =
                signed_text.find("<soap:Envelope").map(|i| signed_text[i..].to_owned()).unwrap_or(signed_text);
            we_accept(&signed, envelope.into_bytes(), &reference).await
        }
        other => other,
    };
    let cert = std::fs::read_to_string(ks.file("KR", "signing.cert.pem")).expect("cert");
    let ours_text = std::fs::read_to_string(&ours).expect("ours");
    let adapted = write(signed.dir.path(), "xsec-verify.xml", with_x509data_key_info(&ours_text, &cert).as_bytes());
    let we_sign = tool_verdict(&run("xsec-checksig", &["--idns", WSU, "Id", s(&adapted)], 60).await);
    let ours_encrypted_text = std::fs::read_to_string(&ours_encrypted).expect("ours");
    let embedded =
        write(encrypted.dir.path(), "xsec-decrypt.xml", embed_encrypted_key(&ours_encrypted_text).as_bytes());
    let out =
        run("xsec-cipher", &["-de", "-k", "kek", "RSA", &ke.file("ID", "encryption.key.pem"), "", s(&embedded)], 60)
            .await;
    let we_encrypt = match tool_verdict(&out) {
        Outcome::Pass if String::from_utf8_lossy(&out.stdout).contains("SendCORequest") => Outcome::Pass,
        Outcome::Pass => {
            Outcome::Fail(format!("decrypted, but not to our SendCO: {}", short(&String::from_utf8_lossy(&out.stdout))))
        }
        other => other,
    };
    rows.push(Row {
        stack: "Apache Santuario C++ 2.0.4 (xsec tools)",
        variant:
            "signs our strict template; verifies (key as X509Data) and decrypts (EncryptedKey embedded) what we send",
        preset: Preset::Strict,
        cells: vec![
            (Direction::TheySign, they_sign),
            (
                Direction::TheyEncrypt,
                Outcome::NotApplicable(
                    "xsec-cipher writes the EncryptedKey inside the EncryptedData, not in a WS-Security header",
                ),
            ),
            (Direction::WeSign, we_sign),
            (Direction::WeEncrypt, we_encrypt),
        ],
    });

    // signxml verifies what we sign.
    let out = run(
        venv_python(),
        &[
            s(&repo_root().join("tests/interop/defaults_peer.py")),
            "signxml-verify",
            "--cert",
            &ks.file("KR", "signing.cert.pem"),
            "--in",
            s(&ours),
        ],
        60,
    )
    .await;
    rows.push(Row {
        stack: "signxml 5.2 (PyPI)",
        variant: "verifies what we sign, with its default expectations (no SHA-1)",
        preset: Preset::Strict,
        cells: vec![
            (
                Direction::TheySign,
                Outcome::NotApplicable(
                    "signxml signs the whole document (enveloped, c14n 1.1, bare X509Data): not a WS-Security message",
                ),
            ),
            (Direction::TheyEncrypt, Outcome::NotApplicable("signxml has no encryption")),
            (Direction::WeSign, verdict(&out)),
            (Direction::WeEncrypt, Outcome::NotApplicable("signxml has no decryption")),
        ],
    });
}

/// Our encrypted message with the header EncryptedKey moved into the Body's EncryptedData
/// `ds:KeyInfo` (for a tool that only reads an embedded one). Nothing encrypted changes.
fn embed_encrypted_key(message: &str) -> String {
    let start = message.find("<xenc:EncryptedKey").expect("EncryptedKey");
    let end = start + message[start..].find("</xenc:EncryptedKey>").expect("end") + "</xenc:EncryptedKey>".len();
    let key = &message[start..end];
    let without = format!("{}{}", &message[..start], &message[end..]);
    let data = without.find("<EncryptedData").expect("EncryptedData");
    let ki_start = data + without[data..].find("<ds:KeyInfo").expect("EncryptedData KeyInfo");
    let ki_end = ki_start + without[ki_start..].find("</ds:KeyInfo>").expect("end") + "</ds:KeyInfo>".len();
    let key = key.replacen(
        "<xenc:EncryptedKey",
        "<xenc:EncryptedKey xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\"",
        1,
    );
    format!(
        "{}<ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">{key}</ds:KeyInfo>{}",
        &without[..ki_start],
        &without[ki_end..]
    )
}

// ---- python zeep, node soap, WCF shape ------------------------------------------------------------

async fn defaults_peer(args: &[&str]) -> std::process::Output {
    let script = repo_root().join("tests/interop/defaults_peer.py");
    let mut all = vec![s(&script)];
    all.extend_from_slice(args);
    run(venv_python(), &all, 120).await
}

async fn node_peer(args: &[&str]) -> std::process::Output {
    let script = repo_root().join("tests/interop/node/peer.js");
    let mut all = vec![s(&script).to_owned()];
    all.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    run("node", &refs, 120).await
}

async fn zeep_rows(rows: &mut Vec<Row>) {
    let signed = preset_pair(Preset::Zeep, false).await;
    let k = Keys::of(&signed).await;
    let ours = our_request(&signed, "ZEEP").await;
    for class in ["Signature", "BinarySignature"] {
        let reference = unique_reference("ZEEP");
        let unsigned = write(signed.dir.path(), "zeep-unsigned.xml", unsigned_send_co(&reference).as_bytes());
        let out_path = signed.dir.path().join("zeep-signed.xml");
        let out = defaults_peer(&[
            "zeep-sign",
            "--class",
            class,
            "--key",
            &k.file("KR", "signing.key.pem"),
            "--cert",
            &k.file("KR", "signing.cert.pem"),
            "--in",
            s(&unsigned),
            "--out",
            s(&out_path),
        ])
        .await;
        let they_sign = match verdict(&out) {
            Outcome::Pass => we_accept(&signed, std::fs::read(&out_path).expect("signed"), &reference).await,
            other => other,
        };
        let verify =
            defaults_peer(&["zeep-verify", "--cert", &k.file("KR", "signing.cert.pem"), "--in", s(&ours)]).await;
        rows.push(Row {
            stack: "python zeep 4.3.1",
            variant: if class == "Signature" {
                "Signature (issuer-serial and certificate in X509Data), its defaults: rsa-sha1, sha1, no Timestamp"
            } else {
                "BinarySignature (token reference), its defaults: rsa-sha1, sha1, no Timestamp"
            },
            preset: Preset::Zeep,
            cells: vec![
                (Direction::TheySign, they_sign),
                (Direction::TheyEncrypt, Outcome::NotApplicable("zeep has no XML Encryption")),
                (Direction::WeSign, verdict(&verify)),
                (Direction::WeEncrypt, Outcome::NotApplicable("zeep has no XML Encryption")),
            ],
        });
    }
}

async fn node_rows(rows: &mut Vec<Row>) {
    let (signed, encrypted) = (preset_pair(Preset::NodeSoap, false).await, preset_pair(Preset::NodeSoap, true).await);
    let (ks, ke) = (Keys::of(&signed).await, Keys::of(&encrypted).await);
    let mut cells = Vec::new();
    for (pair, k, encrypt) in [(&signed, &ks, false), (&encrypted, &ke, true)] {
        let reference = unique_reference("NODE");
        let unsigned = write(pair.dir.path(), "node-unsigned.xml", unsigned_send_co(&reference).as_bytes());
        let out_path = pair.dir.path().join("node-secured.xml");
        let (key, cert, to) =
            (k.file("KR", "signing.key.pem"), k.file("KR", "signing.cert.pem"), k.file("ID", "encryption.cert.pem"));
        let mut args = vec!["sign", "--key", &key, "--cert", &cert, "--in", s(&unsigned), "--out", s(&out_path)];
        if encrypt {
            args.extend_from_slice(&["--encrypt-to", &to]);
        }
        let out = node_peer(&args).await;
        let outcome = match verdict(&out) {
            Outcome::Pass => we_accept(pair, std::fs::read(&out_path).expect("secured"), &reference).await,
            other => other,
        };
        cells.push((if encrypt { Direction::TheyEncrypt } else { Direction::TheySign }, outcome));
    }
    let ours = our_request(&signed, "NODE").await;
    cells.push((
        Direction::WeSign,
        verdict(&node_peer(&["verify", "--cert", &ks.file("KR", "signing.cert.pem"), "--in", s(&ours)]).await),
    ));
    let ours_encrypted = our_request(&encrypted, "NODEE").await;
    let out = node_peer(&["decrypt", "--key", &ke.file("ID", "encryption.key.pem"), "--in", s(&ours_encrypted)]).await;
    let decrypted = match verdict(&out) {
        Outcome::Pass if String::from_utf8_lossy(&out.stdout).contains("SendCORequest") => Outcome::Pass,
        Outcome::Pass => Outcome::Fail("decrypted, but not to our SendCO".into()),
        other => other,
    };
    cells.push((Direction::WeEncrypt, decrypted));
    rows.push(Row {
        stack: "node soap 1.13 (WSSecurityCert, xml-crypto 6.3) + xml-encryption 6.0",
        variant: "their defaults: rsa-sha256, sha256, [enveloped-signature, exc-c14n], token reference; xml-encryption aes256-gcm, EncryptedKey inside the EncryptedData",
        preset: Preset::NodeSoap,
        cells,
    });
}

async fn wcf_rows(rows: &mut Vec<Row>) {
    for (preset, suite) in [(Preset::WcfBasic256Sha256, "basic256sha256"), (Preset::WcfBasic256, "basic256")] {
        let encrypted = preset_pair(preset, true).await;
        let k = Keys::of(&encrypted).await;
        let reference = unique_reference("WCF");
        let unsigned = write(encrypted.dir.path(), "wcf-unsigned.xml", unsigned_send_co(&reference).as_bytes());
        let out_path = encrypted.dir.path().join("wcf-shaped.xml");
        let out = defaults_peer(&[
            "wcf-build",
            "--suite",
            suite,
            "--key",
            &k.file("KR", "signing.key.pem"),
            "--cert",
            &k.file("KR", "signing.cert.pem"),
            "--recipient",
            &k.file("ID", "encryption.cert.pem"),
            "--in",
            s(&unsigned),
            "--out",
            s(&out_path),
        ])
        .await;
        let they = match verdict(&out) {
            Outcome::Pass => we_accept(&encrypted, std::fs::read(&out_path).expect("built"), &reference).await,
            other => other,
        };
        let ours = our_request(&encrypted, "WCF").await;
        rows.push(Row {
            stack: "WCF message shape (NOT a real WCF: built with python-xmlsec)",
            variant: if preset == Preset::WcfBasic256 {
                "BasicHttpBinding, Message security, certificates, Basic256"
            } else {
                "BasicHttpBinding, Message security, certificates, Basic256Sha256"
            },
            preset,
            cells: vec![
                (
                    Direction::TheySign,
                    Outcome::NotApplicable("WCF message security signs and encrypts: see the next cell"),
                ),
                (Direction::TheyEncrypt, they),
                (Direction::WeSign, Outcome::NotApplicable("no WCF runs here (it needs .NET Framework)")),
                (Direction::WeEncrypt, Outcome::NotApplicable("no WCF runs here")),
            ],
        });
        // What we send under the WCF preset (encrypted signature, SKI reference, aes256-cbc) is
        // read by an independent stack all the same.
        rows.push(Row {
            stack: "Apache WSS4J 1.6.19",
            variant: if preset == Preset::WcfBasic256 {
                "reading what we send under wcf-basic256"
            } else {
                "reading what we send under wcf-basic256sha256"
            },
            preset,
            cells: vec![
                (Direction::TheySign, Outcome::NotApplicable("see the rows above")),
                (Direction::TheyEncrypt, Outcome::NotApplicable("see the rows above")),
                (Direction::WeSign, Outcome::NotApplicable("the preset always encrypts")),
                (Direction::WeEncrypt, wss4j_processes(&k, &ours, true).await),
            ],
        });
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| Stack | Settings | Preset | {} |", Direction::ALL.map(Direction::heading).join(" | "));
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    for r in rows {
        let cells: Vec<String> = Direction::ALL
            .iter()
            .map(|d| match r.cells.iter().find(|(cd, _)| cd == d).map(|(_, o)| o) {
                Some(Outcome::Pass) => "pass".to_owned(),
                Some(Outcome::Fail(_)) => "FAIL".to_owned(),
                Some(Outcome::NotApplicable(why)) => {
                    let n = match notes.iter().position(|w| w == why) {
                        Some(i) => i + 1,
                        None => {
                            notes.push(*why);
                            notes.len()
                        }
                    };
                    format!("n/a ({n})")
                }
                None => "—".to_owned(),
            })
            .collect();
        let _ = writeln!(out, "| {} | {} | `{}` | {} |", r.stack, r.variant, r.preset.name(), cells.join(" | "));
    }
    let _ = writeln!(out);
    for (i, why) in notes.iter().enumerate() {
        let _ = writeln!(out, "{}. {why}", i + 1);
    }
    out
}

const BEGIN: &str = "<!-- interop matrix: generated by tests/gateway/matrix.rs, do not edit -->";
const END: &str = "<!-- end of interop matrix -->";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partner_stack_with_its_own_defaults() {
    if !peers_ready() {
        return;
    }
    let mut rows = Vec::new();
    wss4j_rows(&mut rows).await;
    libxmlsec1_rows(&mut rows).await;
    zeep_rows(&mut rows).await;
    node_rows(&mut rows).await;
    wcf_rows(&mut rows).await;
    let generated = table(&rows);
    let path = repo_root().join("docs/interop.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let current = doc.find(BEGIN).zip(doc.find(END)).map(|(b, e)| doc[b + BEGIN.len()..e].trim().to_owned());
    if std::env::var("COCONNECT_WRITE_INTEROP").as_deref() == Ok("1") {
        let new = match doc.find(BEGIN).zip(doc.find(END)) {
            Some((b, e)) => format!("{}{BEGIN}\n{}\n{}", &doc[..b], generated.trim(), &doc[e..]),
            None => format!("{doc}\n{BEGIN}\n{}\n{END}\n", generated.trim()),
        };
        std::fs::write(&path, new).expect("write docs/interop.md");
    } else {
        assert_eq!(
            current.as_deref(),
            Some(generated.trim()),
            "docs/interop.md's matrix is not what the peers gave: run COCONNECT_WRITE_INTEROP=1 cargo test --test gateway matrix"
        );
    }
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.cells.iter().filter_map(move |(d, o)| match o {
                Outcome::Fail(why) => Some(format!("{} / {} / {}: {why}", r.stack, r.variant, d.heading())),
                _ => None,
            })
        })
        .collect();
    assert!(failures.is_empty(), "interop cells failed:\n{}", failures.join("\n"));
}
