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
    let kr_files = coconnect::pki::party_files(&pki, "KR");
    let id_files = coconnect::pki::party_files(&pki, "ID");
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
    coconnect::pki::init_dev_pki(other.path(), &["KR".into()], false).expect("pki");
    let stranger = coconnect::pki::party_files(other.path(), "KR");
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
