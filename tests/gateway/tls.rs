//! Mutual TLS terminated by the gateway: the exchange over TLS, and a partner's client
//! certificate right, missing, from another CA, or belonging to another partner.

use crate::common::*;

/// POSTs over TLS from 127.0.0.1 with an optional client certificate.
async fn tls_post(
    to: std::net::SocketAddr,
    client: Option<(&std::path::Path, &std::path::Path)>,
    ca: &std::path::Path,
    user: &str,
    password: &str,
    body: Vec<u8>,
) -> Result<(u16, String), String> {
    call(Call { to, from: "127.0.0.1", tls: Some((ca, client)), headers: vec![], user, password, body }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_exchange_over_mutual_tls() {
    let (dir, [kr, id]) = pair_files_with("sign-encrypt", Db::Sqlite, true).await;
    let mut kr = Gateway { files: kr, app: None };
    let mut id = Gateway { files: id, app: None };
    kr.start().await;
    id.start().await;
    let cert = kr.submit("ID", EXAMPLE_CO).await;
    kr.wait_state(&cert, "acknowledged").await;
    assert_eq!(coconnect::store::certificates::count(id.store()).await.expect("count"), 1);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_right_missing_wrong_ca_and_another_partners_are_told_apart() {
    let (dir, [kr, id]) = pair_files_with("sign-encrypt", Db::Sqlite, true).await;
    let mut id = Gateway { files: id, app: None };
    id.start().await;
    let pki = dir.path().join("pki");
    let ca = pki.join("ca.cert.pem");
    let kr_files = coconnect::dev_pki::party_files(&pki, "KR");
    let id_files = coconnect::dev_pki::party_files(&pki, "ID");
    let c = Crafter::new(&pki, "KR", "ID");
    let pw = id.files.inbound_password.clone();
    let message = || c.secure(&send_co_body(uuid::Uuid::new_v4(), EXAMPLE_CO), true, now());

    // Right: KR's TLS certificate, KR's Basic credentials, KR's signature.
    let (status, ack) =
        tls_post(id.files.soap_addr, Some((&kr_files.tls_cert, &kr_files.tls_key)), &ca, "KR", &pw, message())
            .await
            .expect("handshake");
    assert_eq!(status, 200, "{ack}");
    let stored_after_right = stored(id.store()).await;

    // Missing: the handshake fails.
    assert!(tls_post(id.files.soap_addr, None, &ca, "KR", &pw, message()).await.is_err());
    // Another CA's certificate: the handshake fails.
    let other = tempfile::tempdir().expect("tmp");
    coconnect::dev_pki::init_dev_pki(other.path(), &["KR".into()], false).expect("pki");
    let stranger = coconnect::dev_pki::party_files(other.path(), "KR");
    assert!(tls_post(id.files.soap_addr, Some((&stranger.tls_cert, &stranger.tls_key)), &ca, "KR", &pw, message())
        .await
        .is_err());
    // A valid certificate of the same CA that is not KR's, with KR's credentials: refused.
    let (status, fault) =
        tls_post(id.files.soap_addr, Some((&id_files.tls_cert, &id_files.tls_key)), &ca, "KR", &pw, message())
            .await
            .expect("handshake");
    assert_eq!((status, first_code(&fault).as_str()), (403, "AUTH-TLS-MISMATCH"), "{fault}");
    assert_eq!(stored(id.store()).await, stored_after_right, "nothing stored for refused calls");
    drop(kr);
}

/// One HTTPS exchange through the `openssl s_client` command (a client that resumes sessions
/// the way nginx and Java do): `session` is read for resumption if it exists, and written.
/// Returns what s_client printed (handshake summary and the HTTP answer).
async fn s_client(
    to: std::net::SocketAddr,
    client: (&std::path::Path, &std::path::Path),
    ca: &std::path::Path,
    version: &str,
    session: &std::path::Path,
    request: &[u8],
) -> String {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.args(["s_client", "-connect", &to.to_string(), version, "-ign_eof"])
        .arg("-cert")
        .arg(client.0)
        .arg("-key")
        .arg(client.1)
        .arg("-CAfile")
        .arg(ca)
        .arg("-sess_out")
        .arg(session);
    if session.exists() {
        cmd.arg("-sess_in").arg(session);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl s_client (Debian package openssl)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(request).await.expect("request");
    drop(stdin);
    let out =
        tokio::time::timeout(PATIENCE, child.wait_with_output()).await.expect("s_client in time").expect("s_client");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn soap_post(user: &str, password: &str, body: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut request = format!(
        "POST /soap/v1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_tls_sessions_are_served_and_a_removed_certificate_is_refused_after_the_restart() {
    let (dir, [_kr, id]) = pair_files_with("sign", Db::Sqlite, true).await;
    let mut id = Gateway { files: id, app: None };
    id.start().await;
    let pki = dir.path().join("pki");
    let ca = pki.join("ca.cert.pem");
    let kr_files = coconnect::dev_pki::party_files(&pki, "KR");
    let id_files = coconnect::dev_pki::party_files(&pki, "ID");
    let c = Crafter::new(&pki, "KR", "ID");
    let pw = id.files.inbound_password.clone();
    let addr = id.files.soap_addr;
    let client = (kr_files.tls_cert.as_path(), kr_files.tls_key.as_path());
    let request = || soap_post("KR", &pw, &c.secure(&send_co_body(uuid::Uuid::new_v4(), EXAMPLE_CO), false, now()));

    for version in ["-tls1_2", "-tls1_3"] {
        let session = dir.path().join(format!("session{version}.pem"));
        let first = s_client(addr, client, &ca, version, &session, &request()).await;
        assert!(first.contains("New,") && first.contains("HTTP/1.1 200"), "{version} first: {first}");
        let second = s_client(addr, client, &ca, version, &session, &request()).await;
        assert!(
            second.contains("Reused,") && second.contains("HTTP/1.1 200"),
            "{version}: the second connection resumes the session and is served: {second}"
        );
    }

    // KR's TLS certificate is removed from the configuration (replaced by another one of the
    // same CA), which takes a restart: KR's saved session is not resumed by the new process
    // (new session keys, and a session id context derived from the trust configuration), and
    // the full handshake's certificate is refused as not KR's. Within one process, the
    // resumed sessions above show that the partner check reads the session's certificate.
    let session = dir.path().join("session-removed.pem");
    let first = s_client(addr, client, &ca, "-tls1_3", &session, &request()).await;
    assert!(first.contains("HTTP/1.1 200"), "{first}");
    id.stop().await;
    id.reconfigure(
        &format!("tls_client_certs = [\"{}\"]", kr_files.tls_cert.display()),
        &format!("tls_client_certs = [\"{}\"]", id_files.tls_cert.display()),
    );
    id.start().await;
    let before = stored(id.store()).await;
    let resumed = s_client(addr, client, &ca, "-tls1_3", &session, &request()).await;
    assert!(!resumed.contains("Reused,"), "{resumed}");
    assert!(resumed.contains("HTTP/1.1 403") && resumed.contains("AUTH-TLS-MISMATCH"), "{resumed}");
    assert_eq!(stored(id.store()).await, before, "nothing stored for the removed certificate");
}
